#!/usr/bin/env python3
"""The human summary under scripts/demo.sh's JSON lines, and its verdict.

Usage: scripts/demo_summary.py ALICE_LOG BOB_LOG

Each log is one bot's output (its ``say`` lines and JSON stats lines). Prints one line per
side: what it received, at what rate, latency and bit rate. Exits 1 when a side never
connected or decoded no video, 0 otherwise.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Side:
    user: str
    connected: bool
    stats: dict[str, Any] | None  # the last stats line of the call, None if there was none

    @property
    def frames(self) -> int:
        return int(((self.stats or {}).get("video") or {}).get("frames") or 0)


def read_side(user: str, log: Path) -> Side:
    connected = False
    last: dict[str, Any] | None = None
    for line in log.read_text(errors="replace").splitlines():
        if "call with " in line and " connected" in line and not line.startswith("{"):
            connected = True
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        # The live lines carry the call's rates; the final one is printed as it ends.
        if data.get("event") == "stats" or (data.get("event") == "final" and last is None):
            last = data
    return Side(user, connected, last)


def _figure(value: Any, unit: str, digits: int = 1) -> str:
    return "?" if value is None else f"{value:.{digits}f}{unit}"


def describe(side: Side) -> str:
    name = f"{side.user}:".ljust(7)
    if not side.connected:
        return f"demo: {name}the call never connected"
    if side.stats is None or side.frames == 0:
        return f"demo: {name}connected, but no video frame was decoded"
    stats = side.stats
    video = stats["video"]
    latency = video.get("latency_ms") or {}
    return (
        f"demo: {name}received {video['frames']} frames from {stats.get('peer')}, "
        f"{video['width']}x{video['height']} at {_figure(video.get('average_fps'), ' fps')}"
        f" ({stats.get('codec') or '?'}), latency p50 {_figure(latency.get('p50'), ' ms')}"
        f" p95 {_figure(latency.get('p95'), ' ms')}, "
        f"{_figure(stats.get('bitrate_in_kbps'), ' kbit/s', 0)} in, "
        f"{video.get('freezes', '?')} freezes, {stats.get('audio_frames', 0)} audio frames"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    sides = [read_side(user, Path(log)) for user, log in zip(("alice", "bob"), argv, strict=True)]
    for side in sides:
        print(describe(side))
    ok = all(side.connected and side.frames > 0 for side in sides)
    print("demo: done" if ok else "demo: FAILED: the call did not carry video both ways")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
