"""What each side sends, on the ``chat`` channel: microphone on or muted, camera on,
off or the screen (docs/datachannels.md, "Media state"). Encode and decode; pure.

The message carries the whole state every time, so a lost or reordered one is
repaired by the next, and a peer that connects late learns everything at once.
Peers that do not know the type ignore it, as the chat format lets them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Literal

MEDIA_TYPE: Final = "media"
AUDIO_VALUES: Final = ("on", "muted")
VIDEO_VALUES: Final = ("on", "off", "screen")
MAX_MEDIA_MESSAGE_BYTES: Final = 256

AudioState = Literal["on", "muted"]
VideoState = Literal["on", "off", "screen"]


@dataclass(frozen=True)
class MediaState:
    audio: AudioState = "on"
    video: VideoState = "on"

    def describe(self) -> str:
        """For people: '' when nothing is off, else e.g. 'muted, camera off'."""
        parts = []
        if self.audio == "muted":
            parts.append("muted")
        if self.video == "off":
            parts.append("camera off")
        elif self.video == "screen":
            parts.append("sharing the screen")
        return ", ".join(parts)


def encode_media_state(state: MediaState) -> str:
    return json.dumps({"type": MEDIA_TYPE, "audio": state.audio, "video": state.video})


def decode_media_state(message: str | bytes) -> MediaState | None:
    """The state a ``media`` message announces; None when it is not a valid one."""
    if not isinstance(message, str) or len(message.encode("utf-8", "replace")) > (
        MAX_MEDIA_MESSAGE_BYTES
    ):
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != MEDIA_TYPE:
        return None
    audio = data.get("audio")
    video = data.get("video")
    if audio not in AUDIO_VALUES or video not in VIDEO_VALUES:
        return None
    return MediaState(audio, video)
