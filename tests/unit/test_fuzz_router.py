"""Promise 4a: whatever frames many users throw at the router, in whatever order, it
keeps its word. Hypothesis drives the real sans-I/O router (``handle_frame``,
``connect``, ``disconnect``) with random connections, logins, calls and garbage, and
after every step checks what came out against a small independent model:

- a user has at most one partner, and partnership is symmetric;
- a message is delivered only to the connection it was addressed to: a relay to the
  target's connection, stamped with the sender's login (never a forged name), a reply
  only to the sender;
- usernames stay unique: one connection per name;
- every bad frame gets exactly one error (or a failed login), to its sender only, and
  changes nothing;
- everything the router emits encodes to one valid UTF-8 JSON text frame;
- once everybody has disconnected, every table inside the router is empty (no leak).

``HYPOTHESIS_PROFILE=long`` runs many more, longer, random (not derandomized) examples;
the default profile is derandomized so a CI failure reproduces exactly.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from signaling import protocol
from signaling.protocol import MAX_MESSAGE_BYTES, MAX_TOKEN_CHARS, JSONObject
from signaling.router import MAX_LISTED_USERS, CallState, Router

PROFILES: Final = {
    "ci": settings(
        max_examples=150,
        stateful_step_count=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    ),
    "long": settings(
        max_examples=5000,
        stateful_step_count=120,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    ),
}
PROFILE_NAME: Final = os.environ.get("HYPOTHESIS_PROFILE", "ci")
PROFILE: Final = PROFILES[PROFILE_NAME]
# The long profile runs for many minutes: no per-test time limit there.
pytestmark = pytest.mark.timeout(0 if PROFILE_NAME == "long" else 300)
TOKEN: Final = "s3cret"

# Few names, so that logins collide, calls find their targets and targets get busy.
NAMES: Final = ("alice", "bob", "carol", "dave")
BAD_NAMES: Final = ("", "a" * 33, "al ice", "ünï", "bob\x00", "<script>", "bob/..")

# ---- frames -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: beyond 64 bits orjson refuses them on the way out
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
targets = st.none() | st.sampled_from(NAMES) | st.sampled_from(BAD_NAMES) | json_values
descriptions = st.builds(
    lambda kind, sdp: {"type": kind, "sdp": sdp},
    st.sampled_from(("offer", "answer", "pranswer")),
    st.text(max_size=40),
)
candidates = st.none() | st.fixed_dictionaries(
    {
        "candidate": st.just("candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host")
        | st.text(max_size=30),
        "sdpMid": st.just("0"),
        "sdpMLineIndex": st.integers(0, 3),
    }
)


@st.composite
def relay_frames(draw: st.DrawFn) -> str:
    """offer/answer/candidate/close to someone: mostly well formed, often not quite."""
    kind = draw(st.sampled_from(("offer", "answer", "candidate", "close")))
    message: JSONObject = {"type": kind}
    if draw(st.integers(0, 5)):
        message["otherUsername"] = draw(targets)
    if kind in ("offer", "answer"):
        message[kind] = draw(
            descriptions.map(lambda d: {**d, "type": kind}) | descriptions | json_values
        )
    elif kind == "candidate":
        message["candidate"] = draw(candidates | json_values)
    elif draw(st.booleans()):
        message["reason"] = draw(st.text(max_size=70) | json_values)
    # A forged sender name, unknown keys: the server must ignore or overwrite them.
    message.update(
        draw(
            st.dictionaries(st.sampled_from(("username", "x", "success")), json_values, max_size=2)
        )
    )
    if len(message) > 1 and draw(st.integers(0, 7)) == 0:
        del message[draw(st.sampled_from(sorted(message)))]
    return json.dumps(message, ensure_ascii=draw(st.booleans()))


@st.composite
def login_frames(draw: st.DrawFn) -> str:
    message: JSONObject = {"type": "login"}
    if draw(st.integers(0, 9)):
        message["username"] = draw(
            st.sampled_from(NAMES) | st.sampled_from(BAD_NAMES) | json_values
        )
    token = draw(st.sampled_from((None, TOKEN, "wrong", "x" * (MAX_TOKEN_CHARS + 1))) | json_values)
    if token is not None:
        message["token"] = token
    return json.dumps(message, ensure_ascii=draw(st.booleans()))


WELL_FORMED: Final[dict[str, JSONObject]] = {
    "offer": {"type": "offer", "offer": {"type": "offer", "sdp": "v=0"}},
    "answer": {"type": "answer", "answer": {"type": "answer", "sdp": "v=0"}},
    "candidate": {"type": "candidate", "candidate": {"candidate": "", "sdpMid": "0"}},
    "close": {"type": "close", "reason": "bye"},
}


def sized_offer(target: str, size: int, fill: str) -> str:
    """A valid offer whose UTF-8 encoding is ``size`` bytes long, padded with ``fill``."""
    empty = json.dumps(
        {"type": "offer", "offer": {"type": "offer", "sdp": ""}, "otherUsername": target},
        separators=(",", ":"),
    )
    room = size - len(empty.encode())
    width = len(fill.encode())
    padding = fill * (room // width) + "x" * (room % width)
    frame = empty.replace('"sdp":""', f'"sdp":"{padding}"')
    assert len(frame.encode()) == size
    return frame


# Frames chosen by hand: the edges of the JSON decoders and of the size limit.
ODD_FRAMES: Final[tuple[str, ...]] = (
    "",
    " ",
    "null",
    "[]",
    "{}",
    "\ufeff{}",
    "[" * 100_000,
    '{"a":' * 5_000,
    "NaN",
    '{"type":"login","username":"bob","n":NaN}',
    '{"type":"login","username":"bob","n":1e999}',
    '{"type":"login","username":"bob","n":-Infinity}',
    "9" * 5_000,
    '{"type":"login","username":"bob","n":' + "9" * 5_000 + "}",
    '{"type":"login","username":"\\ud800"}',
    '{"type":"close","reason":"\\udc00\\ud800"}',
    '{"type":"candidate","candidate":{"candidate":"\\ud83d"},"otherUsername":"bob"}',
    '{"type":"login","type":"offer","username":"carol"}',
    '{"type":null}',
    '{"type":5}',
    '{"type":"' + "x" * 100 + '"}',
    '{"type":"__proto__"}',
    '{"type":"list","extra":[1,2,3]}',
    '{"type":"offer","offer":{"type":"offer","sdp":"v=0"},"otherUsername":"bob",'
    '"x":18446744073709551616}',
    sized_offer("bob", MAX_MESSAGE_BYTES, "x"),
    sized_offer("bob", MAX_MESSAGE_BYTES + 1, "x"),
    sized_offer("bob", MAX_MESSAGE_BYTES, "é"),
    sized_offer("bob", MAX_MESSAGE_BYTES + 1, "é"),
    sized_offer("bob", MAX_MESSAGE_BYTES + 2, "😀"),
    '{"type":"login","username":"' + "x" * 70_000 + '"}',
)

frames = st.one_of(
    relay_frames(),
    login_frames(),
    st.just('{"type":"list"}'),
    st.sampled_from(ODD_FRAMES),
    json_values.map(json.dumps),
    st.text(max_size=40),
    st.binary(max_size=40),
)

# ---- the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Conn:
    number: int


@dataclass(eq=False)
class ModelCall:
    caller: str
    callee: str
    answered: bool = False

    def other(self, name: str) -> str:
        return self.callee if name == self.caller else self.caller


@dataclass
class Model:
    """What the protocol promises, written the simplest way; independent of the router."""

    token: str | None
    conns: set[Conn] = field(default_factory=set)
    user_of: dict[Conn, str] = field(default_factory=dict)
    conn_of: dict[str, Conn] = field(default_factory=dict)
    calls: dict[str, ModelCall] = field(default_factory=dict)

    def disconnect(self, conn: Conn) -> list[tuple[Conn, JSONObject]]:
        self.conns.discard(conn)
        name = self.user_of.pop(conn, None)
        if name is None:
            return []
        del self.conn_of[name]
        call = self.calls.pop(name, None)
        if call is None:
            return []
        partner = call.other(name)
        del self.calls[partner]
        return [
            (self.conn_of[partner], {"type": "close", "username": name, "reason": "disconnected"})
        ]

    def frame(self, conn: Conn, frame: str | bytes) -> list[tuple[Conn, JSONObject | str]]:
        """What ``conn`` sending ``frame`` must produce; a str stands for an error reason."""
        if isinstance(frame, bytes):
            return [(conn, "binary-frame")]
        if len(frame.encode()) > MAX_MESSAGE_BYTES:
            return [(conn, "too-large")]
        parsed = model_parse(frame)
        if isinstance(parsed, str):
            return [(conn, parsed)]
        message, data = parsed
        kind = data["type"]
        if kind == "login":
            return [(conn, self._login(conn, message))]
        name = self.user_of.get(conn)
        if name is None:
            return [(conn, "not-logged-in")]
        if kind == "list":
            return [(conn, {"type": "users", "users": sorted(self.conn_of)[:MAX_LISTED_USERS]})]
        outcome = self._relay(name, kind, data)
        if isinstance(outcome, str):
            return [(conn, outcome)]
        return [outcome]

    def _login(self, conn: Conn, message: Any) -> JSONObject | str:
        if conn in self.user_of:
            return "already-logged-in"
        if self.token is not None and message.token != self.token:
            return login_failed("unauthorized")
        if message.username in self.conn_of:
            return login_failed("username-taken")
        self.user_of[conn] = message.username
        self.conn_of[message.username] = conn
        return {"type": "login", "success": True}

    def _relay(self, sender: str, kind: str, data: JSONObject) -> tuple[Conn, JSONObject] | str:
        call = self.calls.get(sender)
        target = data.get("otherUsername")
        if target is None:
            if call is None:
                return "invalid-field"
            target = call.other(sender)
        if target == sender:
            return "self-call"
        if target not in self.conn_of:
            return "unknown-user"
        outside_a_call = call is None or call.other(sender) != target
        if outside_a_call and kind == "close" and target not in self.calls:
            # A call from before a server restart is unknown here: its hang-up is
            # relayed to an idle target, and nobody's call changes.
            pass
        elif outside_a_call:
            if kind != "offer":
                return "not-in-call"
            if call is not None:
                return "in-another-call"
            if target in self.calls:
                return "busy"
            self.calls[sender] = self.calls[target] = ModelCall(sender, target)
        elif kind == "close":
            del self.calls[sender], self.calls[target]
        elif call is not None and not call.answered:
            is_caller = sender == call.caller
            if kind == "answer" and not is_caller:
                call.answered = True
            elif not (kind == "candidate" or (kind == "offer" and is_caller)):
                return "invalid-state"
        relayed: JSONObject = {"type": kind, "username": sender}
        if kind != "close":
            relayed[kind] = data[kind]
        elif data.get("reason") is not None:
            relayed["reason"] = data["reason"]
        return (self.conn_of[target], relayed)


@dataclass(frozen=True)
class ModelLogin:
    username: str
    token: str | None


USERNAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MAX_REASON_CHARS: Final = 64


def model_parse(frame: str) -> tuple[ModelLogin | None, JSONObject] | str:
    """The model's own reading of a text frame, from the protocol's description
    (docs/protocol.md), not the server's parser: an error reason, or the login (for a
    login frame) and the decoded object."""
    try:
        data = json.loads(frame, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, RecursionError):
        return "invalid-json"
    if not isinstance(data, dict):
        return "not-an-object"
    kind = data.get("type")
    checks = _MODEL_CHECKS.get(kind) if isinstance(kind, str) else None
    if checks is None:
        return "unknown-type"
    for check in checks:
        if (reason := check(data)) is not None:
            return reason
    if kind == "login":
        return ModelLogin(data["username"], data.get("token")), data
    return None, data


def _not_json(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: JSON.parse in a browser would choke on them


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


def _optional_string(name: str, longest: int | None = None) -> Callable[[JSONObject], str | None]:
    def check(data: JSONObject) -> str | None:
        value = data.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or (longest is not None and len(value) > longest):
            return "invalid-field"
        return None

    return check


def _target(required: bool) -> Callable[[JSONObject], str | None]:
    def check(data: JSONObject) -> str | None:
        value = data.get("otherUsername")
        if value is None:
            return "invalid-field" if required else None
        if not isinstance(value, str):
            return "invalid-field"
        return None if USERNAME.fullmatch(value) else "invalid-username"

    return check


def _description(name: str) -> Callable[[JSONObject], str | None]:
    def check(data: JSONObject) -> str | None:
        value = data.get(name)
        if not isinstance(value, dict):
            return "invalid-field"
        if value.get("type") != name or not isinstance(value.get("sdp"), str):
            return "invalid-field"
        return None

    return check


def _login_name(data: JSONObject) -> str | None:
    name = data.get("username")
    if not isinstance(name, str):
        return "invalid-field"
    return None if USERNAME.fullmatch(name) else "invalid-username"


def _ice_candidate(data: JSONObject) -> str | None:
    if "candidate" not in data:
        return "invalid-field"
    value = data["candidate"]
    if value is None:
        return None  # end of candidates
    if not isinstance(value, dict) or not isinstance(value.get("candidate", ""), str):
        return "invalid-field"
    return None


# Per message type, its fields' checks in the order the protocol states them.
_MODEL_CHECKS: Final[dict[str, tuple[Callable[[JSONObject], str | None], ...]]] = {
    "login": (_login_name, _optional_string("token", MAX_TOKEN_CHARS)),
    "offer": (_target(required=True), _description("offer")),
    "answer": (_description("answer"), _target(required=False)),
    "candidate": (_ice_candidate, _target(required=False)),
    "close": (_optional_string("reason", MAX_REASON_CHARS), _target(required=False)),
    "list": (),
}


def login_failed(reason: str) -> JSONObject:
    return {
        "type": "login",
        "success": False,
        "reason": reason,
        "message": protocol.error(reason)["message"],
    }


def as_frame(message: JSONObject) -> JSONObject:
    """The message as the receiver decodes it from the text frame the server sends."""
    text = protocol.encode_frame(message).decode("utf-8")  # strict: must be valid UTF-8
    decoded: JSONObject = json.loads(text)
    return decoded


# ---- the machine --------------------------------------------------------------------------


class RouterFuzz(RuleBasedStateMachine):
    token: str | None = None
    conns = Bundle("conns")

    def __init__(self) -> None:
        super().__init__()
        self.router = Router(token=self.token)
        self.model = Model(self.token)
        self.numbers = 0

    @initialize(target=conns)
    def first_users(self) -> MultipleResults[Conn]:
        """alice and bob online from the start: most steps then reach the call logic."""
        first = [self._open(), self._open(), self._open()]
        for conn, name in zip(first, NAMES, strict=False):
            self.log_in(conn, name)
        return multiple(*first)

    @rule(target=conns)
    def connect(self) -> Conn:
        return self._open()

    def _open(self) -> Conn:
        self.numbers += 1
        conn = Conn(self.numbers)
        self.router.connect(conn)
        self.model.conns.add(conn)
        return conn

    @rule(conn=consumes(conns))
    def disconnect(self, conn: Conn) -> None:
        expected = self.model.disconnect(conn)
        assert [(c, as_frame(m)) for c, m in self.router.disconnect(conn)] == expected
        event("disconnect")

    @rule(conn=conns, name=st.sampled_from(NAMES))
    def log_in(self, conn: Conn, name: str) -> None:
        # Frequent, well-formed logins (with the token when one is needed): calls happen.
        self.send(conn, json.dumps({"type": "login", "username": name, "token": self.token}))

    @rule(caller=conns, callee=conns)
    def call(self, caller: Conn, callee: Conn) -> None:
        """A textbook offer and answer between two connections, whatever their state."""
        callee_name = self.model.user_of.get(callee, NAMES[0])
        caller_name = self.model.user_of.get(caller, NAMES[1])
        self.send(caller, json.dumps(WELL_FORMED["offer"] | {"otherUsername": callee_name}))
        self.send(callee, json.dumps(WELL_FORMED["answer"] | {"otherUsername": caller_name}))

    @rule(
        conn=conns,
        kind=st.sampled_from(sorted(WELL_FORMED)),
        to=st.none() | st.sampled_from(NAMES),
    )
    def talk(self, conn: Conn, kind: str, to: str | None) -> None:
        """Well-formed messages in any order: every move of the call's state table."""
        message = WELL_FORMED[kind] | ({} if to is None else {"otherUsername": to})
        self.send(conn, json.dumps(message))

    @rule(conn=conns, frame=frames)
    def send(self, conn: Conn, frame: str | bytes) -> None:
        if conn not in self.model.conns:  # consumed by a disconnect earlier in this step
            return
        before = self.snapshot()
        expected = self.model.frame(conn, frame)
        got = [(c, as_frame(m)) for c, m in self.router.handle_frame(conn, frame)]
        assert len(got) == len(expected) == 1, (frame[:200], got, expected)
        [(to, message)] = got
        [(expected_to, expected_message)] = expected
        assert to == expected_to, (frame[:200], got, expected)
        if isinstance(expected_message, str):
            event(f"error {expected_message}")
            assert message["type"] == "error", (frame[:200], message)
            assert message["reason"] == expected_message, (frame[:200], message)
            assert isinstance(message["message"], str) and message["message"]
            assert self.snapshot() == before, "a refused frame changed the router's state"
        else:
            event(f"ok {expected_message['type']}")
            assert message == expected_message, (frame[:200], got, expected)
            if message["type"] == "login" and message["success"] is False:
                assert self.snapshot() == before

    def snapshot(self) -> tuple[Any, ...]:
        names = self.router.online_users()
        return (
            names,
            [(n, self.router.partner_of(n), self.router.call_state_of(n)) for n in names],
            self.router.connection_count,
        )

    @invariant()
    def router_agrees_with_the_model(self) -> None:
        router, model = self.router, self.model
        assert router.online_users() == sorted(model.conn_of)
        assert router.connection_count == len(model.conns)
        assert router.user_count == len(model.user_of) == len(model.conn_of)
        for conn in model.conns:
            assert router.username_of(conn) == model.user_of.get(conn)
        for name in model.conn_of:
            partner = router.partner_of(name)
            call = model.calls.get(name)
            assert partner == (call.other(name) if call else None)
            if partner is not None:
                assert router.partner_of(partner) == name  # symmetric: one partner each
                expected = CallState.ACTIVE if call and call.answered else CallState.RINGING
                assert router.call_state_of(name) is expected
        assert router.active_call_count == len(model.calls) // 2

    def teardown(self) -> None:
        for conn in sorted(self.model.conns, key=lambda c: c.number):
            self.disconnect(conn)
        # No leak: every container the router keeps is empty once everybody has left.
        for name, value in vars(self.router).items():
            if isinstance(value, dict | list | set):
                assert not value, f"Router.{name} still holds {value!r}"
        assert (self.router.connection_count, self.router.user_count) == (0, 0)
        assert self.router.active_call_count == 0


class RouterWithTokenFuzz(RouterFuzz):
    token = TOKEN


TestRouterFuzz = RouterFuzz.TestCase
TestRouterFuzz.settings = PROFILE
TestRouterWithTokenFuzz = RouterWithTokenFuzz.TestCase
TestRouterWithTokenFuzz.settings = PROFILE
