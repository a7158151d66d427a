"""ClusterRouter: users on several processes see what they would see on one.

Sans-I/O, like test_router.py. :class:`Bus` carries envelopes between the routers
in memory the way Redis does in production (one channel per logged-in user, in
order, "nobody home" when no process holds the user), so these tests can compare,
action by action, what every user receives from two cooperating routers with what
they receive from a single :class:`Router`. The real Redis path is exercised by
test_redis_scaleout.py.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.cluster import CLAIM, ClusterRouter, Directory, RemoteUser
from signaling.protocol import JSONObject
from signaling.router import Outgoing, Router
from tests.process.test_router import ANSWER, CANDIDATE, OFFER


@dataclass(frozen=True)
class Conn:
    name: str


Inbox = dict[str, list[JSONObject]]


@dataclass
class Bus:
    """Two ClusterRouters (homes "A" and "B") and what Redis would carry between them."""

    routers: dict[str, ClusterRouter] = field(
        default_factory=lambda: {"A": ClusterRouter(), "B": ClusterRouter()}
    )
    claims: dict[str, str] = field(default_factory=dict)  # username -> home
    inbox: Inbox = field(default_factory=dict)
    _queue: deque[tuple[str, str, JSONObject]] = field(default_factory=deque)

    def connect(self, home: str, conn: Conn) -> None:
        self.routers[home].connect(conn)

    def frame(self, home: str, conn: Conn, frame: str) -> None:
        self._route(home, self.routers[home].handle_frame(conn, frame))
        self._pump()

    def disconnect(self, home: str, conn: Conn) -> None:
        router = self.routers[home]
        username = router.username_of(conn)
        self._route(home, router.disconnect(conn))
        if username is not None:
            del self.claims[username]
        self._pump()

    def crash(self, home: str) -> None:
        """The process dies: its users vanish without a word, their claims expire."""
        for username, owner in list(self.claims.items()):
            if owner == home:
                del self.claims[username]
        self.routers[home] = ClusterRouter()

    def notice_vanished(self, home: str) -> None:
        """What the refresh loop does: partners without a claim are gone."""
        router = self.routers[home]
        for partner in sorted(router.remote_partners()):
            if partner not in self.claims:
                self._route(home, router.partner_vanished(partner))
        self._pump()

    def _route(self, home: str, outgoing: list[Outgoing]) -> None:
        for destination, message in outgoing:
            assert json.loads(json.dumps(message)) == message
            if isinstance(destination, RemoteUser):
                self._queue.append((home, destination.username, message))
            elif isinstance(destination, Directory):
                self._answer(home, destination.connection, message)
            else:
                assert isinstance(destination, Conn)
                self.inbox.setdefault(destination.name, []).append(message)

    def _answer(self, home: str, conn: object, query: JSONObject) -> None:
        """The directory (Redis's presence keys) answers a query at once."""
        router = self.routers[home]
        if query["query"] == CLAIM:
            username = query["username"]
            granted = username not in self.claims
            if granted:
                self.claims[username] = home
            self._route(home, router.claimed(conn, username, granted))
        else:
            self._route(home, router.listed(conn, list(self.claims)))

    def _pump(self) -> None:
        while self._queue:
            origin, target, envelope = self._queue.popleft()
            home = self.claims.get(target)
            if home is None:
                self._route(origin, self.routers[origin].undeliverable(envelope))
            else:
                self._route(home, self.routers[home].handle_envelope(envelope))


@dataclass
class Single:
    """The reference: everybody on one Router."""

    router: Router = field(default_factory=Router)
    inbox: Inbox = field(default_factory=dict)

    def connect(self, home: str, conn: Conn) -> None:
        self.router.connect(conn)

    def frame(self, home: str, conn: Conn, frame: str) -> None:
        self._route(self.router.handle_frame(conn, frame))

    def disconnect(self, home: str, conn: Conn) -> None:
        self._route(self.router.disconnect(conn))

    def _route(self, outgoing: list[Outgoing]) -> None:
        for destination, message in outgoing:
            assert isinstance(destination, Conn)
            self.inbox.setdefault(destination.name, []).append(message)


# ---- a script of user actions, played on both ---------------------------------------

USERS = ("alice", "bob", "carol", "dave")
HOME = {"alice": "A", "bob": "B", "carol": "A", "dave": "B"}
TARGETS = (*USERS, "zed", None)  # zed never logs in; None leaves otherUsername out


def message_for(action: str, target: str | None) -> JSONObject:
    bodies: dict[str, JSONObject] = {
        "offer": {"type": "offer", "offer": OFFER},
        "answer": {"type": "answer", "answer": ANSWER},
        "candidate": {"type": "candidate", "candidate": CANDIDATE},
        "end-of-candidates": {"type": "candidate", "candidate": None},
        "close": {"type": "close"},
        "list": {"type": "list"},
    }
    body = dict(bodies[action])
    if target is not None and action != "list":
        body["otherUsername"] = target
    return body


@dataclass
class Player:
    """Plays the same actions on either world; connection names are the same on both."""

    world: Bus | Single
    conns: dict[str, Conn] = field(default_factory=dict)
    generation: int = 0

    def act(self, user: str, action: str, target: str | None) -> None:
        if action == "login" or user not in self.conns:
            self._log_in(user, HOME[user])
            return
        conn = self.conns[user]
        if action == "leave":
            self.world.disconnect(HOME[user], self.conns.pop(user))
        elif action == "impostor":
            # Someone on the other process tries the same name.
            other_home = "B" if HOME[user] == "A" else "A"
            self._log_in(user, other_home, keep=False)
        else:
            self.world.frame(HOME[user], conn, json.dumps(message_for(action, target)))

    def _log_in(self, user: str, home: str, keep: bool = True) -> None:
        self.generation += 1
        conn = Conn(f"{user}#{self.generation}")
        self.world.connect(home, conn)
        self.world.frame(home, conn, json.dumps({"type": "login", "username": user}))
        if keep and user not in self.conns:
            self.conns[user] = conn


ACTIONS = st.tuples(
    st.sampled_from(USERS),
    st.sampled_from(
        (
            "login",
            "offer",
            "offer",
            "answer",
            "answer",
            "candidate",
            "end-of-candidates",
            "close",
            "list",
            "leave",
            "impostor",
        )
    ),
    st.sampled_from(TARGETS),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTIONS, min_size=1, max_size=30))
def test_two_processes_answer_every_script_as_one_does(
    script: list[tuple[str, str, str | None]],
) -> None:
    """Busy, unknown-user, not-in-call, invalid-state, close, disconnect, duplicate
    logins, the user list: whatever users do, each receives the same messages,
    in the same order, whether they share one process or are spread over two."""
    single, cluster = Player(Single()), Player(Bus())
    for step, (user, action, target) in enumerate(script):
        single.act(user, action, target)
        cluster.act(user, action, target)
        assert cluster.world.inbox == single.world.inbox, f"after step {step}: {script[: step + 1]}"


def test_a_call_across_processes() -> None:
    bus = Bus()
    players = Player(bus)
    players.act("alice", "login", None)
    players.act("bob", "login", None)
    players.act("alice", "offer", "bob")
    players.act("bob", "answer", "alice")
    players.act("alice", "candidate", "bob")
    players.act("bob", "close", None)
    assert bus.inbox["bob#2"] == [
        {"type": "login", "success": True},
        {"type": "offer", "offer": OFFER, "username": "alice"},
        {"type": "candidate", "candidate": CANDIDATE, "username": "alice"},
    ]
    assert bus.inbox["alice#1"] == [
        {"type": "login", "success": True},
        {"type": "answer", "answer": ANSWER, "username": "bob"},
        {"type": "close", "username": "bob"},
    ]
    assert bus.routers["A"].partner_of("alice") is None
    assert bus.routers["B"].partner_of("bob") is None


def test_a_dead_process_ends_the_calls_with_its_users() -> None:
    bus = Bus()
    players = Player(bus)
    for user in ("alice", "bob", "dave"):
        players.act(user, "login", None)
    players.act("alice", "offer", "bob")
    players.act("bob", "answer", "alice")
    assert bus.routers["A"].remote_partners() == {"bob"}

    bus.crash("B")  # bob and dave's process
    bus.notice_vanished("A")
    assert bus.inbox["alice#1"][-1] == {
        "type": "close",
        "username": "bob",
        "reason": "disconnected",
    }
    assert bus.routers["A"].partner_of("alice") is None
    # bob's name is free again: he logs in on the surviving process.
    conn = Conn("bob-again")
    bus.connect("A", conn)
    bus.frame("A", conn, json.dumps({"type": "login", "username": "bob"}))
    assert bus.inbox["bob-again"] == [{"type": "login", "success": True}]


def test_a_partner_whose_process_died_is_unknown_and_the_call_ends() -> None:
    """Before the refresh loop notices, the next message finds nobody home."""
    bus = Bus()
    players = Player(bus)
    players.act("alice", "login", None)
    players.act("bob", "login", None)
    players.act("alice", "offer", "bob")
    players.act("bob", "answer", "alice")
    bus.crash("B")
    players.act("alice", "candidate", "bob")
    assert bus.inbox["alice#1"][-2:] == [
        {"type": "close", "username": "bob", "reason": "disconnected"},
        {
            "type": "error",
            "reason": "unknown-user",
            "message": "no such user is online",
            "request": "candidate",
            "otherUsername": "bob",
        },
    ]
    assert bus.routers["A"].partner_of("alice") is None


def test_crossing_closes_end_both_sides_quietly() -> None:
    """Both hang up at once (both closes in flight): no errors, no call left. Each close
    reaches a user who is idle by then and is relayed (a close outside a known call is,
    so that calls from before a server restart can be hung up); clients ignore a close
    from someone they are not in a call with."""
    bus = Bus()
    players = Player(bus)
    players.act("alice", "login", None)
    players.act("bob", "login", None)
    players.act("alice", "offer", "bob")
    players.act("bob", "answer", "alice")
    a, b = players.conns["alice"], players.conns["bob"]
    # Both frames are handled before either envelope is delivered.
    bus._route("A", bus.routers["A"].handle_frame(a, json.dumps(message_for("close", "bob"))))
    bus._route("B", bus.routers["B"].handle_frame(b, json.dumps(message_for("close", "alice"))))
    bus._pump()
    assert bus.inbox[a.name][-2:] == [
        {"type": "answer", "answer": ANSWER, "username": "bob"},
        {"type": "close", "username": "bob"},
    ]
    assert bus.inbox[b.name][-2:] == [
        {"type": "offer", "offer": OFFER, "username": "alice"},
        {"type": "close", "username": "alice"},
    ]
    assert bus.routers["A"].partner_of("alice") is None
    assert bus.routers["B"].partner_of("bob") is None


def test_active_calls_are_counted_once_per_process() -> None:
    bus = Bus()
    players = Player(bus)
    for user in USERS:
        players.act(user, "login", None)
    players.act("alice", "offer", "bob")  # A <-> B
    players.act("carol", "offer", "dave")  # A <-> B
    assert bus.routers["A"].active_call_count == 2
    assert bus.routers["B"].active_call_count == 2
    players.act("dave", "close", None)
    assert bus.routers["A"].active_call_count == 1
