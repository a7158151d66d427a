"""A webcam-peer receiving from a peer that lies: wrong sizes and hashes, hostile
names, oversize chat. Nothing is saved that should not be, and the user is told."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from peer.data.channels import MAX_INCOMING_AT_ONCE
from tests.helpers.datachannel_peer import Channel, ScriptedPeer, scripted_call
from tests.helpers.peer_support import NO_MEDIA, files_in, start_peer
from tests.helpers.support import Process, SignalingServer

pytestmark = pytest.mark.slow


@pytest.fixture
def bob(signaling_server: SignalingServer, tmp_path: Path) -> Iterator[Process]:
    (tmp_path / "dl").mkdir()
    process = start_peer(
        signaling_server,
        "--login",
        "bob",
        *NO_MEDIA,
        "--download-dir",
        str(tmp_path / "dl"),
        "--max-receive-size",
        "1M",
        "--accept-files-from",
        "mallory",  # what these tests refuse is the files' content, not the sender
    )
    process.wait_for("waiting for calls")
    yield process
    process.stop()


async def expect(process: Process, pattern: str) -> str:
    """Wait for a line without blocking the event loop the scripted peer runs on."""
    match = await asyncio.to_thread(process.wait_for, pattern)
    return match.group(0)


async def offer(peer: ScriptedPeer, name: str, size: int) -> Channel:
    channel = peer.open("file")
    await channel.wait_open()
    channel.send({"type": "file", "name": name, "size": size})
    return channel


async def test_lying_senders_are_refused_and_nothing_is_saved(
    signaling_server: SignalingServer, bob: Process, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    honest = hashlib.sha256(data).hexdigest()
    async with scripted_call(signaling_server, "mallory", "bob") as peer:
        await expect(bob, "chat with mallory open")

        # More bytes than the header said: refused at the first byte too many.
        channel = await offer(peer, "more.bin", 1000)
        assert await channel.receive() == {"type": "accept"}
        channel.send(data[:2000])
        assert await channel.receive() == {"type": "cancel", "reason": "size-mismatch"}
        await expect(bob, r"transfer of more\.bin from mallory failed: size-mismatch \(nothing")

        # Fewer bytes than the header said, with an honest hash of them.
        channel = await offer(peer, "fewer.bin", len(data))
        assert await channel.receive() == {"type": "accept"}
        channel.send(data[:500])
        channel.send({"type": "end", "sha256": hashlib.sha256(data[:500]).hexdigest()})
        assert await channel.receive() == {"type": "cancel", "reason": "size-mismatch"}
        await expect(bob, r"transfer of fewer\.bin from mallory failed: size-mismatch")

        # The right size, the wrong hash.
        channel = await offer(peer, "hash.bin", len(data))
        assert await channel.receive() == {"type": "accept"}
        channel.send(data)
        channel.send({"type": "end", "sha256": hashlib.sha256(b"other").hexdigest()})
        assert await channel.receive() == {"type": "cancel", "reason": "hash-mismatch"}
        await expect(
            bob, r"transfer of hash\.bin from mallory failed: hash-mismatch \(nothing saved\)$"
        )

        # Over bob's --max-receive-size: refused before any data.
        channel = await offer(peer, "huge.bin", 2 * 1024 * 1024)
        assert await channel.receive() == {"type": "cancel", "reason": "too-large"}
        await expect(bob, r"transfer of huge\.bin from mallory failed: too-large")

        # A header that is not one.
        channel = await offer(peer, "x", -5)
        assert await channel.receive() == {"type": "cancel", "reason": "bad-header"}
        await expect(bob, r"a file from mallory failed: bad-header \(nothing saved\)")

        # After all that, an honest transfer still works.
        channel = await offer(peer, "honest.bin", len(data))
        assert await channel.receive() == {"type": "accept"}
        channel.send(data)
        channel.send({"type": "end", "sha256": honest})
        assert await channel.receive() == {"type": "done", "sha256": honest}
        await expect(bob, rf"received honest\.bin from mallory -> .* sha256 {honest} verified")

    assert files_in(tmp_path / "dl") == ["honest.bin"]
    assert hashlib.sha256((tmp_path / "dl" / "honest.bin").read_bytes()).hexdigest() == honest
    assert "Traceback" not in "\n".join(bob.lines)


@pytest.mark.parametrize(
    ("offered", "saved"),
    [
        ("../../evil.sh", "evil.sh"),
        ("..\\..\\evil.bat", "evil.bat"),
        (".bashrc", "bashrc"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("-rf", "_-rf"),
        ("\u2215..\u2215etc", "_.._etc"),
    ],
)
async def test_hostile_names_land_inside_the_download_dir(
    signaling_server: SignalingServer, bob: Process, tmp_path: Path, offered: str, saved: str
) -> None:
    data = b"#!/bin/sh\necho gotcha\n"
    digest = hashlib.sha256(data).hexdigest()
    async with scripted_call(signaling_server, "mallory", "bob") as peer:
        channel = await offer(peer, offered, len(data))
        assert await channel.receive() == {"type": "accept"}
        channel.send(data)
        channel.send({"type": "end", "sha256": digest})
        assert await channel.receive() == {"type": "done", "sha256": digest}
        await expect(bob, rf"received {saved} from mallory -> {tmp_path / 'dl' / saved} ")
    assert files_in(tmp_path / "dl") == [saved]
    assert files_in(tmp_path) == ["dl"]


async def test_more_transfers_at_once_than_allowed_are_refused(
    signaling_server: SignalingServer, bob: Process, tmp_path: Path
) -> None:
    data = b"one of many"
    digest = hashlib.sha256(data).hexdigest()
    async with scripted_call(signaling_server, "mallory", "bob") as peer:
        # Eight offers held open (accepted, no data yet): each holds a temporary file.
        held = [await offer(peer, f"held{n}.bin", len(data)) for n in range(MAX_INCOMING_AT_ONCE)]
        for channel in held:
            assert await channel.receive() == {"type": "accept"}
        extra = await offer(peer, "extra.bin", len(data))
        assert await extra.receive() == {"type": "cancel", "reason": "too-many"}
        await expect(bob, r"refused a file from mallory: 8 transfers .* \(too-many\)")
        # Once one finishes, there is room again.
        held[0].send(data)
        held[0].send({"type": "end", "sha256": digest})
        assert await held[0].receive() == {"type": "done", "sha256": digest}
        again = await offer(peer, "again.bin", len(data))
        assert await again.receive() == {"type": "accept"}
    await expect(bob, r"call with mallory ended")
    assert files_in(tmp_path / "dl") == ["held0.bin"]


async def test_oversize_and_malformed_chat_is_refused(
    signaling_server: SignalingServer, bob: Process
) -> None:
    async with scripted_call(signaling_server, "mallory", "bob") as peer:
        await expect(bob, "chat with mallory open")
        peer.chat_channel.send({"type": "chat", "text": "z" * 5000})
        await expect(bob, r"refused an oversize chat message from mallory \(5000 bytes\)")
        peer.chat_channel.send("q" * 20000)
        await expect(bob, r"refused an oversize chat message from mallory \(20000 bytes\)")
        peer.chat_channel.send(b"\x00binary")
        await expect(bob, r"refused a binary chat message from mallory")
        peer.chat_channel.send({"type": "chat", "text": "\x1b[2Jcleared?"})
        line = await expect(bob, r"mallory: .*cleared\?")
        assert "\x1b" not in line
        peer.chat_channel.send({"type": "typing"})  # a later extension: ignored quietly
        peer.chat_channel.send({"type": "chat", "text": "ok, a normal line"})
        await expect(bob, r"\] mallory: ok, a normal line$")
    assert not any("zzzz" in line or "qqqq" in line for line in bob.lines)


async def test_a_call_without_data_channels_goes_on_without_chat(
    signaling_server: SignalingServer, tmp_path: Path
) -> None:
    (tmp_path / "f.txt").write_bytes(b"for nobody")
    carol = start_peer(
        signaling_server, "--login", "carol", *NO_MEDIA, "--send-file", str(tmp_path / "f.txt")
    )
    try:
        await expect(carol, "waiting for calls")
        async with scripted_call(signaling_server, "page", "carol", data_channels=False):
            await expect(carol, "call with page connected")
            await expect(carol, "page's side offered no data channels: no chat or files")
            await expect(carol, r"f\.txt not sent: no data channels in this call")
            carol.type_line("anyone there?")
            await expect(carol, "chat with page is not open")
        await expect(carol, "call with page ended: page hung up")
    finally:
        carol.stop()
    output = "\n".join(carol.lines)
    assert output.count("offered no data channels") == 1 and "Traceback" not in output
