"""The data-channel shell (peer/datachannels.py) over two real in-process peer
connections on loopback: flow control and concurrent transfers of one name."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from peer.chat import RecentLines
from peer.datachannels import HIGH_WATER, CallData, ReceiveOptions
from peer.transfer_wire import MAX_CHUNK

from .datachannel_peer import loopback_pcs, negotiate
from .peer_support import files_in

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


def write_random(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


async def test_the_sender_never_queues_more_than_the_high_water_mark(tmp_path: Path) -> None:
    (tmp_path / "dl").mkdir()
    digest = await asyncio.to_thread(write_random, tmp_path / "big.bin", 24 * MIB)
    alice_said: list[str] = []
    bob_said: list[str] = []
    async with loopback_pcs() as (pc_alice, pc_bob):
        alice = CallData(
            pc_alice, "alice", "bob", ReceiveOptions(), alice_said.append, RecentLines()
        )
        bob = CallData(
            pc_bob, "bob", "alice", ReceiveOptions(tmp_path / "dl"), bob_said.append, RecentLines()
        )
        alice.channel_arrived(pc_alice.createDataChannel("chat"))
        pc_bob.on("datachannel", bob.channel_arrived)
        await negotiate(pc_alice, pc_bob)
        await asyncio.wait_for(bob.chat_open.wait(), 20)

        alice.send_file(tmp_path / "big.bin")
        highest = 0
        while not any("verified by bob" in line for line in alice_said):
            for transfer in alice.outgoing:
                if transfer.channel is not None:
                    highest = max(highest, transfer.channel.bufferedAmount)
            await asyncio.sleep(0)
            assert not any("failed" in line for line in alice_said + bob_said), alice_said
        await alice.close()
        await bob.close()

    assert highest <= HIGH_WATER + MAX_CHUNK, f"{highest} bytes were queued at once"
    assert any(
        line.startswith("received big.bin from alice") and f"sha256 {digest} verified" in line
        for line in bob_said
    ), bob_said
    assert hashlib.sha256((tmp_path / "dl" / "big.bin").read_bytes()).hexdigest() == digest


async def test_two_transfers_of_one_name_at_once_both_survive(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "dl").mkdir()
    first = await asyncio.to_thread(write_random, tmp_path / "one" / "same.txt", 3 * MIB)
    second = await asyncio.to_thread(write_random, tmp_path / "two" / "same.txt", 3 * MIB)
    alice_said: list[str] = []
    bob_said: list[str] = []
    async with loopback_pcs() as (pc_alice, pc_bob):
        alice = CallData(
            pc_alice, "alice", "bob", ReceiveOptions(), alice_said.append, RecentLines()
        )
        bob = CallData(
            pc_bob, "bob", "alice", ReceiveOptions(tmp_path / "dl"), bob_said.append, RecentLines()
        )
        alice.channel_arrived(pc_alice.createDataChannel("chat"))
        pc_bob.on("datachannel", bob.channel_arrived)
        await negotiate(pc_alice, pc_bob)
        await asyncio.wait_for(bob.chat_open.wait(), 20)
        alice.send_file(tmp_path / "one" / "same.txt")
        alice.send_file(tmp_path / "two" / "same.txt")
        while sum("verified by bob" in line for line in alice_said) < 2:
            assert not any("failed" in line for line in alice_said + bob_said), bob_said
            await asyncio.sleep(0.05)
        await alice.close()
        await bob.close()

    assert files_in(tmp_path / "dl") == ["same (1).txt", "same.txt"]
    digests = {
        hashlib.sha256((tmp_path / "dl" / name).read_bytes()).hexdigest()
        for name in ("same.txt", "same (1).txt")
    }
    assert digests == {first, second}
