"""Pacing for tracks that make their own media: one frame every ``period`` seconds.

A source that generates frames (synthetic video, a tone, a file) must not run ahead
of real time, and must not drift when a frame is late: each deadline is derived from
the start, never from the previous frame.
"""

from __future__ import annotations

import asyncio
import fractions
import time


class MediaClock:
    """Hands out presentation timestamps at ``clock_rate`` ticks per second."""

    def __init__(self, clock_rate: int, period: float) -> None:
        self.clock_rate = clock_rate
        self.time_base = fractions.Fraction(1, clock_rate)
        self._ticks_per_frame = round(period * clock_rate)
        self._start: float | None = None
        self._pts = 0

    @property
    def period(self) -> float:
        return self._ticks_per_frame / self.clock_rate

    def pts_now(self) -> int:
        """The pts of this moment, for sources that set their own pace (a camera)."""
        now = time.monotonic()
        if self._start is None:
            self._start = now
        return round((now - self._start) * self.clock_rate)

    async def next_pts(self) -> int:
        """Wait until the next frame is due and return its pts (0 for the first)."""
        if self._start is None:
            self._start = time.monotonic()
            return 0
        self._pts += self._ticks_per_frame
        due = self._start + self._pts / self.clock_rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -1.0:
            # Far behind (the machine stalled): start over rather than burst frames out.
            self._start = time.monotonic() - self._pts / self.clock_rate
        return self._pts
