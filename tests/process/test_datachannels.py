"""The data-channel shell (peer/data/channels.py) over two real in-process peer
connections on loopback: flow control, concurrent transfers of one name, and a
receiver that never answers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from peer.call.answering import FilePolicy
from peer.data.channels import (
    ACCEPT_TIMEOUT,
    HIGH_WATER,
    CallData,
    ReceiveOptions,
    remove_stale_partials,
)
from peer.data.chat import RecentLines
from peer.data.transfer_wire import MAX_CHUNK
from tests.helpers.datachannel_peer import loopback_pcs, negotiate
from tests.helpers.peer_support import files_in

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


@dataclass
class Side:
    data: CallData
    said: list[str] = field(default_factory=list)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.said)


@contextlib.asynccontextmanager
async def two_sides(
    download_dir: Path,
    *,
    bob_takes_files: bool = True,
    accept_within: float = ACCEPT_TIMEOUT,
    bob_asks_within: float | None = None,
) -> AsyncIterator[tuple[Side, Side]]:
    """With ``bob_asks_within``, bob is at a terminal and takes alice's files only when
    told (CallData.answer_offer), rejecting them after that many seconds."""
    """alice and bob's CallData on two connected peer connections, chat open."""
    alice_said: list[str] = []
    bob_said: list[str] = []
    async with loopback_pcs() as (pc_alice, pc_bob):
        alice = Side(
            CallData(
                pc_alice,
                "alice",
                "bob",
                ReceiveOptions(),
                alice_said.append,
                RecentLines(),
                accept_within=accept_within,
            ),
            alice_said,
        )
        bob = Side(
            CallData(
                pc_bob,
                "bob",
                "alice",
                ReceiveOptions(download_dir),
                bob_said.append,
                RecentLines(),
                file_policy=FilePolicy.of([] if bob_asks_within else ["alice"]),
                at_a_terminal=lambda: True,
                offer_answer_within=bob_asks_within or 60.0,
            ),
            bob_said,
        )
        alice.data.channel_arrived(pc_alice.createDataChannel("chat"))
        if bob_takes_files:
            pc_bob.on("datachannel", bob.data.channel_arrived)
        await negotiate(pc_alice, pc_bob)
        await asyncio.wait_for(alice.data.chat_open.wait(), 20)
        try:
            yield alice, bob
        finally:
            await alice.data.close()
            await bob.data.close()


async def until(condition: object, sides: tuple[Side, Side]) -> None:
    """Poll ``condition`` (a callable) until true; any failure line fails at once."""
    assert callable(condition)
    while not condition():
        for side in sides:
            assert not side.count("failed"), side.said
        await asyncio.sleep(0.02)


def write_random(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_the_sender_never_queues_more_than_the_high_water_mark(tmp_path: Path) -> None:
    (tmp_path / "dl").mkdir()
    digest = await asyncio.to_thread(write_random, tmp_path / "big.bin", 24 * MIB)
    highest = 0
    async with two_sides(tmp_path / "dl") as (alice, bob):
        alice.data.send_file(tmp_path / "big.bin")
        while not alice.count("verified by bob"):
            for transfer in alice.data.outgoing:
                if transfer.channel is not None:
                    highest = max(highest, transfer.channel.bufferedAmount)
            assert not alice.count("failed") and not bob.count("failed"), bob.said
            await asyncio.sleep(0)
    assert highest <= HIGH_WATER + MAX_CHUNK, f"{highest} bytes were queued at once"
    assert bob.count(f"sha256 {digest} verified") == 1
    assert await asyncio.to_thread(sha256_file, tmp_path / "dl" / "big.bin") == digest


async def test_two_transfers_of_one_name_at_once_both_survive(tmp_path: Path) -> None:
    for name in ("one", "two", "dl"):
        (tmp_path / name).mkdir()
    first = await asyncio.to_thread(write_random, tmp_path / "one" / "same.txt", 3 * MIB)
    second = await asyncio.to_thread(write_random, tmp_path / "two" / "same.txt", 3 * MIB)
    async with two_sides(tmp_path / "dl") as (alice, bob):
        alice.data.send_file(tmp_path / "one" / "same.txt")
        alice.data.send_file(tmp_path / "two" / "same.txt")
        await until(lambda: alice.count("verified by bob") == 2, (alice, bob))
    assert files_in(tmp_path / "dl") == ["same (1).txt", "same.txt"]
    saved = {
        await asyncio.to_thread(sha256_file, tmp_path / "dl" / name)
        for name in ("same.txt", "same (1).txt")
    }
    assert saved == {first, second}


async def test_a_receiver_that_never_accepts_does_not_hang_the_sender(tmp_path: Path) -> None:
    (tmp_path / "dl").mkdir()
    (tmp_path / "a.txt").write_bytes(b"hello")
    async with two_sides(tmp_path / "dl", bob_takes_files=False, accept_within=1.0) as (
        alice,
        bob,
    ):
        alice.data.send_file(tmp_path / "a.txt")
        await until(lambda: alice.count("transfer of a.txt to bob cancelled"), (alice, bob))
    assert alice.count("bob did not accept a.txt within 1 s") == 1
    assert not alice.data.outgoing
    assert files_in(tmp_path / "dl") == []


async def test_an_unanswered_offer_is_rejected_and_the_sender_told(tmp_path: Path) -> None:
    (tmp_path / "dl").mkdir()
    (tmp_path / "a.txt").write_bytes(b"hello")
    (tmp_path / "b.txt").write_bytes(b"world")
    async with two_sides(tmp_path / "dl", bob_asks_within=2.0) as (alice, bob):
        alice.data.send_file(tmp_path / "a.txt")
        await until(lambda: alice.count("transfer of a.txt to bob rejected by bob"), (alice, bob))
        assert bob.count("rejected a.txt from alice: not accepted within 2 s") == 1
        assert files_in(tmp_path / "dl") == []
        alice.data.send_file(tmp_path / "b.txt")
        await until(lambda: bob.count("alice offers b.txt (5 bytes) as transfer"), (alice, bob))
        number = int(bob.said[-1].split("as transfer ")[1].split(":")[0])
        bob.data.answer_offer(number, accept=True)
        await until(lambda: alice.count("sent b.txt (5 bytes) to bob"), (alice, bob))
    assert files_in(tmp_path / "dl") == ["b.txt"]


def test_a_partial_file_goes_only_once_nothing_wrote_to_it_for_ten_minutes(
    tmp_path: Path,
) -> None:
    now = 1_800_000_000.0
    ages = {"fresh": 0.0, "just-under": 599.0, "exactly": 600.0, "over": 601.0}
    for name, age in ages.items():
        path = tmp_path / f".webcam-peer-{name}.part"
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
    other = tmp_path / "report.part"  # not ours: never touched, however old
    other.write_bytes(b"x")
    os.utime(other, (now - 3600, now - 3600))
    removed = remove_stale_partials(tmp_path, now=now)
    assert sorted(p.name for p in removed) == [
        ".webcam-peer-exactly.part",
        ".webcam-peer-over.part",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".webcam-peer-fresh.part",
        ".webcam-peer-just-under.part",
        "report.part",
    ]
