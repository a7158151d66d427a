"""The two ends of one file transfer as state machines (docs/datachannels.md).

Sans-I/O: each side is fed what arrives on its ``file`` channel (and what its shell
did: the temporary file is open, the file was saved, the channel closed) and answers
with a list of actions for the shell to carry out in order. The moves each state
allows are tables; a message the table does not allow is a protocol error, which
cancels the transfer, never a crash. Both sides count and hash the bytes themselves,
so the shell cannot get the verification wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import Final

from peer.data.filenames import sanitise
from peer.data.transfer_wire import (
    MAX_CHUNK,
    Accept,
    Cancel,
    Control,
    Done,
    End,
    FileHeader,
    WireError,
    encode_control,
    parse_control,
)
from signaling.statetable import IllegalMove as IllegalMove  # what a refused move raises
from signaling.statetable import from_each, step


# ---- actions -----------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    """Send this text (control) or bytes (data) message on the channel."""

    message: str | bytes


@dataclass(frozen=True)
class Offered:
    """Receiver: a valid header came; nothing is written until the shell says
    :meth:`Receiver.accept` (the person, or --accept-files-from) or
    :meth:`Receiver.reject`."""

    name: str  # sanitised
    size: int


@dataclass(frozen=True)
class OpenFile:
    """Receiver: make the temporary file for ``name`` (already sanitised)."""

    name: str
    size: int


@dataclass(frozen=True)
class Write:
    data: bytes


@dataclass(frozen=True)
class SaveFile:
    """Receiver: size and hash match; give the temporary file its final name."""

    name: str


@dataclass(frozen=True)
class Discard:
    """Receiver: delete the temporary file, if there is one."""


@dataclass(frozen=True)
class StartData:
    """Sender: the receiver accepted; start reading the file and sending chunks."""


@dataclass(frozen=True)
class StopData:
    """Sender: stop reading the file (cancelled or failed)."""


@dataclass(frozen=True)
class CloseChannel:
    pass


Action = (
    Send | Offered | OpenFile | Write | SaveFile | Discard | StartData | StopData | CloseChannel
)


def _control(message: Control) -> Send:
    return Send(encode_control(message))


class Outcome(Enum):
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


# ---- receiving ------------------------------------------------------------------------
class RecvState(Enum):
    HEADER = "header"  # channel open, waiting for the file header
    OFFERED = "offered"  # header valid, waiting for the person's (or the policy's) answer
    OPENING = "opening"  # header valid, the shell is making the temporary file
    ACCEPTED = "accepted"  # accept sent, no data yet
    RECEIVING = "receiving"
    VERIFYING = "verifying"  # end matched; the shell is renaming the file
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


class RecvEvent(Enum):
    HEADER = "header"
    ACCEPT = "accept"  # this side's person (or --accept-files-from) takes the file
    OPENED = "opened"
    CHUNK = "chunk"
    END = "end"
    SAVED = "saved"
    CANCEL = "cancel"  # either side
    FAIL = "fail"  # a check failed, the disk refused, the channel closed


_RECV_LIVE: Final = frozenset(RecvState) - {RecvState.DONE, RecvState.CANCELLED, RecvState.FAILED}
RECV_TRANSITIONS: Final[dict[tuple[RecvState, RecvEvent], RecvState]] = {
    (RecvState.HEADER, RecvEvent.HEADER): RecvState.OFFERED,
    (RecvState.OFFERED, RecvEvent.ACCEPT): RecvState.OPENING,
    (RecvState.OPENING, RecvEvent.OPENED): RecvState.ACCEPTED,
    (RecvState.ACCEPTED, RecvEvent.CHUNK): RecvState.RECEIVING,
    (RecvState.RECEIVING, RecvEvent.CHUNK): RecvState.RECEIVING,
    (RecvState.ACCEPTED, RecvEvent.END): RecvState.VERIFYING,  # an empty file
    (RecvState.RECEIVING, RecvEvent.END): RecvState.VERIFYING,
    (RecvState.VERIFYING, RecvEvent.SAVED): RecvState.DONE,
    **from_each(
        _RECV_LIVE, {RecvEvent.CANCEL: RecvState.CANCELLED, RecvEvent.FAIL: RecvState.FAILED}
    ),
}


class Receiver:
    """The receiving end of one transfer. ``max_size`` None: no limit."""

    def __init__(self, max_size: int | None = None) -> None:
        self.state = RecvState.HEADER
        self.max_size = max_size
        self.name: str | None = None  # sanitised
        self.offered_name: str | None = None  # as the sender sent it
        self.size = 0
        self.received = 0
        self.sha256: str | None = None
        self.reason: str | None = None  # the wire reason a transfer ended without DONE
        self.by_remote = False  # True when the other side cancelled
        self._hash = hashlib.sha256()

    @property
    def finished(self) -> bool:
        return self.state not in _RECV_LIVE

    def _fire(self, event: RecvEvent) -> None:
        self.state = step(RECV_TRANSITIONS, self.state, event)

    # ---- what arrives ----------------------------------------------------------------
    def on_text(self, text: str) -> list[Action]:
        if self.finished:
            return []
        try:
            message = parse_control(text)
        except WireError as exc:
            return self._fail(exc.reason)
        if isinstance(message, Cancel):
            self.by_remote = True
            event = RecvEvent.CANCEL if message.reason == "cancelled" else RecvEvent.FAIL
            return self._end(event, message.reason, tell=False)
        if isinstance(message, FileHeader) and self.state is RecvState.HEADER:
            return self._header(message)
        if isinstance(message, End) and self.state in (RecvState.ACCEPTED, RecvState.RECEIVING):
            return self._check(message.sha256)
        return self._fail("protocol-error")

    def on_binary(self, data: bytes) -> list[Action]:
        if self.finished:
            return []
        if self.state not in (RecvState.ACCEPTED, RecvState.RECEIVING) or len(data) > MAX_CHUNK:
            return self._fail("protocol-error")
        if self.received + len(data) > self.size:
            return self._fail("size-mismatch")
        self._fire(RecvEvent.CHUNK)
        self.received += len(data)
        self._hash.update(data)
        return [Write(data)]

    # ---- what the shell did ------------------------------------------------------------
    @property
    def offered(self) -> bool:
        """The header came and nobody has said yes or no yet."""
        return self.state is RecvState.OFFERED

    def accept(self) -> list[Action]:
        """The person (or --accept-files-from) takes the file offered: only now is the
        temporary file made."""
        if self.state is not RecvState.OFFERED:
            return []
        self._fire(RecvEvent.ACCEPT)
        assert self.name is not None
        return [OpenFile(self.name, self.size)]

    def reject(self) -> list[Action]:
        """The person says no, did not answer in time, or nobody was there to ask."""
        if self.state is not RecvState.OFFERED:
            return []
        return self._end(RecvEvent.CANCEL, "rejected")

    def opened(self) -> list[Action]:
        self._fire(RecvEvent.OPENED)
        return [_control(Accept())]

    def saved(self) -> list[Action]:
        self._fire(RecvEvent.SAVED)
        assert self.sha256 is not None
        return [_control(Done(self.sha256))]

    def no_header(self) -> list[Action]:
        """The shell's timer: the header never came."""
        return self._fail("protocol-error") if self.state is RecvState.HEADER else []

    def refuse(self, reason: str) -> list[Action]:
        """The shell will not take the file announced (no room for it, say)."""
        return self._fail(reason) if not self.finished else []

    def disk_error(self) -> list[Action]:
        return self._fail("disk-error") if not self.finished else []

    def cancel(self) -> list[Action]:
        """The person at this end cancels."""
        return self._end(RecvEvent.CANCEL, "cancelled") if not self.finished else []

    def closed(self) -> list[Action]:
        """The channel closed (or the call ended) before ``done``."""
        if self.finished:
            return []
        return self._end(RecvEvent.FAIL, "closed", tell=False)

    # ---- internals ----------------------------------------------------------------------
    def _header(self, header: FileHeader) -> list[Action]:
        self._fire(RecvEvent.HEADER)
        self.offered_name = header.name
        self.name = sanitise(header.name)
        self.size = header.size
        if self.max_size is not None and header.size > self.max_size:
            return self._fail("too-large")
        return [Offered(self.name, self.size)]

    def _check(self, digest: str) -> list[Action]:
        self._fire(RecvEvent.END)
        if self.received != self.size:
            return self._fail("size-mismatch")
        self.sha256 = self._hash.hexdigest()
        if self.sha256 != digest:
            return self._fail("hash-mismatch")
        assert self.name is not None
        return [SaveFile(self.name)]

    def _fail(self, reason: str) -> list[Action]:
        return self._end(RecvEvent.FAIL, reason)

    def _end(self, event: RecvEvent, reason: str, *, tell: bool = True) -> list[Action]:
        self._fire(event)
        self.reason = reason
        actions: list[Action] = [Discard()]
        if tell:
            actions.append(_control(Cancel(reason if reason != "closed" else "cancelled")))
        actions.append(CloseChannel())
        return actions


# ---- sending -------------------------------------------------------------------------
class SendState(Enum):
    OFFERING = "offering"  # header sent, waiting for accept
    SENDING = "sending"
    ENDING = "ending"  # end sent, waiting for done
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


class SendEvent(Enum):
    ACCEPTED = "accepted"
    CHUNK = "chunk"
    EOF = "eof"
    DONE = "done"
    CANCEL = "cancel"
    FAIL = "fail"


_SEND_LIVE: Final = frozenset(SendState) - {SendState.DONE, SendState.CANCELLED, SendState.FAILED}
SEND_TRANSITIONS: Final[dict[tuple[SendState, SendEvent], SendState]] = {
    (SendState.OFFERING, SendEvent.ACCEPTED): SendState.SENDING,
    (SendState.SENDING, SendEvent.CHUNK): SendState.SENDING,
    (SendState.SENDING, SendEvent.EOF): SendState.ENDING,
    (SendState.ENDING, SendEvent.DONE): SendState.DONE,
    **from_each(
        _SEND_LIVE, {SendEvent.CANCEL: SendState.CANCELLED, SendEvent.FAIL: SendState.FAILED}
    ),
}


class Sender:
    """The sending end of one transfer of ``size`` bytes called ``name``."""

    def __init__(self, name: str, size: int) -> None:
        self.state = SendState.OFFERING
        self.name = name
        self.size = size
        self.sent = 0
        self.sha256: str | None = None
        self.reason: str | None = None
        self.by_remote = False
        self._hash = hashlib.sha256()

    @property
    def finished(self) -> bool:
        return self.state not in _SEND_LIVE

    @property
    def remaining(self) -> int:
        return self.size - self.sent

    def _fire(self, event: SendEvent) -> None:
        self.state = step(SEND_TRANSITIONS, self.state, event)

    def start(self) -> list[Action]:
        """The channel is open: offer the file."""
        return [_control(FileHeader(self.name, self.size))]

    def on_text(self, text: str) -> list[Action]:
        if self.finished:
            return []
        try:
            message = parse_control(text)
        except WireError as exc:
            return self._end(SendEvent.FAIL, exc.reason)
        if isinstance(message, Cancel):
            self.by_remote = True
            # "cancelled" is a person's choice; any other reason is a failed check.
            event = SendEvent.CANCEL if message.reason == "cancelled" else SendEvent.FAIL
            return self._end(event, message.reason, tell=False)
        if isinstance(message, Accept) and self.state is SendState.OFFERING:
            self._fire(SendEvent.ACCEPTED)
            return [StartData()]
        if isinstance(message, Done) and self.state is SendState.ENDING:
            if message.sha256 != self.sha256:
                return self._end(SendEvent.FAIL, "hash-mismatch")
            self._fire(SendEvent.DONE)
            return [CloseChannel()]
        return self._end(SendEvent.FAIL, "protocol-error")

    def on_binary(self, data: bytes) -> list[Action]:
        return [] if self.finished else self._end(SendEvent.FAIL, "protocol-error")

    def chunk(self, data: bytes) -> list[Action]:
        """The shell read ``data`` from the file (at most ``remaining`` bytes)."""
        if self.finished:
            return []
        if not data:
            # The file is shorter than when it was offered.
            return self._end(SendEvent.FAIL, "size-mismatch")
        if len(data) > min(MAX_CHUNK, self.remaining):
            raise ValueError(f"a chunk of {len(data)} bytes with {self.remaining} to go")
        self._fire(SendEvent.CHUNK)
        self.sent += len(data)
        self._hash.update(data)
        actions: list[Action] = [Send(data)]
        if self.remaining == 0:
            actions.extend(self._finish_data())
        return actions

    def all_read(self) -> list[Action]:
        """For an empty file: nothing to read, go straight to ``end``."""
        if self.state is SendState.SENDING and self.remaining == 0:
            return self._finish_data()
        return []

    def cancel(self) -> list[Action]:
        return [] if self.finished else self._end(SendEvent.CANCEL, "cancelled")

    def read_error(self) -> list[Action]:
        return [] if self.finished else self._end(SendEvent.FAIL, "disk-error")

    def closed(self) -> list[Action]:
        return [] if self.finished else self._end(SendEvent.FAIL, "closed", tell=False)

    def _finish_data(self) -> list[Action]:
        self._fire(SendEvent.EOF)
        self.sha256 = self._hash.hexdigest()
        return [_control(End(self.sha256))]

    def _end(self, event: SendEvent, reason: str, *, tell: bool = True) -> list[Action]:
        self._fire(event)
        self.reason = reason
        actions: list[Action] = [StopData()]
        if tell:
            actions.append(_control(Cancel(reason)))
        actions.append(CloseChannel())
        return actions
