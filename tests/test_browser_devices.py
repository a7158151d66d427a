"""The page's device picker in Chromium with two fake cameras, three fake microphones
and three fake speakers, calling a Python peer: the lists show the devices' names, and a
new camera or microphone mid-call goes onto the same sender while the Python peer keeps
decoding."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from .browser_support import launch_chromium, login_page, remote_video_playing, text_of
from .peer_support import start_peer, stats_lines, wait_for_stats
from .support import Process, SignalingServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SYNTHETIC = ("--video", "synthetic", "--size", "320x240", "--audio", "synthetic")
STATS = ("--stats-interval", "0.5")
# The last --use-fake-device-for-media-stream wins: two fake cameras instead of one.
TWO_CAMERAS = ("--use-fake-device-for-media-stream=device-count=2",)

_SENDERS_JS = """
() => {
  const pc = window.webcamPeer.pc;
  const local = document.getElementById('local').srcObject;
  const live = (kind) =>
    local.getTracks().filter((t) => t.kind === kind && t.readyState === 'live');
  const sender = (kind) => pc.getSenders().find((s) => s.track && s.track.kind === kind);
  window.deviceTestSenders ??= { video: sender('video'), audio: sender('audio') };
  return JSON.stringify({
    sameSenders: sender('video') === window.deviceTestSenders.video
      && sender('audio') === window.deviceTestSenders.audio,
    transceivers: pc.getTransceivers().length,
    signaling: pc.signalingState,
    connection: pc.connectionState,
    sent: { video: sender('video').track.label, audio: sender('audio').track.label },
    preview: { video: live('video').map((t) => t.label), audio: live('audio').map((t) => t.label) },
    sinkId: document.getElementById('remote').sinkId,
  });
}
"""


async def senders(page: Page) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await page.evaluate(_SENDERS_JS))
    return data


async def options(page: Page, selector: str) -> list[str]:
    texts: list[str] = await page.locator(f"{selector} option").all_text_contents()
    return texts


async def chosen(page: Page, selector: str) -> str:
    text: str = await page.eval_on_selector(
        selector, "(s) => s.selectedIndex < 0 ? '' : s.options[s.selectedIndex].textContent"
    )
    return text


def _frames(line: dict[str, Any]) -> int:
    return int(line["video"].get("frames") or 0)


async def _latest(bob: Process) -> dict[str, Any]:
    return (await asyncio.to_thread(stats_lines, bob))[-1]


async def _keeps_decoding(bob: Process) -> dict[str, Any]:
    before = await _latest(bob)
    return await asyncio.to_thread(
        wait_for_stats,
        bob,
        lambda s: (
            _frames(s) >= _frames(before) + 20 and s["audio_frames"] >= before["audio_frames"] + 20
        ),
    )


async def test_device_picker_lists_fake_devices_and_switches_mid_call(
    signaling_server: SignalingServer,
) -> None:
    bob = start_peer(signaling_server, "--login", "bob", *SYNTHETIC, *STATS)
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright, extra_args=TWO_CAMERAS)
        try:
            await asyncio.to_thread(bob.wait_for, "waiting for calls")
            carol = await login_page(chromium, signaling_server.http_url, "carol")

            # ---- the lists, with names once the page may use the devices ----
            await carol.wait_for_function(
                "() => document.querySelectorAll('#camera-select option').length === 2"
            )
            assert await options(carol, "#camera-select") == ["fake_device_0", "fake_device_1"]
            assert await chosen(carol, "#camera-select") == "fake_device_0"
            microphones = await options(carol, "#mic-select")
            assert "Fake Audio Input 1" in microphones and "Fake Audio Input 2" in microphones
            assert await carol.is_visible("#speaker-select")
            assert "Fake Audio Output 1" in await options(carol, "#speaker-select")

            await carol.fill("#callee", "bob")
            await carol.click("#call")
            await asyncio.to_thread(bob.wait_for, "call with carol connected")
            await remote_video_playing(carol)
            await asyncio.to_thread(wait_for_stats, bob, lambda s: _frames(s) >= 10)
            start = await senders(carol)
            assert start["sent"]["video"] == "fake_device_0"

            # ---- another camera mid-call: same sender, no renegotiation ----
            await carol.select_option("#camera-select", label="fake_device_1")
            await carol.wait_for_function(
                "() => document.getElementById('local').srcObject.getVideoTracks()"
                ".some((t) => t.readyState === 'live' && t.label === 'fake_device_1')"
            )
            switched = await senders(carol)
            assert switched["sameSenders"] and switched["transceivers"] == start["transceivers"]
            assert switched["signaling"] == "stable" and switched["connection"] == "connected"
            assert switched["sent"]["video"] == "fake_device_1"
            assert switched["preview"]["video"] == ["fake_device_1"]  # the old camera released
            assert await chosen(carol, "#camera-select") == "fake_device_1"
            await _keeps_decoding(bob)

            # ---- another microphone, then another speaker ----
            await carol.select_option("#mic-select", label="Fake Audio Input 2")
            await carol.wait_for_function(
                "() => document.getElementById('local').srcObject.getAudioTracks()"
                ".some((t) => t.readyState === 'live' && t.label === 'Fake Audio Input 2')"
            )
            switched = await senders(carol)
            assert switched["sameSenders"] and switched["sent"]["audio"] == "Fake Audio Input 2"
            assert switched["preview"]["audio"] == ["Fake Audio Input 2"]
            assert await chosen(carol, "#mic-select") == "Fake Audio Input 2"
            await _keeps_decoding(bob)

            await carol.select_option("#speaker-select", label="Fake Audio Output 1")
            speaker = await carol.eval_on_selector("#speaker-select", "(s) => s.value")
            await carol.wait_for_function(
                "(id) => document.getElementById('remote').sinkId === id", arg=speaker
            )
            assert await chosen(carol, "#speaker-select") == "Fake Audio Output 1"

            # ---- a choice while the camera is off is used when it comes back ----
            await carol.click("#camera-toggle")
            await asyncio.to_thread(bob.wait_for, "carol turned the camera off")
            await carol.select_option("#camera-select", label="fake_device_0")
            assert "used once it is on again" in await text_of(carol, "#notice")
            await carol.click("#camera-toggle")
            await asyncio.to_thread(bob.wait_for, "carol turned the camera on")
            back = await senders(carol)
            assert back["sameSenders"] and back["sent"]["video"] == "fake_device_0"
            await _keeps_decoding(bob)
            assert (await senders(carol))["connection"] == "connected"
            assert bob.popen.poll() is None
        finally:
            await chromium.close()
            bob.stop()
    assert not any("Traceback" in line for line in bob.lines)
