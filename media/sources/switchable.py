"""A local track whose source can be turned off, on, or replaced while a call runs.

The call's senders keep this one track for the whole call, so nothing is
renegotiated: turning a source off stops it (the camera or microphone is released)
and black frames at a trickle, or silence, go out instead; turning it on opens the
source again (in a thread: opening a camera blocks) and its frames follow. This is
RTCRtpSender.replaceTrack done one level down, where every subscriber of the
relay (each call's sender, the window's preview) sees the change at once.

Every frame is stamped here: the receiver sees one stream whose timestamps only
go forward, whichever source made the frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
from collections.abc import Callable
from typing import Final

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import VIDEO_CLOCK_RATE, MediaStreamError
from av import AudioFrame, VideoFrame

from media.sources.clock import MediaClock

logger = logging.getLogger(__name__)

OFF_VIDEO_FPS: Final = 2.0  # black at a trickle: the receiver's picture turns black
AUDIO_RATE: Final = 48000
AUDIO_PTIME: Final = 0.020
AUDIO_TIME_BASE: Final = fractions.Fraction(1, AUDIO_RATE)

Opener = Callable[[str], MediaStreamTrack | None]


class BlackTrack(MediaStreamTrack):
    """Black frames of a given size at ``fps``."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: float = OFF_VIDEO_FPS) -> None:
        super().__init__()
        self._clock = MediaClock(VIDEO_CLOCK_RATE, 1 / fps)
        yuv = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
        yuv[:height] = 16
        self._yuv = yuv

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._clock.next_pts()
        frame = VideoFrame.from_ndarray(self._yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = self._clock.time_base
        return frame


class SilenceTrack(MediaStreamTrack):
    """20 ms frames of 48 kHz mono silence (Opus packs them into a few bytes each)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._clock = MediaClock(AUDIO_RATE, AUDIO_PTIME)
        self._samples = np.zeros((1, int(AUDIO_RATE * AUDIO_PTIME)), dtype=np.int16)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._clock.next_pts()
        frame = AudioFrame.from_ndarray(self._samples, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = pts
        frame.time_base = self._clock.time_base
        return frame


class SwitchableTrack(MediaStreamTrack):
    """Frames of the current source, or of the filler while the source is off.

    ``opener(spec)`` makes a source track (blocking; run in a thread) or raises
    MediaSourceError/ValueError, which ``switch_to`` passes on, the current source
    then staying as it was.
    """

    def __init__(
        self,
        kind: str,
        opener: Opener,
        source: MediaStreamTrack | None,
        spec: str,
        *,
        size: tuple[int, int] = (640, 480),
    ) -> None:
        super().__init__()
        if kind not in ("audio", "video"):
            raise ValueError(f"kind must be audio or video, not {kind!r}")
        self.kind = kind
        self._opener = opener
        self._source = source
        self.spec: str | None = spec if source is not None else None
        self._filler: MediaStreamTrack | None = None
        self._size = size
        self._changed = asyncio.Event()
        self._generation = 0
        self._clock = MediaClock(VIDEO_CLOCK_RATE, 1 / 30)
        self._last_pts = -1
        self._samples_sent = 0

    @property
    def is_on(self) -> bool:
        return self._source is not None

    async def switch_to(self, spec: str | None) -> None:
        """Send from a new source (``spec``), or nothing but filler (None)."""
        self._generation += 1
        generation = self._generation
        if spec is None:
            self._use(None, None)
            return
        source = await asyncio.to_thread(self._opener, spec)
        if generation != self._generation or self.readyState != "live":
            if source is not None:  # another switch came first: this one is stale
                source.stop()
            return
        self._use(source, spec)

    def _use(self, source: MediaStreamTrack | None, spec: str | None) -> None:
        old, self._source, self.spec = self._source, source, spec
        if old is not None and old is not source:
            old.stop()  # releases the device: the camera light goes off
        if source is not None and self._filler is not None:
            self._filler.stop()
            self._filler = None
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _current(self) -> MediaStreamTrack:
        if self._source is not None:
            return self._source
        if self._filler is None:
            self._filler = SilenceTrack() if self.kind == "audio" else BlackTrack(*self._size)
        return self._filler

    async def recv(self) -> AudioFrame | VideoFrame:
        while self.readyState == "live":
            track = self._current()
            changed = self._changed
            frame_wait = asyncio.ensure_future(track.recv())
            change_wait = asyncio.ensure_future(changed.wait())
            await asyncio.wait({frame_wait, change_wait}, return_when=asyncio.FIRST_COMPLETED)
            change_wait.cancel()
            if not frame_wait.done():
                frame_wait.cancel()
                with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                    await frame_wait
                continue
            try:
                frame = frame_wait.result()
            except MediaStreamError:
                if track is self._source:  # the source ended by itself (a file, a camera gone)
                    logger.info("the %s source %s ended", self.kind, self.spec)
                    self._use(None, None)
                continue
            assert isinstance(frame, AudioFrame | VideoFrame)
            self._stamp(frame)
            return frame
        raise MediaStreamError

    def _stamp(self, frame: AudioFrame | VideoFrame) -> None:
        if isinstance(frame, AudioFrame):
            # Audio timestamps count samples (48 kHz ticks whatever the source's rate).
            frame.pts = self._samples_sent
            frame.time_base = AUDIO_TIME_BASE
            self._samples_sent += frame.samples * AUDIO_RATE // max(frame.sample_rate, 1)
            return
        if self._source is not None:
            self._size = (frame.width, frame.height)
        pts = max(self._clock.pts_now(), self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = self._clock.time_base

    def stop(self) -> None:
        super().stop()
        for track in (self._source, self._filler):
            if track is not None:
                track.stop()
        self._changed.set()
