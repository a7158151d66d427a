"""The GCC-like send-side bandwidth estimate. Skeleton: the body lands later."""

from __future__ import annotations

from .twcc import TransportFeedback


class SendSideEstimator:
    """Delay-based (trendline + AIMD) and loss-based estimates, combined as GCC does."""

    def __init__(self, *, start_bps: int, min_bps: int, max_bps: int) -> None:
        self._min_bps = min_bps
        self._max_bps = max_bps
        self._target_bps = start_bps

    def on_packet_sent(self, sequence: int, size_bytes: int, send_ms: float) -> None:
        """A packet carrying transport sequence ``sequence`` left at ``send_ms``."""
        raise NotImplementedError

    def on_feedback(self, feedback: TransportFeedback, now_ms: float) -> None:
        """Transport-wide feedback arrived at ``now_ms``."""
        raise NotImplementedError

    def on_remb(self, bps: int, now_ms: float) -> None:
        """A REMB receiver's estimate: an upper bound."""
        raise NotImplementedError

    def on_rtt(self, rtt_ms: float) -> None:
        """A round-trip time measured by the shell (RTCP sender/receiver reports)."""
        raise NotImplementedError

    def set_bounds(self, min_bps: int, max_bps: int) -> None:
        """Change the limits the target stays within."""
        raise NotImplementedError

    @property
    def target_bps(self) -> int:
        """The combined delay- and loss-based estimate, within bounds."""
        return self._target_bps

    def snapshot(self) -> dict[str, float | int | str | None]:
        """Figures for the stats line."""
        raise NotImplementedError
