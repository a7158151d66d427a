"""The acknowledged bitrate: what the receiver says actually arrived, per second.

Measured over a sliding window of arrival time, so it is the rate the path delivered,
not the rate the sender tried; a decrease aims just under it.
"""

from __future__ import annotations

from collections import deque
from typing import Final

WINDOW_MS: Final = 500.0


class AcknowledgedBitrate:
    """Bytes acknowledged in the last ``window_ms`` of arrival time, as bit/s."""

    def __init__(self, *, window_ms: float = WINDOW_MS) -> None:
        self.window_ms = window_ms
        self._arrivals: deque[tuple[float, int]] = deque()
        self._bytes = 0
        self._first_ms: float | None = None

    def add(self, arrival_ms: float, size_bytes: int) -> None:
        """One packet the receiver acknowledged (in arrival order)."""
        if self._first_ms is None:
            self._first_ms = arrival_ms
        if self._arrivals and arrival_ms < self._arrivals[-1][0]:
            arrival_ms = self._arrivals[-1][0]  # reordered: count it with the latest
        self._arrivals.append((arrival_ms, size_bytes))
        self._bytes += size_bytes
        horizon = arrival_ms - self.window_ms
        while self._arrivals and self._arrivals[0][0] <= horizon:
            self._bytes -= self._arrivals.popleft()[1]

    def reset(self) -> None:
        """Forget everything (the receiver's clock jumped)."""
        self._arrivals.clear()
        self._bytes = 0
        self._first_ms = None

    @property
    def bps(self) -> float | None:
        """The rate, once a whole window has been seen; None before."""
        if not self._arrivals or self._first_ms is None:
            return None
        if self._arrivals[-1][0] - self._first_ms < self.window_ms:
            return None
        return self._bytes * 8000 / self.window_ms
