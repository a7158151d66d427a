"""Calls over a shaped link (tests/helpers/shaped_link.py): the `weak` profile, 300 kbit/s each way
with a 400 ms queue and 2 % loss, the link issue 13 was filed for.

Floors here are far below issue 13's targets (those are benchmark figures,
scripts/bench_network.py): the call holds, frames keep coming both ways after the
first seconds, and the sender stays near the link instead of pushing megabits into
it. They hold thanks to the send-side congestion control (``--congestion-control
gcc``, the default); with ``--congestion-control stock`` the sender floods the link
and the call collapses (docs/network.md).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from tests.helpers.browser_support import CHROMIUM, launch_chromium, login_page, wait_for_state
from tests.helpers.page_stats import PAGE_STATS_JS, TWCC_URI, per_second
from tests.helpers.peer_support import stats_lines
from tests.helpers.shaped_link import (
    LINK_IP,
    PROFILES,
    ShapedLab,
    lab_with_signaling,
    start_lab_peer,
)
from tests.helpers.support import Process

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

WEAK = PROFILES["weak"]
LINK_KBPS = WEAK.start.rate_kbit
CALL_SECONDS = 25.0
WARM_UP = 5.0  # the first seconds: ramp-up, the first keyframe through a 400 ms queue
MIN_FPS = 5.0  # decoded, median over the seconds after the warm-up (target: 15)
MAX_SEND_PCT = 150.0  # median send rate against the link (target: 110 %)
# The start's probes (3 x, then 6 x the start rate if the first kept up): periodic probes
# come only while application-limited, which a sender filling this link is not (they
# were misread through the token bucket). Probes on evidence (the acknowledged rate
# passing the old capacity, a large drop while application-limited) are not counted.
MAX_UNPROMPTED_PROBES = 2
BOT = ("--no-window", "--no-speaker", "--auto-answer", "--video", "synthetic",
       "--audio", "synthetic", "--stats-interval", "1")  # fmt: skip


@pytest.fixture
def weak_lab() -> Iterator[ShapedLab]:
    with lab_with_signaling(WEAK) as lab:
        yield lab


def start_bot(lab: ShapedLab, side: str, *args: str) -> Process:
    return start_lab_peer(lab, side, (*BOT, *args))


def no_failures(process: Process) -> None:
    lines = process.drain()
    broken = [
        line
        for line in lines
        if "failed" in line or "re-established" in line or "Traceback" in line
    ]
    assert not broken, "\n".join(lines[-40:])


class StatsClock:
    """Stamps each stats line of a process with when the test first saw it."""

    def __init__(self, process: Process, connected_at: float) -> None:
        self.process, self.connected_at = process, connected_at
        self.seen: list[tuple[float, dict[str, Any]]] = []

    def poll(self) -> None:
        lines = stats_lines(self.process)
        now = time.monotonic() - self.connected_at
        self.seen += [(now, line) for line in lines[len(self.seen) :]]

    def after(self, seconds: float) -> list[tuple[float, dict[str, Any]]]:
        return [(t, line) for t, line in self.seen if t >= seconds and line["event"] == "stats"]


def decoded_fps(seen: list[tuple[float, dict[str, Any]]]) -> list[float]:
    """Frames decoded per second between consecutive stats lines."""
    rates = []
    for (t0, old), (t1, new) in itertools.pairwise(seen):
        if t1 > t0:
            rates.append(
                (new["video"].get("frames", 0) - old["video"].get("frames", 0)) / (t1 - t0)
            )
    return rates


def send_kbps(seen: list[tuple[float, dict[str, Any]]]) -> list[float]:
    return [line["bitrate_out_kbps"] for _, line in seen if line["bitrate_out_kbps"] is not None]


def on_the_shaped_link(line: dict[str, Any], side: str) -> bool:
    return str((line.get("pair") or {}).get("local_address", "")).startswith(LINK_IP[side] + ":")


def measure(clocks: list[StatsClock], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.25)
        for clock in clocks:
            clock.poll()


def test_a_python_call_holds_on_a_weak_link(weak_lab: ShapedLab) -> None:
    bob = start_bot(weak_lab, "b", "--login", "bob", "--once")
    bob.wait_for("waiting for calls")
    alice = start_bot(weak_lab, "a", "--login", "alice", "--call", "bob")
    alice.wait_for("call with bob connected", 30)
    connected = time.monotonic()
    clocks = [StatsClock(alice, connected), StatsClock(bob, connected)]
    measure(clocks, CALL_SECONDS)
    report = {}
    for side, clock in zip(("a", "b"), clocks, strict=True):
        seen = clock.after(WARM_UP)
        assert len(seen) >= CALL_SECONDS - WARM_UP - 5, "stats lines stopped coming"
        assert all(line["state"] == "connected" for _, line in seen)
        assert on_the_shaped_link(seen[-1][1], side), seen[-1][1]["pair"]
        fps, sent = decoded_fps(seen), send_kbps(seen)
        # Frames keep arriving: in every 5 s after the warm-up, not just on average.
        frames = [(t, line["video"]["frames"]) for t, line in seen]
        for t, count in frames:
            later = [c for u, c in frames if t + 5 <= u]
            assert not later or later[0] > count, f"{side}: no frame for 5 s after {t:.0f} s"
        report[side] = (statistics.median(fps), statistics.median(sent))
        assert statistics.median(fps) >= MIN_FPS, (side, fps)
        assert statistics.median(sent) <= LINK_KBPS * MAX_SEND_PCT / 100, (side, sent)
        congestion = seen[-1][1]["congestion"]
        prompted = congestion.get("faster_probes", 0) + congestion.get("drop_probes", 0)
        assert congestion["probes_sent"] - prompted <= MAX_UNPROMPTED_PROBES, (side, congestion)
    logger.info("weak link, fps and kbit/s sent after %.0f s: %s", WARM_UP, report)
    for process in (alice, bob):
        no_failures(process)


# ---- Python <-> Chromium ----------------------------------------------------------------------
async def page_sample(page: Page) -> dict[str, Any]:
    sample: dict[str, Any] | None = await page.evaluate(PAGE_STATS_JS, TWCC_URI)
    assert sample is not None, "the page is no longer in a call"
    return sample


async def test_python_and_chromium_steer_each_other_on_a_weak_link(
    weak_lab: ShapedLab, tmp_path: Path
) -> None:
    """Chromium on side a calls a bot on side b; both send. Each side's transport-cc
    feedback drives the other's sender: frames get through both ways, both senders stay
    near the link, and the feedback is negotiated and flowing in both directions."""
    bob = start_bot(weak_lab, "b", "--login", "bob", "--once")
    bob.wait_for("waiting for calls")
    wrapper = weak_lab.chromium_wrapper("a", tmp_path, CHROMIUM)
    secure = f"--unsafely-treat-insecure-origin-as-secure={weak_lab.page_url('a')}"
    async with async_playwright() as playwright:
        chromium = await launch_chromium(
            playwright, wrapper, (secure, "--use-fake-device-for-media-stream=fps=30")
        )
        try:
            carol = await login_page(chromium, weak_lab.page_url("a"), "carol")
            await carol.fill("#callee", "bob")
            await carol.click("#call")
            await asyncio.to_thread(bob.wait_for, "call with carol connected", 30)
            await wait_for_state(carol, "in-call")
            connected = time.monotonic()
            clock = StatsClock(bob, connected)
            await asyncio.sleep(WARM_UP)
            first = await page_sample(carol)
            page_seconds = []
            previous = first
            while time.monotonic() - connected < CALL_SECONDS:
                await asyncio.sleep(1.0)
                clock.poll()
                sample = await page_sample(carol)
                page_seconds.append(per_second(sample, previous))
                previous = sample
            clock.poll()
        finally:
            await chromium.close()
    last = previous

    # Chromium -> Python: decoded by the bot, sent near the link.
    seen = clock.after(WARM_UP)
    bob_fps = statistics.median(decoded_fps(seen))
    assert bob_fps >= MIN_FPS, decoded_fps(seen)
    page_sent = statistics.median(s.send_kbps for s in page_seconds)
    assert page_sent <= LINK_KBPS * MAX_SEND_PCT / 100, page_seconds
    # Python -> Chromium: decoded by the page, sent near the link.
    page_fps = statistics.median(s.fps or 0.0 for s in page_seconds)
    assert page_fps >= MIN_FPS, [s.fps for s in page_seconds]
    bob_sent = statistics.median(send_kbps(seen))
    assert bob_sent <= LINK_KBPS * MAX_SEND_PCT / 100, send_kbps(seen)
    assert on_the_shaped_link(seen[-1][1], "b"), seen[-1][1]["pair"]
    assert str((last.get("pair") or {}).get("local", "")).startswith(LINK_IP["a"] + ":")

    # transport-cc both ways: negotiated on the page's sender and receiver ...
    assert last["twcc"] == {
        "send_extension": True,
        "receive_extension": True,
        "local_feedback": True,
        "remote_feedback": True,
    }
    # ... and flowing: the bot got Chromium's feedback and sent its own.
    congestion = seen[-1][1]["congestion"]
    assert congestion["transport_cc"] is True, congestion
    assert congestion["feedback_received"] > 0 and congestion["feedback_sent"] > 0, congestion
    logger.info(
        "weak link: page decodes %.1f fps, sends %.0f kbit/s; bot decodes %.1f fps, sends "
        "%.0f kbit/s; bot's congestion figures %s",
        page_fps,
        page_sent,
        bob_fps,
        bob_sent,
        congestion,
    )
    no_failures(bob)
