"""How loud received audio is: RMS over the last half second, in dBFS (pure).

A receiver tells a muted partner (silence) from a speaking one with it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

import numpy as np
from av import AudioFrame

WINDOW_FRAMES: Final = 25  # 0.5 s of 20 ms frames
SILENCE_DBFS: Final = -120.0  # what digital zero reports (log of 0 has no value)


class AudioLevel:
    def __init__(self, window: int = WINDOW_FRAMES) -> None:
        self._energies: deque[tuple[float, int]] = deque(maxlen=window)

    def on_frame(self, frame: AudioFrame) -> None:
        samples = frame.to_ndarray().astype(np.float64)
        if frame.format.name.startswith("s16"):
            samples /= 32768.0
        elif frame.format.name.startswith("s32"):
            samples /= 2147483648.0
        self._energies.append((float(np.square(samples).sum()), int(samples.size)))

    @property
    def dbfs(self) -> float | None:
        """None before any audio; SILENCE_DBFS for digital silence."""
        count = sum(n for _, n in self._energies)
        if not count:
            return None
        mean_square = sum(e for e, _ in self._energies) / count
        if mean_square <= 0:
            return SILENCE_DBFS
        return round(max(10 * math.log10(mean_square), SILENCE_DBFS), 1)
