"""The page's Mute, Camera off and Share screen buttons in Chromium, with a Python peer
on the other end; and the Python peer's /mute and /video off as the page sees them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from tests.browser.test_browser_peer import stamp_on_page
from tests.helpers.browser_support import (
    launch_chromium,
    login_and_call,
    remote_video_playing,
    text_of,
)
from tests.helpers.peer_support import start_peer, stats_lines, wait_for_stats
from tests.helpers.support import Process, SignalingServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SYNTHETIC = ("--video", "synthetic", "--size", "320x240", "--audio", "synthetic")
STATS = ("--stats-interval", "0.5")
# getDisplayMedia without a picker: Chromium takes the whole (fake) screen.
SCREEN_ARGS = ("--auto-select-desktop-capture-source=Entire screen",)

_PAGE_MEDIA_JS = """
async () => {
  const pc = window.webcamPeer.pc;
  let audioLevel = null, videoFrames = 0;
  if (pc) {
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') audioLevel = r.audioLevel ?? null;
      if (r.type === 'inbound-rtp' && r.kind === 'video') videoFrames += r.framesDecoded || 0;
    });
  }
  const video = document.getElementById('remote');
  let luma = null;
  if (video.videoWidth > 0) {
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const context = canvas.getContext('2d');
    context.drawImage(video, 0, 0);
    const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < rgba.length; i += 4) {
      sum += 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
    }
    luma = sum / (rgba.length / 4);
  }
  const local = document.getElementById('local').srcObject;
  return JSON.stringify({
    audioLevel, videoFrames, luma,
    localTracks: local ? local.getTracks().map((t) => [t.kind, t.readyState]) : [],
  });
}
"""


async def page_media(page: Page) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await page.evaluate(_PAGE_MEDIA_JS))
    return data


async def _wait(process: Process, pattern: str) -> None:
    await asyncio.to_thread(process.wait_for, pattern)


async def _until(page: Page, condition: Any, what: str, within: float = 20.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    seen = await page_media(page)
    while not condition(seen):
        if loop.time() > deadline:
            raise AssertionError(f"the page never showed {what}: {seen}")
        await asyncio.sleep(0.25)
        seen = await page_media(page)
    return seen


def _frames(line: dict[str, Any]) -> int:
    return int(line["video"].get("frames") or 0)


async def _python_frames_stop(bob: Process) -> tuple[int, int]:
    """bob's received video frames and audio frames, once neither grows for 1.5 s."""
    while True:
        first = (await asyncio.to_thread(stats_lines, bob))[-1]
        await asyncio.sleep(1.5)
        later = (await asyncio.to_thread(stats_lines, bob))[-1]
        if _frames(later) == _frames(first) and later["audio_frames"] == first["audio_frames"]:
            return _frames(later), int(later["audio_frames"])


async def test_page_buttons_and_python_commands_reach_the_other_side(
    signaling_server: SignalingServer,
) -> None:
    bob = start_peer(signaling_server, "--login", "bob", *SYNTHETIC, *STATS)
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright, extra_args=SCREEN_ARGS)
        try:
            carol = await login_and_call(chromium, signaling_server.http_url, bob)
            await remote_video_playing(carol)
            await asyncio.to_thread(wait_for_stats, bob, lambda s: _frames(s) >= 10)

            # ---- the page's buttons, as the Python peer decodes them ----
            await carol.click("#mute-mic")
            await carol.click("#camera-toggle")
            await _wait(bob, "carol muted the microphone")
            await _wait(bob, "carol turned the camera off")
            assert await text_of(carol, "#mute-mic") == "Unmute"
            assert await text_of(carol, "#camera-toggle") == "Camera on"
            local = (await page_media(carol))["localTracks"]
            assert ["video", "ended"] in local and ["audio", "ended"] in local  # released
            video_off, audio_off = await asyncio.wait_for(_python_frames_stop(bob), 20)

            await carol.click("#mute-mic")
            await carol.click("#camera-toggle")
            await _wait(bob, "carol unmuted the microphone")
            await _wait(bob, "carol turned the camera on")
            back = await asyncio.to_thread(
                wait_for_stats,
                bob,
                lambda s: _frames(s) >= video_off + 20 and s["audio_frames"] >= audio_off + 20,
            )
            assert back["media"]["remote"] == {"audio": "on", "video": "on"}

            # ---- Share screen: getDisplayMedia on the same sender ----
            await carol.click("#share-screen")
            await _wait(bob, "carol is sharing the screen")
            assert await text_of(carol, "#share-screen") == "Stop sharing"
            shared = await asyncio.to_thread(
                wait_for_stats,
                bob,
                lambda s: (
                    _frames(s) >= _frames(back) + 10 and s["media"]["remote"]["video"] == "screen"
                ),
            )
            await carol.click("#share-screen")
            await _wait(bob, "carol turned the camera on")
            await asyncio.to_thread(
                wait_for_stats, bob, lambda s: _frames(s) >= _frames(shared) + 10
            )

            # ---- the Python peer's commands, as the page shows and decodes them ----
            bob.type_line("/mute")
            bob.type_line("/video off")
            await carol.wait_for_function(
                "() => document.getElementById('remote-media').textContent === 'muted, camera off'"
            )
            assert await carol.is_visible("#remote-media")
            await _until(
                carol,
                lambda m: (
                    m["luma"] is not None
                    and m["luma"] < 24
                    and m["audioLevel"] is not None
                    and m["audioLevel"] < 0.01
                ),
                "black and silence",
            )
            bob.type_line("/unmute")
            bob.type_line("/video on")
            await carol.wait_for_function("() => document.getElementById('remote-media').hidden")
            await _until(
                carol,
                lambda m: m["audioLevel"] is not None and m["audioLevel"] > 0.05,
                "the tone again",
            )
            first = await stamp_on_page(carol)
            await asyncio.sleep(0.5)
            later = await stamp_on_page(carol)
            assert first is not None and later is not None
            assert later.frame_number > first.frame_number
            assert bob.popen.poll() is None
        finally:
            await chromium.close()
            bob.stop()
    assert not any("Traceback" in line for line in bob.lines)
