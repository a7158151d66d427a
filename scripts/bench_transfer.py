#!/usr/bin/env python3
"""Benchmark data-channel file throughput: Python -> Python (the fast SCTP path
against stock aiortc, interleaved in one run), Python <-> Chromium, Chromium -> Chromium.

Every transfer goes through a real signaling server on loopback, between separate
processes (``scripts/transfer_peer.py``, Debian's Chromium driven by Playwright):
a ``file`` data channel, a JSON header, 64 KiB binary messages sent by the plain
flow-controlled loop of aiortc's examples (``bufferedAmount`` under 4 MiB, wait on
``bufferedamountlow`` at 1 MiB), and the receiver's SHA-256 back, which must match.
Reported per transfer: Mbit/s (first byte sent -> the receiver's digest back), CPU
seconds of each Python side, the Python sender's peak RSS and its growth over the
transfer. ``stock`` is aiortc as it ships; ``fast`` is peer/stack/sctp_speed.py on both
Python sides. Chromium -> Chromium runs two RTCPeerConnections in one page.

Usage (always under the benchmark lock, so two benchmarks never share the CPU):
  flock /tmp/webcam-peer-bench.lock .venv/bin/python scripts/bench_transfer.py
  ... scripts/bench_transfer.py --quick            # a short smoke run
  ... scripts/bench_transfer.py --write            # also rewrite docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from bench_call import start_server  # noqa: E402
from benchdoc import write_section  # noqa: E402
from benchproc import ReadProcess, cpu_seconds, memory_kib  # noqa: E402

MIB = 1024 * 1024
BIN = Path(sys.executable).parent
PEER = Path(__file__).resolve().parent / "transfer_peer.py"
MODES = ("stock", "fast")
WHERE_THE_CPU_WENT = """\
Where stock aiortc's CPU goes (cProfile of both processes, 32 MiB, stock): the
receiver sends a SACK for every DATA packet, so the sender runs its SACK handler
once per packet it sends (half its time, with the ICE/DTLS receive under it), and
each transmit re-scans every chunk in flight for retransmissions; the receiver
retries the reassembly of a 64 KiB message after each of its 57 fragments and reads
one datagram per event-loop turn. `peer/stack/sctp_speed.py` acknowledges every 16
packets or once per batch of datagrams read (at once on a gap or duplicate), so the
same transfer costs about a quarter of the CPU on each side. It is then limited by
the 1 MiB window on a loaded machine (both sides partly idle), not by CPU; larger
windows (2 and 4 MiB, measured) were no faster or lost bursts in the kernel.
"""


@dataclass
class Result:
    path: str  # "python -> python", ...
    mode: str  # the Python sides' SCTP path
    size: int
    mbit_s: float | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)  # per Python side
    sender_peak_rss_mib: float | None = None
    sender_rss_growth_mib: float | None = None
    intact: bool = False
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"{self.path} [{self.mode}] {self.size // MIB} MiB: error: {self.error}"
        cpu = ", ".join(f"{side} {seconds:.2f} s" for side, seconds in self.cpu_s.items())
        rss = (
            f"; sender peak RSS {self.sender_peak_rss_mib:.0f} MiB, "
            f"growth {self.sender_rss_growth_mib:.1f} MiB"
            if self.sender_peak_rss_mib is not None
            else ""
        )
        return (
            f"{self.path} [{self.mode}] {self.size // MIB} MiB: {self.mbit_s:.1f} Mbit/s, "
            f"{'intact' if self.intact else 'DIGEST MISMATCH'}; CPU {cpu or '-'}{rss}"
        )


class PeerProcess(ReadProcess):
    """One transfer_peer.py process; its last JSON line is its report."""

    def __init__(self, args: list[str]) -> None:
        self.logged_in = threading.Event()
        super().__init__([sys.executable, str(PEER), *args], cwd=ROOT)

    def _read(self, line: str) -> None:
        if line.startswith("logged in"):
            self.logged_in.set()

    def report(self, timeout: float) -> dict[str, Any]:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        self._output.join(5)
        for line in reversed(self.lines):
            if line.startswith("{"):
                data: dict[str, Any] = json.loads(line)
                return data
        raise RuntimeError("no report; output:\n" + "\n".join(self.lines[-20:]))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _tag() -> str:
    return str(int(time.time() * 1000) % 10_000_000)


def python_side(url: str, login: str, mode: str, *extra: str) -> PeerProcess:
    peer = PeerProcess(
        ["--server", url, "--login", login, "--sctp", mode, "--ice-host", "127.0.0.1", *extra]
    )
    if not peer.logged_in.wait(30):
        peer.kill()
        raise RuntimeError(f"{login} never logged in:\n" + "\n".join(peer.lines[-20:]))
    return peer


def _cpu(report: dict[str, Any]) -> float:
    return round(float(report["after"]["cpu"]) - float(report["before"]["cpu"]), 2)


def _fill_sender(result: Result, sender: dict[str, Any]) -> None:
    result.mbit_s = round(sender["bytes"] * 8 / sender["seconds"] / 1e6, 1)
    result.cpu_s["sender"] = _cpu(sender)
    result.sender_peak_rss_mib = round(float(sender["peak_rss_mib"]), 1)
    result.sender_rss_growth_mib = round(
        float(sender["peak_rss_mib"]) - float(sender["before"]["rss_mib"]), 1
    )
    result.intact = sender["sha256"] == sender.get("receiver_sha256")


def python_to_python(url: str, mode: str, size: int, timeout: float) -> Result:
    result = Result("python -> python", mode, size)
    tag = _tag()
    receiver: PeerProcess | None = None
    sender: PeerProcess | None = None
    try:
        receiver = python_side(url, f"recv{tag}", mode)
        sender = python_side(
            url, f"send{tag}", mode, "--send-to", f"recv{tag}", "--bytes", str(size)
        )
        sent, got = sender.report(timeout), receiver.report(30)
        if "error" in sent or "seconds" not in sent:
            result.error = str(sent.get("error", "no figures"))
            return result
        _fill_sender(result, sent)
        result.cpu_s["receiver"] = _cpu(got)
    except (RuntimeError, KeyError, ValueError) as exc:
        result.error = str(exc)
    finally:
        for side in (sender, receiver):
            if side is not None:
                side.kill()
    return result


def webcam_peer_send_file(url: str, mode: str, size: int, timeout: float) -> Result:
    """Python -> Python end to end: ``webcam-peer --send-file`` to a ``webcam-peer``
    receiver (chat and files, docs/datachannels.md), no audio or video, the file read
    from and written to disk. Timed from the sender's "sending" line to its
    "verified by" line, as they arrive."""
    result = Result("webcam-peer --send-file", mode, size)
    tag = _tag()
    common = ["--server", url, "--no-window", "--no-speaker", "--ice-host", "127.0.0.1",
              "--video", "none", "--audio", "none", "--sctp", mode]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as scratch:
        source = Path(scratch) / "payload.bin"
        block = os.urandom(MIB)
        with source.open("wb") as out:
            for offset in range(0, size, MIB):
                out.write(block[: min(MIB, size - offset)])
        downloads = Path(scratch) / "received"
        receiver = TimedProcess([str(BIN / "webcam-peer"), "--login", f"fr{tag}", "--once",
                                 "--auto-answer", "--download-dir", str(downloads),
                                 "--accept-files-from", f"fs{tag}", *common])  # fmt: skip
        sender: TimedProcess | None = None
        try:
            receiver.wait_for("waiting for calls", 30)
            sender = TimedProcess(
                [str(BIN / "webcam-peer"), "--login", f"fs{tag}", "--call", f"fr{tag}",
                 "--send-file", str(source), *common]
            )  # fmt: skip
            started = sender.wait_for(r"sending payload\.bin", 60)
            before = cpu_seconds(sender.process.pid)
            receiver_before = cpu_seconds(receiver.process.pid)
            rss_before = memory_kib(sender.process.pid) / 1024
            finished = sender.wait_for(r"sent payload\.bin .*verified by", timeout)
            result.cpu_s["sender"] = round(cpu_seconds(sender.process.pid) - before, 2)
            result.cpu_s["receiver"] = round(cpu_seconds(receiver.process.pid) - receiver_before, 2)
            peak = memory_kib(sender.process.pid, "VmHWM") / 1024
            result.sender_peak_rss_mib = round(peak, 1)
            result.sender_rss_growth_mib = round(peak - rss_before, 1)
            result.mbit_s = round(size * 8 / (finished - started) / 1e6, 1)
            saved = list(downloads.glob("payload*.bin"))
            result.intact = len(saved) == 1 and _sha256(saved[0]) == _sha256(source)
        except RuntimeError as exc:
            result.error = str(exc)
        finally:
            for side in (sender, receiver):
                if side is not None:
                    side.stop()
    return result


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


class TimedProcess(ReadProcess):
    """A webcam-peer process whose output lines are kept with their arrival time."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv, cwd=ROOT)

    def wait_for(self, pattern: str, timeout: float) -> float:
        """When the first line matching ``pattern`` arrived."""
        found = self._output.search(pattern, timeout)
        if found is None:
            raise RuntimeError(f"no line matching {pattern!r}:\n{self._output.tail(15)}")
        return self._output.arrived[found[0]]


# ---- Chromium ---------------------------------------------------------------------------
_PAGE_JS = (Path(__file__).resolve().parent / "transfer_page.js").read_text()


async def chromium_runs(
    server_url: str, ws_url: str, modes: list[str], size: int, limit: float
) -> list[Result]:
    from playwright.async_api import async_playwright

    from tests.helpers.browser_support import launch_chromium

    results: list[Result] = []
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:

            async def page() -> Any:
                context = await browser.new_context()
                opened = await context.new_page()
                await opened.goto(server_url + "/")
                return opened

            async def evaluate(args: dict[str, Any]) -> dict[str, Any]:
                tab = await page()
                try:
                    data: dict[str, Any] = await asyncio.wait_for(
                        tab.evaluate(_PAGE_JS, {"url": ws_url, "size": size, **args}), limit
                    )
                    return data
                finally:
                    await tab.context.close()

            loop = Result("chromium -> chromium", "-", size)
            try:
                data = await evaluate({"role": "loop", "login": "", "other": ""})
                loop.mbit_s = round(data["bytes"] * 8 / data["seconds"] / 1e6, 1)
                loop.intact = bool(data["intact"])
            except Exception as exc:  # report, keep measuring the rest
                loop.error = f"{type(exc).__name__}: {exc}"
            results.append(loop)
            print(loop.line(), flush=True)

            for mode in modes:
                tag = _tag()
                to_page = Result("python -> chromium", mode, size)
                page_task = asyncio.ensure_future(
                    evaluate({"role": "receive", "login": f"page{tag}", "other": ""})
                )
                await asyncio.sleep(2.0)  # the page logs in
                sender = python_side(
                    ws_url, f"send{tag}", mode, "--send-to", f"page{tag}", "--bytes", str(size)
                )
                try:
                    sent = await asyncio.to_thread(sender.report, limit)
                    await page_task
                    if "seconds" in sent:
                        _fill_sender(to_page, sent)
                    else:
                        to_page.error = str(sent.get("error", "no figures"))
                except Exception as exc:
                    to_page.error = f"{type(exc).__name__}: {exc}"
                finally:
                    sender.stop()
                    page_task.cancel()
                results.append(to_page)
                print(to_page.line(), flush=True)

                tag = _tag()
                from_page = Result("chromium -> python", mode, size)
                receiver = python_side(ws_url, f"recv{tag}", mode)
                try:
                    data = await evaluate(
                        {"role": "send", "login": f"page{tag}", "other": f"recv{tag}"}
                    )
                    got = await asyncio.to_thread(receiver.report, 30)
                    from_page.mbit_s = round(data["bytes"] * 8 / data["seconds"] / 1e6, 1)
                    from_page.intact = bool(data["intact"])
                    from_page.cpu_s["receiver"] = _cpu(got)
                except Exception as exc:
                    from_page.error = f"{type(exc).__name__}: {exc}"
                finally:
                    receiver.stop()
                results.append(from_page)
                print(from_page.line(), flush=True)
        finally:
            await browser.close()
    return results


# ---- the report ---------------------------------------------------------------------
def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def summary(pairs: list[Result]) -> tuple[str, float | None]:
    by_mode = {
        mode: [r.mbit_s for r in pairs if r.mode == mode and r.mbit_s is not None] for mode in MODES
    }
    stock, fast = _median(by_mode["stock"]), _median(by_mode["fast"])
    ratio = round(fast / stock, 2) if fast and stock else None
    text = (
        f"python -> python median: stock {stock} Mbit/s, fast {fast} Mbit/s; "
        f"fast / stock = {ratio if ratio is not None else '-'}x"
    )
    return text, ratio


def table(results: list[Result]) -> str:
    rows = [
        "| transfer | SCTP (Python sides) | MiB | Mbit/s | intact | CPU s (sender / receiver) "
        "| sender peak RSS MiB | sender RSS growth MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error:
            rows.append(f"| {r.path} | {r.mode} | {r.size // MIB} | {r.error} | - | - | - | - |")
            continue
        cpu = " / ".join(
            f"{r.cpu_s[side]:.2f}" if side in r.cpu_s else "-" for side in ("sender", "receiver")
        )
        peak = "-" if r.sender_peak_rss_mib is None else f"{r.sender_peak_rss_mib:.0f}"
        growth = "-" if r.sender_rss_growth_mib is None else f"{r.sender_rss_growth_mib:.1f}"
        rows.append(
            f"| {r.path} | {r.mode} | {r.size // MIB} | {r.mbit_s:.1f} | "
            f"{'yes' if r.intact else 'NO'} | {cpu} | {peak} | {growth} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=256, help="Python -> Python size (MiB)")
    parser.add_argument("--rounds", type=int, default=3, help="stock/fast pairs, interleaved")
    parser.add_argument("--rss-mib", type=int, default=1024, help="the RSS run's size; 0 skips")
    parser.add_argument("--browser-mib", type=int, default=64, help="transfers with Chromium")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium transfers")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--timeout", type=float, default=900.0, help="per transfer (s)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--write", action="store_true", help="rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.mib, args.rounds, args.rss_mib, args.browser_mib = 8, 1, 0, 8
    if min(args.mib, args.rounds, args.browser_mib) < 1 or args.rss_mib < 0:
        parser.error("sizes and --rounds must be positive")

    server, ws_url = start_server()
    server_url = ws_url.removeprefix("ws://").removesuffix("/ws")
    pairs: list[Result] = []
    others: list[Result] = []
    try:
        for round_number in range(args.rounds):
            # Alternate which mode goes first, so a slow spell hits both alike.
            order = MODES if round_number % 2 == 0 else MODES[::-1]
            for mode in order:
                result = python_to_python(ws_url, mode, args.mib * MIB, args.timeout)
                pairs.append(result)
                print(result.line(), flush=True)
        if args.rss_mib:
            result = python_to_python(ws_url, "fast", args.rss_mib * MIB, args.timeout)
            others.append(result)
            print(result.line(), flush=True)
        for mode in MODES:
            end_to_end = webcam_peer_send_file(ws_url, mode, args.mib * MIB, args.timeout)
            others.append(end_to_end)
            print(end_to_end.line(), flush=True)
        if not args.no_browser:
            others += asyncio.run(
                chromium_runs(
                    f"http://{server_url}",
                    ws_url,
                    list(MODES),
                    args.browser_mib * MIB,
                    args.timeout,
                )
            )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)

    text, _ratio = summary(pairs)
    report = table(pairs + others) + "\n" + text + ".\n"
    print()
    print(report)
    command = "scripts/bench_transfer.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.json:
        args.json.write_text(
            json.dumps({"command": command, "results": [r.__dict__ for r in pairs + others]})
        )
    if args.write:
        markdown = (
            "## Data channels: file throughput (`scripts/bench_transfer.py`)\n\n"
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores (shared, noisy) "
            f"with\n`flock /tmp/webcam-peer-bench.lock {command.strip()}`: a signaling "
            "server and each\nPython side in its own process on loopback, a `file` data "
            "channel, 64 KiB messages\nsent by the plain flow-controlled loop, the "
            "receiver's SHA-256 checked. `stock` is\naiortc as it ships, `fast` is "
            "`peer/stack/sctp_speed.py` on every Python side; the\nPython -> Python rows "
            "alternate stock and fast. Mbit/s counts from the first byte\nsent to the "
            "receiver's digest back.\n\n" + report + "\n" + WHERE_THE_CPU_WENT
        )
        print(f"wrote {write_section('bench_transfer', markdown)}")
    failed = [r for r in pairs + others if r.error]
    return 1 if failed or not all(r.intact for r in pairs) else 0


if __name__ == "__main__":
    sys.exit(main())
