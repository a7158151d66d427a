"""Calls across simulated NATs (network namespaces, iptables): host, srflx and relay.

Two webcam-peer processes, each in its own namespace behind its own router;
the signaling server and coturn on the "public" segment (tests/helpers/nat_support.py).
The same configuration everywhere (STUN and TURN from the signaling server's
login reply); the NAT decides which pair ICE ends up with, and the tests assert
it from what the peers print.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from peer.errors import ExitCode
from tests.helpers.namespace_lab import namespaces
from tests.helpers.nat_support import (
    PREFIX,
    SERVER_IP,
    SITES,
    NatLab,
    NatType,
    remove_stale_labs,
)
from tests.helpers.peer_support import stats_lines, wait_for_frames
from tests.helpers.support import BIN, Process
from tests.helpers.turn_support import start_coturn

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

SECRET = "nat-lab-turn-secret"
TURN_PORT = 3478
SIGNALING_PORT = 8080
SERVER_URL = f"ws://{SERVER_IP}:{SIGNALING_PORT}/ws"
ICE_SERVERS = (f"stun:{SERVER_IP}:{TURN_PORT}", f"turn:{SERVER_IP}:{TURN_PORT}?transport=udp")
PEER_FLAGS = (
    "--server",
    SERVER_URL,
    "--no-window",
    "--no-speaker",
    "--auto-answer",
    *("--video", "synthetic", "--size", "320x240", "--fps", "15", "--audio", "none"),
    *("--stats-interval", "0.5"),
    "-v",  # peer.stack.ice_checks says when it re-checks a pair
)
BuildLab = Callable[[NatType], NatLab]


@pytest.fixture
def nat_lab() -> Iterator[BuildLab]:
    """Build labs (namespaces, links, rules); every one is removed afterwards, pass or fail."""
    remove_stale_labs()
    labs: list[NatLab] = []

    def build(nat: NatType) -> NatLab:
        lab = NatLab(nat)
        labs.append(lab)
        return lab.build()

    yield build
    for lab in labs:
        lab.close()


def start_public_servers(lab: NatLab, directory: Path, *, with_coturn: bool = True) -> Process:
    """coturn (unless told not to) and the signaling server, in the public namespace."""
    if with_coturn:
        turn = start_coturn(
            directory / "coturn",
            listen=(SERVER_IP, "203.0.113.2"),
            port=TURN_PORT,
            secret=SECRET,
            prefix=lab.argv("pub", []),
        )
        lab.processes.append(turn.process)
    server = lab.start(
        "pub",
        [
            str(BIN / "signaling-server"),
            *("--host", SERVER_IP, "--port", str(SIGNALING_PORT)),
            *(arg for url in ICE_SERVERS for arg in ("--ice-server", url)),
            *("--turn-secret", SECRET, "--allow-anonymous-turn"),
        ],
    )
    server.wait_for("listening on")
    return server


def start_call(lab: NatLab) -> tuple[Process, Process, float]:
    """bob waits behind site b, alice calls him from behind site a."""
    bob = lab.start("peer-b", [str(BIN / "webcam-peer"), "--login", "bob", "--once", *PEER_FLAGS])
    bob.wait_for("waiting for calls")
    called = time.monotonic()
    alice = lab.start(
        "peer-a", [str(BIN / "webcam-peer"), "--login", "alice", "--call", "bob", *PEER_FLAGS]
    )
    return alice, bob, called


def mapping_behaviour(lab: NatLab) -> dict[str, str]:
    """Each site's NAT mapping, asked of two STUN servers from one socket (RFC 5780 4.3)."""
    found = {}
    for site in SITES:
        first, second = lab.mapped_addresses(site, TURN_PORT)
        assert first[0] == second[0] == site.public_ip, (site, first, second)
        found[site.name] = "endpoint-independent" if first == second else "address-dependent"
    return found


def last_stats(process: Process) -> dict[str, Any]:
    lines = stats_lines(process)
    assert lines, "\n".join(process.lines[-30:])
    return lines[-1]


@pytest.mark.parametrize(
    ("nat", "mapping", "pair_type"),
    [
        (NatType.NONE, None, "host"),
        (NatType.CONE, "endpoint-independent", "srflx"),
        (NatType.SYMMETRIC, "address-dependent", "relay"),
    ],
    ids=["routed-host", "cone-srflx", "symmetric-relay"],
)
def test_the_nat_decides_the_candidate_pair(
    nat_lab: BuildLab, tmp_path: Path, nat: NatType, mapping: str | None, pair_type: str
) -> None:
    lab = nat_lab(nat)
    start_public_servers(lab, tmp_path)
    if mapping is not None:
        assert mapping_behaviour(lab) == {"a": mapping, "b": mapping}
    alice, bob, _ = start_call(lab)
    alice.wait_for(rf"call with bob connected over {pair_type}/udp")
    bob.wait_for(rf"call with alice connected over {pair_type}/udp")
    for process, other in ((alice, SITES[1]), (bob, SITES[0])):
        first = wait_for_frames(process, 5)
        last = wait_for_frames(process, first["video"]["frames"] + 15)
        assert last["video"]["last_frame_number"] > first["video"]["last_frame_number"]
        pair = last["pair"]
        assert pair["type"] == pair_type, pair
        if pair_type == "host":
            assert pair["remote_address"].startswith(other.peer_ip + ":")
        elif pair_type == "srflx":
            # Straight to the other NAT's public address: no relay on either end.
            assert pair["local"] == "host" and pair["remote"] in ("srflx", "prflx"), pair
            assert pair["remote_address"].startswith(other.public_ip + ":")
        else:
            assert "relay" in (pair["local"], pair["remote"]), pair
        logger.info("%s: %s setup_ms %s", nat.value, pair["type"], json.dumps(last["setup_ms"]))
    if nat is NatType.CONE:
        # Each side's first check dies at the other's NAT until that NAT has seen a
        # packet go out; the side that receives a check on its pending pair re-checks
        # at once (peer/stack/ice_checks.py) instead of 500 ms later.
        assert any("re-checking CandidatePair" in line for line in alice.lines + bob.lines)
    assert not any("Traceback" in line for line in alice.lines + bob.lines)


def test_symmetric_nat_without_turn_fails_clearly_and_soon(
    nat_lab: BuildLab, tmp_path: Path
) -> None:
    lab = nat_lab(NatType.SYMMETRIC)
    start_public_servers(lab, tmp_path, with_coturn=False)  # the TURN/STUN server is down
    alice, bob, called = start_call(lab)
    code = alice.wait(timeout=60)
    took = time.monotonic() - called
    assert code == ExitCode.CALL_FAILED, alice.lines
    assert took < 45, f"the failure took {took:.0f} s"
    turn = ICE_SERVERS[1]
    ended = alice.wait_for(r"error: .*")
    logger.info("after %.1f s alice says: %s", took, ended.string)
    assert ended.string.startswith("[")  # said on a user's line, not a traceback
    assert (
        f"could not connect media with bob within 20 s; the TURN server {turn} did not answer"
        in ended.string
    ), ended.string
    assert "so there was no relay to fall back on" in ended.string
    # Whichever side's watchdog fires first tells the other: bob hears it or fails himself.
    bob.wait_for(r"call with alice ended: (alice hung up \(failed\)|could not connect media)")
    assert bob.wait(timeout=30) in (ExitCode.OK, ExitCode.CALL_FAILED)
    assert not any("Traceback" in line for line in alice.lines + bob.lines)


def test_labs_leave_nothing_behind() -> None:
    lab = NatLab(NatType.CONE).build()
    made = [name for name in namespaces() if name.startswith(lab.lab_id)]
    assert len(made) == 5, made
    lab.close()
    assert not [name for name in namespaces() if name.startswith(lab.lab_id)]

    # A crashed run's namespace (its pid is gone), with a process still inside.
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    stale = f"{PREFIX}{dead_pid}-1-pub"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "600"])
    try:
        # Popen returns before `ip netns exec` has entered the namespace.
        for _ in range(100):
            inside = subprocess.run(
                ["ip", "netns", "pids", stale], capture_output=True, text=True
            ).stdout.split()
            if inside:
                break
            time.sleep(0.05)
        assert inside, "the sleeper never entered its namespace"
        assert stale in remove_stale_labs()
        assert stale not in namespaces()
        assert sleeper.wait(timeout=10) != 0  # killed with its namespace
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        subprocess.run(["ip", "netns", "delete", stale], capture_output=True)
