"""The call window for real: OpenCV under Xvfb, read back from screenshots."""

from __future__ import annotations

import time

import numpy as np
import pytest

from media.sinks.window import Overlay, VideoWindow
from tests.helpers.peer_support import start_peer
from tests.helpers.support import BIN, Process, SignalingServer
from tests.helpers.xvfb_support import Xvfb, find_stamp, wait_for_stamp

pytestmark = pytest.mark.slow

SIZE = ("--size", "320x240")
PAIR_LINE = "host/udp (host <-> host)"
CELL = 320 // 40


def alice_with_window(server: SignalingServer, xvfb: Xvfb) -> Process:
    """alice calling bob with her window on the X server, stats every 0.5 s."""
    return Process(
        [
            str(BIN / "webcam-peer"),
            "--server",
            server.ws_url,
            "--login",
            "alice",
            "--call",
            "bob",
            "--video",
            "synthetic",
            *SIZE,
            "--audio",
            "none",
            "--no-speaker",
            "--ice-host",
            "127.0.0.1",
            "--stats-interval",
            "0.5",
        ],
        env={"DISPLAY": xvfb.display},
    )


def last_overlay_line(video: np.ndarray, text: str) -> tuple[bool, bool]:
    """Whether ``text`` is drawn as the overlay's bottom line of a 320x240 ``video``
    (drawn here the same way and compared), and whether nothing else is there."""
    expected = np.zeros((240, 320, 3), dtype=np.uint8)
    VideoWindow._draw_overlay(expected, Overlay("bob", ["figures", text]))
    rows = slice(222, 238)
    want = expected[rows, :200].max(axis=2) > 200
    got = video[rows, :200].max(axis=2) > 200
    assert want.sum() > 50
    # Anti-aliased edges come out brighter over the (darkened) video than over black:
    # faint expected pixels may be bright on the screen, but nothing else may.
    faint = expected[rows, :200].max(axis=2) > 60
    return (want & got).sum() > 0.9 * want.sum(), (got & ~faint).sum() < 0.1 * want.sum()


def test_window_shows_the_remote_video_live_and_q_hangs_up(
    signaling_server: SignalingServer, xvfb: Xvfb
) -> None:
    bob = start_peer(
        signaling_server, "--login", "bob", "--video", "synthetic", *SIZE, "--audio", "none"
    )
    bob.wait_for("waiting for calls")
    alice = alice_with_window(signaling_server, xvfb)
    try:
        alice.wait_for("call with bob connected")
        alice.wait_for(r'"frames": [1-9]\d')  # a few dozen frames decoded
        first, (stamp, top, left) = wait_for_stamp(xvfb, CELL)
        time.sleep(0.7)
        later = find_stamp(xvfb.screenshot(), CELL)
        assert later is not None
        # The picture on the screen is live: bob's frame counter moved on (~21 at 30 fps).
        assert later[0].frame_number - stamp.frame_number >= 10

        # The video fills a 320x240 area; below its middle is the overlay band with text.
        video = first[top : top + 240, left : left + 320]
        assert video.shape[:2] == (240, 320)
        assert video.std() > 30, "the video area is flat, not bob's moving pattern"
        band = video[200:240, :200]
        assert (band.max(axis=2) > 200).sum() > 50, "no overlay text at the bottom"
        # Its last line names the candidate pair: drawn here the same way, it matches.
        shown, alone = last_overlay_line(video, PAIR_LINE)
        assert shown, f"{PAIR_LINE!r} is not on the screen"
        assert alone, f"more than {PAIR_LINE!r} there"
        # Alice's own picture is inset top-right (a quarter of the width), framed in white.
        inset_top_border = video[22:24, 230:314]
        assert inset_top_border.min() > 200

        xvfb.xdotool("mousemove", str(left + 160), str(top + 120))
        xvfb.xdotool("key", "q")
        assert alice.wait() == 0
        assert any("hanging up" in line for line in alice.lines)
        bob.wait_for("call with alice ended: alice hung up")
    finally:
        alice.stop()
        bob.stop()
    assert not any("Traceback" in line for line in alice.lines + bob.lines)
    assert np.count_nonzero(first) > 0


def test_a_chat_line_shows_in_the_window_for_a_few_seconds(
    signaling_server: SignalingServer, xvfb: Xvfb
) -> None:
    bob = start_peer(
        signaling_server, "--login", "bob", "--video", "synthetic", *SIZE, "--audio", "none"
    )
    bob.wait_for("waiting for calls")
    alice = alice_with_window(signaling_server, xvfb)
    chat = "bob: hello from bob"
    try:
        alice.wait_for("call with bob connected")
        alice.wait_for(r'"frames": [1-9]\d')
        bob.wait_for("chat with alice open")
        bob.type_line("hello from bob")
        alice.wait_for(rf"\] {chat}$")
        time.sleep(0.5)  # a few window ticks
        _, (_, top, left) = wait_for_stamp(xvfb, CELL)
        shown, alone = last_overlay_line(
            xvfb.screenshot()[top : top + 240, left : left + 320], chat
        )
        assert shown and alone, f"{chat!r} is not the overlay's last line"
        time.sleep(6.0)  # shown for 5 s, then the overlay is as before
        video = xvfb.screenshot()[top : top + 240, left : left + 320]
        assert last_overlay_line(video, PAIR_LINE) == (True, True)
    finally:
        alice.stop()
        bob.stop()
