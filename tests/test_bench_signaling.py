"""scripts/bench_signaling.py at toy size: the load generator itself must be right.

Against our server, the tutorial's Node server (benchmarks/, npm ci by setup.sh) and
two of our processes sharing a real redis-server, every offer sent arrives once,
in order, stamped with its sender. Nothing here looks at speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from .support import ROOT

pytestmark = pytest.mark.slow


def bench(*args: str) -> tuple[list[dict[str, Any]], str]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_signaling.py"), "--json", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout), result.stderr


@pytest.mark.parametrize(
    "load",
    [
        ("--clients", "10", "--messages", "40", "--window", "4"),  # as fast as it goes
        ("--clients", "6", "--messages", "5", "--rate", "50"),  # paced
    ],
    ids=["windowed", "paced"],
)
def test_every_message_arrives_once_in_order_on_every_server(load: tuple[str, ...]) -> None:
    results, progress = bench("--servers", "python,node,python-redis", *load)
    [scenario] = results
    summaries = scenario["summaries"]
    assert set(summaries) == {"python", "node", "python-redis"}
    clients = int(load[1])
    messages = int(load[3])
    for server, summary in summaries.items():
        assert summary["clients"] == clients, server
        assert summary["expected"] == summary["received"] == clients * messages, server
        assert (summary["lost"], summary["duplicated"], summary["reordered"]) == (0, 0, 0), server
        assert summary["misattributed"] == 0 and summary["error_count"] == 0, server
        assert summary["server_cpu_us_per_msg"] is not None, server
    assert "python-redis" in progress


def test_bad_arguments_are_explained() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_signaling.py"), "--clients", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--clients must be an even number" in result.stderr
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_signaling.py"), "--servers", "go"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown server 'go'; choose from python, node, python-redis" in result.stderr
