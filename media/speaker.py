"""Plays the remote audio: PortAudio (``sounddevice``) on every OS, or ALSA through FFmpeg.

Everything played is 48 kHz mono int16; just before each block goes to the device
it is handed to the audio processor (when the microphone has one), so the echo
canceller hears exactly what the room will.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol

import av
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from .alsa import use_system_alsa_config
from .audio_processing import BLOCK_SAMPLES, PROCESSING_RATE, AudioProcessor
from .devices import ALSA_PREFIX, audio_devices, portaudio, resolve
from .errors import MediaSourceError

logger = logging.getLogger(__name__)

OUTPUT_RATE: Final = PROCESSING_RATE

Block = npt.NDArray[np.int16]


class _Output(Protocol):
    name: str
    latency_ms: float

    def write(self, samples: Block) -> None: ...  # blocks while the device is full

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
                latency="low",
                extra_settings=extra,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise MediaSourceError(f"cannot open speaker {self.name}: {exc}") from exc
        self.latency_ms = float(self._stream.latency) * 1000

    def write(self, samples: Block) -> None:
        self._stream.write(np.repeat(samples.reshape(-1, 1), self._channels, axis=1))

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

    def write(self, samples: Block) -> None:
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = OUTPUT_RATE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        self._container.close()


def open_output(spec: str | None) -> _Output:
    if spec and spec.lower().startswith(ALSA_PREFIX):
        return _AlsaOutput(spec[len(ALSA_PREFIX) :])
    try:
        return _PortAudioOutput(spec)
    except MediaSourceError as exc:
        if spec is None and sys.platform.startswith("linux"):
            logger.info("%s; trying ALSA's default directly", exc)
            return _AlsaOutput("default")
        raise


class Speaker:
    """Writes ``track``'s frames to the sound card until the track ends."""

    def __init__(
        self,
        track: MediaStreamTrack,
        device: str | None = None,
        processor: AudioProcessor | None = None,
    ) -> None:
        self.track = track
        self.device = device
        self.processor = processor
        self.frames_played = 0

    def _open(self) -> _Output:
        output = open_output(self.device)
        if self.processor is not None and output.latency_ms:
            self.processor.set_output_latency_ms(output.latency_ms)
        logger.info("speaker %s opened", output.name)
        return output

    def _play(self, output: _Output, samples: Block) -> None:
        if self.processor is not None:
            self.processor.far_end(samples)
        output.write(samples)

    async def run(self) -> None:
        # One thread for the device: writes block for as long as the sound card needs.
        with ThreadPoolExecutor(1, thread_name_prefix="speaker") as device_thread:
            loop = asyncio.get_running_loop()
            try:
                output = await loop.run_in_executor(device_thread, self._open)
            except MediaSourceError as exc:
                logger.warning("%s; the call goes on without sound (--no-speaker hides this)", exc)
                return
            resampler = av.AudioResampler(format="s16", layout="mono", rate=OUTPUT_RATE)
            try:
                while True:
                    try:
                        frame = await self.track.recv()
                    except MediaStreamError:
                        return
                    assert isinstance(frame, AudioFrame)
                    for chunk in resampler.resample(frame):
                        samples = np.asarray(chunk.to_ndarray(), dtype=np.int16).reshape(-1)
                        await loop.run_in_executor(device_thread, self._play, output, samples)
                    self.frames_played += 1
            finally:
                await loop.run_in_executor(device_thread, output.close)
