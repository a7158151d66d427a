"""The restart hijack (issue 16): the server restarts, an attacker asks for alice's
name in the gap before the real alice logs in again. Real server processes, real
peers in a real call; the attacker is a plain WebSocket client."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from .server_support import Client, JSONObject
from .support import Process, SignalingServer, free_port, start_signaling_server
from .test_reliability import PROOF, assert_no_traceback, call_between, frames, wait_for_users

pytestmark = pytest.mark.slow


async def _first_login_after_start(
    url: str, username: str, hold: float, within: float = 10.0
) -> JSONObject:
    """Log in as ``username`` the moment the server accepts connections, and stay
    ``hold`` seconds."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.ws_connect(url) as ws:
                    reply = await Client(ws).login(username)
                    await asyncio.sleep(hold)
                    return reply
            except (aiohttp.ClientError, OSError):
                assert time.monotonic() < deadline, "the server did not come back"
                await asyncio.sleep(0.01)


def _restart_with_an_attacker(
    port: int, alice: Process, bob: Process, *flags: str, hold: float = 0.0
) -> tuple[SignalingServer, JSONObject]:
    """Stop the server; once both peers are waiting to reconnect, start it again with
    an attacker already knocking for alice's name."""
    url = f"ws://127.0.0.1:{port}/ws"
    for peer in (alice, bob):
        peer.wait_for("lost the signaling server; reconnecting")

    async def attack_while_starting() -> tuple[SignalingServer, JSONObject]:
        attacker = asyncio.create_task(_first_login_after_start(url, "alice", hold))
        server = await asyncio.to_thread(start_signaling_server, *flags, port=port)
        return server, await attacker

    return asyncio.run(attack_while_starting())


def test_an_attacker_in_the_restart_gap_gets_nothing_and_the_call_goes_on(
    tmp_path: Path,
) -> None:
    flags = ("--session-secret-file", str(tmp_path / "session-secret"))
    port = free_port()
    server = start_signaling_server(*flags, port=port)
    alice, bob = call_between(server)
    try:
        time.sleep(1.5)  # the server writes the names held each second
        server.process.signal(signal.SIGKILL)
        server.process.wait()
        server, attacker_reply = _restart_with_an_attacker(port, alice, bob, *flags)
        assert attacker_reply["success"] is False, attacker_reply
        assert attacker_reply["reason"] == "username-taken"
        # The real alice and bob log in again with their tickets.
        for peer in (alice, bob):
            peer.wait_for(r"reconnected to the signaling server after [\d.]+ s")
        wait_for_users(server, {"alice", "bob"})
        assert any("login as alice refused" in line for line in server.process.drain())
        # bob's call goes on: no new negotiation, no hang-up, video still arriving.
        for peer in (alice, bob):
            lines = peer.drain()
            assert not any(" ended: " in line for line in lines), peer.lines[-20:]
            assert not any("re-established" in line for line in lines), peer.lines[-20:]
            assert not any("possible impersonation" in line for line in lines), peer.lines[-20:]
        frames(bob, frames(bob) + PROOF)
        frames(alice, frames(alice) + PROOF)
    finally:
        alice.stop()
        bob.stop()
        server.process.stop()
    assert_no_traceback(alice, bob)


def test_a_name_taken_at_re_login_is_reported_as_a_possible_impersonation() -> None:
    """Without resume tickets the attacker gets the name; alice is told, not left
    retrying in silence."""
    port = free_port()
    server = start_signaling_server(port=port)
    alice, bob = call_between(server)
    try:
        server.process.signal(signal.SIGTERM)
        server.process.wait()
        # The attacker keeps the name while alice's peer tries to log in again.
        server, attacker_reply = _restart_with_an_attacker(port, alice, bob, hold=8.0)
        assert attacker_reply["success"] is True, attacker_reply
        alice.wait_for("someone else may be logged in as you \\(possible impersonation\\)")
    finally:
        alice.stop()
        bob.stop()
        server.process.stop()
    assert_no_traceback(alice, bob)
