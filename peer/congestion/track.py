"""The video track the sender encodes when the link is tight: scaled and thinned.

It sits between the local video source and aiortc's sender. The congestion shell sets
the size and frame rate it should deliver (VideoAdaptation's steps); frames are scaled
before encoding and dropped to reach the frame rate, so the encoder spends its few bits
on fewer, smaller pictures.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack
from av import VideoFrame
from av.frame import Frame
from av.packet import Packet

SOURCE_FPS_SAMPLES = 5


@dataclass
class SentVideo:
    """What actually went to the encoder, for the stats line."""

    width: int | None = None
    height: int | None = None
    frames: int = 0
    dropped: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=128))  # monotonic

    def fps(self, now: float, window: float = 1.0) -> float:
        """Frames handed to the encoder over the last ``window`` seconds, per second."""
        return sum(1 for at in self.recent if at > now - window) / window


class AdaptedVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source
        self.size: tuple[int, int] | None = None  # None: the source's own
        self.fps: float | None = None  # None: every frame
        self.source_size: tuple[int, int] | None = None
        self.source_fps: float | None = None
        self.sent = SentVideo()
        self._first_times: list[float] = []
        self._next_due: float | None = None

    async def recv(self) -> Frame | Packet:
        while True:
            frame = await self.source.recv()
            if not isinstance(frame, VideoFrame) or frame.time is None:
                return frame
            self._learn_source(frame)
            if self._keep(frame.time):
                break
            self.sent.dropped += 1
        if self.size is not None and (frame.width, frame.height) != self.size:
            scaled = frame.reformat(width=self.size[0], height=self.size[1])
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
            frame = scaled
        self.sent.width, self.sent.height = frame.width, frame.height
        self.sent.frames += 1
        self.sent.recent.append(time.monotonic())
        return frame

    def stop(self) -> None:
        super().stop()
        self.source.stop()

    def _learn_source(self, frame: VideoFrame) -> None:
        self.source_size = (frame.width, frame.height)
        if self.source_fps is None and frame.time is not None:
            self._first_times.append(frame.time)
            if len(self._first_times) >= SOURCE_FPS_SAMPLES:
                span = self._first_times[-1] - self._first_times[0]
                self.source_fps = (len(self._first_times) - 1) / span if span > 0 else 30.0

    def _keep(self, at: float) -> bool:
        if self.fps is None or self._next_due is None:
            self._next_due = at
        if at + 0.002 < self._next_due:  # a little slack for capture-time jitter
            return False
        interval = 1.0 / self.fps if self.fps else 0.0
        # Keep the schedule, but never run more than one interval behind it.
        self._next_due = max(self._next_due + interval, at)
        return True
