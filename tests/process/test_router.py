"""The sans-I/O router, driven with plain hashable connection handles (no sockets).

Every test reads what each connection would receive: the router returns
``(connection, message)`` pairs and :class:`World` groups them per connection.
"""

from __future__ import annotations

import hmac
import itertools
import json
from dataclasses import dataclass
from typing import Any

import pytest

from signaling import router as router_module
from signaling.protocol import MAX_MESSAGE_BYTES, JSONObject
from signaling.ratelimit import TokenBucket
from signaling.router import (
    CALL_TRANSITIONS,
    MAX_LISTED_USERS,
    Call,
    CallState,
    IllegalMove,
    Role,
    Router,
)

OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n"}
# What a browser's RTCIceCandidate.toJSON() produces.
CANDIDATE = {
    "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "abcd",
}


@dataclass(frozen=True)
class Conn:
    """A connection handle: anything hashable will do for the router."""

    name: str


Inbox = dict[Conn, list[JSONObject]]


class World:
    """A router plus helpers that send frames and group what comes out per connection."""

    def __init__(self, token: str | None = None) -> None:
        self.router = Router(token=token)

    def connect(self, name: str) -> Conn:
        conn = Conn(name)
        self.router.connect(conn)
        return conn

    def send(self, conn: Conn, message: JSONObject | str | bytes) -> Inbox:
        frame = message if isinstance(message, str | bytes) else json.dumps(message)
        return group(self.router.handle_frame(conn, frame))

    def login(self, name: str, **extra: Any) -> Conn:
        conn = self.connect(name)
        inbox = self.send(conn, {"type": "login", "username": name, **extra})
        assert inbox == {conn: [{"type": "login", "success": True}]}
        return conn

    def disconnect(self, conn: Conn) -> Inbox:
        return group(self.router.disconnect(conn))

    def snapshot(self) -> tuple[Any, ...]:
        users = self.router.online_users()
        return (
            users,
            {u: (self.router.partner_of(u), self.router.call_state_of(u)) for u in users},
            self.router.connection_count,
            self.router.active_call_count,
        )


def group(outgoing: list[tuple[Any, JSONObject]]) -> Inbox:
    inbox: Inbox = {}
    for conn, message in outgoing:
        # Everything the router emits must survive the trip through JSON unchanged.
        assert json.loads(json.dumps(message)) == message
        inbox.setdefault(conn, []).append(message)
    return inbox


def offer(to: str | None, **extra: Any) -> JSONObject:
    message: JSONObject = {"type": "offer", "offer": OFFER, **extra}
    if to is not None:
        message["otherUsername"] = to
    return message


def answer(to: str | None, **extra: Any) -> JSONObject:
    message: JSONObject = {"type": "answer", "answer": ANSWER, **extra}
    if to is not None:
        message["otherUsername"] = to
    return message


def candidate(to: str | None, value: JSONObject | None = CANDIDATE, **extra: Any) -> JSONObject:
    message: JSONObject = {"type": "candidate", "candidate": value, **extra}
    if to is not None:
        message["otherUsername"] = to
    return message


def close(to: str | None, **extra: Any) -> JSONObject:
    message: JSONObject = {"type": "close", **extra}
    if to is not None:
        message["otherUsername"] = to
    return message


def in_call(world: World, caller: Conn, callee: Conn) -> None:
    """caller offers, callee answers: an active call."""
    world.send(caller, offer(callee.name))
    world.send(callee, answer(caller.name))
    assert world.router.call_state_of(caller.name) is CallState.ACTIVE


def only_error(inbox: Inbox, conn: Conn, reason: str) -> JSONObject:
    """The sender, and nobody else, got exactly one error with this reason."""
    assert list(inbox) == [conn], inbox
    [reply] = inbox[conn]
    assert reply["type"] == "error", reply
    assert reply["reason"] == reason, reply
    assert isinstance(reply["message"], str) and reply["message"]
    return reply


# ---- login --------------------------------------------------------------------------


def test_login_succeeds_and_lists_the_user() -> None:
    world = World()
    alice = world.login("alice")
    assert world.router.username_of(alice) == "alice"
    assert world.send(alice, {"type": "list"}) == {alice: [{"type": "users", "users": ["alice"]}]}


def test_username_taken_is_a_failed_login_and_the_owner_is_untouched() -> None:
    world = World()
    alice = world.login("alice")
    impostor = world.connect("impostor")
    inbox = world.send(impostor, {"type": "login", "username": "alice"})
    assert inbox == {
        impostor: [
            {
                "type": "login",
                "success": False,
                "reason": "username-taken",
                "message": "that username is taken",
            }
        ]
    }
    assert world.router.username_of(impostor) is None
    # The impostor may pick another name; alice still receives what is meant for her.
    assert world.send(impostor, {"type": "login", "username": "mallory"}) == {
        impostor: [{"type": "login", "success": True}]
    }
    bob = world.login("bob")
    assert world.send(bob, offer("alice"))[alice][0]["username"] == "bob"


def test_valid_usernames() -> None:
    world = World()
    for name in ["a", "A.b-c_d", "0" * 32, "user.name-1_x"]:
        world.login(name)


def test_a_name_is_free_again_after_disconnect() -> None:
    world = World()
    alice = world.login("alice")
    assert world.disconnect(alice) == {}
    world.login("alice")


def test_token_required_right_wrong_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(router_module.hmac, "compare_digest", spy)
    world = World(token="s3cret")
    unauthorized = {
        "type": "login",
        "success": False,
        "reason": "unauthorized",
        "message": "wrong or missing token",
    }
    for extra in ({}, {"token": "wrong"}, {"token": "s3cre"}, {"token": "s3cret!"}, {"token": ""}):
        conn = world.connect("x")
        assert world.send(conn, {"type": "login", "username": "alice", **extra}) == {
            conn: [unauthorized]
        }
        world.disconnect(conn)
    assert world.router.user_count == 0
    world.login("alice", token="s3cret")
    # The comparison went through hmac.compare_digest (constant time) every time.
    assert len(compared) == 6
    assert all(b == b"s3cret" for _, b in compared)


def test_token_checked_before_the_name_so_it_does_not_leak_who_is_online() -> None:
    world = World(token="s3cret")
    world.login("alice", token="s3cret")
    conn = world.connect("probe")
    reply = world.send(conn, {"type": "login", "username": "alice", "token": "nope"})
    assert reply[conn][0]["reason"] == "unauthorized"


def test_no_token_configured_ignores_a_token_field() -> None:
    World().login("alice", token="anything")


# ---- relaying ------------------------------------------------------------------------


def test_full_call_relays_each_message_stamped_with_the_sender() -> None:
    world = World()
    alice, bob = world.login("alice"), world.login("bob")

    assert world.send(alice, offer("bob")) == {
        bob: [{"type": "offer", "offer": OFFER, "username": "alice"}]
    }
    assert world.router.call_state_of("alice") is CallState.RINGING
    assert world.router.partner_of("bob") == "alice"
    assert world.send(alice, candidate("bob")) == {
        bob: [{"type": "candidate", "candidate": CANDIDATE, "username": "alice"}]
    }
    assert world.send(bob, answer("alice")) == {
        alice: [{"type": "answer", "answer": ANSWER, "username": "bob"}]
    }
    assert world.router.call_state_of("bob") is CallState.ACTIVE
    assert world.router.active_call_count == 1
    assert world.send(bob, candidate("alice")) == {
        alice: [{"type": "candidate", "candidate": CANDIDATE, "username": "bob"}]
    }
    # null: end of candidates
    assert world.send(bob, candidate("alice", None)) == {
        alice: [{"type": "candidate", "candidate": None, "username": "bob"}]
    }
    assert world.send(alice, close("bob")) == {bob: [{"type": "close", "username": "alice"}]}
    assert world.router.partner_of("alice") is None
    assert world.router.partner_of("bob") is None
    assert world.router.active_call_count == 0


def test_close_carries_an_optional_reason() -> None:
    world = World()
    alice, bob = world.login("alice"), world.login("bob")
    world.send(alice, offer("bob"))
    # The callee declines while it rings.
    assert world.send(bob, close("alice", reason="declined")) == {
        alice: [{"type": "close", "username": "bob", "reason": "declined"}]
    }
    assert world.router.active_call_count == 0


@pytest.mark.parametrize("forged", ["mallory", "bob", 12, None])
def test_a_forged_username_in_the_message_is_ignored(forged: object) -> None:
    world = World()
    alice, bob = world.login("alice"), world.login("bob")
    world.login("mallory")
    inbox = world.send(alice, offer("bob", username=forged))
    assert inbox == {bob: [{"type": "offer", "offer": OFFER, "username": "alice"}]}
    inbox = world.send(bob, answer("alice", username=forged))
    assert inbox == {alice: [{"type": "answer", "answer": ANSWER, "username": "bob"}]}
    inbox = world.send(bob, candidate("alice", username=forged))
    assert inbox[alice][0]["username"] == "bob"
    inbox = world.send(alice, close("bob", username=forged))
    assert inbox == {bob: [{"type": "close", "username": "alice"}]}


def test_unknown_extra_fields_are_not_relayed() -> None:
    world = World()
    alice, bob = world.login("alice"), world.login("bob")
    inbox = world.send(alice, offer("bob", secret="x", token="t"))
    assert inbox == {bob: [{"type": "offer", "offer": OFFER, "username": "alice"}]}


def test_tutorial_earliest_client_omits_other_username_on_answer_candidate_close() -> None:
    world = World()
    alice, bob = world.login("alice"), world.login("bob")
    world.send(alice, offer("bob"))
    assert world.send(bob, {"type": "answer", "answer": ANSWER}) == {
        alice: [{"type": "answer", "answer": ANSWER, "username": "bob"}]
    }
    assert world.send(bob, {"type": "candidate", "candidate": CANDIDATE}) == {
        alice: [{"type": "candidate", "candidate": CANDIDATE, "username": "bob"}]
    }
    assert world.send(alice, {"type": "candidate", "candidate": CANDIDATE}) == {
        bob: [{"type": "candidate", "candidate": CANDIDATE, "username": "alice"}]
    }
    assert world.send(bob, {"type": "close"}) == {alice: [{"type": "close", "username": "bob"}]}
    assert world.router.active_call_count == 0


def test_other_username_null_means_the_partner() -> None:
    world = World()
    alice, bob = world.login("alice"), world.login("bob")
    world.send(alice, offer("bob"))
    inbox = world.send(bob, answer(None, otherUsername=None))
    assert inbox == {alice: [{"type": "answer", "answer": ANSWER, "username": "bob"}]}


def test_either_side_renegotiates_once_active() -> None:
    world = World()
    alice, bob = world.login("alice"), world.login("bob")
    in_call(world, alice, bob)
    assert world.send(bob, offer("alice")) == {
        alice: [{"type": "offer", "offer": OFFER, "username": "bob"}]
    }
    assert world.send(alice, answer("bob")) == {
        bob: [{"type": "answer", "answer": ANSWER, "username": "alice"}]
    }
    assert world.send(alice, offer("bob")) == {
        bob: [{"type": "offer", "offer": OFFER, "username": "alice"}]
    }
    assert world.send(bob, answer("alice"))[alice][0]["type"] == "answer"
    assert world.router.call_state_of("alice") is CallState.ACTIVE


def test_the_caller_may_offer_again_while_ringing() -> None:
    world = World()
    alice, bob = world.login("alice"), world.login("bob")
    world.send(alice, offer("bob"))
    assert world.send(alice, offer("bob")) == {
        bob: [{"type": "offer", "offer": OFFER, "username": "alice"}]
    }
    assert world.router.call_state_of("bob") is CallState.RINGING


def test_busy_from_the_first_offer_until_close() -> None:
    world = World()
    alice, bob, carol = world.login("alice"), world.login("bob"), world.login("carol")
    world.send(alice, offer("bob"))
    for target in ("alice", "bob"):
        reply = only_error(world.send(carol, offer(target)), carol, "busy")
        assert reply["otherUsername"] == target
        assert reply["request"] == "offer"
    world.send(bob, answer("alice"))
    for target in ("alice", "bob"):
        only_error(world.send(carol, offer(target)), carol, "busy")
    world.send(bob, close("alice"))
    # Free again: carol can call bob now.
    assert world.send(carol, offer("bob")) == {
        bob: [{"type": "offer", "offer": OFFER, "username": "carol"}]
    }


def test_two_calls_at_once_are_independent() -> None:
    world = World()
    a, b, c, d = (world.login(n) for n in ("a", "b", "c", "d"))
    in_call(world, a, b)
    in_call(world, c, d)
    assert world.router.active_call_count == 2
    assert world.send(a, candidate("b")) == {
        b: [{"type": "candidate", "candidate": CANDIDATE, "username": "a"}]
    }
    assert world.send(d, close("c")) == {c: [{"type": "close", "username": "d"}]}
    assert world.router.partner_of("a") == "b"


# ---- disconnect ----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["caller", "callee"])
@pytest.mark.parametrize("answered", [False, True])
def test_disconnect_removes_the_user_and_closes_the_partner(who: str, answered: bool) -> None:
    world = World()
    alice, bob, carol = world.login("alice"), world.login("bob"), world.login("carol")
    world.send(alice, offer("bob"))
    if answered:
        world.send(bob, answer("alice"))
    leaving, staying = (alice, bob) if who == "caller" else (bob, alice)
    assert world.disconnect(leaving) == {
        staying: [{"type": "close", "username": leaving.name, "reason": "disconnected"}]
    }
    assert leaving.name not in world.router.online_users()
    assert world.router.partner_of(staying.name) is None
    assert world.router.active_call_count == 0
    # The one left behind can take another call at once, and the name is free again.
    assert world.send(carol, offer(staying.name))[staying][0]["username"] == "carol"
    world.login(leaving.name)


def test_disconnect_of_an_idle_or_anonymous_connection_tells_nobody() -> None:
    world = World()
    world.login("alice")
    bob = world.login("bob")
    anon = world.connect("anon")
    assert world.disconnect(anon) == {}
    assert world.disconnect(bob) == {}
    assert world.disconnect(bob) == {}  # twice is harmless
    assert world.router.online_users() == ["alice"]
    assert world.router.connection_count == 1


def test_close_to_an_offline_user_does_not_crash() -> None:
    """The tutorial's server crashes here (users[otherUsername] is undefined)."""
    world = World()
    alice, bob = world.login("alice"), world.login("bob")
    reply = only_error(world.send(alice, close("ghost")), alice, "unknown-user")
    assert reply["otherUsername"] == "ghost"
    # The partner left: we already got close, so a late close is just unknown-user.
    in_call(world, alice, bob)
    world.disconnect(bob)
    only_error(world.send(alice, close("bob")), alice, "unknown-user")
    only_error(world.send(alice, {"type": "close"}), alice, "invalid-field")
    world.login("bob")
    assert world.send(alice, offer("bob"))


def test_close_to_an_offline_user_leaves_the_current_call_alone() -> None:
    world = World()
    alice, bob = world.login("alice"), world.login("bob")
    in_call(world, alice, bob)
    only_error(world.send(alice, close("ghost")), alice, "unknown-user")
    assert world.router.partner_of("alice") == "bob"
    assert world.send(alice, candidate("bob"))[bob][0]["username"] == "alice"


# ---- calls from before a server restart -------------------------------------------------


def test_a_call_from_before_a_restart_can_be_hung_up_and_called_again() -> None:
    """A restarted server knows nobody's calls: the two peers of a call that went on
    through the restart log in again and look idle. A hang-up still reaches the partner,
    and afterwards they can call each other as usual."""
    world = World()  # the new server process
    alice, bob = world.login("alice"), world.login("bob")
    before = world.snapshot()
    assert world.send(alice, close("bob", reason="hung up")) == {
        bob: [{"type": "close", "username": "alice", "reason": "hung up"}]
    }
    assert world.snapshot() == before  # no call appeared or ended
    in_call(world, alice, bob)
    assert world.send(bob, close("alice")) == {alice: [{"type": "close", "username": "bob"}]}
    assert world.router.active_call_count == 0


def test_a_re_offer_after_a_restart_starts_a_call_the_router_knows() -> None:
    """The caller's fresh offer (a media reconnection) after a restart is a new call here,
    so busy, close and disconnect work for it again."""
    world = World()
    alice, bob, carol = world.login("alice"), world.login("bob"), world.login("carol")
    in_call(world, alice, bob)
    only_error(world.send(carol, offer("bob")), carol, "busy")
    assert world.disconnect(alice) == {
        bob: [{"type": "close", "username": "alice", "reason": "disconnected"}]
    }


def test_a_close_outside_a_call_never_reaches_someone_in_another_call() -> None:
    """The tutorial client ends whatever call it is in on any close, so a close that
    belongs to no known call must not be relayed to a user in a call."""
    world = World()
    alice, bob, carol = world.login("alice"), world.login("bob"), world.login("carol")
    in_call(world, alice, bob)
    for target in ("alice", "bob"):
        only_error(world.send(carol, close(target)), carol, "not-in-call")
    assert world.router.partner_of("alice") == "bob"


def test_a_close_to_an_idle_user_leaves_the_senders_own_call_alone() -> None:
    world = World()
    alice, bob, carol = world.login("alice"), world.login("bob"), world.login("carol")
    in_call(world, alice, bob)
    assert world.send(alice, close("carol")) == {carol: [{"type": "close", "username": "alice"}]}
    assert world.router.partner_of("alice") == "bob"
    assert world.router.partner_of("carol") is None
    assert world.send(alice, candidate("bob"))[bob][0]["username"] == "alice"


def test_partners_may_re_offer_within_their_call_whoever_called() -> None:
    """A media-level reconnection: a fresh offer from either partner of an active call is
    relayed and the call stays active (the caller sends it; a page may be either)."""
    world = World()
    alice, bob = world.login("alice"), world.login("bob")
    in_call(world, alice, bob)
    for sender, partner in ((alice, bob), (bob, alice)):
        assert world.send(sender, offer(partner.name)) == {
            partner: [{"type": "offer", "offer": OFFER, "username": sender.name}]
        }
        assert world.send(partner, answer(sender.name))[sender][0]["type"] == "answer"
        assert world.router.call_state_of("alice") is CallState.ACTIVE
        assert world.router.partner_of("bob") == "alice"


# ---- list ----------------------------------------------------------------------------


def test_list_shows_logged_in_users_only_sorted() -> None:
    world = World()
    world.connect("anon")
    carol, alice = world.login("carol"), world.login("alice")
    world.login("bob")
    assert world.send(carol, {"type": "list"}) == {
        carol: [{"type": "users", "users": ["alice", "bob", "carol"]}]
    }
    world.disconnect(alice)
    assert world.send(carol, {"type": "list"})[carol][0]["users"] == ["bob", "carol"]


def test_list_is_capped() -> None:
    world = World()
    for i in range(MAX_LISTED_USERS + 5):
        world.router.connect(Conn(f"u{i}"))
        world.router.handle_frame(Conn(f"u{i}"), json.dumps({"type": "login", "username": f"u{i}"}))
    me = Conn("u0")
    [reply] = world.send(me, {"type": "list"})[me]
    assert len(reply["users"]) == MAX_LISTED_USERS


# ---- every error reason -------------------------------------------------------------


@pytest.fixture
def world() -> World:
    """alice<->bob active, dave->erin ringing, carol idle, anon not logged in."""
    w = World()
    alice, bob = w.login("alice"), w.login("bob")
    w.login("carol")
    dave = w.login("dave")
    w.login("erin")
    in_call(w, alice, bob)
    w.send(dave, offer("erin"))
    w.connect("anon")
    return w


def still_works(world: World, sender: Conn) -> None:
    """Valid follow-ups after an error: the state the error left is usable."""
    alice, bob, carol, dave, erin = (Conn(n) for n in ("alice", "bob", "carol", "dave", "erin"))
    assert world.send(alice, candidate("bob")) == {
        bob: [{"type": "candidate", "candidate": CANDIDATE, "username": "alice"}]
    }
    assert world.send(erin, answer("dave")) == {
        dave: [{"type": "answer", "answer": ANSWER, "username": "erin"}]
    }
    assert world.send(carol, {"type": "list"})[carol][0]["users"] == [
        "alice",
        "bob",
        "carol",
        "dave",
        "erin",
    ]
    if sender == Conn("anon"):
        assert world.send(sender, {"type": "login", "username": "frank"}) == {
            sender: [{"type": "login", "success": True}]
        }
    else:
        assert world.send(sender, {"type": "list"})[sender][0]["type"] == "users"


_big = "x" * (MAX_MESSAGE_BYTES + 1)
ERROR_CASES: list[tuple[str, str, Any, str, dict[str, Any]]] = [
    # (id, sender, frame or message, reason, fields the error must carry)
    ("not-json", "alice", "{not json", "invalid-json", {}),
    ("truncated-json", "alice", '{"type":"offer"', "invalid-json", {}),
    ("nan", "alice", '{"type":"candidate","candidate":{"sdpMLineIndex":NaN}}', "invalid-json", {}),
    ("infinity", "alice", '{"type":"list","x":Infinity}', "invalid-json", {}),
    # Overflows to infinity, which would go out as the non-JSON Infinity.
    ("overflow", "alice", '{"type":"candidate","candidate":{"x":1e400}}', "invalid-json", {}),
    ("deep-nesting", "alice", "[" * 10_000 + "]" * 10_000, "invalid-json", {}),
    ("empty-frame", "alice", "", "invalid-json", {}),
    ("array", "alice", "[1, 2]", "not-an-object", {}),
    ("string", "alice", '"login"', "not-an-object", {}),
    ("null", "anon", "null", "not-an-object", {}),
    ("number", "alice", "42", "not-an-object", {}),
    ("binary", "alice", b'{"type":"list"}', "binary-frame", {}),
    ("binary-anon", "anon", b"\x00\x01", "binary-frame", {}),
    ("no-type", "alice", {"username": "x"}, "unknown-type", {}),
    ("type-unknown", "alice", {"type": "dance"}, "unknown-type", {}),
    ("type-number", "alice", {"type": 5}, "unknown-type", {}),
    ("type-server-only", "alice", {"type": "users"}, "unknown-type", {}),
    ("type-error", "alice", {"type": "error"}, "unknown-type", {}),
    ("too-large", "alice", '{"type":"list","pad":"' + _big + '"}', "too-large", {}),
    ("too-large-anon", "anon", _big, "too-large", {}),
    # invalid-field, one per field
    ("login-no-username", "anon", {"type": "login"}, "invalid-field", {"field": "username"}),
    (
        "login-username-number",
        "anon",
        {"type": "login", "username": 5},
        "invalid-field",
        {"field": "username", "request": "login"},
    ),
    (
        "login-token-number",
        "anon",
        {"type": "login", "username": "frank", "token": 5},
        "invalid-field",
        {"field": "token"},
    ),
    (
        "login-token-long",
        "anon",
        {"type": "login", "username": "frank", "token": "t" * 1025},
        "invalid-field",
        {"field": "token"},
    ),
    (
        "offer-missing",
        "carol",
        {"type": "offer", "otherUsername": "alice"},
        "invalid-field",
        {"field": "offer", "request": "offer"},
    ),
    (
        "offer-string",
        "carol",
        {"type": "offer", "offer": "v=0", "otherUsername": "bob"},
        "invalid-field",
        {"field": "offer"},
    ),
    (
        "offer-wrong-type",
        "carol",
        {"type": "offer", "offer": ANSWER, "otherUsername": "bob"},
        "invalid-field",
        {"field": "offer"},
    ),
    (
        "offer-no-sdp",
        "carol",
        {"type": "offer", "offer": {"type": "offer"}, "otherUsername": "bob"},
        "invalid-field",
        {"field": "offer"},
    ),
    (
        "offer-sdp-number",
        "carol",
        {"type": "offer", "offer": {"type": "offer", "sdp": 1}, "otherUsername": "bob"},
        "invalid-field",
        {"field": "offer"},
    ),
    ("offer-no-target", "carol", offer(None), "invalid-field", {"field": "otherUsername"}),
    (
        "offer-target-number",
        "carol",
        offer(None, otherUsername=7),
        "invalid-field",
        {"field": "otherUsername"},
    ),
    (
        "offer-target-list",
        "carol",
        offer(None, otherUsername=["bob"]),
        "invalid-field",
        {"field": "otherUsername"},
    ),
    (
        "answer-missing",
        "erin",
        {"type": "answer", "otherUsername": "dave"},
        "invalid-field",
        {"field": "answer", "request": "answer"},
    ),
    (
        "answer-wrong-type",
        "erin",
        {"type": "answer", "answer": OFFER, "otherUsername": "dave"},
        "invalid-field",
        {"field": "answer"},
    ),
    (
        "answer-target-number",
        "erin",
        answer(None, otherUsername=1),
        "invalid-field",
        {"field": "otherUsername"},
    ),
    (
        "candidate-missing",
        "alice",
        {"type": "candidate", "otherUsername": "bob"},
        "invalid-field",
        {"field": "candidate", "request": "candidate"},
    ),
    (
        "candidate-string",
        "alice",
        {"type": "candidate", "candidate": "a=x", "otherUsername": "bob"},
        "invalid-field",
        {"field": "candidate"},
    ),
    (
        "candidate-inner-number",
        "alice",
        candidate("bob", {"candidate": 5}),
        "invalid-field",
        {"field": "candidate"},
    ),
    (
        "close-reason-number",
        "alice",
        close("bob", reason=3),
        "invalid-field",
        {"field": "reason"},
    ),
    (
        "close-reason-long",
        "alice",
        close("bob", reason="r" * 65),
        "invalid-field",
        {"field": "reason"},
    ),
    # no otherUsername and no call to default to
    ("answer-no-target-idle", "carol", answer(None), "invalid-field", {"field": "otherUsername"}),
    (
        "candidate-no-target-idle",
        "carol",
        candidate(None),
        "invalid-field",
        {"field": "otherUsername"},
    ),
    ("close-no-target-idle", "carol", close(None), "invalid-field", {"field": "otherUsername"}),
    # session state
    ("list-before-login", "anon", {"type": "list"}, "not-logged-in", {"request": "list"}),
    ("offer-before-login", "anon", offer("carol"), "not-logged-in", {"request": "offer"}),
    ("answer-before-login", "anon", answer("carol"), "not-logged-in", {}),
    ("candidate-before-login", "anon", candidate("carol"), "not-logged-in", {}),
    ("close-before-login", "anon", close("alice"), "not-logged-in", {}),
    (
        "second-login-same-name",
        "alice",
        {"type": "login", "username": "alice"},
        "already-logged-in",
        {"request": "login"},
    ),
    (
        "second-login-new-name",
        "carol",
        {"type": "login", "username": "zed"},
        "already-logged-in",
        {},
    ),
    # usernames
    (
        "login-space",
        "anon",
        {"type": "login", "username": "bad name"},
        "invalid-username",
        {"field": "username"},
    ),
    (
        "login-empty",
        "anon",
        {"type": "login", "username": ""},
        "invalid-username",
        {"field": "username"},
    ),
    (
        "login-33",
        "anon",
        {"type": "login", "username": "x" * 33},
        "invalid-username",
        {"field": "username"},
    ),
    (
        "login-unicode",
        "anon",
        {"type": "login", "username": "zoë"},
        "invalid-username",
        {"field": "username"},
    ),
    (
        "login-slash",
        "anon",
        {"type": "login", "username": "../admin"},
        "invalid-username",
        {"field": "username"},
    ),
    (
        "target-invalid",
        "carol",
        offer("no such!"),
        "invalid-username",
        {"field": "otherUsername", "request": "offer"},
    ),
    (
        "candidate-target-invalid",
        "alice",
        candidate("<bob>"),
        "invalid-username",
        {"field": "otherUsername"},
    ),
    # call routing
    (
        "offer-unknown",
        "carol",
        offer("zed"),
        "unknown-user",
        {"otherUsername": "zed", "request": "offer"},
    ),
    ("candidate-unknown", "carol", candidate("zed"), "unknown-user", {"otherUsername": "zed"}),
    ("answer-unknown", "alice", answer("zed"), "unknown-user", {"otherUsername": "zed"}),
    ("close-unknown-in-call", "alice", close("zed"), "unknown-user", {"otherUsername": "zed"}),
    ("close-unknown-idle", "carol", close("zed"), "unknown-user", {"otherUsername": "zed"}),
    ("self-offer", "carol", offer("carol"), "self-call", {"otherUsername": "carol"}),
    ("self-candidate", "alice", candidate("alice"), "self-call", {}),
    ("busy-active-caller", "carol", offer("alice"), "busy", {"otherUsername": "alice"}),
    ("busy-active-callee", "carol", offer("bob"), "busy", {"otherUsername": "bob"}),
    ("busy-ringing-caller", "carol", offer("dave"), "busy", {"otherUsername": "dave"}),
    ("busy-ringing-callee", "carol", offer("erin"), "busy", {"otherUsername": "erin"}),
    ("in-another-call", "alice", offer("carol"), "in-another-call", {"otherUsername": "bob"}),
    ("in-another-call-busy", "alice", offer("dave"), "in-another-call", {}),
    ("ringing-offers-other", "dave", offer("carol"), "in-another-call", {"otherUsername": "erin"}),
    ("not-in-call-answer", "carol", answer("alice"), "not-in-call", {"otherUsername": "alice"}),
    ("not-in-call-candidate", "carol", candidate("bob"), "not-in-call", {}),
    ("not-in-call-close", "carol", close("alice"), "not-in-call", {}),
    ("close-to-someone-ringing", "carol", close("erin"), "not-in-call", {}),
    ("not-my-partner", "alice", candidate("erin"), "not-in-call", {"otherUsername": "erin"}),
    ("close-not-my-partner", "alice", close("dave"), "not-in-call", {}),
    ("caller-answers-ringing", "dave", answer("erin"), "invalid-state", {"request": "answer"}),
    ("callee-offers-ringing", "erin", offer("dave"), "invalid-state", {"request": "offer"}),
]


@pytest.mark.parametrize(
    ("sender_name", "frame", "reason", "fields"),
    [pytest.param(*case[1:], id=case[0]) for case in ERROR_CASES],
)
def test_each_error_goes_to_the_sender_only_and_changes_nothing(
    world: World, sender_name: str, frame: Any, reason: str, fields: dict[str, Any]
) -> None:
    sender = Conn(sender_name)
    before = world.snapshot()
    reply = only_error(world.send(sender, frame), sender, reason)
    for key, value in fields.items():
        assert reply[key] == value, reply
    assert world.snapshot() == before
    still_works(world, sender)


def test_every_documented_reason_is_exercised() -> None:
    """docs/protocol.md's error table, against the cases above (rate-limited lives in
    the server shell; username-taken and unauthorized are login replies)."""
    from tests.helpers.server_support import documented_error_reasons

    covered = {case[3] for case in ERROR_CASES} | {"rate-limited", "username-taken"}
    covered |= {"unauthorized", "server-unavailable"}  # the last with --redis only
    assert documented_error_reasons() <= covered


def test_error_replies_are_json_text_even_for_odd_input() -> None:
    """A lone surrogate escape must not turn into a frame that cannot be sent as UTF-8."""
    from signaling.protocol import encode

    world = World()
    alice, bob = world.login("alice"), world.login("bob")
    out = world.router.handle_frame(alice, '{"type":"\\ud800"}')
    encode(out[0][1]).encode("utf-8")
    in_call(world, alice, bob)
    frame = json.dumps(candidate("bob", {"candidate": "\ud800", "sdpMid": "0"}))
    [(to, relayed)] = world.router.handle_frame(alice, frame)
    assert to == bob
    wire = encode(relayed)
    wire.encode("utf-8")
    assert json.loads(wire)["candidate"]["candidate"] == "\ud800"


# ---- the call state table -----------------------------------------------------------

KINDS = ("offer", "answer", "candidate", "close")


@pytest.mark.parametrize(("state", "role", "kind"), list(itertools.product(CallState, Role, KINDS)))
def test_call_state_table(state: CallState, role: Role, kind: str) -> None:
    call = Call("alice", "bob", state)
    who = "alice" if role is Role.CALLER else "bob"
    expected = CALL_TRANSITIONS.get((state, role, kind))
    if expected is None:
        with pytest.raises(IllegalMove) as caught:
            call.apply(who, kind)
        assert caught.value.reason == "invalid-state"
        assert call.state is state
    else:
        call.apply(who, kind)
        assert call.state is expected


def test_call_state_table_rules() -> None:
    # Only the callee's answer makes a ringing call active; close always ends it;
    # an ended call accepts nothing.
    assert CALL_TRANSITIONS[(CallState.RINGING, Role.CALLEE, "answer")] is CallState.ACTIVE
    assert (CallState.RINGING, Role.CALLER, "answer") not in CALL_TRANSITIONS
    assert (CallState.RINGING, Role.CALLEE, "offer") not in CALL_TRANSITIONS
    for role in Role:
        for state in (CallState.RINGING, CallState.ACTIVE):
            assert CALL_TRANSITIONS[(state, role, "close")] is CallState.ENDED
        for kind in KINDS:
            assert (CallState.ENDED, role, kind) not in CALL_TRANSITIONS
            assert CALL_TRANSITIONS[(CallState.ACTIVE, role, kind)] in (
                CallState.ACTIVE,
                CallState.ENDED,
            )


def test_call_walkthrough() -> None:
    call = Call("alice", "bob")
    assert call.other("alice") == "bob" and call.other("bob") == "alice"
    assert call.role_of("alice") is Role.CALLER and call.role_of("bob") is Role.CALLEE
    for who, kind in [("alice", "offer"), ("bob", "candidate"), ("alice", "candidate")]:
        call.apply(who, kind)
        assert call.state is CallState.RINGING
    call.apply("bob", "answer")
    assert call.state is CallState.ACTIVE
    call.apply("bob", "offer")
    call.apply("alice", "answer")
    assert call.state is CallState.ACTIVE
    call.apply("bob", "close")
    assert call.state is CallState.ENDED
    with pytest.raises(IllegalMove):
        call.apply("alice", "candidate")


# ---- the token bucket ---------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def take(bucket: TokenBucket, n: int) -> list[bool]:
    return [bucket.allow() for _ in range(n)]


def test_bucket_allows_a_burst_then_refuses() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=10, clock=clock)
    assert take(bucket, 12) == [True] * 10 + [False] * 2


def test_bucket_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=10, clock=clock)
    take(bucket, 10)
    clock.advance(0.1)  # half a token
    assert not bucket.allow()
    clock.advance(0.1)  # one token in all
    assert take(bucket, 2) == [True, False]
    clock.advance(1.0)  # five tokens
    assert take(bucket, 6) == [True] * 5 + [False]


def test_bucket_never_holds_more_than_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=10, clock=clock)
    clock.advance(3600)
    assert take(bucket, 11) == [True] * 10 + [False]


def test_bucket_steady_rate_is_sustainable() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=50, burst=1, clock=clock)
    results = []
    for _ in range(100):
        clock.advance(0.02)
        results.append(bucket.allow())
    assert all(results)
    assert not bucket.allow()


def test_bucket_rate_zero_is_unlimited() -> None:
    bucket = TokenBucket(rate=0, burst=1, clock=FakeClock())
    assert all(take(bucket, 10_000))


@pytest.mark.parametrize(("rate", "burst"), [(-1, 10), (5, 0), (5, 0.5)])
def test_bucket_rejects_bad_parameters(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst, clock=FakeClock())
