"""A congested call is not a dead call; a dead path still ends the call.

Two webcam-peer bots in two network namespaces joined by one shaped link
(tests/helpers/shaped_link_support.py: 300 kbit/s, a 400 ms queue at each end, 2 % of
outgoing UDP dropped) push 640x480 synthetic video at 30 fps into it. The
senders are told to keep no congestion control where they have one
(``--congestion-control stock``): many times the link's capacity queues up at
each end, the hardest case for consent checks, whose answers come back
behind the video. The call must hold; then the link is cut, and the failure
must still be noticed within the bound of docs/reliability.md (promise 2:
15 s through ICE consent).
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import pytest

from tests.helpers.peer_support import stats_lines
from tests.helpers.shaped_link_support import ENDS, ShapedLink, remove_stale_links
from tests.helpers.support import BIN, Process
from tests.network.test_reliability import NOTICED_VIA_CONSENT

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

HOLD = 30.0  # seconds the congested call must survive
LINK_KBPS = 300
FAILED = re.compile(r"media connection with \w+ failed|call with \w+ ended")
BuildLink = Callable[[], ShapedLink]


@pytest.fixture
def shaped_link() -> Iterator[BuildLink]:
    """Build links (namespaces, shaping, rules); every one is removed afterwards."""
    remove_stale_links()
    links: list[ShapedLink] = []

    def build() -> ShapedLink:
        link = ShapedLink()
        links.append(link)
        return link.build()

    yield build
    for link in links:
        link.close()


@cache
def without_congestion_control() -> tuple[str, ...]:
    """The flag that keeps a sender from adapting to the link, where the peer has one."""
    usage = subprocess.run(
        [str(BIN / "webcam-peer"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    return ("--congestion-control", "stock") if "--congestion-control" in usage else ()


def bot(*args: str) -> tuple[str, ...]:
    return (
        *args,
        *("--video", "synthetic", "--size", "640x480", "--fps", "30", "--audio", "none"),
        *("--stats-interval", "1", "-v"),
        *without_congestion_control(),
    )


def failure_lines(*peers: Process) -> list[str]:
    return [line for peer in peers for line in peer.drain() if FAILED.search(line)]


def consent_summaries(peer: Process) -> list[str]:
    return [line for line in peer.drain() if "peer.stack.consent: consent on" in line]


def peak(lines: list[dict[str, Any]], key: str) -> float:
    return max((line[key] or 0.0) for line in lines) if lines else 0.0


def test_a_congested_call_holds_and_a_cut_link_still_ends_it(shaped_link: BuildLink) -> None:
    link = shaped_link()
    link.start_server()
    bob = link.start_peer(ENDS[1], *bot("--login", "bob", "--once"))
    bob.wait_for("waiting for calls")
    alice = link.start_peer(ENDS[0], *bot("--login", "alice", "--call", "bob"))
    alice.wait_for("call with bob connected", 30)
    bob.wait_for("call with alice connected", 30)

    connected = time.monotonic()
    while time.monotonic() - connected < HOLD:
        failed = failure_lines(alice, bob)
        assert not failed, (
            f"the congested call was declared failed after {time.monotonic() - connected:.1f} s: "
            f"{failed}"
        )
        time.sleep(0.5)
    for peer, name in ((alice, "alice"), (bob, "bob")):
        lines = [line for line in stats_lines(peer) if line["event"] == "stats"]
        assert lines and lines[-1]["state"] == "connected", peer.lines[-20:]
        # The link really was congested: each sender overran it several times over, and
        # the round trip was the queues'.
        sending, rtt = peak(lines, "bitrate_out_kbps"), peak(lines, "rtt_ms")
        assert sending > 3 * LINK_KBPS, f"{name} sent at most {sending} kbit/s"
        assert rtt > 400, f"{name}'s round trip was at most {rtt} ms"
        logger.info(
            "%s: up to %.0f kbit/s into the link, round trip up to %.0f ms", name, sending, rtt
        )

    cut = time.monotonic()
    link.cut()
    alice.wait_for(r"media connection with bob failed", NOTICED_VIA_CONSENT + 15)
    noticed = time.monotonic() - cut
    bob.wait_for(r"media connection with alice failed|call with alice ended", 30)
    logger.info("link cut -> alice noticed the failure after %.1f s", noticed)
    for peer in (alice, bob):
        for summary in consent_summaries(peer):
            logger.info("%s", summary.split("peer.stack.consent: ", 1)[1])
    assert noticed < NOTICED_VIA_CONSENT
    for peer in (alice, bob):
        assert not any("Traceback" in line for line in peer.lines), peer.lines[-40:]
