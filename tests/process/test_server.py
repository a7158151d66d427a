"""The signaling server as a user meets it: a real process, real WebSockets.

Every assertion is about what a client receives (messages, close codes, HTTP replies).
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers.server_support import Client, JSONObject, metric_values
from tests.helpers.support import BIN, ROOT, Process, SignalingServer, start_signaling_server

StartServer = Callable[..., SignalingServer]

OFFER_SDP = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
)
ANSWER_SDP = OFFER_SDP.replace("4611731400430051336", "8876543210987654321")
# JSON.stringify(event.candidate) in a browser: RTCIceCandidate.toJSON().
BROWSER_CANDIDATE = {
    "candidate": "candidate:842163049 1 udp 1677729535 127.0.0.1 53705 typ srflx "
    "raddr 0.0.0.0 rport 0 generation 0 ufrag sXxs network-cost 999",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "sXxs",
}


# ---- helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_server() -> Iterator[SignalingServer]:
    """One default server for the tests that only need distinct usernames."""
    server = start_signaling_server()
    yield server
    server.process.stop()


@asynccontextmanager
async def connected(url: str, count: int = 1, **ws_options: Any) -> AsyncIterator[list[Client]]:
    """``count`` open WebSocket connections to ``url`` (not logged in)."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        clients = []
        for _ in range(count):
            ws = await stack.enter_async_context(session.ws_connect(url, **ws_options))
            clients.append(Client(ws))
        yield clients


@asynccontextmanager
async def logged_in(server: SignalingServer, *names: str) -> AsyncIterator[list[Client]]:
    async with connected(server.ws_url, len(names)) as clients:
        for client, name in zip(clients, names, strict=True):
            assert await client.login(name) == {"type": "login", "success": True}
        yield clients


async def start_call(caller: Client, callee: Client) -> None:
    await caller.send(offer_to(callee.name))
    assert (await callee.recv())["type"] == "offer"
    await callee.send(answer_to(caller.name))
    assert (await caller.recv())["type"] == "answer"


def offer_to(name: str) -> JSONObject:
    return {"type": "offer", "offer": {"type": "offer", "sdp": OFFER_SDP}, "otherUsername": name}


def answer_to(name: str) -> JSONObject:
    return {
        "type": "answer",
        "answer": {"type": "answer", "sdp": ANSWER_SDP},
        "otherUsername": name,
    }


def candidate_to(name: str) -> JSONObject:
    return {"type": "candidate", "candidate": BROWSER_CANDIDATE, "otherUsername": name}


async def assert_call_still_works(a: Client, b: Client) -> None:
    """Two users in a call notice nothing and can still reach each other."""
    await a.expect_nothing()
    await b.expect_nothing()
    await a.send(candidate_to(b.name))
    assert await b.recv() == {
        "type": "candidate",
        "candidate": BROWSER_CANDIDATE,
        "username": a.name,
    }


async def get_json(server: SignalingServer, path: str, **options: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        async with session.get(server.http_url + path, **options) as response:
            assert response.status == 200
            return await response.json()


async def get_text(server: SignalingServer, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(server.http_url + path) as response:
            return response.status, response.content_type, await response.text()


async def wait_until_login_works(
    server: SignalingServer, name: str, deadline: float, **extra: Any
) -> float:
    """Retry logging in as ``name`` until it works; the monotonic time it did."""
    async with connected(server.ws_url) as [client]:
        while True:
            reply = await client.login(name, **extra)
            if reply.get("success") is True:
                return time.monotonic()
            assert reply == {
                "type": "login",
                "success": False,
                "reason": "username-taken",
                "message": "that username is taken",
            }
            assert time.monotonic() < deadline, f"{name} still taken"
            await asyncio.sleep(0.05)


# ---- the tutorial's client, verbatim -----------------------------------------------------


async def test_tutorial_client_messages_over_a_socket_on_root(
    shared_server: SignalingServer,
) -> None:
    """What the tutorial's browser client sends (ws://host:port with no path), and
    exactly what each side receives."""
    root = shared_server.ws_url.removesuffix("/ws")
    async with connected(root, 2) as [alice, bob]:
        # JSON.stringify keeps the key order the client wrote.
        await alice.send_raw('{"type":"login","username":"tut-alice"}')
        assert await alice.recv() == {"type": "login", "success": True}
        await bob.send_raw('{"type":"login","username":"tut-bob"}')
        assert await bob.recv() == {"type": "login", "success": True}
        alice.name, bob.name = "tut-alice", "tut-bob"

        offer = {"type": "offer", "sdp": OFFER_SDP}
        await alice.send_raw(
            json.dumps({"type": "offer", "offer": offer, "otherUsername": "tut-bob"})
        )
        assert await bob.recv() == {"type": "offer", "offer": offer, "username": "tut-alice"}

        answer = {"type": "answer", "sdp": ANSWER_SDP}
        await bob.send_raw(
            json.dumps({"type": "answer", "answer": answer, "otherUsername": "tut-alice"})
        )
        assert await alice.recv() == {"type": "answer", "answer": answer, "username": "tut-bob"}

        for sender, receiver in ((alice, bob), (bob, alice)):
            await sender.send_raw(
                json.dumps(
                    {
                        "type": "candidate",
                        "candidate": BROWSER_CANDIDATE,
                        "otherUsername": receiver.name,
                    }
                )
            )
            assert await receiver.recv() == {
                "type": "candidate",
                "candidate": BROWSER_CANDIDATE,
                "username": sender.name,
            }

        await bob.send_raw(json.dumps({"type": "close", "otherUsername": "tut-alice"}))
        assert await alice.recv() == {"type": "close", "username": "tut-bob"}
        # Nothing else: no acknowledgements, no errors, no echoes.
        await alice.expect_nothing()
        await bob.expect_nothing()
        assert [m["type"] for m in alice.received] == ["login", "answer", "candidate", "close"]
        assert [m["type"] for m in bob.received] == ["login", "offer", "candidate"]


async def test_tutorial_earliest_client_without_other_username(
    shared_server: SignalingServer,
) -> None:
    async with logged_in(shared_server, "early-a", "early-b") as [caller, callee]:
        await caller.send(offer_to("early-b"))
        assert (await callee.recv())["username"] == "early-a"
        # The earliest client sends answer/candidate/close with no otherUsername.
        await callee.send({"type": "answer", "answer": {"type": "answer", "sdp": ANSWER_SDP}})
        assert await caller.recv() == {
            "type": "answer",
            "answer": {"type": "answer", "sdp": ANSWER_SDP},
            "username": "early-b",
        }
        await callee.send({"type": "candidate", "candidate": BROWSER_CANDIDATE})
        assert await caller.recv() == {
            "type": "candidate",
            "candidate": BROWSER_CANDIDATE,
            "username": "early-b",
        }
        await caller.send({"type": "close"})
        assert await callee.recv() == {"type": "close", "username": "early-a"}
        await caller.expect_nothing()


async def test_forged_username_is_replaced_by_the_login(shared_server: SignalingServer) -> None:
    async with logged_in(shared_server, "forge-a", "forge-b", "forge-c") as [a, b, _]:
        await a.send({**offer_to("forge-b"), "username": "forge-c"})
        assert (await b.recv())["username"] == "forge-a"


async def test_odd_but_valid_json_is_relayed_and_answered(shared_server: SignalingServer) -> None:
    """A lone-surrogate escape is valid JSON; it must not kill the connection on the way out."""
    async with logged_in(shared_server, "odd-a", "odd-b") as [a, b]:
        await start_call(a, b)
        await a.send_raw(
            '{"type":"candidate","candidate":{"candidate":"\\ud800","sdpMid":"0"},'
            '"otherUsername":"odd-b"}'
        )
        assert await b.recv() == {
            "type": "candidate",
            "candidate": {"candidate": "\ud800", "sdpMid": "0"},
            "username": "odd-a",
        }
        assert (await a.request({"type": "\ud800"}))["reason"] == "unknown-type"
        await assert_call_still_works(a, b)


async def test_a_large_real_sdp_is_relayed_intact(shared_server: SignalingServer) -> None:
    big_sdp = OFFER_SDP + "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n" * 1200  # ~54 KiB
    async with logged_in(shared_server, "big-a", "big-b") as [a, b]:
        message = {
            "type": "offer",
            "offer": {"type": "offer", "sdp": big_sdp},
            "otherUsername": "big-b",
        }
        assert 50_000 < len(json.dumps(message)) < 64 * 1024
        await a.send(message)
        assert (await b.recv())["offer"]["sdp"] == big_sdp


# ---- HTTP endpoints ----------------------------------------------------------------------


async def test_root_serves_the_page_and_ws_needs_an_upgrade(
    shared_server: SignalingServer,
) -> None:
    status, content_type, body = await get_text(shared_server, "/")
    assert status == 200
    assert content_type == "text/html"
    assert "<html" in body.lower()
    status, _, _ = await get_text(shared_server, "/ws")
    assert status in (400, 426)  # a plain GET is not a WebSocket upgrade


async def test_healthz_counts_connections_and_users(start_server: StartServer) -> None:
    server = start_server()
    assert await get_json(server, "/healthz") == {"status": "ok", "connections": 0, "users": 0}
    async with logged_in(server, "h1", "h2"), connected(server.ws_url):
        assert await get_json(server, "/healthz") == {
            "status": "ok",
            "connections": 3,
            "users": 2,
        }


async def test_metrics_after_some_traffic(start_server: StartServer) -> None:
    server = start_server()
    async with logged_in(server, "m-alice", "m-bob", "m-carol") as [alice, bob, carol]:
        await start_call(alice, bob)
        for _ in range(2):
            await alice.send(candidate_to("m-bob"))
            await bob.recv()
        await bob.send(candidate_to("m-alice"))
        await alice.recv()

        status, content_type, mid_call = await get_text(server, "/metrics")
        assert status == 200 and content_type == "text/plain"
        assert metric_values(mid_call, "signaling_active_calls") == {"": 1.0}

        await alice.send({"type": "close", "otherUsername": "m-bob"})
        await bob.recv()
        assert (await carol.request(offer_to("nobody")))["reason"] == "unknown-user"
        for _ in range(2):
            await carol.send_raw("not json")
            assert (await carol.recv())["reason"] == "invalid-json"
        async with connected(server.ws_url) as [impostor]:
            assert (await impostor.login("m-alice"))["reason"] == "username-taken"
            _, _, text = await get_text(server, "/metrics")

    assert metric_values(text, "signaling_connections") == {"": 4.0}
    assert metric_values(text, "signaling_users") == {"": 3.0}
    assert metric_values(text, "signaling_active_calls") == {"": 0.0}
    assert metric_values(text, "signaling_messages_relayed_total") == {
        'type="offer"': 1.0,
        'type="answer"': 1.0,
        'type="candidate"': 3.0,
        'type="close"': 1.0,
    }
    assert metric_values(text, "signaling_errors_total") == {
        'reason="unknown-user"': 1.0,
        'reason="invalid-json"': 2.0,
        'reason="username-taken"': 1.0,
    }


async def test_token_and_config(start_server: StartServer) -> None:
    server = start_server(
        "--token",
        "s3cret",
        "--ice-server",
        "stun:127.0.0.1:3478",
        "--ice-server",
        "turn:127.0.0.1:3478?transport=udp",
        "--turn-secret",
        "shared-with-coturn",
    )
    # TURN needs credentials: those come with the login reply (tests/browser/test_turn.py).
    assert await get_json(server, "/config") == {
        "iceServers": [{"urls": "stun:127.0.0.1:3478"}],
        "tokenRequired": True,
    }
    unauthorized = {
        "type": "login",
        "success": False,
        "reason": "unauthorized",
        "message": "wrong or missing token",
    }
    async with connected(server.ws_url, 2) as [alice, bob]:
        assert await alice.login("alice", token="wrong") == unauthorized
        assert await alice.login("alice") == unauthorized
        assert await alice.request({"type": "list"}) == {
            "type": "error",
            "reason": "not-logged-in",
            "message": "log in first",
            "request": "list",
        }
        assert (await alice.login("alice", token="s3cret"))["success"] is True
        assert (await bob.login("bob", token="s3cret"))["success"] is True
        assert await bob.users() == ["alice", "bob"]


async def test_config_without_ice_servers(shared_server: SignalingServer) -> None:
    assert await get_json(shared_server, "/config") == {"iceServers": [], "tokenRequired": False}


# ---- bad input ----------------------------------------------------------------------------

# (id, logged in?, what the sender sends given (own name, busy user), the reply's fields)
BadInput = tuple[str, bool, Callable[[str, str], str | bytes], dict[str, Any]]
BIG = "x" * (100 * 1024)
BAD_INPUTS: list[BadInput] = [
    ("invalid-json", True, lambda me, busy: "{this is not json", {"reason": "invalid-json"}),
    ("json-array", True, lambda me, busy: "[1, 2, 3]", {"reason": "not-an-object"}),
    ("json-string", True, lambda me, busy: '"hello"', {"reason": "not-an-object"}),
    ("binary-frame", True, lambda me, busy: b"\x00\x01\x02", {"reason": "binary-frame"}),
    ("unknown-type", True, lambda me, busy: '{"type":"dance"}', {"reason": "unknown-type"}),
    ("missing-type", True, lambda me, busy: '{"username":"x"}', {"reason": "unknown-type"}),
    (
        "offer-missing-offer",
        True,
        lambda me, busy: json.dumps({"type": "offer", "otherUsername": busy}),
        {"reason": "invalid-field", "field": "offer", "request": "offer"},
    ),
    (
        "offer-sdp-not-string",
        True,
        lambda me, busy: json.dumps(
            {"type": "offer", "offer": {"type": "offer", "sdp": 5}, "otherUsername": busy}
        ),
        {"reason": "invalid-field", "field": "offer"},
    ),
    (
        "other-username-number",
        True,
        lambda me, busy: json.dumps({**offer_to(busy), "otherUsername": 42}),
        {"reason": "invalid-field", "field": "otherUsername"},
    ),
    (
        "candidate-not-object",
        True,
        lambda me, busy: json.dumps(
            {"type": "candidate", "candidate": "a=candidate", "otherUsername": busy}
        ),
        {"reason": "invalid-field", "field": "candidate"},
    ),
    (
        "nan-in-candidate",
        True,
        lambda me, busy: (
            f'{{"type":"candidate","candidate":{{"sdpMLineIndex":NaN}},"otherUsername":"{busy}"}}'
        ),
        {"reason": "invalid-json"},
    ),
    (
        "list-before-login",
        False,
        lambda me, busy: '{"type":"list"}',
        {"reason": "not-logged-in", "request": "list"},
    ),
    (
        "offer-before-login",
        False,
        lambda me, busy: json.dumps(offer_to(busy)),
        {"reason": "not-logged-in", "request": "offer"},
    ),
    (
        "second-login",
        True,
        lambda me, busy: json.dumps({"type": "login", "username": me}),
        {"reason": "already-logged-in", "request": "login"},
    ),
    (
        "taken-username",
        False,
        lambda me, busy: json.dumps({"type": "login", "username": busy}),
        {"type": "login", "success": False, "reason": "username-taken"},
    ),
    (
        "invalid-username",
        False,
        lambda me, busy: '{"type":"login","username":"no spaces allowed"}',
        {"reason": "invalid-username", "field": "username"},
    ),
    (
        "invalid-target",
        True,
        lambda me, busy: json.dumps(offer_to("bad/name")),
        {"reason": "invalid-username", "field": "otherUsername"},
    ),
    (
        "unknown-target",
        True,
        lambda me, busy: json.dumps(offer_to("nobody-home")),
        {"reason": "unknown-user", "otherUsername": "nobody-home", "request": "offer"},
    ),
    (
        "busy-target",
        True,
        lambda me, busy: json.dumps(offer_to(busy)),
        {"reason": "busy", "otherUsername": "{busy}", "request": "offer"},
    ),
    (
        "self-call",
        True,
        lambda me, busy: json.dumps(offer_to(me)),
        {"reason": "self-call", "otherUsername": "{me}"},
    ),
    (
        "not-in-call",
        True,
        lambda me, busy: json.dumps(candidate_to(busy)),
        {"reason": "not-in-call", "otherUsername": "{busy}", "request": "candidate"},
    ),
    (
        "close-unknown-user",
        True,
        lambda me, busy: json.dumps({"type": "close", "otherUsername": "ghost"}),
        {"reason": "unknown-user", "otherUsername": "ghost", "request": "close"},
    ),
    (
        "frame-100KiB",
        True,
        lambda me, busy: json.dumps({"type": "list", "padding": BIG}),
        {"reason": "too-large"},
    ),
]


@pytest.mark.parametrize(
    ("logged", "make", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
async def test_bad_input_gets_an_error_and_nobody_else_notices(
    shared_server: SignalingServer,
    request: pytest.FixtureRequest,
    logged: bool,
    make: Callable[[str, str], str | bytes],
    expected: dict[str, Any],
) -> None:
    case = request.node.callspec.id
    me, busy, partner = f"{case}-me"[:32], f"{case}-x"[:32], f"{case}-y"[:32]
    async with logged_in(shared_server, busy, partner) as [x, y]:
        await start_call(x, y)
        async with connected(shared_server.ws_url) as [sender]:
            sender.name = me
            if logged:
                assert (await sender.login(me))["success"] is True
            await sender.send_raw(make(me, busy))
            reply = await sender.recv()
            wanted = {"type": "error", **expected}
            for key, value in wanted.items():
                if isinstance(value, str):
                    value = value.format(me=me, busy=busy)
                assert reply.get(key) == value, reply
            assert isinstance(reply.get("message"), str) and reply["message"]
            # Exactly one reply, to the sender only; the socket is open and still usable.
            await asyncio.gather(sender.expect_nothing(), x.expect_nothing(), y.expect_nothing())
            if not logged:
                assert (await sender.login(me))["success"] is True
            assert me in await sender.users()
            for a, b in ((x, y), (y, x)):
                await a.send(candidate_to(b.name))
                assert await b.recv() == {
                    "type": "candidate",
                    "candidate": BROWSER_CANDIDATE,
                    "username": a.name,
                }


async def test_2mib_frame_closes_only_that_socket_with_1009(
    shared_server: SignalingServer,
) -> None:
    async with logged_in(shared_server, "huge-a", "huge-b", "huge-c") as [a, b, c]:
        await start_call(a, b)
        await a.send_raw(json.dumps({"type": "list", "padding": "x" * (2 * 1024 * 1024)}))
        assert await a.close_frame() == 1009  # MESSAGE_TOO_BIG
        # The partner learns the call is over; everybody else carries on.
        assert await b.recv() == {"type": "close", "username": "huge-a", "reason": "disconnected"}
        await c.expect_nothing()
        assert sorted(await c.users()).count("huge-a") == 0
        await c.send(offer_to("huge-b"))
        assert (await b.recv())["username"] == "huge-c"
    # And a new user can take the name.
    async with logged_in(shared_server, "huge-a"):
        pass


async def test_rate_limit(start_server: StartServer) -> None:
    server = start_server("--rate-limit", "5", "--rate-burst", "10")
    async with logged_in(server, "fast", "calm") as [fast, calm]:
        # login took one token; a burst of 20 more cannot all be served. (Not `list`,
        # which has a smaller bucket of its own: tests/process/test_security.py.)
        stray = {"type": "candidate", "candidate": None, "otherUsername": "calm"}
        for _ in range(20):
            await fast.send(stray)
        replies = [await fast.recv() for _ in range(20)]
        served = [r for r in replies if r.get("reason") == "not-in-call"]
        limited = [r for r in replies if r.get("reason") == "rate-limited"]
        assert len(served) + len(limited) == 20
        assert 9 <= len(served) <= 12
        assert [r["reason"] for r in replies[:9]] == ["not-in-call"] * 9
        assert limited[0] == {
            "type": "error",
            "reason": "rate-limited",
            "message": "too many messages per second; this one was dropped",
        }
        assert all(r["reason"] == "rate-limited" for r in limited)
        await fast.expect_nothing()
        # Someone else's bucket is their own.
        assert await calm.users() == ["calm", "fast"]
        # After a pause the tokens are back: 1.2 s at 5/s is 6 messages.
        await asyncio.sleep(1.2)
        for _ in range(5):
            assert await fast.users() == ["calm", "fast"]


async def test_disconnect_sends_close_to_the_partner(shared_server: SignalingServer) -> None:
    async with logged_in(shared_server, "dc-watch") as [watcher]:
        async with logged_in(shared_server, "dc-a", "dc-b") as [a, b]:
            await start_call(a, b)
            await a.ws.close()
            assert await b.recv() == {"type": "close", "username": "dc-a", "reason": "disconnected"}
            assert "dc-a" not in await b.users()
            # b is free: the watcher can call b right away.
            await watcher.send(offer_to("dc-b"))
            assert (await b.recv())["username"] == "dc-watch"
        # Leaving while the watcher's call rings is a disconnect too.
        assert await watcher.recv() == {
            "type": "close",
            "username": "dc-b",
            "reason": "disconnected",
        }
        await watcher.expect_nothing()


async def test_abrupt_tcp_drop_frees_the_name(shared_server: SignalingServer) -> None:
    async with logged_in(shared_server, "abrupt-b") as [b]:
        async with logged_in(shared_server, "abrupt-a") as [a]:
            await start_call(a, b)
            transport = a.ws._response.connection.transport  # type: ignore[union-attr]
            assert transport is not None
            transport.abort()  # no close frame, just a dead TCP connection
            assert await b.recv() == {
                "type": "close",
                "username": "abrupt-a",
                "reason": "disconnected",
            }
    await wait_until_login_works(shared_server, "abrupt-a", time.monotonic() + 5)


async def test_heartbeat_drops_a_silent_client(start_server: StartServer) -> None:
    heartbeat = 0.5
    server = start_server("--heartbeat", str(heartbeat))
    async with logged_in(server, "alive") as [alive]:
        # autoping off and never reading: the client ignores the server's pings.
        async with connected(server.ws_url, autoping=False) as [silent]:
            await silent.send({"type": "login", "username": "sleepy"})
            assert (await asyncio.wait_for(silent.ws.receive(), 5)).json() == {
                "type": "login",
                "success": True,
            }
            went_silent = time.monotonic()
            await start_call_raw(alive, "sleepy")
            # aiohttp pings after `heartbeat` and gives up heartbeat/2 later; allow
            # generous slack for a loaded machine.
            limit = 1.5 * heartbeat + 2.0
            assert await alive.recv(within=limit + 2) == {
                "type": "close",
                "username": "sleepy",
                "reason": "disconnected",
            }
            freed = await wait_until_login_works(server, "sleepy", went_silent + limit + 2)
            assert freed - went_silent < limit
        # A client that answers pings (aiohttp does while it reads) is never dropped.
        await alive.expect_nothing(4 * heartbeat)
        assert await alive.users() == ["alive"]


async def start_call_raw(caller: Client, callee: str) -> None:
    """An offer to a user whose client is not reading."""
    await caller.send(offer_to(callee))
    await caller.expect_nothing(0.1)


async def test_max_connections(start_server: StartServer) -> None:
    server = start_server("--max-connections", "2")
    async with logged_in(server, "mc-a", "mc-b") as [a, b]:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(server.ws_url)
            assert refused.value.status == 503
            root = server.ws_url.removesuffix("/ws")
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(root)
            assert refused.value.status == 503
        # The two inside are unaffected.
        await start_call(a, b)
        await assert_call_still_works(a, b)
        assert await get_json(server, "/healthz") == {"status": "ok", "connections": 2, "users": 2}
        await b.ws.close()
        assert await a.recv() == {"type": "close", "username": "mc-b", "reason": "disconnected"}
    # Slots free up again once sockets close.
    async with logged_in(server, "mc-c", "mc-d") as [c, d]:
        assert await c.users() == ["mc-c", "mc-d"]
        assert d.ws.closed is False
    # Many upgrades at the same moment: still no more than the limit get in.
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(
            *(session.ws_connect(server.ws_url) for _ in range(6)), return_exceptions=True
        )
        opened = [r for r in results if isinstance(r, aiohttp.ClientWebSocketResponse)]
        turned_away = [r for r in results if isinstance(r, aiohttp.WSServerHandshakeError)]
        assert len(opened) == 2 and len(turned_away) == 4, results
        assert {r.status for r in turned_away} == {503}
        for ws in opened:
            await ws.close()


async def test_sigterm_closes_sockets_with_going_away(start_server: StartServer) -> None:
    server = start_server()
    # First in line: a client that never reads, so it never answers the close handshake.
    async with connected(server.ws_url, autoping=False) as [stuck]:
        await stuck.send({"type": "login", "username": "bye-stuck"})
        async with logged_in(server, "bye-a", "bye-b") as [a, b]:
            async with connected(server.ws_url) as [anon]:
                await start_call(a, b)
                server.process.signal(signal.SIGTERM)
                # The stuck client does not hold up everybody else's goodbye.
                codes = [await c.close_frame(within=3) for c in (a, b, anon)]
                # Each one 1001, every run: the server waits for each client's answering
                # close frame before it drops the connection (it once did not, and the
                # client, unable to answer, reported 1006 in about one run in three).
                assert codes == [1001, 1001, 1001], codes
        # It gets its 1001 too, unless it took longer than the server's close timeout
        # (3 s) to read it: the server has dropped the connection by then, the answer
        # cannot be written, and aiohttp's client reports that as 1006.
        assert await stuck.close_frame(within=10) in (1001, 1006)
    assert await asyncio.to_thread(server.process.wait) == 0


# ---- TLS and the command line ----------------------------------------------------------


def make_cert(directory: Path, *extra: str) -> tuple[Path, Path]:
    subprocess.run(
        [str(ROOT / "scripts" / "make-cert.sh"), str(directory), *extra],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory / "cert.pem", directory / "key.pem"


async def test_tls_with_make_cert(start_server: StartServer, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path / "certs", "webcam.test")
    server = start_server("--cert", str(cert), "--key", str(key))
    assert server.scheme == "https"
    assert server.ws_url.startswith("wss://")
    trust = ssl.create_default_context(cafile=str(cert))
    assert await get_json(server, "/healthz", ssl=trust) == {
        "status": "ok",
        "connections": 0,
        "users": 0,
    }
    for url in (server.ws_url, server.ws_url.replace("127.0.0.1", "localhost")):
        async with connected(url, ssl=trust) as [client]:
            assert await client.login("secure") == {"type": "login", "success": True}
    # A client that does not trust the certificate is refused at the TLS layer.
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.ws_connect(server.ws_url)


def test_make_cert_names_and_default_dir(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "192.168.7.9")
    text = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for name in ("DNS:localhost", "IP Address:127.0.0.1", "IP Address:192.168.7.9"):
        assert name in text
    assert key.stat().st_mode & 0o077 == 0  # the private key is private
    done = subprocess.run(
        [str(ROOT / "scripts" / "make-cert.sh")], cwd=tmp_path, capture_output=True, timeout=60
    )
    assert done.returncode == 0
    assert (tmp_path / "certs" / "cert.pem").exists() and (tmp_path / "certs" / "key.pem").exists()
    bad = subprocess.run(
        [str(ROOT / "scripts" / "make-cert.sh"), str(tmp_path / "x"), "not a host!"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "neither a hostname nor an IP" in bad.stderr


def run_cli(*args: str) -> tuple[int, str]:
    process = Process([str(BIN / "signaling-server"), "--port", "0", *args])
    code = process.wait(timeout=30)
    return code, "\n".join(process.lines)


def test_cert_without_key_is_a_usage_error(tmp_path: Path) -> None:
    code, output = run_cli("--cert", str(tmp_path / "cert.pem"))
    assert code == 2
    assert "--cert and --key go together" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("which", ["missing", "not-pem"])
def test_bad_cert_path_is_a_clear_error(tmp_path: Path, which: str) -> None:
    cert = tmp_path / "cert.pem"
    if which == "not-pem":
        cert.write_text("this is not a certificate\n")
    code, output = run_cli("--cert", str(cert), "--key", str(tmp_path / "key.pem"))
    assert code == 2
    assert "cannot load the TLS certificate/key" in output
    assert "Traceback" not in output
