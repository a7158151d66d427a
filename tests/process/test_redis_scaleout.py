"""signaling-server --redis: several real server processes sharing a real redis-server.

Users connect to different processes and still find each other: calls, duplicate
logins, busy and unknown users, processes that die, message order under load.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable

import pytest
import redis.asyncio

from tests.helpers.peer_support import start_peer, wait_for_frames
from tests.helpers.redis_support import RedisServer
from tests.helpers.server_support import Client
from tests.helpers.support import BIN, SignalingServer, free_port, start_signaling_server
from tests.process.test_server import (
    BROWSER_CANDIDATE,
    assert_call_still_works,
    candidate_to,
    connected,
    logged_in,
    offer_to,
    start_call,
    wait_until_login_works,
)

StartServer = Callable[..., SignalingServer]
TTL = 2.0  # seconds: short, so a dead process's users free up quickly in the tests


def two_processes(
    start_server: StartServer, redis: RedisServer, *extra: str
) -> list[SignalingServer]:
    flags = ("--redis", redis.url, "--redis-ttl", str(TTL), *extra)
    return [start_server(*flags), start_server(*flags)]


async def test_users_on_two_processes_call_each_other(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    a, b = two_processes(start_server, redis_server)
    async with logged_in(a, "alice", "carol") as [alice, carol], logged_in(b, "bob") as [bob]:
        # Everybody is listed everywhere.
        assert await bob.users() == ["alice", "bob", "carol"]
        assert await alice.users() == ["alice", "bob", "carol"]

        await start_call(alice, bob)
        await assert_call_still_works(alice, bob)
        await assert_call_still_works(bob, alice)
        # bob is busy for carol, wherever she is.
        reply = await carol.request(offer_to("bob"))
        assert reply == {
            "type": "error",
            "reason": "busy",
            "message": "the user is in another call",
            "request": "offer",
            "otherUsername": "bob",
        }
        await bob.expect_nothing()
        # Nobody called zed is online on any process.
        assert (await carol.request(offer_to("zed")))["reason"] == "unknown-user"
        # A candidate to someone you are not in a call with.
        reply = await carol.request(candidate_to("alice"))
        assert reply["reason"] == "not-in-call" and reply["otherUsername"] == "alice"

        await bob.send({"type": "close", "otherUsername": "alice"})
        assert await alice.recv() == {"type": "close", "username": "bob"}
        # The call is over on both processes: carol may call bob now.
        await start_call(carol, bob)

        # Leaving ends the call across processes too.
        await bob.ws.close()
        assert await carol.recv() == {"type": "close", "username": "bob", "reason": "disconnected"}
        assert await alice.users() == ["alice", "carol"]


async def test_a_name_is_taken_on_every_process(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    a, b = two_processes(start_server, redis_server)
    async with logged_in(a, "alice"):
        async with connected(b.ws_url) as [impostor]:
            assert await impostor.login("alice") == {
                "type": "login",
                "success": False,
                "reason": "username-taken",
                "message": "that username is taken",
            }
    # alice left process A: the name is free on B at once.
    deadline = time.monotonic() + 2
    await wait_until_login_works(b, "alice", deadline)


async def test_killing_a_process_frees_its_users(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    a, b = two_processes(start_server, redis_server)
    async with logged_in(b, "bob") as [bob]:
        async with logged_in(a, "alice") as [alice]:
            await start_call(alice, bob)
            a.process.popen.kill()  # SIGKILL: no goodbye, no cleanup
            killed = time.monotonic()
            # bob hears that alice is gone (her keys expire, his process notices).
            assert await bob.recv(within=TTL + 5) == {
                "type": "close",
                "username": "alice",
                "reason": "disconnected",
            }
            noticed = time.monotonic() - killed
            # And alice may log in again, on the surviving process.
            freed = await wait_until_login_works(b, "alice", killed + TTL + 5) - killed
            assert freed <= TTL + 1.0, f"alice was still taken {freed:.1f} s after the kill"
            assert noticed <= TTL + TTL / 3 + 1.5, f"bob heard after {noticed:.1f} s"
            await alice.ws.close()


async def test_a_clean_stop_frees_its_users_at_once(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    flags = ("--redis", redis_server.url, "--redis-ttl", "60")
    a, b = start_server(*flags), start_server(*flags)
    async with logged_in(a, "alice") as [alice]:
        a.process.signal(signal.SIGTERM)
        assert await alice.close_frame() == 1001
    assert await asyncio.to_thread(a.process.wait) == 0
    # Not after the 60 s TTL: the stopping process released the name.
    await wait_until_login_works(b, "alice", time.monotonic() + 3)


async def test_users_survive_redis_losing_its_data(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    """Redis restarted empty (here: FLUSHALL): the homes claim their users back at the
    next refresh, so names stay unique and calls keep working."""
    a, b = two_processes(start_server, redis_server)
    async with logged_in(a, "alice") as [alice], logged_in(b, "bob") as [bob]:
        client = redis.asyncio.from_url(redis_server.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()
        await asyncio.sleep(TTL / 3 + 0.5)
        async with connected(b.ws_url) as [impostor]:
            assert (await impostor.login("alice"))["reason"] == "username-taken"
        await start_call(alice, bob)
        await assert_call_still_works(bob, alice)


async def test_message_order_is_kept_under_load(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    """Pairs split over two processes fire candidates at each other as fast as they can;
    every one arrives, once, in the order it was sent."""
    a, b = two_processes(start_server, redis_server, "--rate-limit", "0")
    pairs, count = 8, 400
    names = [(f"left{i}", f"right{i}") for i in range(pairs)]
    async with (
        logged_in(a, *(left for left, _ in names)) as lefts,
        logged_in(b, *(right for _, right in names)) as rights,
    ):
        for left, right in zip(lefts, rights, strict=True):
            await start_call(left, right)

        async def fire(sender: Client, receiver: Client) -> None:
            for seq in range(count):
                candidate = {**BROWSER_CANDIDATE, "sdpMLineIndex": seq}
                await sender.send(
                    {"type": "candidate", "candidate": candidate, "otherUsername": receiver.name}
                )

        async def collect(receiver: Client, sender: Client) -> list[int]:
            seen = []
            for _ in range(count):
                message = await receiver.recv(within=20)
                assert message["username"] == sender.name, message
                seen.append(message["candidate"]["sdpMLineIndex"])
            await receiver.expect_nothing()
            return seen

        sends, receipts = [], []
        for left, right in zip(lefts, rights, strict=True):
            sends += [fire(left, right), fire(right, left)]
            receipts += [collect(right, left), collect(left, right)]
        *_, results = await asyncio.gather(*sends, asyncio.gather(*receipts))
        assert results == [list(range(count))] * (2 * pairs)


async def test_unreachable_redis_is_a_clear_error() -> None:
    port = free_port()
    result = await asyncio.to_thread(
        subprocess.run,
        [
            str(BIN / "signaling-server"),
            "--port",
            str(free_port()),
            "--redis",
            f"redis://127.0.0.1:{port}/0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in result.stderr


async def test_redis_going_away_is_server_unavailable_not_username_taken(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    """Redis dies under a running server: a login gets "server-unavailable" (the name
    may well be free), not "username-taken", and the users already in stay connected."""
    server = start_server("--redis", redis_server.url, "--redis-ttl", str(TTL))
    async with logged_in(server, "early") as [early]:
        redis_server.process.popen.kill()
        await asyncio.to_thread(redis_server.process.popen.wait)
        async with connected(server.ws_url) as [late]:
            await late.send({"type": "login", "username": "late"})
            reply = await late.recv(within=30)
        assert reply == {
            "type": "login",
            "success": False,
            "reason": "server-unavailable",
            "message": "the server cannot reach its user directory; try again shortly",
        }
        await early.expect_nothing()
    assert server.process.popen.poll() is None


def test_bad_redis_url_is_a_usage_error() -> None:
    result = subprocess.run(
        [str(BIN / "signaling-server"), "--redis", "localhost:6379"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "is not a Redis URL; expected redis://HOST:PORT/DB" in result.stderr


@pytest.mark.slow
def test_two_bots_on_two_processes_see_each_other(redis_server: RedisServer) -> None:
    """webcam-peer bots: bob on one server process, alice calls him through the other."""
    flags = ("--redis", redis_server.url)
    a, b = start_signaling_server(*flags), start_signaling_server(*flags)
    synthetic = ("--video", "synthetic", "--size", "320x240", "--fps", "30", "--audio", "synthetic")
    bob = start_peer(b, "--login", "bob", *synthetic, "--once", "--stats-interval", "0.5")
    alice = None
    try:
        bob.wait_for("waiting for calls")
        alice = start_peer(
            a, "--login", "alice", "--call", "bob", *synthetic, "--stats-interval", "0.5"
        )
        alice.wait_for("call with bob connected", timeout=30)
        bob.wait_for("call with alice connected", timeout=30)
        assert wait_for_frames(alice, 10)["peer"] == "bob"
        assert wait_for_frames(bob, 10)["peer"] == "alice"
    finally:
        for process in (alice, bob):
            if process is not None:
                process.stop()
        a.process.stop()
        b.process.stop()
