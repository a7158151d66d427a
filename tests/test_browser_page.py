"""The call page in a real Chromium: two people call each other through our server."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from .browser_support import login_page, open_page, page_state, remote_video_playing, text_of
from .support import SignalingServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_two_pages_call_hang_up_and_busy(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    url = signaling_server.http_url
    alice = await login_page(browser, url, "alice")
    bob = await login_page(browser, url, "bob")

    # Each sees the other in the list of users online, and a click fills the call box.
    await alice.wait_for_selector("#users button:text-is('bob')")
    await alice.click("#users button:text-is('bob')")
    assert await alice.input_value("#callee") == "bob"

    await alice.click("#call")
    assert await remote_video_playing(alice) == (640, 480)  # bob's fake camera
    assert await remote_video_playing(bob) == (640, 480)
    assert await page_state(alice) == "in-call" and await page_state(bob) == "in-call"

    await alice.click("#hangup")
    await bob.wait_for_function("window.webcamPeer.state === 'idle'")
    assert "alice hung up" in await text_of(bob, "#status")
    assert await bob.evaluate("document.getElementById('remote').srcObject") is None

    # A second call, and a third user who finds bob busy.
    await bob.fill("#callee", "alice")
    await bob.click("#call")
    await remote_video_playing(alice)
    carol = await login_page(browser, url, "carol")
    await carol.fill("#callee", "bob")
    await carol.click("#call")
    await carol.wait_for_function("document.getElementById('error').textContent !== ''")
    assert "in another call" in await text_of(carol, "#error")
    assert await page_state(carol) == "idle"
    assert await page_state(alice) == "in-call" and await page_state(bob) == "in-call"
    await remote_video_playing(bob)  # the call itself carries on


async def test_login_errors_are_shown_as_text(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    page = await open_page(browser, signaling_server.http_url)
    await page.fill("#username", "<b>x</b>")
    await page.click("#login")
    await page.wait_for_function("document.getElementById('error').textContent !== ''")
    assert "usernames are 1-32" in await text_of(page, "#error")
    assert await page.locator("b").count() == 0  # nothing was injected as HTML
    assert await page_state(page) == "logged-out"

    await login_page(browser, signaling_server.http_url, "dave")
    await page.fill("#username", "dave")
    await page.click("#login")
    await page.wait_for_function("document.getElementById('error').textContent !== ''")
    assert "taken" in await text_of(page, "#error")
    # The name is still free to fix: a different one works on the same page.
    await page.fill("#username", "erin")
    await page.click("#login")
    await page.wait_for_function("window.webcamPeer.state === 'idle'")


async def test_calling_nobody_online_is_explained(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    page = await login_page(browser, signaling_server.http_url, "frank")
    await page.fill("#callee", "nobody")
    await page.click("#call")
    await page.wait_for_function("document.getElementById('error').textContent !== ''")
    assert "no such user is online" in await text_of(page, "#error")
    await page.wait_for_function("window.webcamPeer.state === 'idle'")
