"""The fast SCTP path: every byte arrives, in order and intact, with and without loss,
against stock aiortc on the other side; the seam check fails loudly when aiortc moves.

The peers are real aiortc RTCPeerConnections over real UDP on 127.0.0.1 (ICE, DTLS,
SCTP); loss is made by dropping received datagrams in the ICE layer, below DTLS.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import json
import random
import re
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.rtcsctptransport import USERDATA_MAX_LENGTH, RTCSctpTransport
from playwright.async_api import Browser

from peer.ice.config import rtc_configuration
from peer.stack import seam
from peer.stack.host_addresses import restrict_host_addresses
from peer.stack.sctp_speed import (
    SACK_EVERY,
    DelayedAck,
    FastSctpTransport,
    burst_credit,
    check_aiortc,
    install_sctp,
    slow_start_increase,
)
from peer.stack.seam import StackChanged, Undo
from tests.helpers.browser_support import open_page
from tests.helpers.peer_support import connected_pair, wait_for_stats
from tests.helpers.support import BIN, ROOT, Process, SignalingServer

MESSAGE_BYTES = 65536
TRANSFER_TIMEOUT = 180.0
BENCH_LOCK = "/tmp/webcam-peer-bench.lock"


@dataclass
class Pair:
    """Two connected peers; ``channel`` is the sender's open ``file`` channel."""

    sender: RTCPeerConnection
    receiver: RTCPeerConnection
    channel: RTCDataChannel
    received: list[bytes] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


MakePair = Callable[[str, str], Awaitable[Pair]]


@pytest_asyncio.fixture
async def make_pair() -> AsyncIterator[MakePair]:
    restrict_host_addresses(["127.0.0.1"])
    made: list[Pair] = []

    async def make(sender_mode: str, receiver_mode: str) -> Pair:
        sender = RTCPeerConnection(rtc_configuration([]))
        receiver = RTCPeerConnection(rtc_configuration([]))
        channel = sender.createDataChannel("file")
        install_sctp(sender, sender_mode)
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        install_sctp(receiver, receiver_mode)
        await receiver.setLocalDescription(await receiver.createAnswer())
        pair = Pair(sender, receiver, channel)
        made.append(pair)
        arrived = asyncio.Event()

        def on_channel(remote: RTCDataChannel) -> None:
            @remote.on("message")
            def on_message(message: str | bytes) -> None:
                if isinstance(message, bytes):
                    pair.received.append(message)
                else:
                    pair.texts.append(message)

            arrived.set()

        receiver.on("datachannel", on_channel)
        opened = asyncio.Event()
        channel.on("open", opened.set)
        await sender.setRemoteDescription(receiver.localDescription)
        await asyncio.wait_for(asyncio.gather(opened.wait(), arrived.wait()), 30)
        return pair

    yield make
    for pair in made:
        await pair.sender.close()
        await pair.receiver.close()
    restrict_host_addresses([])


async def send_all(channel: RTCDataChannel, data: bytes) -> None:
    """The plain flow-controlled send loop: 64 KiB messages, wait on bufferedamountlow."""
    low = asyncio.Event()
    channel.bufferedAmountLowThreshold = 1 << 20
    channel.on("bufferedamountlow", low.set)
    for offset in range(0, len(data), MESSAGE_BYTES):
        channel.send(data[offset : offset + MESSAGE_BYTES])
        if channel.bufferedAmount > 4 << 20:
            low.clear()
            await low.wait()


async def transfer(pair: Pair, data: bytes) -> bytes:
    await send_all(pair.channel, data)
    deadline = asyncio.get_running_loop().time() + TRANSFER_TIMEOUT
    while sum(map(len, pair.received)) < len(data):
        assert asyncio.get_running_loop().time() < deadline, (
            f"only {sum(map(len, pair.received))} of {len(data)} bytes arrived"
        )
        await asyncio.sleep(0.05)
    return b"".join(pair.received)


def drop_received_datagrams(pc: RTCPeerConnection, rate: float, seed: int) -> list[int]:
    """Lose ``rate`` of the datagrams ``pc``'s ICE connection receives from now on
    (DTLS records carrying SCTP DATA and SACK chunks); returns the drop counter."""
    assert pc.sctp is not None
    connection = pc.sctp.transport.transport._connection
    deliver = connection.data_received
    chance = random.Random(seed)
    dropped = [0]

    def lossy(data: bytes, component: int) -> None:
        if chance.random() < rate:
            dropped[0] += 1
            return
        deliver(data, component)

    connection.data_received = lossy  # type: ignore[method-assign]
    return dropped


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


# ---- the pure parts --------------------------------------------------------------------
def test_in_order_data_is_acknowledged_every_sack_every_packets_and_at_turn_end() -> None:
    ack = DelayedAck()
    now = [ack.data_arrived(duplicate=False, gap=False) for _ in range(2 * SACK_EVERY + 3)]
    assert [i for i, sack in enumerate(now) if sack] == [SACK_EVERY - 1, 2 * SACK_EVERY - 1]
    assert ack.turn_ended() is True  # the 3 left over go at the end of the turn
    assert ack.turn_ended() is False  # and only once


@pytest.mark.parametrize(("duplicate", "gap"), [(True, False), (False, True), (True, True)])
def test_a_gap_or_a_duplicate_is_acknowledged_at_once(duplicate: bool, gap: bool) -> None:
    ack = DelayedAck()
    assert ack.data_arrived(duplicate=False, gap=False) is False
    assert ack.data_arrived(duplicate=duplicate, gap=gap) is True
    assert ack.turn_ended() is False  # that SACK covered the earlier packet too


def test_window_growth_and_burst_follow_what_a_sack_acknowledged() -> None:
    packet = USERDATA_MAX_LENGTH
    assert slow_start_increase(3 * packet) == 3 * packet
    assert slow_start_increase(100 * packet) == SACK_EVERY * packet
    assert burst_credit(0) == 0
    assert burst_credit(1) == packet  # a partly filled chunk is still a packet
    assert burst_credit(5 * packet) == 5 * packet
    assert burst_credit(100 * packet) == SACK_EVERY * packet


# ---- delivery ------------------------------------------------------------------------
async def test_fast_path_delivers_every_byte_in_order(make_pair: MakePair) -> None:
    pair = await make_pair("fast", "fast")
    assert isinstance(pair.sender.sctp, FastSctpTransport)
    data = payload(24 * 1024 * 1024 + 12345)  # not a whole number of messages
    received = await transfer(pair, data)
    assert len(received) == len(data)
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(data).hexdigest()
    assert isinstance(pair.receiver.sctp, FastSctpTransport)
    counters = pair.receiver.sctp.counters
    # Fewer SACKs than packets: the delayed acknowledgement is what the path is for.
    packets = len(data) // USERDATA_MAX_LENGTH
    assert 0 < counters.sacks_sent < packets // 2, counters


@pytest.mark.parametrize(("sender_mode", "receiver_mode"), [("fast", "stock"), ("stock", "fast")])
async def test_fast_path_interoperates_with_stock_aiortc(
    make_pair: MakePair, sender_mode: str, receiver_mode: str
) -> None:
    pair = await make_pair(sender_mode, receiver_mode)
    stock = pair.receiver if receiver_mode == "stock" else pair.sender
    assert type(stock.sctp) is RTCSctpTransport
    data = payload(8 * 1024 * 1024, seed=2)
    received = await transfer(pair, data)
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
    # And back the other way on a channel the receiver opens.
    back = pair.receiver.createDataChannel("reply")
    replies: list[str] = []
    opened = asyncio.Event()

    @pair.sender.on("datachannel")
    def on_reply_channel(channel: RTCDataChannel) -> None:
        channel.on("message", replies.append)

    back.on("open", opened.set)
    await asyncio.wait_for(opened.wait(), 30)
    back.send(hashlib.sha256(received).hexdigest())
    for _ in range(200):
        if replies:
            break
        await asyncio.sleep(0.05)
    assert replies == [hashlib.sha256(data).hexdigest()]


@pytest.mark.parametrize("rate", [0.01, 0.05])
async def test_lost_packets_are_retransmitted_and_every_byte_arrives_intact(
    make_pair: MakePair, rate: float
) -> None:
    pair = await make_pair("fast", "fast")
    data_lost = drop_received_datagrams(pair.receiver, rate, seed=11)
    sacks_lost = drop_received_datagrams(pair.sender, rate, seed=12)
    data = payload(4 * 1024 * 1024 + 777, seed=3)
    received = await transfer(pair, data)
    assert data_lost[0] > 0 and sacks_lost[0] > 0  # the path really was lossy
    assert len(received) == len(data)
    assert received == data  # in order, byte for byte
    assert isinstance(pair.sender.sctp, FastSctpTransport)
    assert pair.sender.sctp.counters.retransmissions >= data_lost[0] // 2


async def test_loss_towards_a_stock_receiver_is_recovered_too(
    make_pair: MakePair,
) -> None:
    pair = await make_pair("fast", "stock")
    drop_received_datagrams(pair.receiver, 0.02, seed=21)
    data = payload(2 * 1024 * 1024, seed=4)
    assert await transfer(pair, data) == data


# ---- installing ----------------------------------------------------------------------
async def test_install_swaps_only_in_fast_mode_and_refuses_a_started_transport() -> None:
    pc = RTCPeerConnection()
    try:
        assert install_sctp(pc, "fast") is None  # no SCTP transport yet: nothing to do
        pc.createDataChannel("chat")
        assert type(install_sctp(pc, "stock")) is RTCSctpTransport
        fast = install_sctp(pc, "fast")
        assert isinstance(fast, FastSctpTransport)
        assert install_sctp(pc, "fast") is fast
        with pytest.raises(ValueError, match="fast, stock"):
            install_sctp(pc, "turbo")
    finally:
        await pc.close()


# ---- the seam into aiortc ------------------------------------------------------------
def test_the_installed_aiortc_still_has_the_seam_we_replace() -> None:
    check_aiortc()


def test_an_unchecked_aiortc_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seam, "installed_version", lambda library: "1.17.0")
    with pytest.raises(StackChanged, match=r"aiortc 1\.17\.0 .*run with --sctp stock"):
        check_aiortc()


@pytest.mark.parametrize("method", ["_receive_sack_chunk", "_transmit"])
def test_a_forked_method_changed_in_aiortc_is_refused(
    monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Our copies of these two would not get aiortc's fixes: any change to the code of
    the original (not its comments or layout) is refused."""
    original = getattr(RTCSctpTransport, method)
    source = textwrap.dedent(inspect.getsource(original))
    assert seam.normalised_source(original) == seam.normalised_source(
        _compiled(source.replace("\n", "\n    # a new comment\n", 1), method)
    )  # comments alone change nothing
    changed = source.replace("self.", "self._changed_and_", 1)
    monkeypatch.setattr(RTCSctpTransport, method, _compiled(changed, method))
    with pytest.raises(
        StackChanged,
        match=rf"RTCSctpTransport\.{method} is not the code our copy was made from.*"
        r"run with --sctp stock",
    ):
        check_aiortc()


def _compiled(source: str, name: str) -> Any:
    """``source`` as a function whose source inspect can read back (from a file)."""
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text("from aiortc.rtcsctptransport import *  # noqa\n" + source)
    spec = importlib.util.spec_from_file_location(f"changed_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


async def test_undo_makes_it_aiortcs_transport_again() -> None:
    pc = RTCPeerConnection()
    try:
        pc.createDataChannel("chat")
        undo = Undo()
        assert isinstance(install_sctp(pc, "fast", undo), FastSctpTransport)
        undo()
        assert type(pc.sctp) is RTCSctpTransport
    finally:
        await pc.close()


# ---- the benchmark -------------------------------------------------------------------
# The quick run (8 MiB, one stock/fast pair) measured fast/stock 4.25-5.25x over 3 runs
# at load 2.0-2.5, but 2.21x on a quiet machine (stock 208, fast 461 Mbit/s): stock gains
# most from idle cores. The fast path switched off gives 0.51x, so the floor sits well
# above that and below the quiet figure.
FAST_OVER_STOCK_AT_LEAST = 1.5


@pytest.mark.timeout(900)
def test_the_benchmark_quick_run_prints_its_figures() -> None:
    # Under the benchmark lock like every benchmark run: it may wait for another.
    bench = Process(
        ["flock", BENCH_LOCK, sys.executable, str(ROOT / "scripts" / "bench_transfer.py"),
         "--quick", "--no-browser"]
    )  # fmt: skip
    bench.wait_for(r"python -> python", timeout=600)
    bench.wait_for(r"python -> python.*stock.*Mbit/s", timeout=240)
    bench.wait_for(r"python -> python.*fast.*Mbit/s", timeout=240)
    ratio = bench.wait_for(r"fast / stock = ([0-9.]+)x", timeout=240)
    assert bench.wait(60) == 0, "\n".join(bench.lines[-30:])
    # The README's headline: the fast path several times stock (2.8x median at 256 MiB).
    assert float(ratio[1]) >= FAST_OVER_STOCK_AT_LEAST, "\n".join(bench.lines[-30:])
    assert any(
        re.search(r"\| python -> python \| fast \| 8 \| [0-9.]+ \| yes", line)
        for line in bench.lines
    )


def test_the_peer_refuses_an_unknown_sctp_mode_with_a_clear_message() -> None:
    peer = Process([str(BIN / "webcam-peer"), "--login", "alice", "--sctp", "turbo"])
    assert peer.wait(30) == 2
    output = "\n".join(peer.lines)
    assert "--sctp: invalid choice: 'turbo'" in output
    assert "Traceback" not in output


# ---- with Chromium ---------------------------------------------------------------------
BROWSER_BYTES = 8 * 1024 * 1024
PAGE_JS = (ROOT / "scripts" / "transfer_page.js").read_text()


def transfer_peer(server: SignalingServer, login: str, *args: str) -> Process:
    return Process(
        [sys.executable, str(ROOT / "scripts" / "transfer_peer.py"), "--server", server.ws_url,
         "--login", login, "--sctp", "fast", "--ice-host", "127.0.0.1", *args]
    )  # fmt: skip


def report(process: Process) -> dict[str, Any]:
    assert process.wait(60) == 0, "\n".join(process.lines[-20:])
    last = [line for line in process.lines if line.startswith("{")][-1]
    data: dict[str, Any] = json.loads(last)
    return data


@pytest.mark.browser
async def test_fast_python_sends_to_chromium_intact(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    page = await open_page(browser, signaling_server.http_url, "receiver")
    receiving = asyncio.ensure_future(
        page.evaluate(
            PAGE_JS,
            {"url": signaling_server.ws_url, "size": BROWSER_BYTES, "role": "receive",
             "login": "pagerecv", "other": ""},
        )
    )  # fmt: skip
    await asyncio.sleep(1.0)  # the page logs in
    sender = transfer_peer(
        signaling_server, "pysend", "--send-to", "pagerecv", "--bytes", str(BROWSER_BYTES)
    )
    sent = await asyncio.to_thread(report, sender)
    got = await asyncio.wait_for(receiving, 60)
    assert got["bytes"] == BROWSER_BYTES
    assert got["sha256"] == sent["sha256"] == sent["receiver_sha256"]


@pytest.mark.browser
async def test_chromium_sends_to_fast_python_intact(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    receiver = transfer_peer(signaling_server, "pyrecv")
    receiver.wait_for("logged in")
    page = await open_page(browser, signaling_server.http_url, "sender")
    sent = await asyncio.wait_for(
        page.evaluate(
            PAGE_JS,
            {"url": signaling_server.ws_url, "size": BROWSER_BYTES, "role": "send",
             "login": "pagesend", "other": "pyrecv"},
        ),
        60,
    )  # fmt: skip
    got = await asyncio.to_thread(report, receiver)
    assert got["bytes"] == BROWSER_BYTES
    assert sent["intact"] is True  # the page compared the Python side's digest with its own


# ---- in webcam-peer --------------------------------------------------------------------
def test_webcam_peer_sends_a_file_over_the_fast_path_and_reports_it(
    signaling_server: SignalingServer, tmp_path: Path
) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(payload(6 * 1024 * 1024, seed=9))
    downloads = tmp_path / "received"
    stats = ("--video", "none", "--audio", "none", "--stats-interval", "0.5")
    alice, bob = connected_pair(
        signaling_server,
        ("--send-file", str(source), *stats),
        ("--download-dir", str(downloads), "--accept-files-from", "alice", *stats),
    )
    try:
        alice.wait_for(r"sent payload\.bin .*verified by bob", timeout=120)
        line = wait_for_stats(bob, lambda s: (s.get("sctp") or {}).get("sacks_sent", 0) > 0)
    finally:
        alice.stop()
        bob.stop()
    assert (downloads / "payload.bin").read_bytes() == source.read_bytes()
    assert line["sctp"]["mode"] == "fast"
    # Delayed acknowledgement: far fewer SACKs than the ~5,400 DATA packets.
    assert line["sctp"]["sacks_sent"] < 6 * 1024 * 1024 // USERDATA_MAX_LENGTH // 2
