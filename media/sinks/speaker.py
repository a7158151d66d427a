"""Plays the remote audio: PortAudio (``sounddevice``) on every OS, or ALSA through FFmpeg.

Everything played is 48 kHz mono int16. Decoded audio waits in a
:class:`~media.sinks.playout.PlayoutBuffer`; a writer thread takes one 10 ms block at a
time, at the device's pace (its blocking write is the clock), silence when no
audio is waiting, and hands each block to the audio processor (when the microphone
has one) just before it goes to the device. So the echo canceller hears exactly
what the room will, sample for sample: the device never has to fill a gap with
silence of its own, which would move the echo against the far end.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol

import av
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from media.audio_processing import BLOCK_SAMPLES, PROCESSING_RATE, AudioProcessor
from media.errors import MediaSourceError
from media.sinks.playout import DevicePace, PlayoutBuffer
from media.sources.alsa import use_system_alsa_config
from media.sources.devices import ALSA_PREFIX, audio_devices, open_device, portaudio, resolve

logger = logging.getLogger(__name__)

OUTPUT_RATE: Final = PROCESSING_RATE
# The device's own buffer. PortAudio's "low" is 9 ms on PulseAudio: one late wake-up
# of the writer thread on a busy machine and the device plays silence of its own.
OUTPUT_LATENCY_S: Final = 0.04
# Audio kept waiting for the device: a margin for packets' jitter, and the most
# before the oldest is dropped (a stall must not leave the call late for good).
PREBUFFER_SAMPLES: Final = 4 * BLOCK_SAMPLES
PLAYOUT_LIMIT_SAMPLES: Final = 20 * BLOCK_SAMPLES
# A sound server's stream can stall as it starts (PulseAudio: the first write blocked
# 0.2-0.6 s, up to 2 s on a busy machine). The far end handed to the canceller
# before such a stall runs ahead of what is played by the stall's length, and the
# canceller spent seconds at 30 dB instead of 65 finding the echo again. So silence
# goes out, untold, until writes have kept the device's pace for a while.
PRIME_STEADY_BLOCKS: Final = 20  # consecutive writes none of which stalled
PRIME_STALL_S: Final = 0.05
PRIME_LIMIT_S: Final = 3.0

Block = npt.NDArray[np.int16]


class _Output(Protocol):
    name: str
    latency_ms: float

    def write(self, samples: Block) -> bool: ...  # blocks while the device is full; underflowed?

    def close(self) -> None: ...


class _PortAudioOutput:
    def __init__(self, spec: str | None) -> None:
        sd = portaudio()
        device = resolve(spec, audio_devices(), "output")
        self.name = f"{device.index} {device.name!r} [{device.host_api}]"
        self._channels = min(2, device.outputs)
        extra: Any = None
        if device.host_api == "Windows WASAPI":
            extra = sd.WasapiSettings(auto_convert=True)
        try:
            self._stream = sd.OutputStream(
                device=device.index,
                samplerate=OUTPUT_RATE,
                channels=self._channels,
                dtype="int16",
                latency=OUTPUT_LATENCY_S,
                extra_settings=extra,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise MediaSourceError(f"cannot open speaker {self.name}: {exc}") from exc
        self.latency_ms = float(self._stream.latency) * 1000

    def write(self, samples: Block) -> bool:
        return bool(self._stream.write(np.repeat(samples.reshape(-1, 1), self._channels, axis=1)))

    def close(self) -> None:
        self._stream.close(ignore_errors=True)


class _AlsaOutput:
    """ALSA through FFmpeg: the path that needs no PortAudio (and reaches ``null``)."""

    def __init__(self, pcm: str) -> None:
        self.name = f"{ALSA_PREFIX}{pcm}"
        self.latency_ms = 0.0
        use_system_alsa_config()
        try:
            self._container = av.open(pcm, mode="w", format="alsa")
            self._stream = self._container.add_stream("pcm_s16le", rate=OUTPUT_RATE, layout="mono")
            # The device is really opened with the first packet: find out now, not mid-call.
            self.write(np.zeros(BLOCK_SAMPLES, dtype=np.int16))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaSourceError(f"cannot open speaker {pcm!r} (alsa): {exc}") from exc

    def write(self, samples: Block) -> bool:
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = OUTPUT_RATE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return False  # FFmpeg does not say

    def close(self) -> None:
        self._container.close()


def open_output(spec: str | None) -> _Output:
    alsa: Callable[[str], _Output] = _AlsaOutput
    return open_device(spec, alsa, _PortAudioOutput)


class Speaker:
    """Plays ``track``'s audio on the sound card until the track ends."""

    def __init__(
        self,
        track: MediaStreamTrack,
        device: str | None = None,
        processor: AudioProcessor | None = None,
    ) -> None:
        self.track = track
        self.device = device
        self.processor = processor
        self.frames_played = 0  # frames taken from the track
        self.device_underruns = 0  # times the device ran dry anyway (the writer was late)
        self.playout = PlayoutBuffer(PREBUFFER_SAMPLES, PLAYOUT_LIMIT_SAMPLES)
        self._playout_lock = threading.Lock()  # the event loop pushes, the writer pulls

    def _open(self) -> _Output:
        output = open_output(self.device)
        if self.processor is not None and output.latency_ms:
            self.processor.set_output_latency_ms(output.latency_ms)
        logger.info("speaker %s opened (%.0f ms buffer)", output.name, output.latency_ms)
        return output

    def _write_until(self, output: _Output, stop: threading.Event) -> None:
        """The writer thread: one block after another, as fast as the device takes them."""
        pace = DevicePace(OUTPUT_RATE, headroom=OUTPUT_LATENCY_S + 0.02)
        try:
            self._prime(output, pace, stop)
            while not stop.is_set():
                with self._playout_lock:
                    block = self.playout.pull(BLOCK_SAMPLES)
                if self.processor is not None:
                    self.processor.far_end(block)
                started = time.monotonic()
                if output.write(block):
                    self.device_underruns += 1
                now = time.monotonic()
                wait = pace.wait_after(BLOCK_SAMPLES, now - started, now)
                if wait:
                    stop.wait(wait)
        except Exception as exc:  # the device went away: the call goes on without sound
            logger.warning("speaker %s stopped: %s", output.name, exc)

    def _prime(self, output: _Output, pace: DevicePace, stop: threading.Event) -> None:
        """Silence, not told to the canceller, until the device takes blocks at its pace."""
        silence = np.zeros(BLOCK_SAMPLES, dtype=np.int16)
        began = time.monotonic()
        steady = 0
        longest = 0.0
        while not stop.is_set() and steady < PRIME_STEADY_BLOCKS:
            started = time.monotonic()
            output.write(silence)
            now = time.monotonic()
            longest = max(longest, now - started)
            steady = 0 if now - started > PRIME_STALL_S else steady + 1
            if now - began > PRIME_LIMIT_S:
                break
            wait = pace.wait_after(BLOCK_SAMPLES, now - started, now)
            if wait:
                stop.wait(wait)
        logger.info(
            "speaker %s primed in %.2f s (longest write %.0f ms)",
            output.name,
            time.monotonic() - began,
            longest * 1000,
        )

    def _push(self, samples: Block) -> None:
        with self._playout_lock:
            self.playout.push(samples)

    async def run(self) -> None:
        # One thread for the device: its writes block for as long as the sound card needs.
        with ThreadPoolExecutor(1, thread_name_prefix="speaker") as device_thread:
            loop = asyncio.get_running_loop()
            try:
                output = await loop.run_in_executor(device_thread, self._open)
            except MediaSourceError as exc:
                logger.warning("%s; the call goes on without sound (--no-speaker hides this)", exc)
                return
            stop = threading.Event()
            writing = loop.run_in_executor(device_thread, self._write_until, output, stop)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=OUTPUT_RATE)
            try:
                while not writing.done():
                    try:
                        frame = await self.track.recv()
                    except MediaStreamError:
                        return
                    assert isinstance(frame, AudioFrame)
                    for chunk in resampler.resample(frame):
                        self._push(np.asarray(chunk.to_ndarray(), dtype=np.int16).reshape(-1))
                    self.frames_played += 1
            finally:
                stop.set()
                self._log_summary(output)  # first: a second cancel may end the wait below
                # Runs after the writer has returned: the thread is the writer's until then.
                await loop.run_in_executor(device_thread, output.close)

    def _log_summary(self, output: _Output) -> None:
        counters = self.playout.counters
        logger.info(
            "speaker %s: played %.1f s; %.2f s silence in %d gaps waiting for audio, "
            "%.2f s dropped to stay on time; the device ran dry %d times",
            output.name,
            counters.played / OUTPUT_RATE,
            counters.filled / OUTPUT_RATE,
            counters.gaps,
            counters.dropped / OUTPUT_RATE,
            self.device_underruns,
        )
