"""The call's media commands typed on the terminal (pure): mute, camera, screen.

/mute  /unmute  /video off|on  /share [N]  /camera
"""

from __future__ import annotations

from dataclasses import dataclass

AV_HELP = """\
  /mute, /unmute      turn the microphone off (released) and on
  /video off|on       turn the camera off (released; the other side sees black) and on
  /share [N]          send the screen (monitor N, 1 = the first) instead of the camera
  /camera             back to the camera"""


@dataclass(frozen=True)
class MuteCommand:
    muted: bool


@dataclass(frozen=True)
class VideoCommand:
    on: bool


@dataclass(frozen=True)
class ShareCommand:
    monitor: int | None  # None: the screen --video screen names, else the first monitor


@dataclass(frozen=True)
class CameraCommand:
    pass


@dataclass(frozen=True)
class AvUsage:
    why: str


AvCommand = MuteCommand | VideoCommand | ShareCommand | CameraCommand | AvUsage


def parse_av_command(name: str, argument: str) -> AvCommand | None:
    """``/name argument`` as a media command, or None when ``name`` is not one."""
    if name in ("mute", "unmute"):
        if argument:
            return AvUsage(f"usage: /{name} (no argument)")
        return MuteCommand(name == "mute")
    if name == "video":
        if argument.lower() in ("on", "off"):
            return VideoCommand(argument.lower() == "on")
        return AvUsage("usage: /video off|on")
    if name == "share":
        if not argument:
            return ShareCommand(None)
        if not argument.isdigit():
            return AvUsage(f"usage: /share [N]; {argument!r} is not a monitor number")
        return ShareCommand(int(argument))
    if name == "camera":
        if argument:
            return AvUsage("usage: /camera (no argument)")
        return CameraCommand()
    return None
