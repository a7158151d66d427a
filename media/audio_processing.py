"""Echo cancellation, noise suppression and gain control for the microphone.

WebRTC's audio processing module (through ``livekit.rtc.AudioProcessingModule``)
sits between the speaker and the microphone of one process: the speaker hands it
the far end exactly as it goes to the device (:meth:`AudioProcessor.far_end`), the
microphone passes every captured block through :meth:`AudioProcessor.near_end`.
Both sides work on 10 ms blocks of 48 kHz mono int16, the module's unit. No device
is touched here: tests and the benchmark drive it with arrays.

The two sides run on different threads (the speaker's writer and the microphone's
reader); a lock keeps their calls into the module one at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

PROCESSING_RATE: Final = 48000
BLOCK_SAMPLES: Final = PROCESSING_RATE // 100  # 10 ms: the only size the module takes
# Before the devices report their latencies: a typical output + input buffer.
DEFAULT_DELAY_MS: Final = 60
MAX_DELAY_MS: Final = 500

Samples = npt.NDArray[np.int16]


class AudioProcessingUnavailable(RuntimeError):
    """The audio processing library is missing or refuses to start."""


@dataclass
class ProcessingCounters:
    """What the module has done, for the stats line and the benchmark."""

    far_blocks: int = 0
    near_blocks: int = 0
    cpu_seconds: float = 0.0  # thread CPU time spent inside the module, both sides

    @property
    def audio_seconds(self) -> float:
        return self.near_blocks * BLOCK_SAMPLES / PROCESSING_RATE


class AudioProcessor:
    """One call's echo canceller, noise suppressor and gain control."""

    def __init__(
        self,
        *,
        echo_cancellation: bool = True,
        noise_suppression: bool = True,
        gain_control: bool = True,
        high_pass_filter: bool = True,
    ) -> None:
        try:
            from livekit import rtc
        except ImportError as exc:
            raise AudioProcessingUnavailable(
                f"audio processing needs the livekit package ({exc}); "
                "--no-audio-processing goes without"
            ) from exc
        self._rtc = rtc
        self._module = rtc.AudioProcessingModule(
            echo_cancellation=echo_cancellation,
            noise_suppression=noise_suppression,
            high_pass_filter=high_pass_filter,
            auto_gain_control=gain_control,
        )
        self.echo_cancellation = echo_cancellation
        self._lock = threading.Lock()
        self._far_pending = np.zeros(0, dtype=np.int16)
        self._delay_ms = DEFAULT_DELAY_MS
        self._latency_ms = {"input": 0.0, "output": 0.0}
        self.counters = ProcessingCounters()

    @property
    def delay_ms(self) -> int:
        return self._delay_ms

    def set_delay_ms(self, delay_ms: float) -> None:
        """The time from :meth:`far_end` to the microphone block carrying its echo."""
        self._delay_ms = int(min(max(delay_ms, 0), MAX_DELAY_MS))

    def set_input_latency_ms(self, latency_ms: float) -> None:
        """What the microphone's driver reports; with the speaker's, the delay estimate."""
        self._set_latency("input", latency_ms)

    def set_output_latency_ms(self, latency_ms: float) -> None:
        self._set_latency("output", latency_ms)

    def _set_latency(self, side: str, latency_ms: float) -> None:
        self._latency_ms[side] = latency_ms
        if all(self._latency_ms.values()):
            # Sound leaves the speaker one output buffer after it is handed over and
            # reaches process_stream one input buffer after it enters the microphone.
            self.set_delay_ms(sum(self._latency_ms.values()))
            logger.info("echo delay estimate %d ms", self._delay_ms)

    def far_end(self, samples: Samples) -> None:
        """What is about to be played, in order; any length (kept until 10 ms are whole)."""
        pending = np.concatenate((self._far_pending, _mono_int16(samples)))
        whole = pending.size - pending.size % BLOCK_SAMPLES
        for start in range(0, whole, BLOCK_SAMPLES):
            self._run(
                self._module.process_reverse_stream, pending[start : start + BLOCK_SAMPLES], False
            )
            self.counters.far_blocks += 1
        self._far_pending = pending[whole:].copy()

    def near_end(self, samples: Samples) -> Samples:
        """``samples`` (whole 10 ms blocks) with the echo and noise taken out."""
        block = _mono_int16(samples)
        if block.size % BLOCK_SAMPLES:
            raise ValueError(
                f"the microphone side takes whole 10 ms blocks ({BLOCK_SAMPLES} samples), "
                f"not {block.size}"
            )
        out = np.empty_like(block)
        for start in range(0, block.size, BLOCK_SAMPLES):
            out[start : start + BLOCK_SAMPLES] = self._run(
                self._module.process_stream, block[start : start + BLOCK_SAMPLES], True
            )
            self.counters.near_blocks += 1
        return out

    def _run(self, process: object, block: Samples, near: bool) -> Samples:
        frame = self._rtc.AudioFrame(bytearray(block.tobytes()), PROCESSING_RATE, 1, BLOCK_SAMPLES)
        with self._lock:
            started = time.thread_time()
            if near and self.echo_cancellation:
                # The module wants the delay before every capture block when it cancels echo.
                self._module.set_stream_delay_ms(self._delay_ms)
            assert callable(process)
            process(frame)
            self.counters.cpu_seconds += time.thread_time() - started
        return np.frombuffer(frame.data, dtype=np.int16).copy()


def _mono_int16(samples: npt.ArrayLike) -> Samples:
    array = np.asarray(samples)
    if array.dtype != np.int16:
        raise ValueError(f"audio processing takes int16 samples, not {array.dtype}")
    return array.reshape(-1)
