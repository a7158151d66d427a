"""A Python peer and a person in the browser page, calling each other both ways."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from playwright.async_api import Page

from media.stamp import Stamp, read_stamp

from .browser_support import (
    Browser,
    is_fake_camera_picture,
    login_page,
    page_state,
    remote_video_playing,
    text_of,
)
from .peer_support import start_peer, wait_for_frames
from .support import Process, SignalingServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SYNTHETIC = ("--video", "synthetic", "--size", "320x240", "--audio", "synthetic")


async def stamp_on_page(page: Page) -> Stamp | None:
    """Read the stamp of the frame #remote is showing, from its pixels."""
    pixels = await page.evaluate(
        """() => {
            const video = document.getElementById('remote');
            const canvas = document.createElement('canvas');
            canvas.width = video.videoWidth;
            canvas.height = video.videoHeight;
            const context = canvas.getContext('2d');
            context.drawImage(video, 0, 0);
            const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
            return JSON.stringify([canvas.width, canvas.height, Array.from(rgba)]);
        }"""
    )
    width, height, rgba = json.loads(pixels)
    image = np.array(rgba, dtype=np.float64).reshape(height, width, 4)
    luma = (image[..., :3] @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    return read_stamp(luma)


async def wait_for_stamps_to_advance(page: Page) -> tuple[Stamp, Stamp]:
    first = await stamp_on_page(page)
    assert first is not None, "the page's remote video carries no readable stamp"
    await asyncio.sleep(0.5)
    later = await stamp_on_page(page)
    assert later is not None
    assert later.frame_number > first.frame_number, "the picture on the page is frozen"
    return first, later


async def _wait(process: Process, pattern: str) -> None:
    await asyncio.to_thread(process.wait_for, pattern)


async def test_python_calls_the_page(browser: Browser, signaling_server: SignalingServer) -> None:
    carol = await login_page(browser, signaling_server.http_url, "carol")
    alice = start_peer(
        signaling_server,
        "--login",
        "alice",
        "--call",
        "carol",
        *SYNTHETIC,
        "--stats-interval",
        "0.5",
    )
    try:
        await _wait(alice, "call with carol connected")
        assert await remote_video_playing(carol) == (320, 240)
        await wait_for_stamps_to_advance(carol)
        # The Python side decodes Chromium's fake camera.
        first = await asyncio.to_thread(wait_for_frames, alice, 10)
        last = await asyncio.to_thread(wait_for_frames, alice, first["video"]["frames"] + 30)
        assert is_fake_camera_picture((last["video"]["width"], last["video"]["height"]))
        # Chromium's fake camera is mostly black by design: count frames, not brightness.
        assert last["video"]["fps"] > 10, json.dumps(last)
        assert last["audio_frames"] > 0

        await carol.click("#hangup")  # hang-up from the page reaches Python
        await _wait(alice, "call with carol ended: carol hung up")
        assert await asyncio.to_thread(alice.wait) == 0
    finally:
        alice.stop()
    assert not any("Traceback" in line for line in alice.lines)


async def test_page_calls_python(browser: Browser, signaling_server: SignalingServer) -> None:
    bob = start_peer(signaling_server, "--login", "bob", *SYNTHETIC, "--stats-interval", "0.5")
    try:
        await _wait(bob, "waiting for calls")
        carol = await login_page(browser, signaling_server.http_url, "carol")
        await carol.fill("#callee", "bob")
        await carol.click("#call")
        await _wait(bob, "call with carol connected")
        assert await remote_video_playing(carol) == (320, 240)
        await wait_for_stamps_to_advance(carol)
        first = await asyncio.to_thread(wait_for_frames, bob, 10)
        last = await asyncio.to_thread(wait_for_frames, bob, first["video"]["frames"] + 30)
        assert is_fake_camera_picture((last["video"]["width"], last["video"]["height"]))
        assert last["audio_frames"] > 0

        # Python hangs up (Ctrl-C ends its call, then it quits): the page is told.
        bob.signal(2)
        await carol.wait_for_function("window.webcamPeer.state === 'idle'")
        assert "bob hung up" in await text_of(carol, "#status")
        assert await asyncio.to_thread(bob.wait) == 0
        assert await page_state(carol) == "idle"
    finally:
        bob.stop()
    assert not any("Traceback" in line for line in bob.lines)
