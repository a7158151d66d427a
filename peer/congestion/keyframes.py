"""Keyframe request (PLI) throttle. Skeleton: the body lands later."""

from __future__ import annotations


class KeyframeRequestThrottle:
    """At most one keyframe request per max(RTT, 500 ms)."""

    def __init__(self) -> None:
        self.suppressed = 0

    def allow(self, now_ms: float, rtt_ms: float | None) -> bool:
        """Whether a keyframe request may go now; counts the ones it holds back."""
        raise NotImplementedError
