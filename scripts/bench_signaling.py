#!/usr/bin/env python3
"""Load benchmark of the signaling server against the tutorial's Node.js server.

N clients log in, pair up, and each sends M offers of B bytes to its partner; the same
load runs, in the same invocation, against our server and against the tutorial's Node
`ws` server (benchmarks/tutorial-server.js). Reported per server: connect+login time,
server RSS, server CPU time per relayed message (the primary figure: on two cores the
generator and the server compete, so throughput alone is noisy), relay throughput,
latency p50/p95/p99, lost/duplicated/out-of-order counts and the generator's own CPU.
With several runs the figures are medians, runs alternating between the servers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from benchproc import cpu_seconds, free_port, memory_kib, redis_server_argv
from loadgen import LoadSpec, run_worker

ROOT: Final = Path(__file__).resolve().parent.parent
NODE_SERVER: Final = ROOT / "benchmarks" / "tutorial-server.js"
BIN: Final = Path(sys.executable).parent
SERVER_KINDS: Final = ("python", "node", "python-redis")
LOCKED: Final = "flock /tmp/webcam-peer-bench.lock .venv/bin/python scripts/bench_signaling.py"

EPILOG = """\
servers (--servers, comma-separated):
  python        our signaling-server, one process (in-memory routing)
  node          the tutorial's server: node benchmarks/tutorial-server.js (npm ci --prefix
                benchmarks installs its `ws`; scripts/setup.sh --test does)
  python-redis  two signaling-server processes sharing a redis-server this script starts;
                the two clients of every pair are on different processes

examples:
  scripts/bench_signaling.py                           # 200 clients x 1000 offers, python vs node
  scripts/bench_signaling.py --runs 3 --size 4096      # medians of 3 runs, 4 KiB offers
  scripts/bench_signaling.py --rate 20 --messages 100  # light load: 20 offers/s per client
  scripts/bench_signaling.py --clients 10000 --messages 2 --window 1   # capacity and RSS
  scripts/bench_signaling.py --servers python,python-redis             # the Redis path's cost
  scripts/bench_signaling.py --suite --write-doc       # the figures in docs/benchmarks.md

Run it under the shared lock on the project machine:
  flock /tmp/webcam-peer-bench.lock .venv/bin/python scripts/bench_signaling.py ...
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int = 200
    messages: int = 1000
    size: int = 1024
    rate: float = 0.0
    window: int = 8
    workers: int = 1


# The standard set behind docs/benchmarks.md (--suite): about four minutes.
RELAY: Final = Scenario("relay")
LIGHT: Final = Scenario("light load", rate=20.0, messages=100)
CAPACITY: Final = Scenario("10k connections", clients=10_000, messages=2, window=1)
SUITE: Final = (  # scenario, servers, runs
    (RELAY, ("python", "node", "python-redis"), 5),
    (LIGHT, ("python", "node"), 3),
    (CAPACITY, ("python", "node"), 3),
)

METHOD: Final = """\
How it measures: a fresh server per run; the generator (scripts/loadgen.py, raw asyncio
protocols) connects and logs in every client, pairs them (an offer and its
answer), then starts the relay. Server CPU is user+system time of the server
process(es) from /proc/PID/stat over the relay alone, divided by the messages
received; RSS is VmRSS after every client logged in, peak is VmHWM. Latency is
receive time minus the send time carried in the SDP. The Node server runs with
`--quiet` (no per-message console.log), so it is measured at its fastest. The two
cores are shared with the generator and with whatever else runs on the machine;
contention makes a server batch more and so lowers CPU per message for every server
alike, which is why runs alternate between the servers and figures are medians."""


# ---- the processes under test ----------------------------------------------------------
@dataclass
class Started:
    """Processes started for one run, their WebSocket URLs, and the ones measured."""

    urls: tuple[str, ...]
    measured: list[subprocess.Popen[bytes]]
    helpers: list[subprocess.Popen[bytes]]


def _wait_for_line(process: subprocess.Popen[bytes], log: Path, text: str, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.02)
    raise SystemExit(
        f"bench_signaling: {what} did not start; its output:\n{log.read_text(errors='replace')}"
    )


def _spawn(argv: Sequence[str], log: Path, ready: str, what: str) -> subprocess.Popen[bytes]:
    # Output to a file, not a pipe nobody reads: a chatty server must never block.
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT
        )
    _wait_for_line(process, log, ready, what)
    return process


def _python_server(workdir: Path, name: str, clients: int, *extra: str) -> tuple[Any, str]:
    port = free_port()
    argv = [
        str(BIN / "signaling-server"),
        "--port",
        str(port),
        # The benchmark sends far above the default per-connection limit of 50/s.
        "--rate-limit",
        "0",
        "--max-connections",
        str(max(10_000, clients + 100)),
        # Every benchmark client comes from 127.0.0.1, far beyond the per-address cap.
        "--max-per-ip",
        str(max(10_000, clients + 100)),
        *extra,
    ]
    process = _spawn(argv, workdir / f"{name}.log", "listening on", f"signaling-server ({name})")
    return process, f"ws://127.0.0.1:{port}/ws"


@contextmanager
def started(kind: str, clients: int) -> Iterator[Started]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-signaling-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if kind == "python":
            process, url = _python_server(workdir, "python", clients)
            processes.append(process)
            yield Started((url,), [process], [])
        elif kind == "node":
            if not (ROOT / "benchmarks" / "node_modules" / "ws").is_dir():
                raise SystemExit(
                    "bench_signaling: the Node server's `ws` is not installed; run "
                    "`npm ci --prefix benchmarks` (scripts/setup.sh --test does)"
                )
            port = free_port()
            process = _spawn(
                ["node", str(NODE_SERVER), "--quiet", str(port)],
                workdir / "node.log",
                "listening on",
                "the tutorial's Node server",
            )
            processes.append(process)
            yield Started((f"ws://127.0.0.1:{port}/",), [process], [])
        elif kind == "python-redis":
            port = free_port()
            redis = _spawn(
                redis_server_argv("redis-server", port, workdir),
                workdir / "redis.log",
                "Ready to accept connections",
                "redis-server",
            )
            processes.append(redis)
            url = f"redis://127.0.0.1:{port}/0"
            first, first_url = _python_server(workdir, "python-a", clients, "--redis", url)
            processes.append(first)
            second, second_url = _python_server(workdir, "python-b", clients, "--redis", url)
            processes.append(second)
            yield Started((first_url, second_url), [first, second], [redis])
        else:
            raise SystemExit(f"bench_signaling: unknown server {kind!r}")
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


# ---- one run ---------------------------------------------------------------------------
def _split(total: int, parts: int) -> list[int]:
    """Clients per worker: pairs never straddle two workers."""
    pairs = total // 2
    return [2 * (pairs // parts + (1 if i < pairs % parts else 0)) for i in range(parts)]


def _receive(pipe: Any, expected: str, timeout: float) -> Any:
    if not pipe.poll(timeout):
        raise SystemExit(f"bench_signaling: a load worker did not report {expected!r} in time")
    kind, value = pipe.recv()
    if kind == "failed":
        raise SystemExit(f"bench_signaling: load worker failed: {value}")
    assert kind == expected, (kind, expected)
    return value


def percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def run_once(kind: str, scenario: Scenario) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    with started(kind, scenario.clients) as servers:
        pipes, workers = [], []
        first = 0
        for count in _split(scenario.clients, scenario.workers):
            spec = LoadSpec(
                urls=servers.urls,
                first_client=first,
                clients=count,
                messages=scenario.messages,
                size=scenario.size,
                rate=scenario.rate,
                window=scenario.window,
            )
            first += count
            parent, child = context.Pipe()
            worker = context.Process(target=run_worker, args=(spec, child), daemon=True)
            worker.start()
            pipes.append(parent)
            workers.append(worker)
        try:
            connected = [_receive(pipe, "connected", 120) for pipe in pipes]
            for pipe in pipes:
                _receive(pipe, "paired", 60)
            pids = [p.pid for p in servers.measured]
            rss_idle = sum(memory_kib(pid) for pid in pids)
            helper_pids = [p.pid for p in servers.helpers]
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            helper_before = sum(cpu_seconds(pid) for pid in helper_pids)
            for pipe in pipes:
                pipe.send("go")
            relayed = [_receive(pipe, "relayed", 600) for pipe in pipes]
            cpu_after = sum(cpu_seconds(pid) for pid in pids)
            helper_after = sum(cpu_seconds(pid) for pid in helper_pids)
            rss_peak = sum(memory_kib(pid, "VmHWM") for pid in pids)
        finally:
            for pipe in pipes:
                pipe.send("stop")
            for worker in workers:
                worker.join(timeout=30)
                if worker.is_alive():
                    worker.kill()

    received = sum(r["received"] for r in relayed)
    latencies = array("d")
    for r in relayed:
        latencies.frombytes(r["latencies_us"])
    ordered = sorted(latencies)
    seconds = (
        max(r["last_receive_ns"] for r in relayed) - min(r["first_send_ns"] for r in relayed)
    ) / 1e9
    server_cpu = cpu_after - cpu_before
    result: dict[str, Any] = {
        "server": kind,
        "scenario": scenario.name,
        "clients": sum(c["clients"] for c in connected),
        "connect_seconds": max(c["seconds"] for c in connected),
        "connect_p99_ms": max(c["p99_ms"] for c in connected),
        "rss_idle_mb": rss_idle / 1024,
        "rss_peak_mb": rss_peak / 1024,
        "expected": sum(r["expected"] for r in relayed),
        "received": received,
        "lost": sum(r["lost"] for r in relayed),
        "duplicated": sum(r["duplicated"] for r in relayed),
        "reordered": sum(r["reordered"] for r in relayed),
        "misattributed": sum(r["misattributed"] for r in relayed),
        "error_count": sum(r["error_count"] for r in relayed),
        "errors": [e for r in relayed for e in r["errors"]][:5],
        "failures": [r["failure"] for r in relayed if r["failure"]],
        "seconds": seconds,
        "throughput": received / seconds if seconds > 0 else 0.0,
        "server_cpu_seconds": server_cpu,
        "server_cpu_us_per_msg": 1e6 * server_cpu / received if received else float("nan"),
        "redis_cpu_us_per_msg": (
            1e6 * (helper_after - helper_before) / received if helper_pids and received else None
        ),
        "generator_cpu_us_per_msg": (
            1e6 * sum(r["cpu_seconds"] for r in relayed) / received if received else float("nan")
        ),
        "latency_p50_ms": percentile(ordered, 0.50) / 1000,
        "latency_p95_ms": percentile(ordered, 0.95) / 1000,
        "latency_p99_ms": percentile(ordered, 0.99) / 1000,
    }
    return result


# ---- many runs, medians, report --------------------------------------------------------
MEDIAN_FIELDS: Final = (
    "connect_seconds",
    "rss_idle_mb",
    "rss_peak_mb",
    "throughput",
    "server_cpu_us_per_msg",
    "redis_cpu_us_per_msg",
    "generator_cpu_us_per_msg",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)
SUM_FIELDS: Final = ("expected", "received", "lost", "duplicated", "reordered", "misattributed")


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"runs": len(runs), "server": runs[0]["server"]}
    for name in MEDIAN_FIELDS:
        values = [r[name] for r in runs if r[name] is not None]
        summary[name] = statistics.median(values) if values else None
    summary["server_cpu_us_per_msg_each"] = [r["server_cpu_us_per_msg"] for r in runs]
    for name in SUM_FIELDS:
        summary[name] = sum(r[name] for r in runs)
    summary["clients"] = runs[0]["clients"]
    summary["error_count"] = sum(r["error_count"] for r in runs)
    summary["failures"] = [f for r in runs for f in r["failures"]]
    return summary


def run_scenario(
    scenario: Scenario, kinds: Sequence[str], runs: int, *, verbose: bool = True
) -> dict[str, dict[str, Any]]:
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for index in range(runs):
        for kind in kinds:  # interleaved: a noisy minute hurts every server alike
            result = run_once(kind, scenario)
            results[kind].append(result)
            if verbose:
                print(
                    f"  {scenario.name} run {index + 1}/{runs} {kind:>12}: "
                    f"{result['server_cpu_us_per_msg']:6.2f} us CPU/msg, "
                    f"{result['throughput']:8.0f} msg/s, p99 {result['latency_p99_ms']:.2f} ms, "
                    f"RSS {result['rss_idle_mb']:.0f} MB, lost {result['lost']}",
                    file=sys.stderr,
                    flush=True,
                )
    return {kind: summarize(rs) for kind, rs in results.items()}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown_table(scenario: Scenario, summaries: dict[str, dict[str, Any]]) -> str:
    rows = [
        ("clients (logged in)", lambda s: f"{s['clients']:,}"),
        ("connect+login, all clients (s)", lambda s: _fmt(s["connect_seconds"], 2)),
        ("server RSS after login (MB)", lambda s: _fmt(s["rss_idle_mb"])),
        ("server RSS peak (MB)", lambda s: _fmt(s["rss_peak_mb"])),
        ("**server CPU per relayed message (us)**", lambda s: _fmt(s["server_cpu_us_per_msg"], 2)),
        ("redis-server CPU per message (us)", lambda s: _fmt(s["redis_cpu_us_per_msg"], 2)),
        ("relay throughput (msg/s)", lambda s: _fmt(s["throughput"], 0)),
        (
            "latency p50 / p95 / p99 (ms)",
            lambda s: " / ".join(_fmt(s[f"latency_{p}_ms"], 2) for p in ("p50", "p95", "p99")),
        ),
        (
            "lost / duplicated / reordered",
            lambda s: f"{s['lost']} / {s['duplicated']} / {s['reordered']}",
        ),
        ("generator CPU per message (us)", lambda s: _fmt(s["generator_cpu_us_per_msg"], 2)),
    ]
    kinds = list(summaries)
    header = "| | " + " | ".join(kinds) + " |\n|---|" + "---|" * len(kinds) + "\n"
    body = "".join(
        f"| {label} | " + " | ".join(render(summaries[k]) for k in kinds) + " |\n"
        for label, render in rows
    )
    load = (
        f"{scenario.clients:,} clients in pairs, {scenario.messages:,} offers of "
        f"{scenario.size:,} bytes each to the partner, "
        + (
            f"{scenario.rate:g} offers/s per client"
            if scenario.rate
            else f"as fast as a window of {scenario.window} in flight allows"
        )
    )
    runs = summaries[kinds[0]]["runs"]
    note = f"{load}; " + (f"medians of {runs} runs." if runs > 1 else "one run.")
    return f"{note}\n\n{header}{body}"


def ratios(summaries: dict[str, dict[str, Any]]) -> str:
    if "python" not in summaries or "node" not in summaries:
        return ""
    ours, node = summaries["python"], summaries["node"]

    def ratio(key: str) -> str:
        # A toy run can end inside one clock tick of CPU: 0 us, no ratio to give.
        return f"{ours[key] / node[key]:.2f}" if node[key] else "-"

    parts = [
        f"CPU/msg python/node = {ratio('server_cpu_us_per_msg')}",
        f"throughput python/node = {ratio('throughput')}",
        f"RSS python/node = {ratio('rss_idle_mb')}",
    ]
    return "Ratios: " + ", ".join(parts) + "."


def verdicts(results: list[dict[str, Any]]) -> str:
    """The issue's targets, met or not, from a --suite run."""
    by_name = {r["scenario"]: r["summaries"] for r in results}
    relay, light, capacity = (by_name[s.name] for s in (RELAY, LIGHT, CAPACITY))
    lines = []

    def verdict(met: bool, text: str) -> None:
        lines.append(f"- {'met' if met else '**not met**'}: {text}")

    ours, node = relay["python"], relay["node"]
    cpu = ours["server_cpu_us_per_msg"] / node["server_cpu_us_per_msg"]
    verdict(
        cpu <= 1.0,
        f"server CPU per relayed message <= Node's: {ours['server_cpu_us_per_msg']:.2f} us "
        f"against {node['server_cpu_us_per_msg']:.2f} us, ratio {cpu:.2f} (medians of "
        f"{ours['runs']} runs; each run: "
        + ", ".join(f"{v:.1f}" for v in ours["server_cpu_us_per_msg_each"])
        + " against "
        + ", ".join(f"{v:.1f}" for v in node["server_cpu_us_per_msg_each"])
        + ")",
    )
    paired = statistics.median(
        a / b
        for a, b in zip(
            ours["server_cpu_us_per_msg_each"], node["server_cpu_us_per_msg_each"], strict=True
        )
    )
    lines.append(f"  (run by run, ours over Node's: median {paired:.2f})")
    speed = ours["throughput"] / node["throughput"]
    verdict(
        speed >= 1.0,
        f"throughput no lower than Node's: {ours['throughput']:,.0f} against "
        f"{node['throughput']:,.0f} msg/s, ratio {speed:.2f}",
    )
    p99 = light["python"]["latency_p99_ms"]
    verdict(
        p99 <= 2.0,
        f"p99 latency at 20 msg/s per client, 200 clients <= 2 ms: {p99:.2f} ms "
        f"(Node {light['node']['latency_p99_ms']:.2f} ms)",
    )
    big = capacity["python"]
    served = big["clients"] == CAPACITY.clients and big["received"] == big["expected"]
    verdict(
        served and big["rss_idle_mb"] <= 250,
        f"{big['clients']:,} logged-in connections on one process, all served, RSS <= 250 MB: "
        f"{big['rss_idle_mb']:.0f} MB after login, {big['rss_peak_mb']:.0f} MB peak "
        f"(Node {capacity['node']['rss_idle_mb']:.0f} MB)",
    )
    clean = all(
        not (s["lost"] or s["duplicated"] or s["reordered"] or s["misattributed"])
        for summaries in by_name.values()
        for s in summaries.values()
    )
    total = sum(s["received"] for summaries in by_name.values() for s in summaries.values())
    verdict(clean, f"0 messages lost, duplicated or reordered in every run ({total:,} received)")
    shared = relay["python-redis"]
    lines.append(
        f"- reported: two processes behind Redis, in order with 0 lost: "
        f"{shared['server_cpu_us_per_msg']:.2f} us of server CPU per message (both "
        f"processes) against {ours['server_cpu_us_per_msg']:.2f} us in memory, plus "
        f"{shared['redis_cpu_us_per_msg']:.2f} us in redis-server"
    )
    return "Targets (issue 5):\n\n" + "\n".join(lines) + "\n"


def raise_file_limit() -> None:
    # 10,000 clients need 10,000 descriptors here and as many in the server, which
    # inherits this limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_signaling.py",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = Scenario("custom")
    parser.add_argument(
        "--servers",
        default="python,node",
        help="what to run the load against (default %(default)s)",
    )
    parser.add_argument(
        "--clients",
        type=positive_int,
        default=defaults.clients,
        help="clients, in pairs (default %(default)s)",
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=defaults.messages,
        help="offers each client sends (default %(default)s)",
    )
    parser.add_argument(
        "--size",
        type=positive_int,
        default=defaults.size,
        help="bytes per offer, the whole JSON text (default %(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=non_negative_float,
        default=defaults.rate,
        help="offers per second per client; 0 sends as fast as --window allows "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--window",
        type=positive_int,
        default=defaults.window,
        help="offers a client may have in flight when --rate is 0 (default %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=defaults.workers,
        help="load generator processes (default %(default)s)",
    )
    parser.add_argument(
        "--runs",
        type=positive_int,
        default=1,
        help="runs per server; figures are medians (default %(default)s)",
    )
    parser.add_argument(
        "--suite",
        action="store_true",
        help="run the standard scenarios of docs/benchmarks.md instead",
    )
    parser.add_argument(
        "--write-doc", action="store_true", help="write the results into docs/benchmarks.md"
    )
    parser.add_argument("--json", action="store_true", help="print the summaries as JSON on stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    for kind in kinds:
        if kind not in SERVER_KINDS:
            parser.error(f"unknown server {kind!r}; choose from {', '.join(SERVER_KINDS)}")
    if args.clients < 2 or args.clients % 2:
        parser.error("--clients must be an even number, at least 2 (clients come in pairs)")
    if args.messages < 0:
        parser.error("--messages must not be negative")
    if args.size < 200:
        parser.error("--size must be at least 200 bytes (the offer's JSON around the padding)")
    if args.clients // 2 < args.workers:
        parser.error("--workers must not exceed the number of pairs")
    raise_file_limit()

    if args.suite:
        plan = [
            (replace(s, workers=args.workers), kinds_, max(args.runs, runs))
            for s, kinds_, runs in SUITE
        ]
        command = f"{LOCKED} --suite --write-doc"
    else:
        scenario = Scenario(
            "custom",
            clients=args.clients,
            messages=args.messages,
            size=args.size,
            rate=args.rate,
            window=args.window,
            workers=args.workers,
        )
        plan = [(scenario, tuple(kinds), args.runs)]
        command = " ".join([LOCKED, *(argv if argv is not None else sys.argv[1:])])

    load_before = os.getloadavg()[0]
    all_results: list[dict[str, Any]] = []
    sections = []
    for scenario, scenario_kinds, runs in plan:
        summaries = run_scenario(scenario, scenario_kinds, runs)
        all_results.append({"scenario": scenario.name, "summaries": summaries})
        table = markdown_table(scenario, summaries)
        sections.append(f"### {scenario.name}\n\n{table}\n{ratios(summaries)}\n")
        if not args.json:
            print(f"\n### {scenario.name}\n\n{table}\n{ratios(summaries)}")
    if args.json:
        print(json.dumps(all_results, indent=2))
    elif args.suite:
        print("\n" + verdicts(all_results))
    if args.write_doc:
        from benchdoc import write_section

        markdown = "## Signaling: our server against the tutorial's Node server\n\n"
        markdown += f"Command: `{command}`\n\n{METHOD}\n\n"
        markdown += (
            f"Load average (1 min) when the run began / ended: {load_before:.2f} / "
            f"{os.getloadavg()[0]:.2f} (the benchmark itself keeps about 2 busy).\n\n"
        )
        if args.suite:
            markdown += verdicts(all_results) + "\n"
        markdown += "\n".join(sections)
        path = write_section("bench_signaling", markdown)
        print(f"bench_signaling: wrote {path}", file=sys.stderr)
    broken = [
        (r["scenario"], kind)
        for r in all_results
        for kind, s in r["summaries"].items()
        if s["lost"] or s["duplicated"] or s["reordered"] or s["misattributed"] or s["failures"]
    ]
    if broken:
        print(
            f"bench_signaling: messages lost, duplicated or reordered in {broken}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
