"""The call window (OpenCV): the remote video, our own picture inset, and an overlay.

Everything runs on the event loop's thread, which is the thread OpenCV's GUI wants;
``cv2.waitKey(1)`` is called every tick so the window stays responsive even while
no frame arrives. ``q`` or Esc (or closing the window) sets ``quit_requested``;
other keys go to ``on_key`` (the peer's m and v: mute, camera off/on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

logger = logging.getLogger(__name__)

QUIT_KEYS: Final = (ord("q"), ord("Q"), 27)
NO_KEY: Final = 0xFF
TICK: Final = 1 / 100
INSET_FRACTION: Final = 4  # the local preview is a quarter of the window's width
PLACEHOLDER_SIZE: Final = (640, 480)

Image = npt.NDArray[np.uint8]


@dataclass
class Overlay:
    title: str
    lines: list[str] = field(default_factory=list)


class LatestFrame:
    """Keeps only the newest frame of a track: the window shows now, not a backlog."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frame: VideoFrame | None = None
        self.fresh = asyncio.Event()
        self.ended = False

    async def pull(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                assert isinstance(frame, VideoFrame)
                self.frame = frame
                self.fresh.set()
        except MediaStreamError:
            self.ended = True
            self.fresh.set()


class VideoWindow:
    def __init__(
        self,
        title: str,
        remote: MediaStreamTrack,
        *,
        local: MediaStreamTrack | None = None,
        overlay: Callable[[], Overlay] | None = None,
        on_key: Callable[[str], None] | None = None,
    ) -> None:
        self.title = title
        self._remote = LatestFrame(remote)
        self._local = LatestFrame(local) if local is not None else None
        self._overlay = overlay or (lambda: Overlay(title))
        self._on_key = on_key  # any other key pressed (m, v: mute, camera)
        self.quit_requested = False
        self.frames_shown = 0

    async def run(self) -> None:
        """Show frames until the remote track ends or the user quits."""
        pullers = [asyncio.create_task(self._remote.pull(), name="window-remote")]
        if self._local is not None:
            pullers.append(asyncio.create_task(self._local.pull(), name="window-local"))
        cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        try:
            self._show(self._placeholder())
            while not self._remote.ended and not self.quit_requested:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._remote.fresh.wait(), TICK)
                if self._remote.fresh.is_set() and self._remote.frame is not None:
                    self._remote.fresh.clear()
                    self._show(self._compose(self._remote.frame))
                    self.frames_shown += 1
                self._poll_keys()
        finally:
            for task in pullers:
                task.cancel()
            await asyncio.gather(*pullers, return_exceptions=True)
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)

    def _show(self, image: Image) -> None:
        cv2.imshow(self.title, image)

    def _poll_keys(self) -> None:
        key = cv2.waitKey(1) & 0xFF
        if key in QUIT_KEYS:
            self.quit_requested = True
            return
        if key != NO_KEY and self._on_key is not None:
            self._on_key(chr(key))
        try:
            visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE)
        except cv2.error:
            visible = 0
        if visible < 1:  # closed with the window manager's button
            self.quit_requested = True

    def _placeholder(self) -> Image:
        width, height = PLACEHOLDER_SIZE
        image = np.full((height, width, 3), 32, dtype=np.uint8)
        self._draw_overlay(image, Overlay(self._overlay().title, ["waiting for video..."]))
        return image

    def _compose(self, frame: VideoFrame) -> Image:
        image = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
        if self._local is not None and self._local.frame is not None:
            _inset(image, self._local.frame)
        self._draw_overlay(image, self._overlay())
        return image

    @staticmethod
    def _draw_overlay(image: Image, overlay: Overlay) -> None:
        """A translucent band at the bottom: the other user's name, then the figures."""
        height, width = image.shape[:2]
        scale = max(min(width / 960, 1.0), 0.4)
        line_height = int(26 * scale) + 6
        lines = [overlay.title, *overlay.lines]
        top = height - line_height * len(lines) - 8
        band = image[max(top, 0) :]
        band[:] = (band * 0.45).astype(np.uint8)
        for index, text in enumerate(lines):
            y = top + line_height * (index + 1)
            cv2.putText(
                image,
                text,
                (10, y),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.8 * scale if index else 1.0 * scale,
                (255, 255, 255),
                1 if index else 2,
                cv2.LINE_AA,
            )


def _inset(image: Image, local: VideoFrame) -> None:
    """Our own picture, small, in the top-right corner below the stamp strip."""
    height, width = image.shape[:2]
    inset_width = max(width // INSET_FRACTION, 16)
    inset_height = max(inset_width * local.height // max(local.width, 1), 16)
    if inset_height + 16 > height:
        return
    small = cv2.resize(
        local.to_ndarray(format="bgr24"), (inset_width, inset_height), interpolation=cv2.INTER_AREA
    )
    top = height // 10
    left = width - inset_width - 8
    image[top - 2 : top + inset_height + 2, left - 2 : left + inset_width + 2] = 255
    image[top : top + inset_height, left : left + inset_width] = small
