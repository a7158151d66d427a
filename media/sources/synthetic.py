"""Synthetic media for bots and measurements: a moving, stamped picture and a tone.

The video is built straight in yuv420p (no colour conversion per frame): diagonal
bars that scroll so a frozen picture is obvious, a large frame counter for people,
and the machine-readable stamp (:mod:`media.measure.stamp`) across the top. The capture time
is taken the moment the frame is handed to the sender.
"""

from __future__ import annotations

import math
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import VIDEO_CLOCK_RATE, MediaStreamError
from av import AudioFrame, VideoFrame

from media.measure.stamp import Stamp, capture_clock_us, stamp_height, write_stamp
from media.sources.clock import MediaClock

AUDIO_RATE: Final = 48000
AUDIO_PTIME: Final = 0.020
SCROLL_PIXELS_PER_FRAME: Final = 4


class SyntheticVideoTrack(MediaStreamTrack):
    """A moving test picture whose every frame carries its number and capture time."""

    kind = "video"

    def __init__(
        self, width: int = 640, height: int = 480, fps: float = 30.0, label: str = ""
    ) -> None:
        super().__init__()
        if width % 2 or height % 2:
            raise ValueError(f"synthetic video needs an even size, not {width}x{height}")
        self.width = width
        self.height = height
        self.label = label
        self._clock = MediaClock(VIDEO_CLOCK_RATE, 1 / fps)
        self._frame_number = 0
        self._bars = _scrolling_bars(width, height)
        self._chroma = _chroma_gradient(width, height)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._clock.next_pts()
        number = self._frame_number
        self._frame_number += 1
        yuv = np.empty((self.height * 3 // 2, self.width), dtype=np.uint8)
        offset = (number * SCROLL_PIXELS_PER_FRAME) % self.width
        luma = yuv[: self.height]
        luma[:] = self._bars[:, offset : offset + self.width]
        yuv[self.height :] = self._chroma
        self._draw_counter(luma, number)
        write_stamp(luma, Stamp(number, capture_clock_us()))
        frame = VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = self._clock.time_base
        return frame

    def _draw_counter(self, luma: npt.NDArray[np.uint8], number: int) -> None:
        text = f"{self.label} {number:06d}".strip()
        scale = max(self.width / 640, 0.3)
        thickness = max(int(3 * scale), 1)
        font, size = cv2.FONT_HERSHEY_SIMPLEX, 1.5 * scale
        (text_width, text_height), _ = cv2.getTextSize(text, font, size, thickness)
        origin = ((self.width - text_width) // 2, (self.height + text_height) // 2)
        top, bottom = origin[1] - text_height - 8, origin[1] + 8
        left, right = max(origin[0] - 8, 0), origin[0] + text_width + 8
        luma[max(top, stamp_height(self.width)) : bottom, left:right] = 16
        cv2.putText(luma, text, origin, font, size, 235, thickness, cv2.LINE_AA)


def _scrolling_bars(width: int, height: int) -> npt.NDArray[np.uint8]:
    """Diagonal bars twice the frame width, so any window of it is a full frame."""
    y, x = np.mgrid[0:height, 0 : 2 * width]
    period = max(width // 8, 8)
    phase = ((x + y) % period) / period
    return (60 + 140 * (0.5 + 0.5 * np.sin(2 * math.pi * phase))).astype(np.uint8)


def _chroma_gradient(width: int, height: int) -> npt.NDArray[np.uint8]:
    """U and V planes, packed as yuv420p stores them under the luma rows."""
    u = np.linspace(80, 176, width // 2, dtype=np.float32)[None, :].repeat(height // 2, 0)
    v = np.linspace(176, 80, height // 2, dtype=np.float32)[:, None].repeat(width // 2, 1)
    planes = np.concatenate([u.reshape(-1), v.reshape(-1)]).astype(np.uint8)
    return planes.reshape(height // 2, width)


class ToneTrack(MediaStreamTrack):
    """A sine tone, 48 kHz mono, in 20 ms frames."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.3) -> None:
        super().__init__()
        if not 20 <= frequency <= 20000:
            raise ValueError(f"tone frequency {frequency:g} Hz is outside 20-20000 Hz")
        self.frequency = frequency
        self._amplitude = int(amplitude * 32767)
        self._samples = int(AUDIO_RATE * AUDIO_PTIME)
        self._clock = MediaClock(AUDIO_RATE, AUDIO_PTIME)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._clock.next_pts()
        t = (pts + np.arange(self._samples)) / AUDIO_RATE
        samples = (self._amplitude * np.sin(2 * math.pi * self.frequency * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = pts
        frame.time_base = self._clock.time_base
        return frame
