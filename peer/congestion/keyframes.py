"""Keyframe request (PLI) throttle.

A receiver that loses a frame asks for a keyframe. On a congested link the keyframe
is large, takes long to arrive and is itself damaged, and every further request makes
the sender start another one: the link fills with keyframes that never complete. One
request per round trip (and at most two a second) gives each keyframe time to land.
"""

from __future__ import annotations

from typing import Final

MIN_INTERVAL_MS: Final = 500.0


class KeyframeRequestThrottle:
    """At most one keyframe request per max(RTT, 500 ms)."""

    def __init__(self, *, min_interval_ms: float = MIN_INTERVAL_MS) -> None:
        self.min_interval_ms = min_interval_ms
        self.allowed = 0
        self.suppressed = 0
        self._last_ms: float | None = None

    def allow(self, now_ms: float, rtt_ms: float | None) -> bool:
        """Whether a keyframe request may go now; counts the ones it holds back."""
        interval = max(rtt_ms or 0.0, self.min_interval_ms)
        if self._last_ms is not None and 0 <= now_ms - self._last_ms < interval:
            self.suppressed += 1
            return False
        self._last_ms = now_ms
        self.allowed += 1
        return True
