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
from playwright.async_api import Browser, Page

from signaling.resume import held_names_files, load_held
from tests.helpers.browser_support import (
    page_calls_new_peer,
    page_state,
    remote_video_playing,
    text_of,
    wait_for_state,
)
from tests.helpers.gate_proxy import Gate, gate_to
from tests.helpers.peer_support import start_peer
from tests.helpers.server_support import Client, JSONObject
from tests.helpers.support import (
    Process,
    SignalingServer,
    free_port,
    start_signaling_server,
    wait_until_logged,
)
from tests.network.test_reliability import (
    BOT,
    PROOF,
    STATS,
    assert_no_traceback,
    call_between,
    frames,
    frames_keep_coming,
    wait_for_users,
)

pytestmark = pytest.mark.slow


def wait_for_names_saved(secret: Path, names: set[str], within: float = 10.0) -> None:
    """Until the server's list of held names (written each second beside ``secret``)
    has ``names``: a SIGKILL after that leaves them to be kept after the restart."""
    deadline = time.monotonic() + within
    while True:
        held: set[str] = set()
        for path in held_names_files(secret):
            held |= load_held(path, time.time()).keys()
        if names <= held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the server saved {sorted(held)} as held, not {sorted(names)}")
        time.sleep(0.1)


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
        wait_for_names_saved(tmp_path / "session-secret", {"alice", "bob"})
        server.process.signal(signal.SIGKILL)
        server.process.wait()
        server, attacker_reply = _restart_with_an_attacker(port, alice, bob, *flags)
        assert attacker_reply["success"] is False, attacker_reply
        assert attacker_reply["reason"] == "username-taken"
        # The real alice and bob log in again with their tickets.
        for peer in (alice, bob):
            peer.wait_for(r"reconnected to the signaling server after [\d.]+ s")
        wait_for_users(server, {"alice", "bob"})
        wait_until_logged([server.process], "login as alice refused")
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


# ---- the page ------------------------------------------------------------------------------


async def _page_calls_bob_through(
    browser: Browser, gate: Gate, server: SignalingServer
) -> tuple[Process, Page]:
    """bob, a bot, waits on the server; carol's page, loaded through the gate, calls him."""
    bob, carol = await page_calls_new_peer(browser, gate.http_url, server, *BOT, *STATS)
    try:
        await remote_video_playing(carol)
    except BaseException:
        bob.stop()
        raise
    return bob, carol


async def _restart_while_the_page_is_shut_out(
    server: SignalingServer, gate: Gate, carol: Page, *flags: str
) -> SignalingServer:
    gate.is_open = False
    server.process.signal(signal.SIGKILL)
    await asyncio.to_thread(server.process.wait)
    await carol.wait_for_function("() => !window.webcamPeer.connected")
    return await asyncio.to_thread(start_signaling_server, *flags, port=server.port)


@pytest.mark.browser
async def test_the_page_gets_its_name_back_with_its_ticket_and_the_attacker_does_not(
    browser: Browser, tmp_path: Path
) -> None:
    flags = ("--session-secret-file", str(tmp_path / "session-secret"))
    server = start_signaling_server(*flags)
    bob: Process | None = None
    async with gate_to(server.port) as gate:
        try:
            bob, carol = await _page_calls_bob_through(browser, gate, server)
            secret = tmp_path / "session-secret"
            await asyncio.to_thread(wait_for_names_saved, secret, {"bob", "carol"})
            server = await _restart_while_the_page_is_shut_out(server, gate, carol, *flags)
            # The attacker is first in the gap: the name is kept for its holder.
            refused = await _first_login_after_start(server.ws_url, "carol", 0.0)
            assert refused["success"] is False and refused["reason"] == "username-taken"
            wait_until_logged([server.process], "login as carol refused")
            gate.is_open = True  # the page's next retry reaches the server, with its ticket
            await carol.wait_for_function(
                "() => document.getElementById('status').textContent.startsWith('Reconnected')",
                timeout=30_000,
            )
            assert await text_of(carol, "#status") == (
                "Reconnected to the server; the call with bob goes on."
            )
            assert await text_of(carol, "#error") == ""
            await asyncio.to_thread(wait_for_users, server, {"bob", "carol"})
            await frames_keep_coming(carol)
            assert await page_state(carol) == "in-call"
            # The name on the server is the page's: a call to carol rings there.
            await carol.click("#hangup")
            await wait_for_state(carol, "idle")
            dave = start_peer(server, "--login", "dave", "--call", "carol", *BOT, *STATS)
            try:
                await asyncio.to_thread(dave.wait_for, "call with carol connected")
                await remote_video_playing(carol)
                assert await text_of(carol, "#remote-label") == "dave"
            finally:
                dave.stop()
            assert_no_traceback(dave)
        finally:
            if bob is not None:
                bob.stop()
            server.process.stop()
    assert bob is not None
    assert_no_traceback(bob)


@pytest.mark.browser
async def test_the_page_reports_its_name_taken_at_re_login_as_a_possible_impersonation(
    browser: Browser,
) -> None:
    """Without resume tickets the attacker in the gap gets the name; the page says so
    at once, and keeps trying."""
    server = start_signaling_server()
    bob: Process | None = None
    async with gate_to(server.port) as gate:
        try:
            bob, carol = await _page_calls_bob_through(browser, gate, server)
            server = await _restart_while_the_page_is_shut_out(server, gate, carol)
            attacker = asyncio.create_task(_first_login_after_start(server.ws_url, "carol", 15.0))
            await asyncio.to_thread(wait_for_users, server, {"carol"})
            gate.is_open = True
            await carol.wait_for_function(
                "() => document.getElementById('error').textContent.includes('impersonation')",
                timeout=30_000,
            )
            assert await text_of(carol, "#error") == (
                "The name “carol” is taken on the server: someone else may be logged in as you"
                " (possible impersonation). Still trying to log in again…"
            )
            assert await page_state(carol) == "in-call"  # the call itself goes on
            assert (await attacker)["success"] is True
            # The attacker gone, the page has its name back and says what happened.
            await carol.wait_for_function(
                "() => document.getElementById('status').textContent.startsWith('Reconnected')",
                timeout=30_000,
            )
            assert await text_of(carol, "#notice") == (
                "The name carol was taken on the server for a while (possible impersonation);"
                " it is yours again."
            )
        finally:
            if bob is not None:
                bob.stop()
            server.process.stop()
