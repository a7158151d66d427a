"""The webcam, through OpenCV's VideoCapture (V4L2, AVFoundation, DirectShow/MSMF)."""

from __future__ import annotations

import logging
import sys
from typing import Final

import cv2
import numpy as np
from aiortc.mediastreams import VIDEO_CLOCK_RATE
from av import VideoFrame

from media.errors import MediaSourceError
from media.sources.capture import CaptureThread, DeviceTrack
from media.sources.clock import MediaClock

logger = logging.getLogger(__name__)

# The backend each OS's cameras are best reached through; CAP_ANY lets OpenCV pick.
_BACKENDS: Final = {
    "linux": cv2.CAP_V4L2,
    "darwin": cv2.CAP_AVFOUNDATION,
    "win32": cv2.CAP_DSHOW,
}


def _backend() -> int:
    return _BACKENDS.get(sys.platform, cv2.CAP_ANY)


class CameraTrack(DeviceTrack):
    """Frames from a camera: ``device`` is an index (0) or a path (/dev/video2)."""

    kind = "video"

    def __init__(self, device: int | str, width: int, height: int, fps: float) -> None:
        super().__init__()
        self.device = device
        capture = cv2.VideoCapture(device, _backend())
        if not capture.isOpened():
            capture.release()
            raise MediaSourceError(
                f"cannot open camera {device!r}: no such device, or it is in use "
                "(list cameras with `v4l2-ctl --list-devices` on Linux; "
                "try --video synthetic to call without one)"
            )
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_FPS, fps)
        # Keep the driver's own queue short: an old frame is a late frame.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        ok, first = capture.read()
        if not ok:
            capture.release()
            raise MediaSourceError(
                f"camera {device!r} opened but gives no picture; try --video synthetic"
            )
        self.width, self.height = int(first.shape[1]), int(first.shape[0])
        logger.info("camera %s: %dx%d", device, self.width, self.height)
        self._capture = capture
        self._clock = MediaClock(VIDEO_CLOCK_RATE, 1 / fps)
        self._frames = CaptureThread(f"camera {device}", self._read, capture.release)

    def _read(self) -> VideoFrame | None:
        ok, image = self._capture.read()
        if not ok:
            return None
        # Converted here, in the capture thread, not on the event loop.
        return VideoFrame.from_ndarray(np.asarray(image, dtype=np.uint8), format="bgr24")
