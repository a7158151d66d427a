"""Reading measurements back out of received media."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def dominant_frequency(samples: npt.NDArray[np.floating], sample_rate: int) -> float:
    """The strongest frequency in ``samples`` (Hz), interpolated between FFT bins."""
    if samples.size < 16:
        raise ValueError("need at least 16 samples to find a frequency")
    signal = samples - samples.mean()
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    peak = int(np.argmax(spectrum[1:])) + 1
    # Parabolic interpolation over the peak and its neighbours refines the bin.
    if 1 <= peak < spectrum.size - 1:
        left, centre, right = spectrum[peak - 1 : peak + 2]
        denominator = left - 2 * centre + right
        offset = 0.5 * (left - right) / denominator if denominator else 0.0
    else:
        offset = 0.0
    return float((peak + offset) * sample_rate / signal.size)
