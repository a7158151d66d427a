"""A shaped link between two network namespaces: the lab for calls on constrained links.

::

    side a                                  side b
    10.77.0.1 ==media (veth, shaped)======= 10.77.0.2      <- the media path
    10.78.1.2 --sig--+                +--sig-- 10.78.2.2   <- signaling only (UDP dropped)
                     10.78.1.1  "sig"  10.78.2.1
                     the signaling server on 0.0.0.0 (no forwarding)

Each end of ``media`` sends through ``tbf`` (rate, a queue of so many milliseconds),
so each direction is shaped by the side that sends into it, and each side loses
arriving UDP at random in its INPUT chain (iptables ``statistic``). Not in OUTPUT:
a packet dropped there fails the sender's ``sendto`` with EPERM, and a sender told
of its losses at once is not on a real lossy link. This kernel has no
``sch_netem``; where it exists, a netem root adds the profile's delay and jitter
(:func:`netem_available`), and where it does not the link has no delay but its queue.

The signaling paths carry no UDP at all (dropped both ways on each side's ``sig``)
and the "sig" namespace does not forward, so ICE can only succeed over ``media``;
TCP is dropped on ``media`` so Chromium's ICE-TCP cannot dodge the loss. A profile
is data (:data:`PROFILES`): a starting :class:`Shape` and timed changes, applied at
run time by :class:`Schedule` with ``tc qdisc change`` and ``iptables -R``.

Everything lives in namespaces named ``wplab-<pid>-<n>-<role>``: deleting them
removes every interface, qdisc and rule with them; nothing is changed in the
machine's own namespace. :func:`remove_stale_labs` deletes those whose creating
process is gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from tests.helpers.namespace_lab import NamespaceLab, remove_stale, run
from tests.helpers.support import BIN, Process

logger = logging.getLogger(__name__)

PREFIX: Final = "wplab-"
SIDES: Final = ("a", "b")
LINK_IP: Final = {"a": "10.77.0.1", "b": "10.77.0.2"}
SIGNALING_IP: Final = {"a": "10.78.1.1", "b": "10.78.2.1"}  # the server, as each side sees it
SIGNALING_SIDE_IP: Final = {"a": "10.78.1.2", "b": "10.78.2.2"}
SIGNALING_PORT: Final = 8080
LOSS_CHAIN: Final = "wplab-loss"
MIN_BURST_BYTES: Final = 2000  # above one 1500-byte packet, or tbf drops every full one


# ---- profiles: data -------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """What one direction of the link does, the same both ways."""

    rate_kbit: int
    loss: float = 0.0  # fraction of UDP packets dropped, 0.02 = 2 %
    queue_ms: int = 200  # how long a packet may wait in tbf's queue before it is dropped
    delay_ms: int = 0  # one way; only where netem exists
    jitter_ms: int = 0

    @property
    def burst_bytes(self) -> int:
        # 10 ms at the rate, and never below one full packet.
        return max(MIN_BURST_BYTES, self.rate_kbit * 1000 // 8 // 100)

    def describe(self) -> str:
        text = f"{self.rate_kbit} kbit/s, {self.queue_ms} ms queue"
        if self.loss:
            text += f", {self.loss * 100:g} % loss"
        if self.delay_ms:
            text += f", {self.delay_ms}±{self.jitter_ms} ms delay (netem only)"
        return text


@dataclass(frozen=True)
class Change:
    """The link becomes ``shape`` at ``at_s`` seconds into the call, or that long after the
    middle of the run when ``from_middle`` (negative: before it)."""

    at_s: float
    shape: Shape
    from_middle: bool = False

    def when(self, seconds: float) -> float:
        return seconds / 2 + self.at_s if self.from_middle else self.at_s


@dataclass(frozen=True)
class Profile:
    name: str
    start: Shape
    changes: tuple[Change, ...] = ()
    min_seconds: float = 0.0  # shorter runs miss part of the schedule (said, not refused)

    def schedule(self, seconds: float) -> list[tuple[float, Shape]]:
        """(seconds into the call, shape) from 0, only the changes before ``seconds``."""
        timed = sorted((change.when(seconds), change.shape) for change in self.changes)
        return [(0.0, self.start), *((at, shape) for at, shape in timed if 0 < at < seconds)]

    def shape_at(self, elapsed: float, seconds: float) -> Shape:
        current = self.start
        for at, shape in self.schedule(seconds):
            if at <= elapsed:
                current = shape
        return current

    def describe(self, seconds: float) -> str:
        steps = self.schedule(seconds)
        text = steps[0][1].describe()
        for at, shape in steps[1:]:
            text += f"; at {at:g} s: {shape.describe()}"
        return text


_STEP_HIGH = Shape(2000, queue_ms=300, delay_ms=20, jitter_ms=5)
_BURST_BASE = Shape(2000, queue_ms=300, delay_ms=20, jitter_ms=5)
PROFILES: Final[dict[str, Profile]] = {
    profile.name: profile
    for profile in (
        # A weak hotel or mobile link (issue 13): the collapse it was filed for.
        Profile("weak", Shape(300, loss=0.02, queue_ms=400, delay_ms=50, jitter_ms=10)),
        Profile("dsl", Shape(1000, loss=0.01, queue_ms=300, delay_ms=20, jitter_ms=5)),
        Profile("good", Shape(5000, queue_ms=200, delay_ms=10, jitter_ms=2)),
        Profile(
            "step",
            _STEP_HIGH,
            (
                Change(20, Shape(300, queue_ms=300, delay_ms=20, jitter_ms=5)),
                Change(40, _STEP_HIGH),
            ),
            min_seconds=60,
        ),
        Profile(
            "burst-loss",
            _BURST_BASE,
            (
                Change(-2.5, Shape(2000, loss=0.10, queue_ms=300, delay_ms=20, jitter_ms=5), True),
                Change(2.5, _BURST_BASE, True),
            ),
            min_seconds=20,
        ),
    )
}


# ---- what is run for a shape: pure ----------------------------------------------------------
def tbf_argv(action: str, shape: Shape, netem: bool) -> list[str]:
    """``tc qdisc add|change`` for the rate limiter on ``media`` (under netem when present)."""
    where = ["parent", "1:1", "handle", "10:"] if netem else ["root", "handle", "10:"]
    return ["tc", "qdisc", action, "dev", "media", *where, "tbf",
            "rate", f"{shape.rate_kbit}kbit", "burst", str(shape.burst_bytes),
            "latency", f"{shape.queue_ms}ms"]  # fmt: skip


def netem_argv(action: str, shape: Shape) -> list[str]:
    argv = ["tc", "qdisc", action, "dev", "media", "root", "handle", "1:", "netem"]
    argv += ["delay", f"{shape.delay_ms}ms"]
    if shape.jitter_ms:
        argv += [f"{shape.jitter_ms}ms", "distribution", "normal"]
    return argv


def loss_rule(shape: Shape) -> list[str]:
    """The one rule of :data:`LOSS_CHAIN` (rule 1), for ``iptables -A`` or ``-R ... 1``."""
    if shape.loss <= 0:
        return ["-j", "RETURN"]
    probability = f"{min(shape.loss, 1.0):.4f}"
    return ["-m", "statistic", "--mode", "random", "--probability", probability, "-j", "DROP"]


# ---- the namespaces ---------------------------------------------------------------------------
def remove_stale_labs() -> list[str]:
    return remove_stale(PREFIX)


def netem_available() -> bool:
    """Whether this kernel has sch_netem, tried on a throwaway namespace's loopback."""
    probe = f"{PREFIX}{os.getpid()}-netem-probe"
    subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    try:
        tried = subprocess.run(
            ["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
             "delay", "1ms"],
            capture_output=True,
        )  # fmt: skip
        return tried.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "delete", probe], capture_output=True)


@dataclass
class LinkCounters:
    """What ``tc -s`` says one side's end of the link has sent and dropped so far."""

    bytes_sent: int
    packets_sent: int
    dropped: int  # by the queue (full), not by the loss rule
    backlog_bytes: int


@dataclass
class ShapedLab(NamespaceLab):
    PREFIX: ClassVar[str] = PREFIX
    profile: Profile
    netem: bool = False  # add delay and jitter with netem (only where it exists)
    shape: Shape | None = None
    _schedule: Schedule | None = None

    def server_url(self, side: str) -> str:
        return f"ws://{SIGNALING_IP[side]}:{SIGNALING_PORT}/ws"

    def page_url(self, side: str) -> str:
        return f"http://{SIGNALING_IP[side]}:{SIGNALING_PORT}"

    def _build(self) -> None:
        sig = self._add_namespace("sig")
        a, b = (self._add_namespace(side) for side in SIDES)
        run(["ip", "link", "add", "name", "media", "netns", a, "type", "veth",
              "peer", "name", "media", "netns", b])  # fmt: skip
        for side, name in zip(SIDES, (a, b), strict=True):
            run(["ip", "-n", name, "addr", "add", f"{LINK_IP[side]}/24", "dev", "media"])
            run(["ip", "-n", name, "link", "set", "media", "up"])
            run(["ip", "link", "add", "sig", "netns", name, "type", "veth",
                  "peer", f"to-{side}", "netns", sig])  # fmt: skip
            run(["ip", "-n", sig, "addr", "add", f"{SIGNALING_IP[side]}/24", "dev", f"to-{side}"])
            run(["ip", "-n", sig, "link", "set", f"to-{side}", "up"])
            run(["ip", "-n", name, "addr", "add", f"{SIGNALING_SIDE_IP[side]}/24", "dev", "sig"])
            run(["ip", "-n", name, "link", "set", "sig", "up"])
            for rule in (["OUTPUT", "-o", "sig"], ["INPUT", "-i", "sig"]):
                self.sh(side, "iptables", "-A", *rule, "-p", "udp", "-j", "DROP")
            self.sh(side, "iptables", "-A", "OUTPUT", "-o", "media", "-p", "tcp", "-j", "DROP")
            self.sh(side, "iptables", "-N", LOSS_CHAIN)
            self.sh(side, "iptables", "-A", LOSS_CHAIN, *loss_rule(self.profile.start))
            self.sh(side, "iptables", "-A", "INPUT", "-i", "media", "-p", "udp", "-j", LOSS_CHAIN)
            if self.netem:
                self.sh(side, *netem_argv("add", self.profile.start))
            self.sh(side, *tbf_argv("add", self.profile.start, self.netem))
        self.shape = self.profile.start

    # ---- shaping at run time ----------------------------------------------------------------
    def apply(self, shape: Shape) -> None:
        """Both ends become ``shape`` (queued packets stay; the new rate drains them)."""
        for side in SIDES:
            self.sh(side, *tbf_argv("change", shape, self.netem))
            self.sh(side, "iptables", "-R", LOSS_CHAIN, "1", *loss_rule(shape))
            if self.netem:
                self.sh(side, *netem_argv("change", shape))
        self.shape = shape

    def follow(self, seconds: float) -> Schedule:
        """Apply the profile's changes at their times, counted from now."""
        self.stop_schedule()
        self._schedule = Schedule(self, seconds)
        self._schedule.start()
        return self._schedule

    def stop_schedule(self) -> None:
        if self._schedule is not None:
            self._schedule.stop()
            self._schedule = None

    def counters(self, side: str) -> LinkCounters:
        """The rate limiter's counters on ``side``'s end (what that side sent into the link)."""
        shown = subprocess.run(
            self.argv(side, ["tc", "-s", "-j", "qdisc", "show", "dev", "media"]),
            capture_output=True,
            text=True,
            check=True,
        )
        for qdisc in json.loads(shown.stdout):
            if qdisc.get("kind") == "tbf":
                return LinkCounters(
                    bytes_sent=int(qdisc.get("bytes", 0)),
                    packets_sent=int(qdisc.get("packets", 0)),
                    dropped=int(qdisc.get("drops", 0)),
                    backlog_bytes=int(qdisc.get("backlog", 0)),
                )
        raise RuntimeError(f"no tbf on {self.ns(side)}'s media link")

    def start_signaling(self, signaling_server: Path) -> Process:
        server = self.start(
            "sig", [str(signaling_server), "--host", "0.0.0.0", "--port", str(SIGNALING_PORT)]
        )
        server.wait_for("listening on")
        return server

    def chromium_wrapper(self, side: str, directory: Path, chromium: Path) -> Path:
        """A script Playwright can start as its browser that runs Chromium on ``side``."""
        wrapper = directory / f"chromium-in-{self.ns(side)}"
        wrapper.write_text(
            "#!/bin/sh\nexec " + " ".join(self.argv(side, [str(chromium)])) + ' "$@"\n'
        )
        wrapper.chmod(0o755)
        return wrapper

    def close(self) -> None:
        self.stop_schedule()
        super().close()


class Schedule:
    """A thread that applies a profile's changes at their times; ``applied`` says when."""

    def __init__(self, lab: ShapedLab, seconds: float) -> None:
        self.lab = lab
        self.seconds = seconds
        self.steps = lab.profile.schedule(seconds)[1:]
        self.started = time.monotonic()
        self.applied: list[tuple[float, Shape]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shaped-link", daemon=True)

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def capacity_kbit(self) -> int:
        shape = self.lab.shape
        return shape.rate_kbit if shape is not None else 0

    def _run(self) -> None:
        for at, shape in self.steps:
            if self._stop.wait(max(0.0, at - self.elapsed())):
                return
            try:
                self.lab.apply(shape)
            except RuntimeError as exc:  # a namespace torn down under us: say so, stop
                self.errors.append(str(exc))
                return
            self.applied.append((round(self.elapsed(), 2), shape))
            logger.info("link at %.1f s: %s", self.elapsed(), shape.describe())

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def snapshot(self) -> dict[str, Any]:
        return {"applied": [(at, shape.describe()) for at, shape in self.applied]}


@contextlib.contextmanager
def lab_with_signaling(profile: Profile) -> Iterator[ShapedLab]:
    """A fresh lab shaped as ``profile`` with its signaling server up, torn down on leaving
    (labs left by a killed run are removed first: their names would collide)."""
    remove_stale_labs()
    lab = ShapedLab(profile).build()
    try:
        lab.start_signaling(BIN / "signaling-server")
        yield lab
    finally:
        lab.close()


def start_lab_peer(lab: ShapedLab, side: str, flags: Sequence[str]) -> Process:
    """webcam-peer in ``side``'s namespace, talking to the lab's signaling server."""
    return lab.start(side, [str(BIN / "webcam-peer"), "--server", lab.server_url(side), *flags])
