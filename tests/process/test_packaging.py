"""The package as someone installs it: the built wheel, in a fresh virtual environment,
run from a directory that is not this checkout.

The wheel is built once per module. A server-only install resolves its dependencies for
real (pip, from this machine's wheel cache or index) and must not bring aiortc, PyAV,
OpenCV, numpy or redis-py. The full install takes the peer's libraries from this
checkout's .venv (a path line, not its site directory: the editable install's finder
stays out), so only the wheel's own files provide signaling, peer and media.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import Parser
from pathlib import Path

import pytest

from tests.helpers.support import ROOT, Process, free_port

pytestmark = pytest.mark.slow

PEER_LIBRARIES = ("aiortc", "av", "cv2", "numpy", "redis")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    # setuptools warns this way about data folders it was not told are part of a package.
    assert "would be ignored" not in build.stdout + build.stderr
    [built] = out.glob("webcam_peer-*.whl")
    return built


def _fresh_venv(where: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(where)
    return where / "bin"


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with no signaling/, peer/ or media/ in it."""
    return tmp_path_factory.mktemp("elsewhere")


@contextmanager
def _installed_server(bin_dir: Path, cwd: Path) -> Iterator[str]:
    """Start the installed signaling-server; yields its URL while it runs."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    server = Process([str(bin_dir / "signaling-server"), "--port", str(port)], env, cwd=cwd)
    try:
        server.wait_for("listening on http://")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        text: str = reply.read().decode()
        return text


def test_the_wheel_holds_the_page_the_license_and_the_extras(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    static = {p.name for p in (ROOT / "signaling" / "static").iterdir()}
    assert {f"signaling/static/{name}" for name in static} <= names
    assert any(n.endswith("LICENSE") for n in names)
    assert "signaling-server = signaling.cli:main" in entry_points
    assert "webcam-peer = peer.cli:main" in entry_points
    requires = metadata.get_all("Requires-Dist") or []
    plain = [r for r in requires if "extra ==" not in r]
    assert sorted(r.split(">")[0].split("<")[0] for r in plain) == [
        "aiohttp",
        "orjson",
        "prometheus-client",
    ]
    assert 'av>=17.1; extra == "peer"' in requires
    assert set(metadata.get_all("Provides-Extra") or []) >= {"server", "peer", "all"}


def test_a_server_only_install_serves_the_page_without_the_peer_libraries(
    wheel: Path, elsewhere: Path, tmp_path: Path
) -> None:
    bin_dir = _fresh_venv(tmp_path / "server-only")
    install = _run([str(bin_dir / "pip"), "install", "-q", str(wheel)], elsewhere)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    found = _run([str(bin_dir / "python"), "-c", probe, *PEER_LIBRARIES], elsewhere)
    assert found.stdout.strip() == "[]", found
    version = _run([str(bin_dir / "signaling-server"), "--version"], elsewhere)
    assert version.stdout.startswith("signaling-server 0."), version
    with _installed_server(bin_dir, elsewhere) as url:
        assert "<title>" in _fetch(url + "/")
        assert "WebSocket" in _fetch(url + "/static/app.js")
    # --redis without redis-py: what to install, in one line.
    redis = _run([str(bin_dir / "signaling-server"), "--redis", "redis://127.0.0.1:1/0"], elsewhere)
    assert redis.returncode == 2
    assert "pip install 'webcam-peer[server]'" in redis.stderr
    assert "Traceback" not in redis.stderr
    # webcam-peer without its media libraries: what to install, in one line.
    peer = _run([str(bin_dir / "webcam-peer"), "--help"], elsewhere)
    assert peer.returncode == 1
    assert "pip install 'webcam-peer[peer]'" in peer.stderr
    assert "Traceback" not in peer.stderr


def test_a_full_install_runs_both_commands(wheel: Path, elsewhere: Path, tmp_path: Path) -> None:
    bin_dir = _fresh_venv(tmp_path / "full")
    install = _run([str(bin_dir / "pip"), "install", "-q", "--no-deps", str(wheel)], elsewhere)
    assert install.returncode == 0, install.stderr[-3000:]
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(_run([str(bin_dir / "python"), "-c", purelib], elsewhere).stdout.strip())
    (site / "project-libraries.pth").write_text(sysconfig.get_path("purelib") + "\n")
    where = _run(
        [str(bin_dir / "python"), "-c", "import signaling, peer, media; print(peer.__file__)"],
        elsewhere,
    )
    assert where.stdout.startswith(str(site)), where
    for command in ("webcam-peer", "signaling-server"):
        version = _run([str(bin_dir / command), "--version"], elsewhere)
        assert version.returncode == 0 and version.stdout.startswith(f"{command} 0."), version
    help_text = _run([str(bin_dir / "webcam-peer"), "--help"], elsewhere)
    assert help_text.returncode == 0 and "--login" in help_text.stdout, help_text
    with _installed_server(bin_dir, elsewhere) as url:
        assert "<title>" in _fetch(url + "/")
