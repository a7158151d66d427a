"""Our own camera/screen and microphone behind switches, and the commands that turn
them off, on, or to the screen mid-call (/mute, /video off, /share, window keys).

The pure rules are in :mod:`peer.call.av_controls`; this shell opens and releases the
sources (:class:`media.sources.switchable.SwitchableTrack`) and reports what we now send,
which the peer passes to the other side (:mod:`peer.call.media_state`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiortc import MediaStreamTrack

from media.audio_processing import AudioProcessor
from media.sources.select import MediaSourceError, open_audio_source, open_video_source
from media.sources.switchable import SwitchableTrack
from peer.call.av_commands import AvCommand, AvUsage, ShareCommand
from peer.call.av_controls import (
    camera_spec,
    initial_state,
    is_screen_spec,
    next_state,
    screen_spec,
)
from peer.call.media_state import AudioState, MediaState, VideoState
from peer.tasks import TaskSupervisor

if TYPE_CHECKING:
    from peer.options import PeerOptions

logger = logging.getLogger(__name__)

Say = Callable[[str], None]


class LocalMedia:
    def __init__(
        self,
        video_option: str,
        audio_option: str,
        size: tuple[int, int],
        fps: float,
        label: str,
        say: Say,
        on_change: Callable[[MediaState], None],
    ) -> None:
        self._video_option = video_option
        self._audio_option = audio_option
        self._size = size
        self._fps = fps
        self._label = label
        self._say = say
        self._on_change = on_change
        self.video: SwitchableTrack | None = None
        self.audio: SwitchableTrack | None = None
        self.state = initial_state(video_option)
        self._wanted = self.state
        self._screen = screen_spec(video_option, None)
        self._lock = asyncio.Lock()
        self._tasks = TaskSupervisor("local media")

    @classmethod
    def of(
        cls, options: PeerOptions, say: Say, on_change: Callable[[MediaState], None]
    ) -> LocalMedia:
        o = options
        return cls(o.video, o.audio, (o.width, o.height), o.fps, o.login, say, on_change)

    def open(
        self, *, video: bool = True, audio: bool = True, processor: AudioProcessor | None = None
    ) -> None:
        """Open the sources --video and --audio name (MediaSourceError, ValueError);
        ``video``/``audio`` False: that kind is not ours to open (echo). ``processor``
        (echo cancellation) goes to every microphone opened, after unmute too."""
        if video and (source := self._open_video(self._video_option)) is not None:
            self.video = SwitchableTrack(
                "video", self._open_video, source, self._video_option, size=self._size
            )

        def open_audio(spec: str) -> MediaStreamTrack | None:
            return open_audio_source(spec, processor)

        if audio and (sound := open_audio(self._audio_option)) is not None:
            self.audio = SwitchableTrack("audio", open_audio, sound, self._audio_option)

    def _open_video(self, spec: str) -> MediaStreamTrack | None:
        width, height = self._size
        return open_video_source(spec, width, height, self._fps, label=self._label)

    # ---- commands ----------------------------------------------------------------------
    def command(self, command: AvCommand) -> None:
        if isinstance(command, AvUsage):
            self._say(command.why)
            return
        wanted = next_state(self._wanted, command)
        if isinstance(command, ShareCommand):
            self._screen = screen_spec(self._video_option, command.monitor)
            wanted_screen_change = wanted.video == "screen"
        else:
            wanted_screen_change = False
        if wanted.audio != self._wanted.audio and self.audio is None:
            self._say("no microphone in this call (--audio none or echo): nothing to mute")
            wanted = MediaState(self._wanted.audio, wanted.video)
        if (wanted.video != self._wanted.video or wanted_screen_change) and self.video is None:
            self._say("no video in this call (--video none or echo): nothing to switch")
            wanted = MediaState(wanted.audio, self._wanted.video)
            wanted_screen_change = False
        if wanted == self._wanted and not wanted_screen_change:
            self._say(_already(wanted))
            return
        self._wanted = wanted
        self._tasks.spawn(self._apply(wanted), "media-switch")

    async def _apply(self, wanted: MediaState) -> None:
        async with self._lock:
            if self.video is not None:
                spec = self._video_spec(wanted)
                if spec != self.video.spec:
                    await self._switch(self.video, spec, "video")
            if self.audio is not None:
                spec = None if wanted.audio == "muted" else self._audio_option
                if spec != self.audio.spec:
                    await self._switch(self.audio, spec, "audio")
            state = self._actual()
            if state != self.state:
                self.state = state
                self._say(_now_sending(state, self.audio is not None, self.video is not None))
                self._on_change(state)
            if self._wanted != state and not self._tasks.others_than(asyncio.current_task()):
                self._wanted = state  # a source that failed to open stays as it was

    def _video_spec(self, wanted: MediaState) -> str | None:
        if wanted.video == "off":
            return None
        if wanted.video == "screen":
            return self._screen
        return camera_spec(self._video_option)

    async def _switch(self, track: SwitchableTrack, spec: str | None, what: str) -> None:
        try:
            await track.switch_to(spec)
        except (MediaSourceError, ValueError) as exc:
            self._say(f"could not switch the {what}: {exc}")

    def _actual(self) -> MediaState:
        audio: AudioState = "on" if self.audio is None or self.audio.is_on else "muted"
        video: VideoState
        if self.video is None:
            video = self.state.video
        elif not self.video.is_on or self.video.spec is None:
            video = "off"
        else:
            video = "screen" if is_screen_spec(self.video.spec) else "on"
        return MediaState(audio, video)

    async def close(self) -> None:
        await self._tasks.stop()
        for track in (self.video, self.audio):
            if track is not None:
                track.stop()


def _already(state: MediaState) -> str:
    return f"already so: microphone {state.audio}, video {state.video}"


def _now_sending(state: MediaState, has_audio: bool, has_video: bool) -> str:
    parts = []
    if has_audio:
        parts.append("microphone muted (released)" if state.audio == "muted" else "microphone on")
    if has_video:
        parts.append(
            {
                "on": "camera on",
                "off": "camera off (released; the other side sees black)",
                "screen": "sharing the screen",
            }[state.video]
        )
    return "; ".join(parts)
