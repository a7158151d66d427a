"""Importing a pure module loads no OpenCV, PyAV or aiortc (issue 14, item 3).

Each import runs in a fresh interpreter: this test process has long loaded all three.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.support import ROOT

# The sans-I/O cores of each layer: they are what unit tests and tools import alone.
PURE_MODULES = (
    "signaling.statetable",
    "signaling.router",
    "peer.call.recovery",
    "peer.call.av_commands",
    "peer.congestion.trendline",
    "peer.congestion.rate_control",
    "peer.congestion.estimator",
    "peer.congestion.packets",
    "peer.data.transfer_wire",
    "peer.data.transfer",
    "peer.data.chat",
    "peer.tty.commands",
    "media.measure.stamp",
)
MEDIA_LIBRARIES = ("cv2", "av", "aiortc")

# Imports the modules one after another and names what each one loaded first.
PROBE = """\
import importlib, json, sys
libraries, modules = sys.argv[1].split(","), sys.argv[2:]
loaded = {}
for name in modules:
    before = set(sys.modules)
    importlib.import_module(name)
    loaded[name] = [m for m in libraries if m in sys.modules and m not in before]
print(json.dumps(loaded))
"""


def fresh_python(code: str, *args: str) -> str:
    """What ``code`` prints in a new interpreter started in the repository."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_pure_modules_load_no_media_library() -> None:
    loaded = json.loads(fresh_python(PROBE, ",".join(MEDIA_LIBRARIES), *PURE_MODULES))
    assert {name: libraries for name, libraries in loaded.items() if libraries} == {}


def test_the_peer_command_loads_opencv_before_pyav() -> None:
    # PyAV's libxcb loaded first hangs OpenCV's window (peer/media_libraries.py); an
    # import sorter may reorder imports, so the order is checked, not trusted.
    probe = (
        "import sys, peer.cli; names = list(sys.modules); "
        "print(names.index('cv2'), names.index('av'))"
    )
    opencv, pyav = (int(position) for position in fresh_python(probe).split())
    assert opencv < pyav
