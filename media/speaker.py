"""Plays the remote audio on an output device through PyAV (ALSA on Linux)."""

from __future__ import annotations

import asyncio
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from .alsa import use_system_alsa_config
from .errors import MediaSourceError

logger = logging.getLogger(__name__)

OUTPUT_RATE: Final = 48000
# (PyAV output format, default device); FFmpeg has no portable audio output elsewhere.
_OUTPUTS: Final = {"linux": ("alsa", "default")}


class Speaker:
    """Writes ``track``'s frames to the sound card until the track ends."""

    def __init__(self, track: MediaStreamTrack, device: str | None = None) -> None:
        self.track = track
        output_format, default_name = _OUTPUTS.get(sys.platform, ("alsa", "default"))
        self.device = device or default_name
        self.output_format = output_format
        self.frames_played = 0

    def _open(self) -> tuple[av.container.OutputContainer, av.audio.stream.AudioStream]:
        use_system_alsa_config()
        try:
            container = av.open(self.device, mode="w", format=self.output_format)
            stream = container.add_stream("pcm_s16le", rate=OUTPUT_RATE, layout="stereo")
            # The device is really opened with the first packet: find out now, not mid-call.
            silence = AudioFrame(format="s16", layout="stereo", samples=OUTPUT_RATE // 100)
            for plane in silence.planes:
                plane.update(bytes(plane.buffer_size))
            silence.sample_rate = OUTPUT_RATE
            self._write(container, stream, silence)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaSourceError(
                f"cannot open speaker {self.device!r} ({self.output_format}): {exc}"
            ) from exc
        return container, stream

    async def run(self) -> None:
        # One thread for the device: writes block for as long as the sound card needs.
        with ThreadPoolExecutor(1, thread_name_prefix="speaker") as device_thread:
            loop = asyncio.get_running_loop()
            try:
                container, stream = await loop.run_in_executor(device_thread, self._open)
            except MediaSourceError as exc:
                logger.warning("%s; the call goes on without sound (--no-speaker hides this)", exc)
                return
            resampler = av.AudioResampler(format="s16", layout="stereo", rate=OUTPUT_RATE)
            try:
                while True:
                    try:
                        frame = await self.track.recv()
                    except MediaStreamError:
                        return
                    assert isinstance(frame, AudioFrame)
                    for chunk in resampler.resample(frame):
                        chunk.pts = None
                        await loop.run_in_executor(
                            device_thread, self._write, container, stream, chunk
                        )
                    self.frames_played += 1
            finally:
                await loop.run_in_executor(device_thread, container.close)

    @staticmethod
    def _write(
        container: av.container.OutputContainer,
        stream: av.audio.stream.AudioStream,
        frame: AudioFrame,
    ) -> None:
        for packet in stream.encode(frame):
            container.mux(packet)
