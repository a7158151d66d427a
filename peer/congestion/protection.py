"""The protection share: what of the video target is kept from the encoder.

Retransmissions (NACK answers, RTX) and the keyframes that answer losses go through
the same link as the video. libwebrtc measures the rate its protection takes and gives
the encoder the rest. Here: a base reserve of ``BASE_RESERVE`` of the video target for
the keyframes, plus the retransmission rate the receiver asked for over the last
``WINDOW_MS`` (sent or dropped by the pacer: both were wanted), times
``RETRANSMISSION_MARGIN``; never more than ``1 - FLOOR_SHARE`` of the target, so
heavy loss does not starve the picture. On a clean link the encoder gets 95 % of the
target (a fixed 85 % before, which left 10-15 % of a clean link unused).
"""

from __future__ import annotations

from collections import deque
from typing import Final

BASE_RESERVE: Final = 0.05
RETRANSMISSION_MARGIN: Final = 1.25
FLOOR_SHARE: Final = 0.6
WINDOW_MS: Final = 2_000.0


class RetransmissionRate:
    """Bytes of retransmissions asked for over the last ``WINDOW_MS``, as bit/s."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()
        self._total = 0

    def add(self, now_ms: float, size_bytes: int) -> None:
        self._samples.append((now_ms, size_bytes))
        self._total += size_bytes
        self._expire(now_ms)

    def bps(self, now_ms: float) -> float:
        self._expire(now_ms)
        return self._total * 8000 / WINDOW_MS

    def _expire(self, now_ms: float) -> None:
        while self._samples and self._samples[0][0] < now_ms - WINDOW_MS:
            self._total -= self._samples.popleft()[1]


def protection_bps(video_bps: int, retransmission_bps: float) -> int:
    """How much of ``video_bps`` the encoder leaves for retransmissions and keyframes."""
    wanted = BASE_RESERVE * video_bps + RETRANSMISSION_MARGIN * retransmission_bps
    return int(min(wanted, (1 - FLOOR_SHARE) * video_bps))
