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
from .statetable import step

logger = logging.getLogger(__name__)

Connection = Hashable
Outgoing = tuple[Connection, JSONObject]
MAX_LISTED_USERS: Final = 200
# How long an offer rings unanswered before the server ends the call.
DEFAULT_RING_TIMEOUT: Final = 60.0
NO_ANSWER: Final = "no-answer"
# What the target's side may answer an offer that means there is no call.
REFUSED_OFFER: Final = frozenset({Reason.BUSY, Reason.UNKNOWN_USER})


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


# Looked up on every relayed message: module constants are quicker than Role.CALLER.
_CALLER: Final = Role.CALLER
_CALLEE: Final = Role.CALLEE


class IllegalMove(ProtocolError):
    def __init__(self, state: CallState, move: tuple[Role, str]) -> None:
        role, kind = move
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
# The same rules as statetable steps them: the event is the move, (who sends, type).
_CALL_STEPS: Final = {
    (state, (role, kind)): next_state
    for (state, role, kind), next_state in CALL_TRANSITIONS.items()
}


def refusal(exc: ProtocolError, target: str, request: str | None) -> JSONObject:
    """The error a sender hears when ``target``'s side refused its message."""
    if not isinstance(exc, IllegalMove):
        exc = ProtocolError(exc.reason, otherUsername=target)
    return protocol.error_from(exc, request)


@dataclass(eq=False, slots=True)
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
        role = _CALLER if username == self.caller else _CALLEE
        self.state = step(_CALL_STEPS, self.state, (role, kind), IllegalMove)


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
        for username, session in list(self._users.items()):
            call = session.call
            if call is None or call.state is not CallState.RINGING or now - call.rang_at < timeout:
                continue
            logger.info("call %s -> %s not answered in time", call.caller, call.callee)
            # Both copies of the call go at once when both users are here.
            for user in (username, call.other(username)):
                here = self._users.get(user)
                if here is not None and here.call is not None:
                    partner = here.call.other(user)
                    if partner == call.other(user):
                        here.call = None
                        close = protocol.relayed(Close(None, NO_ANSWER), partner)
                        out.append((here.connection, close))
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
        kind = protocol.message_type(message)
        self._sender_side(session, sender, target, message, kind)
        try:
            self._target_side(recipient, target, sender, kind)
        except ProtocolError as exc:
            self._refused(session, sender, target, exc.reason)
            return [(session.connection, refusal(exc, target, kind))]
        return [(recipient.connection, protocol.relayed(message, sender))]

    def _relay_elsewhere(
        self, session: Session, sender: str, target: str, message: Relayed
    ) -> list[Outgoing]:
        """A message for a user not on this router."""
        # A partner who leaves ends the call at once (disconnect), so an offline
        # target is never our partner: the call we may be in is left alone.
        raise ProtocolError(Reason.UNKNOWN_USER, otherUsername=target)

    # ---- the call rules: each user keeps its own copy of its call -----------------------
    # A message moves the sender's copy (here) and then the target's (here, or at the
    # target's home process: signaling.cluster). Both copies see every message of the
    # call, so they agree.
    @staticmethod
    def _sender_side(
        session: Session, sender: str, target: str, message: Relayed, kind: str
    ) -> None:
        """The sender's side of a message to ``target``: an offer outside a call starts
        one, anything else moves the current call along; raises what the sender hears."""
        call = session.call
        if call is not None and call.other(sender) == target:
            call.apply(sender, kind)
            if call.state is CallState.ENDED:
                session.call = None
            return
        if kind == "close":
            # A close outside a call the sender knows of: whether it may pass is the
            # target's to say (see _target_side).
            return
        if not isinstance(message, Offer):
            raise ProtocolError(Reason.NOT_IN_CALL, otherUsername=target)
        if call is not None:
            raise ProtocolError(Reason.IN_ANOTHER_CALL, otherUsername=call.other(sender))
        session.call = Call(caller=sender, callee=target)

    @staticmethod
    def _target_side(session: Session, target: str, sender: str, kind: str) -> None:
        """The target's side of a message from ``sender``, once the sender's side took
        it; raises what the sender hears (the sender's side is then undone by _refused).
        The log lines are written here, once per call event."""
        call = session.call
        if call is not None and call.other(target) == sender:
            call.apply(sender, kind)
            if call.state is CallState.ENDED:
                session.call = None
                logger.info("call %s <-> %s ended by %s", call.caller, call.callee, sender)
            elif kind == "answer":
                logger.info("call %s <-> %s active", call.caller, call.callee)
        elif kind == "offer":
            if call is not None:
                raise ProtocolError(Reason.BUSY, otherUsername=target)
            session.call = Call(caller=sender, callee=target)
            logger.info("call %s -> %s ringing", sender, target)
        elif kind == "close":
            if call is not None:
                # In a call with someone else: a stray close must not look like it
                # could end that one.
                raise ProtocolError(Reason.NOT_IN_CALL, otherUsername=target)
            # Calls outlive a server restart (media flows peer to peer) but the
            # router's memory of them does not: two peers hanging up a call from
            # before the restart look idle here. The close is relayed so the
            # partner hears it; nothing changes here.
            logger.info("close %s -> %s outside a known call: relayed", sender, target)
        else:
            raise ProtocolError(Reason.NOT_IN_CALL, otherUsername=target)

    @staticmethod
    def _refused(session: Session, sender: str, target: str, reason: str) -> None:
        """``target``'s side refused ``sender``'s message: an offer refused that way (busy,
        or nobody there) started no call."""
        call = session.call
        if (
            reason in REFUSED_OFFER
            and call is not None
            and call.caller == sender
            and call.callee == target
            and call.state is CallState.RINGING
        ):
            session.call = None

    def _end_call(self, session: Session, notify_reason: str | None) -> list[Outgoing]:
        call = session.call
        if call is None or session.username is None:
            return []
        session.call = None
        other = call.other(session.username)
        partner = self._users.get(other)
        if partner is None or partner.call is None or partner.call.other(other) != session.username:
            return []
        partner.call = None
        close = protocol.relayed(Close(None, notify_reason), session.username)
        return [(partner.connection, close)]
