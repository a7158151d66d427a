"""How long a received stream's packets are queueing on the way here, right now.

The round trip the peer reads from RTCP comes once a second and from the least-loaded
moments; a retransmission asked for while the sender's link queues waits behind that
queue. On the ``weak`` lab link a packet was asked for three times and came back after
the receive path had given it up (RTCP round trip 55 ms, the queue then 200 ms), and a
keyframe request froze the picture for 0.6 s. So the receiver measures the queue
itself, as the delay-based estimators do: each new packet's arrival time minus its
RTP timestamp (the capture clock) is its one-way delay plus a constant offset; the
least of those over ``BASE_WINDOW_MS`` is the empty-queue delay, and the most over the
last ``RECENT_MS`` above it is the queue now (sans-I/O: timestamps and times in).
"""

from __future__ import annotations

from collections import deque
from typing import Final

TIMESTAMP_MODULO: Final = 1 << 32
BASE_WINDOW_MS: Final = 10_000.0
RECENT_MS: Final = 1_000.0


class ArrivalQueue:
    """The queueing delay of one RTP stream, from its new packets' arrivals."""

    def __init__(self, clock_rate: int = 90_000) -> None:
        self._ticks_per_ms = clock_rate / 1000
        self._last_timestamp: int | None = None
        self._extended = 0  # unwrapped RTP timestamp of the last packet
        # (arrival_ms, offset_ms), offsets increasing: the window's least at the front.
        self._lows: deque[tuple[float, float]] = deque()
        # (arrival_ms, offset_ms), offsets decreasing: the recent most at the front.
        self._highs: deque[tuple[float, float]] = deque()

    def on_packet(self, timestamp: int, arrival_ms: float) -> None:
        """A new (not retransmitted) packet with RTP ``timestamp`` arrived."""
        if self._last_timestamp is not None:
            step = (timestamp - self._last_timestamp) % TIMESTAMP_MODULO
            if step >= TIMESTAMP_MODULO // 2:
                step -= TIMESTAMP_MODULO
            self._extended += step
        self._last_timestamp = timestamp
        offset = arrival_ms - self._extended / self._ticks_per_ms
        while self._lows and self._lows[-1][1] >= offset:
            self._lows.pop()
        self._lows.append((arrival_ms, offset))
        while self._highs and self._highs[-1][1] <= offset:
            self._highs.pop()
        self._highs.append((arrival_ms, offset))
        self._expire(arrival_ms)

    def queue_ms(self, now_ms: float) -> float:
        """The most any packet of the last ``RECENT_MS`` waited over the least (0: none)."""
        self._expire(now_ms)
        if not self._lows or not self._highs:
            return 0.0
        return max(self._highs[0][1] - self._lows[0][1], 0.0)

    def _expire(self, now_ms: float) -> None:
        while len(self._lows) > 1 and self._lows[0][0] < now_ms - BASE_WINDOW_MS:
            self._lows.popleft()
        while self._highs and self._highs[0][0] < now_ms - RECENT_MS:
            self._highs.popleft()
