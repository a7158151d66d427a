"""The microphone: PortAudio (``sounddevice``) on every OS, or ALSA through FFmpeg.

The device is read in 10 ms blocks of 48 kHz mono, the unit of the audio processing
module (:mod:`media.audio_processing`), which takes the speaker's echo, the room's
noise and the level differences out in the capture thread when one is given. Two
blocks make one 20 ms frame, what Opus packs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

import av
import numpy as np
import numpy.typing as npt
from av import AudioFrame

from media.audio_processing import BLOCK_SAMPLES, PROCESSING_RATE, AudioProcessor
from media.errors import MediaSourceError
from media.sources.alsa import use_system_alsa_config
from media.sources.capture import CaptureThread, DeviceTrack
from media.sources.clock import MediaClock
from media.sources.devices import ALSA_PREFIX, audio_devices, open_device, portaudio, resolve

logger = logging.getLogger(__name__)

AUDIO_RATE: Final = PROCESSING_RATE
FRAME_SAMPLES: Final = 2 * BLOCK_SAMPLES  # 20 ms, what Opus packs
ADVICE: Final = "try --audio synthetic to call without one"

Block = npt.NDArray[np.int16]


class _Input(Protocol):
    name: str
    latency_ms: float

    def read(self) -> Block | None: ...  # one 10 ms block; None at the end

    def close(self) -> None: ...


class _PortAudioInput:
    def __init__(self, spec: str | None) -> None:
        sd = portaudio()
        device = resolve(spec, audio_devices(), "input")
        self.name = f"{device.index} {device.name!r} [{device.host_api}]"
        extra: Any = None
        if device.host_api == "Windows WASAPI":
            extra = sd.WasapiSettings(auto_convert=True)  # shared mode runs at the mixer's rate
        try:
            self._stream = sd.InputStream(
                device=device.index,
                samplerate=PROCESSING_RATE,
                channels=1,
                dtype="int16",
                blocksize=BLOCK_SAMPLES,
                latency="low",
                extra_settings=extra,
            )
            # Started now, not at the first read: a sound server's stream can stall for
            # a second or two as it starts, better before the call than in it.
            self._stream.start()
        except sd.PortAudioError as exc:
            raise MediaSourceError(f"cannot open microphone {self.name}: {exc}; {ADVICE}") from exc
        self.latency_ms = float(self._stream.latency) * 1000
        self.overflows = 0
        self._reading = False

    def read(self) -> Block | None:
        if not self._reading:
            # What was recorded between opening and the call wanting audio is the room
            # before the call (maybe before it was accepted), and would be a delay for
            # good: it is dropped, never sent.
            self._reading = True
            backlog = self._stream.read_available
            if backlog:
                self._stream.read(backlog)
        data, overflowed = self._stream.read(BLOCK_SAMPLES)
        if overflowed:
            self.overflows += 1
        return np.asarray(data, dtype=np.int16).reshape(-1)

    def close(self) -> None:
        self._stream.close(ignore_errors=True)
        if self.overflows:
            # Each one lost audio, and moved the echo against the far end for the canceller.
            logger.info("microphone %s overflowed %d times", self.name, self.overflows)


class _AlsaInput:
    """ALSA through FFmpeg: the path that needs no PortAudio."""

    def __init__(self, pcm: str) -> None:
        self.name = f"{ALSA_PREFIX}{pcm}"
        self.latency_ms = 0.0  # FFmpeg does not say; the canceller estimates it
        use_system_alsa_config()
        try:
            self._container = av.open(pcm, format="alsa", mode="r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaSourceError(
                f"cannot open microphone {pcm!r} (alsa): {exc}; {ADVICE}"
            ) from exc
        self._blocks = self._resampled()

    def _resampled(self) -> Iterator[Block]:
        resampler = av.AudioResampler(
            format="s16", layout="mono", rate=PROCESSING_RATE, frame_size=BLOCK_SAMPLES
        )
        for frame in self._container.decode(audio=0):
            for block in resampler.resample(frame):
                yield np.asarray(block.to_ndarray(), dtype=np.int16).reshape(-1)

    def read(self) -> Block | None:
        return next(self._blocks, None)

    def close(self) -> None:
        self._container.close()


def open_input(spec: str | None) -> _Input:
    alsa: Callable[[str], _Input] = _AlsaInput
    return open_device(spec, alsa, _PortAudioInput, ADVICE)


class MicrophoneTrack(DeviceTrack):
    """20 ms frames of 48 kHz mono from a microphone, through ``processor`` if given."""

    kind = "audio"

    def __init__(self, device: str | None = None, processor: AudioProcessor | None = None) -> None:
        super().__init__()
        self._input = open_input(device)
        self.device = self._input.name
        self.processor = processor
        if processor is not None and self._input.latency_ms:
            processor.set_input_latency_ms(self._input.latency_ms)
        logger.info(
            "microphone %s opened%s",
            self.device,
            " with echo cancellation" if processor else "",
        )
        self._clock = MediaClock(AUDIO_RATE, FRAME_SAMPLES / AUDIO_RATE)
        self._frames = CaptureThread(
            f"microphone {self.device}", self._read, self._input.close, depth=10
        )

    def _read(self) -> AudioFrame | None:
        blocks = []
        for _ in range(FRAME_SAMPLES // BLOCK_SAMPLES):
            block = self._input.read()
            if block is None:
                return None
            if self.processor is not None:
                block = self.processor.near_end(block)
            blocks.append(block)
        frame = AudioFrame.from_ndarray(
            np.concatenate(blocks).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = AUDIO_RATE
        return frame
