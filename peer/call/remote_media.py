"""Where what a call receives goes: the receive meter, the window, the speaker, the
recorder, and the echo sources that send it back.

Each call's sinks run in one ``asyncio.TaskGroup``, opened with the call and closed
with it: a sink that crashes is logged and the others go on (peer/tasks.py, ``logged``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from media.audio_processing import AudioProcessor
from media.sources.echo import EchoTrack
from peer.call.connection import Call
from peer.call.report import CallReport
from peer.tasks import TaskSupervisor, logged

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sinks:
    """The user's choices of where received media goes (the command line)."""

    login: str
    window: bool = True
    speaker: bool = True
    speaker_device: str | None = None
    record: Path | None = None


class RemoteMedia:
    def __init__(
        self,
        sinks: Sinks,
        relay: MediaRelay,
        report: CallReport,
        *,
        local_video: Callable[[], MediaStreamTrack | None],
        echo: dict[str, EchoTrack],
        processor: Callable[[], AudioProcessor | None],
        overlay_lines: Callable[[], list[str]],
        on_key: Callable[[str], None],
        request_quit: Callable[[], None],
        say: Callable[[str], None],
    ) -> None:
        self.sinks = sinks
        self._relay = relay
        self._report = report
        self._local_video = local_video
        self._echo = echo
        self._processor = processor
        self._overlay_lines = overlay_lines
        self._on_key = on_key
        self._request_quit = request_quit
        self._say = say
        self._calls = TaskSupervisor("remote media")  # one task per call, holding its group
        self._call: Call | None = None
        self._group: asyncio.TaskGroup | None = None
        self._waiting: list[tuple[Coroutine[Any, Any, Any], str]] = []
        self._tracks: dict[str, MediaStreamTrack] = {}
        self.calls_made = 0

    def open(self, call: Call) -> None:
        """The sinks of ``call`` start; its tracks may arrive from now on."""
        self.calls_made += 1
        self._call = call
        self._tracks = {}
        self._waiting = []
        self._calls.spawn(self._hold_group(), call.other)
        if self.sinks.record is not None:
            self._start(self._record(call), "recorder")

    async def close(self) -> None:
        """Every sink of the call stops."""
        await self._calls.stop()
        for coroutine, _ in self._waiting:
            coroutine.close()
        self._waiting = []
        self._tracks = {}

    async def _hold_group(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for coroutine, name in self._waiting:
                    group.create_task(logged(coroutine, name), name=name)
                self._waiting = []
                await asyncio.Future()  # until the call's sinks are stopped
        finally:
            self._group = None

    def _start(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        if self._group is not None:
            self._group.create_task(logged(coroutine, name), name=name)
        else:  # the group's task has not run yet
            self._waiting.append((coroutine, name))

    def _subscribe(self, track: MediaStreamTrack) -> MediaStreamTrack:
        return self._relay.subscribe(track, buffered=False)

    def track_arrived(self, track: MediaStreamTrack) -> None:
        call = self._call
        assert call is not None
        if track.kind == "video":
            if "video" in self._echo:
                self._echo["video"].set_source(self._subscribe(track))
            self._start(self._consume_video(call, self._subscribe(track)), "meter")
            if self.sinks.window:
                self._open_window(call, track)
        else:
            if "audio" in self._echo:
                self._echo["audio"].set_source(self._subscribe(track))
            self._start(self._consume_audio(self._subscribe(track)), "audio")
            if self.sinks.speaker:
                self._play(track)
        self._tracks[track.kind] = track

    async def _consume_video(self, call: Call, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, VideoFrame)
                self._report.video_frame(call, frame, time.monotonic())
        except MediaStreamError:
            return

    async def _consume_audio(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                self._report.audio_frame(await track.recv())
        except MediaStreamError:
            return

    def _open_window(self, call: Call, remote: MediaStreamTrack) -> None:
        from media.sinks.display import display_available
        from media.sinks.window import Overlay, VideoWindow

        if not display_available():
            logger.info("no display: not opening a window (use --no-window to silence this)")
            return
        preview_source = self._local_video()
        preview = self._subscribe(preview_source) if preview_source else None

        def overlay() -> Overlay:
            return Overlay(title=call.other, lines=self._overlay_lines())

        window = VideoWindow(
            f"webcam-peer: {self.sinks.login} <-> {call.other}",
            self._subscribe(remote),
            local=preview,
            overlay=overlay,
            on_key=self._on_key,
        )

        async def show() -> None:
            await window.run()
            if window.quit_requested:
                self._request_quit()

        self._start(show(), "window")

    def _play(self, remote: MediaStreamTrack) -> None:
        from media.sinks.speaker import Speaker

        speaker = Speaker(
            self._subscribe(remote),
            device=self.sinks.speaker_device,
            processor=self._processor(),
        )
        self._start(speaker.run(), "speaker")

    async def _record(self, call: Call) -> None:
        from media.sinks.recorder import Recorder

        assert self.sinks.record is not None
        path = self.sinks.record
        if self.calls_made > 1:
            path = path.with_name(f"{path.stem}-{self.calls_made}{path.suffix}")
        await call.described.wait()
        video = self._tracks.get("video")
        audio = self._tracks.get("audio")
        recorder = Recorder(
            path,
            self._subscribe(video) if video else None,
            self._subscribe(audio) if audio else None,
        )
        await recorder.start()
        self._say(f"recording the call to {path}")
        try:
            await call.ended.wait()
        finally:
            await recorder.stop()
