"""Debian's Chromium driven by Playwright, with fake camera and microphone, loopback only."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Without it Chromium leaves 127.0.0.1 out of its candidates, and tests use only it.
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        await launched.close()


async def open_page(browser: Browser, http_url: str) -> Page:
    """A page of the call page in a context of its own (its own user)."""
    context = await browser.new_context()
    page = await context.new_page()
    page.on("console", lambda m: print(f"[page {m.type}] {m.text}") if m.type == "error" else None)
    await page.goto(http_url + "/")
    await page.wait_for_function(
        "document.getElementById('status').textContent.includes('connected')"
    )
    return page


async def login_page(browser: Browser, http_url: str, username: str) -> Page:
    page = await open_page(browser, http_url)
    await page.fill("#username", username)
    await page.click("#login")
    await page.wait_for_function("window.webcamPeer.state === 'idle'")
    return page


async def page_state(page: Page) -> str:
    state: str = await page.evaluate("window.webcamPeer.state")
    return state


async def frames_decoded(page: Page) -> int:
    """framesDecoded of the page's inbound video, from its RTCPeerConnection's stats."""
    count: Any = await page.evaluate(
        """async () => {
            const pc = window.webcamPeer.pc;
            if (!pc) return 0;
            let frames = 0;
            (await pc.getStats()).forEach((s) => {
                if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
            });
            return frames;
        }"""
    )
    return int(count)


async def remote_video_playing(page: Page, within_ms: float = 20_000) -> tuple[int, int]:
    """Wait until #remote shows a picture whose decoded frames keep growing."""
    await page.wait_for_function(
        "document.getElementById('remote').videoWidth > 0", timeout=within_ms
    )
    first = await frames_decoded(page)
    await asyncio.sleep(1.0)
    second = await frames_decoded(page)
    assert second > first + 10, f"remote video is not playing: framesDecoded {first} -> {second}"
    size = await page.evaluate(
        "(({videoWidth, videoHeight}) => [videoWidth, videoHeight])"
        "(document.getElementById('remote'))"
    )
    return int(size[0]), int(size[1])


async def text_of(page: Page, selector: str) -> str:
    text = await page.text_content(selector)
    return text or ""
