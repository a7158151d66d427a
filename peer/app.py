"""The peer: log in, call or wait for calls, wire media to each call, report.

``Peer.run()`` is the whole program once the command line is parsed. ``Peer`` is the
composition root: it opens the local media (once, shared by every call through a
MediaRelay), logs in, and wires the parts that each keep one concern:

- the conversation (peer/call/conversation.py): calling, answering, recovery;
- the remote media (peer/call/remote_media.py): the sinks of each call;
- the report (peer/call/report.py): stats lines and the window's overlay;
- the data side (peer/data/side.py): chat, files and the terminal's commands.

The signaling reader turns each server message into a typed one
(peer/session/messages.py) and hands it to the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from aiortc import MediaStreamTrack, RTCConfiguration
from aiortc.contrib.media import MediaRelay

from peer.call.answering import ASK_WITHIN, AnswerPolicy, FilePolicy
from peer.call.av_controls import window_key_command
from peer.call.connection import Call
from peer.call.conversation import Conversation
from peer.call.local_media import LocalMedia
from peer.call.remote_media import RemoteMedia, Sinks
from peer.call.report import CallReport
from peer.call.sources import LocalSources
from peer.call.stats import received_bytes
from peer.call.wiring import CallLike, Conduct
from peer.data.channels import ReceiveOptions, remove_stale_partials
from peer.data.side import DataOptions, DataSide
from peer.errors import ExitCode, PeerError
from peer.ice.config import call_configuration, servers_from_login
from peer.ice.turn_check import TurnReadiness
from peer.options import PeerOptions
from peer.session.client import LoginRefused, ServerUnreachable, SignalingClient, SignalingError
from peer.session.messages import parse
from peer.tasks import TaskSupervisor
from peer.tty.progress import above_progress_bars
from peer.tty.prompt import ask_yes_no
from peer.tty.terminal import Terminal
from peer.tty.untrusted import shown_lines

__all__ = ["Peer", "PeerOptions", "say"]

logger = logging.getLogger(__name__)


def say(text: str) -> None:
    """A line for the person at the terminal (stdout, so scripts can read it too)."""
    with above_progress_bars():
        print(f"[{time.strftime('%H:%M:%S')}] {shown_lines(text)}", flush=True)


class Peer:
    def __init__(self, options: PeerOptions) -> None:
        o = self.options = options
        self.signaling = SignalingClient(
            o.server, o.login, o.token, verify_tls=o.verify_tls, on_status=say
        )
        self.quit = asyncio.Event()
        self.terminal = Terminal()
        self._relay = MediaRelay()
        self._turn = TurnReadiness(say)
        self._call_tasks = TaskSupervisor("call")
        self._reader_crashed = False
        self.data = DataSide(
            DataOptions(
                o.login,
                ReceiveOptions(o.download_dir, o.max_receive_size, o.max_receive_per_call),
                FilePolicy.of(o.accept_files_from, o.ask),
                tuple(o.send_files),
            ),
            LocalMedia.of(o, say, lambda state: self.data.local_media_changed(state)),
            say=say,
            at_a_terminal=lambda: self.terminal.interactive,
        )
        self.sources = LocalSources(o, self.data.media)
        self.report = CallReport(
            o.login,
            interval=o.stats_interval,
            receive_path=o.receive_path,
            sctp_mode=o.sctp_mode,
            transfers=self.data.transfers,
            media=self.data.media_stats,
            say=say,
        )
        self.remote = RemoteMedia(
            Sinks(o.login, o.window, o.speaker, o.speaker_device, o.record),
            self._relay,
            self.report,
            local_video=lambda: self.sources.video,
            echo=self.sources.echo,
            processor=lambda: self.sources.processor,
            overlay_lines=self._overlay_lines,
            on_key=self._window_key,
            request_quit=self._request_quit,
            say=say,
        )
        self.conversation = Conversation(
            Conduct(
                o.login,
                o.call,
                o.wait,
                o.once,
                AnswerPolicy.of(o.auto_answer, o.answer_from, o.ask),
                o.answer_timeout,
                o.resolve_mdns,
            ),
            self.signaling,
            self,
            ask=self._ask,
            at_a_terminal=lambda: self.terminal.interactive,
            quit=self.quit,
            say=say,
        )

    @property
    def call(self) -> Call | None:
        call = self.conversation.call
        assert call is None or isinstance(call, Call)
        return call

    # ---- lifecycle -------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, self._request_quit)
        try:
            self.terminal.start(self.data.typed)
            self.sources.open()
            self._clean_download_dir()
            await self._connect()
            await self._turn.check(self._call_configuration())
            reader = asyncio.create_task(self._read_signaling(), name="signaling-reader")
            reader.add_done_callback(self._reader_done)
            try:
                code = await self.conversation.run()
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader  # a crash was logged, and fails the run, in _reader_done
            return int(ExitCode.ERROR if self._reader_crashed else code)
        except PeerError as exc:
            say(f"error: {exc}")
            return int(exc.code)
        finally:
            await self._shutdown()

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # A bug, not the server going away (that is SignalingError, handled in the reader):
        # logged with its traceback so no test or user mistakes it for a clean run.
        logger.error("the signaling reader crashed", exc_info=task.exception())
        self._reader_crashed = True
        self.quit.set()

    def _clean_download_dir(self) -> None:
        where = self.options.download_dir
        if removed := remove_stale_partials(where):
            left = f"{len(removed)} partial file(s) an interrupted earlier run left"
            say(f"removed {left} in {where}")

    def _request_quit(self) -> None:
        if not self.quit.is_set():
            say("hanging up and quitting")
        self.quit.set()

    async def _shutdown(self) -> None:
        await self._turn.close()
        if self.call is not None:
            await self.call.hang_up()
        await self._stop_call()
        await self.conversation.close()
        await self.sources.close()
        await self.signaling.close()

    async def _connect(self) -> None:
        try:
            await self.signaling.connect()
        except ServerUnreachable as exc:
            raise PeerError(ExitCode.SERVER_UNREACHABLE, str(exc)) from exc
        except LoginRefused as exc:
            raise PeerError(ExitCode.LOGIN_REFUSED, str(exc)) from exc
        say(f"logged in as {self.options.login} on {self.signaling.url}")

    def _call_configuration(self) -> RTCConfiguration:
        """Ours, plus the ICE servers (TURN credentials) of this login's reply."""
        from_server = servers_from_login(self.signaling.login_extras.get("iceServers"))
        return call_configuration(self.options.configuration, from_server)

    async def _read_signaling(self) -> None:
        """Every message in its own error boundary: only the connection ending stops
        reading (docs/security.md)."""
        try:
            while True:
                message = parse(await self.signaling.receive())
                if message is not None:
                    await self.conversation.handle(message)
        except SignalingError as exc:
            say(f"error: lost the signaling server: {exc}")
            self.conversation.quit_code = ExitCode.SERVER_UNREACHABLE
            call = self.call
            if call is not None and call.live:
                # Media flows peer to peer: the call need not end with the server.
                say(f"the call with {call.other} goes on; the program ends with it")
                await call.ended.wait()
            self.quit.set()

    async def _ask(self, caller: str) -> bool:
        return await ask_yes_no(self.terminal, f"answer the call from {caller}? [y/n] ", ASK_WITHIN)

    def _overlay_lines(self) -> list[str]:
        return self.report.overlay_lines(self.call) + self.data.overlay_lines(self.call)

    def _window_key(self, key: str) -> None:
        command = window_key_command(key, self.data.media.state)
        if command is not None:
            self.data.media.command(command)

    # ---- each call (the conversation's CallSide) --------------------------------------
    def new_call(self, other: str) -> Call:
        o = self.options
        self.report.new_call()
        local_tracks: list[MediaStreamTrack] = [
            self._relay.subscribe(source, buffered=False) for source in self.sources.sent()
        ]
        call = Call(
            other,
            configuration=self._call_configuration(),
            send=self.signaling.send,
            local_tracks=local_tracks,
            on_remote_track=self.remote.track_arrived,
            video_codec=o.codec,
            receive_path=o.receive_path,
            nack_mode=o.nack_mode,
            sctp_mode=o.sctp_mode,
            on_data_channel=self.data.channel_arrived,
            congestion_control=o.congestion_control,
            max_bitrate_bps=o.max_bitrate_bps,
        )
        self.remote.open(call)
        self.data.new_call(call)
        return call

    def started(self, call: CallLike) -> None:
        assert isinstance(call, Call)
        if self.options.stats_interval > 0:
            self._call_tasks.spawn(self.report.run(call), "stats")
        self._call_tasks.spawn(self._announce_connected(call), "announce")
        self._call_tasks.spawn(self.data.announce_media(), "media-state")
        self.data.started()

    async def _announce_connected(self, call: Call) -> None:
        await self.report.announce_connected(call)
        self.data.connected(call)

    async def finished(self, call: CallLike) -> None:
        assert isinstance(call, Call)
        await self._stop_call()
        self.report.print(call, final=True)

    async def abandoned(self, call: CallLike) -> None:
        await self._stop_call()

    async def _stop_call(self) -> None:
        await self.data.close()
        await self._call_tasks.stop()
        await self.remote.close()

    async def bytes_received(self, call: CallLike) -> int:
        assert isinstance(call, Call)
        return await received_bytes(call.pc)

    def explain_failure(self, reason: str) -> str:
        return self._turn.explain_failure(reason)
