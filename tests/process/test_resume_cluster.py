"""Names kept across a restart when several ``--redis`` processes share one session
secret (issue 16): each process writes its own list of held names, and each start
reserves the names of them all. Real server processes and a real redis-server."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from signaling.resume import held_names_files, load_held
from tests.helpers.redis_support import RedisServer
from tests.helpers.support import (
    SignalingServer,
    free_port,
    start_signaling_server,
    wait_until_logged,
)
from tests.process.test_server import connected

pytestmark = pytest.mark.slow


async def test_processes_sharing_a_secret_keep_each_others_names(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    secret = tmp_path / "session-secret"
    ports = {"a": free_port(), "b": free_port()}
    flags = ("--redis", redis_server.url, "--session-secret-file", str(secret))
    started: list[SignalingServer] = []

    def start(process: str) -> SignalingServer:
        server = start_signaling_server(*flags, port=ports[process])
        started.append(server)
        return server

    try:
        a, b = start("a"), start("b")
        async with connected(a.ws_url) as [alice], connected(b.ws_url) as [bob]:
            alice_reply = await alice.login("alice")
            bob_reply = await bob.login("bob")
            assert alice_reply["success"] is True and bob_reply["success"] is True
            await asyncio.sleep(1.5)  # each process writes its names each second
            # Both stop (a deploy): a first, then b, whose list once replaced a's.
            for server in (a, b):
                server.process.signal(signal.SIGTERM)
                server.process.wait()
        lists = [set(load_held(path, 0)) for path in held_names_files(secret)]
        assert sorted(map(sorted, lists)) == [["alice"], ["bob"]], lists

        a, b = start("a"), start("b")
        async with connected(a.ws_url, 2) as [on_a, alice_back], connected(b.ws_url) as [on_b]:
            # Whichever process the attacker reaches, neither name is his ...
            for attacker, name in ((on_b, "alice"), (on_a, "bob")):
                refused = await attacker.login(name)
                assert refused["success"] is False, (name, refused)
                assert refused["reason"] == "username-taken"
            # ... and the holder has hers back, with her ticket, on either process.
            back = await alice_back.login("alice", ticket=alice_reply["ticket"])
            assert back["success"] is True, back
        for name in ("alice", "bob"):
            wait_until_logged([a.process, b.process], f"login as {name} refused")
    finally:
        for server in started:
            server.process.stop()
