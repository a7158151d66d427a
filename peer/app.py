"""The peer: log in, call or wait for calls, wire media to each call, report.

``Peer.run()`` is the whole program once the command line is parsed. It owns the
signaling client, the local media sources (opened once, shared by every call
through a MediaRelay), at most one live :class:`Call`, and the tasks that consume
what the call receives (meter, window, speaker, recorder).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCDataChannel
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from media.audio_processing import AudioProcessingUnavailable, AudioProcessor
from media.measure.level import AudioLevel
from media.measure.receive import VideoReceiveMeter
from media.sources.echo import EchoTrack
from media.sources.select import MediaSourceError, is_microphone
from peer.call.answering import ASK_WITHIN, Answer, AnswerPolicy, FilePolicy
from peer.call.av_commands import AvCommand
from peer.call.av_controls import describe_change, window_key_command
from peer.call.connection import Call, CallState, IllegalTransition
from peer.call.local_media import LocalMedia
from peer.call.media_state import MEDIA_TYPE, MediaState, decode_media_state, encode_media_state
from peer.call.recovery import (
    CONNECTION_HEALTHY,
    FRESH_OFFER_CHECK,
    HANG_UP_GRACE,
    RECOVERY_TIMEOUT,
    Ending,
    FreshOfferHold,
    Recovery,
    Step,
    Verdict,
    ice_ufrag,
    is_fresh_negotiation,
)
from peer.call.stats import (
    TransportStats,
    congestion_overlay,
    congestion_stats,
    negotiated_video_codec,
    received_bytes,
)
from peer.congestion.shell import DEFAULT_MAX_BPS
from peer.data.channels import (
    DEFAULT_CALL_BUDGET,
    DEFAULT_MAX_RECEIVE,
    CallData,
    ReceiveOptions,
    default_download_dir,
    remove_stale_partials,
)
from peer.data.chat import RecentLines
from peer.data.filenames import unreadable_file
from peer.errors import ExitCode, PeerError
from peer.ice.candidate_pair import PairWatcher
from peer.ice.config import call_configuration, servers_from_login
from peer.ice.turn_check import TurnReadiness
from peer.session.client import (
    JSONObject,
    LoginRefused,
    ServerUnreachable,
    SignalingClient,
    SignalingError,
)
from peer.session.intake import BadMessage, CandidateGate, description
from peer.stack.sctp_speed import sctp_counters
from peer.tasks import TaskSupervisor
from peer.tty.commands import (
    HELP,
    AnswerOfferCommand,
    BadCommand,
    CancelCommand,
    ChatCommand,
    HelpCommand,
    SendCommand,
    parse_command,
)
from peer.tty.progress import above_progress_bars
from peer.tty.prompt import ask_yes_no
from peer.tty.terminal import Terminal
from peer.tty.untrusted import shown, shown_lines, username_from_server

logger = logging.getLogger(__name__)


@dataclass
class PeerOptions:
    login: str
    server: str = "ws://127.0.0.1:8080/ws"
    call: str | None = None
    wait: bool = False
    token: str | None = None
    video: str = "camera"
    audio: str = "mic"
    width: int = 640
    height: int = 480
    fps: float = 30.0
    codec: str | None = None
    receive_path: str = "fast"
    sctp_mode: str = "fast"
    congestion_control: str = "gcc"
    max_bitrate_bps: int = DEFAULT_MAX_BPS
    window: bool = True
    speaker: bool = True
    speaker_device: str | None = None  # None: the system's default output
    audio_processing: bool = True  # echo cancellation etc. on the mic while the speaker plays
    record: Path | None = None
    once: bool = False
    ask: bool = False
    auto_answer: bool = False
    answer_from: list[str] = field(default_factory=list)
    accept_files_from: list[str] = field(default_factory=list)
    stats_interval: float = 0.0
    answer_timeout: float = 30.0
    configuration: RTCConfiguration = field(default_factory=lambda: RTCConfiguration([]))
    verify_tls: bool = True
    send_files: list[Path] = field(default_factory=list)
    download_dir: Path = field(default_factory=default_download_dir)
    max_receive_size: int | None = DEFAULT_MAX_RECEIVE
    max_receive_per_call: int | None = DEFAULT_CALL_BUDGET
    resolve_mdns: bool = False


def say(text: str) -> None:
    """A line for the person at the terminal (stdout, so scripts can read it too)."""
    with above_progress_bars():
        print(f"[{time.strftime('%H:%M:%S')}] {shown_lines(text)}", flush=True)


class Peer:
    def __init__(self, options: PeerOptions) -> None:
        self.options = options
        self.signaling = SignalingClient(
            options.server,
            options.login,
            options.token,
            verify_tls=options.verify_tls,
            on_status=say,
        )
        self.call: Call | None = None
        self.quit = asyncio.Event()
        self.quit_code = ExitCode.OK
        self._relay = MediaRelay()
        self._local_video: MediaStreamTrack | None = None
        self._local_audio: MediaStreamTrack | None = None
        self._audio_processor: AudioProcessor | None = None
        self._echo: dict[str, EchoTrack] = {}
        self._call_tasks = TaskSupervisor("call")
        self._offers: asyncio.Queue[tuple[str, JSONObject]] = asyncio.Queue()
        self._outgoing_errors: asyncio.Queue[JSONObject] = asyncio.Queue()
        self._online: asyncio.Queue[list[str]] = asyncio.Queue()
        self._meter: VideoReceiveMeter | None = None
        self._audio_frames = 0
        self._audio_level = AudioLevel()
        self._transport = TransportStats()
        self._calls_made = 0
        self._remote_tracks: dict[str, MediaStreamTrack] = {}
        self._pair = PairWatcher()
        self._turn = TurnReadiness(say)
        self.terminal = Terminal()
        self.data: CallData | None = None
        self._chat_lines = RecentLines()
        self._files_to_send = list(options.send_files)
        self._transfers: dict[str, int] | None = None  # the current or last call's counters
        # The partner of the conversation in progress (across re-established calls), and
        # their offers and closes that arrive while no call with them is live.
        self._partner: str | None = None
        self._recovery_news: asyncio.Queue[JSONObject] = asyncio.Queue()
        self._replaced: Call | None = None  # the call a fresh offer from the partner ended
        self._held_ufrag: str | None = None  # of a fresh offer being judged (recovery.py)
        self.media = LocalMedia(
            options.video,
            options.audio,
            (options.width, options.height),
            options.fps,
            options.login,
            say,
            self._local_media_changed,
        )
        self._remote_media: MediaState | None = None  # what the partner says they send
        self._reader_crashed = False
        self._gate = CandidateGate()  # the current call's remote candidates
        self._ringing: str | None = None  # the caller being asked about
        self._ringing_stopped = asyncio.Event()  # ...hung up before the answer

    # ---- lifecycle -------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, self._request_quit)
        try:
            self.terminal.start(self._typed)
            self._open_media()
            self._clean_download_dir()
            await self._connect()
            await self._turn.check(self._call_configuration())
            reader = asyncio.create_task(self._read_signaling(), name="signaling-reader")
            reader.add_done_callback(self._reader_done)
            try:
                code = await self._main()
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
        removed = remove_stale_partials(self.options.download_dir)
        if removed:
            say(
                f"removed {len(removed)} partial file(s) an interrupted earlier run left "
                f"in {self.options.download_dir}"
            )

    def _request_quit(self) -> None:
        if not self.quit.is_set():
            say("hanging up and quitting")
        self.quit.set()

    async def _shutdown(self) -> None:
        await self._turn.close()
        if self.call is not None:
            await self.call.hang_up()
        await self._close_data()
        await self._stop_call_tasks()
        await self.media.close()
        for track in (self._local_video, self._local_audio, *self._echo.values()):
            if track is not None:
                track.stop()
        await self.signaling.close()

    def _open_media(self) -> None:
        o = self.options
        try:
            if o.video == "echo":
                self._echo["video"] = EchoTrack("video")
            if o.audio == "echo":
                self._echo["audio"] = EchoTrack("audio")
            else:
                self._audio_processor = self._make_audio_processor()
            self.media.open(
                video=o.video != "echo", audio=o.audio != "echo", processor=self._audio_processor
            )
            self._local_video, self._local_audio = self.media.video, self.media.audio
        except MediaSourceError as exc:
            raise PeerError(ExitCode.MEDIA_DEVICE, str(exc)) from exc
        except ValueError as exc:  # a source spec that does not parse
            raise PeerError(ExitCode.USAGE, str(exc)) from exc

    def _make_audio_processor(self) -> AudioProcessor | None:
        o = self.options
        if not (o.audio_processing and o.speaker and is_microphone(o.audio)):
            return None
        try:
            return AudioProcessor()
        except AudioProcessingUnavailable as exc:
            logger.warning("%s; the microphone goes out unprocessed", exc)
            return None

    async def _connect(self) -> None:
        try:
            await self.signaling.connect()
        except ServerUnreachable as exc:
            raise PeerError(ExitCode.SERVER_UNREACHABLE, str(exc)) from exc
        except LoginRefused as exc:
            raise PeerError(ExitCode.LOGIN_REFUSED, str(exc)) from exc
        say(f"logged in as {self.options.login} on {self.signaling.url}")

    async def _main(self) -> ExitCode:
        if self.options.call:
            return await self._outgoing(self.options.call)
        say("waiting for calls (Ctrl-C to quit)")
        while not self.quit.is_set():
            offer = await self._until_quit(self._offers.get())
            if offer is None:
                break
            caller, description = offer
            code = await self._incoming(caller, description)
            if self.options.once or self.quit.is_set():
                return code
            say("waiting for the next call")
        return self.quit_code

    async def _until_quit(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Await ``coroutine`` unless quitting comes first (then None)."""
        task = asyncio.ensure_future(coroutine)
        quitting = asyncio.ensure_future(self.quit.wait())
        done, _ = await asyncio.wait({task, quitting}, return_when=asyncio.FIRST_COMPLETED)
        quitting.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    # ---- outgoing calls ----------------------------------------------------------
    async def _outgoing(self, other: str) -> ExitCode:
        if other == self.options.login:
            raise PeerError(ExitCode.USAGE, "you cannot call yourself")
        if self.options.wait:
            await self._wait_until_online(other)
            if self.quit.is_set():
                return ExitCode.OK
        say(f"calling {other}")
        call = self._new_call(other)
        await call.dial()
        outcome = await self._until_quit(self._await_answer(call))
        if self.quit.is_set():  # the user quit while it rang
            return ExitCode.OK
        if isinstance(outcome, PeerError):
            await call.hang_up(notify=False)
            raise outcome
        return await self._in_call(call)

    async def _wait_until_online(self, other: str) -> None:
        announced = False
        while not self.quit.is_set():
            await self.signaling.send({"type": "list"})
            users = await self._until_quit(asyncio.wait_for(self._online.get(), 10))
            if users is None or other in users:
                return
            if not announced:
                say(f"{other} is not online; waiting for them to log in (Ctrl-C to give up)")
                announced = True
            await self._until_quit(asyncio.sleep(1.0))

    async def _await_answer(self, call: Call) -> PeerError | None:
        """Wait until the call is answered or refused."""
        deadline = asyncio.get_running_loop().time() + self.options.answer_timeout
        while call.state is CallState.OFFERING:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return PeerError(ExitCode.DECLINED, f"{call.other} did not answer")
            error_wait = asyncio.ensure_future(self._outgoing_errors.get())
            ended_wait = asyncio.ensure_future(call.ended.wait())
            answered = asyncio.ensure_future(call.described.wait())
            done, pending = await asyncio.wait(
                {error_wait, ended_wait, answered},
                timeout=remaining,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
            if error_wait in done:
                error = error_wait.result()
                refusal = _refusal(call.other, error)
                if refusal is not None:
                    return refusal
            if ended_wait in done and call.state is CallState.ENDED:
                reason = call.end_reason or "the call ended"
                code = ExitCode.BUSY if "busy" in reason else ExitCode.DECLINED
                return PeerError(code, reason.replace("hung up", "declined the call"))
        return None

    # ---- incoming calls ----------------------------------------------------------
    async def _incoming(self, caller: str, offer: JSONObject) -> ExitCode:
        o = self.options
        policy = AnswerPolicy.of(o.auto_answer, o.answer_from, o.ask)
        decision = policy.decide(caller, self.terminal.interactive)
        if decision is Answer.DECLINE:
            say(
                f"declined the call from {caller}: nobody at a terminal to ask "
                f"(--auto-answer, or --answer-from {caller}, answers calls unattended)"
            )
            await self._send_quietly(
                {"type": "close", "otherUsername": caller, "reason": "declined"}
            )
            return ExitCode.OK
        say(f"incoming call from {caller}")
        if decision is Answer.ASK and not await self._ask_to_answer(caller):
            return ExitCode.OK
        call = self._new_call(caller)
        try:
            await call.offer_received(self._admitted(offer, "offer"))
        except Exception as exc:  # a stranger's offer must not end the program
            why = _why(exc)
            logger.warning("the offer from %s could not be applied: %s", caller, why)
            say(f"refused the call from {caller}: their offer could not be applied ({why})")
            await call.hang_up("bad-offer")
            await self._close_data()
            self.call = None
            return ExitCode.OK
        return await self._in_call(call)

    async def _ask_to_answer(self, caller: str) -> bool:
        """y/n at the terminal, unless the caller hangs up first; True to answer."""
        self._ringing = caller
        self._ringing_stopped.clear()
        question = asyncio.ensure_future(
            ask_yes_no(self.terminal, f"answer the call from {caller}? [y/n] ", ASK_WITHIN)
        )
        stopped = asyncio.ensure_future(self._ringing_stopped.wait())
        try:
            await self._until_quit(
                asyncio.wait({question, stopped}, return_when=asyncio.FIRST_COMPLETED)
            )
        finally:
            self._ringing = None
            stopped.cancel()
            if not question.done():
                question.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await question
        if question.cancelled() or self.quit.is_set():
            if self._ringing_stopped.is_set():
                say(f"{caller} hung up before the call was answered")
            return False
        if question.result():
            return True
        await self._send_quietly({"type": "close", "otherUsername": caller, "reason": "declined"})
        say(f"declined the call from {caller}")
        return False

    # ---- a call in progress ------------------------------------------------------
    def _new_call(self, other: str) -> Call:
        self._calls_made += 1
        self._meter = VideoReceiveMeter()
        self._audio_frames = 0
        self._audio_level = AudioLevel()
        self._transport = TransportStats()
        self._pair = PairWatcher()
        local_tracks: list[MediaStreamTrack] = []
        for source in (self._local_video, self._local_audio, *self._echo.values()):
            if source is not None:
                local_tracks.append(self._relay.subscribe(source, buffered=False))
        o = self.options
        self.call = Call(
            other,
            configuration=self._call_configuration(),
            send=self.signaling.send,
            local_tracks=local_tracks,
            on_remote_track=self._remote_track,
            video_codec=o.codec,
            receive_path=o.receive_path,
            sctp_mode=o.sctp_mode,
            on_data_channel=self._data_channel,
            congestion_control=o.congestion_control,
            max_bitrate_bps=o.max_bitrate_bps,
        )
        self._transfers = None
        self._gate = CandidateGate(allow_mdns=o.resolve_mdns)
        self.data = CallData(
            self.call.pc,
            o.login,
            other,
            ReceiveOptions(o.download_dir, o.max_receive_size, o.max_receive_per_call),
            say,
            self._chat_lines,
            file_policy=FilePolicy.of(o.accept_files_from, o.ask),
            at_a_terminal=lambda: self.terminal.interactive,
        )
        self.data.on_extension = self._extension_message
        self._remote_media = None
        return self.call

    async def _in_call(self, call: Call) -> ExitCode:
        """A conversation: the call, and the one re-established call that may follow it."""
        self._partner = call.other
        recovery = Recovery(dialled=call.dialled)
        gave_up = False
        farewell: str | None = None  # the partner hung up just as the connection closed
        while not self._recovery_news.empty():  # left from an earlier conversation
            self._recovery_news.get_nowait()
        try:
            while True:
                await self._attend(call)
                step = recovery.next_step(
                    self._ending(call),
                    signaling_up=self.signaling.connected and not self.quit.is_set(),
                )
                if step is Step.END:
                    if recovery.attempts and self._ending(call) is Ending.MEDIA_FAILED:
                        say(f"media connection with {call.other} failed again; call ended")
                    break
                if self._ending(call) is Ending.MEDIA_FAILED:
                    farewell = await self._partners_close_within(HANG_UP_GRACE)
                    if farewell is not None:
                        break
                replacement = await self._re_establish(call, step, recovery)
                if replacement is None:
                    gave_up = True
                    break
                call = replacement
        finally:
            self._partner = None
            self._replaced = None
        if farewell is not None:
            say(f"call with {call.other} ended: {farewell}")
            return self.quit_code
        if call.state is CallState.FAILED or gave_up:
            # Nobody re-establishes it: the partner must not wait for an offer.
            await self._send_quietly(
                {"type": "close", "otherUsername": call.other, "reason": "failed"}
            )
        reason = call.end_reason or "the call failed"
        if call.state is CallState.FAILED and call.timings.connected is None:
            reason = self._turn.explain_failure(reason)
        say(f"call with {call.other} ended: {reason}")
        if call.state is CallState.FAILED:
            if self.options.call:
                raise PeerError(ExitCode.CALL_FAILED, reason)
            return ExitCode.CALL_FAILED
        return self.quit_code

    async def _attend(self, call: Call) -> None:
        """Run the call's tasks (stats, window, recorder) until it ends."""
        if self.options.stats_interval > 0:
            self._spawn(self._report_stats(call), "stats")
        self._spawn(self._announce_connected(call), "announce")
        self._spawn(self._announce_media(), "media-state")
        if self.options.record is not None:
            self._spawn(self._record(call), "recorder")
        for path in self._files_to_send:
            assert self.data is not None
            self.data.send_file(path)
        self._files_to_send.clear()  # --send-file goes to the first call only
        await self._until_quit(call.ended.wait())
        if call.live:
            await call.hang_up()
        await self._close_data()
        await self._stop_call_tasks()
        self.call = None
        self._print_stats(call, final=True)

    def _ending(self, call: Call) -> Ending:
        if call is self._replaced:
            return Ending.REPLACED
        if call.state is CallState.FAILED and call.timings.connected is not None:
            return Ending.MEDIA_FAILED
        return Ending.OTHER

    async def _re_establish(self, failed: Call, step: Step, recovery: Recovery) -> Call | None:
        """A fresh negotiation with the same partner; the new call once it connects."""
        other = failed.other
        attempts = f"{recovery.attempts} attempt" + ("s" if recovery.attempts != 1 else "")
        say(f"media connection with {other} failed; reconnecting the call ({attempts})")
        call: Call | None = None
        try:
            if step is Step.REOFFER:
                call, why = await self._reoffer(other)
            else:
                call, why = await self._take_fresh_offer(other)
            if call is not None:
                call, why = await self._until_connected(call)
        except (TimeoutError, SignalingError) as exc:
            why = str(exc) or f"nothing from {other} within {RECOVERY_TIMEOUT:.0f} s"
            if self.call is not None and self.call is not failed:  # the half-made new call
                await self._abandon(self.call)
            call = None
        if call is None or self.quit.is_set():
            say(f"could not re-establish the call with {other} ({why}); call ended")
            return None
        say(f"call with {other} re-established")
        return call

    async def _reoffer(self, other: str) -> tuple[Call | None, str]:
        """We dialled: a new connection and a fresh offer; the call once answered."""
        call = self._new_call(other)
        await call.dial()
        refusal = await self._until_quit(
            asyncio.wait_for(self._await_answer(call), RECOVERY_TIMEOUT)
        )
        if isinstance(refusal, PeerError):
            await self._abandon(call)
            return None, str(refusal)
        return call, ""

    async def _take_fresh_offer(self, other: str) -> tuple[Call | None, str]:
        """The partner dialled: a new connection answering their fresh offer."""
        news = await self._until_quit(self._partners_next_offer())
        if news is None or news.get("type") != "offer":
            return None, f"{other} hung up"
        call = self._new_call(other)
        try:
            await call.offer_received(self._admitted(news["offer"], "offer"))
        except Exception as exc:  # as in _incoming: only this call ends
            await self._abandon(call)
            return None, f"their offer could not be applied ({_why(exc)})"
        while not self._recovery_news.empty():  # trickled after the offer
            late = self._recovery_news.get_nowait()
            if late.get("type") == "candidate":
                await self._remote_candidate(call, late.get("candidate"))
        return call, ""

    async def _until_connected(self, call: Call) -> tuple[Call | None, str]:
        ended = asyncio.ensure_future(call.ended.wait())
        connected = asyncio.ensure_future(call.connected.wait())
        await self._until_quit(
            asyncio.wait(
                {ended, connected}, timeout=RECOVERY_TIMEOUT, return_when="FIRST_COMPLETED"
            )
        )
        ended.cancel()
        connected.cancel()
        if call.state is CallState.CONNECTED:
            return call, ""
        why = call.end_reason or f"no media connection within {RECOVERY_TIMEOUT:.0f} s"
        await self._abandon(call)
        return None, why

    async def _partners_close_within(self, grace: float) -> str | None:
        """Why the partner hung up, if their close arrives within ``grace`` seconds.

        A partner who hangs up closes their connection at once (DTLS close_notify,
        straight to us) and sends their close through the server, which may arrive
        later: without this wait a plain hang-up would read as a failed connection
        and start a pointless re-establishment. Other news is kept, in order."""
        try:
            async with asyncio.timeout(grace):
                news = await self._recovery_news.get()
        except TimeoutError:
            return None
        if news.get("type") == "close":
            reason = news.get("reason")
            detail = f" ({reason})" if isinstance(reason, str) and reason else ""
            return f"{self._partner} hung up{detail}"
        kept = [news]
        while not self._recovery_news.empty():
            kept.append(self._recovery_news.get_nowait())
        for item in kept:
            self._recovery_news.put_nowait(item)
        return None

    async def _partners_next_offer(self) -> JSONObject:
        """The partner's fresh offer or close (their stale candidates are skipped)."""
        async with asyncio.timeout(RECOVERY_TIMEOUT):
            while True:
                news = await self._recovery_news.get()
                if news.get("type") == "close" or isinstance(news.get("offer"), dict):
                    return news

    def _hold_fresh_offer(self, call: Call, message: JSONObject, sdp: str) -> None:
        """Queue the partner's fresh offer where a failure of our call finds it, and
        judge it by our own connection meanwhile (recovery.py, FreshOfferHold)."""
        if self._held_ufrag is not None:
            logger.warning("ignored another fresh offer from %s while one is held", call.other)
            return
        self._held_ufrag = ice_ufrag(sdp)
        self._recovery_news.put_nowait(message)
        self._spawn(self._judge_fresh_offer(call, message), "fresh-offer")

    async def _judge_fresh_offer(self, call: Call, message: JSONObject) -> None:
        hold = FreshOfferHold(time.monotonic())
        try:
            while call.live:
                received = await received_bytes(call.pc)
                verdict = hold.judge(time.monotonic(), received)
                if verdict is Verdict.TAKE and not call.dialled and call.live:
                    # Our media stopped too: this connection gives way to theirs.
                    self._replaced = call
                    await call.hang_up("replaced by a fresh negotiation", notify=False)
                    return
                if verdict is Verdict.REFUSE:
                    self._forget_held(message)
                    say(
                        f"refused a fresh offer from {call.other}: our media connection "
                        "with them still works; the call goes on"
                    )
                    await self._send_quietly(
                        {"type": "close", "otherUsername": call.other, "reason": CONNECTION_HEALTHY}
                    )
                    return
                await asyncio.sleep(FRESH_OFFER_CHECK)
        finally:
            self._held_ufrag = None

    def _forget_held(self, offer: JSONObject) -> None:
        """Take a refused fresh offer and its candidates out of the recovery news."""
        ufrag = self._held_ufrag
        kept: list[JSONObject] = []
        while not self._recovery_news.empty():
            news = self._recovery_news.get_nowait()
            theirs = news.get("type") == "candidate" and _ufrag_of(news.get("candidate")) == ufrag
            if news is not offer and not theirs:
                kept.append(news)
        for news in kept:
            self._recovery_news.put_nowait(news)

    async def _abandon(self, call: Call) -> None:
        """End a re-establishing call quietly (the caller of this tells the partner)."""
        if call.live:
            await call.hang_up(notify=False)
        self.call = None
        await self._stop_call_tasks()

    async def _send_quietly(self, message: JSONObject) -> None:
        try:
            await self.signaling.send(message)
        except SignalingError as exc:  # the server may be gone; nothing more to do
            logger.info(
                "could not send %s to %s: %s", message["type"], message.get("otherUsername"), exc
            )

    def _remote_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            if "video" in self._echo:
                self._echo["video"].set_source(self._relay.subscribe(track, buffered=False))
            self._spawn(self._consume_video(self._relay.subscribe(track, buffered=False)), "meter")
            if self.options.window:
                self._open_window(track)
        else:
            if "audio" in self._echo:
                self._echo["audio"].set_source(self._relay.subscribe(track, buffered=False))
            self._spawn(self._consume_audio(self._relay.subscribe(track, buffered=False)), "audio")
            if self.options.speaker:
                self._play(track)
        self._remote_tracks[track.kind] = track

    async def _consume_video(self, track: MediaStreamTrack) -> None:
        meter = self._meter
        assert meter is not None
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, VideoFrame)
                if self.call is not None and self.call.timings.first_frame is None:
                    self.call.timings.first_frame = time.monotonic()
                meter.on_frame(frame)
        except MediaStreamError:
            return

    async def _consume_audio(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self._audio_frames += 1
                if isinstance(frame, AudioFrame):
                    self._audio_level.on_frame(frame)
        except MediaStreamError:
            return

    def _open_window(self, remote: MediaStreamTrack) -> None:
        from media.sinks.display import display_available
        from media.sinks.window import Overlay, VideoWindow

        if not display_available():
            logger.info("no display: not opening a window (use --no-window to silence this)")
            return
        call = self.call
        assert call is not None
        preview_source = self._local_video
        preview = self._relay.subscribe(preview_source, buffered=False) if preview_source else None

        def overlay() -> Overlay:
            return Overlay(title=call.other, lines=self._overlay_lines())

        window = VideoWindow(
            f"webcam-peer: {self.options.login} <-> {call.other}",
            self._relay.subscribe(remote, buffered=False),
            local=preview,
            overlay=overlay,
            on_key=self._window_key,
        )

        async def show() -> None:
            await window.run()
            if window.quit_requested:
                self._request_quit()

        self._spawn(show(), "window")

    def _play(self, remote: MediaStreamTrack) -> None:
        from media.sinks.speaker import Speaker

        speaker = Speaker(
            self._relay.subscribe(remote, buffered=False),
            device=self.options.speaker_device,
            processor=self._audio_processor,
        )
        self._spawn(speaker.run(), "speaker")

    async def _record(self, call: Call) -> None:
        from media.sinks.recorder import Recorder

        assert self.options.record is not None
        path = self.options.record
        if self._calls_made > 1:
            path = path.with_name(f"{path.stem}-{self._calls_made}{path.suffix}")
        await call.described.wait()
        tracks = self._remote_tracks
        video = tracks.get("video")
        audio = tracks.get("audio")
        recorder = Recorder(
            path,
            self._relay.subscribe(video, buffered=False) if video else None,
            self._relay.subscribe(audio, buffered=False) if audio else None,
        )
        await recorder.start()
        say(f"recording the call to {path}")
        try:
            await call.ended.wait()
        finally:
            await recorder.stop()

    async def _announce_connected(self, call: Call) -> None:
        await call.connected.wait()
        pair = self._pair.update(call.pc)
        say(f"call with {call.other} connected" + (f" over {pair.describe()}" if pair else ""))
        if call.pc.sctp is None and self.data is not None:
            self.data.no_data_channels()

    async def _report_stats(self, call: Call) -> None:
        while call.live:
            await asyncio.sleep(self.options.stats_interval)
            if not call.live:
                return
            await self._transport.update(call.pc)
            self._print_stats(call)

    def _stats(self, call: Call) -> dict[str, Any]:
        video = self._meter.snapshot() if self._meter else {}
        return {
            "event": "stats",
            "user": self.options.login,
            "peer": call.other,
            "state": call.state.value,
            "video": video,
            "audio_frames": self._audio_frames,
            "audio_level_dbfs": self._audio_level.dbfs,
            **self._transport.as_dict(),
            "pair": pair.as_dict() if (pair := self._pair.update(call.pc)) else None,
            "receive_path": _receive_path_counters(self.options.receive_path, call),
            "codec": negotiated_video_codec(call.pc),
            "transfers": dict(self.data.counters) if self.data is not None else self._transfers,
            "sctp": sctp_counters(self.options.sctp_mode, call.pc),
            "congestion": congestion_stats(call.congestion),
            "media": {
                "sending": vars(self.media.state),
                "remote": vars(self._remote_media) if self._remote_media else None,
            },
            "setup_ms": {
                "ice": _ms(call.timings.since_start(call.timings.ice_connected)),
                "connected": _ms(call.timings.since_start(call.timings.connected)),
                "first_frame": _ms(call.timings.since_start(call.timings.first_frame)),
            },
        }

    def _print_stats(self, call: Call, final: bool = False) -> None:
        if self.options.stats_interval <= 0:
            return
        stats = self._stats(call)
        if final:
            stats["event"] = "final"
        print(json.dumps(stats), flush=True)

    def _overlay_lines(self) -> list[str]:
        video = self._meter.snapshot() if self._meter else {}
        parts = []
        if video.get("width"):
            parts.append(f"{video['width']}x{video['height']}")
        if video.get("fps") is not None:
            parts.append(f"{video['fps']:.1f} fps")
        if self._transport.bitrate_in_kbps is not None:
            parts.append(f"{self._transport.bitrate_in_kbps / 1000:.2f} Mbit/s")
        if self._transport.rtt_ms is not None:
            parts.append(f"RTT {self._transport.rtt_ms:.0f} ms")
        lines = [" ".join(parts)] if parts else ["connecting..."]
        if self.call is not None and (sending := congestion_overlay(self.call.congestion)):
            lines.append(sending)
        pair = self._pair.update(self.call.pc) if self.call is not None else self._pair.last
        if pair is not None:
            lines.append(pair.describe())
        if self._remote_media is not None and self._remote_media.describe():
            lines.append(
                f"{self.call.other if self.call else 'they'}: {self._remote_media.describe()}"
            )
        lines.extend(self._chat_lines.visible(time.monotonic()))
        return lines

    # ---- mute, camera off, screen (docs/datachannels.md, "Media state") ----------------
    def _local_media_changed(self, state: MediaState) -> None:
        if self.data is not None:
            self.data.send_extension(encode_media_state(state))

    async def _announce_media(self) -> None:
        data = self.data
        if data is not None:
            await data.chat_open.wait()
            data.send_extension(encode_media_state(self.media.state))

    def _extension_message(self, kind: str, message: str) -> None:
        if kind != MEDIA_TYPE or self.call is None:
            return
        state = decode_media_state(message)
        if state is None:
            say(f"ignored a malformed media-state message from {self.call.other}")
            return
        for line in describe_change(self._remote_media, state, self.call.other):
            say(line)
        self._remote_media = state

    def _window_key(self, key: str) -> None:
        command = window_key_command(key, self.media.state)
        if command is not None:
            self.media.command(command)

    # ---- chat and files ----------------------------------------------------------
    def _data_channel(self, channel: RTCDataChannel) -> None:
        if self.data is not None:
            self.data.channel_arrived(channel)

    def _typed(self, line: str) -> None:
        """A line from the terminal: chat or a command."""
        command = parse_command(line)
        if command is None:
            return
        if isinstance(command, HelpCommand):
            say(HELP)
        elif isinstance(command, AvCommand):
            self.media.command(command)
        elif isinstance(command, BadCommand):
            say(command.why)
        elif self.data is None:
            say("not in a call: nothing sent")
        elif isinstance(command, ChatCommand):
            self.data.send_chat(command.text)
        elif isinstance(command, SendCommand):
            problem = unreadable_file(command.path)
            if problem:
                say(problem)
            else:
                self.data.send_file(command.path)
        elif isinstance(command, CancelCommand):
            self.data.cancel(command.number)
        elif isinstance(command, AnswerOfferCommand):
            self.data.answer_offer(command.number, command.accept)

    async def _close_data(self) -> None:
        data, self.data = self.data, None
        if data is not None:
            await data.close()
            self._transfers = dict(data.counters)  # for the final stats line

    def _call_configuration(self) -> RTCConfiguration:
        """Ours, plus the ICE servers (TURN credentials) of this login's reply."""
        from_server = servers_from_login(self.signaling.login_extras.get("iceServers"))
        return call_configuration(self.options.configuration, from_server)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        self._call_tasks.spawn(coroutine, name)

    async def _stop_call_tasks(self) -> None:
        await self._call_tasks.stop()
        self._remote_tracks.clear()

    # ---- signaling ---------------------------------------------------------------
    async def _read_signaling(self) -> None:
        """Every message in its own error boundary: only the connection ending stops
        reading (docs/security.md)."""
        try:
            while True:
                message = await self.signaling.receive()
                await self._handle(message)
        except SignalingError as exc:
            say(f"error: lost the signaling server: {exc}")
            self.quit_code = ExitCode.SERVER_UNREACHABLE
            call = self.call
            if call is not None and call.live:
                # Media flows peer to peer: the call need not end with the server.
                say(f"the call with {call.other} goes on; the program ends with it")
                await call.ended.wait()
            self.quit.set()

    async def _handle(self, message: JSONObject) -> None:
        """One message; whatever it does wrong ends at most the call it belongs to."""
        kind = shown(message.get("type"), 20)
        sender = message.get("username")
        try:
            await self._dispatch(message)
        except SignalingError:
            raise  # the connection itself: the reader's business
        except IllegalTransition as exc:
            logger.warning("ignored %s from %s: %s", kind, shown(sender, 40), exc)
        except Exception as exc:
            why = _why(exc)
            logger.warning("ignored %s from %s: %s", kind, shown(sender, 40), why)
            call = self.call
            if call is not None and call.live and sender == call.other:
                say(f"ending the call with {call.other}: their {kind} could not be applied ({why})")
                await call.hang_up("bad-message")

    def _admitted(self, data: object, kind: str) -> JSONObject:
        """A description from the other side, its refused candidates taken out."""
        checked = description(data, kind)
        checked["sdp"], refusals = self._gate.filter_sdp(checked["sdp"])
        if refusals:
            logger.info("left out %d candidate(s) of the %s: %s", len(refusals), kind, refusals[0])
        return checked

    async def _remote_candidate(self, call: Call, candidate: object) -> None:
        why = self._gate.admit(candidate)
        if why is not None:
            if self._gate.first_time(why):
                say(f"ignoring candidates from {call.other}: {why}")
            return
        await call.candidate_received(candidate if isinstance(candidate, dict) else None)

    async def _dispatch(self, message: JSONObject) -> None:
        kind = message.get("type")
        if "username" in message and username_from_server(message["username"]) is None:
            # Relayed messages carry a name the server checked; anything else is not
            # from a user of this protocol.
            logger.warning(
                "ignored %s with the username %s", shown(kind, 20), shown(message["username"], 40)
            )
            return
        sender = message.get("username")
        call = self.call
        from_partner = call is not None and call.live and sender == call.other
        between_calls = self._partner is not None and sender == self._partner and not from_partner
        if between_calls and kind in ("offer", "candidate", "close"):
            # Between two calls of a conversation (re-establishing): for _re_establish.
            self._recovery_news.put_nowait(message)
            return
        if kind == "offer" and sender is not None:
            if from_partner:
                assert call is not None
                offer = description(message.get("offer"), "offer")
                if is_fresh_negotiation(call.remote_sdp, offer["sdp"]):
                    # The partner starts over on a new connection: only if ours failed too.
                    self._hold_fresh_offer(call, message, offer["sdp"])
                else:
                    await call.offer_received(self._admitted(offer, "offer"))
            elif call is not None and call.live:
                say(f"{sender} called while we are in a call; answering busy")
                await self.signaling.send(
                    {"type": "close", "otherUsername": sender, "reason": "busy"}
                )
            elif self.options.call:
                say(f"ignoring a call from {sender}: this peer only calls {self.options.call}")
                await self.signaling.send(
                    {"type": "close", "otherUsername": sender, "reason": "busy"}
                )
            else:
                try:
                    offer = description(message.get("offer"), "offer")
                except BadMessage as exc:
                    # The server now has us ringing with them: the close frees both.
                    say(f"refused the call from {sender}: {exc}")
                    await self.signaling.send(
                        {"type": "close", "otherUsername": sender, "reason": "bad-offer"}
                    )
                    return
                await self._offers.put((str(sender), offer))
        elif kind == "answer" and from_partner:
            assert call is not None
            await call.answer_received(self._admitted(message.get("answer"), "answer"))
        elif kind == "candidate" and from_partner:
            assert call is not None
            candidate = message.get("candidate")
            if self._held_ufrag is not None and _ufrag_of(candidate) == self._held_ufrag:
                self._recovery_news.put_nowait(message)  # for the held fresh offer
            else:
                await self._remote_candidate(call, candidate)
        elif kind == "close" and sender is not None and sender == self._ringing:
            self._ringing_stopped.set()
        elif kind == "close" and from_partner:
            assert call is not None
            reason = message.get("reason")
            await call.remote_closed(shown(reason, 80) if isinstance(reason, str) else None)
        elif kind == "users" and isinstance(message.get("users"), list):
            users = message["users"]
            await self._online.put([u for u in users if username_from_server(u) is not None])
        elif kind == "error":
            logger.info("server error: %s", shown(message, 400))
            if call is not None and call.state is CallState.OFFERING:
                await self._outgoing_errors.put(message)
            elif message.get("reason") not in ("not-in-call",):
                say(f"server says: {shown(message.get('message') or message.get('reason'))}")
        else:
            logger.debug("ignoring %s from %s", shown(kind, 20), shown(sender, 40))


def _receive_path_counters(path: str, call: Call) -> dict[str, Any]:
    counters: dict[str, Any] = {"path": path}
    for buffer in call.receive_buffers:
        for name, value in vars(buffer.counters).items():
            counters[name] = counters.get(name, 0) + value
    return counters


def _ufrag_of(candidate: object) -> object:
    return candidate.get("usernameFragment") if isinstance(candidate, dict) else None


def _refusal(other: str, error: JSONObject) -> PeerError | None:
    reason = error.get("reason")
    if reason == "unknown-user":
        return PeerError(ExitCode.USER_OFFLINE, f"{other} is not online (try --wait)")
    if reason == "busy":
        return PeerError(ExitCode.BUSY, f"{other} is busy in another call")
    if reason in ("in-another-call", "self-call", "invalid-username"):
        return PeerError(ExitCode.ERROR, shown(error.get("message") or reason))
    return None


def _why(exc: BaseException) -> str:
    """An exception as a one-line reason (aiortc's assertions carry no message)."""
    return shown(str(exc) or type(exc).__name__, 160)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
