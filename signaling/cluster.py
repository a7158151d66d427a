"""Routing when users are spread over several server processes (``--redis``).

Still sans-I/O: :class:`ClusterRouter` is the in-memory :class:`~signaling.router.Router`
for the users connected to this process, plus what it takes to talk to users on
other processes. It never touches Redis; :mod:`signaling.redis_routing` carries
its envelopes and answers its questions.

How the decisions are split:

- Each user's state (logged in, in a call with whom, ringing or active) lives on
  the process the user is connected to, their *home*. A call between two homes
  has a copy of the call state on each, and each copy sees every message of the
  call, so the two agree.
- A message for a user who is not here leaves as an *envelope* addressed to that
  user (an :data:`Outgoing` whose destination is a :class:`RemoteUser`). The
  sender's home checks and moves the sender's side; the target's home checks and
  moves the target's side (busy? in a call with the sender?) and either delivers
  the message or *bounces* the error the sender would have got on one process.
- Nobody home (no process subscribed for that user) comes back as
  :meth:`ClusterRouter.undeliverable`: ``unknown-user``, as on one process.
- An error the sender's home finds on its own side (``not-in-call``,
  ``in-another-call``) would be ``unknown-user`` on one process when the target is
  offline, so it travels as a *probe*: the target's home bounces it back, nobody
  home makes it ``unknown-user``.
- Claiming a username and listing the users online need the shared directory: the
  router returns them as queries, messages like the others whose destination is the
  :class:`Directory`, and takes the answers through :meth:`ClusterRouter.claimed` and
  :meth:`ClusterRouter.listed`.

Envelopes are JSON objects: ``{"kind": K, "from": sender, "to": target, ...}`` with K
``relay`` (plus ``message``, the frame as the target receives it), ``probe`` and
``error`` (plus ``error``, the error reply as the original sender receives it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from . import protocol
from .protocol import Close, JSONObject, ProtocolError, Reason, Relayed
from .router import (
    MAX_LISTED_USERS,
    CallState,
    Connection,
    Outgoing,
    Router,
    Session,
    refusal,
)

logger = logging.getLogger(__name__)

# Seconds a dead process's users stay taken (its presence keys' time to live).
DEFAULT_PRESENCE_TTL: Final = 10.0
RELAY: Final = "relay"
PROBE: Final = "probe"
ERROR: Final = "error"
# The queries for the Directory, in the "query" field of their message.
CLAIM: Final = "claim"  # may the connection have "username"? Answer with claimed().
LIST: Final = "list"  # who is online on every process? Answer with listed().


@dataclass(frozen=True, slots=True)
class RemoteUser:
    """Destination of an envelope: a user whose home is some other process."""

    username: str


@dataclass(frozen=True, slots=True)
class Directory:
    """Destination of a query to the directory of users all processes share, asked on
    behalf of ``connection``: ``{"query": CLAIM, "username": U}`` or ``{"query": LIST}``."""

    connection: Connection


def envelope(kind: str, sender: str, target: str, **body: Any) -> JSONObject:
    return {"kind": kind, "from": sender, "to": target, **body}


@dataclass
class ClusterRouter(Router):
    """The router of one process among several sharing their users."""

    # ---- answers to the Directory's queries ----------------------------------------
    def claimed(
        self, connection: Connection, username: str, granted: bool | None
    ) -> list[Outgoing]:
        """The directory's answer to a CLAIM; None: no answer (the directory is
        unreachable), which is not the same as the name being taken."""
        session = self._sessions.get(connection)
        if session is None:
            return []
        if granted is None:
            return [(connection, protocol.login_reply(False, Reason.SERVER_UNAVAILABLE))]
        if not granted:
            return [(connection, protocol.login_reply(False, Reason.USERNAME_TAKEN))]
        return super()._take_username(session, username)

    def listed(self, connection: Connection, usernames: list[str]) -> list[Outgoing]:
        """The directory's answer to a LIST."""
        if connection not in self._sessions:
            return []
        users = sorted(usernames)[:MAX_LISTED_USERS]
        return [(connection, {"type": "users", "users": users})]

    @property
    def active_call_count(self) -> int:
        # A call with a user elsewhere has one session here, a call between two
        # users here has two.
        here = elsewhere = 0
        for username, session in self._users.items():
            if session.call is not None:
                if session.call.other(username) in self._users:
                    here += 1
                else:
                    elsewhere += 1
        return here // 2 + elsewhere

    def connection_of(self, username: str) -> Connection | None:
        session = self._users.get(username)
        return session.connection if session is not None else None

    def local_usernames(self) -> list[str]:
        return list(self._users)

    def remote_partners(self) -> set[str]:
        """Users on other processes that users here are in a call with."""
        partners = set()
        for username, session in self._users.items():
            if session.call is not None:
                other = session.call.other(username)
                if other not in self._users:
                    partners.add(other)
        return partners

    # ---- events from other processes ---------------------------------------------------
    def handle_envelope(self, data: JSONObject) -> list[Outgoing]:
        """An envelope that reached this process for one of its users."""
        kind, sender, target = data.get("kind"), data.get("from"), data.get("to")
        if not isinstance(sender, str) or not isinstance(target, str):
            logger.warning("dropping an envelope without from/to: %r", data)
            return []
        if kind == RELAY:
            return self._relay_arrived(sender, target, data["message"])
        if kind == PROBE:
            if target not in self._users:
                return self._bounce(target, sender, ProtocolError(Reason.UNKNOWN_USER), data)
            return [(RemoteUser(sender), envelope(ERROR, target, sender, error=data[ERROR]))]
        if kind == ERROR:
            return self._bounced(target, sender, data[ERROR])
        logger.warning("dropping an envelope of unknown kind %r", kind)
        return []

    def undeliverable(self, data: JSONObject) -> list[Outgoing]:
        """Nobody was home for an envelope this process sent: its target is offline."""
        if data.get("kind") == ERROR:
            return []  # an error for someone who has left in the meantime
        request = data["message"]["type"] if data.get("kind") == RELAY else data[ERROR]["request"]
        return self._target_gone(data["from"], data["to"], request)

    def partner_vanished(self, username: str) -> list[Outgoing]:
        """``username``'s home stopped answering for it (a process that died): the calls
        with it end, as they would on one process when a user disconnects."""
        out: list[Outgoing] = []
        for local, session in list(self._users.items()):
            call = session.call
            if call is not None and call.other(local) == username:
                session.call = None
                close = protocol.relayed(Close(None, "disconnected"), username)
                out.append((session.connection, close))
        return out

    # ---- the hooks of Router ---------------------------------------------------------
    def _take_username(self, session: Session, username: str) -> list[Outgoing]:
        return [(Directory(session.connection), {"query": CLAIM, "username": username})]

    def _list_users(self, session: Session) -> list[Outgoing]:
        return [(Directory(session.connection), {"query": LIST})]

    def _relay_elsewhere(
        self, session: Session, sender: str, target: str, message: Relayed
    ) -> list[Outgoing]:
        kind = protocol.message_type(message)
        try:
            # The target's side is for its own home to take.
            self._sender_side(session, sender, target, message, kind)
        except ProtocolError as exc:
            # On one process an offline target would be unknown-user instead; its
            # home (if any) sends this error back.
            error = protocol.error_from(exc, kind)
            return [(RemoteUser(target), envelope(PROBE, sender, target, error=error))]
        relayed = protocol.relayed(message, sender)
        return [(RemoteUser(target), envelope(RELAY, sender, target, message=relayed))]

    def _end_call(self, session: Session, notify_reason: str | None) -> list[Outgoing]:
        call = session.call
        if call is None or session.username is None:
            return []
        other = call.other(session.username)
        if other in self._users:
            return super()._end_call(session, notify_reason)
        call.state = CallState.ENDED
        session.call = None
        close = protocol.relayed(Close(None, notify_reason), session.username)
        return [(RemoteUser(other), envelope(RELAY, session.username, other, message=close))]

    # ---- internals ---------------------------------------------------------------------
    def _relay_arrived(self, sender: str, target: str, message: JSONObject) -> list[Outgoing]:
        """The target's side of a relayed message, as Router._relay takes it on one
        process; what it refuses goes back to the sender as an error envelope."""
        session = self._users.get(target)
        if session is None:
            if message["type"] == "close":
                return []
            return self._bounce(target, sender, ProtocolError(Reason.UNKNOWN_USER), message)
        try:
            self._target_side(session, target, sender, message["type"])
        except ProtocolError as exc:
            return self._bounce(target, sender, exc, message)
        return [(session.connection, message)]

    def _bounce(
        self, target: str, sender: str, exc: ProtocolError, about: JSONObject
    ) -> list[Outgoing]:
        """Send ``sender`` the error its message to ``target`` earned here."""
        request = about.get("type") or about.get(ERROR, {}).get("request")
        error = refusal(exc, target, request)
        return [(RemoteUser(sender), envelope(ERROR, target, sender, error=error))]

    def _bounced(self, recipient: str, origin: str, error: JSONObject) -> list[Outgoing]:
        """An error for ``recipient`` (here) about its message to ``origin``."""
        session = self._users.get(recipient)
        if session is None:
            return []
        self._refused(session, recipient, origin, error.get("reason", ""))
        return [(session.connection, error)]

    def _target_gone(self, sender: str, target: str, request: str) -> list[Outgoing]:
        session = self._users.get(sender)
        if session is None:
            return []
        out: list[Outgoing] = []
        call = session.call
        if call is not None and call.other(sender) == target:
            session.call = None
            refused_offer = (
                request == "offer" and call.caller == sender and call.state is CallState.RINGING
            )
            if not refused_offer:
                # The partner is gone without a word (its process died): as on one
                # process, a partner who leaves ends the call with a close.
                close = protocol.relayed(Close(None, "disconnected"), target)
                out.append((session.connection, close))
        exc = ProtocolError(Reason.UNKNOWN_USER, otherUsername=target)
        out.append((session.connection, protocol.error_from(exc, request)))
        return out
