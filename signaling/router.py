"""Who is logged in, who is in a call with whom, and where each message goes.

Sans-I/O: the router never touches a socket. The shell calls ``connect``,
``handle_frame``/``handle`` and ``disconnect`` and sends each returned
``(connection, message)`` pair. Connections are opaque hashable handles.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from . import protocol
from .protocol import (
    Close,
    JSONObject,
    ListUsers,
    Login,
    Message,
    Offer,
    ProtocolError,
    Reason,
    Relayed,
)
from .resume import Resumption

logger = logging.getLogger(__name__)

Connection = Hashable
Outgoing = tuple[Connection, JSONObject]
MAX_LISTED_USERS: Final = 200
# How long an offer rings unanswered before the server ends the call.
DEFAULT_RING_TIMEOUT: Final = 60.0
NO_ANSWER: Final = "no-answer"


class CallState(Enum):
    RINGING = "ringing"  # the caller's offer went out, no answer yet
    ACTIVE = "active"  # answered; either side may renegotiate
    ENDED = "ended"

    # Members are singletons, so identity hashing is right; Enum's own __hash__ is
    # Python code, run twice per relayed message by the CALL_TRANSITIONS lookup.
    __hash__ = object.__hash__


class Role(Enum):
    CALLER = "caller"
    CALLEE = "callee"

    __hash__ = object.__hash__  # as CallState's


class IllegalMove(ProtocolError):
    def __init__(self, state: CallState, role: Role, kind: str) -> None:
        super().__init__(
            Reason.INVALID_STATE,
            f"{kind!r} from the {role.value} is not allowed while the call is {state.value}",
        )


# (state, who sends, message type) -> next state. Anything absent is an IllegalMove.
CALL_TRANSITIONS: Final[dict[tuple[CallState, Role, str], CallState]] = {
    (CallState.RINGING, Role.CALLER, "offer"): CallState.RINGING,
    (CallState.RINGING, Role.CALLER, "candidate"): CallState.RINGING,
    (CallState.RINGING, Role.CALLER, "close"): CallState.ENDED,
    (CallState.RINGING, Role.CALLEE, "answer"): CallState.ACTIVE,
    (CallState.RINGING, Role.CALLEE, "candidate"): CallState.RINGING,
    (CallState.RINGING, Role.CALLEE, "close"): CallState.ENDED,
    **{
        (CallState.ACTIVE, role, kind): CallState.ACTIVE
        for role in Role
        for kind in ("offer", "answer", "candidate")
    },
    (CallState.ACTIVE, Role.CALLER, "close"): CallState.ENDED,
    (CallState.ACTIVE, Role.CALLEE, "close"): CallState.ENDED,
}


@dataclass(eq=False)
class Call:
    caller: str
    callee: str
    state: CallState = CallState.RINGING
    # When the first offer went out (time.monotonic), for the ring timeout.
    rang_at: float = field(default_factory=time.monotonic)

    def role_of(self, username: str) -> Role:
        return Role.CALLER if username == self.caller else Role.CALLEE

    def other(self, username: str) -> str:
        return self.callee if username == self.caller else self.caller

    def apply(self, username: str, kind: str) -> None:
        role = self.role_of(username)
        next_state = CALL_TRANSITIONS.get((self.state, role, kind))
        if next_state is None:
            raise IllegalMove(self.state, role, kind)
        self.state = next_state


@dataclass
class Session:
    connection: Connection
    username: str | None = None
    call: Call | None = None


@dataclass
class Router:
    """In-memory presence and routing for one server process."""

    token: str | None = None
    # May this connection list the users now? (the shell's rate limit; None: always)
    list_gate: Callable[[Connection], bool] | None = None
    # No `list` at all (--no-list): the reply is an empty list saying so.
    list_disabled: bool = False
    # --session-secret-file: tickets at login, names kept for their holders after a start.
    resume: Resumption | None = None
    _sessions: dict[Connection, Session] = field(default_factory=dict)
    _users: dict[str, Session] = field(default_factory=dict)

    # ---- what the shell and metrics read -------------------------------------------
    @property
    def connection_count(self) -> int:
        return len(self._sessions)

    @property
    def user_count(self) -> int:
        return len(self._users)

    @property
    def active_call_count(self) -> int:
        return sum(1 for s in self._users.values() if s.call is not None) // 2

    def username_of(self, connection: Connection) -> str | None:
        session = self._sessions.get(connection)
        return session.username if session else None

    def partner_of(self, username: str) -> str | None:
        session = self._users.get(username)
        if session is None or session.call is None:
            return None
        return session.call.other(username)

    def call_state_of(self, username: str) -> CallState | None:
        session = self._users.get(username)
        return session.call.state if session is not None and session.call is not None else None

    def online_users(self) -> list[str]:
        return sorted(self._users)

    # ---- events ----------------------------------------------------------------------
    def connect(self, connection: Connection) -> None:
        self._sessions[connection] = Session(connection)

    def disconnect(self, connection: Connection) -> list[Outgoing]:
        session = self._sessions.pop(connection, None)
        if session is None or session.username is None:
            return []
        del self._users[session.username]
        if self.resume is not None:
            self.resume.released(session.username)
        logger.info("user %s left", session.username)
        return self._end_call(session, notify_reason="disconnected")

    def handle_frame(self, connection: Connection, frame: str | bytes) -> list[Outgoing]:
        """Parse one frame and handle it; protocol errors become an error reply."""
        try:
            message = protocol.parse(frame)
        except ProtocolError as exc:
            return [(connection, protocol.error_from(exc))]
        return self.handle(connection, message)

    def handle(self, connection: Connection, message: Message) -> list[Outgoing]:
        session = self._sessions.get(connection)
        if session is None:
            raise KeyError(f"unknown connection {connection!r}; call connect() first")
        try:
            if isinstance(message, Login):
                return self._login(session, message)
            if session.username is None:
                raise ProtocolError(Reason.NOT_LOGGED_IN)
            if isinstance(message, ListUsers):
                if self.list_disabled:
                    reply = {"type": "users", "users": [], "listDisabled": True}
                    return [(connection, reply)]
                if self.list_gate is not None and not self.list_gate(connection):
                    raise ProtocolError(Reason.RATE_LIMITED)
                return self._list_users(session)
            return self._relay(session, session.username, message)
        except ProtocolError as exc:
            return [(connection, protocol.error_from(exc, protocol.message_type(message)))]

    def expire_ringing(self, timeout: float, now: float | None = None) -> list[Outgoing]:
        """End the calls that have rung unanswered for ``timeout`` seconds: each user of
        this router in one hears ``close`` from the other with reason ``no-answer``."""
        now = time.monotonic() if now is None else now
        out: list[Outgoing] = []
        expired: list[Call] = []
        for username, session in self._users.items():
            call = session.call
            if (
                call is not None
                and call.state is CallState.RINGING
                and now - call.rang_at >= timeout
            ):
                session.call = None
                expired.append(call)
                close = protocol.relayed(Close(None, NO_ANSWER), call.other(username))
                out.append((session.connection, close))
        for call in expired:
            if call.state is not CallState.ENDED:
                call.state = CallState.ENDED
                logger.info("call %s -> %s not answered in time", call.caller, call.callee)
        return out

    # ---- internals ---------------------------------------------------------------------
    def _login(self, session: Session, message: Login) -> list[Outgoing]:
        if session.username is not None:
            raise ProtocolError(Reason.ALREADY_LOGGED_IN, username=session.username)
        if self.token is not None and not hmac.compare_digest(
            (message.token or "").encode(), self.token.encode()
        ):
            return [(session.connection, protocol.login_reply(False, Reason.UNAUTHORIZED))]
        if message.username in self._users:
            return [(session.connection, protocol.login_reply(False, Reason.USERNAME_TAKEN))]
        if self.resume is not None and not self.resume.admits(
            message.username, message.ticket, time.time()
        ):
            logger.warning(
                "login as %s refused: the name is kept for its holder after a restart",
                message.username,
            )
            return [(session.connection, protocol.login_reply(False, Reason.USERNAME_TAKEN))]
        return self._take_username(session, message.username)

    def _take_username(self, session: Session, username: str) -> list[Outgoing]:
        """The username is free: this session has it now."""
        session.username = username
        self._users[username] = session
        logger.info("user %s logged in", username)
        reply = protocol.login_reply(True)
        if self.resume is not None:
            reply["ticket"] = self.resume.issue(username, time.time())
        return [(session.connection, reply)]

    def _list_users(self, session: Session) -> list[Outgoing]:
        users = self.online_users()[:MAX_LISTED_USERS]
        return [(session.connection, {"type": "users", "users": users})]

    def _relay(self, session: Session, sender: str, message: Relayed) -> list[Outgoing]:
        target = message.other_username
        if target is None:
            # The tutorial's first client omits otherUsername; the current partner is meant.
            if session.call is None:
                raise ProtocolError(
                    Reason.INVALID_FIELD,
                    "missing field 'otherUsername' (and not in a call)",
                    field="otherUsername",
                )
            target = session.call.other(sender)
        if target == sender:
            raise ProtocolError(Reason.SELF_CALL, otherUsername=target)
        recipient = self._users.get(target)
        if recipient is None:
            return self._relay_elsewhere(session, sender, target, message)
        if self._advance_call(
            session, sender, target, message, target_busy=recipient.call is not None
        ):
            recipient.call = session.call  # the same Call, just begun or going on; None once ended
        return [(recipient.connection, protocol.relayed(message, sender))]

    def _relay_elsewhere(
        self, session: Session, sender: str, target: str, message: Relayed
    ) -> list[Outgoing]:
        """A message for a user not on this router."""
        # A partner who leaves ends the call at once (disconnect), so an offline
        # target is never our partner: the call we may be in is left alone.
        raise ProtocolError(Reason.UNKNOWN_USER, otherUsername=target)

    def _advance_call(
        self, session: Session, sender: str, target: str, message: Relayed, *, target_busy: bool
    ) -> bool:
        """The sender's side of a message to ``target``: an offer outside a call starts
        one, anything else moves the current call along; raises what the sender hears.
        False for a ``close`` that belongs to no call this router knows of."""
        kind = protocol.message_type(message)
        call = session.call
        if call is None or call.other(sender) != target:
            if isinstance(message, Close) and not target_busy:
                # Calls outlive a server restart (media flows peer to peer) but the
                # router's memory of them does not: two peers hanging up a call from
                # before the restart look idle here. The close is relayed so the
                # partner hears it; nothing changes here. An idle target has no call
                # that a stray close could end; a busy one is still refused below.
                logger.info("close %s -> %s outside a known call: relayed", sender, target)
                return False
            if not isinstance(message, Offer):
                raise ProtocolError(Reason.NOT_IN_CALL, otherUsername=target)
            if call is not None:
                raise ProtocolError(Reason.IN_ANOTHER_CALL, otherUsername=call.other(sender))
            if target_busy:
                raise ProtocolError(Reason.BUSY, otherUsername=target)
            session.call = Call(caller=sender, callee=target)
            logger.info("call %s -> %s ringing", sender, target)
            return True
        call.apply(sender, kind)
        if call.state is CallState.ENDED:
            session.call = None
            logger.info("call %s <-> %s ended by %s", call.caller, call.callee, sender)
        elif kind == "answer":
            logger.info("call %s <-> %s active", call.caller, call.callee)
        return True

    def _end_call(self, session: Session, notify_reason: str | None) -> list[Outgoing]:
        call = session.call
        if call is None or session.username is None:
            return []
        call.state = CallState.ENDED
        session.call = None
        partner = self._users.get(call.other(session.username))
        if partner is None or partner.call is not call:
            return []
        partner.call = None
        close = protocol.relayed(Close(None, notify_reason), session.username)
        return [(partner.connection, close)]
