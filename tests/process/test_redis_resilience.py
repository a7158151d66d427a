"""signaling-server --redis when Redis misbehaves: bad envelopes on the bus, a hung
Redis (SIGSTOP), a Redis that dies and comes back, a background task that crashes.

Real redis-server and real server processes; what is asserted is what users and
operators see: messages, login replies, ``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis.asyncio

from signaling.cluster import envelope
from signaling.redis_routing import CHANNEL_PREFIX, CLAIM_TIMEOUT, SOCKET_TIMEOUT
from tests.helpers.redis_support import RedisServer, start_redis
from tests.helpers.support import SignalingServer
from tests.process.test_server import (
    assert_call_still_works,
    candidate_to,
    connected,
    logged_in,
    start_call,
    wait_until_login_works,
)

StartServer = Callable[..., SignalingServer]
TTL = 2.0
UNAVAILABLE = {
    "type": "login",
    "success": False,
    "reason": "server-unavailable",
    "message": "the server cannot reach its user directory; try again shortly",
}
# /healthz notices within a ping's timeout plus the ping interval; a margin for a
# machine shared with other test runs.
NOTICE_WITHIN = SOCKET_TIMEOUT + 5


async def healthz(server: SignalingServer) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.http_url + "/healthz") as response,
    ):
        return response.status, await response.json()


async def health_becomes(server: SignalingServer, status: int, within: float) -> dict[str, Any]:
    """Poll /healthz until it answers ``status``; its body then."""
    deadline = time.monotonic() + within
    while True:
        got, body = await healthz(server)
        if got == status:
            return body
        assert time.monotonic() < deadline, f"/healthz still {got} {body} after {within} s"
        await asyncio.sleep(0.2)


async def metric(server: SignalingServer, name: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.http_url + "/metrics") as response,
    ):
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics:\n{text}")


async def publish(redis_url: str, username: str, data: bytes) -> None:
    client = redis.asyncio.from_url(redis_url)
    try:
        assert await client.publish(CHANNEL_PREFIX + username, data) == 1
    finally:
        await client.aclose()


async def test_a_bad_envelope_drops_only_itself(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    """Envelopes that break their handler, in a batch between good ones and alone:
    the good ones arrive, each bad one is one log line and one count in /metrics."""
    flags = ("--redis", redis_server.url, "--redis-ttl", str(TTL))
    a, b = start_server(*flags), start_server(*flags)
    async with logged_in(a, "alice") as [alice], logged_in(b, "bob") as [bob]:
        await start_call(alice, bob)
        await alice.send(candidate_to("bob"))
        relayed = await bob.recv()  # a real one, as bob receives it

        def good(index: int) -> dict[str, Any]:
            message = {**relayed, "candidate": {**relayed["candidate"], "sdpMLineIndex": index}}
            return envelope("relay", "alice", "bob", message=message)

        no_message = {"kind": "relay", "from": "alice", "to": "bob"}
        not_an_object = ["relay", "alice", "bob"]
        batch = [good(1), no_message, good(2), not_an_object, good(3)]
        await publish(redis_server.url, "bob", orjson.dumps(batch))
        await publish(redis_server.url, "bob", b"{not json")
        await publish(redis_server.url, "bob", orjson.dumps([good(4)]))
        for index in (1, 2, 3, 4):
            assert (await bob.recv())["candidate"]["sdpMLineIndex"] == index
        await bob.expect_nothing()
        await assert_call_still_works(alice, bob)

        assert await metric(b, "signaling_redis_bad_envelopes_total") == 3
        assert await metric(a, "signaling_redis_bad_envelopes_total") == 0
        lines = b.process.drain()
        dropped = [line for line in lines if "dropping a bad envelope" in line]
        assert len(dropped) == 3, "\n".join(lines)
        assert "signaling:to:bob" in dropped[0] and "KeyError" in dropped[0]
        assert not any("Traceback" in line for line in lines), "\n".join(lines)
        assert (await healthz(b))[0] == 200


async def test_a_hung_redis_is_unhealthy_and_logins_are_answered(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    """redis-server stopped (SIGSTOP: connections stay open, nothing answers): /healthz
    says 503 and why, a login is answered server-unavailable within the claim
    timeout (the command's socket timeout usually answers first), the users in stay;
    after SIGCONT all is well again."""
    server = start_server("--redis", redis_server.url, "--redis-ttl", str(TTL))
    assert await healthz(server) == (200, {"status": "ok", "connections": 0, "users": 0})
    async with logged_in(server, "early") as [early]:
        redis_server.process.signal(signal.SIGSTOP)
        try:
            body = await health_becomes(server, 503, NOTICE_WITHIN)
            assert body["status"] == "unhealthy"
            assert body["reason"].startswith("Redis is unreachable: "), body
            async with connected(server.ws_url) as [late]:
                await late.send({"type": "login", "username": "late"})
                # Bounded: the claim timeout plus a margin, never forever.
                assert await late.recv(within=CLAIM_TIMEOUT + 5) == UNAVAILABLE
            assert (await healthz(server))[0] == 503
        finally:
            redis_server.process.signal(signal.SIGCONT)
        assert await health_becomes(server, 200, NOTICE_WITHIN) == {
            "status": "ok",
            "connections": 1,
            "users": 1,
        }
        # The name the timed-out claim may have taken after all is given back.
        await wait_until_login_works(server, "late", time.monotonic() + TTL + 3)
        await early.expect_nothing(0.5)
    assert server.process.popen.poll() is None


async def test_redis_down_is_unhealthy_and_back_is_healthy(
    start_server: StartServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    """redis-server killed: /healthz 503, logins server-unavailable at once; a new
    redis-server on the same port: healthy again, and users on two processes find
    and call each other."""
    flags = ("--redis", redis_server.url, "--redis-ttl", str(TTL))
    a, b = start_server(*flags), start_server(*flags)
    async with logged_in(a, "alice") as [alice]:
        redis_server.process.popen.kill()
        await asyncio.to_thread(redis_server.process.popen.wait)
        for server in (a, b):
            body = await health_becomes(server, 503, NOTICE_WITHIN)
            assert body["reason"].startswith("Redis is unreachable: "), body
        async with connected(b.ws_url) as [bob]:
            await bob.send({"type": "login", "username": "bob"})
            assert await bob.recv(within=CLAIM_TIMEOUT + 5) == UNAVAILABLE

        (tmp_path / "restarted").mkdir()
        restarted = start_redis(tmp_path / "restarted", redis_server.port)
        try:
            for server in (a, b):
                assert (await health_becomes(server, 200, NOTICE_WITHIN))["status"] == "ok"
            async with logged_in(b, "bob") as [bob]:
                await start_call(alice, bob)
                await assert_call_still_works(bob, alice)
        finally:
            restarted.process.stop()


async def test_a_crashed_background_task_is_restarted(redis_server: RedisServer) -> None:
    """The refresh task crashes for real: the server's drop callback (the shell's
    part) raises while the task handles a name another process took. The supervisor
    logs it, reports it in problems() (what /healthz shows) and starts the task
    again, which goes on refreshing."""
    from signaling.cluster import ClusterRouter
    from signaling.redis_routing import KEY_PREFIX, RedisRouting

    dropped: list[object] = []

    def drop(connection: object) -> None:
        dropped.append(connection)
        if len(dropped) == 1:
            raise RuntimeError("the shell failed to drop a connection")

    router = ClusterRouter()
    router.connect("socket-1")
    routing = RedisRouting(redis_server.url, router, lambda _: None, drop=drop, ttl=0.6)
    await routing.start()
    client = redis.asyncio.from_url(redis_server.url)
    try:
        login = orjson.dumps({"type": "login", "username": "alice"}).decode()
        assert await routing.handle_frame("socket-1", login) == [
            ("socket-1", {"type": "login", "success": True})
        ]
        await client.set(KEY_PREFIX + "alice", "another-process")
        deadline = time.monotonic() + 5
        while not routing.problems():
            assert time.monotonic() < deadline, "the refresh task never crashed"
            await asyncio.sleep(0.02)
        assert routing.problems() == [
            "redis-refresh is down: crashed with RuntimeError: "
            "the shell failed to drop a connection"
        ]
        # Restarted: it refreshes again and drops the connection this time.
        while len(dropped) < 2:
            assert time.monotonic() < deadline + 5, "the refresh task was not restarted"
            await asyncio.sleep(0.02)
        assert routing.problems() == []
    finally:
        await client.aclose()
        await routing.stop()
