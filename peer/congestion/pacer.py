"""Pacing budget and send queue. Skeleton: the body lands later."""

from __future__ import annotations


class PacingBudget:
    """How long a packet must wait so no burst exceeds ``rate x burst_ms``."""

    def __init__(self, rate_bps: int, *, burst_ms: float = 5.0) -> None:
        self.rate_bps = rate_bps
        self.burst_ms = burst_ms

    def set_rate(self, rate_bps: int) -> None:
        """Change the pacing rate."""
        raise NotImplementedError

    def delay_until_send(self, size_bytes: int, now_ms: float) -> float:
        """Milliseconds to wait before ``size_bytes`` may go (0: now)."""
        raise NotImplementedError

    def on_sent(self, size_bytes: int, now_ms: float) -> None:
        """``size_bytes`` left at ``now_ms``."""
        raise NotImplementedError
