"""How long a call takes to set up over a host, a srflx and a relay pair.

Builds the NAT lab of tests/helpers/nat_support.py (network namespaces; needs root):
two peers each behind its own router, coturn and the signaling server on the
public side. The router decides the pair: plain routing gives host, a cone NAT
srflx, a symmetric NAT relay. For each, CALLS calls: bob waits, alice calls,
and alice's stats give the times from the call being issued to ICE connected,
to the media connection (DTLS) up, and to the first decoded frame.

    sudo .venv/bin/python scripts/bench_setup.py [--calls 10] [--write]

--write puts the table into docs/benchmarks.md (its own section). Timing runs
hold /tmp/webcam-peer-bench.lock, like every benchmark on the shared machine.
"""

from __future__ import annotations

import argparse
import fcntl
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchdoc import write_section  # noqa: E402

from tests.helpers.nat_support import NatLab, NatType, remove_stale_labs  # noqa: E402
from tests.helpers.peer_support import stats_lines  # noqa: E402
from tests.helpers.support import BIN  # noqa: E402
from tests.network.test_nat import PEER_FLAGS, start_public_servers  # noqa: E402

LOCK = Path("/tmp/webcam-peer-bench.lock")
CASES = ((NatType.NONE, "host"), (NatType.CONE, "srflx"), (NatType.SYMMETRIC, "relay"))
MILESTONES = ("ice", "connected", "first_frame")


@contextmanager
def bench_lock() -> Iterator[None]:
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def one_call(lab: NatLab, number: int) -> dict[str, Any]:
    bob_name, alice_name = f"bob{number}", f"alice{number}"
    flags = [f for f in PEER_FLAGS if f != "-v"]
    bob = lab.start("peer-b", [str(BIN / "webcam-peer"), "--login", bob_name, "--once", *flags])
    bob.wait_for("waiting for calls")
    alice = lab.start(
        "peer-a", [str(BIN / "webcam-peer"), "--login", alice_name, "--call", bob_name, *flags]
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lines = [s for s in stats_lines(alice) if s["setup_ms"]["first_frame"] is not None]
            if lines:
                alice.signal(signal.SIGINT)
                alice.wait()
                final: dict[str, Any] = stats_lines(alice)[-1]
                return final
            time.sleep(0.1)
        raise RuntimeError("no first frame within 30 s:\n" + "\n".join(alice.lines[-20:]))
    finally:
        alice.stop()
        bob.stop()


def measure(nat: NatType, expected_pair: str, calls: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {m: [] for m in MILESTONES}
    lab = NatLab(nat).build()
    try:
        with tempfile.TemporaryDirectory() as directory:
            start_public_servers(lab, Path(directory))
            for number in range(calls):
                stats = one_call(lab, number)
                pair = stats["pair"]["type"]
                if pair != expected_pair:
                    raise RuntimeError(f"{nat.value}: expected a {expected_pair} pair, got {pair}")
                for milestone in MILESTONES:
                    times[milestone].append(float(stats["setup_ms"][milestone]))
                print(f"  {expected_pair} call {number + 1}: {stats['setup_ms']}", flush=True)
    finally:
        lab.close()
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def table(results: dict[str, dict[str, list[float]]], calls: int) -> str:
    rows = [
        f"Call setup, as the caller sees it, median (p90) of {calls} calls, 320x240@15 "
        "synthetic video, each peer in its own network namespace "
        "(`scripts/bench_setup.py --write`):",
        "",
        "| pair | issued -> ICE connected | -> media connected (DTLS) | -> first frame |",
        "|---|---|---|---|",
    ]
    for pair, times in results.items():
        cells = [
            f"{statistics.median(times[m]):.0f} ms ({percentile(times[m], 0.9):.0f})"
            for m in MILESTONES
        ]
        rows.append(f"| {pair} | " + " | ".join(cells) + " |")
    rows += [
        "",
        "host: routed LANs, no NAT. srflx: both peers behind endpoint-independent NATs "
        "(MASQUERADE). relay: both behind symmetric NATs (MASQUERADE --random-fully), "
        "through coturn. STUN and TURN from the signaling server's login reply in all "
        "three; the caller's TURN check runs beside the call, not before it.",
    ]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10, help="calls per pair type")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    remove_stale_labs()
    results = {}
    with bench_lock():
        for nat, pair in CASES:
            print(f"{pair} ({nat.value} NAT):", flush=True)
            results[pair] = measure(nat, pair, args.calls)
    text = table(results, args.calls)
    print(text)
    if args.write:
        print(f"wrote {write_section('call-setup', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
