"""Calls through a real coturn on loopback: relay-only, time-limited and static credentials,
TURN over udp/tcp/tls, a Python peer and the browser page, and credentials that fail."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection
from playwright.async_api import Browser

from peer.errors import ExitCode
from peer.ice.config import rtc_configuration
from tests.browser.test_browser_peer import wait_for_stamps_to_advance
from tests.helpers.browser_support import login_page, remote_video_playing
from tests.helpers.peer_support import start_peer, stats_lines, wait_for_frames
from tests.helpers.support import (
    Process,
    SignalingServer,
    start_signaling_server,
    wait_until_logged,
)
from tests.helpers.turn_support import Coturn, start_coturn

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

SECRET = "coturn-static-auth-secret"
VIDEO = ("--video", "synthetic", "--size", "320x240", "--fps", "15", "--audio", "none")
StartCoturn = Callable[..., Coturn]


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[StartCoturn]:
    """Start coturn processes on loopback (``secret=`` or ``users=``); all stopped after."""
    started: list[Coturn] = []

    def start(**options: Any) -> Coturn:
        server = start_coturn(tmp_path / f"coturn{len(started)}", **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def servers() -> Iterator[list[SignalingServer]]:
    started: list[SignalingServer] = []
    yield started
    for server in started:
        server.process.stop()


def signaling_with_turn(
    started: list[SignalingServer], turn: Coturn, secret: str = SECRET
) -> SignalingServer:
    server = start_signaling_server(
        "--ice-server",
        turn.stun_url,
        "--ice-server",
        turn.turn_url("udp"),
        "--turn-secret",
        secret,
        "--turn-ttl",
        "600",
        # These tests are about TURN itself; test_security.py covers who gets it.
        "--allow-anonymous-turn",
    )
    started.append(server)
    return server


def expected_password(secret: str, username: str) -> str:
    """coturn's check, written out independently of signaling/turn_credentials.py."""
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def pair_of(process: Process) -> dict[str, Any]:
    lines = [line for line in stats_lines(process) if line.get("pair")]
    assert lines, "no stats line names a candidate pair:\n" + "\n".join(process.lines[-30:])
    pair: dict[str, Any] = lines[-1]["pair"]
    return pair


def frames_advance(process: Process) -> dict[str, Any]:
    first = wait_for_frames(process, 5)
    last = wait_for_frames(process, first["video"]["frames"] + 15)
    assert last["video"]["last_frame_number"] > first["video"]["last_frame_number"]
    assert last["video"]["black_frames"] == 0
    return last


def log_setup(label: str, stats: dict[str, Any]) -> None:
    logger.info("%s: %s setup_ms %s", label, stats["pair"]["type"], json.dumps(stats["setup_ms"]))


def no_traceback(*processes: Process) -> None:
    for process in processes:
        assert not any("Traceback" in line for line in process.lines), "\n".join(process.lines)


# ---- time-limited credentials from the signaling server ------------------------------------


async def test_login_reply_carries_time_limited_turn_credentials(
    coturn: StartCoturn, servers: list[SignalingServer]
) -> None:
    turn = coturn(secret=SECRET)
    server = signaling_with_turn(servers, turn)
    async with aiohttp.ClientSession() as session:
        async with session.get(server.http_url + "/config") as response:
            config = await response.json()
        # Anyone may read /config: STUN only, no TURN, no credential of any kind.
        assert config["iceServers"] == [{"urls": turn.stun_url}]
        async with session.ws_connect(server.ws_url) as ws:
            await ws.send_json({"type": "login", "username": "alice"})
            reply = await ws.receive_json(timeout=5)
    assert reply["type"] == "login" and reply["success"] is True
    stun, turn_entry = reply["iceServers"]
    assert stun == {"urls": turn.stun_url}
    assert turn_entry["urls"] == [turn.turn_url("udp")]
    expiry, _, name = turn_entry["username"].partition(":")
    assert name == "alice"
    assert abs(int(expiry) - (time.time() + 600)) < 30  # --turn-ttl 600
    assert turn_entry["credential"] == expected_password(SECRET, turn_entry["username"])


def test_relay_only_call_with_time_limited_credentials(
    coturn: StartCoturn, servers: list[SignalingServer]
) -> None:
    turn = coturn(secret=SECRET)
    server = signaling_with_turn(servers, turn)
    flags = (*VIDEO, "--relay-only", "--stats-interval", "0.5")
    bob = start_peer(server, "--login", "bob", "--once", *flags)
    alice = None
    try:
        bob.wait_for("waiting for calls")
        alice = start_peer(server, "--login", "alice", "--call", "bob", *flags)
        alice.wait_for(r"call with bob connected over relay/udp \(relay <-> relay, TURN over udp\)")
        bob.wait_for(r"call with alice connected over relay/udp")
        for process in (alice, bob):
            stats = frames_advance(process)
            pair = stats["pair"]
            # Relay-only: our own end is always a TURN relay, never a local address.
            assert pair["local"] == "relay" and pair["type"] == "relay", pair
            assert pair["local_address"].startswith("127.0.0.1:")
            log_setup("relay-only (time-limited credentials)", stats)
    finally:
        if alice:
            alice.stop()
        bob.stop()
    # coturn itself saw (and accepted) the minted "<expiry>:<name>" usernames.
    for name in ("alice", "bob"):
        accepted = rf"user <\d{{10}}:{name}>: incoming packet ALLOCATE processed, success"
        wait_until_logged([turn.process], accepted)
    no_traceback(bob, *(p for p in [alice] if p))


def test_wrong_turn_credentials_fail_clearly(
    coturn: StartCoturn, servers: list[SignalingServer]
) -> None:
    turn = coturn(secret=SECRET)
    # The signaling server signs with a secret coturn does not share.
    server = signaling_with_turn(servers, turn, secret="not-the-secret")
    bob = start_peer(server, "--login", "bob", *VIDEO)
    try:
        bob.wait_for("waiting for calls")
        alice = start_peer(server, "--login", "alice", "--call", "bob", *VIDEO, "--relay-only")
        assert alice.wait() == ExitCode.NO_RELAY
        assert any(
            f"error: relay-only: the TURN server {turn.turn_url('udp')} refused the credentials "
            "(401 Unauthorized)" in line
            for line in alice.lines
        ), alice.lines
        # Without --relay-only it is a warning, and the call connects directly.
        carol = start_peer(server, "--login", "carol", "--call", "bob", *VIDEO)
        carol.wait_for(r"warning: the TURN server .* refused the credentials")
        carol.wait_for(r"call with bob connected over host/udp")
        carol.stop()
        no_traceback(alice, carol)
    finally:
        bob.stop()


async def test_relay_only_offers_no_local_address(coturn: StartCoturn) -> None:
    """What --relay-only puts in the SDP: relayed candidates only, their base hidden."""
    turn = coturn(users={"alice": "alice-password"})
    configuration = rtc_configuration(
        [turn.stun_url, turn.turn_url("udp")], "alice", "alice-password", relay_only=True
    )
    pc = RTCPeerConnection(configuration)
    try:
        pc.addTransceiver("video")
        await pc.setLocalDescription(await pc.createOffer())
        candidates = [
            line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")
        ]
    finally:
        await pc.close()
    assert candidates, "no relay candidate gathered"
    for line in candidates:
        fields = line.split()
        assert fields[7] == "relay", line  # "typ relay": no host, no srflx despite STUN
        assert fields[4] == turn.host  # the TURN server's relayed address
        assert fields[9:12] == ["0.0.0.0", "rport", "9"], line  # our own address is not told


# ---- static credentials on the command line: TURN over udp, tcp and tls --------------------


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_relay_only_call_with_static_credentials(
    coturn: StartCoturn, signaling_server: SignalingServer, transport: str
) -> None:
    turn = coturn(users={"alice": "alice-password"}, tls=transport == "tls")
    url = turn.turns_url if transport == "tls" else turn.turn_url(transport)
    # Our self-signed certificate is trusted the way any CA would be: through OpenSSL.
    env = {"SSL_CERT_FILE": str(turn.config.parent / "cert.pem")} if transport == "tls" else None
    bob = start_peer(signaling_server, "--login", "bob", "--once", *VIDEO)
    alice = None
    try:
        bob.wait_for("waiting for calls")
        turn_flags = ("--ice-server", url, "--turn-user", "alice", "--relay-only")
        alice = start_peer(
            signaling_server,
            "--login",
            "alice",
            "--call",
            "bob",
            *VIDEO,
            *turn_flags,
            "--turn-password",
            "alice-password",
            "--stats-interval",
            "0.5",
            env=env,
        )
        alice.wait_for(
            rf"call with bob connected over relay/udp \(relay <-> \w+, TURN over {transport}\)"
        )
        stats = frames_advance(alice)
        assert stats["pair"]["local"] == "relay"
        assert stats["pair"]["relay_protocol"] == transport
        log_setup(f"relay-only over {transport}", stats)
        alice.stop()

        wrong = start_peer(
            signaling_server,
            "--login",
            "mallory",
            "--call",
            "bob",
            *VIDEO,
            *turn_flags,
            "--turn-password",
            "guessed",
            env=env,
        )
        assert wrong.wait() == ExitCode.NO_RELAY
        assert any("refused the credentials (401 Unauthorized)" in line for line in wrong.lines)
        no_traceback(alice, wrong)
    finally:
        if alice:
            alice.stop()
        bob.stop()


def test_relay_only_without_a_working_turn_server(signaling_server: SignalingServer) -> None:
    alone = start_peer(signaling_server, "--login", "alice", *VIDEO, "--relay-only")
    assert alone.wait() == ExitCode.NO_RELAY
    assert any("--relay-only needs a TURN server" in line for line in alone.lines), alone.lines
    # Nothing listens there: over tcp that is known at once.
    down = start_peer(
        signaling_server,
        "--login",
        "alice",
        *VIDEO,
        "--relay-only",
        "--ice-server",
        "turn:127.0.0.1:9?transport=tcp",
        "--turn-user",
        "u",
        "--turn-password",
        "p",
    )
    assert down.wait() == ExitCode.NO_RELAY
    assert any(
        "the TURN server turn:127.0.0.1:9?transport=tcp refused the connection" in line
        for line in down.lines
    ), down.lines
    no_traceback(alone, down)


# ---- the browser page -------------------------------------------------------------------------


@pytest.mark.browser
async def test_relay_only_call_between_python_and_the_page(
    browser: Browser, coturn: StartCoturn, servers: list[SignalingServer]
) -> None:
    turn = coturn(secret=SECRET)
    server = signaling_with_turn(servers, turn)
    carol = await login_page(browser, server.http_url, "carol")
    alice = start_peer(
        server,
        "--login",
        "alice",
        "--call",
        "carol",
        *VIDEO,
        "--relay-only",
        "--stats-interval",
        "0.5",
    )
    try:
        await asyncio.to_thread(alice.wait_for, "call with carol connected over relay")
        assert await remote_video_playing(carol) == (320, 240)
        await wait_for_stamps_to_advance(carol)
        # Chromium's fake camera carries no stamp: its frames are counted instead.
        first = await asyncio.to_thread(wait_for_frames, alice, 5)
        stats = await asyncio.to_thread(wait_for_frames, alice, first["video"]["frames"] + 15)
        assert stats["pair"]["local"] == "relay"
        log_setup("relay-only Python -> page", stats)

        # The page uses what its login reply brought: TURN with minted, expiring credentials.
        page_ice = await carol.evaluate("() => window.webcamPeer.pc.getConfiguration().iceServers")
        turn_entries = [s for s in page_ice if s.get("username")]
        assert len(turn_entries) == 1, page_ice
        username = turn_entries[0]["username"]
        assert re.fullmatch(r"\d{10}:carol", username)
        assert turn_entries[0]["credential"] == expected_password(SECRET, username)
        # Chromium's side of the pair it uses is alice's relay.
        remote_type = await carol.evaluate(
            """async () => {
                const stats = await window.webcamPeer.pc.getStats();
                let pairId = null;
                stats.forEach((r) => {
                    if (r.type === 'transport') pairId = r.selectedCandidatePairId;
                });
                const pair = stats.get(pairId);
                return pair ? stats.get(pair.remoteCandidateId).candidateType : null;
            }"""
        )
        assert remote_type == "relay"
    finally:
        alice.stop()
    no_traceback(alice)
