"""The signaling server in this process: ``create_app`` under pytest-aiohttp's test
server, real WebSockets over loopback, no subprocess.

test_server.py starts the installed command and checks what a user meets; these tests
reach the same shell through ``create_app`` directly, so they run in milliseconds, see
the app's state after each step, and cover both routings (one process, and two apps
sharing a real redis-server) with the same client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from signaling.redis_routing import RedisRouting
from signaling.routing import InProcess
from signaling.server import STATE, ServerConfig, create_app
from tests.helpers.redis_support import RedisServer
from tests.helpers.server_support import Client
from tests.process.test_server import BROWSER_CANDIDATE, OFFER_SDP, answer_to, offer_to

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@asynccontextmanager
async def users(http: TestClient[Any, Any], *names: str) -> AsyncIterator[list[Client]]:
    """One logged-in WebSocket per name."""
    async with AsyncExitStack() as stack:
        clients = []
        for name in names:
            client = Client(await stack.enter_async_context(http.ws_connect("/ws")))
            assert await client.login(name) == {"type": "login", "success": True}
            clients.append(client)
        yield clients


async def test_the_page_config_and_health_are_served(aiohttp_client: AiohttpClient) -> None:
    http = await aiohttp_client(create_app(ServerConfig(token="secret")))
    page = await http.get("/")
    assert page.status == 200
    assert "<title>" in await page.text()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    config = await (await http.get("/config")).json()
    assert config == {"iceServers": [], "tokenRequired": True}
    health = await http.get("/healthz")
    assert await health.json() == {"status": "ok", "connections": 0, "users": 0}


async def test_a_call_is_relayed_and_a_third_user_hears_busy(
    aiohttp_client: AiohttpClient,
) -> None:
    app = create_app()
    http = await aiohttp_client(app)
    assert isinstance(app[STATE].routing, InProcess)
    async with users(http, "alice", "bob", "carol") as [alice, bob, carol]:
        await alice.send(offer_to("bob"))
        assert await bob.recv() == {
            "type": "offer",
            "offer": {"type": "offer", "sdp": OFFER_SDP},
            "username": "alice",
        }
        await bob.send(answer_to("alice"))
        assert (await alice.recv())["username"] == "bob"
        await alice.send({"type": "candidate", "candidate": BROWSER_CANDIDATE})
        assert (await bob.recv())["candidate"] == BROWSER_CANDIDATE
        busy = await carol.request(offer_to("bob"))
        assert (busy["type"], busy["reason"], busy["otherUsername"]) == ("error", "busy", "bob")
        assert await carol.users() == ["alice", "bob", "carol"]
        assert app[STATE].router.active_call_count == 1
        # bob's connection goes: alice hears why, and the server forgets him.
        await bob.ws.close()
        assert await alice.recv() == {"type": "close", "username": "bob", "reason": "disconnected"}
        health = await (await http.get("/healthz")).json()
        assert (health["connections"], health["users"]) == (2, 2)
        assert app[STATE].router.active_call_count == 0


async def test_silent_and_wrong_token_connections_are_closed_with_1008(
    aiohttp_client: AiohttpClient,
) -> None:
    app = create_app(ServerConfig(token="secret", login_timeout=0.3))
    http = await aiohttp_client(app)
    silent = Client(await http.ws_connect("/ws"))
    assert await silent.close_frame() == aiohttp.WSCloseCode.POLICY_VIOLATION
    guesser = Client(await http.ws_connect("/ws"))
    for _ in range(3):
        reply = await guesser.login("mallory", token="guess")
        assert reply["reason"] == "unauthorized"
    assert await guesser.close_frame() == aiohttp.WSCloseCode.POLICY_VIOLATION
    # Each connection's state goes with it (its handler ends right after the close).
    state = app[STATE]
    for _ in range(100):
        if not state.clients:
            break
        await asyncio.sleep(0.02)
    assert state.clients == {} and state.router.connection_count == 0 and not state.per_address


async def test_shutdown_closes_every_socket_with_going_away() -> None:
    server = TestServer(create_app())
    await server.start_server()
    async with aiohttp.ClientSession() as session, AsyncExitStack() as stack:
        alice, bob = [
            Client(await stack.enter_async_context(session.ws_connect(server.make_url("/ws"))))
            for _ in range(2)
        ]
        await alice.login("alice")
        await bob.login("bob")
        await alice.send(offer_to("bob"))
        await bob.recv()
        closing = asyncio.create_task(server.close())
        codes = await asyncio.gather(alice.close_frame(), bob.close_frame())
        await closing
    # Going away is not hanging up: neither heard a close from the other.
    assert codes == [aiohttp.WSCloseCode.GOING_AWAY] * 2
    assert alice.received == [{"type": "login", "success": True}]


@pytest.mark.slow
async def test_two_apps_sharing_redis_carry_a_call_and_refuse_a_taken_name(
    aiohttp_client: AiohttpClient, redis_server: RedisServer
) -> None:
    """The Directory's queries (claim a name, list everyone) and envelopes between two
    processes' routers, through a real redis-server."""
    apps = [create_app(ServerConfig(redis_url=redis_server.url)) for _ in range(2)]
    one, two = [await aiohttp_client(app) for app in apps]
    assert all(isinstance(app[STATE].routing, RedisRouting) for app in apps)
    async with users(one, "alice") as [alice], users(two, "bob") as [bob]:
        impostor = Client(await one.ws_connect("/ws"))
        taken = await impostor.login("bob")
        assert (taken["success"], taken["reason"]) == (False, "username-taken")
        assert await alice.users() == ["alice", "bob"]
        await alice.send(offer_to("bob"))
        assert (await bob.recv())["username"] == "alice"
        await bob.send(answer_to("alice"))
        assert (await alice.recv())["type"] == "answer"
        await bob.send({"type": "close"})
        assert await alice.recv() == {"type": "close", "username": "bob"}
        unknown = await alice.request(offer_to("zed"))
        assert (unknown["reason"], unknown["otherUsername"]) == ("unknown-user", "zed")
        await impostor.ws.close()
    health = await (await one.get("/healthz")).json()
    assert health["status"] == "ok"
