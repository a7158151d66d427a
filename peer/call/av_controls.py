"""What we send, as a table: how each media command moves the local state (pure).

The state is the :class:`MediaState` the other side is told. The shell
(:mod:`peer.call.local_media`) opens or releases the sources the new state names.
"""

from __future__ import annotations

from typing import Final

from peer.call.av_commands import (
    AvCommand,
    AvUsage,
    CameraCommand,
    MuteCommand,
    ShareCommand,
    VideoCommand,
)
from peer.call.media_state import AudioState, MediaState, VideoState

AUDIO_TABLE: Final[dict[tuple[AudioState, bool], AudioState]] = {
    # (now, mute?) -> next
    ("on", True): "muted",
    ("on", False): "on",
    ("muted", True): "muted",
    ("muted", False): "on",
}

VIDEO_TABLE: Final[dict[tuple[VideoState, str], VideoState]] = {
    # (now, command) -> next; "on" resumes the camera, "share" the screen.
    ("on", "off"): "off",
    ("on", "on"): "on",
    ("on", "share"): "screen",
    ("on", "camera"): "on",
    ("off", "off"): "off",
    ("off", "on"): "on",
    ("off", "share"): "screen",
    ("off", "camera"): "on",
    ("screen", "off"): "off",
    ("screen", "on"): "screen",
    ("screen", "share"): "screen",
    ("screen", "camera"): "on",
}

# Window keys: m toggles the microphone, v the camera.
WINDOW_KEYS: Final = ("m", "v")


def next_state(state: MediaState, command: AvCommand) -> MediaState:
    if isinstance(command, MuteCommand):
        return MediaState(AUDIO_TABLE[(state.audio, command.muted)], state.video)
    if isinstance(command, VideoCommand):
        return MediaState(state.audio, VIDEO_TABLE[(state.video, "on" if command.on else "off")])
    if isinstance(command, ShareCommand):
        return MediaState(state.audio, VIDEO_TABLE[(state.video, "share")])
    if isinstance(command, CameraCommand):
        return MediaState(state.audio, VIDEO_TABLE[(state.video, "camera")])
    assert isinstance(command, AvUsage)
    return state


def window_key_command(key: str, state: MediaState) -> AvCommand | None:
    """What a key pressed in the call window asks for (None: not a media key)."""
    if key.lower() == "m":
        return MuteCommand(state.audio == "on")
    if key.lower() == "v":
        return VideoCommand(state.video == "off")
    return None


def is_screen_spec(spec: str) -> bool:
    kind, _, argument = spec.partition(":")
    return kind.strip().lower() == "screen" and (not argument or argument.isdigit())


def camera_spec(video_option: str) -> str:
    """The source ``/camera`` and ``/video on`` use: --video, unless that is a screen."""
    return "camera" if is_screen_spec(video_option) else video_option


def screen_spec(video_option: str, monitor: int | None) -> str:
    if monitor is not None:
        return f"screen:{monitor}"
    return video_option if is_screen_spec(video_option) else "screen"


def initial_state(video_option: str) -> MediaState:
    return MediaState("on", "screen" if is_screen_spec(video_option) else "on")


def describe_change(before: MediaState | None, after: MediaState, who: str) -> list[str]:
    """Lines for the person at the terminal when the other side's state changes."""
    before = before or MediaState()
    lines = []
    if before.audio != after.audio:
        lines.append(f"{who} {'muted' if after.audio == 'muted' else 'unmuted'} the microphone")
    if before.video != after.video:
        lines.append(
            {
                "on": f"{who} turned the camera on",
                "off": f"{who} turned the camera off",
                "screen": f"{who} is sharing the screen",
            }[after.video]
        )
    return lines
