"""The call page in a real Chromium: two people call each other through our server."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from tests.helpers.browser_support import (
    is_fake_camera_picture,
    login_page,
    open_page,
    page_state,
    remote_video,
    remote_video_playing,
    text_of,
    wait_for_state,
)
from tests.helpers.server_support import Client
from tests.helpers.support import SignalingServer, start_signaling_server

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
    # Chromium's fake camera is 640x480; under CPU load its encoder may scale it down.
    assert is_fake_camera_picture(await remote_video_playing(alice))
    assert is_fake_camera_picture(await remote_video_playing(bob))
    assert await page_state(alice) == "in-call" and await page_state(bob) == "in-call"

    await alice.click("#hangup")
    await bob.wait_for_function("() => window.webcamPeer.state === 'idle'")
    assert "alice hung up" in await text_of(bob, "#status")
    assert await bob.evaluate("document.getElementById('remote').srcObject") is None

    # A second call, and a third user who finds bob busy.
    await bob.fill("#callee", "alice")
    await bob.click("#call")
    await remote_video_playing(alice)
    carol = await login_page(browser, url, "carol")
    await carol.fill("#callee", "bob")
    await carol.click("#call")
    await carol.wait_for_function("() => document.getElementById('error').textContent !== ''")
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
    await page.wait_for_function("() => document.getElementById('error').textContent !== ''")
    assert "usernames are 1-32" in await text_of(page, "#error")
    assert await page.locator("b").count() == 0  # nothing was injected as HTML
    assert await page_state(page) == "logged-out"

    await login_page(browser, signaling_server.http_url, "dave")
    await page.fill("#username", "dave")
    await page.click("#login")
    await page.wait_for_function("() => document.getElementById('error').textContent !== ''")
    assert "taken" in await text_of(page, "#error")
    # The name is still free to fix: a different one works on the same page.
    await page.fill("#username", "erin")
    await page.click("#login")
    await page.wait_for_function("() => window.webcamPeer.state === 'idle'")


async def test_calling_nobody_online_is_explained(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    page = await login_page(browser, signaling_server.http_url, "frank")
    await page.fill("#callee", "nobody")
    await page.click("#call")
    await page.wait_for_function("() => document.getElementById('error').textContent !== ''")
    assert "no such user is online" in await text_of(page, "#error")
    await page.wait_for_function("() => window.webcamPeer.state === 'idle'")


async def test_call_hang_up_and_busy_as_the_users_see_it(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    """Alice calls bob by typing his name; both see each other; alice hangs up; a new
    call; carol, calling bob meanwhile, is told he is busy and the call carries on."""
    url = signaling_server.http_url
    errors: list[str] = []
    alice = await login_page(browser, url, "alice", errors)
    bob = await login_page(browser, url, "bob", errors)
    assert await alice.is_disabled("#hangup") and await alice.is_enabled("#call")

    await alice.fill("#callee", "bob")
    await alice.click("#call")
    await wait_for_state(alice, "in-call")
    await wait_for_state(bob, "in-call")
    # Bob's page says who is calling, on the status line and on the video.
    await expect(bob.locator("#status")).to_contain_text("alice")
    await expect(bob.locator("#remote-label")).to_have_text("alice")
    await expect(alice.locator("#remote-label")).to_have_text("bob")
    # Chromium's fake camera is 640x480; under CPU load its encoder may scale it down.
    assert is_fake_camera_picture(await remote_video_playing(alice))
    assert is_fake_camera_picture(await remote_video_playing(bob))
    await expect(alice.locator("#status")).to_contain_text("In a call with bob")
    await expect(bob.locator("#status")).to_contain_text("In a call with alice")
    assert await alice.is_enabled("#hangup") and await alice.is_disabled("#call")
    await expect(alice.locator("#local")).to_have_js_property("muted", True)
    assert await alice.evaluate("document.getElementById('local').videoWidth") > 0

    await alice.click("#hangup")
    await wait_for_state(bob, "idle")
    await expect(bob.locator("#status")).to_contain_text("alice hung up")
    await expect(bob.locator("#error")).to_have_text("")
    for page in (alice, bob):
        assert await page_state(page) == "idle"
        assert not (await remote_video(page)).showing  # #remote is blank again
        assert await page.evaluate("window.webcamPeer.pc") is None
        assert await page.is_disabled("#hangup") and await page.is_enabled("#call")

    # A new call, the same way round.
    await alice.click("#call")  # #callee still says bob
    await remote_video_playing(alice)
    await remote_video_playing(bob)

    carol = await login_page(browser, url, "carol", errors)
    await carol.fill("#callee", "bob")
    await carol.click("#call")
    await expect(carol.locator("#error")).to_contain_text("the user is in another call")
    await expect(carol.locator("#error")).to_contain_text("bob")
    await wait_for_state(carol, "idle")
    assert not (await remote_video(carol)).showing
    assert await carol.is_enabled("#call")
    # Alice and bob noticed nothing: still in their call, video still flowing.
    assert await page_state(alice) == "in-call" and await page_state(bob) == "in-call"
    await expect(alice.locator("#error")).to_have_text("")
    await expect(bob.locator("#error")).to_have_text("")
    await remote_video_playing(alice)
    await remote_video_playing(bob)
    assert errors == []


async def test_users_list_shows_the_others(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    url = signaling_server.http_url
    alice = await login_page(browser, url, "alice")
    users = alice.locator("#users li")
    await expect(users).to_have_count(0)
    await expect(alice.locator("#users-empty")).to_be_visible()

    bob = await login_page(browser, url, "bob")
    carol = await login_page(browser, url, "carol")
    # Everyone sees the others (within a refresh or two), never themselves.
    await expect(users).to_have_text(["bob", "carol"], timeout=10_000)
    await expect(bob.locator("#users li")).to_have_text(["alice", "carol"])
    await expect(carol.locator("#users li")).to_have_text(["alice", "bob"])
    await expect(alice.locator("#users-empty")).to_be_hidden()
    await expect(alice.locator("#me")).to_have_text("alice")

    # Clicking a name fills the call box.
    await alice.click("#users button:text-is('carol')")
    await expect(alice.locator("#callee")).to_have_value("carol")

    # Someone who leaves drops off the list.
    await carol.context.close()
    await expect(users).to_have_text(["bob"], timeout=10_000)


async def test_html_in_a_username_stays_text(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    page = await open_page(browser, signaling_server.http_url)
    await page.fill("#username", "<b>x</b>")
    await page.click("#login")
    error = page.locator("#error")
    await expect(error).to_contain_text("usernames are 1-32")
    await expect(error).to_contain_text("<b>x</b>")  # the name, shown literally
    assert await page.evaluate("document.querySelectorAll('b').length") == 0
    assert await page_state(page) == "logged-out"
    assert await page.evaluate("window.webcamPeer.username") is None
    await expect(page.locator("#login")).to_be_enabled()


async def test_callee_declining_is_shown(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    """A callee that is not a browser (a bot, a Python peer) may refuse with a reason."""
    alice = await login_page(browser, signaling_server.http_url, "alice")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(signaling_server.ws_url)
        robot = Client(ws)
        assert (await robot.login("robot"))["success"] is True
        await alice.fill("#callee", "robot")
        await alice.click("#call")
        await wait_for_state(alice, "calling")
        await expect(alice.locator("#status")).to_contain_text("Calling robot")
        offer = await robot.recv()
        assert offer["type"] == "offer" and offer["username"] == "alice"
        assert offer["offer"]["type"] == "offer" and "m=video" in offer["offer"]["sdp"]
        await robot.send({"type": "close", "otherUsername": "alice", "reason": "declined"})
        await wait_for_state(alice, "idle")
        await expect(alice.locator("#error")).to_contain_text("robot declined the call")
        await ws.close()


async def test_page_logs_in_again_after_the_server_restarts(browser: Browser) -> None:
    first = start_signaling_server()
    restarted: SignalingServer | None = None
    try:
        page = await login_page(browser, first.http_url, "alice")
        first.process.stop()
        await wait_for_state(page, "logged-out")
        await expect(page.locator("#status")).to_contain_text("reconnecting")
        restarted = start_signaling_server(port=first.port)
        await wait_for_state(page, "idle")  # back, under the same name
        assert await page.evaluate("window.webcamPeer.username") == "alice"
        await expect(page.locator("#error")).to_have_text("")
        bob = await login_page(browser, restarted.http_url, "bob")
        await expect(bob.locator("#users li")).to_have_text(["alice"])
    finally:
        first.process.stop()
        if restarted is not None:
            restarted.process.stop()


async def test_token_field_when_the_server_wants_one(
    browser: Browser, start_server: Callable[..., SignalingServer]
) -> None:
    server = start_server("--token", "s3cret")
    page = await open_page(browser, server.http_url)
    await expect(page.locator("#token")).to_be_visible()
    await page.fill("#username", "alice")
    await page.fill("#token", "wrong")
    await page.click("#login")
    await expect(page.locator("#error")).to_contain_text("wrong or missing token")
    assert await page_state(page) == "logged-out"
    await page.fill("#token", "s3cret")
    await page.click("#login")
    await wait_for_state(page, "idle")
    await expect(page.locator("#error")).to_have_text("")
