"""What the conversation (peer/call/conversation.py) is wired with: the signaling
session and the calls as small interfaces (the peer's real ones, or a test's fakes),
what surrounds each call, the user's choices and the waits of recovery.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from peer.call.answering import AnswerPolicy
from peer.call.connection import CallState
from peer.call.recovery import (
    FRESH_OFFER_CHECK,
    FRESH_OFFER_HOLD,
    HANG_UP_GRACE,
    RECOVERY_TIMEOUT,
    SILENT_IS_FAILING,
)

JSONObject = dict[str, Any]


class Session(Protocol):
    """The signaling connection, as the conversation uses it."""

    @property
    def connected(self) -> bool: ...

    async def send(self, message: JSONObject) -> None: ...


class CallLike(Protocol):
    """What the conversation needs of a call (peer/call/connection.py's ``Call``)."""

    other: str
    state: CallState
    dialled: bool
    end_reason: str | None
    ended: asyncio.Event
    described: asyncio.Event
    connected: asyncio.Event
    timings: Any

    @property
    def live(self) -> bool: ...

    @property
    def remote_sdp(self) -> str | None: ...

    async def dial(self) -> None: ...

    async def offer_received(self, offer: JSONObject) -> None: ...

    async def answer_received(self, answer: JSONObject) -> None: ...

    async def candidate_received(self, candidate: JSONObject | None) -> None: ...

    async def hang_up(self, reason: str | None = None, *, notify: bool = True) -> None: ...

    async def remote_closed(self, reason: str | None) -> None: ...


class CallSide(Protocol):
    """What surrounds each call: its media sinks, its report, its data channels."""

    def new_call(self, other: str) -> CallLike: ...

    def started(self, call: CallLike) -> None:
        """The call is under way: its tasks start."""

    async def finished(self, call: CallLike) -> None:
        """The call ended: its tasks stop, the final report is printed."""

    async def abandoned(self, call: CallLike) -> None:
        """A re-establishing call that never took over: its tasks stop, quietly."""

    async def bytes_received(self, call: CallLike) -> int:
        """All the call's connection has received so far (the fresh-offer hold)."""
        ...

    def explain_failure(self, reason: str) -> str:
        """A failure to connect, with what the TURN check found (peer/ice/turn_check.py)."""
        ...


@dataclass(frozen=True)
class Conduct:
    """The user's choices for the conversation (the command line)."""

    login: str
    call: str | None = None  # the one user this peer calls (and the only one it talks to)
    wait: bool = False
    once: bool = False
    answer_policy: AnswerPolicy = field(default_factory=AnswerPolicy)
    answer_timeout: float = 30.0
    allow_mdns: bool = False


@dataclass(frozen=True)
class Clock:
    """The waits of recovery.py, shortened by tests."""

    hang_up_grace: float = HANG_UP_GRACE
    recovery_timeout: float = RECOVERY_TIMEOUT
    fresh_offer_hold: float = FRESH_OFFER_HOLD
    fresh_offer_check: float = FRESH_OFFER_CHECK
    fresh_offer_silent: float = SILENT_IS_FAILING
