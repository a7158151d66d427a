"""What the signaling server sends the peer, as types: each raw JSON object of the
client (peer/session/client.py) becomes one of a few dataclasses, so the rest of the
peer matches on types and on the protocol's reason codes, never on English text.

Pure. A name the server stamped on a message is checked here once (the protocol's
username rule); the contents of descriptions and candidates are checked by whoever
uses them (peer/session/intake.py), since a bad one ends only the call it belongs to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from peer.tty.untrusted import shown, username_from_server
from signaling.protocol import Reason

logger = logging.getLogger(__name__)

JSONObject = dict[str, Any]


class CloseReason:
    """The ``reason`` of a close one user sends another (relayed by the server as is)."""

    BUSY: Final = Reason.BUSY
    DECLINED: Final = "declined"
    FAILED: Final = "failed"  # the media connection failed and nobody re-establishes it
    BAD_OFFER: Final = "bad-offer"
    BAD_MESSAGE: Final = "bad-message"
    # A fresh offer refused because our connection with its sender still works
    # (peer/call/recovery.py, FreshOfferHold).
    CONNECTION_HEALTHY: Final = "connection-healthy"


@dataclass(frozen=True, slots=True)
class RemoteOffer:
    sender: str
    offer: object  # a description still to be checked (intake.description)


@dataclass(frozen=True, slots=True)
class RemoteAnswer:
    sender: str
    answer: object


@dataclass(frozen=True, slots=True)
class RemoteCandidate:
    sender: str
    candidate: object

    @property
    def ufrag(self) -> object:
        """The ICE username fragment it belongs to (which negotiation it is for)."""
        candidate = self.candidate
        return candidate.get("usernameFragment") if isinstance(candidate, dict) else None


@dataclass(frozen=True, slots=True)
class RemoteClose:
    sender: str
    reason: str | None  # printable, cut to 80 characters; usually a CloseReason


@dataclass(frozen=True, slots=True)
class UsersOnline:
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServerError:
    reason: str | None  # one of signaling.protocol.Reason
    message: str | None
    raw: JSONObject  # for the log

    @property
    def text(self) -> str:
        return shown(self.message or self.reason)


@dataclass(frozen=True, slots=True)
class Unhandled:
    """A type this peer does not act on (a login reply, an extension)."""

    kind: object
    sender: object


# What one user of the protocol sends another through the server.
FromUser = RemoteOffer | RemoteAnswer | RemoteCandidate | RemoteClose
ServerMessage = FromUser | UsersOnline | ServerError | Unhandled


def parse(message: JSONObject) -> ServerMessage | None:
    """``message`` as a typed message; None (logged) when its sender's name breaks the rule."""
    kind = message.get("type")
    if "username" in message and username_from_server(message["username"]) is None:
        # Relayed messages carry a name the server checked; anything else is not from
        # a user of this protocol.
        logger.warning(
            "ignored %s with the username %s", shown(kind, 20), shown(message["username"], 40)
        )
        return None
    sender = message.get("username")
    if isinstance(sender, str):
        if kind == "offer":
            return RemoteOffer(sender, message.get("offer"))
        if kind == "answer":
            return RemoteAnswer(sender, message.get("answer"))
        if kind == "candidate":
            return RemoteCandidate(sender, message.get("candidate"))
        if kind == "close":
            reason = message.get("reason")
            return RemoteClose(sender, shown(reason, 80) if isinstance(reason, str) else None)
    if kind == "users" and isinstance(message.get("users"), list):
        return UsersOnline(tuple(u for u in message["users"] if username_from_server(u)))
    if kind == "error":
        reason, text = message.get("reason"), message.get("message")
        return ServerError(
            reason if isinstance(reason, str) else None,
            text if isinstance(text, str) else None,
            message,
        )
    return Unhandled(kind, sender)


def close(other: str, reason: str | None = None) -> JSONObject:
    """The close that ends (or refuses) a call with ``other``."""
    message: JSONObject = {"type": "close", "otherUsername": other}
    if reason:
        message["reason"] = reason
    return message


def list_users() -> JSONObject:
    return {"type": "list"}
