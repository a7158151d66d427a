"""Chat and files between a Python peer (webcam-peer) and the call page in Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.helpers.browser_support import login_page, wait_for_state
from tests.helpers.datachannel_support import (
    BIG_TRANSFER_TIMEOUT,
    MiB,
    chat_lines,
    chat_ready,
    make_file,
    save_download,
    say,
    send_file,
    send_lies,
    transfer_row,
    wait_for_chat_line,
    wait_for_progress,
    wait_for_transfer,
)
from tests.helpers.peer_support import NO_MEDIA, sha256_of, start_peer
from tests.helpers.support import Process, SignalingServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def wait_line(process: Process, pattern: str, within: float = 30.0) -> str:
    match = await asyncio.to_thread(process.wait_for, pattern, within)
    return match.group(0)


async def python_calls_page(
    browser: Browser, server: SignalingServer, *args: str
) -> tuple[Page, Process]:
    """carol on the page; alice, a Python peer, calls her; both chats open."""
    carol = await login_page(browser, server.http_url, "carol")
    alice = start_peer(server, "--login", "alice", "--call", "carol", *NO_MEDIA, *args)
    await wait_line(alice, "chat with carol open")
    await chat_ready(carol)
    return carol, alice


async def page_calls_python(
    browser: Browser, server: SignalingServer, *args: str
) -> tuple[Page, Process]:
    """bob, a Python peer, waits; carol calls him from the page; both chats open."""
    bob = start_peer(server, "--login", "bob", *NO_MEDIA, "--accept-files-from", "carol", *args)
    await wait_line(bob, "waiting for calls")
    carol = await login_page(browser, server.http_url, "carol")
    await carol.fill("#callee", "bob")
    await carol.click("#call")
    await wait_line(bob, "chat with carol open")
    await chat_ready(carol)
    return carol, bob


def no_tracebacks(process: Process) -> None:
    assert not any("Traceback" in line for line in process.drain()), "\n".join(process.lines)


@pytest.mark.parametrize("caller", ["python", "page"])
async def test_chat_both_ways(
    browser: Browser, signaling_server: SignalingServer, caller: str
) -> None:
    if caller == "python":
        carol, peer = await python_calls_page(browser, signaling_server)
        name = "alice"
    else:
        carol, peer = await page_calls_python(browser, signaling_server)
        name = "bob"
    try:
        peer.type_line("hello from python ✓")
        await wait_for_chat_line(carol, "them", "hello from python ✓")
        await expect(carol.locator("#chat-log li[data-from='them'] .who")).to_have_text([name])
        await say(carol, "hello from the page <i>é</i>")
        await wait_line(peer, r"\] carol: hello from the page <i>é</i>$")

        # What each side refuses of the other: over the limit, and not the format.
        await carol.evaluate(
            """() => {
                const channel = window.webcamPeer.chatChannel;
                channel.send(JSON.stringify({ type: 'chat', text: 'y'.repeat(5000) }));
                channel.send(JSON.stringify({ type: 'chat', text: 'after' }));
            }"""
        )
        await wait_line(peer, r"\] carol: after$")
        assert not any("yyyy" in line for line in peer.drain())
        assert any("refused" in line and "5000" in line for line in peer.lines), peer.lines
        peer.type_line("x" * 4097)
        await wait_line(peer, r"too long \(4097 bytes")
        peer.type_line("still talking")
        await wait_for_chat_line(carol, "them", "still talking")
        assert not any(len(line["text"]) > 4096 for line in await chat_lines(carol))

        await carol.click("#hangup")
        await wait_line(peer, "ended")
    finally:
        peer.stop()
    no_tracebacks(peer)


async def test_100_mib_python_to_page(
    browser: Browser, signaling_server: SignalingServer, tmp_path: Path
) -> None:
    big = make_file(tmp_path / "hundred.bin", 100 * MiB)
    carol, alice = await python_calls_page(browser, signaling_server, "--send-file", str(big.path))
    try:
        row = await wait_for_transfer(carol, "in", "done", within=BIG_TRANSFER_TIMEOUT)
        await expect(row).to_have_attribute("data-sha256", big.sha256)
        await wait_line(alice, rf"sha256 {big.sha256}: verified by carol", within=60)
        saved = await save_download(carol, row, tmp_path / "carol")
        assert saved.name == "hundred.bin"
        assert saved.stat().st_size == big.size and sha256_of(saved) == big.sha256
    finally:
        alice.stop()
    no_tracebacks(alice)


async def test_100_mib_page_to_python(
    browser: Browser, signaling_server: SignalingServer, tmp_path: Path
) -> None:
    big = make_file(tmp_path / "hundred.bin", 100 * MiB)
    downloads = tmp_path / "bob"
    downloads.mkdir()
    (downloads / "hundred.bin").write_bytes(b"an older file of the same name")
    carol, bob = await page_calls_python(
        browser, signaling_server, "--download-dir", str(downloads)
    )
    try:
        await send_file(carol, big.path)
        line = await wait_line(
            bob, r"received hundred\.bin from carol -> .*", within=BIG_TRANSFER_TIMEOUT
        )
        assert f"sha256 {big.sha256} verified" in line
        row = await wait_for_transfer(carol, "out", "done")
        await expect(row.locator(".outcome")).to_contain_text("bob verified its SHA-256")
        # Nothing overwritten: the new file took the next free name.
        saved = downloads / "hundred (1).bin"
        assert (downloads / "hundred.bin").read_bytes() == b"an older file of the same name"
        assert saved.stat().st_size == big.size and sha256_of(saved) == big.sha256
        assert sorted(p.name for p in downloads.iterdir()) == ["hundred (1).bin", "hundred.bin"]
    finally:
        bob.stop()
    no_tracebacks(bob)


@contextlib.asynccontextmanager
async def python_sending_to_page(
    browser: Browser, server: SignalingServer, tmp_path: Path
) -> AsyncIterator[tuple[Page, Process, Locator]]:
    """alice (Python) sends carol's page 200 MiB; yields once the page shows progress,
    with the page's row for it; alice must print no traceback."""
    big = make_file(tmp_path / "big.bin", 200 * MiB)
    carol, alice = await python_calls_page(browser, server, "--send-file", str(big.path))
    try:
        row = transfer_row(carol, "in")
        await wait_for_progress(row, within=60)
        yield carol, alice, row
    finally:
        alice.stop()
    no_tracebacks(alice)


@contextlib.asynccontextmanager
async def page_sending_to_python(
    browser: Browser, server: SignalingServer, tmp_path: Path
) -> AsyncIterator[tuple[Page, Process, Path]]:
    """carol's page sends bob (Python) 200 MiB; yields once a tenth has arrived, with
    bob's download folder; bob must print no traceback."""
    big = make_file(tmp_path / "big.bin", 200 * MiB)
    downloads = tmp_path / "bob"
    downloads.mkdir()
    carol, bob = await page_calls_python(browser, server, "--download-dir", str(downloads))
    try:
        await send_file(carol, big.path)
        await wait_line(bob, r"receiving big\.bin: 10%", within=BIG_TRANSFER_TIMEOUT)
        yield carol, bob, downloads
    finally:
        bob.stop()
    no_tracebacks(bob)


async def test_page_hangs_up_mid_transfer_python_keeps_nothing(
    browser: Browser, signaling_server: SignalingServer, tmp_path: Path
) -> None:
    async with page_sending_to_python(browser, signaling_server, tmp_path) as sending:
        carol, bob, downloads = sending
        await carol.click("#hangup")
        await wait_line(bob, r"transfer of big\.bin from carol failed")
        await wait_for_transfer(carol, "out", "failed")
        await wait_line(bob, "waiting for calls")
        assert list(downloads.iterdir()) == []  # no partial file, no temporary left behind


async def test_page_cancels_what_python_sends(
    browser: Browser, signaling_server: SignalingServer, tmp_path: Path
) -> None:
    async with python_sending_to_page(browser, signaling_server, tmp_path) as sending:
        carol, alice, row = sending
        await row.locator("button.cancel").click()
        await wait_for_transfer(carol, "in", "cancelled")
        await wait_line(alice, r"transfer of big\.bin to carol cancelled by carol")
        assert await carol.locator("a.download").count() == 0
        # The call goes on: chat still works.
        await say(carol, "sorry, wrong file")
        await wait_line(alice, r"\] carol: sorry, wrong file$")
        await carol.click("#hangup")
        await wait_for_state(carol, "idle")


@pytest.mark.parametrize(
    ("size", "chunks", "lie", "reason"),
    [
        (3000, [1000, 1000, 1000], "hash", "hash-mismatch"),
        (5000, [1000, 1000, 1000], "", "size-mismatch"),
        (1500, [1000, 1000], "", "size-mismatch"),
    ],
)
async def test_python_refuses_a_page_that_lies(
    browser: Browser,
    signaling_server: SignalingServer,
    tmp_path: Path,
    size: int,
    chunks: list[int],
    lie: str,
    reason: str,
) -> None:
    downloads = tmp_path / "bob"
    downloads.mkdir()
    carol, bob = await page_calls_python(
        browser, signaling_server, "--download-dir", str(downloads)
    )
    try:
        replies = await send_lies(carol, {"name": "lie.bin", "size": size}, chunks, lie)
        assert replies[0] == {"type": "accept"}
        assert replies[-1] == {"type": "cancel", "reason": reason}, replies
        await wait_line(bob, rf"transfer of lie\.bin from carol failed: {reason}")
        assert list(downloads.iterdir()) == []
    finally:
        bob.stop()
    no_tracebacks(bob)


async def test_python_hangs_up_mid_transfer_page_offers_nothing(
    browser: Browser, signaling_server: SignalingServer, tmp_path: Path
) -> None:
    async with python_sending_to_page(browser, signaling_server, tmp_path) as sending:
        carol, alice, row = sending
        alice.signal(signal.SIGINT)  # Ctrl-C: the Python peer hangs up and quits
        await wait_for_transfer(carol, "in", "failed")
        await expect(row.locator(".outcome")).to_contain_text("nothing saved")
        assert await carol.locator("a.download").count() == 0
        await wait_for_state(carol, "idle")
        await wait_line(alice, r"transfer of big\.bin to carol failed")
        assert await asyncio.to_thread(alice.wait) == 0


async def test_python_cancels_what_the_page_sends(
    browser: Browser, signaling_server: SignalingServer, tmp_path: Path
) -> None:
    async with page_sending_to_python(browser, signaling_server, tmp_path) as sending:
        carol, bob, downloads = sending
        bob.type_line("/cancel")
        row = await wait_for_transfer(carol, "out", "cancelled")
        await expect(row.locator(".outcome")).to_have_text("bob cancelled")
        await wait_line(bob, r"transfer of big\.bin from carol cancelled")
        assert list(downloads.iterdir()) == []
        bob.type_line("carry on")  # the call and its chat go on
        await wait_for_chat_line(carol, "them", "carry on")
