"""A token bucket: at most ``rate`` messages per second on average, ``burst`` at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

_EPSILON: Final = 1e-9


@dataclass
class TokenBucket:
    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self._tokens = self.burst
        self._updated = self.clock()

    def allow(self) -> bool:
        """Take one token if there is one. A rate of 0 means unlimited."""
        if self.rate == 0:
            return True
        now = self.clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now
        # The tolerance absorbs float rounding: 0.02 s at 50/s must make a whole token.
        if self._tokens >= 1 - _EPSILON:
            self._tokens -= 1
            return True
        return False
