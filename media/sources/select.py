"""``--video`` and ``--audio`` values turned into tracks.

    --video camera | camera:N | camera:/dev/videoN | screen | screen:N | synthetic
            | file:PATH | none
    --audio mic | mic:N | mic:NAME | mic:alsa:PCM | synthetic | synthetic:FREQ | file:PATH | none

Microphone names are those ``webcam-peer --list-devices`` shows (:mod:`media.sources.devices`).
(``echo`` is the peer's business: it needs the call's remote track.) A value that
does not parse raises ValueError; a device or file that cannot be used raises
:class:`MediaSourceError`, naming it.
"""

from __future__ import annotations

from pathlib import Path

from aiortc import MediaStreamTrack

from media.audio_processing import AudioProcessor
from media.errors import MediaSourceError

__all__ = ["MediaSourceError", "open_audio_source", "open_video_source"]

VIDEO_CHOICES = (
    "camera, camera:N, camera:/dev/videoN, screen, screen:N, synthetic, file:PATH, echo or none"
)
AUDIO_CHOICES = (
    "mic, mic:N, mic:NAME, mic:alsa:PCM, synthetic, synthetic:FREQ, file:PATH, echo or none"
)


def _split(spec: str) -> tuple[str, str | None]:
    kind, sep, argument = spec.partition(":")
    return kind.strip().lower(), (argument if sep else None)


def open_video_source(
    spec: str, width: int, height: int, fps: float, label: str = ""
) -> MediaStreamTrack | None:
    kind, argument = _split(spec)
    if kind == "none" and argument is None:
        return None
    if kind == "synthetic" and argument is None:
        from media.sources.synthetic import SyntheticVideoTrack

        return SyntheticVideoTrack(width, height, fps, label=label)
    if kind == "camera":
        from media.sources.camera import CameraTrack

        device: int | str = 0
        if argument:
            device = int(argument) if argument.isdigit() else argument
        return CameraTrack(device, width, height, fps)
    if kind == "screen" and (argument is None or argument.isdigit()):
        from media.sources.screen import ScreenTrack

        return ScreenTrack(int(argument) if argument else 1, fps)
    if kind == "file" and argument:
        from media.sources.file import FileVideoTrack

        return FileVideoTrack(Path(argument).expanduser())
    raise ValueError(f"--video {spec!r} is not a video source; use {VIDEO_CHOICES}")


def is_microphone(spec: str) -> bool:
    return _split(spec)[0] == "mic"


def open_audio_source(
    spec: str, processor: AudioProcessor | None = None
) -> MediaStreamTrack | None:
    """``processor`` (echo cancellation etc.) applies to a microphone only."""
    kind, argument = _split(spec)
    if kind == "none" and argument is None:
        return None
    if kind == "synthetic":
        from media.sources.synthetic import ToneTrack

        if argument is None:
            return ToneTrack()
        try:
            frequency = float(argument)
        except ValueError:
            raise ValueError(
                f"--audio {spec!r}: the tone frequency must be a number of Hz, e.g. synthetic:440"
            ) from None
        return ToneTrack(frequency)
    if kind == "mic":
        from media.sources.microphone import MicrophoneTrack

        return MicrophoneTrack(argument or None, processor=processor)
    if kind == "file" and argument:
        from media.sources.file import FileAudioTrack

        return FileAudioTrack(Path(argument).expanduser())
    raise ValueError(f"--audio {spec!r} is not an audio source; use {AUDIO_CHOICES}")
