#!/usr/bin/env python3
"""Benchmark a call: the project's receive path against stock aiortc, in one run.

Starts a signaling server and, per configuration, two ``webcam-peer`` bot processes
on loopback that call each other with stamped synthetic video (both ways). Each bot
reads the stamp of every decoded frame, so capture-to-decoded latency needs no
clock but the machine's. Reported per configuration and receive path:

- call setup: call issued -> ICE/DTLS connected, and -> first remote frame decoded
- capture-to-decoded latency p50/p95/p99, delivered fps, freezes (gaps > 200 ms)
- CPU (% of one core) and peak RSS of each peer process
- echo round trip p50/p95: one side sends, the other returns what it decodes

Usage:
  scripts/bench_call.py                       # everything, 60 s per call
  scripts/bench_call.py --seconds 20 --only 640x480/vp8
  scripts/bench_call.py --write               # also rewrite docs/benchmarks.md
  scripts/bench_call.py --seconds 20 --only 640x480/vp8 --echo-seconds 0 --setup-calls 0 \
      --variant ours= --variant stock-cc='--congestion-control stock' --repeat 2
                                              # peer flags compared in one run, interleaved

A ``--variant LABEL=FLAGS`` call runs the fast receive path with FLAGS added to both
bots' command lines (the label stands in the "receive path" column); with variants
only they run, ``--repeat`` times in turn (A B A B) so a change in the machine's load
falls on all of them alike. The caller's sending figures (``congestion`` of its final
stats line) are printed for each.

Run it on a quiet machine: it measures CPU and latency, which another load skews.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchdoc import write_section  # noqa: E402
from benchproc import ReadProcess, cpu_seconds, free_port, memory_kib  # noqa: E402

CONFIGS = ("640x480/vp8", "640x480/h264", "1280x720/vp8", "1280x720/h264")
PATHS = ("fast", "stock")


class Bot(ReadProcess):
    """One peer process; keeps its JSON stats lines and reads its CPU and memory."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.final: dict[str, Any] | None = None
        self.sent_kbps: list[float] = []  # bitrate_out_kbps of every stats line
        super().__init__(argv)

    def _read(self, line: str) -> None:
        if line.startswith("{"):
            try:
                stats = json.loads(line)
            except json.JSONDecodeError:
                return
            if stats.get("event") == "final":
                self.final = stats
            elif isinstance(stats.get("bitrate_out_kbps"), int | float):
                self.sent_kbps.append(float(stats["bitrate_out_kbps"]))

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def peak_rss_mb(self) -> float:
        return memory_kib(self.process.pid, "VmHWM") / 1024

    def tail(self) -> str:
        return self._output.tail(15)


@dataclass
class CallResult:
    config: str
    path: str
    seconds: float
    setup_connected_ms: float | None = None
    setup_first_frame_ms: float | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    fps: float | None = None
    freezes: int = 0
    frames: int = 0
    gaps_abandoned: int | None = None  # the fast path gave up on a lost packet
    cpu_percent: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)
    error: str | None = None
    sending: dict[str, Any] = field(default_factory=dict)  # the caller's congestion figures


SENDING_FIGURES = (
    "sent_kbps_median",
    "target_kbps",
    "encoder_kbps",
    "send_kbps",
    "delay_decreases",
    "loss_decreases",
    "probes_sent",
    "probe_padding_sent",
    "alr_periods",
)


def run_call(
    server: str,
    config: str,
    path: str,
    seconds: float,
    *,
    echo: bool = False,
    extra: tuple[str, ...] = (),
) -> CallResult:
    """One call: bob answers, alice calls; both send stamped video unless ``echo``.
    ``extra``: flags added to both bots (a variant; ``path`` is then its label)."""
    size, codec = config.split("/")
    receive_path = "fast" if extra or path not in PATHS else path
    common = [
        "--server", server, "--no-window", "--no-speaker", "--ice-host", "127.0.0.1",
        "--stats-interval", "1", "--size", size, "--codec", codec,
        "--receive-path", receive_path, "--audio", "synthetic", *extra,
    ]  # fmt: skip
    tag = f"{int(time.time() * 1000) % 10_000_000}"
    caller, callee = f"alice{tag}", f"bob{tag}"
    bob_video = "echo" if echo else "synthetic"
    bob = Bot(
        [
            str(BIN / "webcam-peer"),
            "--login",
            callee,
            "--once",
            "--auto-answer",
            "--video",
            bob_video,
            *common,
        ]
    )
    time.sleep(0.5)
    alice = Bot(
        [str(BIN / "webcam-peer"), "--login", caller, "--call", callee, "--wait",
         "--video", "synthetic", *common]
    )  # fmt: skip
    result = CallResult(config, path, seconds)
    try:
        # Let the call settle before the CPU window opens, so start-up is not counted.
        time.sleep(3.0)
        start_cpu = [bot.cpu_seconds() for bot in (alice, bob)]
        started = time.monotonic()
        time.sleep(max(0.0, seconds - 3.0))
        elapsed = time.monotonic() - started
        result.cpu_percent = [
            round(100 * (bot.cpu_seconds() - before) / elapsed, 1)
            for bot, before in zip((alice, bob), start_cpu, strict=True)
        ]
        result.peak_rss_mb = [round(bot.peak_rss_mb(), 1) for bot in (alice, bob)]
    except (FileNotFoundError, ProcessLookupError):
        result.error = "a peer exited early"
    finally:
        alice.stop()
        bob.stop()
    final = alice.final
    if final is None:
        result.error = result.error or "no final stats from the caller"
        print(f"  {config} {path}: {result.error}\n{alice.tail()}", file=sys.stderr)
        return result
    video = final["video"]
    setup = final.get("setup_ms", {})
    result.setup_connected_ms = setup.get("connected")
    result.setup_first_frame_ms = setup.get("first_frame")
    result.latency_ms = video["latency_ms"]
    result.fps = video["average_fps"]
    result.freezes = video["freezes"]
    result.frames = video["frames"]
    result.gaps_abandoned = final.get("receive_path", {}).get("gaps_abandoned")
    congestion = final.get("congestion") or {}
    result.sending = {k: congestion.get(k) for k in ("mode", *SENDING_FIGURES) if k in congestion}
    if alice.sent_kbps:
        result.sending["sent_kbps_median"] = round(statistics.median(alice.sent_kbps), 1)
    return result


def sending_table(results: list[CallResult]) -> str:
    """The caller's sending figures at the end of each call."""
    rows = [r for r in results if r.sending]
    if not rows:
        return ""
    out = (
        "\n| video | variant | " + " | ".join(SENDING_FIGURES) + " |\n"
        "|---|---|" + "---|" * len(SENDING_FIGURES) + "\n"
    )
    for r in rows:
        out += (
            f"| {r.config} | {r.path} | "
            + " | ".join(fmt(r.sending.get(k)) for k in SENDING_FIGURES)
            + " |\n"
        )
    return out


def parse_variant(text: str) -> tuple[str, tuple[str, ...]]:
    """``LABEL=FLAGS`` -> (label, flags); the label names the variant in the tables."""
    label, sep, flags = text.partition("=")
    if not sep or not label.strip():
        raise argparse.ArgumentTypeError(f"a variant is LABEL=FLAGS, got {text!r}")
    return label.strip(), tuple(shlex.split(flags))


def start_server() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "signaling-server"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    return process, f"ws://127.0.0.1:{port}/ws"


def ratio(fast: float | None, stock: float | None) -> float | None:
    return round(fast / stock, 2) if fast is not None and stock else None


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list):
        return " / ".join(fmt(v) for v in value)
    return str(value)


def _ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(results: list[CallResult], echoes: list[CallResult]) -> str:
    header = (
        "| video | receive path | latency p50 / p95 / p99 ms | fps | freezes | gaps given up | "
        "setup: connected / first frame ms | CPU % (caller / callee) | peak RSS MB |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in results:
        lat = r.latency_ms
        rows.append(
            f"| {r.config} | {r.path} | {fmt(lat.get('p50'))} / {fmt(lat.get('p95'))} / "
            f"{fmt(lat.get('p99'))} | {fmt(r.fps)} | {r.freezes} | {fmt(r.gaps_abandoned)} | "
            f"{fmt(r.setup_connected_ms)} / {fmt(r.setup_first_frame_ms)} | "
            f"{fmt(r.cpu_percent)} | {fmt(r.peak_rss_mb)} |"
            + (f" error: {r.error}" if r.error else "")
        )
    out = header + "\n".join(rows) + "\n"
    by_key = {(r.config, r.path): r for r in results}
    ratios = []
    for config in dict.fromkeys(r.config for r in results):
        fast, stock = by_key.get((config, "fast")), by_key.get((config, "stock"))
        if fast and stock:
            for q in ("p50", "p95", "p99"):
                ratios.append(
                    f"{config} {q}: fast/stock = "
                    f"{_ratio_text(ratio(fast.latency_ms.get(q), stock.latency_ms.get(q)))}"
                )
    if ratios:
        out += "\nLatency ratios measured in the same run: " + "; ".join(ratios) + ".\n"
    if echoes:
        out += (
            "\n| echo round trip (640x480 VP8, both ends on the same path) | p50 ms | p95 ms |"
            "\n|---|---|---|\n"
        )
        for e in echoes:
            p50, p95 = e.latency_ms.get("p50"), e.latency_ms.get("p95")
            out += f"| {e.path} | {fmt(p50)} | {fmt(p95)} |\n"
    return out


def setup_summary(setups: list[CallResult]) -> str:
    connected = [s.setup_connected_ms for s in setups if s.setup_connected_ms is not None]
    first = [s.setup_first_frame_ms for s in setups if s.setup_first_frame_ms is not None]
    if not first:
        return ""
    return (
        f"\nCall setup over {len(first)} calls (640x480 VP8, fast path): call issued -> "
        f"connected p50 {statistics.median(connected):.1f} ms (max {max(connected):.1f}); "
        f"-> first frame decoded p50 {statistics.median(first):.1f} ms "
        f"(max {max(first):.1f}).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each call")
    parser.add_argument(
        "--only", action="append", choices=CONFIGS, help="run only this configuration"
    )
    parser.add_argument("--echo-seconds", type=float, default=15.0, help="0 skips the echo")
    parser.add_argument("--setup-calls", type=int, default=5, help="short calls for setup time")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--write", action="store_true", help="rewrite docs/benchmarks.md")
    parser.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        metavar="LABEL=FLAGS",
        help="compare peer flags instead of the receive paths (repeatable)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the variants this many times, interleaved"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.write and args.variant:
        parser.error("--write documents the receive paths; leave --variant out")
    if args.seconds < 5:
        parser.error("--seconds must be at least 5 (3 s of settling are not measured)")

    configs = args.only or list(CONFIGS)
    server, url = start_server()
    results: list[CallResult] = []
    echoes: list[CallResult] = []
    setups: list[CallResult] = []
    try:
        variants: list[tuple[str, tuple[str, ...]]] = args.variant or [(p, ()) for p in PATHS]
        for config in configs:
            for round_ in range(args.repeat if args.variant else 1):
                for label, extra in variants:
                    print(
                        f"call {config} {label} for {args.seconds:.0f} s (round {round_ + 1}) ...",
                        flush=True,
                    )
                    results.append(run_call(url, config, label, args.seconds, extra=extra))
        if args.echo_seconds > 0:
            for path in PATHS:
                print(f"echo {path} for {args.echo_seconds:.0f} s ...", flush=True)
                echoes.append(
                    run_call(url, "640x480/vp8", path, max(5.0, args.echo_seconds), echo=True)
                )
        for n in range(args.setup_calls):
            print(f"setup call {n + 1}/{args.setup_calls} ...", flush=True)
            setups.append(run_call(url, "640x480/vp8", "fast", 5.0))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)

    report = table(results, echoes) + sending_table(results) + setup_summary(setups)
    print()
    print(report)
    command = "scripts/bench_call.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "calls": [r.__dict__ for r in results],
                    "echo": [e.__dict__ for e in echoes],
                    "setup": [s.__dict__ for s in setups],
                },
                indent=2,
            )
        )
    if args.write:
        nproc = os.cpu_count()
        markdown = (
            "## Calls: the fast receive path against stock aiortc (`scripts/bench_call.py`)\n\n"
            f"Measured {time.strftime('%Y-%m-%d')} on {nproc} cores with\n"
            f"`{command.strip()}`: a signaling server and two bot processes on loopback,\n"
            "video both ways, latency read from the stamp in every decoded frame (the\n"
            "caller's side shown). CPU is the share of one core over the call after 3 s\n"
            "of settling.\n\n" + report
        )
        print(f"wrote {write_section('bench_call', markdown)}")
    return 0 if all(r.error is None for r in results + echoes + setups) else 1


if __name__ == "__main__":
    sys.exit(main())
