"""A stranger on the same signaling server (or a hostile server) against a
webcam-peer started with its defaults (docs/security.md, "The peer and the page").

The stranger is a raw protocol client (tests/server_support.Client) with, where it
needs a real offer, an aiortc connection of its own; bob is a real webcam-peer
process. Each test asserts what bob's user sees, and that bob still takes a
well-formed call afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection

from peer.data.channels import MAX_INCOMING_AT_ONCE
from peer.session.intake import MAX_REMOTE_CANDIDATES
from peer.stack.host_addresses import restrict_host_addresses
from tests.helpers.datachannel_peer import Channel, ScriptedPeer, scripted_call
from tests.helpers.peer_support import BOT_FLAGS, NO_MEDIA, files_in, start_peer
from tests.helpers.server_support import Client, JSONObject
from tests.helpers.support import BIN, ROOT, Process, SignalingServer, free_port

pytestmark = pytest.mark.slow

ESCAPES = "\x1b]0;PWNED\x07\x1b[2J\x1b]52;c;ZWNobyBwd25lZA==\x07"


@pytest.fixture
def bob(signaling_server: SignalingServer, tmp_path: Path) -> Iterator[Process]:
    (tmp_path / "dl").mkdir()
    process = start_peer(
        signaling_server,
        *("--login", "bob", *NO_MEDIA, "--download-dir", str(tmp_path / "dl")),
        *("--accept-files-from", "mallory"),
    )
    process.wait_for("waiting for calls")
    yield process
    process.stop()


async def expect(process: Process, pattern: str, within: float = 20.0) -> str:
    """Wait for a line without blocking the event loop the stranger runs on."""
    match = await asyncio.to_thread(process.wait_for, pattern, within)
    return match.group(0)


@contextlib.asynccontextmanager
async def stranger(server: SignalingServer, name: str = "mallory") -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url) as ws:
        client = Client(ws)
        assert (await client.login(name))["success"] is True
        yield client


async def next_of_type(client: Client, kind: str, within: float = 20.0) -> JSONObject:
    while (message := await client.recv(within))["type"] != kind:
        pass
    return message


@contextlib.asynccontextmanager
async def real_offer() -> AsyncIterator[tuple[RTCPeerConnection, JSONObject]]:
    """A well-formed offer (a chat channel, loopback only) from a connection that
    never goes further: bob answers it and waits for ICE that never comes."""
    restrict_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration([]))
    try:
        pc.createDataChannel("chat")
        await pc.setLocalDescription(await pc.createOffer())
        yield pc, {"type": "offer", "sdp": pc.localDescription.sdp}
    finally:
        await pc.close()
        restrict_host_addresses([])


async def ring(mallory: Client, offer: JSONObject) -> JSONObject:
    await mallory.send({"type": "offer", "offer": offer, "otherUsername": "bob"})
    return await next_of_type(mallory, "answer")


def a_good_call_still_connects(server: SignalingServer, bob: Process) -> None:
    alice = start_peer(server, "--login", "alice", "--call", "bob", *NO_MEDIA)
    try:
        alice.wait_for("call with bob connected", timeout=30)
        bob.wait_for("call with alice connected")
    finally:
        alice.stop()
    assert bob.popen.poll() is None
    output = "\n".join(bob.drain())
    assert "Traceback" not in output and "lost the signaling server" not in output


def no_escapes(process: Process) -> None:
    for line in process.drain():
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", line), repr(line)


@pytest.mark.parametrize(
    ("sdp", "why"),
    [
        ("v=0\r\nm=bogus", "their offer could not be applied"),
        ("", "the offer has no SDP text"),
        ("v=0\r\nm=" + "\x1b[2J" * 5000, "their offer could not be applied"),
    ],
)
async def test_an_offer_that_cannot_be_applied_ends_only_its_call(
    signaling_server: SignalingServer, bob: Process, sdp: str, why: str
) -> None:
    async with stranger(signaling_server) as mallory:
        offer = {"type": "offer", "sdp": sdp}
        await mallory.send({"type": "offer", "offer": offer, "otherUsername": "bob"})
        await expect(bob, rf"refused the call from mallory: .*{re.escape(why)}")
        close = await next_of_type(mallory, "close")
        assert close["reason"] == "bad-offer"
    await asyncio.to_thread(a_good_call_still_connects, signaling_server, bob)
    no_escapes(bob)


async def test_a_second_answer_mid_call_is_ignored_and_signaling_goes_on(
    signaling_server: SignalingServer, bob: Process
) -> None:
    async with stranger(signaling_server) as mallory, real_offer() as (_, offer):
        answer = await ring(mallory, offer)
        # bob is the callee: an answer is never his to take, least of all mid-call.
        await mallory.send({"type": "answer", "answer": answer["answer"], "otherUsername": "bob"})
        await expect(bob, r"ignored answer from mallory: answer-received is not possible")
        # Still reading signaling: the hang-up arrives.
        await mallory.send({"type": "close", "otherUsername": "bob"})
        await expect(bob, "call with mallory ended: mallory hung up", within=10)
    await asyncio.to_thread(a_good_call_still_connects, signaling_server, bob)


async def test_escapes_in_a_close_reason_never_reach_the_terminal(
    signaling_server: SignalingServer, bob: Process
) -> None:
    async with stranger(signaling_server) as mallory, real_offer() as (_, offer):
        await ring(mallory, offer)
        await mallory.send({"type": "close", "otherUsername": "bob", "reason": ESCAPES})
        await expect(bob, r"call with mallory ended: mallory hung up \(.*PWNED")
    no_escapes(bob)


async def test_a_candidate_flood_is_capped_and_mdns_names_are_not_looked_up(
    signaling_server: SignalingServer, bob: Process
) -> None:
    async with stranger(signaling_server) as mallory, real_offer() as (_, offer):
        await ring(mallory, offer)
        mdns = "candidate:1 1 udp 2130706431 4f0c7a8e-2b1d-4c55-9d1e-1b2c3d4e5f60.local 9 typ host"
        await mallory.send(
            {
                "type": "candidate",
                "candidate": {"candidate": mdns, "sdpMid": "0", "sdpMLineIndex": 0},
                "otherUsername": "bob",
            }
        )
        await expect(bob, r"ignoring candidates from mallory: an mDNS \.local candidate")
        for n in range(MAX_REMOTE_CANDIDATES + 20):
            line = f"candidate:{n} 1 udp 2130706431 198.51.100.{n % 250 + 1} {20000 + n} typ host"
            await mallory.send(
                {
                    "type": "candidate",
                    "candidate": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0},
                    "otherUsername": "bob",
                }
            )
            await asyncio.sleep(0.025)  # under the server's 50 messages a second
        await expect(
            bob, rf"ignoring candidates from mallory: more than {MAX_REMOTE_CANDIDATES} candidates"
        )
        await mallory.send({"type": "close", "otherUsername": "bob"})
        await expect(bob, "call with mallory ended")
    await asyncio.to_thread(a_good_call_still_connects, signaling_server, bob)


async def test_a_chat_flood_is_rate_limited(
    signaling_server: SignalingServer, bob: Process
) -> None:
    async with scripted_call(signaling_server, "mallory", "bob") as peer:
        await expect(bob, "chat with mallory open")
        for n in range(300):
            peer.chat_channel.send({"type": "chat", "text": f"flood {n}"})
        await expect(bob, r"mallory sends chat faster than a person types: \d+ line\(s\) not shown")
        await asyncio.sleep(1.5)
        peer.chat_channel.send({"type": "chat", "text": "and a normal line later"})
        await expect(bob, r"\] mallory: and a normal line later$")
    shown = [line for line in bob.drain() if re.search(r"\] mallory: flood \d+$", line)]
    assert 20 <= len(shown) <= 40, len(shown)


# ---- a hostile signaling server ---------------------------------------------------------
async def hostile_server(script: list[JSONObject]) -> tuple[web.AppRunner, str]:
    """A WebSocket server that logs anyone in, then sends ``script``."""

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for frame in ws:
            data = json.loads(frame.data)
            if data.get("type") == "login":
                await ws.send_json({"type": "login", "success": True})
                for message in script:
                    await ws.send_json(message)
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"ws://127.0.0.1:{port}/ws"


async def test_escapes_and_bad_usernames_from_a_hostile_server_are_filtered() -> None:
    script: list[JSONObject] = [
        {"type": "error", "reason": "x", "message": f"hello {ESCAPES} there"},
        {"type": "offer", "username": f"{ESCAPES}evil", "offer": {"type": "offer", "sdp": "v=0"}},
        {"type": "offer", "username": "eve", "offer": {"type": "answer", "sdp": "v=0"}},
        {"type": "offer", "username": "eve2", "offer": "v=0"},
        {"type": "close", "username": ["not", "a", "name"], "reason": ESCAPES},
        {"type": "error", "reason": "y", "message": "still reading"},
    ]
    runner, url = await hostile_server(script)
    bob = Process(
        [str(BIN / "webcam-peer"), "--server", url, *BOT_FLAGS, "--login", "bob", *NO_MEDIA]
    )
    try:
        await expect(bob, r"server says: hello .*PWNED.* there")
        await expect(bob, r"ignored offer with the username .*PWNED")
        await expect(bob, r"refused the call from eve: an offer of type answer")
        await expect(bob, r"refused the call from eve2: the offer is not an object")
        await expect(bob, "server says: still reading")
        assert bob.popen.poll() is None
    finally:
        bob.stop()
        await runner.cleanup()
    no_escapes(bob)
    assert not any("incoming call" in line for line in bob.lines)


# ---- files: limits that hold before any consent --------------------------------------
async def offer_file(peer: ScriptedPeer, name: str, size: int) -> Channel:
    channel = peer.open("file")
    await channel.wait_open()
    channel.send({"type": "file", "name": name, "size": size})
    return channel


async def test_files_go_to_a_dedicated_folder_within_the_default_limits(
    signaling_server: SignalingServer, tmp_path: Path
) -> None:
    """No --download-dir, no --max-receive-size: ~/Downloads/webcam-peer, 1 GiB a file,
    never more than the disk can spare, and a per-call budget."""
    home = tmp_path / "home"
    home.mkdir()
    bob = start_peer(
        signaling_server,
        *("--login", "bob", *NO_MEDIA, "--max-receive-per-call", "100"),
        *("--accept-files-from", "mallory"),
        env={"HOME": str(home), "XDG_DOWNLOAD_DIR": ""},
    )
    data = b"x" * 60
    digest = hashlib.sha256(data).hexdigest()
    try:
        await expect(bob, "waiting for calls")
        async with scripted_call(signaling_server, "mallory", "bob") as peer:
            channel = await offer_file(peer, "big.bin", 1024**3 + 1)
            assert await channel.receive() == {"type": "cancel", "reason": "too-large"}
            channel = await offer_file(peer, "conftest.py", len(data))
            assert await channel.receive() == {"type": "accept"}
            channel.send(data)
            channel.send({"type": "end", "sha256": digest})
            assert await channel.receive() == {"type": "done", "sha256": digest}
            # 60 of the call's 100 bytes are spent.
            channel = await offer_file(peer, "more.bin", len(data))
            assert await channel.receive() == {"type": "cancel", "reason": "too-large"}
            await expect(bob, r"refused more\.bin \(60 bytes\) from mallory: over what one call")
    finally:
        bob.stop()
    saved = home / "Downloads" / "webcam-peer" / "conftest.py"
    assert saved.read_bytes() == data
    assert not (ROOT / "conftest.py").exists() or (ROOT / "conftest.py").read_bytes() != data
    assert files_in(home / "Downloads" / "webcam-peer") == ["conftest.py"]


async def test_a_file_larger_than_the_free_space_is_refused(
    signaling_server: SignalingServer, tmp_path: Path
) -> None:
    (tmp_path / "dl").mkdir()
    bob = start_peer(
        signaling_server,
        *("--login", "bob", *NO_MEDIA, "--download-dir", str(tmp_path / "dl")),
        *("--max-receive-size", "8000T", "--max-receive-per-call", "8000T"),
    )
    try:
        await expect(bob, "waiting for calls")
        async with scripted_call(signaling_server, "mallory", "bob") as peer:
            channel = await offer_file(peer, "disk-filler.bin", 2**52)
            assert await channel.receive() == {"type": "cancel", "reason": "too-large"}
            await expect(bob, r"refused disk-filler\.bin \(\d+ bytes\) from mallory: only \d+")
    finally:
        bob.stop()
    assert files_in(tmp_path / "dl") == []


async def test_a_file_channel_without_a_header_gives_its_slot_back(
    signaling_server: SignalingServer, bob: Process, tmp_path: Path
) -> None:
    async with scripted_call(signaling_server, "mallory", "bob") as peer:
        silent = [peer.open("file") for _ in range(MAX_INCOMING_AT_ONCE)]
        for channel in silent:
            await channel.wait_open()
        extra = await offer_file(peer, "extra.bin", 5)
        assert await extra.receive() == {"type": "cancel", "reason": "too-many"}
        await expect(bob, "sent no file header within 30 s: closed", within=45)
        for channel in silent:
            assert await asyncio.wait_for(channel.inbox.get(), 20) == json.dumps(
                {"type": "cancel", "reason": "protocol-error"}
            )
        again = await offer_file(peer, "again.bin", 5)
        assert await again.receive() == {"type": "accept"}
    assert [f for f in files_in(tmp_path / "dl") if not f.startswith(".webcam-peer-")] == []
