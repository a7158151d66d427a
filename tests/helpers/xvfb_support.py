"""A real X server (Xvfb) for window tests, and screenshots of it read as pixels."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.measure.stamp import Stamp, read_stamp

SCREEN = (1280, 800)

# Run in a child process: PyAV's x11grab and OpenCV's window each want their own libxcb.
_GRAB = """
import sys, av, numpy as np
display, size, out = sys.argv[1:4]
with av.open(display, format="x11grab", options={"video_size": size}) as grab:
    frame = next(grab.decode(video=0))
    np.save(out, frame.to_ndarray(format="rgb24"))
"""


@dataclass
class Xvfb:
    display: str
    process: subprocess.Popen[bytes]

    def screenshot(self) -> npt.NDArray[np.uint8]:
        """The whole screen as an RGB array."""
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "screen.npy"
            subprocess.run(
                [sys.executable, "-c", _GRAB, self.display, "x".join(map(str, SCREEN)), str(out)],
                check=True,
                timeout=20,
            )
            return np.asarray(np.load(out), dtype=np.uint8)

    def xdotool(self, *args: str) -> None:
        subprocess.run(
            ["xdotool", *args], check=True, timeout=10, env={**os.environ, "DISPLAY": self.display}
        )


@pytest.fixture
def xvfb() -> Iterator[Xvfb]:
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write_end),
            "-screen",
            "0",
            f"{SCREEN[0]}x{SCREEN[1]}x24",
            "-nolisten",
            "tcp",
        ],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        number = reader.readline().strip()
    assert number, "Xvfb did not report a display number"
    yield Xvfb(f":{number}", process)
    process.terminate()
    process.wait(timeout=10)


def luma(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    weights = np.array([0.299, 0.587, 0.114])
    return np.asarray(rgb[..., :3] @ weights, dtype=np.uint8)


def find_stamp(
    rgb: npt.NDArray[np.uint8], cell: int, search: int = 48
) -> tuple[Stamp, int, int] | None:
    """The stamp nearest the top-left corner of a screenshot, with where it was found."""
    plane = luma(rgb)
    for top in range(search):
        for left in range(search):
            stamp = read_stamp(plane[top:, left:], cell)
            if stamp is not None:
                return stamp, top, left
    return None


def wait_for_stamp(
    xvfb: Xvfb, cell: int, timeout: float = 10.0
) -> tuple[npt.NDArray[np.uint8], tuple[Stamp, int, int]]:
    """The first screenshot that shows a stamped frame, and the stamp with its place.

    A window's first paint lags the frames the peer reports decoded, by more on a loaded
    machine: the screen is watched for it, not looked at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        shot = xvfb.screenshot()
        found = find_stamp(shot, cell)
        if found is not None:
            return shot, found
        if time.monotonic() > deadline:
            raise AssertionError(f"no stamped frame on the screen within {timeout} s")
        time.sleep(0.2)
