"""Promise 5 in CI: scripts/soak.py at a short length (200 clients, 10 s of warm-up
churn, 20 s of measured churn).

The full soak (1,000 clients, 5 minutes) is the same script with its defaults; its
figures are in docs/benchmarks.md and docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from tests.helpers.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# About 2,000 call cycles run in the 20 s (issue 18); a quarter of that still means the
# churn happened, where 50 would pass a server that had nearly stopped.
MIN_CYCLES = 500


def test_churning_clients_leave_nothing_behind() -> None:
    # Fixed in CI (.ci/run sets SOAK_SEED), random elsewhere; printed, so a failure replays.
    seed = int(os.environ.get("SOAK_SEED") or random.randrange(1 << 32))
    print(f"SOAK_SEED={seed}")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "soak.py"),
            "--clients",
            "200",
            "--duration",
            "20",
            "--warm-up",
            "10",
            "--settle",
            "2",
            "--json",
            "--seed",
            str(seed),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=ROOT,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    figures = json.loads(result.stdout)
    print(json.dumps(figures, indent=2))
    assert figures["problems"] == [], result.stderr[-3000:]
    # Calls happened, every way of hanging up and leaving was used...
    assert figures["cycles"] >= MIN_CYCLES
    assert set(figures["hangups"]) == {"close message", "websocket close", "reset"}
    assert set(figures["leaves"]) == {"reset", "websocket close"}
    # ...every message the server relayed arrived where it should, checked...
    assert figures["failure_count"] == 0, figures["failures"]
    assert figures["relayed"] == figures["server_relayed"] > 0
    # ...and nobody, no call and no task is left, and the memory came back.
    assert figures["left"] == {
        "signaling_connections": 0.0,
        "signaling_users": 0.0,
        "signaling_active_calls": 0.0,
    }
    assert figures["tasks_end"] == figures["tasks_start"]
    assert figures["rss_end_mb"] <= 1.10 * figures["rss_start_mb"]
    assert figures["server_alive"] and figures["server_crash_lines"] == []
    assert result.returncode == 0


def test_bad_arguments_are_explained() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "soak.py"), "--clients", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--clients must be an even number" in result.stderr
    assert "Traceback" not in result.stderr
