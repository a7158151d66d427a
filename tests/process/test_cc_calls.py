"""Congestion control seen from the stats line: two webcam-peer bots through a real
signaling server on loopback."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.helpers.peer_support import connected_pair, wait_for_frames, wait_for_stats
from tests.helpers.support import SignalingServer

pytestmark = pytest.mark.slow

MEDIA = ("--video", "synthetic", "--size", "320x240", "--fps", "30", "--audio", "synthetic:440")
STATS = ("--stats-interval", "0.5")


def feedback_flowing(line: dict[str, Any]) -> bool:
    congestion = line.get("congestion") or {}
    return (congestion.get("feedback_received") or 0) > 20 and (congestion.get("sent_fps") or 0) > 0


def test_the_stats_line_reports_the_estimate_and_what_is_sent(
    signaling_server: SignalingServer,
) -> None:
    alice, bob = connected_pair(
        signaling_server, (*MEDIA, *STATS), (*MEDIA, *STATS, "--max-bitrate", "1200")
    )
    try:
        wait_for_frames(alice, 30)
        wait_for_frames(bob, 30)
        lines = [wait_for_stats(p, feedback_flowing) for p in (alice, bob)]
        alice.signal(signal.SIGINT)
        assert alice.wait() == 0
    finally:
        alice.stop()
        bob.stop()

    for line in lines:
        congestion = line["congestion"]
        assert congestion["mode"] == "gcc"
        assert congestion["transport_cc"] is True
        assert 50 <= congestion["target_kbps"] <= 2000
        assert congestion["encoder_kbps"] > 0
        assert congestion["audio_kbps"] < 96  # not aiortc's fixed Opus rate
        assert congestion["send_kbps"] > 0
        assert congestion["loss_pct"] is not None and congestion["loss_pct"] >= 0
        assert congestion["sent_width"] in (320, 240, 160) and congestion["sent_height"] > 0
        assert 1 <= congestion["sent_fps"] <= 31
        for counter in ("nacks_sent", "nacks_received", "plis_sent", "plis_received"):
            assert congestion[counter] >= 0
        assert congestion["feedback_sent"] > 20 and congestion["feedback_malformed"] == 0
        assert congestion["core_errors"] == 0
        # Every field the line had before is still there.
        for field in ("video", "audio_frames", "bitrate_out_kbps", "rtt_ms", "sctp", "pair"):
            assert field in line
    # bob's ceiling holds for what he encodes.
    assert lines[1]["congestion"]["target_kbps"] <= 1200


def test_stock_reports_its_mode_and_offers_no_transport_cc(
    signaling_server: SignalingServer,
) -> None:
    flags = (*MEDIA, *STATS, "--congestion-control", "stock")
    alice, bob = connected_pair(signaling_server, flags, flags)
    try:
        line = wait_for_frames(alice, 20)
        wait_for_frames(bob, 20)
    finally:
        alice.stop()
        bob.stop()
    assert line["congestion"] == {"mode": "stock"}
