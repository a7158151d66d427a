"""What a receiver can tell about the video it gets: rate, gaps, freezes and, when the
sender's frames are stamped (:mod:`media.measure.stamp`), their capture-to-decoded latency."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from av import VideoFrame

from media.measure.stamp import luma_plane, read_stamp

FREEZE_GAP: Final = 0.200  # seconds without a new frame that a person sees as a freeze
LONG_FREEZE_GAP: Final = 0.500  # what the shaped-link lab and issue 13's targets count
BLACK_LUMA: Final = 24.0
FPS_WINDOW: Final = 2.0
LATENCY_SAMPLES: Final = 20_000
RECENT_WINDOW: Final = 1.0  # seconds of latency samples behind ``latency_recent_ms``
# A frame number this far from the last one is another numbering, not a lost or late
# frame: the sender switched sources (camera to screen and back) and its new source
# counts from its own start. 1000 frames is over 30 s at 30 fps.
NEW_NUMBERING_JUMP: Final = 1000


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class VideoReceiveMeter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.frames = 0
        self.width = 0
        self.height = 0
        self.black_frames = 0
        self.stamped_frames = 0
        self.repeated_frames = 0  # the same frame number again: the picture froze
        self.skipped_frames = 0  # frame numbers passed over (never arrived, or arrived late)
        self.out_of_order_frames = 0  # a frame number below one already shown: it went backwards
        self.numberings = 0  # sources whose stamps were seen (a switch starts a new numbering)
        self.freezes = 0
        self.long_freezes = 0
        self.long_freeze_seconds = 0.0
        self.longest_gap = 0.0
        self.last_frame_number: int | None = None
        self.first_frame_number: int | None = None
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._recent_latencies: deque[tuple[float, float]] = deque()  # (when, ms)
        self._first_at: float | None = None
        self._last_at: float | None = None
        self._recent: deque[float] = deque()

    def on_frame(self, frame: VideoFrame) -> None:
        now = self._clock()
        self.frames += 1
        self.width, self.height = frame.width, frame.height
        if self._last_at is not None:
            gap = now - self._last_at
            self.longest_gap = max(self.longest_gap, gap)
            if gap > FREEZE_GAP:
                self.freezes += 1
            if gap > LONG_FREEZE_GAP:
                self.long_freezes += 1
                self.long_freeze_seconds += gap
        if self._first_at is None:
            self._first_at = now
        self._last_at = now
        self._recent.append(now)
        while self._recent and self._recent[0] < now - FPS_WINDOW:
            self._recent.popleft()

        luma = luma_plane(frame)
        if float(luma[::8, ::8].mean()) < BLACK_LUMA:
            self.black_frames += 1
        stamp = read_stamp(luma)
        if stamp is None:
            return
        self.stamped_frames += 1
        latency = stamp.age_us() / 1000
        self.latencies_ms.append(latency)
        self._recent_latencies.append((now, latency))
        self._trim_recent(now)
        if self.first_frame_number is None:
            self.first_frame_number = stamp.frame_number
        previous = self.last_frame_number
        if previous is None or abs(stamp.frame_number - previous) >= NEW_NUMBERING_JUMP:
            self.numberings += 1
        else:
            if stamp.frame_number == previous:
                self.repeated_frames += 1
            elif stamp.frame_number < previous:
                self.out_of_order_frames += 1
                return  # the newest frame shown stays the reference for what follows
            elif stamp.frame_number > previous + 1:
                self.skipped_frames += stamp.frame_number - previous - 1
        self.last_frame_number = stamp.frame_number

    @property
    def fps(self) -> float | None:
        if len(self._recent) < 2:
            return None
        span = self._recent[-1] - self._recent[0]
        return (len(self._recent) - 1) / span if span > 0 else None

    @property
    def average_fps(self) -> float | None:
        if self._first_at is None or self._last_at is None or self.frames < 2:
            return None
        span = self._last_at - self._first_at
        return (self.frames - 1) / span if span > 0 else None

    def recent_latencies(self) -> list[float]:
        """The latencies of the frames decoded in the last :data:`RECENT_WINDOW` seconds."""
        self._trim_recent(self._clock())
        return [latency for _, latency in self._recent_latencies]

    def _trim_recent(self, now: float) -> None:
        while self._recent_latencies and self._recent_latencies[0][0] < now - RECENT_WINDOW:
            self._recent_latencies.popleft()

    def snapshot(self) -> dict[str, Any]:
        latencies = list(self.latencies_ms)
        recent = self.recent_latencies()
        return {
            "frames": self.frames,
            "fps": _round(self.fps),
            "average_fps": _round(self.average_fps),
            "width": self.width,
            "height": self.height,
            "black_frames": self.black_frames,
            "stamped_frames": self.stamped_frames,
            "first_frame_number": self.first_frame_number,
            "last_frame_number": self.last_frame_number,
            "repeated_frames": self.repeated_frames,
            "skipped_frames": self.skipped_frames,
            "out_of_order_frames": self.out_of_order_frames,
            "numberings": self.numberings,
            "freezes": self.freezes,
            "long_freezes": self.long_freezes,
            "long_freeze_ms": _round(self.long_freeze_seconds * 1000),
            "longest_gap_ms": _round(self.longest_gap * 1000),
            "latency_ms": {
                "p50": _round(percentile(latencies, 50)),
                "p95": _round(percentile(latencies, 95)),
                "p99": _round(percentile(latencies, 99)),
                "max": _round(max(latencies) if latencies else None),
            },
            "latency_recent_ms": {
                "p50": _round(percentile(recent, 50)),
                "p95": _round(percentile(recent, 95)),
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
