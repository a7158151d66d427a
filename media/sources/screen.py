"""The screen as a video source, through mss (X11, macOS Quartz, Windows GDI).

``--video screen`` sends the first monitor, ``screen:N`` monitor N (mss's numbering:
1 is the first, 0 all of them as one picture). Grabs run in a capture thread at
the asked rate; a picture wider than MAX_WIDTH is scaled down (a 4K screen at full
size is more than a software encoder keeps up with).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import cv2
import numpy as np
from aiortc.mediastreams import VIDEO_CLOCK_RATE
from av import VideoFrame

from media.errors import MediaSourceError
from media.sources.capture import CaptureThread, DeviceTrack
from media.sources.clock import MediaClock

logger = logging.getLogger(__name__)

MAX_WIDTH: Final = 1920
MAX_FPS: Final = 15.0  # a screen changes rarely; this keeps a shared screen cheap to encode


def list_monitors() -> list[dict[str, int]]:
    """mss's monitors: [all of them together, the first, the second, ...]."""
    import mss

    try:
        with mss.MSS() as grabber:
            return [dict(m) for m in grabber.monitors]
    except Exception as exc:  # mss raises its own ScreenShotError, or OSError without X
        raise MediaSourceError(f"cannot reach the screen: {exc}") from exc


class ScreenTrack(DeviceTrack):
    kind = "video"

    def __init__(self, monitor: int = 1, fps: float = MAX_FPS) -> None:
        super().__init__()
        monitors = list_monitors()
        if not 0 <= monitor < len(monitors):
            raise MediaSourceError(
                f"there is no screen {monitor}: this display has "
                f"{len(monitors) - 1} monitor(s) (screen:1 to screen:{len(monitors) - 1}, "
                "screen:0 for all together)"
            )
        self.monitor = monitor
        self._area = monitors[monitor]
        self._period = 1 / min(fps, MAX_FPS)
        self._grabber: Any = None  # made in the capture thread: mss handles are per thread
        self._next_grab = 0.0
        self._clock = MediaClock(VIDEO_CLOCK_RATE, self._period)
        self._frames = CaptureThread(f"screen {monitor}", self._read, self._close)
        logger.info("screen %d: %dx%d", monitor, self._area["width"], self._area["height"])

    def _read(self) -> VideoFrame | None:
        import mss

        if self._grabber is None:
            self._grabber = mss.MSS()
        delay = self._next_grab - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next_grab = max(self._next_grab + self._period, time.monotonic())
        shot = self._grabber.grab(self._area)
        image = np.asarray(shot, dtype=np.uint8)[:, :, :3]  # BGRA -> BGR
        return VideoFrame.from_ndarray(np.ascontiguousarray(_fit(image)), format="bgr24")

    def _close(self) -> None:
        if self._grabber is not None:
            self._grabber.close()
            self._grabber = None


def _fit(image: np.ndarray) -> np.ndarray:
    """Even dimensions (what yuv420p needs), at most MAX_WIDTH wide."""
    height, width = image.shape[:2]
    if width > MAX_WIDTH:
        height, width = height * MAX_WIDTH // width, MAX_WIDTH
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image[: height - height % 2, : width - width % 2]
