"""The loss-based bitrate: GCC's rule on the fraction of packets the receiver missed.

Loss is measured over at least 20 packets and 500 ms of feedback, so a random loss or
two in a small batch does not read as 10 %. At or below 2 % loss the bitrate may grow
8 % a second, and 5 s after its last cut it steps aside for the delay-based one (it
never goes above that: it only ever lowers the target); 2-10 % holds it; above 10 % it
is cut to ``(1 - loss / 2)`` of itself, at most once per 300 ms + RTT so the cut can
take effect before the next.
"""

from __future__ import annotations

from typing import Final

LOW_LOSS: Final = 0.02
HIGH_LOSS: Final = 0.10
GROWTH_PER_SECOND: Final = 1.08
MIN_GROWTH_BPS_PER_SECOND: Final = 1_000
MIN_PACKETS: Final = 20
MIN_INTERVAL_MS: Final = 500.0
DECREASE_INTERVAL_MS: Final = 300.0
MAX_GROWTH_STEP_MS: Final = 1_000.0
RECOVERED_AFTER_MS: Final = 5_000.0


class LossBasedController:
    """Tracks the loss fraction and the bitrate it allows."""

    def __init__(self, *, start_bps: int) -> None:
        self.bitrate_bps = float(start_bps)
        self.loss_fraction = 0.0
        self.decreases = 0
        self._expected = 0
        self._lost = 0
        self._measured_ms: float | None = None
        self._updated_ms: float | None = None
        self._decreased_ms: float | None = None

    def on_packets(self, expected: int, lost: int) -> None:
        """Feedback covered ``expected`` packets, ``lost`` of them missing (may be negative:
        packets reported lost earlier that arrived after all)."""
        self._expected += expected
        self._lost += lost

    def update(self, now_ms: float, ceiling_bps: float, rtt_ms: float) -> float:
        """The loss-based bitrate now, never above ``ceiling_bps``."""
        fresh = False
        if self._measured_ms is None:
            self._measured_ms = now_ms
        if self._expected >= MIN_PACKETS and now_ms - self._measured_ms >= MIN_INTERVAL_MS:
            self.loss_fraction = min(max(self._lost / self._expected, 0.0), 1.0)
            self._expected = self._lost = 0
            self._measured_ms = now_ms
            fresh = True
        elapsed_ms = 0.0 if self._updated_ms is None else max(now_ms - self._updated_ms, 0.0)
        self._updated_ms = now_ms
        if self.loss_fraction <= LOW_LOSS:
            if self._decreased_ms is None or now_ms - self._decreased_ms >= RECOVERED_AFTER_MS:
                self.bitrate_bps = ceiling_bps  # loss has nothing to say: the delay rules
            step_s = min(elapsed_ms, MAX_GROWTH_STEP_MS) / 1000
            grown = self.bitrate_bps * GROWTH_PER_SECOND**step_s
            self.bitrate_bps = max(grown, self.bitrate_bps + MIN_GROWTH_BPS_PER_SECOND * step_s)
        elif self.loss_fraction > HIGH_LOSS and fresh and self._may_decrease(now_ms, rtt_ms):
            self.bitrate_bps *= 1 - 0.5 * self.loss_fraction
            self._decreased_ms = now_ms
            self.decreases += 1
        self.bitrate_bps = min(self.bitrate_bps, ceiling_bps)
        return self.bitrate_bps

    def set_bitrate(self, bitrate_bps: float) -> None:
        """A probe showed the link carries ``bitrate_bps`` (GCC sets both estimates)."""
        self.bitrate_bps = bitrate_bps

    def _may_decrease(self, now_ms: float, rtt_ms: float) -> bool:
        return (
            self._decreased_ms is None
            or now_ms - self._decreased_ms >= DECREASE_INTERVAL_MS + rtt_ms
        )
