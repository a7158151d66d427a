"""Mute, camera off and screen sharing between two webcam-peer processes, judged by
what the receiver decodes: silence and black pictures, then the tone and the stamped
picture again; a pattern drawn on a real X screen (Xvfb) read back from the frames."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from tests.helpers.peer_support import connected_pair, start_peer, stats_lines, wait_for_stats
from tests.helpers.support import BIN, ROOT, Process
from tests.helpers.xvfb_support import SCREEN, Xvfb, wait_for_stamp

pytestmark = pytest.mark.slow

SYNTHETIC = ("--video", "synthetic", "--size", "320x240", "--audio", "synthetic")
STATS = ("--stats-interval", "0.5")
LOUD_DBFS = -30.0  # the synthetic tone is about -13.5 dBFS
SILENT_DBFS = -60.0
PATTERN_FIRST = 500_000  # the screen pattern's frame numbers; the synthetic camera's are small


def _stamped(line: dict[str, Any]) -> int:
    return int(line["video"].get("stamped_frames") or 0)


def _level(line: dict[str, Any]) -> float:
    level = line.get("audio_level_dbfs")
    return -200.0 if level is None else float(level)


def test_mute_and_camera_off_reach_the_other_side_and_come_back(
    signaling_server: Any,
) -> None:
    alice, bob = connected_pair(signaling_server, (*SYNTHETIC, *STATS), (*SYNTHETIC, *STATS))
    try:
        before = wait_for_stats(bob, lambda s: _stamped(s) >= 10 and _level(s) > LOUD_DBFS)
        address = before["pair"]["local_address"]

        alice.type_line("/mute")
        alice.type_line("/video off")
        alice.wait_for(r"microphone muted \(released\); camera off")
        bob.wait_for("alice muted the microphone")
        bob.wait_for("alice turned the camera off")
        off = wait_for_stats(
            bob,
            lambda s: (
                _level(s) < SILENT_DBFS
                and s["video"]["black_frames"] >= 2
                and s["media"]["remote"] == {"audio": "muted", "video": "off"}
            ),
        )
        # Only black arrives: no stamped picture for a while (the meter's last second).
        stamped_while_off = _stamped(wait_for_stats(bob, lambda s: _stamped(s) == _stamped(off)))
        black_while_off = off["video"]["black_frames"]

        alice.type_line("/unmute")
        alice.type_line("/video on")
        bob.wait_for("alice unmuted the microphone")
        bob.wait_for("alice turned the camera on")
        after = wait_for_stats(
            bob,
            lambda s: (
                _level(s) > LOUD_DBFS
                and _stamped(s) >= stamped_while_off + 10
                and s["media"]["remote"] == {"audio": "on", "video": "on"}
            ),
        )
        # The same call on the same ports: nothing was renegotiated or re-made.
        assert after["pair"]["local_address"] == address
        assert after["video"]["black_frames"] >= black_while_off
        assert not any("re-established" in line or "reconnecting" in line for line in bob.lines)
        # alice, for her part, heard nothing change on bob's side.
        assert all(
            s["media"]["remote"] == {"audio": "on", "video": "on"} for s in stats_lines(alice)[-3:]
        )
    finally:
        alice.stop()
        bob.stop()


def _pattern(xvfb: Xvfb) -> Process:
    width, height = SCREEN
    process = Process(
        [
            sys.executable,
            str(ROOT / "tests" / "helpers" / "screen_pattern.py"),
            str(width),
            str(height),
            str(PATTERN_FIRST),
        ],
        env={"DISPLAY": xvfb.display, "PYTHONPATH": str(ROOT)},
    )
    process.wait_for("drawing")
    return process


def test_share_the_screen_mid_call_and_back_to_the_camera(
    signaling_server: Any, xvfb: Xvfb
) -> None:
    pattern = _pattern(xvfb)
    on_screen = {"DISPLAY": xvfb.display}
    bob = start_peer(signaling_server, "--login", "bob", *SYNTHETIC, *STATS)
    bob.wait_for("waiting for calls")
    alice = start_peer(
        signaling_server, "--login", "alice", "--call", "bob", *SYNTHETIC, *STATS, env=on_screen
    )
    try:
        alice.wait_for("call with bob connected")
        camera = wait_for_stats(bob, lambda s: _stamped(s) >= 10)
        assert camera["video"]["last_frame_number"] < PATTERN_FIRST
        address = camera["pair"]["local_address"]

        alice.type_line("/share")
        alice.wait_for("sharing the screen")
        bob.wait_for("alice is sharing the screen")
        shared = wait_for_stats(
            bob,
            lambda s: (
                (s["video"]["last_frame_number"] or 0) >= PATTERN_FIRST + 20
                and s["media"]["remote"]["video"] == "screen"
            ),
        )
        # Live: the pattern's numbers keep coming as it redraws.
        later = wait_for_stats(
            bob,
            lambda s: (
                (s["video"]["last_frame_number"] or 0) >= shared["video"]["last_frame_number"] + 10
            ),
        )
        assert later["video"]["stamped_frames"] > shared["video"]["stamped_frames"]

        alice.type_line("/camera")
        bob.wait_for("alice turned the camera on")
        back = wait_for_stats(
            bob,
            lambda s: (s["video"]["last_frame_number"] or PATTERN_FIRST) < PATTERN_FIRST,
        )
        assert back["pair"]["local_address"] == address  # the same call, nothing re-made
        assert not any("re-established" in line for line in bob.lines)
    finally:
        alice.stop()
        bob.stop()
        pattern.stop()


def test_video_screen_sends_the_chosen_monitor_from_the_start(
    signaling_server: Any, xvfb: Xvfb
) -> None:
    pattern = _pattern(xvfb)
    bob = start_peer(
        signaling_server, "--login", "bob", "--video", "none", "--audio", "none", *STATS
    )
    bob.wait_for("waiting for calls")
    alice = start_peer(
        signaling_server,
        "--login",
        "alice",
        "--call",
        "bob",
        "--video",
        "screen:1",
        "--audio",
        "none",
        env={"DISPLAY": xvfb.display},
    )
    try:
        alice.wait_for("call with bob connected")
        bob.wait_for("alice is sharing the screen")
        seen = wait_for_stats(
            bob, lambda s: (s["video"]["last_frame_number"] or 0) >= PATTERN_FIRST + 10
        )
        assert seen["video"]["stamped_frames"] >= 5
    finally:
        alice.stop()
        bob.stop()
        pattern.stop()


def test_video_screen_without_a_display_is_one_clear_error(signaling_server: Any) -> None:
    alice = start_peer(
        signaling_server,
        "--login",
        "alice",
        "--video",
        "screen:7",
        "--audio",
        "none",
        env={"DISPLAY": ":999"},
    )
    assert alice.wait() == 8
    assert any("cannot reach the screen" in line for line in alice.lines)
    assert not any("Traceback" in line for line in alice.lines)


def test_window_keys_m_and_v_mute_and_turn_the_camera_off(
    signaling_server: Any, xvfb: Xvfb
) -> None:
    bob = start_peer(signaling_server, "--login", "bob", *SYNTHETIC, *STATS)
    bob.wait_for("waiting for calls")
    alice = Process(
        [
            str(BIN / "webcam-peer"),
            "--server",
            signaling_server.ws_url,
            "--login",
            "alice",
            "--call",
            "bob",
            *SYNTHETIC,
            "--no-speaker",
            "--ice-host",
            "127.0.0.1",
        ],
        env={"DISPLAY": xvfb.display},
    )
    try:
        alice.wait_for("call with bob connected")
        wait_for_stats(bob, lambda s: _stamped(s) >= 10)
        _, (_, top, left) = wait_for_stamp(xvfb, 320 // 40)
        xvfb.xdotool("mousemove", str(left + 160), str(top + 120))
        xvfb.xdotool("key", "m")
        bob.wait_for("alice muted the microphone")
        xvfb.xdotool("key", "v")
        bob.wait_for("alice turned the camera off")
        wait_for_stats(bob, lambda s: _level(s) < SILENT_DBFS and s["video"]["black_frames"] >= 2)
        xvfb.xdotool("key", "m")
        xvfb.xdotool("key", "v")
        bob.wait_for("alice unmuted the microphone")
        bob.wait_for("alice turned the camera on")
        wait_for_stats(bob, lambda s: _level(s) > LOUD_DBFS)
    finally:
        alice.stop()
        bob.stop()
    assert not any("Traceback" in line for line in alice.lines + bob.lines)
