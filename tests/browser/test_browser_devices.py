"""The page's device picker in Chromium with four fake cameras, three fake microphones and
three fake speakers, calling a Python peer: the lists show the devices' names, a new
camera or microphone mid-call goes onto the same sender while the Python peer keeps
decoding, the choices come back after a reload, and a device that goes away falls back to
the default with a notice.

Chromium's fake cameras differ by index (media/capture/video/fake_video_capture_device_
factory.cc): fake_device_1 delivers Y16, a depth camera's format, which Chromium shows in
the preview but never hands to a WebRTC sender; fake_device_2 delivers MJPEG, the others
I420. So fake_device_1 stands in for a depth camera a user might pick by mistake.

No device can be unplugged here. Where a test needs one to disappear, a script on the page
hides it from enumerateDevices and fires devicechange, as the browser does on an unplug;
everything after that (getUserMedia, replaceTrack, the Python peer decoding) is real.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.helpers.browser_support import (
    launch_chromium,
    login_page,
    open_page,
    page_calls_peer,
    remote_video_playing,
    text_of,
    wait_for_state,
)
from tests.helpers.peer_support import start_peer, stats_lines, wait_for_stats
from tests.helpers.support import Process, SignalingServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SYNTHETIC = ("--video", "synthetic", "--size", "320x240", "--audio", "synthetic")
STATS = ("--stats-interval", "0.5")
# The last --use-fake-device-for-media-stream wins: four fake cameras instead of one.
FOUR_CAMERAS = ("--use-fake-device-for-media-stream=device-count=4",)
CAMERAS = ["fake_device_0", "fake_device_1", "fake_device_2", "fake_device_3"]
DEPTH_CAMERA = "fake_device_1"

# Stands in for unplugging: devices whose label is in window.unpluggedForTest are no
# longer listed, and the test fires devicechange as the browser would.
_UNPLUG_STAND_IN_JS = """
(() => {
  const list = MediaDevices.prototype.enumerateDevices;
  window.unpluggedForTest = new Set();
  MediaDevices.prototype.enumerateDevices = async function () {
    const devices = await list.call(this);
    return devices.filter((d) => !window.unpluggedForTest.has(d.label));
  };
})();
"""
_UNPLUG_JS = """
(label) => {
  window.unpluggedForTest.add(label);
  navigator.mediaDevices.dispatchEvent(new Event('devicechange'));
}
"""
# A browser without setSinkId (Firefox before 116, Safari): the speaker cannot be chosen.
_NO_SINK_ID_JS = "delete HTMLMediaElement.prototype.setSinkId;"

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
  });
}
"""

_PREVIEW_JS = """
() => {
  const local = document.getElementById('local').srcObject;
  if (!local) return null;
  const live = (kind) =>
    local.getTracks().filter((t) => t.kind === kind && t.readyState === 'live');
  return JSON.stringify({
    video: live('video').map((t) => t.label),
    audio: live('audio').map((t) => t.label),
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


async def sending_camera(page: Page, label: str) -> None:
    """Wait until the call's video sender carries the camera called ``label``."""
    await page.wait_for_function(
        """(label) => {
          const pc = window.webcamPeer.pc;
          const s = pc && pc.getSenders().find((x) => x.track && x.track.kind === 'video');
          return s !== undefined && s.track.readyState === 'live' && s.track.label === label;
        }""",
        arg=label,
    )


async def notice(page: Page, words: str) -> str:
    await page.wait_for_function(
        "(words) => document.getElementById('notice').textContent.includes(words)", arg=words
    )
    return await text_of(page, "#notice")


def _frames(line: dict[str, Any]) -> int:
    return int(line["video"].get("frames") or 0)


async def _keeps_decoding(bob: Process) -> dict[str, Any]:
    """bob's decoded video and audio frames both grow by 20 from now on."""
    before = (await asyncio.to_thread(stats_lines, bob))[-1]
    return await asyncio.to_thread(
        wait_for_stats,
        bob,
        lambda s: (
            s["_at"] > before["_at"]
            and _frames(s) >= _frames(before) + 20
            and s["audio_frames"] >= before["audio_frames"] + 20
        ),
    )


async def _call_bob(carol: Page, bob: Process) -> None:
    since = time.monotonic()
    await page_calls_peer(carol, "carol", bob, "bob")
    await remote_video_playing(carol)
    await asyncio.to_thread(wait_for_stats, bob, lambda s: s["_at"] >= since and _frames(s) >= 10)


async def test_device_picker_switches_mid_call_remembers_and_falls_back(
    signaling_server: SignalingServer,
) -> None:
    bob = start_peer(signaling_server, "--login", "bob", *SYNTHETIC, *STATS)
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright, extra_args=FOUR_CAMERAS)
        try:
            await asyncio.to_thread(bob.wait_for, "waiting for calls")
            context = await chromium.new_context()  # kept across the reload: its storage
            await context.add_init_script(_UNPLUG_STAND_IN_JS)
            carol = await login_page(context, signaling_server.http_url, "carol")

            # ---- the lists, with names once the page may use the devices ----
            await carol.wait_for_function(
                "() => document.querySelectorAll('#camera-select option').length === 4"
            )
            assert await options(carol, "#camera-select") == CAMERAS
            assert await chosen(carol, "#camera-select") == "fake_device_0"
            microphones = await options(carol, "#mic-select")
            assert "Fake Audio Input 1" in microphones and "Fake Audio Input 2" in microphones
            assert await carol.is_visible("#speaker-select")
            assert not await carol.is_visible("#devices-note")
            assert "Fake Audio Output 1" in await options(carol, "#speaker-select")

            await _call_bob(carol, bob)
            start = await senders(carol)
            assert start["sent"]["video"] == "fake_device_0"

            # ---- another camera mid-call: same sender, no renegotiation ----
            await carol.select_option("#camera-select", label="fake_device_2")
            await sending_camera(carol, "fake_device_2")
            switched = await senders(carol)
            assert switched["sameSenders"] and switched["transceivers"] == start["transceivers"]
            assert switched["signaling"] == "stable" and switched["connection"] == "connected"
            assert switched["preview"]["video"] == ["fake_device_2"]  # the old camera released
            await _keeps_decoding(bob)
            await carol.wait_for_function(
                "() => document.getElementById('camera-select').selectedOptions[0]"
                ".textContent === 'fake_device_2'"
            )

            # ---- a camera of another size (Chromium sends a new keyframe at 320x240):
            # the Python peer follows it ----
            await carol.evaluate(
                "() => window.webcamPeer.pc.getSenders().find((s) => s.track"
                " && s.track.kind === 'video').track.applyConstraints({width: 320, height: 240})"
            )
            await asyncio.to_thread(wait_for_stats, bob, lambda s: s["video"]["width"] == 320)
            await _keeps_decoding(bob)

            # ---- a camera whose picture Chromium cannot send: back to the last one ----
            await carol.select_option("#camera-select", label=DEPTH_CAMERA)
            told = await notice(carol, "gives no picture this browser can send")
            assert DEPTH_CAMERA in told and 'back to "fake_device_2"' in told
            await sending_camera(carol, "fake_device_2")
            assert (await senders(carol))["sameSenders"]
            assert await chosen(carol, "#camera-select") == "fake_device_2"
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
            await carol.select_option("#camera-select", label="fake_device_3")
            assert "used once it is on again" in await text_of(carol, "#notice")
            await carol.click("#camera-toggle")
            await asyncio.to_thread(bob.wait_for, "carol turned the camera on")
            await sending_camera(carol, "fake_device_3")
            assert (await senders(carol))["sameSenders"]
            await _keeps_decoding(bob)

            # ---- a reload: the same camera, microphone and speaker again (the camera
            # and microphone open at the next call: nothing is captured before one) ----
            since = time.monotonic()
            await carol.reload()
            await asyncio.to_thread(bob.wait_for, "waiting for the next call", since=since)
            await carol.fill("#username", "carol")
            await carol.click("#login")
            await wait_for_state(carol, "idle")
            await carol.wait_for_function(
                "(id) => document.getElementById('remote').sinkId === id", arg=speaker
            )
            assert await chosen(carol, "#camera-select") == "fake_device_3"
            assert await chosen(carol, "#mic-select") == "Fake Audio Input 2"
            assert await chosen(carol, "#speaker-select") == "Fake Audio Output 1"
            await _call_bob(carol, bob)
            again = await senders(carol)
            assert again["sent"] == {"video": "fake_device_3", "audio": "Fake Audio Input 2"}
            assert again["preview"] == {"video": ["fake_device_3"], "audio": ["Fake Audio Input 2"]}
            assert await text_of(carol, "#notice") == ""

            # ---- the camera and the speaker go away mid-call: the defaults, told ----
            await carol.evaluate(_UNPLUG_JS, "fake_device_3")
            told = await notice(carol, "was disconnected")
            assert told == 'Camera "fake_device_3" was disconnected: now using "fake_device_0".'
            await sending_camera(carol, "fake_device_0")
            assert (await senders(carol))["sameSenders"]
            assert await chosen(carol, "#camera-select") == "fake_device_0"
            assert "fake_device_3" not in await options(carol, "#camera-select")
            await _keeps_decoding(bob)

            await carol.evaluate(_UNPLUG_JS, "Fake Audio Output 1")
            told = await notice(carol, "Speaker")
            assert told == (
                'Speaker "Fake Audio Output 1" was disconnected: playing through the default.'
            )
            assert await carol.evaluate("() => document.getElementById('remote').sinkId") == ""
            assert (await senders(carol))["connection"] == "connected"
            assert bob.popen.poll() is None
        finally:
            await chromium.close()
            bob.stop()
    assert not any("Traceback" in line for line in bob.lines)


async def _fresh_context_page(chromium: Browser, url: str, init: str = "") -> Page:
    context = await chromium.new_context()
    if init:
        await context.add_init_script(init)
    return await open_page(context, url, "dave")


async def test_device_picker_saved_camera_missing_and_no_speaker_choice(
    signaling_server: SignalingServer,
) -> None:
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright)
        try:
            # ---- a camera saved last time that is not here now: the default, told ----
            dave = await _fresh_context_page(chromium, signaling_server.http_url)
            saved = {"video": {"id": "f" * 64, "label": "USB camera from yesterday"}}
            await dave.evaluate(
                "(v) => localStorage.setItem('webcam-peer.devices', v)", json.dumps(saved)
            )
            await dave.reload()
            await dave.fill("#username", "dave")
            await dave.click("#login")
            await wait_for_state(dave, "idle")
            await dave.fill("#callee", "nobody")  # offline: the camera opens all the same
            await dave.click("#call")
            told = await notice(dave, "is not connected")
            assert (
                told
                == 'Camera "USB camera from yesterday" is not connected: using "fake_device_0".'
            )
            assert json.loads(await dave.evaluate(_PREVIEW_JS))["video"] == ["fake_device_0"]
            assert await chosen(dave, "#camera-select") == "fake_device_0"

            # ---- a browser that cannot route audio: no speaker list, and it says so ----
            erin = await _fresh_context_page(chromium, signaling_server.http_url, _NO_SINK_ID_JS)
            assert not await erin.is_visible("#speaker-select")
            assert await erin.is_disabled("#speaker-select")
            assert await erin.is_visible("#devices-note")
            assert "cannot choose a speaker" in await text_of(erin, "#devices-note")
        finally:
            await chromium.close()
