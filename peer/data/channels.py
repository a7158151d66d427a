"""Chat and file transfers over one call's data channels (docs/datachannels.md).

The thin aiortc shell around :mod:`peer.data.chat` and the state machines of
:mod:`peer.data.transfer`: it feeds them what arrives on the channels and carries out the
actions they return (send, open/write/save/delete the temporary file, close).

Only the plain RTCDataChannel API is used (``send``, ``bufferedAmount``,
``bufferedAmountLowThreshold``, the ``bufferedamountlow`` event), so a faster SCTP
transport can be put under it without changing anything here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.exceptions import InvalidStateError

from peer.call.answering import Answer, FilePolicy
from peer.data.chat import (
    ChatError,
    ChatIgnored,
    ChatLimiter,
    ChatLine,
    RecentLines,
    decode_chat,
    encode_chat,
)
from peer.data.filenames import claim
from peer.data.transfer import (
    Action,
    CloseChannel,
    Discard,
    Offered,
    OpenFile,
    Receiver,
    RecvState,
    SaveFile,
    Send,
    Sender,
    SendState,
    StartData,
    StopData,
    Write,
)
from peer.data.transfer_wire import MAX_CHUNK, Cancel, encode_control
from peer.tasks import TaskSupervisor
from peer.tty.progress import Progress, make_progress
from peer.tty.untrusted import shown

logger = logging.getLogger(__name__)

Say = Callable[[str], None]
# The sender reads more of the file only while less than HIGH_WATER waits in the
# channel, then sleeps until bufferedamountlow at LOW_WATER. With SCTP's own window
# this bounds what a transfer holds in memory whatever the file's size. Small on
# purpose: chat shares the association's one send queue, so a line typed during a
# transfer waits behind what is buffered (measured here: 70 ms at 1 MiB, 290 ms at
# 4 MiB), and a bigger mark did not measure faster.
HIGH_WATER: Final = 1024 * 1024
LOW_WATER: Final = 256 * 1024
# How long the person has to say /accept N before an offer is rejected.
OFFER_ANSWER_WITHIN: Final = 60.0
# A receiver answers a header once its person (or --accept-files-from) took the file;
# one that never does (a page without file support) must not keep the sender waiting
# forever. Longer than OFFER_ANSWER_WITHIN, so a person has all of their minute.
ACCEPT_TIMEOUT: Final = 90.0
TEMP_PREFIX: Final = ".webcam-peer-"
TEMP_SUFFIX: Final = ".part"
SAVED_MODE: Final = 0o644
# Each incoming transfer holds an open temporary file; a peer opening channel after
# channel must not be able to exhaust file descriptors or fill the disk in parallel.
MAX_INCOMING_AT_ONCE: Final = 8
# A receiver killed outright cannot delete its temporary file; the next run does,
# once nothing has written to it for this long (another peer may share the folder).
STALE_PARTIAL_AFTER: Final = 600.0


# What one call may bring in at most, and what every file leaves free on the disk.
DEFAULT_MAX_RECEIVE: Final = 1024**3
DEFAULT_CALL_BUDGET: Final = 4 * 1024**3
FREE_SPACE_MARGIN: Final = 256 * 1024 * 1024
# An open file channel holds a transfer slot; one whose header does not come in this
# long gives it back.
HEADER_WITHIN: Final = 30.0


def default_download_dir(home: Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """``~/Downloads/webcam-peer``, or under the folder the desktop calls Downloads
    (``XDG_DOWNLOAD_DIR``): never the current directory, where a received
    ``conftest.py`` or ``Makefile`` would be run by the next command typed there."""
    home = home or Path.home()
    environ = dict(os.environ) if environ is None else environ
    xdg = environ.get("XDG_DOWNLOAD_DIR", "").replace("$HOME", str(home))
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / "Downloads"
    return base / "webcam-peer"


class CallBudget:
    """The bytes a call's accepted files may add up to."""

    def __init__(self, limit: int | None) -> None:
        self.remaining = limit

    def allows(self, size: int) -> bool:
        return self.remaining is None or size <= self.remaining

    def take(self, size: int) -> bool:
        if self.remaining is None:
            return True
        if size > self.remaining:
            return False
        self.remaining -= size
        return True


@dataclass(frozen=True)
class ReceiveOptions:
    download_dir: Path = field(default_factory=default_download_dir)
    max_size: int | None = DEFAULT_MAX_RECEIVE
    call_budget: int | None = DEFAULT_CALL_BUDGET


def remove_stale_partials(directory: Path, now: float | None = None) -> list[Path]:
    """Delete temporary files of transfers nobody has written to for a while."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        candidates = list(directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"))
    except OSError:
        return removed
    for path in candidates:
        try:
            if now - path.stat().st_mtime >= STALE_PARTIAL_AFTER and path.is_file():
                path.unlink()
                removed.append(path)
        except OSError as exc:
            logger.info("could not remove the stale partial file %s: %s", path, exc)
    return removed


class IncomingTransfer:
    """One file arriving on its own ``file`` channel."""

    def __init__(
        self,
        number: int,
        channel: RTCDataChannel,
        other: str,
        options: ReceiveOptions,
        say: Say,
        budget: CallBudget | None = None,
        decide: Callable[[], Answer] = lambda: Answer.DECLINE,
        answer_within: float = OFFER_ANSWER_WITHIN,
    ) -> None:
        self.number = number
        self.decide = decide
        self.answer_within = answer_within
        self._offer_timer: asyncio.TimerHandle | None = None
        self.budget = budget or CallBudget(None)
        self.channel = channel
        self.other = other
        self.options = options
        self.say = say
        self.receiver = Receiver(options.max_size)
        self.finished = asyncio.Event()
        self.saved_as: Path | None = None
        self._temp: Path | None = None
        self._file: IO[bytes] | None = None
        self._progress: Progress | None = None
        channel.on("message", guarded(f"transfer {number}", self._message, self._broken))
        channel.on("close", guarded(f"transfer {number}", self.closed, self._broken))
        self._header_timer = asyncio.get_running_loop().call_later(
            HEADER_WITHIN, guarded(f"transfer {number}", self._no_header, self._broken)
        )

    def _no_header(self) -> None:
        if self.receiver.state is RecvState.HEADER:
            self.say(
                f"a file channel from {self.other} sent no file header within "
                f"{HEADER_WITHIN:.0f} s: closed"
            )
            self._apply(self.receiver.no_header())

    def _message(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self._apply(self.receiver.on_text(message))
        else:
            self._apply(self.receiver.on_binary(message))

    def _broken(self) -> None:
        """Handling a message failed in a way the state table did not foresee: the
        transfer ends, its temporary file goes, the call goes on."""
        self._discard()
        if not self.receiver.finished:
            self.receiver.state = RecvState.FAILED
            self.receiver.reason = "protocol-error"
        with contextlib.suppress(Exception):
            self.channel.close()
        if not self.finished.is_set():
            self._report()
            self.finished.set()

    def cancel(self) -> None:
        self._apply(self.receiver.cancel())

    @property
    def offered(self) -> bool:
        return self.receiver.offered

    def accept(self) -> None:
        """The person said /accept N."""
        self._apply(self.receiver.accept())

    def reject(self) -> None:
        """The person said /reject N."""
        if self.receiver.offered:
            self.say(f"rejected {self.receiver.name} from {self.other}")
        self._apply(self.receiver.reject())

    def _unanswered(self) -> None:
        if self.receiver.offered:
            self.say(
                f"rejected {self.receiver.name} from {self.other}: not accepted within "
                f"{self.answer_within:.0f} s"
            )
            self._apply(self.receiver.reject())

    def closed(self) -> None:
        """The channel closed, or the call ended: anything unfinished is deleted."""
        self._apply(self.receiver.closed())

    def _apply(self, actions: Iterable[Action]) -> None:
        pending = deque(actions)
        while pending:
            pending.extend(self._do(pending.popleft()))
        if self.receiver.finished and not self.finished.is_set():
            self._header_timer.cancel()
            if self._offer_timer is not None:
                self._offer_timer.cancel()
            self._report()
            self.finished.set()

    def _do(self, action: Action) -> list[Action]:
        if isinstance(action, Send):
            _send(self.channel, action.message)
        elif isinstance(action, Offered):
            return self._offered(action)
        elif isinstance(action, OpenFile):
            return self._open(action)
        elif isinstance(action, Write):
            return self._write(action.data)
        elif isinstance(action, SaveFile):
            return self._save(action.name)
        elif isinstance(action, Discard):
            self._discard()
        elif isinstance(action, CloseChannel):
            self.channel.close()
        return []

    def _offered(self, action: Offered) -> list[Action]:
        """Nothing is written before the person (or --accept-files-from) says yes."""
        self._header_timer.cancel()
        # Refusals that do not depend on anyone's answer come first: nobody is asked
        # about a file there is no room for.
        refusal = self._no_room(action.name, action.size, take=False)
        if refusal is not None:
            return refusal
        what = f"{action.name} ({action.size} bytes)"
        decision = self.decide()
        if decision is Answer.ANSWER:
            self.say(f"accepting {what} from {self.other} (--accept-files-from {self.other})")
            return self.receiver.accept()
        if decision is Answer.DECLINE:
            self.say(
                f"refused {what} from {self.other}: nobody at a terminal to ask "
                f"(--accept-files-from {self.other} takes their files unattended)"
            )
            return self.receiver.reject()
        self.say(
            f"{self.other} offers {what} as transfer {self.number}: "
            f"/accept {self.number} or /reject {self.number} "
            f"(rejected in {self.answer_within:.0f} s)"
        )
        self._offer_timer = asyncio.get_running_loop().call_later(
            self.answer_within,
            guarded(f"transfer {self.number}", self._unanswered, self._broken),
        )
        return []

    def _no_room(self, name: str, size: int, *, take: bool) -> list[Action] | None:
        """The actions refusing a file of ``size`` bytes there is no room for, or None
        (then, with ``take``, its bytes are counted against the call's budget)."""
        directory = self.options.download_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)  # the default one, made on first use
            free = shutil.disk_usage(directory).free
        except OSError as exc:
            self.say(f"cannot receive {name}: {exc.strerror or exc} in {directory}")
            return self.receiver.disk_error()
        if size > free - FREE_SPACE_MARGIN:
            self.say(
                f"refused {name} ({size} bytes) from {self.other}: only "
                f"{free} bytes free in {directory}"
            )
            return self.receiver.refuse("too-large")
        if not (self.budget.take(size) if take else self.budget.allows(size)):
            self.say(
                f"refused {name} ({size} bytes) from {self.other}: over what "
                f"one call may bring in (--max-receive-per-call)"
            )
            return self.receiver.refuse("too-large")
        return None

    def _open(self, action: OpenFile) -> list[Action]:
        refusal = self._no_room(action.name, action.size, take=True)
        if refusal is not None:
            return refusal
        directory = self.options.download_dir
        try:
            fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
        except OSError as exc:
            self.say(f"cannot receive {action.name}: {exc.strerror or exc} in {directory}")
            return self.receiver.disk_error()
        self._temp = Path(temp)
        # mkstemp makes the file private; a saved file gets the usual mode.
        with contextlib.suppress(OSError):
            os.fchmod(fd, SAVED_MODE)
        self._file = os.fdopen(fd, "wb")
        self.say(
            f"receiving {action.name} ({action.size} bytes) from {self.other} "
            f"as transfer {self.number} (/cancel {self.number} stops it)"
        )
        self._progress = make_progress(f"receiving {action.name}", action.size, self.say)
        return self.receiver.opened()

    def _write(self, data: bytes) -> list[Action]:
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as exc:
            self.say(f"cannot write {self.receiver.name}: {exc.strerror or exc}")
            return self.receiver.disk_error()
        if self._progress is not None:
            self._progress.advance(len(data))
        return []

    def _save(self, name: str) -> list[Action]:
        assert self._file is not None and self._temp is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self.saved_as = claim(self._temp, self.options.download_dir.resolve(), name)
        except OSError as exc:
            self.say(f"cannot save {name}: {exc.strerror or exc}")
            return self.receiver.disk_error()
        self._temp = None
        return self.receiver.saved()

    def _discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        if self._temp is not None:
            try:
                self._temp.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.say(f"could not delete the partial file {self._temp}: {exc.strerror or exc}")
            self._temp = None

    def _report(self) -> None:
        if self._progress is not None:
            self._progress.close()
        r = self.receiver
        if r.state is RecvState.DONE:
            self.say(
                f"received {r.name} from {self.other} -> {self.saved_as} "
                f"({r.received} bytes), sha256 {r.sha256} verified"
            )
            return
        what = f"transfer of {r.name} from {self.other}" if r.name else f"a file from {self.other}"
        self.say(
            f"{what} {_ending(r.state is RecvState.CANCELLED, r.by_remote, r.reason, self.other)}"
            " (nothing saved)"
        )


class OutgoingTransfer:
    """One file going out on a ``file`` channel of its own."""

    def __init__(
        self, number: int, path: Path, other: str, say: Say, accept_within: float = ACCEPT_TIMEOUT
    ) -> None:
        self.number = number
        self.path = path
        self.other = other
        self.say = say
        self.accept_within = accept_within
        self.sender: Sender | None = None
        self._channel: RTCDataChannel | None = None
        self._wake = asyncio.Event()
        self._progress: Progress | None = None
        self._cancelled_early = False
        self._accept_deadline: float | None = None

    @property
    def channel(self) -> RTCDataChannel | None:
        return self._channel

    def cancel(self) -> None:
        if self.sender is None:
            self._cancelled_early = True
        else:
            self._apply(self.sender.cancel())
        self._wake.set()

    def closed(self) -> None:
        if self.sender is not None:
            self._apply(self.sender.closed())
        self._wake.set()

    async def run(self, pc: RTCPeerConnection) -> None:
        try:
            file = self.path.open("rb")
            size = os.fstat(file.fileno()).st_size
        except OSError as exc:
            self.say(f"cannot send {self.path}: {exc.strerror or exc}")
            return
        with file:
            if self._cancelled_early:
                self.say(f"transfer of {self.path.name} to {self.other} cancelled (nothing sent)")
                return
            self.sender = Sender(self.path.name, size)
            self.say(
                f"sending {self.path.name} ({size} bytes) to {self.other} "
                f"as transfer {self.number} (/cancel {self.number} stops it)"
            )
            self._progress = make_progress(f"sending {self.path.name}", size, self.say)
            try:
                await self._transfer(pc, file)
            finally:
                self._progress.close()
                if self._channel is not None and self._channel.readyState != "closed":
                    self._channel.close()
            self._report()

    async def _transfer(self, pc: RTCPeerConnection, file: IO[bytes]) -> None:
        sender = self.sender
        assert sender is not None
        channel = pc.createDataChannel("file", ordered=True)
        self._channel = channel
        channel.bufferedAmountLowThreshold = LOW_WATER
        channel.on("open", lambda: self._apply(sender.start()))
        channel.on("message", guarded(f"transfer {self.number}", self._message, self.cancel))
        channel.on("close", self.closed)
        channel.on("bufferedamountlow", self._wake.set)
        while not sender.finished:
            self._wake.clear()
            if sender.state is SendState.SENDING and channel.bufferedAmount <= HIGH_WATER:
                try:
                    data = file.read(min(MAX_CHUNK, sender.remaining))
                except OSError as exc:
                    self.say(f"cannot read {self.path}: {exc.strerror or exc}")
                    self._apply(sender.read_error())
                    continue
                self._apply(sender.chunk(data))
                if self._progress is not None:
                    self._progress.advance(len(data))
                # Let the channel's flush and the other side's messages (cancel) run.
                await asyncio.sleep(0)
                continue
            if sender.state is SendState.OFFERING:
                await self._wait_for_accept(sender)
            else:
                await self._wake.wait()

    async def _wait_for_accept(self, sender: Sender) -> None:
        if self._accept_deadline is None:
            self._accept_deadline = asyncio.get_running_loop().time() + self.accept_within
        remaining = self._accept_deadline - asyncio.get_running_loop().time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(remaining, 0))
            return
        if sender.state is SendState.OFFERING:
            self.say(
                f"{self.other} did not accept {sender.name} within {self.accept_within:.0f} s "
                "(their side may not take files)"
            )
            self._apply(sender.cancel())

    def _message(self, message: str | bytes) -> None:
        assert self.sender is not None
        if isinstance(message, str):
            self._apply(self.sender.on_text(message))
        else:
            self._apply(self.sender.on_binary(message))
        self._wake.set()

    def _apply(self, actions: Iterable[Action]) -> None:
        pending = deque(actions)
        while pending:
            action = pending.popleft()
            channel = self._channel
            if isinstance(action, Send) and channel is not None:
                if not _send(channel, action.message):
                    assert self.sender is not None
                    pending.extend(self.sender.closed())
            elif isinstance(action, StartData):
                assert self.sender is not None
                pending.extend(self.sender.all_read())
            elif isinstance(action, CloseChannel) and channel is not None:
                channel.close()
            elif isinstance(action, StopData):
                pass  # the read loop stops by itself: the sender is finished
        self._wake.set()

    def _report(self) -> None:
        s = self.sender
        assert s is not None
        if s.state is SendState.DONE:
            self.say(
                f"sent {s.name} ({s.size} bytes) to {self.other}, "
                f"sha256 {s.sha256}: verified by {self.other}"
            )
            return
        ending = _ending(s.state is SendState.CANCELLED, s.by_remote, s.reason, self.other)
        self.say(f"transfer of {s.name} to {self.other} {ending}")


def _ending(cancelled: bool, by_remote: bool, reason: str | None, other: str) -> str:
    """How a transfer ended without success, in words."""
    if reason == "rejected":
        return f"rejected by {other}" if by_remote else "rejected"
    if cancelled and reason == "cancelled":
        return f"cancelled by {other}" if by_remote else "cancelled"
    if reason == "closed":
        return "failed: the channel closed before the end"
    if by_remote:
        return f"failed: {other} refused it ({reason})"
    return f"failed: {reason}"


def guarded(
    what: str, handler: Callable[..., None], on_error: Callable[[], None]
) -> Callable[..., None]:
    """``handler`` in an error boundary: a message that breaks it is logged in one line
    and ``on_error`` ends what it belongs to; nothing reaches aiortc's SCTP loop."""

    def run(*args: Any) -> None:
        try:
            handler(*args)
        except Exception as exc:
            logger.warning("%s: a message could not be handled: %s", what, shown(repr(exc)))
            with contextlib.suppress(Exception):
                on_error()

    return run


def _send(channel: RTCDataChannel, message: str | bytes) -> bool:
    """Send if the channel is still open; False when it is not."""
    try:
        channel.send(message)
    except (InvalidStateError, ValueError) as exc:
        logger.info("could not send on %s: %s", channel.label, exc)
        return False
    return True


class CallData:
    """The chat channel and every transfer of one call."""

    def __init__(
        self,
        pc: RTCPeerConnection,
        me: str,
        other: str,
        receive: ReceiveOptions,
        say: Say,
        recent: RecentLines,
        accept_within: float = ACCEPT_TIMEOUT,
        file_policy: FilePolicy | None = None,
        at_a_terminal: Callable[[], bool] = lambda: False,
        offer_answer_within: float = OFFER_ANSWER_WITHIN,
    ) -> None:
        self.pc = pc
        self.offer_answer_within = offer_answer_within
        self.file_policy = file_policy or FilePolicy()
        self.at_a_terminal = at_a_terminal
        self.accept_within = accept_within
        self.me = me
        self.other = other
        self.receive = receive
        self.say = say
        self.recent = recent
        self.chat: RTCDataChannel | None = None
        self.chat_open = asyncio.Event()
        self.unavailable = asyncio.Event()  # the call has no data channels at all
        self.ended = asyncio.Event()
        self._numbers = itertools.count(1)
        self._incoming: dict[int, IncomingTransfer] = {}
        self._outgoing: dict[int, OutgoingTransfer] = {}
        self._tasks = TaskSupervisor(f"data channels with {other}")
        self._chat_limit = ChatLimiter()
        self._budget = CallBudget(receive.call_budget)
        self._flood_report: asyncio.TimerHandle | None = None
        self.counters = {"files_sent": 0, "files_received": 0, "bytes_sent": 0, "bytes_received": 0}
        # Messages of other types on the chat channel (e.g. "media"): (type, raw message).
        self.on_extension: Callable[[str, str], None] | None = None

    # ---- channels arriving -------------------------------------------------------------
    def channel_arrived(self, channel: RTCDataChannel) -> None:
        try:
            self._channel_arrived(channel)
        except Exception as exc:
            logger.warning("a data channel from %s could not be set up: %r", self.other, exc)
            with contextlib.suppress(Exception):
                channel.close()

    def _channel_arrived(self, channel: RTCDataChannel) -> None:
        if channel.label == "chat":
            self._use_chat(channel)
        elif channel.label == "file":
            if len(self._incoming) >= MAX_INCOMING_AT_ONCE:
                self._refuse(channel)
                return
            number = next(self._numbers)
            transfer = IncomingTransfer(
                number,
                channel,
                self.other,
                self.receive,
                self.say,
                self._budget,
                lambda: self.file_policy.decide(self.other, self.at_a_terminal()),
                self.offer_answer_within,
            )
            self._incoming[number] = transfer
            self._tasks.spawn(self._forget_incoming(transfer), "forget-incoming")
        else:
            logger.info("ignoring a data channel %s from %s", shown(channel.label, 40), self.other)

    def _refuse(self, channel: RTCDataChannel) -> None:
        self.say(
            f"refused a file from {self.other}: {MAX_INCOMING_AT_ONCE} transfers "
            "from them are already running (too-many)"
        )

        def refuse() -> None:
            _send(channel, encode_control(Cancel("too-many")))
            channel.close()

        if channel.readyState == "open":
            refuse()
        else:
            channel.on("open", refuse)

    def _use_chat(self, channel: RTCDataChannel) -> None:
        self.chat = channel
        channel.on("message", guarded("chat", self._chat_message, lambda: None))
        channel.on("open", self._chat_opened)
        channel.on("close", self.chat_open.clear)
        if channel.readyState == "open":
            self._chat_opened()

    def _chat_opened(self) -> None:
        if not self.chat_open.is_set():
            self.chat_open.set()
            self.say(f"chat with {self.other} open (type a line to send it, /help for commands)")

    def no_data_channels(self) -> None:
        """The call connected without an SCTP association: no chat, no files."""
        if not self.unavailable.is_set():
            self.unavailable.set()
            self.say(f"{self.other}'s side offered no data channels: no chat or files in this call")

    # ---- chat --------------------------------------------------------------------------
    def _chat_message(self, message: str | bytes) -> None:
        if not self._chat_limit.allow(time.monotonic()):
            if self._flood_report is None:
                self._flood_report = asyncio.get_running_loop().call_later(1.0, self._report_flood)
            return
        received = decode_chat(message, self.other)
        if isinstance(received, ChatLine):
            self.say(f"{self.other}: {received.text}")
            self.recent.add(f"{self.other}: {received.text}", time.monotonic())
        elif isinstance(received, ChatIgnored):
            if self.on_extension is not None and isinstance(message, str):
                self.on_extension(received.kind, message)
            else:
                logger.info("ignoring a chat message of type %r from %s", received.kind, self.other)
        else:
            self.say(received.why)

    def _report_flood(self) -> None:
        self._flood_report = None
        if dropped := self._chat_limit.untold():
            self.say(
                f"{self.other} sends chat faster than a person types: {dropped} line(s) not shown"
            )
            self._flood_report = asyncio.get_running_loop().call_later(1.0, self._report_flood)

    def send_chat(self, text: str) -> None:
        try:
            message = encode_chat(text)
        except ChatError as exc:
            self.say(str(exc))
            return
        if self.chat is None or not self.chat_open.is_set():
            self.say(f"chat with {self.other} is not open (yet): not sent")
            return
        if _send(self.chat, message):
            self.recent.add(f"{self.me}: {text}", time.monotonic())
        else:
            self.say(f"chat with {self.other} is closed: not sent")

    def send_extension(self, message: str) -> bool:
        """A message of another type on the chat channel, if it is open (else dropped)."""
        if self.chat is None or not self.chat_open.is_set():
            return False
        return _send(self.chat, message)

    # ---- files -------------------------------------------------------------------------
    def send_file(self, path: Path) -> None:
        number = next(self._numbers)
        transfer = OutgoingTransfer(number, path, self.other, self.say, self.accept_within)
        self._outgoing[number] = transfer
        self._tasks.spawn(self._run_outgoing(transfer), "outgoing-file")

    async def _run_outgoing(self, transfer: OutgoingTransfer) -> None:
        try:
            if not self.chat_open.is_set():
                self.say(f"{transfer.path.name} goes out once the data channels are open")
                opened = asyncio.ensure_future(self.chat_open.wait())
                gave_up = asyncio.ensure_future(self._gave_up())
                await asyncio.wait({opened, gave_up}, return_when=asyncio.FIRST_COMPLETED)
                opened.cancel()
                gave_up.cancel()
                if not self.chat_open.is_set():
                    self.say(f"{transfer.path.name} not sent: no data channels in this call")
                    return
            await transfer.run(self.pc)
            sender = transfer.sender
            if sender is not None and sender.state is SendState.DONE:
                self.counters["files_sent"] += 1
            if sender is not None:
                self.counters["bytes_sent"] += sender.sent
        finally:
            self._outgoing.pop(transfer.number, None)

    async def _gave_up(self) -> None:
        unavailable = asyncio.ensure_future(self.unavailable.wait())
        ended = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait({unavailable, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            unavailable.cancel()
            ended.cancel()

    async def _forget_incoming(self, transfer: IncomingTransfer) -> None:
        await transfer.finished.wait()
        if transfer.receiver.state is RecvState.DONE:
            self.counters["files_received"] += 1
        self.counters["bytes_received"] += transfer.receiver.received
        self._incoming.pop(transfer.number, None)

    @property
    def outgoing(self) -> list[OutgoingTransfer]:
        return list(self._outgoing.values())

    def cancel(self, number: int | None) -> None:
        transfers: list[IncomingTransfer | OutgoingTransfer] = [
            *self._incoming.values(),
            *self._outgoing.values(),
        ]
        chosen = [t for t in transfers if number is None or t.number == number]
        if not chosen:
            self.say("no transfer to cancel" if number is None else f"no transfer {number}")
        for transfer in chosen:
            transfer.cancel()

    def answer_offer(self, number: int, accept: bool) -> None:
        """/accept N or /reject N."""
        transfer = self._incoming.get(number)
        if transfer is None or not transfer.offered:
            self.say(f"no file offered as transfer {number}")
        elif accept:
            transfer.accept()
        else:
            transfer.reject()

    # ---- the end -----------------------------------------------------------------------
    async def close(self) -> None:
        """The call ended: every unfinished transfer fails, temporary files go."""
        self.ended.set()
        if self._flood_report is not None:
            self._flood_report.cancel()
            self._report_flood()
            if self._flood_report is not None:
                self._flood_report.cancel()
        for incoming in list(self._incoming.values()):
            incoming.closed()
        for outgoing in list(self._outgoing.values()):
            outgoing.closed()
        await self._tasks.settle(within=5)
        await self._tasks.stop()
