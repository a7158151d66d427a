"""Transport-wide congestion control between webcam-peer and Chromium, both ways: Chromium
agrees to transport-cc, sends us its feedback and gets ours (Debian's Chromium through
Playwright, the call page of the signaling server, over loopback)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Page

from peer.congestion.twcc import TWCC_URI
from tests.helpers.browser_support import (
    Browser,
    login_page,
    page_calls_new_peer,
    peer_calls_page,
    remote_video_playing,
)
from tests.helpers.peer_support import wait_for_stats
from tests.helpers.support import Process, SignalingServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SYNTHETIC = ("--video", "synthetic", "--size", "320x240", "--audio", "synthetic")

_CHROMIUM_SENDING_JS = """
async () => {
  const pc = window.webcamPeer.pc;
  const stats = await pc.getStats();
  let available = null;
  let sent = 0;
  stats.forEach((report) => {
    if (report.type === 'candidate-pair' && report.nominated &&
        report.availableOutgoingBitrate !== undefined) {
      available = report.availableOutgoingBitrate;
    }
    if (report.type === 'outbound-rtp' && report.kind === 'video') {
      sent += report.bytesSent || 0;
    }
  });
  return {local: pc.localDescription.sdp, remote: pc.remoteDescription.sdp,
          available: available, sent: sent};
}
"""


def feedback_both_ways(line: dict[str, Any]) -> bool:
    congestion = line.get("congestion") or {}
    return (congestion.get("feedback_received") or 0) > 20 and (
        congestion.get("feedback_sent") or 0
    ) > 20


async def chromium_sending(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(_CHROMIUM_SENDING_JS)
    return result


def transport_cc_lines(sdp: str) -> tuple[list[str], list[str]]:
    lines = sdp.split("\r\n")
    extmaps = [line for line in lines if line.startswith("a=extmap:") and TWCC_URI in line]
    feedback = [line for line in lines if line.startswith("a=rtcp-fb:") and "transport-cc" in line]
    return extmaps, feedback


async def check_call(page: Page, python: Process) -> None:
    await remote_video_playing(page)
    line = await asyncio.to_thread(wait_for_stats, python, feedback_both_ways, 30)
    congestion = line["congestion"]
    assert congestion["transport_cc"] is True
    assert congestion["feedback_malformed"] == 0
    assert congestion["target_kbps"] > 0
    chromium = await chromium_sending(page)
    # Chromium's own description (its answer to our offer, or its offer) has transport-cc
    # on the audio and the video section, so it stamps its packets and reads our feedback.
    for sdp in (chromium["local"], chromium["remote"]):
        extmaps, feedback = transport_cc_lines(sdp)
        assert len(extmaps) == 2, sdp
        assert feedback, sdp
    # Chromium's send-side estimate, which our feedback drives, is in use.
    assert chromium["available"] is not None and chromium["available"] > 0
    assert chromium["sent"] > 0


async def test_python_calls_chromium_with_transport_cc(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    carol = await login_page(browser, signaling_server.http_url, "carol")
    alice = await peer_calls_page(
        signaling_server, "alice", "carol", *SYNTHETIC, "--stats-interval", "0.5"
    )
    try:
        await check_call(carol, alice)
    finally:
        alice.stop()
    assert not any("Traceback" in line for line in alice.lines)


async def test_chromium_calls_python_with_transport_cc(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    bob, carol = await page_calls_new_peer(
        browser, signaling_server.http_url, signaling_server, *SYNTHETIC, "--stats-interval", "0.5"
    )
    try:
        await check_call(carol, bob)
    finally:
        bob.stop()
    assert not any("Traceback" in line for line in bob.lines)
