"""Consent for files (docs/security.md): a webcam-peer writes a file only after its
person typed /accept N at the terminal, or its user named the sender with
--accept-files-from. Real webcam-peer processes; the person types on a real
pseudo-terminal, as in tests/process/test_call_consent.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peer.call.answering import Answer, FilePolicy
from peer.data.channels import MAX_INCOMING_AT_ONCE
from tests.helpers.datachannel_peer import scripted_call
from tests.helpers.peer_support import BOT_FLAGS, NO_MEDIA, files_in, peer_at_a_terminal, start_peer
from tests.helpers.support import Process, SignalingServer

pytestmark = pytest.mark.slow

NOTE = b"a short note for bob\n"


def test_the_policy() -> None:
    default = FilePolicy()
    assert default.decide("alice", at_a_terminal=True) is Answer.ASK
    assert default.decide("alice", at_a_terminal=False) is Answer.DECLINE
    listed = FilePolicy.of(["alice"])
    assert listed.decide("alice", at_a_terminal=False) is Answer.ANSWER
    assert listed.decide("alice", at_a_terminal=True) is Answer.ANSWER
    assert listed.decide("mallory", at_a_terminal=False) is Answer.DECLINE
    assert listed.decide("mallory", at_a_terminal=True) is Answer.ASK
    assert FilePolicy.of([], ask=True).decide("x", at_a_terminal=False) is Answer.ASK


@pytest.fixture
def bob_at_a_terminal(
    signaling_server: SignalingServer, tmp_path: Path
) -> Iterator[tuple[Process, int, Path]]:
    """bob answers calls unattended (--auto-answer) but has a person at a pseudo-terminal
    for files; the master end to type on, and his download folder."""
    downloads = tmp_path / "dl"
    downloads.mkdir()
    flags = (*BOT_FLAGS, "--login", "bob", *NO_MEDIA, "--download-dir", str(downloads))
    with peer_at_a_terminal(signaling_server, *flags) as (bob, master):
        bob.wait_for("waiting for calls")
        yield bob, master, downloads


@contextlib.contextmanager
def note_sent(server: SignalingServer, sender: str, folder: Path, name: str) -> Iterator[Process]:
    """``sender`` calls bob and sends him NOTE as the file ``name``; stopped on leaving."""
    note = folder / name
    note.write_bytes(NOTE)
    peer = start_peer(
        server, *("--login", sender, "--call", "bob", *NO_MEDIA, "--send-file", str(note))
    )
    try:
        yield peer
    finally:
        peer.stop()


def test_a_file_is_announced_and_nothing_is_written_until_accept(
    signaling_server: SignalingServer,
    bob_at_a_terminal: tuple[Process, int, Path],
    tmp_path: Path,
) -> None:
    bob, keyboard, downloads = bob_at_a_terminal
    with note_sent(signaling_server, "alice", tmp_path, "-rf note.txt") as alice:
        offer = bob.wait_for(
            r"alice offers _-rf note\.txt \(21 bytes\) as transfer (\d+): "
            r"/accept \1 or /reject \1 \(rejected in 60 s\)"
        )
        number = offer.group(1)
        # The person has not answered: not even a temporary file exists, and alice waits.
        time.sleep(2)
        assert files_in(downloads) == []
        assert not any("sent " in line or "transfer of" in line for line in alice.drain())
        os.write(keyboard, b"/help\n")
        bob.wait_for(r"/accept N\s+take the file offered as transfer N")
        os.write(keyboard, b"/accept 99\n")
        bob.wait_for("no file offered as transfer 99")
        os.write(keyboard, f"/accept {number}\n".encode())
        bob.wait_for(r"received _-rf note\.txt from alice -> .* verified$")
        alice.wait_for(r"sent -rf note\.txt \(21 bytes\) to bob, sha256 \w+: verified by bob$")
    assert files_in(downloads) == ["_-rf note.txt"]
    assert (downloads / "_-rf note.txt").read_bytes() == NOTE


def test_reject_cancels_and_the_sender_sees_why(
    signaling_server: SignalingServer,
    bob_at_a_terminal: tuple[Process, int, Path],
    tmp_path: Path,
) -> None:
    bob, keyboard, downloads = bob_at_a_terminal
    with note_sent(signaling_server, "alice", tmp_path, "conftest.py") as alice:
        number = bob.wait_for(r"alice offers conftest\.py \(21 bytes\) as transfer (\d+)").group(1)
        os.write(keyboard, f"/reject {number}\n".encode())
        bob.wait_for(r"rejected conftest\.py from alice$")
        bob.wait_for(r"transfer of conftest\.py from alice rejected \(nothing saved\)$")
        alice.wait_for(r"transfer of conftest\.py to bob rejected by bob$")
        # The call goes on, and a second /reject of the same number says so.
        os.write(keyboard, f"/reject {number}\n".encode())
        bob.wait_for(f"no file offered as transfer {number}")
        os.write(keyboard, b"still here\n")
        alice.wait_for(r"\] bob: still here$")
    assert files_in(downloads) == []


def test_accept_files_from_takes_only_the_named_senders_files_unattended(
    signaling_server: SignalingServer, tmp_path: Path
) -> None:
    """No terminal: files from alice are taken without a question, from mallory refused."""
    downloads = tmp_path / "dl"
    bob = start_peer(
        signaling_server,
        *("--login", "bob", *NO_MEDIA, "--download-dir", str(downloads)),
        *("--accept-files-from", "alice", "--once"),
    )
    try:
        bob.wait_for("waiting for calls")
        with note_sent(signaling_server, "alice", tmp_path, "note.txt") as alice:
            bob.wait_for(
                r"accepting note\.txt \(21 bytes\) from alice \(--accept-files-from alice\)"
            )
            alice.wait_for(r"sent note\.txt \(21 bytes\) to bob, .*verified by bob$")
        assert (downloads / "note.txt").read_bytes() == NOTE
        assert not any("offers" in line for line in bob.lines)
    finally:
        bob.stop()
    bob = start_peer(
        signaling_server,
        *("--login", "bob", *NO_MEDIA, "--download-dir", str(downloads)),
        *("--accept-files-from", "alice"),
    )
    try:
        bob.wait_for("waiting for calls")
        with note_sent(signaling_server, "mallory", tmp_path, "note.txt") as mallory:
            bob.wait_for(
                r"refused note\.txt \(21 bytes\) from mallory: nobody at a terminal to ask "
                r"\(--accept-files-from mallory takes their files unattended\)"
            )
            mallory.wait_for(r"transfer of note\.txt to bob rejected by bob$")
    finally:
        bob.stop()
    assert files_in(downloads) == ["note.txt"]


async def test_a_flood_of_offers_writes_nothing(
    signaling_server: SignalingServer, bob_at_a_terminal: tuple[Process, int, Path]
) -> None:
    """A stranger offering file after file (and sending data without waiting) gets no
    accept, holds at most 8 slots, and not one byte reaches bob's disk."""
    bob, _, downloads = bob_at_a_terminal
    async with scripted_call(signaling_server, "mallory", "bob") as peer:
        offers = []
        for n in range(MAX_INCOMING_AT_ONCE):
            channel = peer.open("file")
            await channel.wait_open()
            channel.send({"type": "file", "name": f"flood{n}.bin", "size": 1000})
            offers.append(channel)
        await asyncio.to_thread(bob.wait_for, rf"mallory offers flood{MAX_INCOMING_AT_ONCE - 1}")
        extra = peer.open("file")
        await extra.wait_open()
        extra.send({"type": "file", "name": "extra.bin", "size": 1000})
        assert await extra.receive() == {"type": "cancel", "reason": "too-many"}
        # Data pushed before any accept ends that transfer: it is never written.
        offers[0].send(b"x" * 1000)
        assert await offers[0].receive() == {"type": "cancel", "reason": "protocol-error"}
        await asyncio.sleep(1)
        for channel in offers[1:]:
            assert channel.inbox.empty()  # no accept went out
        assert files_in(downloads) == []
    await asyncio.to_thread(bob.wait_for, "call with mallory ended")
    assert files_in(downloads) == []
    assert not any("receiving flood" in line for line in bob.lines)
