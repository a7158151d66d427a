"""A Python peer and a person in the browser page, calling each other both ways."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from playwright.async_api import Page

from media.measure.stamp import Stamp, read_stamp
from tests.helpers.browser_support import (
    Browser,
    PageMediaWindow,
    is_fake_camera_picture,
    login_page,
    page_calls_new_peer,
    page_media_window,
    page_state,
    peer_calls_page,
    remote_video_playing,
    text_of,
)
from tests.helpers.peer_support import (
    AUDIO_TOLERANCE,
    MAX_SKIPPED_SHARE,
    MIN_FPS_FROM_30,
    MIN_FPS_FROM_CHROMIUM,
    MediaWindow,
    assert_media,
    media_windows,
)
from tests.helpers.support import Process, SignalingServer

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


OPUS_SAMPLES_PER_SECOND = 48_000


async def both_windows(page: Page, process: Process) -> tuple[PageMediaWindow, MediaWindow]:
    """What the page and the Python peer each received over the same few seconds."""
    page_window, (python_window,) = await asyncio.gather(
        page_media_window(page), asyncio.to_thread(media_windows, process)
    )
    return page_window, python_window


def assert_call_media(page: PageMediaWindow, python: MediaWindow) -> None:
    """Python's 30 fps synthetic video and tone on the page, Chromium's fake camera
    (20 fps) and audio on the Python side, VP8 both ways, Python on its fast path."""
    seen = page.describe()
    print(
        f"page window: {page.fps:.1f} fps, dropped {page.dropped_share:.4f},"
        f" audio {page.audio_samples_per_second:.0f}/s: {seen}"
    )  # shown with a failure, or with -s
    assert page.fps >= MIN_FPS_FROM_30, f"page decoded {page.fps:.1f} fps: {seen}"
    assert page.grew("video", "freezeCount") == 0, f"the page saw a freeze: {seen}"
    assert page.dropped_share <= MAX_SKIPPED_SHARE, f"the page dropped frames: {seen}"
    assert page.last["video"]["codec"] == "video/vp8", seen
    rate = page.audio_samples_per_second
    assert abs(rate / OPUS_SAMPLES_PER_SECOND - 1) <= AUDIO_TOLERANCE, f"page audio: {seen}"
    # Chromium's camera carries no stamp: rate, freezes, codec, path and audio only.
    assert_media(
        python, min_fps=MIN_FPS_FROM_CHROMIUM, codec="vp8", receive_path="fast", stamped=False
    )


async def test_python_calls_the_page(browser: Browser, signaling_server: SignalingServer) -> None:
    carol = await login_page(browser, signaling_server.http_url, "carol")
    alice = await peer_calls_page(
        signaling_server, "alice", "carol", *SYNTHETIC, "--stats-interval", "0.5"
    )
    try:
        assert await remote_video_playing(carol) == (320, 240)
        await wait_for_stamps_to_advance(carol)
        # The Python side decodes Chromium's fake camera (mostly black by design).
        page_window, alice_window = await both_windows(carol, alice)
        last = alice_window.last
        assert is_fake_camera_picture((last["video"]["width"], last["video"]["height"]))
        assert_call_media(page_window, alice_window)

        await carol.click("#hangup")  # hang-up from the page reaches Python
        await _wait(alice, "call with carol ended: carol hung up")
        assert await asyncio.to_thread(alice.wait) == 0
    finally:
        alice.stop()
    assert not any("Traceback" in line for line in alice.lines)


async def test_page_calls_python(browser: Browser, signaling_server: SignalingServer) -> None:
    bob, carol = await page_calls_new_peer(
        browser, signaling_server.http_url, signaling_server, *SYNTHETIC, "--stats-interval", "0.5"
    )
    try:
        assert await remote_video_playing(carol) == (320, 240)
        await wait_for_stamps_to_advance(carol)
        page_window, bob_window = await both_windows(carol, bob)
        last = bob_window.last
        assert is_fake_camera_picture((last["video"]["width"], last["video"]["height"]))
        assert_call_media(page_window, bob_window)

        # Python hangs up (Ctrl-C ends its call, then it quits): the page is told.
        bob.signal(2)
        await carol.wait_for_function("() => window.webcamPeer.state === 'idle'")
        assert "bob hung up" in await text_of(carol, "#status")
        assert await asyncio.to_thread(bob.wait) == 0
        assert await page_state(carol) == "idle"
    finally:
        bob.stop()
    assert not any("Traceback" in line for line in bob.lines)
