"""Helpers for the browser tests: Debian's Chromium driven by Playwright, the call page.

``tests/conftest.py`` imports the ``browser`` fixture for the whole suite. Playwright already passes
``--headless`` (``headless=True``), ``--no-sandbox`` (``chromium_sandbox`` is off by
default), ``--no-first-run``, ``--disable-background-networking``,
``--disable-component-update`` and ``--disable-sync``; the rest is in
:data:`CHROMIUM_ARGS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.helpers.peer_support import start_peer
from tests.helpers.support import Process, SignalingServer

logger = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS: tuple[str, ...] = (
    "--disable-gpu",
    "--disable-quic",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
)
# The page's states, as window.webcamPeer.state reports them.
PAGE_STATES = ("logged-out", "idle", "calling", "in-call")
DEFAULT_TIMEOUT = 20.0

# The one place tests answer the page's incoming calls and files: a person who presses
# Accept as soon as a call rings or a file is offered. Tests of the asking itself open
# the page without it.
_PRESS_ACCEPT_JS = """
setInterval(() => {
  const box = document.getElementById('incoming');
  if (box && !box.hidden) document.getElementById('accept-call').click();
  const waiting = '#transfers .transfer[data-waiting] button.accept';
  for (const button of document.querySelectorAll(waiting)) button.click();
}, 100);
"""

_REMOTE_VIDEO_JS = """
async () => {
  const video = document.getElementById('remote');
  const peer = window.webcamPeer;
  const pc = peer ? peer.pc : null;
  let frames = 0;
  if (pc) {
    const stats = await pc.getStats();
    stats.forEach((report) => {
      if (report.type === 'inbound-rtp' && report.kind === 'video') {
        frames += report.framesDecoded || 0;
      }
    });
  }
  return {
    width: video.videoWidth,
    height: video.videoHeight,
    hasSource: video.srcObject !== null,
    frames: frames,
  };
}
"""


@dataclass(frozen=True)
class RemoteVideo:
    """What the #remote video shows: its size and how many frames were decoded."""

    width: int
    height: int
    has_source: bool
    frames: int

    @property
    def showing(self) -> bool:
        return self.has_source and self.width > 0


async def launch_chromium(
    playwright: Any, executable: Path = CHROMIUM, extra_args: tuple[str, ...] = ()
) -> Browser:
    """Debian's Chromium with fake camera and microphone; never a downloaded browser.
    ``executable`` may be a script that starts it elsewhere (in a network namespace)."""
    browser: Browser = await playwright.chromium.launch(
        executable_path=str(executable),
        headless=True,
        args=[*CHROMIUM_ARGS, *extra_args],
    )
    return browser


@pytest_asyncio.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """One Chromium per test; give each user their own ``browser.new_context()``.

    The test's own servers start first, so they stop after Chromium has closed: a server
    stopping while a page still holds its WebSocket takes some 2 s more to shut down.
    """
    for servers in ("signaling_server", "start_server"):
        if servers in request.fixturenames:
            request.getfixturevalue(servers)
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright)
        try:
            yield chromium
        finally:
            await chromium.close()


def watch_page(page: Page, name: str, errors: list[str] | None = None) -> None:
    """Log the page's console; collect uncaught JavaScript exceptions into ``errors``."""

    def on_console(message: Any) -> None:
        logger.debug("[%s console.%s] %s", name, message.type, message.text)

    def on_page_error(error: Any) -> None:
        logger.warning("[%s] uncaught: %s", name, error)
        if errors is not None:
            errors.append(f"{name}: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)


async def open_page(
    browser_or_context: Browser | BrowserContext,
    server_http_url: str,
    name: str = "page",
    errors: list[str] | None = None,
    accept_calls: bool = True,
) -> Page:
    """The call page, loaded and connected to the server (not logged in). A Browser gets
    a fresh context, so every page is a separate user with its own storage and devices.
    With ``accept_calls`` its user presses Accept whenever a call rings or a file comes."""
    if isinstance(browser_or_context, Browser):
        context = await browser_or_context.new_context(viewport={"width": 1280, "height": 800})
    else:
        context = browser_or_context
    page = await context.new_page()
    watch_page(page, name, errors)
    if accept_calls:
        await page.add_init_script(_PRESS_ACCEPT_JS)
    await page.goto(server_http_url + "/")
    await page.wait_for_function(
        "() => window.webcamPeer !== undefined && window.webcamPeer.connected",
        timeout=DEFAULT_TIMEOUT * 1000,
    )
    return page


async def text_of(page: Page, selector: str) -> str:
    """The text a user sees in an element ("" for none)."""
    text = await page.text_content(selector)
    return text or ""


async def page_state(page: Page) -> str:
    state: str = await page.evaluate("() => window.webcamPeer.state")
    return state


async def wait_for_state(page: Page, state: str, within: float = DEFAULT_TIMEOUT) -> None:
    assert state in PAGE_STATES, state
    try:
        await page.wait_for_function(
            "(state) => window.webcamPeer.state === state", arg=state, timeout=within * 1000
        )
    except Exception as exc:
        status = await page.locator("#status").text_content()
        error = await page.locator("#error").text_content()
        raise AssertionError(
            f"page never reached {state!r} (now {await page_state(page)!r}; "
            f"status {status!r}, error {error!r})"
        ) from exc


async def login_page(
    browser_or_context: Browser | BrowserContext,
    server_http_url: str,
    username: str,
    errors: list[str] | None = None,
    accept_calls: bool = True,
) -> Page:
    """Open the page, log in through the form like a user, and wait until it is idle."""
    page = await open_page(browser_or_context, server_http_url, username, errors, accept_calls)
    await page.fill("#username", username)
    await page.click("#login")
    await wait_for_state(page, "idle")
    return page


async def dial(page: Page, callee: str) -> None:
    """The page's user types ``callee`` and presses Call."""
    await page.fill("#callee", callee)
    await page.click("#call")


async def page_calls_peer(page: Page, caller: str, peer: Process, callee: str) -> None:
    """The page, logged in as ``caller``, calls ``peer`` (a webcam-peer logged in as
    ``callee``); returns once the peer reports this call connected."""
    since = time.monotonic()
    await dial(page, callee)
    await asyncio.to_thread(peer.wait_for, f"call with {caller} connected", since=since)


async def login_and_call(
    browser_or_context: Browser | BrowserContext,
    server_http_url: str,
    peer: Process,
    caller: str = "carol",
    callee: str = "bob",
) -> Page:
    """Once ``peer`` waits for calls, ``caller`` logs in on the page and calls it; the page,
    once the peer reports the call connected."""
    await asyncio.to_thread(peer.wait_for, "waiting for calls")
    page = await login_page(browser_or_context, server_http_url, caller)
    await page_calls_peer(page, caller, peer, callee)
    return page


async def page_calls_new_peer(
    browser: Browser, page_url: str, server: SignalingServer, *peer_args: str
) -> tuple[Process, Page]:
    """bob, a webcam-peer started with ``peer_args`` on ``server``, waits; carol calls him
    from the page at ``page_url``. bob is stopped when that fails."""
    bob = start_peer(server, "--login", "bob", *peer_args)
    try:
        carol = await login_and_call(browser, page_url, bob)
    except BaseException:
        bob.stop()
        raise
    return bob, carol


async def peer_calls_page(
    server: SignalingServer, caller: str, page_user: str, *peer_args: str
) -> Process:
    """A webcam-peer logged in as ``caller`` (with ``peer_args``) calls ``page_user``, whose
    page is logged in; returned once it reports the call connected, stopped if it fails."""
    peer = start_peer(server, "--login", caller, "--call", page_user, *peer_args)
    try:
        await asyncio.to_thread(peer.wait_for, f"call with {page_user} connected")
    except BaseException:
        peer.stop()
        raise
    return peer


async def remote_video(page: Page) -> RemoteVideo:
    data: dict[str, Any] = await page.evaluate(_REMOTE_VIDEO_JS)
    return RemoteVideo(
        width=int(data["width"]),
        height=int(data["height"]),
        has_source=bool(data["hasSource"]),
        frames=int(data["frames"]),
    )


async def frames_decoded(page: Page) -> int:
    """framesDecoded of the page's inbound video, from its RTCPeerConnection's stats."""
    return (await remote_video(page)).frames


async def remote_video_playing(
    page: Page, min_frames: int = 10, within: float = DEFAULT_TIMEOUT, gap: float = 0.5
) -> tuple[int, int]:
    """Wait until #remote shows a picture (videoWidth > 0) and the call has decoded at
    least ``min_frames`` video frames, then check the count still grows ``gap`` later.
    Returns the picture's (width, height)."""
    deadline = time.monotonic() + within
    seen = await remote_video(page)
    while not (seen.showing and seen.frames >= min_frames):
        if time.monotonic() > deadline:
            raise AssertionError(f"remote video never started playing: {seen}")
        await asyncio.sleep(0.2)
        seen = await remote_video(page)
    first = seen
    while True:
        await asyncio.sleep(gap)
        seen = await remote_video(page)
        if seen.showing and seen.frames > first.frames:
            return seen.width, seen.height
        if time.monotonic() > deadline:
            raise AssertionError(f"remote video froze: {first} then {seen}")


_INBOUND_JS = """
async () => {
  const pc = window.webcamPeer ? window.webcamPeer.pc : null;
  if (!pc) return null;
  const stats = await pc.getStats();
  const result = {video: null, audio: null};
  stats.forEach((report) => {
    if (report.type !== 'inbound-rtp') return;
    const codec = report.codecId ? stats.get(report.codecId) : null;
    result[report.kind] = {
      at: report.timestamp / 1000,
      codec: codec ? codec.mimeType.toLowerCase() : null,
      framesDecoded: report.framesDecoded || 0,
      framesReceived: report.framesReceived || 0,
      framesDropped: report.framesDropped || 0,
      freezeCount: report.freezeCount || 0,
      totalSamplesReceived: report.totalSamplesReceived || 0,
    };
  });
  return result;
}
"""


@dataclass(frozen=True)
class PageMediaWindow:
    """What the page received between two getStats() samples, ``seconds`` apart."""

    first: dict[str, Any]
    last: dict[str, Any]

    @property
    def seconds(self) -> float:
        return float(self.last["video"]["at"] - self.first["video"]["at"])

    def grew(self, kind: str, key: str) -> float:
        return float(self.last[kind][key] - self.first[kind][key])

    @property
    def fps(self) -> float:
        return self.grew("video", "framesDecoded") / self.seconds

    @property
    def dropped_share(self) -> float:
        received = self.grew("video", "framesReceived")
        return self.grew("video", "framesDropped") / received if received > 0 else 1.0

    @property
    def audio_samples_per_second(self) -> float:
        return self.grew("audio", "totalSamplesReceived") / float(
            self.last["audio"]["at"] - self.first["audio"]["at"]
        )

    def describe(self) -> str:
        return f"{self.seconds:.2f} s from {self.first} to {self.last}"


async def page_media_window(page: Page, seconds: float = 4.0) -> PageMediaWindow:
    """The page's inbound video and audio statistics, sampled ``seconds`` apart."""
    first = await page.evaluate(_INBOUND_JS)
    assert first and first["video"] and first["audio"], f"no inbound media on the page: {first}"
    await asyncio.sleep(seconds)
    last = await page.evaluate(_INBOUND_JS)
    return PageMediaWindow(first, last)


def is_fake_camera_picture(size: tuple[int, int]) -> bool:
    """Chromium's fake camera (640x480), or what its encoder scaled it to under load."""
    width, height = size
    return 0 < width <= 640 and width * 3 == height * 4
