"""Protocol v1: JSON text frames turned into typed messages, and replies turned into JSON.

Pure functions and dataclasses: no sockets, no event loop. Every way a frame can be
wrong raises :class:`ProtocolError` carrying a stable ``reason`` code that the
server sends back to the sender in ``{"type": "error", "reason": ...}``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

MAX_MESSAGE_BYTES: Final = 64 * 1024
MAX_USERNAME_CHARS: Final = 32
USERNAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
MAX_REASON_CHARS: Final = 64
MAX_TOKEN_CHARS: Final = 1024

JSONObject = dict[str, Any]


class Reason:
    """Stable machine-readable error reasons (the ``reason`` field of error replies)."""

    INVALID_JSON: Final = "invalid-json"
    NOT_AN_OBJECT: Final = "not-an-object"
    BINARY_FRAME: Final = "binary-frame"
    UNKNOWN_TYPE: Final = "unknown-type"
    INVALID_FIELD: Final = "invalid-field"
    TOO_LARGE: Final = "too-large"
    RATE_LIMITED: Final = "rate-limited"
    NOT_LOGGED_IN: Final = "not-logged-in"
    ALREADY_LOGGED_IN: Final = "already-logged-in"
    INVALID_USERNAME: Final = "invalid-username"
    USERNAME_TAKEN: Final = "username-taken"
    UNAUTHORIZED: Final = "unauthorized"
    UNKNOWN_USER: Final = "unknown-user"
    SELF_CALL: Final = "self-call"
    BUSY: Final = "busy"
    IN_ANOTHER_CALL: Final = "in-another-call"
    NOT_IN_CALL: Final = "not-in-call"
    INVALID_STATE: Final = "invalid-state"
    SERVER_UNAVAILABLE: Final = "server-unavailable"


_HUMAN_TEXT: Final[dict[str, str]] = {
    Reason.INVALID_JSON: "the frame is not valid JSON",
    Reason.NOT_AN_OBJECT: "a message must be a JSON object",
    Reason.BINARY_FRAME: "binary frames are not part of the protocol; send JSON text",
    Reason.UNKNOWN_TYPE: "unknown message type",
    Reason.INVALID_FIELD: "a field is missing or has the wrong type",
    Reason.TOO_LARGE: f"message larger than {MAX_MESSAGE_BYTES} bytes",
    Reason.RATE_LIMITED: "too many messages per second; this one was dropped",
    Reason.NOT_LOGGED_IN: "log in first",
    Reason.ALREADY_LOGGED_IN: "this connection is already logged in",
    Reason.INVALID_USERNAME: "usernames are 1-32 letters, digits, '_', '.' or '-'",
    Reason.USERNAME_TAKEN: "that username is taken",
    Reason.UNAUTHORIZED: "wrong or missing token",
    Reason.UNKNOWN_USER: "no such user is online",
    Reason.SELF_CALL: "you cannot call yourself",
    Reason.BUSY: "the user is in another call",
    Reason.IN_ANOTHER_CALL: "hang up your current call first",
    Reason.NOT_IN_CALL: "you are not in a call with that user",
    Reason.INVALID_STATE: "that message does not fit the state of the call",
    Reason.SERVER_UNAVAILABLE: "the server cannot reach its user directory; try again shortly",
}


class ProtocolError(ValueError):
    """A frame the server cannot act on; ``reason`` is one of :class:`Reason`."""

    def __init__(self, reason: str, detail: str | None = None, **extra: Any) -> None:
        self.reason = reason
        self.detail = detail or _HUMAN_TEXT.get(reason, reason)
        self.extra = extra
        super().__init__(f"{reason}: {self.detail}")


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    token: str | None = None
    # The resume ticket of an earlier login (signaling.tickets), to get the name back.
    ticket: str | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    offer: JSONObject
    other_username: str


@dataclass(frozen=True, slots=True)
class Answer:
    answer: JSONObject
    other_username: str | None


@dataclass(frozen=True, slots=True)
class Candidate:
    candidate: JSONObject | None
    other_username: str | None


@dataclass(frozen=True, slots=True)
class Close:
    other_username: str | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ListUsers:
    """Extension: ask for the users online (the page's user list)."""


Message = Login | Offer | Answer | Candidate | Close | ListUsers
# Messages a user sends to the other party of a call; the router relays these.
Relayed = Offer | Answer | Candidate | Close


def is_valid_username(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_USERNAME_CHARS and _username_rule(value)


@functools.lru_cache(maxsize=4096)
def _username_rule(text: str) -> bool:
    # Cached: every relayed message names its target, and it is nearly always one
    # of a few names (only short strings get here, so the cache stays small).
    return USERNAME_PATTERN.fullmatch(text) is not None


def _field(data: JSONObject, name: str, kind: type | tuple[type, ...], *, required: bool) -> Any:
    value = data.get(name)
    if value is None:
        if required:
            raise ProtocolError(Reason.INVALID_FIELD, f"missing field {name!r}", field=name)
        return None
    # bool is an int subclass; no field of ours is numeric, so this is only a guard.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProtocolError(Reason.INVALID_FIELD, f"field {name!r} has the wrong type", field=name)
    return value


def _target(data: JSONObject, *, required: bool) -> str | None:
    target = _field(data, "otherUsername", str, required=required)
    if target is not None and not is_valid_username(target):
        raise ProtocolError(
            Reason.INVALID_USERNAME, "otherUsername is not a valid username", field="otherUsername"
        )
    return target


def _description(data: JSONObject, name: str, expected_type: str) -> JSONObject:
    description = _field(data, name, dict, required=True)
    sdp = description.get("sdp")
    if not isinstance(sdp, str) or description.get("type") != expected_type:
        raise ProtocolError(
            Reason.INVALID_FIELD,
            f"{name!r} must be {{'type': {expected_type!r}, 'sdp': <string>}}",
            field=name,
        )
    return description


def _candidate(data: JSONObject) -> JSONObject | None:
    if "candidate" not in data:
        raise ProtocolError(Reason.INVALID_FIELD, "missing field 'candidate'", field="candidate")
    candidate = data["candidate"]
    if candidate is None:
        return None
    if not isinstance(candidate, dict) or not isinstance(candidate.get("candidate", ""), str):
        raise ProtocolError(
            Reason.INVALID_FIELD,
            "'candidate' must be an RTCIceCandidate JSON object or null",
            field="candidate",
        )
    return candidate


def _parse_login(data: JSONObject) -> Login:
    username = data.get("username")
    if not isinstance(username, str):
        raise ProtocolError(Reason.INVALID_FIELD, "missing field 'username'", field="username")
    if not is_valid_username(username):
        raise ProtocolError(Reason.INVALID_USERNAME, field="username")
    token = _field(data, "token", str, required=False)
    if token is not None and len(token) > MAX_TOKEN_CHARS:
        raise ProtocolError(Reason.INVALID_FIELD, "token too long", field="token")
    ticket = _field(data, "ticket", str, required=False)
    if ticket is not None and len(ticket) > MAX_TOKEN_CHARS:
        raise ProtocolError(Reason.INVALID_FIELD, "ticket too long", field="ticket")
    return Login(username, token, ticket)


def _parse_offer(data: JSONObject) -> Offer:
    target = _target(data, required=True)
    assert target is not None
    return Offer(_description(data, "offer", "offer"), target)


def _parse_answer(data: JSONObject) -> Answer:
    return Answer(_description(data, "answer", "answer"), _target(data, required=False))


def _parse_candidate(data: JSONObject) -> Candidate:
    return Candidate(_candidate(data), _target(data, required=False))


def _parse_close(data: JSONObject) -> Close:
    reason = _field(data, "reason", str, required=False)
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise ProtocolError(Reason.INVALID_FIELD, "close reason too long", field="reason")
    return Close(_target(data, required=False), reason)


def _parse_list(data: JSONObject) -> ListUsers:
    return ListUsers()


_PARSERS: Final[dict[str, Callable[[JSONObject], Message]]] = {
    "login": _parse_login,
    "offer": _parse_offer,
    "answer": _parse_answer,
    "candidate": _parse_candidate,
    "close": _parse_close,
    "list": _parse_list,
}


def parse(frame: str | bytes) -> Message:
    """Turn one WebSocket text frame into a typed message or raise ProtocolError."""
    if isinstance(frame, bytes):
        raise ProtocolError(Reason.BINARY_FRAME)
    # A character is at most 4 bytes: only frames that might be too large get encoded.
    if len(frame) > MAX_MESSAGE_BYTES // 4 and (
        len(frame) > MAX_MESSAGE_BYTES or len(frame.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES
    ):
        raise ProtocolError(Reason.TOO_LARGE)
    return parse_object(decode_json(frame))


def decode_json(text: str) -> Any:
    """JSON text -> Python value, or ProtocolError(invalid-json).

    orjson first (several times faster than the standard library on an SDP-sized
    frame). It refuses NaN, Infinity and numbers that overflow to infinity, as it
    should: relayed, they would break the receiver's JSON.parse. It also refuses lone
    surrogate escapes ("\\ud800"), which are valid JSON, so what it refuses goes to the
    standard library, which takes those and refuses the rest.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(Reason.INVALID_JSON) from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a double")
    return value


def parse_object(data: object) -> Message:
    """Validate an already-decoded JSON value."""
    if not isinstance(data, dict):
        raise ProtocolError(Reason.NOT_AN_OBJECT)
    kind = data.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        if kind is None:
            raise ProtocolError(Reason.UNKNOWN_TYPE, "missing field 'type'")
        shown = kind if isinstance(kind, str) and len(kind) <= 32 else None
        raise ProtocolError(Reason.UNKNOWN_TYPE, f"unknown message type {shown!r}")
    try:
        return parser(data)
    except ProtocolError as exc:
        exc.extra.setdefault("request", kind)
        raise


def message_type(message: Message) -> str:
    return _TYPE_NAMES[type(message)]


_TYPE_NAMES: Final[dict[type, str]] = {
    Login: "login",
    Offer: "offer",
    Answer: "answer",
    Candidate: "candidate",
    Close: "close",
    ListUsers: "list",
}


def error(reason: str, detail: str | None = None, **extra: Any) -> JSONObject:
    reply: JSONObject = {
        "type": "error",
        "reason": reason,
        "message": detail or _HUMAN_TEXT.get(reason, reason),
    }
    reply.update({k: v for k, v in extra.items() if v is not None})
    return reply


def error_from(exc: ProtocolError, request: str | None = None) -> JSONObject:
    return error(exc.reason, exc.detail, **{"request": request, **exc.extra})


def login_reply(success: bool, reason: str | None = None) -> JSONObject:
    if success:
        return {"type": "login", "success": True}
    return {
        "type": "login",
        "success": False,
        "reason": reason,
        "message": _HUMAN_TEXT.get(reason or "", reason),
    }


def relayed(message: Relayed, sender: str) -> JSONObject:
    """What the other user receives: the payload, stamped with the sender's username."""
    if isinstance(message, Offer):
        return {"type": "offer", "offer": message.offer, "username": sender}
    if isinstance(message, Answer):
        return {"type": "answer", "answer": message.answer, "username": sender}
    if isinstance(message, Candidate):
        return {"type": "candidate", "candidate": message.candidate, "username": sender}
    out: JSONObject = {"type": "close", "username": sender}
    if message.reason is not None:
        out["reason"] = message.reason
    return out


def encode(message: JSONObject) -> str:
    """One text frame. Always valid UTF-8: a lone surrogate that came in as a
    ``\\udXXX`` escape goes out as an escape again instead of failing the send."""
    return encode_frame(message).decode("utf-8")


def encode_frame(message: JSONObject) -> bytes:
    """The UTF-8 payload of one text frame (what the server hands the socket)."""
    try:
        return orjson.dumps(message)
    except TypeError:
        # orjson refuses lone surrogates and integers beyond 64 bits; the standard
        # library writes both (the surrogate as an escape, so the frame stays UTF-8).
        return json.dumps(message, separators=(",", ":")).encode("utf-8")
