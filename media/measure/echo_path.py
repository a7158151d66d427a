"""A simulated room for measuring echo cancellation, with no device in the loop.

The speaker's output reaches the microphone late, quieter and coloured (an
:class:`EchoPath`), and adds to a near-end voice and some room noise. Both voices
are synthetic but speech-like: a gliding pitch with falling harmonics, chopped into
syllables, so noise suppression treats them as speech rather than as a steady tone.

:func:`measure` plays a fixed script through an :class:`~media.audio_processing.AudioProcessor`:

- far end alone for ``converge + settle`` seconds: the echo return loss enhancement
  (ERLE) is the echo's level in the microphone over what is left in the output;
- both talking: the near end's level in the output against its level going in;
- near end alone: the same, with no echo to confuse the canceller.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from media.audio_processing import BLOCK_SAMPLES, PROCESSING_RATE, AudioProcessor

Signal = npt.NDArray[np.float64]

RATE: Final = PROCESSING_RATE
WINDOW_SECONDS: Final = 0.5  # the resolution of the convergence curve


@dataclass(frozen=True)
class EchoPath:
    """Speaker to microphone: a delay, a loss and a short room response (FIR taps)."""

    delay_ms: float = 60.0
    gain_db: float = -6.0
    taps: tuple[float, ...] = (1.0, 0.0, 0.45, 0.0, 0.0, -0.25, 0.0, 0.0, 0.0, 0.12)
    tap_spacing_ms: float = 1.5

    def apply(self, played: Signal) -> Signal:
        response = np.zeros(round((len(self.taps) - 1) * self.tap_spacing_ms * RATE / 1000) + 1)
        for index, tap in enumerate(self.taps):
            response[round(index * self.tap_spacing_ms * RATE / 1000)] += tap
        response *= 10 ** (self.gain_db / 20) / max(np.sqrt(np.sum(response**2)), 1e-12)
        delayed = np.concatenate((np.zeros(round(self.delay_ms * RATE / 1000)), played))
        return np.convolve(delayed, response)[: played.size]


def speech_like(seconds: float, seed: int, pitch_hz: float, level_db: float = -20.0) -> Signal:
    """A voice-like signal at ``level_db`` dBFS (RMS while talking)."""
    rng = np.random.default_rng(seed)
    count = int(seconds * RATE)
    t = np.arange(count) / RATE
    # Intonation: the pitch wanders slowly around pitch_hz.
    knots = int(seconds * 3) + 2
    wander = np.interp(t, np.linspace(0, seconds, knots), rng.uniform(0.8, 1.25, knots))
    phase = 2 * np.pi * np.cumsum(pitch_hz * wander) / RATE
    voice = np.zeros(count)
    for harmonic in range(1, 30):
        if harmonic * pitch_hz * 1.25 > 7000:
            break
        # Formant-ish colouring: strong below 1 kHz, a bump near 2.5 kHz.
        frequency = harmonic * pitch_hz
        weight = 1 / harmonic + 0.3 * math.exp(-(((frequency - 2500) / 600) ** 2))
        voice += weight * np.sin(harmonic * phase + rng.uniform(0, 2 * np.pi))
    voice += 0.05 * rng.standard_normal(count)  # breath
    # Syllables of 120-300 ms with short gaps, as in running speech.
    envelope = np.zeros(count)
    position = 0
    while position < count:
        length = int(rng.uniform(0.12, 0.3) * RATE)
        gap = int(rng.uniform(0.03, 0.12) * RATE)
        end = min(position + length, count)
        envelope[position:end] = np.hanning(length)[: end - position] ** 0.5
        position = end + gap
    voice *= envelope
    talking = envelope > 0.1
    return voice * 10 ** (level_db / 20) / _rms(voice[talking])


def room_noise(seconds: float, seed: int, level_db: float = -60.0) -> Signal:
    noise = np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    return noise * 10 ** (level_db / 20) / _rms(noise)


def level_db(signal: Signal) -> float:
    return 20 * math.log10(max(_rms(signal), 1e-10))


def _rms(signal: Signal) -> float:
    return float(np.sqrt(np.mean(np.square(signal)))) if signal.size else 0.0


def _to_int16(signal: Signal) -> npt.NDArray[np.int16]:
    return np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)


@dataclass
class EchoReport:
    path: EchoPath
    erle_db: float  # after convergence, far end alone: echo in over what is left out
    erle_curve_db: list[float] = field(default_factory=list)  # per WINDOW_SECONDS from 0
    converged_after_s: float | None = None  # first window from which ERLE stays >= target
    # The near end's level in the output while both talk, against the same near end
    # through the same chain with the far end silent: what double talk costs it.
    near_in_double_talk_db: float = 0.0
    near_gain_db: float = 0.0  # the chain's own gain on the near end (gain control)
    cpu_ms_per_s: float = 0.0  # module CPU time per second of call audio (both sides)


def measure(
    path: EchoPath,
    make_processor: Callable[[], AudioProcessor],
    *,
    converge_s: float = 2.0,
    settle_s: float = 2.0,
    double_talk_s: float = 3.0,
    near_alone_s: float = 2.0,
    target_db: float = 25.0,
    far_level_db: float = -18.0,
    near_level_db: float = -20.0,
    delay_hint_ms: float | None = None,
    seed: int = 1,
) -> EchoReport:
    """Play the script through a processor (and the near end alone through another).

    The module is told the path's delay unless ``delay_hint_ms`` says otherwise (a
    device's reported latency is only an estimate too).
    """
    far_s = converge_s + settle_s
    total = far_s + double_talk_s + near_alone_s
    far = speech_like(far_s + double_talk_s, seed, pitch_hz=120.0, level_db=far_level_db)
    far = np.concatenate((far, np.zeros(int(total * RATE) - far.size)))
    near_start = int(far_s * RATE)
    near = np.zeros(far.size)
    near[near_start:] = speech_like(total - far_s, seed + 1, pitch_hz=210.0, level_db=near_level_db)
    # The far end goes to the "speaker" as int16, exactly what the module is told about.
    played = _to_int16(far)
    echo = path.apply(played.astype(np.float64) / 32767)
    noise = room_noise(total, seed + 2)
    delay_ms = path.delay_ms if delay_hint_ms is None else delay_hint_ms
    processor = make_processor()
    out = _run(processor, delay_ms, played, _to_int16(echo + near + noise))
    cpu = processor.counters.cpu_seconds
    reference = _run(make_processor(), delay_ms, np.zeros_like(played), _to_int16(near + noise))

    window = int(WINDOW_SECONDS * RATE)
    curve = [
        level_db(echo[s : s + window]) - level_db(out[s : s + window])
        for s in range(0, near_start - window + 1, window)
    ]
    converged_after = next(
        (
            index * WINDOW_SECONDS
            for index in range(len(curve))
            if all(value >= target_db for value in curve[index:])
        ),
        None,
    )
    settled = slice(int(converge_s * RATE), near_start)
    double_talk = slice(near_start, int((far_s + double_talk_s) * RATE))
    return EchoReport(
        path=path,
        erle_db=level_db(echo[settled]) - level_db(out[settled]),
        erle_curve_db=curve,
        converged_after_s=converged_after,
        near_in_double_talk_db=level_db(out[double_talk]) - level_db(reference[double_talk]),
        near_gain_db=level_db(reference[double_talk]) - level_db(near[double_talk]),
        cpu_ms_per_s=1000 * cpu / total,
    )


def _run(
    processor: AudioProcessor,
    delay_ms: float,
    played: npt.NDArray[np.int16],
    microphone: npt.NDArray[np.int16],
) -> Signal:
    """Both sides in step, block by block, as a speaker and a microphone would go."""
    processor.set_delay_ms(delay_ms)
    out = np.zeros(microphone.size, dtype=np.float64)
    for start in range(0, microphone.size - BLOCK_SAMPLES + 1, BLOCK_SAMPLES):
        block = slice(start, start + BLOCK_SAMPLES)
        processor.far_end(played[block])
        out[block] = processor.near_end(microphone[block]) / 32767
    return out


# Three rooms across the delays a laptop's speaker-to-microphone path shows.
ROOMS: Final = (
    EchoPath(delay_ms=40.0, gain_db=-6.0),
    EchoPath(delay_ms=80.0, gain_db=-10.0, taps=(0.6, 1.0, 0.0, 0.5, 0.0, 0.0, -0.3, 0.2)),
    EchoPath(
        delay_ms=120.0,
        gain_db=-3.0,
        taps=(1.0, 0.0, 0.0, 0.7, 0.0, -0.4, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0, -0.15),
        tap_spacing_ms=2.0,
    ),
)
