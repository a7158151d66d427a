"""Which cameras, microphones and speakers exist, and which one a name means.

The one module that asks the system about devices: sound devices through PortAudio
(``sounddevice``: ALSA on Linux, Core Audio on macOS, MME/DirectSound/WASAPI on
Windows), cameras through sysfs on Linux and OpenCV elsewhere. Resolving a name
and formatting the listing are pure functions over :class:`AudioDevice` lists, so
they are tested without devices.

Names a user gives: an index from ``--list-devices``, a device's full name, or a
part of it that only one device has. ``alsa:PCM`` bypasses PortAudio and goes to
ALSA directly through FFmpeg (``alsa:default``, ``alsa:hw:1``, ``alsa:null``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal, TypeVar

from media.errors import MediaSourceError

logger = logging.getLogger(__name__)

ALSA_PREFIX: Final = "alsa:"
CAMERAS_PROBED: Final = 5  # indexes tried where the system cannot list cameras
V4L2_SYSFS: Final = Path("/sys/class/video4linux")

Direction = Literal["input", "output"]


@dataclass(frozen=True)
class AudioDevice:
    """A PortAudio device: ``index`` is what ``mic:N`` and ``--speaker-device N`` take."""

    index: int
    name: str
    host_api: str
    inputs: int
    outputs: int
    default_rate: float = 48000.0
    default_input: bool = False
    default_output: bool = False
    input_latency: float = 0.0  # seconds, PortAudio's low-latency figure
    output_latency: float = 0.0

    def channels(self, direction: Direction) -> int:
        return self.inputs if direction == "input" else self.outputs

    def is_default(self, direction: Direction) -> bool:
        return self.default_input if direction == "input" else self.default_output


@dataclass(frozen=True)
class Camera:
    index: int  # what camera:N takes
    name: str
    path: str = ""


@dataclass
class DeviceList:
    cameras: list[Camera] = field(default_factory=list)
    audio: list[AudioDevice] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # a backend that could not be asked

    def of(self, direction: Direction) -> list[AudioDevice]:
        return [device for device in self.audio if device.channels(direction) > 0]


def _what(direction: Direction) -> str:
    return "microphone" if direction == "input" else "speaker"


def _flag(direction: Direction) -> str:
    return "--audio mic:" if direction == "input" else "--speaker-device "


def resolve(spec: str | None, devices: list[AudioDevice], direction: Direction) -> AudioDevice:
    """The device ``spec`` names (None or "default": the system's default)."""
    candidates = [device for device in devices if device.channels(direction) > 0]
    what = _what(direction)
    hint = "--list-devices shows them"
    if spec is None or spec.strip().lower() in ("", "default"):
        for device in candidates:
            if device.is_default(direction):
                return device
        if spec is None or not spec.strip():
            raise MediaSourceError(f"no default {what} found ({hint})")
    assert spec is not None
    wanted = spec.strip()
    if wanted.isdigit():
        for device in candidates:
            if device.index == int(wanted):
                return device
        raise MediaSourceError(f"no {what} has index {wanted} ({hint})")
    exact = [device for device in candidates if device.name.lower() == wanted.lower()]
    partial = exact or [device for device in candidates if wanted.lower() in device.name.lower()]
    if not partial:
        raise MediaSourceError(f"no {what} matches {wanted!r} ({hint})")
    if len({device.name for device in partial}) == 1:
        # One device seen through several host APIs (Windows: MME, DirectSound, WASAPI):
        # the system's default API first, as PortAudio orders them.
        return next((d for d in partial if d.is_default(direction)), partial[0])
    names = ", ".join(f"{device.index} {device.name!r}" for device in partial[:6])
    raise MediaSourceError(
        f"{wanted!r} matches several {what}s ({names}); give the index, e.g. "
        f"{_flag(direction)}{partial[0].index}"
    )


def format_listing(found: DeviceList) -> str:
    """What ``webcam-peer --list-devices`` prints."""
    lines: list[str] = []
    if found.cameras:
        lines.append("cameras (--video camera:N):")
        lines += [
            f"  {camera.index:>3}  {camera.name}" + (f"  ({camera.path})" if camera.path else "")
            for camera in found.cameras
        ]
    sections: tuple[tuple[Direction, str], ...] = (
        ("input", "microphones (--audio mic:N or mic:NAME):"),
        ("output", "speakers (--speaker-device N or NAME):"),
    )
    for direction, title in sections:
        devices = found.of(direction)
        if not devices:
            continue
        lines.append(title)
        for device in devices:
            mark = "  (default)" if device.is_default(direction) else ""
            lines.append(f"  {device.index:>3}  {device.name}  [{device.host_api}]{mark}")
    if not lines:
        lines.append("no cameras, microphones or speakers found on this machine")
    else:
        missing = [
            kind
            for kind, present in (
                ("cameras", found.cameras),
                ("microphones", found.of("input")),
                ("speakers", found.of("output")),
            )
            if not present
        ]
        if missing:
            lines.append(f"no {' or '.join(missing)} found")
    lines += [f"note: {problem}" for problem in found.problems]
    if sys.platform.startswith("linux"):
        lines.append(
            "ALSA devices are also reachable directly: --audio mic:alsa:PCM, "
            "--speaker-device alsa:PCM (e.g. alsa:default, alsa:hw:1, alsa:null)"
        )
    return "\n".join(lines)


Device = TypeVar("Device")


def open_device(
    spec: str | None,
    alsa: Callable[[str], Device],
    portaudio_device: Callable[[str | None], Device],
    advice: str | None = None,
) -> Device:
    """``alsa:PCM`` through ALSA; anything else through PortAudio, falling back to ALSA's
    default on Linux when no device was named. ``advice`` ends the error of a named one."""
    if spec and spec.lower().startswith(ALSA_PREFIX):
        return alsa(spec[len(ALSA_PREFIX) :])
    try:
        return portaudio_device(spec)
    except MediaSourceError as exc:
        if spec is None and sys.platform.startswith("linux"):
            logger.info("%s; trying ALSA's default directly", exc)
            return alsa("default")
        if advice is None:
            raise
        raise MediaSourceError(f"{exc}; {advice}") from exc


def portaudio() -> ModuleType:
    """The ``sounddevice`` module, or a one-line reason it cannot load."""
    try:
        import sounddevice
    except OSError as exc:  # the package is there, the PortAudio library is not
        package = " (Debian: libportaudio2)" if sys.platform.startswith("linux") else ""
        raise MediaSourceError(f"PortAudio is not installed{package}: {exc}") from exc
    except ImportError as exc:
        raise MediaSourceError(f"the sounddevice package is missing: {exc}") from exc
    return sounddevice


def audio_devices() -> list[AudioDevice]:
    """Every PortAudio device, with the system's defaults marked."""
    sd = portaudio()
    try:
        raw: Any = sd.query_devices()
        host_apis: Any = sd.query_hostapis()
    except sd.PortAudioError as exc:
        raise MediaSourceError(f"PortAudio cannot list devices: {exc}") from exc
    default_input, default_output = _default_indexes(sd)
    return [
        AudioDevice(
            index=int(info["index"]),
            name=str(info["name"]),
            host_api=str(host_apis[info["hostapi"]]["name"]),
            inputs=int(info["max_input_channels"]),
            outputs=int(info["max_output_channels"]),
            default_rate=float(info["default_samplerate"]),
            default_input=int(info["index"]) == default_input,
            default_output=int(info["index"]) == default_output,
            input_latency=float(info["default_low_input_latency"]),
            output_latency=float(info["default_low_output_latency"]),
        )
        for info in raw
    ]


def _default_indexes(sd: ModuleType) -> tuple[int, int]:
    default: Any = sd.default.device
    try:
        return int(default[0]), int(default[1])
    except (TypeError, ValueError):  # a name set by the user's configuration
        return -1, -1


def cameras() -> list[Camera]:
    if sys.platform.startswith("linux"):
        return _v4l2_cameras()
    return _probed_cameras()


def _v4l2_cameras() -> list[Camera]:
    found = []
    for node in sorted(V4L2_SYSFS.glob("video*")):
        number = node.name.removeprefix("video")
        if not number.isdigit():
            continue
        # A camera has several nodes; index 0 is the one that captures pictures.
        index_file = node / "index"
        if index_file.is_file() and index_file.read_text().strip() not in ("", "0"):
            continue
        name_file = node / "name"
        name = name_file.read_text().strip() if name_file.is_file() else node.name
        found.append(Camera(int(number), name, f"/dev/{node.name}"))
    return found


def _probed_cameras() -> list[Camera]:
    # macOS and Windows give OpenCV no list: opening each index is the portable way.
    import cv2

    found = []
    for index in range(CAMERAS_PROBED):
        capture = cv2.VideoCapture(index)
        try:
            if capture.isOpened():
                found.append(Camera(index, f"camera {index}"))
        finally:
            capture.release()
    return found


def list_devices() -> DeviceList:
    found = DeviceList()
    try:
        found.cameras = cameras()
    except OSError as exc:
        found.problems.append(f"cameras could not be listed: {exc}")
    try:
        found.audio = audio_devices()
    except MediaSourceError as exc:
        found.problems.append(str(exc))
    return found
