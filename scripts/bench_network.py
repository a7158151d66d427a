#!/usr/bin/env python3
"""Calls on constrained links: webcam-peer, stock aiortc and Chromium, side by side.

Per profile (tests/helpers/shaped_link.py: two network namespaces joined by a veth pair,
each end rate-limited by tbf with a bounded queue, UDP lost at random by iptables,
the signaling server reachable only over separate UDP-free paths), in one run:

- ours: two webcam-peer bots, stamped synthetic video and tone both ways, default flags;
- stock: the same with aiortc's own receive path and, where the peer has the
  ``--congestion-control`` flag, without our congestion control;
- chromium: the call page in Debian's Chromium on each side (fake camera and
  microphone), calling each other over the same link.

A fresh lab per call, so no queue or rule carries over. Printed per side and per
second: received fps, decoded resolution, sending bitrate, the link's capacity and
what actually went through it, capture-to-decoded latency p50/p95 (the bots read
the stamps of the frames they decode; Chromium's is an estimate from its
counters, see tests/helpers/page_stats.py), freezes (gaps over 500 ms; Chromium's own
freezeCount for the pages), and whether the call held. Then a table per profile.

Usage (the script takes /tmp/webcam-peer-bench.lock itself):
  .venv/bin/python scripts/bench_network.py --profile weak --seconds 30
  .venv/bin/python scripts/bench_network.py --profile all --seconds 60 --write-doc
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import fcntl
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from benchdoc import write_section  # noqa: E402
from benchproc import ReadProcess  # noqa: E402

from tests.helpers.page_stats import (  # noqa: E402
    PAGE_STATS_JS,
    TWCC_URI,
    PageSecond,
    latency_estimate_ms,
    per_second,
)
from tests.helpers.shaped_link import (  # noqa: E402
    LINK_IP,
    PROFILES,
    SIDES,
    Profile,
    ShapedLab,
    netem_available,
    remove_stale_labs,
)

BIN: Final = Path(sys.executable).parent
LOCK: Final = Path("/tmp/webcam-peer-bench.lock")
NETWORK_MD: Final = ROOT / "docs" / "network.md"
CHROMIUM: Final = Path("/usr/bin/chromium")
CONFIGS: Final = ("ours", "stock", "chromium")
WARM_UP_S: Final = 5.0  # figures "after the first 5 s" leave the call's start out
LOGINS: Final = {"a": "alice", "b": "bob"}
CONNECT_TIMEOUT: Final = 45.0
FAILURE = re.compile(r"failed|could not re-establish|reconnecting the call|call with \S+ ended")


# ---- figures --------------------------------------------------------------------------------
@dataclass
class Second:
    """One side, one second: what it received and what it sent."""

    t: float
    fps: float | None
    width: int
    height: int
    send_kbps: float | None
    capacity_kbps: int
    through_kbps: float | None  # what the side's end of the link actually passed
    p50_ms: float | None
    p95_ms: float | None
    freezes: int  # new in this second: gaps over 500 ms (pages: Chromium's freezeCount)
    frozen_ms: float
    held: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        fps = "-" if self.fps is None else f"{self.fps:4.1f}"
        lat = f"{_fmt(self.p50_ms)}/{_fmt(self.p95_ms)}"
        congestion = self.extra.get("congestion") or {}
        if congestion.get("target_kbps") is not None:  # ours, with congestion control
            lat += f" ms est {congestion['target_kbps']:.0f} kbit/s"
            if congestion.get("sent_width"):
                lat += f" sent {congestion['sent_width']}x{congestion['sent_height']}"
        elif self.extra.get("available_kbps") is not None:  # Chromium's own estimate
            lat += f" ms est {self.extra['available_kbps']:.0f} kbit/s"
        else:
            lat += " ms"
        return (
            f"{fps} fps {self.width}x{self.height} send {_fmt(self.send_kbps)} "
            f"(link {self.capacity_kbps}, through {_fmt(self.through_kbps)}) kbit/s "
            f"lat {lat} frz {self.freezes}{'' if self.held else ' DOWN'}"
        )


@dataclass
class Run:
    profile: str
    config: str
    seconds: float
    seconds_run: float = 0.0
    sides: dict[str, list[Second]] = field(default_factory=lambda: {s: [] for s in SIDES})
    latency_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)  # whole call
    held: bool = False
    pair: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class SideSummary:
    fps_median: float | None
    fps_min: float | None
    resolution: str
    send_kbps_median: float | None
    link_use_pct: float | None  # median of sent / capacity, per second
    p50_ms: float | None
    p95_ms: float | None
    freezes: int
    frozen_s: float


def summarize(run: Run, side: str) -> SideSummary:
    rows = [s for s in run.sides[side] if s.t >= WARM_UP_S]
    fps = [s.fps for s in rows if s.fps is not None]
    sends = [s.send_kbps for s in rows if s.send_kbps is not None]
    use = [s.send_kbps / s.capacity_kbps * 100 for s in rows if s.send_kbps and s.capacity_kbps]
    sizes = collections.Counter(f"{s.width}x{s.height}" for s in rows if s.width)
    latency = run.latency_ms.get(side, {})
    return SideSummary(
        fps_median=_median(fps),
        fps_min=min(fps) if fps else None,
        resolution=", ".join(size for size, _ in sizes.most_common(2)) or "-",
        send_kbps_median=_median(sends),
        link_use_pct=_median(use),
        p50_ms=latency.get("p50"),
        p95_ms=latency.get("p95"),
        freezes=sum(s.freezes for s in rows),
        frozen_s=sum(s.frozen_ms for s in rows) / 1000,
    )


# ---- the webcam-peer bots -------------------------------------------------------------------
class Bot(ReadProcess):
    """A webcam-peer process in one side's namespace; its stats lines, with arrival times."""

    def __init__(self, argv: list[str]) -> None:
        self.stats: list[tuple[float, dict[str, Any]]] = []
        super().__init__(
            argv, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True
        )

    def _read(self, line: str) -> None:
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                self.stats.append((time.monotonic(), json.loads(line)))

    def wait_for(self, pattern: str, timeout: float) -> None:
        if self._output.search(pattern, timeout) is None:
            raise RuntimeError(f"no line matching {pattern!r}:\n" + self.tail())

    def failures(self) -> list[str]:
        return [line for line in self.lines if not line.startswith("{") and FAILURE.search(line)]

    def tail(self) -> str:
        return self._output.tail(12)


def congestion_flag() -> bool:
    """Whether this webcam-peer has ``--congestion-control`` (branch cc-shell adds it)."""
    shown = subprocess.run(
        [str(BIN / "webcam-peer"), "--help"], capture_output=True, text=True, check=False
    )
    return "--congestion-control" in shown.stdout


def bot_argv(
    lab: ShapedLab, side: str, config: str, cc_flag: bool, peer_args: Sequence[str] = ()
) -> list[str]:
    argv = [str(BIN / "webcam-peer"), "--login", LOGINS[side], "--server", lab.server_url(side),
            "--no-window", "--no-speaker", "--video", "synthetic", "--audio", "synthetic",
            "--stats-interval", "1"]  # fmt: skip
    argv += ["--call", LOGINS["b"]] if side == "a" else ["--once", "--auto-answer"]
    if config == "stock":
        argv += ["--receive-path", "stock", "--consent", "stock"]
        if cc_flag:
            argv += ["--congestion-control", "stock"]
    else:
        argv += peer_args
    return lab.argv(side, argv)


def _counter_delta(now: dict[str, Any], before: dict[str, Any], key: str) -> float:
    """How much a cumulative counter grew; a re-made call starts its counters again."""
    current, earlier = float(now.get(key) or 0), float(before.get(key) or 0)
    return current - earlier if current >= earlier else current


def _bot_second(
    t: float, previous: tuple[float, dict[str, Any]] | None, latest: tuple[float, dict[str, Any]]
) -> Second:
    """One side's second from its latest stats line (and the one used the second before)."""
    at, line = latest
    video = line.get("video") or {}
    fresh = previous is None or at > previous[0]
    fps = None
    freezes, frozen = 0, 0.0
    if previous is not None and fresh:
        before = previous[1].get("video") or {}
        fps = _counter_delta(video, before, "frames") / (at - previous[0])
        freezes = int(_counter_delta(video, before, "long_freezes"))
        frozen = _counter_delta(video, before, "long_freeze_ms")
    recent = video.get("latency_recent_ms") or {} if fresh else {}
    congestion = line.get("congestion")
    extra: dict[str, Any] = {"congestion": congestion} if congestion else {}
    if line.get("receive_path"):
        extra["receive_path"] = line["receive_path"]
    return Second(
        t=round(t, 1),
        fps=None if fps is None else round(fps, 1),
        width=int(video.get("width") or 0),
        height=int(video.get("height") or 0),
        send_kbps=line.get("bitrate_out_kbps") if fresh else None,
        capacity_kbps=0,
        through_kbps=None,
        p50_ms=recent.get("p50"),
        p95_ms=recent.get("p95"),
        freezes=freezes,
        frozen_ms=frozen,
        held=line.get("state") == "connected",
        extra=extra,
    )


class Progress:
    def __init__(self, label: str, seconds: float) -> None:
        self.label, self.seconds = label, seconds

    def second(self, t: float, rows: dict[str, Second]) -> None:
        parts = " | ".join(f"{side}: {row.text()}" for side, row in rows.items())
        print(f"[{self.label} {t:3.0f}/{self.seconds:.0f} s] {parts}", flush=True)


class LinkMeter:
    """Bytes each side's end of the link passed, per interval (tc counters)."""

    def __init__(self, lab: ShapedLab) -> None:
        self.lab = lab
        self.last: dict[str, tuple[float, int]] = {}

    def kbps(self, side: str) -> float | None:
        now, sent = time.monotonic(), self.lab.counters(side).bytes_sent
        before = self.last.get(side)
        self.last[side] = (now, sent)
        if before is None or now <= before[0]:
            return None
        return round((sent - before[1]) * 8 / (now - before[0]) / 1000, 1)


def bots_run(
    profile: Profile,
    config: str,
    seconds: float,
    cc_flag: bool,
    netem: bool,
    peer_args: Sequence[str] = (),
) -> Run:
    run = Run(profile.name, config, seconds)
    lab = ShapedLab(profile, netem=netem)
    bots: dict[str, Bot] = {}
    try:
        lab.build()
        lab.start_signaling(BIN / "signaling-server")
        bots["b"] = Bot(bot_argv(lab, "b", config, cc_flag, peer_args))
        bots["b"].wait_for("waiting for calls", 30)
        bots["a"] = Bot(bot_argv(lab, "a", config, cc_flag, peer_args))
        bots["a"].wait_for(r"call with bob connected", CONNECT_TIMEOUT)
        schedule = lab.follow(seconds)
        meter = LinkMeter(lab)
        for side in SIDES:
            meter.kbps(side)
        progress = Progress(f"{profile.name} {config}", seconds)
        used: dict[str, tuple[float, dict[str, Any]] | None] = {side: None for side in SIDES}
        while (t := schedule.elapsed()) < seconds:
            time.sleep(max(0.0, 1.0 - (t % 1.0)))
            t = schedule.elapsed()
            rows = {}
            for side in SIDES:
                stats = [s for s in bots[side].stats if s[1].get("event") == "stats"]
                if not stats:
                    continue
                row = _bot_second(t, used[side], stats[-1])
                used[side] = stats[-1]
                row.capacity_kbps = schedule.capacity_kbit()
                row.through_kbps = meter.kbps(side)
                run.sides[side].append(row)
                rows[side] = row
            progress.second(t, rows)
            if all(bot.process.poll() is not None for bot in bots.values()):
                run.notes.append("both bots exited before the end")
                break
        run.seconds_run = round(schedule.elapsed(), 1)
        lab.stop_schedule()
        failures = {side: bot.failures() for side, bot in bots.items()}  # not our hang-up
        for side in ("a", "b"):
            bots[side].stop()
        for side, bot in bots.items():
            finals = [s for _, s in bot.stats if s.get("event") == "final"]
            last = finals[-1] if finals else (bot.stats[-1][1] if bot.stats else {})
            run.latency_ms[side] = dict((last.get("video") or {}).get("latency_ms") or {})
            pair = last.get("pair") or {}
            run.pair[side] = f"{pair.get('local_address')} <-> {pair.get('remote_address')}"
            if not str(pair.get("local_address", "")).startswith(LINK_IP[side] + ":"):
                run.notes.append(f"{side}'s pair is not on the shaped link: {run.pair[side]}")
            run.notes += [f"{side}: {line}" for line in failures[side]]
        run.held = _held(run) and not any(failures.values())
    except RuntimeError as exc:
        run.error = str(exc).splitlines()[0] + "".join(
            f"\n    {line}" for line in str(exc).splitlines()[1:6]
        )
    finally:
        for bot in bots.values():
            bot.stop()
        lab.close()
    return run


def _held(run: Run) -> bool:
    """Connected to the end, frames still arriving in the last 5 s, on both sides."""
    for rows in run.sides.values():
        tail = [row for row in rows if row.t >= run.seconds_run - 5]
        if not rows or not all(row.held for row in tail):
            return False
        if not any((row.fps or 0) > 0 for row in tail):
            return False
    return True


# ---- Chromium <-> Chromium ------------------------------------------------------------------
async def chromium_run(profile: Profile, seconds: float, netem: bool) -> Run:
    from playwright.async_api import async_playwright

    from tests.helpers.browser_support import launch_chromium, login_page, wait_for_state

    run = Run(profile.name, "chromium", seconds)
    lab = ShapedLab(profile, netem=netem)
    browsers: list[Any] = []
    try:
        lab.build()
        lab.start_signaling(BIN / "signaling-server")
        with tempfile.TemporaryDirectory(prefix="bench-network-") as scratch:
            async with async_playwright() as playwright:
                pages = {}
                for side in SIDES:
                    wrapper = lab.chromium_wrapper(side, Path(scratch), CHROMIUM)
                    browser = await launch_chromium(playwright, wrapper, chromium_flags(lab, side))
                    browsers.append(browser)
                    pages[side] = await login_page(browser, lab.page_url(side), LOGINS[side])
                await pages["a"].fill("#callee", LOGINS["b"])
                await pages["a"].click("#call")
                for page in pages.values():
                    await wait_for_state(page, "in-call", CONNECT_TIMEOUT)
                    await page.wait_for_function(
                        "() => window.webcamPeer.pc && "
                        "window.webcamPeer.pc.connectionState === 'connected'",
                        timeout=CONNECT_TIMEOUT * 1000,
                    )
                await _measure_pages(run, lab, pages, seconds)
                for browser in browsers:
                    await browser.close()
                browsers.clear()
    except Exception as exc:  # Playwright's errors are many; any ends this run, reported
        run.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        for browser in browsers:
            with contextlib.suppress(Exception):
                await browser.close()
        lab.close()
    return run


def chromium_flags(lab: ShapedLab, side: str) -> tuple[str, ...]:
    return (
        # The camera needs a secure origin; the page is plain http on a lab address.
        f"--unsafely-treat-insecure-origin-as-secure={lab.page_url(side)}",
        "--use-fake-device-for-media-stream=fps=30",  # the bots' rate (its default is 20)
    )


async def _measure_pages(run: Run, lab: ShapedLab, pages: dict[str, Any], seconds: float) -> None:
    schedule = lab.follow(seconds)
    meter = LinkMeter(lab)
    for side in SIDES:
        meter.kbps(side)
    progress = Progress(f"{run.profile} chromium", seconds)
    previous = {side: await pages[side].evaluate(PAGE_STATS_JS, TWCC_URI) for side in SIDES}
    estimates: dict[str, list[float]] = {side: [] for side in SIDES}
    while (t := schedule.elapsed()) < seconds:
        await asyncio.sleep(max(0.0, 1.0 - (t % 1.0)))
        t = schedule.elapsed()
        samples = {side: await pages[side].evaluate(PAGE_STATS_JS, TWCC_URI) for side in SIDES}
        if any(sample is None for sample in samples.values()):
            run.notes.append(f"a page left the call at {t:.0f} s")
            break
        seconds_of = {side: per_second(samples[side], previous[side]) for side in SIDES}
        rows = {}
        for side, other in (("a", "b"), ("b", "a")):
            mine: PageSecond = seconds_of[side]
            estimate = latency_estimate_ms(seconds_of[other], mine)
            if estimate is not None:
                estimates[side].append(estimate)
            row = Second(
                t=round(t, 1),
                fps=None if mine.fps is None else round(mine.fps, 1),
                width=mine.width,
                height=mine.height,
                send_kbps=round(mine.send_kbps, 1),
                capacity_kbps=schedule.capacity_kbit(),
                through_kbps=meter.kbps(side),
                p50_ms=None if estimate is None else round(estimate, 1),
                p95_ms=None,
                freezes=mine.freezes,
                frozen_ms=mine.frozen_ms,
                held=samples[side]["state"] == "connected",
                extra={"rtt_ms": mine.rtt_ms, "available_kbps": mine.available_outgoing_kbps},
            )
            run.sides[side].append(row)
            rows[side] = row
        progress.second(t, rows)
        previous = samples
    run.seconds_run = round(schedule.elapsed(), 1)
    lab.stop_schedule()
    for side in SIDES:
        run.latency_ms[side] = {
            "p50": _percentile(estimates[side], 50),
            "p95": _percentile(estimates[side], 95),
        }
        pair = (previous[side] or {}).get("pair") or {}
        run.pair[side] = f"{pair.get('local')} <-> {pair.get('remote')} ({pair.get('protocol')})"
        if not str(pair.get("local", "")).startswith(LINK_IP[side] + ":"):
            run.notes.append(f"{side}'s pair is not on the shaped link: {run.pair[side]}")
        twcc = (previous[side] or {}).get("twcc") or {}
        run.notes.append(f"{side}: transport-cc negotiated: {all(twcc.values()) if twcc else '?'}")
    run.held = _held(run)


# ---- the report -----------------------------------------------------------------------------
def profile_table(runs: list[Run]) -> str:
    rows = [
        "| profile | call | side | fps median (min) | resolution | sending kbit/s | link use "
        "| latency p50 / p95 ms | freezes > 500 ms | held |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        if run.error:
            rows.append(f"| {run.profile} | {run.config} | - | error: {run.error.splitlines()[0]} "
                        "| | | | | | no |")  # fmt: skip
            continue
        for side in SIDES:
            s = summarize(run, side)
            approx = "~" if run.config == "chromium" else ""
            freezes = f"{s.freezes} ({s.frozen_s:.1f} s)" if s.freezes else "0"
            rows.append(
                f"| {run.profile} | {run.config} | {side} receives | {_fmt(s.fps_median, 1)} "
                f"({_fmt(s.fps_min, 1)}) | {s.resolution} | {_fmt(s.send_kbps_median)} | "
                f"{_fmt(s.link_use_pct)} % | {approx}{_fmt(s.p50_ms)} / {approx}{_fmt(s.p95_ms)} "
                f"| {freezes} | {'yes' if run.held else 'NO'} |"
            )
    return "\n".join(rows) + "\n"


METHOD = """\
Each call runs in a fresh lab (`tests/helpers/shaped_link.py`): two network namespaces
joined by a veth pair, each end limited by `tc qdisc ... root tbf rate R burst B
latency Q` (Q: how long a packet may queue before it is dropped); each side loses
arriving UDP at random (`iptables -A INPUT -m statistic --mode random`: in OUTPUT
the sender's `sendto` would fail with EPERM and tell it of every loss);
the signaling server sits in a third namespace reached over paths that carry no
UDP, so ICE can only use the shaped link (checked on the nominated pair of every
call). This kernel has no `sch_netem`, so the link adds no delay of its own: what
latency there is comes from its queue. Profile changes are applied during the
call (`tc qdisc change`, `iptables -R`), timed from the moment the call connected.

- **ours**: two `webcam-peer` bots, `--video synthetic --audio synthetic
  --stats-interval 1` (640x480, 30 fps, Opus), both sending, default flags.
- **stock**: the same with `--receive-path stock{cc_stock}.
- **chromium**: the call page in Debian's Chromium on each side, fake camera at
  30 fps and fake microphone, calling each other over the same link.

Per side, after the first {warm_up:.0f} s: fps decoded (median and minimum of the
per-second counts), decoded resolution, sending bitrate (everything the side sends:
video, audio, RTCP, retransmissions), link use (sending / capacity, median),
latency, freezes over 500 ms, and whether the call held to the end (connected,
frames still arriving in its last 5 s, no failure or re-established call). The
bots' latency is capture-to-decoded read from the stamp of every decoded frame
over the whole call. Chromium cannot read those stamps, so its figure (marked ~)
is an estimate from its own getStats counters: the sender's encode time and pacer
delay per packet, half the ICE round-trip time, and the receiver's first-packet-to-
decoded time per frame; it leaves capture out and errs low. Its freezes are its own
`freezeCount` (a frame shown more than max(3 x, 150 ms +) the mean frame interval
late), not gaps over 500 ms.
"""


def report_markdown(runs: list[Run], command: str, cc_flag: bool) -> str:
    cc_stock = (
        " --congestion-control stock` (aiortc's own receive path and sender)"
        if cc_flag
        else "` (this webcam-peer has no `--congestion-control` flag yet, so stock and "
        "ours differ only in the receive path)"
    )
    method = METHOD.format(cc_stock=cc_stock, warm_up=WARM_UP_S)
    seconds_of = {run.profile: run.seconds for run in runs}
    profiles = "\n".join(
        f"- `{name}` ({seconds:.0f} s calls): {PROFILES[name].describe(seconds)}"
        for name, seconds in seconds_of.items()
    )
    durations = "/".join(f"{s:.0f}" for s in sorted(set(seconds_of.values())))
    notes = "\n".join(f"- {run.profile} {run.config}: {note}" for run in runs for note in run.notes)
    return (
        "## Calls on constrained links (`scripts/bench_network.py`)\n\n"
        f"Measured {time.strftime('%Y-%m-%d')} at commit {_commit()} on {os.cpu_count()} "
        f"shared cores with\n{command}, {durations} s per call.\n\n"
        f"{method}\nProfiles (delay and jitter apply only where netem exists):\n\n{profiles}\n\n"
        f"{profile_table(runs)}\n" + (f"Notes:\n\n{notes}\n" if notes else "")
    )


def _commit() -> str:
    shown = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    )
    return shown.stdout.strip() or "?"


# ---- the lock, interruption, main -----------------------------------------------------------
@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    """The shared benchmark lock; already ours when started under ``flock LOCK ...``."""
    if _parent_holds_lock():
        yield
        return
    with LOCK.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {LOCK} (another benchmark is running)...", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _parent_holds_lock() -> bool:
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(parent) and parent[0].endswith(b"flock") and str(LOCK).encode() in parent


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Each lab and its processes are removed by the code that made them, on the way out.
        print("interrupted: every lab namespace and process removed", flush=True)
        return 130


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--profile", default="weak", help=f"{'|'.join(PROFILES)}|all, or several: weak,dsl"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="per call, once connected")
    parser.add_argument("--only", action="append", choices=CONFIGS, help="these calls only")
    parser.add_argument("--json", type=Path, help="also write every per-second figure here")
    parser.add_argument(
        "--peer-arg", action="append", default=[], metavar="ARG",
        help="one more webcam-peer argument for the ours calls (repeat; e.g. "
        "--peer-arg=--nack --peer-arg=stock to compare a flag's settings)",
    )  # fmt: skip
    parser.add_argument(
        "--from-json", type=Path, action="append", metavar="FILE",
        help="run nothing: report the runs saved by earlier --json runs (several allowed)",
    )  # fmt: skip
    parser.add_argument(
        "--write-doc", action="store_true", help="rewrite the section in docs/benchmarks.md "
        "and docs/network.md"
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.seconds < 10:
        parser.error("--seconds must be at least 10")
    if os.geteuid() != 0:
        parser.error("the lab makes network namespaces: run it as root")
    names = list(PROFILES) if args.profile == "all" else args.profile.split(",")
    if unknown := [name for name in names if name not in PROFILES]:
        parser.error(f"no profile {', '.join(unknown)}; there are {', '.join(PROFILES)} and all")
    configs = args.only or list(CONFIGS)
    cc_flag = congestion_flag()
    if args.from_json:
        return _report_saved(args.from_json, cc_flag, args.write_doc)
    print(
        "webcam-peer has --congestion-control: stock runs add --congestion-control stock"
        if cc_flag
        else "webcam-peer has no --congestion-control flag: stock differs by --receive-path only",
        flush=True,
    )
    runs: list[Run] = []
    with bench_lock():
        remove_stale_labs()
        netem = netem_available()
        print(f"netem: {'present, delay and jitter added' if netem else 'absent, no delay'}")
        try:
            for name in names:
                profile = PROFILES[name]
                if args.seconds < profile.min_seconds:
                    print(f"{name}: {args.seconds:.0f} s is shorter than its schedule "
                          f"({profile.min_seconds:.0f} s); later changes are left out")  # fmt: skip
                print(f"== {name}: {profile.describe(args.seconds)}", flush=True)
                for config in configs:
                    if config == "chromium":
                        run = asyncio.run(chromium_run(profile, args.seconds, netem))
                    else:
                        run = bots_run(profile, config, args.seconds, cc_flag, netem, args.peer_arg)
                    runs.append(run)
                    for note in run.notes:
                        print(f"{name} {config}: {note}", flush=True)
                    if run.error:
                        print(f"{name} {config}: error: {run.error}", flush=True)
                print(profile_table([run for run in runs if run.profile == name]), flush=True)
        finally:
            remove_stale_labs()
    command = "scripts/bench_network.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(profile_table(runs))
    if args.json:
        args.json.write_text(json.dumps([asdict(run) for run in runs], indent=1))
    if args.write_doc:
        _write_doc(report_markdown(runs, f"`{command.strip()}`", cc_flag))
    return 1 if any(run.error for run in runs) else 0


def load_runs(path: Path) -> list[Run]:
    """The runs an earlier ``--json`` saved."""
    runs = []
    for saved in json.loads(path.read_text()):
        sides = {side: [Second(**row) for row in rows] for side, rows in saved["sides"].items()}
        runs.append(Run(**{**saved, "sides": sides}))
    return runs


def _report_saved(paths: list[Path], cc_flag: bool, write_doc: bool) -> int:
    try:
        runs = [run for path in paths for run in load_runs(path)]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        print(f"cannot read the saved runs: {exc}", file=sys.stderr)
        return 2
    print(profile_table(runs))
    if write_doc:
        invocations = dict.fromkeys(
            f"`scripts/bench_network.py --profile {run.profile} --seconds {run.seconds:.0f}`"
            for run in runs
        )
        _write_doc(report_markdown(runs, ", ".join(invocations) + " (one run each)", cc_flag))
    return 1 if any(run.error for run in runs) else 0


def _write_doc(markdown: str) -> None:
    for path in (write_section("bench_network", markdown),
                 write_section("bench_network", markdown, NETWORK_MD)):  # fmt: skip
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
