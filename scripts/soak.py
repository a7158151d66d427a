#!/usr/bin/env python3
"""Soak: many clients churning against one signaling server for a bounded time.

Clients come in pairs. Over and over, each pair connects, logs in (under the name it
had before or a new one), calls (offer, answer, candidates both ways), sometimes sends
a bad message, and hangs up one of three ways: a ``close`` message, a WebSocket close,
or vanishing with a TCP reset; then both leave, politely or with a reset, and come
back after a pause. Every relayed message is checked on arrival (type, sender stamp,
sequence): a message missing or wrong is a failure.

Before the churn, a warm-up connects and logs in every client at once and lets them
go, then churns for a while (``--warm-up``, 60 s): the server's heap grows to what
serving this load takes, and the allocator keeps that memory once it is freed. The
start figures are taken after it, so what is measured is growth with time, which is
what a leak is (docs/reliability.md has the figures with and without). At the end,
once every client has gone: /metrics must show no connection, user or call left, the
event loop's task count back at its start, and the server's RSS within 10% of its start.

  flock /tmp/webcam-peer-bench.lock .venv/bin/python scripts/soak.py   # 1,000 clients, 5 min
  .venv/bin/python scripts/soak.py --clients 200 --duration 20 --warm-up 10 --json  # CI
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from bench_signaling import _python_server, non_negative_float, positive_int, raise_file_limit
from benchproc import memory_kib
from prometheus_client.parser import text_string_to_metric_families

from wsraw import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, client_frame, open_websocket, read_frame
from wsraw import reset as reset_socket

RSS_TOLERANCE: Final = 0.10
RECEIVE_TIMEOUT: Final = 20.0
SETTLE_TIMEOUT: Final = 60.0
CONNECT_CONCURRENCY: Final = 100
LOCKED: Final = "flock /tmp/webcam-peer-bench.lock .venv/bin/python scripts/soak.py"
CRASH_MARKERS: Final = ("Traceback", "Error handling request", "Unhandled exception")
GAUGES: Final = (
    "signaling_connections",
    "signaling_users",
    "signaling_active_calls",
    "signaling_tasks",
)


class Failure(Exception):
    """Something a client saw that the protocol does not allow (or nothing, in time)."""


@dataclass
class Tally:
    cycles: int = 0
    connections: int = 0
    logins: int = 0
    name_retries: int = 0  # the name still held by our own connection that just vanished
    relayed: int = 0  # relayed messages received and checked (the server's closes too)
    bad_messages: int = 0  # each answered by exactly one error
    hangups: dict[str, int] = field(default_factory=dict)
    leaves: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


# ---- one client ---------------------------------------------------------------------------


class SoakClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.name = ""
        self._mask = os.urandom(4)

    @classmethod
    async def open(cls, host: str, port: int, tally: Tally) -> SoakClient:
        reader, writer = await open_websocket(host, port)
        tally.connections += 1
        return cls(reader, writer)

    def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        self.writer.write(client_frame(text.encode(), self._mask))

    async def recv(self) -> dict[str, Any]:
        while True:
            try:
                opcode, payload = await asyncio.wait_for(read_frame(self.reader), RECEIVE_TIMEOUT)
            except TimeoutError:
                raise Failure(f"{self.name}: nothing within {RECEIVE_TIMEOUT} s") from None
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                raise Failure(f"{self.name}: connection lost: {exc!r}") from None
            if opcode == OP_PING:
                self.writer.write(client_frame(payload, self._mask, OP_PONG))
            elif opcode == OP_TEXT:
                message: dict[str, Any] = json.loads(payload)
                return message
            elif opcode == OP_CLOSE:
                raise Failure(f"{self.name}: closed by the server: {payload!r}")

    async def expect(self, kind: str, sender: str, **fields: Any) -> dict[str, Any]:
        message = await self.recv()
        wanted = {"type": kind, "username": sender, **fields}
        if any(message.get(k) != v for k, v in wanted.items()):
            raise Failure(f"{self.name}: expected {wanted}, got {json.dumps(message)[:300]}")
        return message

    async def login(self, name: str, tally: Tally) -> None:
        self.name = name
        for _ in range(100):
            self.send({"type": "login", "username": name})
            reply = await self.recv()
            if reply.get("success") is True:
                tally.logins += 1
                return
            if reply.get("reason") != "username-taken":
                raise Failure(f"{name}: login refused: {reply}")
            # Our own previous connection under this name vanished a moment ago; the
            # server frees the name as soon as it sees the reset.
            tally.name_retries += 1
            await asyncio.sleep(0.05)
        raise Failure(f"{name}: the name stayed taken")

    def reset(self) -> None:
        reset_socket(self.writer)

    async def close(self) -> None:
        """The WebSocket closing handshake: our close frame, the server's answer."""
        self.writer.write(client_frame(b"\x03\xe8", self._mask, OP_CLOSE))
        with contextlib.suppress(TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            async with asyncio.timeout(RECEIVE_TIMEOUT):
                while (await read_frame(self.reader))[0] != OP_CLOSE:
                    pass
        self.writer.transport.abort()

    async def leave(self, rng: random.Random, tally: Tally) -> None:
        if rng.random() < 0.5:
            tally.count(tally.leaves, "reset")
            self.reset()
        else:
            tally.count(tally.leaves, "websocket close")
            await self.close()


# ---- one pair's life -------------------------------------------------------------------------


def offer(to: str, seq: int) -> dict[str, Any]:
    return {"type": "offer", "offer": {"type": "offer", "sdp": f"v=0 {seq}"}, "otherUsername": to}


def candidate(to: str, seq: int) -> dict[str, Any]:
    return {
        "type": "candidate",
        "candidate": {"candidate": f"candidate:{seq} 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"},
        "otherUsername": to,
    }


async def call_and_hang_up(a: SoakClient, b: SoakClient, rng: random.Random, tally: Tally) -> None:
    a.send(offer(b.name, 0))
    await b.expect("offer", a.name, offer={"type": "offer", "sdp": "v=0 0"})
    b.send({"type": "answer", "answer": {"type": "answer", "sdp": "v=0"}, "otherUsername": a.name})
    await a.expect("answer", b.name)
    tally.relayed += 2
    count = rng.randrange(1, 6)
    for seq in range(count):
        a.send(candidate(b.name, seq))
        b.send(candidate(a.name, seq))
    for seq in range(count):
        for receiver, sender in ((a, b), (b, a)):
            message = await receiver.expect("candidate", sender.name)
            if not message["candidate"]["candidate"].startswith(f"candidate:{seq} "):
                raise Failure(f"{receiver.name}: candidate {seq} out of order: {message}")
            tally.relayed += 1
    if rng.random() < 0.3:  # renegotiation from the callee
        b.send(offer(a.name, 1))
        await a.expect("offer", b.name, offer={"type": "offer", "sdp": "v=0 1"})
        tally.relayed += 1
    if rng.random() < 0.3:
        a.send(rng.choice(['{"type":', "[1]", '{"type":"offer","otherUsername":"x"}']))
        reply = await a.recv()
        if reply.get("type") != "error":
            raise Failure(f"{a.name}: a bad message got {reply}")
        tally.bad_messages += 1
    quitter, stayer = (a, b) if rng.random() < 0.5 else (b, a)
    how = rng.choice(("close message", "websocket close", "reset"))
    tally.count(tally.hangups, how)
    if how == "close message":
        quitter.send({"type": "close", "otherUsername": stayer.name})
        await stayer.expect("close", quitter.name)
        tally.relayed += 1
        await quitter.leave(rng, tally)
    else:
        if how == "reset":
            quitter.reset()
        else:
            await quitter.close()
        await stayer.expect("close", quitter.name, reason="disconnected")
        tally.relayed += 1  # the server's own close on the quitter's behalf
    await stayer.leave(rng, tally)


async def pair_life(
    index: int, host: str, port: int, until: float, rng: random.Random, tally: Tally
) -> None:
    generation = 0
    while time.monotonic() < until:
        generation += 1
        clients: list[SoakClient] = []
        try:
            for side in "ab":
                client = await SoakClient.open(host, port, tally)
                clients.append(client)
                # The same name as last time (just freed, perhaps by a reset) or a new one.
                suffix = "" if rng.random() < 0.5 else f"-{generation}"
                await client.login(f"p{index}{side}{suffix}", tally)
            await call_and_hang_up(clients[0], clients[1], rng, tally)
            tally.cycles += 1
        except Failure as exc:
            tally.failures.append(str(exc))
            for client in clients:
                client.reset()
        await asyncio.sleep(rng.uniform(0.0, 2.0))


# ---- the server's side ----------------------------------------------------------------------


async def scrape(http_url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        async with session.get(http_url + "/metrics") as response:
            text = await response.text()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in GAUGES:
                values[sample.name] = sample.value
            elif sample.name == "signaling_messages_relayed_total":
                values["relayed"] = values.get("relayed", 0.0) + sample.value
    return values


async def idle_metrics(http_url: str, tasks: float | None) -> dict[str, float]:
    """Wait until nobody is left (and, given ``tasks``, the task count is back to it)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        seen = await scrape(http_url)
        idle = seen["signaling_connections"] == seen["signaling_users"] == 0
        idle = idle and seen["signaling_active_calls"] == 0
        if idle and (tasks is None or seen["signaling_tasks"] <= tasks):
            return seen
        if time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.2)


async def warm_up(host: str, port: int, clients: int, tally: Tally) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    opened: list[SoakClient] = []

    async def one(index: int) -> None:
        async with gate:
            client = await SoakClient.open(host, port, tally)
            opened.append(client)
            await client.login(f"warm{index}", tally)

    await asyncio.gather(*(one(i) for i in range(clients)))
    await asyncio.gather(*(c.close() for c in opened))


async def churn(
    host: str, port: int, clients: int, seconds: float, rng: random.Random, tally: Tally
) -> float:
    """Every pair lives its life for ``seconds``; how long it took all to finish."""
    began = time.monotonic()
    until = began + seconds
    await asyncio.gather(
        *(
            pair_life(i, host, port, until, random.Random(rng.random()), tally)
            for i in range(clients // 2)
        )
    )
    return time.monotonic() - began


async def sample_rss(pid: int, every: float, samples: list[float]) -> None:
    while True:
        await asyncio.sleep(every)
        samples.append(round(memory_kib(pid) / 1024, 1))


async def soak(
    clients: int,
    duration: float,
    warm_up_seconds: float,
    settle: float,
    seed: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    process, url = _python_server(workdir, "soak", clients)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    host, http_url = "127.0.0.1", f"http://127.0.0.1:{port}"
    tally, warm = Tally(), Tally()
    rng = random.Random(seed)
    samples: list[float] = []
    try:
        progress(f"warm-up: {clients} clients connect, log in and leave")
        await warm_up(host, port, clients, warm)
        await idle_metrics(http_url, None)
        await asyncio.sleep(settle)
        rss_connected = memory_kib(process.pid)
        progress(f"warm-up: {warm_up_seconds:g} s of churn (RSS {rss_connected / 1024:.1f} MB)")
        await churn(host, port, clients, warm_up_seconds, rng, warm)
        await idle_metrics(http_url, None)
        await asyncio.sleep(settle)
        # The lowest of a few scrapes: one scrape's HTTP connection may still be ending.
        start = min([await scrape(http_url) for _ in range(5)], key=lambda s: s["signaling_tasks"])
        rss_start = memory_kib(process.pid)
        progress(f"churn: {clients} clients for {duration:g} s (RSS {rss_start / 1024:.1f} MB)")
        sampler = asyncio.create_task(sample_rss(process.pid, max(duration / 10, 1.0), samples))
        try:
            churn_seconds = await churn(host, port, clients, duration, rng, tally)
        finally:
            sampler.cancel()
        rss_peak = memory_kib(process.pid, "VmHWM")
        end = await idle_metrics(http_url, start["signaling_tasks"])
        await asyncio.sleep(settle)
        rss_end = memory_kib(process.pid)
        alive = process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)
        log = (workdir / "soak.log").read_text(errors="replace")
        shutil.rmtree(workdir, ignore_errors=True)
    crashes = [line for line in log.splitlines() if any(m in line for m in CRASH_MARKERS)]
    result: dict[str, Any] = {
        "clients": clients,
        "seconds": round(churn_seconds, 1),
        "seed": seed,
        **{k: v for k, v in asdict(tally).items() if k != "failures"},
        "failure_count": len(tally.failures) + len(warm.failures),
        "failures": (warm.failures + tally.failures)[:5],
        "warm_up_seconds": warm_up_seconds,
        "warm_up_cycles": warm.cycles,
        "server_relayed": int(end["relayed"] - start.get("relayed", 0.0)),
        "left": {k: end[k] for k in GAUGES[:3]},
        "tasks_start": start["signaling_tasks"],
        "tasks_end": end["signaling_tasks"],
        "rss_connected_mb": round(rss_connected / 1024, 1),
        "rss_start_mb": round(rss_start / 1024, 1),
        "rss_samples_mb": samples,
        "rss_peak_mb": round(rss_peak / 1024, 1),
        "rss_end_mb": round(rss_end / 1024, 1),
        "rss_change_pct": round(100 * (rss_end - rss_start) / rss_start, 1),
        "server_alive": alive,
        "server_crash_lines": crashes[:5],
    }
    result["problems"] = problems(result)
    return result


def problems(result: dict[str, Any]) -> list[str]:
    found = []
    if result["failure_count"]:
        found.append(f"{result['failure_count']} client failures, e.g. {result['failures'][:2]}")
    if any(result["left"].values()):
        found.append(f"left behind: {result['left']}")
    if result["tasks_end"] > result["tasks_start"]:
        found.append(f"tasks {result['tasks_start']:g} -> {result['tasks_end']:g}")
    if result["rss_change_pct"] > 100 * RSS_TOLERANCE:
        found.append(f"RSS grew {result['rss_change_pct']}% (over {100 * RSS_TOLERANCE:g}%)")
    if not result["server_alive"] or result["server_crash_lines"]:
        found.append(f"server died or logged tracebacks: {result['server_crash_lines']}")
    if not result["failure_count"] and result["relayed"] != result["server_relayed"]:
        found.append(
            f"the server relayed {result['server_relayed']} messages, the clients checked "
            f"{result['relayed']}"
        )
    if result["cycles"] == 0:
        found.append("no pair completed a single call")
    return found


def markdown(result: dict[str, Any], command: str) -> str:
    r = result
    return (
        "## Soak: 1,000 clients churning against one server\n\n"
        f"Command: `{command}`\n\n"
        "Pairs of clients log in (same or new name), call (offer, answer, candidates both "
        "ways, sometimes a renegotiation and a bad message), hang up by `close`, WebSocket "
        "close or TCP reset, leave politely or with a reset, and come back. Start figures "
        "after a warm-up: every client connected at once, then churning for a while "
        "(docs/reliability.md says why).\n\n"
        "| | |\n|---|---|\n"
        f"| clients / churn time | {r['clients']:,} / {r['seconds']} s |\n"
        f"| calls completed / connections opened / logins | {r['cycles']:,} / "
        f"{r['connections']:,} / {r['logins']:,} |\n"
        f"| messages relayed (server counter) / checked on arrival | {r['server_relayed']:,} / "
        f"{r['relayed']:,} |\n"
        f"| hang-ups | {', '.join(f'{k} {v:,}' for k, v in sorted(r['hangups'].items()))} |\n"
        f"| leaving | {', '.join(f'{k} {v:,}' for k, v in sorted(r['leaves'].items()))} |\n"
        f"| bad messages, each answered by one error | {r['bad_messages']:,} |\n"
        f"| client failures (lost or wrong messages) | {r['failure_count']} |\n"
        f"| left at the end: connections / users / calls | "
        f"{' / '.join(f'{v:g}' for v in r['left'].values())} |\n"
        f"| event-loop tasks at start / end | {r['tasks_start']:g} / {r['tasks_end']:g} |\n"
        f"| server RSS after the first {r['clients']:,} connections / after the warm-up "
        f"churn ({r['warm_up_seconds']:g} s) | {r['rss_connected_mb']} / "
        f"{r['rss_start_mb']} MB |\n"
        f"| server RSS during the churn, every {r['seconds'] / 10:.0f} s (MB) | "
        f"{', '.join(f'{v:g}' for v in r['rss_samples_mb'])} |\n"
        f"| server RSS start / peak / end (MB) | {r['rss_start_mb']} / {r['rss_peak_mb']} / "
        f"{r['rss_end_mb']} ({r['rss_change_pct']:+}%) |\n"
        f"| verdict | {'; '.join(r['problems']) or 'nothing left behind, RSS within 10%'} |\n"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soak.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=positive_int, default=1000, help="default 1000")
    parser.add_argument(
        "--duration", type=non_negative_float, default=300.0, help="seconds of churn (300)"
    )
    parser.add_argument(
        "--warm-up",
        type=non_negative_float,
        default=60.0,
        help="seconds of churn before the start figures are taken (60)",
    )
    parser.add_argument(
        "--settle",
        type=non_negative_float,
        default=5.0,
        help="seconds to wait after the warm-up and after the churn before reading RSS (5)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (printed)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--write", action="store_true", help="write the 'soak' section of docs/benchmarks.md"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.clients < 2 or args.clients % 2:
        parser.error("--clients must be an even number, at least 2 (clients come in pairs)")
    raise_file_limit()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)

    def progress(text: str) -> None:
        print(f"soak: {text}", file=sys.stderr, flush=True)

    progress(f"seed {seed}")
    result = asyncio.run(
        soak(args.clients, args.duration, args.warm_up, args.settle, seed, progress)
    )
    command = " ".join([LOCKED, *(argv if argv is not None else sys.argv[1:])])
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(markdown(result, command))
    if args.write:
        from benchdoc import write_section

        path = write_section("soak", markdown(result, command))
        progress(f"wrote {path}")
    for problem in result["problems"]:
        progress(f"PROBLEM: {problem}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
