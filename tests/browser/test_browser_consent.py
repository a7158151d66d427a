"""The page asks before it answers (docs/security.md): an incoming call shows Accept and
Decline with the caller's name, and the camera and microphone are taken only after
Accept. Real Chromium pages, a real server, a real webcam-peer and raw protocol clients."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from tests.helpers.browser_support import login_page, remote_video_playing, wait_for_state
from tests.helpers.peer_support import NO_MEDIA, start_peer
from tests.helpers.server_support import Client
from tests.helpers.support import SignalingServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Counts what the page asks of the camera and microphone, before app.js runs.
_COUNT_GET_USER_MEDIA_JS = """
window.mediaRequests = 0;
const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (constraints) => {
  window.mediaRequests += 1;
  return original(constraints);
};
"""


async def ringing_page(browser: Browser, url: str, name: str) -> Page:
    """A page that counts its getUserMedia calls and whose user answers by hand."""
    context = await browser.new_context()
    await context.add_init_script(_COUNT_GET_USER_MEDIA_JS)
    return await login_page(context, url, name, accept_calls=False)


async def nothing_taken(page: Page) -> None:
    """No camera or microphone asked for, no connection made, no local track anywhere."""
    assert await page.evaluate("window.mediaRequests") == 0
    assert await page.evaluate("window.webcamPeer.pc") is None
    assert await page.evaluate("document.getElementById('local').srcObject") is None


async def test_a_call_rings_and_the_camera_starts_only_after_accept(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    url = signaling_server.http_url
    errors: list[str] = []
    alice = await login_page(browser, url, "alice", errors)
    bob = await ringing_page(browser, url, "bob")
    await alice.fill("#callee", "bob")
    await alice.click("#call")

    incoming = bob.locator("#incoming")
    await expect(incoming).to_be_visible()
    await expect(bob.locator("#incoming-name")).to_have_text("alice")
    await expect(bob.locator("#status")).to_contain_text("alice is calling you")
    await expect(bob.locator("#accept-call")).to_be_visible()
    await expect(bob.locator("#decline-call")).to_be_visible()
    await asyncio.sleep(1.0)  # alice's candidates trickle in meanwhile
    await nothing_taken(bob)
    assert await bob.evaluate("window.webcamPeer.state") == "idle"
    assert await alice.evaluate("window.webcamPeer.state") == "calling"

    await bob.click("#accept-call")
    await expect(incoming).to_be_hidden()
    await wait_for_state(bob, "in-call")
    await wait_for_state(alice, "in-call")
    await remote_video_playing(alice)
    await remote_video_playing(bob)
    assert await bob.evaluate("window.mediaRequests") == 1
    assert errors == []


async def test_declining_a_python_caller_makes_it_exit_7(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    carol = await ringing_page(browser, signaling_server.http_url, "carol")
    alice = start_peer(signaling_server, "--login", "alice", "--call", "carol", *NO_MEDIA)
    try:
        await expect(carol.locator("#incoming-name")).to_have_text("alice", timeout=20_000)
        await nothing_taken(carol)
        await carol.click("#decline-call")
        await expect(carol.locator("#incoming")).to_be_hidden()
        await expect(carol.locator("#status")).to_have_text("Declined the call from alice.")
        assert await asyncio.to_thread(alice.wait, 20.0) == 7
        assert any("declined" in line for line in alice.lines), alice.lines
        await nothing_taken(carol)
        assert await carol.evaluate("window.webcamPeer.state") == "idle"
    finally:
        alice.stop()


async def test_an_unanswered_call_is_declined_after_30_s(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    context = await browser.new_context()
    await context.add_init_script(_COUNT_GET_USER_MEDIA_JS)
    page = await context.new_page()
    await page.clock.install()  # the page's timers, driven by the test
    await page.goto(signaling_server.http_url + "/")
    await page.fill("#username", "bob")
    await page.click("#login")
    await expect(page.locator("#me")).to_have_text("bob")
    async with aiohttp.ClientSession() as session:
        mallory = Client(await session.ws_connect(signaling_server.ws_url))
        assert (await mallory.login("mallory"))["success"] is True
        await mallory.send(
            {"type": "offer", "otherUsername": "bob", "offer": {"type": "offer", "sdp": "v=0\r\n"}}
        )
        await expect(page.locator("#incoming-name")).to_have_text("mallory")
        await page.clock.run_for(29_000)
        await expect(page.locator("#incoming")).to_be_visible()
        await page.clock.run_for(2_000)
        await expect(page.locator("#incoming")).to_be_hidden()
        await expect(page.locator("#status")).to_have_text("Missed a call from mallory.")
        close = await mallory.recv()
        while close["type"] == "users":
            close = await mallory.recv()
        assert close == {"type": "close", "username": "bob", "reason": "declined"}, close
        await nothing_taken(page)


async def test_a_caller_hanging_up_while_it_rings_ends_the_ringing(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    bob = await ringing_page(browser, signaling_server.http_url, "bob")
    async with aiohttp.ClientSession() as session:
        mallory = Client(await session.ws_connect(signaling_server.ws_url))
        assert (await mallory.login("mallory"))["success"] is True
        offer = {"type": "offer", "sdp": "v=0\r\n"}
        await mallory.send({"type": "offer", "otherUsername": "bob", "offer": offer})
        await expect(bob.locator("#incoming-name")).to_have_text("mallory")
        await mallory.send({"type": "close", "otherUsername": "bob"})
        await expect(bob.locator("#incoming")).to_be_hidden()
        await expect(bob.locator("#status")).to_have_text(
            "mallory hung up before the call was answered."
        )
        await nothing_taken(bob)


async def test_remote_names_are_drawn_printable(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    """The server lets only A-Za-z0-9_.- through; the page's filter holds without it."""
    page = await login_page(browser, signaling_server.http_url, "bob", accept_calls=False)
    drawn = await page.evaluate(
        """async () => {
            const { shown } = await import('/static/consent.js');
            return [shown('\\x1b]0;PWNED\\x07<b>x</b>'), shown('a\\u202eb\\u200bc d'),
                    shown('x'.repeat(100)).length];
        }"""
    )
    assert drawn == ["\ufffd]0;PWNED\ufffd<b>x</b>", "a\ufffdb\ufffdc d", 65]


# ---- files: announced, taken only after Accept, 8 at a time, 1 GiB each ---------------

# A script in alice's page opens file channels and says what a test wants on them.
_SENDER_JS = """
([header]) => {
  window.sent = window.sent || [];
  const channel = window.webcamPeer.pc.createDataChannel('file');
  const entry = { channel, replies: [], closed: false };
  channel.onmessage = (event) => entry.replies.push(JSON.parse(event.data));
  channel.onclose = () => { entry.closed = true; };
  channel.onopen = () => channel.send(JSON.stringify({ type: 'file', ...header }));
  window.sent.push(entry);
  return window.sent.length - 1;
}
"""


async def offer_file(page: Page, name: str, size: int) -> int:
    number: int = await page.evaluate(_SENDER_JS, [{"name": name, "size": size}])
    return number


async def replies_to(page: Page, number: int, count: int = 1) -> list[dict[str, str]]:
    await page.wait_for_function(
        "([n, count]) => window.sent[n].replies.length >= count", arg=[number, count]
    )
    replies: list[dict[str, str]] = await page.evaluate("(n) => window.sent[n].replies", number)
    return replies


async def pages_in_a_call(
    browser: Browser, url: str, *, bob_reads_blobs: bool = False
) -> tuple[Page, Page]:
    """Alice calls bob; bob accepts the call by hand and answers files by hand too.

    ``bob_reads_blobs``: the test fetches bob's download links (``blob:`` URLs), which
    the page's CSP (``connect-src 'self'``) refuses to any script in the page; the page
    itself never fetches them, so only that test's bob runs without the CSP."""
    alice = await login_page(browser, url, "alice")
    bob_side = await browser.new_context(bypass_csp=True) if bob_reads_blobs else browser
    bob = await login_page(bob_side, url, "bob", accept_calls=False)
    await alice.fill("#callee", "bob")
    await alice.click("#call")
    await bob.click("#accept-call")
    await expect(bob.locator("#chat-input")).to_be_enabled()
    await expect(alice.locator("#chat-input")).to_be_enabled()
    return alice, bob


async def test_a_file_is_taken_only_after_accept_and_its_url_goes_with_its_row(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    alice, bob = await pages_in_a_call(browser, signaling_server.http_url, bob_reads_blobs=True)
    data = bytes([7]) * 3000
    first = await offer_file(alice, "early.bin", 3000)
    row = bob.locator("#transfers .transfer[data-direction='in']").first
    await expect(row.locator("button.accept")).to_be_visible()
    await expect(row.locator("button.reject")).to_be_visible()
    await expect(row.locator(".name")).to_have_text("early.bin")
    await expect(row.locator(".outcome")).to_contain_text("alice offers this file")
    # Bytes before Accept are a broken protocol: nothing is kept.
    await alice.evaluate("(n) => window.sent[n].channel.send(new Uint8Array(1000))", first)
    assert await replies_to(alice, first) == [{"type": "cancel", "reason": "protocol-error"}]
    await expect(row).to_have_attribute("data-state", "failed")
    await expect(row.locator(".outcome")).to_have_text("protocol-error, nothing saved")
    await expect(row.locator("button.accept")).to_have_count(0)

    second = await offer_file(alice, "wanted.bin", 3000)
    row = bob.locator("#transfers .transfer[data-direction='in']").first
    await expect(row.locator(".name")).to_have_text("wanted.bin")
    await asyncio.sleep(0.5)
    assert await alice.evaluate("(n) => window.sent[n].replies", second) == []
    await row.locator("button.accept").click()
    assert await replies_to(alice, second) == [{"type": "accept"}]
    digest = hashlib.sha256(data).hexdigest()
    await alice.evaluate(
        """([n, digest]) => {
            const channel = window.sent[n].channel;
            channel.send(new Uint8Array(3000).fill(7));
            channel.send(JSON.stringify({ type: 'end', sha256: digest }));
        }""",
        [second, digest],
    )
    assert (await replies_to(alice, second, 2))[1] == {"type": "done", "sha256": digest}
    await expect(row).to_have_attribute("data-state", "done")
    href = await row.locator("a.download").get_attribute("href")
    assert href and href.startswith("blob:")
    fetch_js = (
        "(url) => fetch(url).then((r) => r.arrayBuffer()).then((b) => b.byteLength, () => -1)"
    )
    assert await bob.evaluate(fetch_js, href) == 3000
    await row.locator("button.clear").click()
    await expect(bob.locator("#transfers .transfer .name", has_text="wanted.bin")).to_have_count(0)
    assert await bob.evaluate(fetch_js, href) == -1  # the object URL was revoked


async def test_a_rejected_file_is_cancelled(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    alice, bob = await pages_in_a_call(browser, signaling_server.http_url)
    number = await offer_file(alice, "unwanted.exe", 10)
    row = bob.locator("#transfers .transfer[data-direction='in']").first
    await row.locator("button.reject").click()
    assert await replies_to(alice, number) == [{"type": "cancel", "reason": "cancelled"}]
    await expect(row).to_have_attribute("data-state", "cancelled")
    await expect(row.locator(".outcome")).to_have_text("rejected, nothing saved")


async def test_eight_incoming_files_at_once_and_1_gib_each(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    alice, bob = await pages_in_a_call(browser, signaling_server.http_url)
    big = await offer_file(alice, "big.bin", 2**30 + 1)
    assert await replies_to(alice, big) == [{"type": "cancel", "reason": "too-large"}]
    await expect(bob.locator(".transfer[data-state='failed'] .outcome")).to_contain_text(
        "too-large, nothing saved"
    )
    waiting = [await offer_file(alice, f"f{i}.bin", 10) for i in range(8)]
    await expect(bob.locator(".transfer[data-waiting]")).to_have_count(8)
    ninth = await offer_file(alice, "ninth.bin", 10)
    assert await replies_to(alice, ninth) == [{"type": "cancel", "reason": "too-many"}]
    await expect(bob.locator("#notice")).to_contain_text("too-many")
    await expect(bob.locator(".transfer[data-waiting]")).to_have_count(8)
    for number in waiting:
        assert await alice.evaluate("(n) => window.sent[n].replies", number) == []
    # One slot freed (rejected), and a tenth file is announced again.
    await bob.locator(".transfer[data-waiting] button.reject").first.click()
    await offer_file(alice, "tenth.bin", 10)
    await expect(bob.locator(".transfer[data-waiting] .name", has_text="tenth.bin")).to_have_count(
        1
    )
