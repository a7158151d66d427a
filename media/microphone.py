"""The microphone, through PyAV's capture devices (ALSA, AVFoundation, DirectShow)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Final

import av
from av import AudioFrame

from .alsa import use_system_alsa_config
from .capture import CaptureThread, DeviceTrack
from .clock import MediaClock
from .errors import MediaSourceError

logger = logging.getLogger(__name__)

AUDIO_RATE: Final = 48000
FRAME_SAMPLES: Final = 960  # 20 ms, what Opus packs

# (PyAV input format, default device) per OS.
_DEVICES: Final = {
    "linux": ("alsa", "default"),
    "darwin": ("avfoundation", ":0"),
    "win32": ("dshow", "audio=Microphone"),
}


def default_device() -> tuple[str, str]:
    return _DEVICES.get(sys.platform, ("alsa", "default"))


class MicrophoneTrack(DeviceTrack):
    """20 ms frames of 48 kHz mono from a capture device."""

    kind = "audio"

    def __init__(self, device: str | None = None, input_format: str | None = None) -> None:
        super().__init__()
        default_format, default_name = default_device()
        self.device = device or default_name
        self.input_format = input_format or default_format
        use_system_alsa_config()
        try:
            self._container = av.open(self.device, format=self.input_format, mode="r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaSourceError(
                f"cannot open microphone {self.device!r} ({self.input_format}): {exc}; "
                "try --audio synthetic to call without one"
            ) from exc
        logger.info("microphone %s (%s) opened", self.device, self.input_format)
        self._clock = MediaClock(AUDIO_RATE, FRAME_SAMPLES / AUDIO_RATE)
        self._samples = self._resampled()
        self._frames = CaptureThread(
            f"microphone {self.device}", self._read, self._container.close, depth=10
        )

    def _resampled(self) -> Iterator[AudioFrame]:
        resampler = av.AudioResampler(
            format="s16", layout="mono", rate=AUDIO_RATE, frame_size=FRAME_SAMPLES
        )
        for frame in self._container.decode(audio=0):
            yield from resampler.resample(frame)

    def _read(self) -> AudioFrame | None:
        return next(self._samples, None)
