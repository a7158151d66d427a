"""The application-limited region (ALR): the sender uses clearly less than its estimate.

A probe is worth its cost only when what is sent says nothing about the link: while
the encoder fills the estimate, the delay and loss signals already tell whether the
link carries it, and on a token-bucket link (the lab's ``tbf``) a short probe cluster
passes at line rate and is misread as a faster link (385-412 kbit/s read on a 300
kbit/s link, each jump cut again within a second). Once the encoder sends well under
the estimate (a still picture, a frame-rate cap, a ceiling below the link), nothing
but a probe can show that the link has room, so GCC probes then.

:class:`AlrDetector` keeps a budget that fills at ``USAGE_RATIO`` x the estimate and
that every byte sent empties, bounded at ``WINDOW_MS`` worth of that rate either way
(so neither a long pause nor a burst counts for more than half a second). The sender
is in ALR from when the budget is over ``START_LEVEL`` of its bound until it falls
under ``STOP_LEVEL``: a sender that filled its estimate enters after sending at
30 % of it for about 1.7 s (at nothing, 0.65 s), and leaves after sending at the
estimate for a few hundred ms.
"""

from __future__ import annotations

from typing import Final

USAGE_RATIO: Final = 0.65
START_LEVEL: Final = 0.8
STOP_LEVEL: Final = 0.5
WINDOW_MS: Final = 500.0
_BITS_PER_BYTE_MS: Final = 8_000


class AlrDetector:
    """Feed it every packet sent and the estimate; ``started_ms`` says whether and since
    when the sender is application-limited."""

    def __init__(self, estimate_bps: float) -> None:
        self.started_ms: float | None = None  # None: not in ALR
        self.ended_ms: float | None = None  # when the last ALR period ended
        self.periods = 0
        self._rate_bps = 0.0
        self._budget_bytes = 0.0
        self._last_ms: float | None = None
        self.set_estimate(estimate_bps)

    @property
    def in_alr(self) -> bool:
        return self.started_ms is not None

    @property
    def level(self) -> float:
        """The unused budget as a share of its bound, -1 (over-sending) to 1 (idle)."""
        bound = self._bound_bytes()
        return self._budget_bytes / bound if bound > 0 else 0.0

    def set_estimate(self, estimate_bps: float) -> None:
        self._rate_bps = max(estimate_bps, 0.0) * USAGE_RATIO
        bound = self._bound_bytes()
        self._budget_bytes = min(max(self._budget_bytes, -bound), bound)

    def on_sent(self, size_bytes: int, now_ms: float) -> None:
        """``size_bytes`` left at ``now_ms`` (media, retransmission, padding or audio)."""
        bound = self._bound_bytes()
        if self._last_ms is not None and now_ms > self._last_ms:
            earned = (now_ms - self._last_ms) * self._rate_bps / _BITS_PER_BYTE_MS
            self._budget_bytes = min(self._budget_bytes + earned, bound)
        if self._last_ms is None or now_ms > self._last_ms:
            self._last_ms = now_ms
        self._budget_bytes = max(self._budget_bytes - size_bytes, -bound)
        level = self.level
        if self.started_ms is None and level > START_LEVEL:
            self.started_ms = now_ms
            self.periods += 1
        elif self.started_ms is not None and level < STOP_LEVEL:
            self.started_ms = None
            self.ended_ms = now_ms

    def _bound_bytes(self) -> float:
        return self._rate_bps * WINDOW_MS / _BITS_PER_BYTE_MS
