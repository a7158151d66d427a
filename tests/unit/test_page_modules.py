"""The page's pure JavaScript modules (signaling/static/), run by Node.

`node --test tests/unit/page/` holds the modules' own unit tests (conversation.js among
them, in-process against a fake RTCPeerConnection and server); this file runs them
inside pytest, and checks that the page's recovery rules (recovery.js) are
peer/call/recovery.py's: the same table, budget, timeouts, close reason and fresh-offer rule.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from peer.call.recovery import (
    CONNECTION_HEALTHY,
    FRESH_OFFER_HOLD,
    HANG_UP_GRACE,
    MAX_ATTEMPTS,
    RECOVERY_TIMEOUT,
    STEPS,
    Ending,
    Recovery,
    Step,
    Verdict,
    ice_ufrag,
    is_fresh_negotiation,
)
from peer.session.client import Backoff

PAGE_TESTS = Path(__file__).parent / "page"
ROOT = Path(__file__).resolve().parents[2]


def _node() -> str:
    node = shutil.which("node")
    assert node is not None, "Node.js is missing: scripts/setup.sh --test installs it"
    # The page's modules are plain .js files: Node reads them as ES modules by their
    # syntax from 20.19 on (no package.json in the served folder needed).
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major, minor = (int(part) for part in version.stdout.strip().lstrip("v").split(".")[:2])
    assert (major, minor) >= (20, 19), f"the page's tests need Node >= 20.19, not {version.stdout}"
    return node


def test_the_page_modules_pass_their_node_tests() -> None:
    result = subprocess.run(
        [_node(), "--test", str(PAGE_TESTS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
    assert "# pass 0" not in result.stdout


def _sdp(ufrag: str | None) -> str:
    line = f"a=ice-ufrag:{ufrag}\r\n" if ufrag else ""
    return f"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n{line}a=ice-pwd:x\r\n"


class _Fixed(random.Random):
    """uniform(a, b) at a fixed point r of the interval, as the page's Math.random() = r."""

    def __init__(self, r: float) -> None:
        super().__init__()
        self.r = r

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.r


MOVES = [(ending.value, up) for ending in Ending for up in (True, False)]
SEQUENCES = [
    (dialled, list(moves))
    for dialled in (True, False)
    for moves in itertools.product(MOVES, repeat=3)
]
SDPS = [
    (None, _sdp("b2")),
    (_sdp("a1"), _sdp("a1")),
    (_sdp("a1"), _sdp("b2")),
    (_sdp("a1"), _sdp(None)),
    (_sdp(None), _sdp("b2")),
    (_sdp("a1") + _sdp("zz"), _sdp("a1")),
]
RANDOMS = [0.0, 0.25, 0.5, 0.75]


@pytest.fixture(scope="module")
def page() -> dict[str, Any]:
    result = subprocess.run(
        [_node(), str(PAGE_TESTS / "recovery_table.mjs")],
        input=json.dumps({"sequences": SEQUENCES, "sdps": SDPS, "randoms": RANDOMS}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_the_page_recovers_by_the_peers_table(page: dict[str, Any]) -> None:
    assert page["endings"] == sorted(e.value for e in Ending)
    assert page["steps"] == sorted(s.value for s in Step)
    assert page["verdicts"] == sorted(v.value for v in Verdict)
    python_table = sorted(
        [f"{ending.value}/{'true' if dialled else 'false'}", step.value]
        for (ending, dialled), step in STEPS.items()
    )
    assert page["table"] == python_table


def test_the_page_spends_the_same_budget_as_the_peer(page: dict[str, Any]) -> None:
    expected = []
    for dialled, moves in SEQUENCES:
        budget = Recovery(dialled=dialled)
        expected.append(
            [budget.next_step(Ending(ending), signaling_up=up).value for ending, up in moves]
        )
    assert page["sequences"] == expected


def test_the_page_has_the_peers_timeouts_and_close_reason(page: dict[str, Any]) -> None:
    assert page["constants"] == {
        "MAX_ATTEMPTS": MAX_ATTEMPTS,
        "RECOVERY_TIMEOUT_MS": RECOVERY_TIMEOUT * 1000,
        "HANG_UP_GRACE_MS": HANG_UP_GRACE * 1000,
        "FRESH_OFFER_HOLD_MS": FRESH_OFFER_HOLD * 1000,
        "CONNECTION_HEALTHY": CONNECTION_HEALTHY,
    }


def test_the_page_tells_a_fresh_negotiation_as_the_peer_does(page: dict[str, Any]) -> None:
    assert page["fresh"] == [is_fresh_negotiation(current, offer) for current, offer in SDPS]
    assert page["ufrags"] == [ice_ufrag(offer) for _, offer in SDPS]


def test_the_page_backs_off_by_the_peers_rule(page: dict[str, Any]) -> None:
    # Same first delay and cap as the peer's, so the doubling and the scatter compare.
    for r, delays in zip(RANDOMS, page["backoff"], strict=True):
        backoff = Backoff(first=0.25, cap=5.0, rng=_Fixed(r))
        # Math.round: halves up
        assert delays == [math.floor(backoff.next() * 1000 + 0.5) for _ in range(7)]
