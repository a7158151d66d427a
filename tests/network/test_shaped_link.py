"""The shaped-link lab itself: its profiles and commands (pure), and one lab built for real
(namespaces, tbf, iptables) to check that media can only go over the shaped veth."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.helpers.namespace_lab import namespaces
from tests.helpers.page_stats import PageSecond, latency_estimate_ms, per_second
from tests.helpers.shaped_link import (
    LINK_IP,
    PREFIX,
    PROFILES,
    SIGNALING_IP,
    Shape,
    ShapedLab,
    loss_rule,
    remove_stale_labs,
    tbf_argv,
)


def test_profiles_are_the_issues_links() -> None:
    assert PROFILES["weak"].start == Shape(300, loss=0.02, queue_ms=400, delay_ms=50, jitter_ms=10)
    assert PROFILES["dsl"].start.rate_kbit == 1000 and PROFILES["dsl"].start.loss == 0.01
    assert PROFILES["good"].start.rate_kbit == 5000 and PROFILES["good"].start.loss == 0
    assert [(at, shape.rate_kbit) for at, shape in PROFILES["step"].schedule(60)] == [
        (0, 2000),
        (20, 300),
        (40, 2000),
    ]


def test_a_short_run_leaves_out_the_later_changes() -> None:
    assert [at for at, _ in PROFILES["step"].schedule(30)] == [0, 20]
    assert PROFILES["step"].shape_at(25, 30).rate_kbit == 300
    assert PROFILES["step"].shape_at(19.9, 30).rate_kbit == 2000


def test_burst_loss_is_five_seconds_in_the_middle_of_any_run() -> None:
    for seconds in (20, 60):
        timed = [(at, shape.loss) for at, shape in PROFILES["burst-loss"].schedule(seconds)]
        middle = seconds / 2
        assert timed == [(0, 0), (middle - 2.5, 0.10), (middle + 2.5, 0)]


def test_tc_and_iptables_commands() -> None:
    weak = PROFILES["weak"].start
    assert tbf_argv("add", weak, netem=False) == [
        *("tc", "qdisc", "add", "dev", "media", "root", "handle", "10:", "tbf"),
        *("rate", "300kbit", "burst", "2000", "latency", "400ms"),
    ]
    assert tbf_argv("change", Shape(5000), netem=True)[5:9] == ["parent", "1:1", "handle", "10:"]
    assert Shape(5000).burst_bytes == 6250  # 10 ms at 5 Mbit/s
    assert loss_rule(weak)[-4:] == ["--probability", "0.0200", "-j", "DROP"]
    assert loss_rule(Shape(1000)) == ["-j", "RETURN"]


def test_a_pages_second_from_two_samples() -> None:
    old = {
        "at_ms": 1000.0,
        "bytes_sent": 10_000,
        "inbound": {"frames_decoded": 10, "freeze_count": 1, "freezes_s": 0.5, "processing_s": 1},
        "outbound": {"packets_sent": 100, "pacer_s": 0.5, "frames_encoded": 10, "encode_s": 0.1},
    }
    new = {
        "at_ms": 2000.0,
        "bytes_sent": 47_500,
        "inbound": {"frames_decoded": 40, "width": 480, "height": 360, "freeze_count": 1,
                    "freezes_s": 0.5, "processing_s": 2.5},
        "outbound": {"packets_sent": 150, "pacer_s": 1.0, "frames_encoded": 40, "encode_s": 0.4},
        "pair": {"rtt_s": 0.1, "available_outgoing_bps": 280_000},
    }  # fmt: skip
    second = per_second(new, old)
    assert second.fps == 30 and (second.width, second.height) == (480, 360)
    assert second.send_kbps == 300.0
    assert second.freezes == 0 and second.frozen_ms == 0
    assert second.processing_ms == pytest.approx(50)  # 1.5 s over 30 frames
    assert second.pacer_ms == pytest.approx(10)  # 0.5 s over 50 packets
    assert second.encode_ms == pytest.approx(10)
    assert second.rtt_ms == pytest.approx(100) and second.available_outgoing_kbps == 280
    # The sender's encode and pacer time, half the round trip, the receiver's processing.
    assert latency_estimate_ms(second, second) == pytest.approx(10 + 10 + 50 + 50)


def test_no_latency_estimate_without_frames() -> None:
    idle = PageSecond(None, 0, 0, 0.0, 0, 0.0, None, None, None, None, None)
    assert latency_estimate_ms(idle, idle) is None


# ---- one lab, built for real ------------------------------------------------------------------
@pytest.fixture
def lab() -> Iterator[ShapedLab]:
    remove_stale_labs()
    built = ShapedLab(PROFILES["dsl"]).build()
    yield built
    built.close()
    assert not [name for name in namespaces() if name.startswith(built.lab_id)]


_RECEIVE = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('0.0.0.0', 5999)); s.settimeout(3)\n"
    "print('ready', flush=True)\n"
    "try:\n    print(s.recvfrom(100)[0].decode())\n"
    "except TimeoutError:\n    print('nothing')\n"
)
_SEND = (
    "import socket, sys, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "for _ in range(30):\n"
    "    try:\n        s.sendto(b'hello', (sys.argv[1], 5999))\n"
    "    except PermissionError:\n        pass  # dropped on its way out (the signaling paths)\n"
    "    time.sleep(0.05)\n"
)


def _udp_arrives(lab: ShapedLab, sender: str, receiver: str, address: str) -> bool:
    listening = subprocess.Popen(
        lab.argv(receiver, [sys.executable, "-c", _RECEIVE]), stdout=subprocess.PIPE, text=True
    )
    assert listening.stdout is not None
    assert listening.stdout.readline().strip() == "ready"
    subprocess.run(lab.argv(sender, [sys.executable, "-c", _SEND, address]), check=True)
    heard = listening.communicate(timeout=10)[0].strip()
    return heard == "hello"


@pytest.mark.slow
def test_media_can_only_take_the_shaped_link(lab: ShapedLab) -> None:
    assert all(name.startswith(PREFIX) for name in lab.created)
    assert _udp_arrives(lab, "a", "b", LINK_IP["b"])
    # The signaling paths carry TCP only: ICE cannot nominate a pair over them.
    assert not _udp_arrives(lab, "a", "sig", SIGNALING_IP["a"])
    assert not _udp_arrives(lab, "b", "sig", SIGNALING_IP["b"])
    assert lab.counters("a").packets_sent > 0  # through the rate limiter


@pytest.mark.slow
def test_a_change_reaches_both_ends(lab: ShapedLab) -> None:
    lab.apply(PROFILES["weak"].start)
    for side in ("a", "b"):
        shown = subprocess.run(
            lab.argv(side, ["tc", "qdisc", "show", "dev", "media"]), capture_output=True, text=True
        ).stdout
        assert "rate 300Kbit" in shown and "lat 400ms" in shown, shown
        rules = subprocess.run(
            lab.argv(side, ["iptables", "-S", "wplab-loss"]), capture_output=True, text=True
        ).stdout
        assert "--probability 0.02" in rules, rules
