"""Probing: the planner's schedule, the result estimator on synthetic feedback, and the
estimate on a simulated link that steps down and up again (``tests/congestion_support``)."""

from __future__ import annotations

import pytest

from peer.congestion.probing import (
    ALR_SETTLE_MS,
    CLUSTER_MS,
    MAX_PERIODIC_MS,
    PERIODIC_MS,
    ProbeCluster,
    ProbePlanner,
    ProbeReading,
    ProbeResultEstimator,
)
from tests.helpers.congestion_support import Link, simulate, steps


def _cluster_through(
    rate_bps: int, link_bps: float, *, packets: int = 20, size: int = 275, bunch_ms: float = 0
) -> ProbeReading | None:
    """Send a cluster at ``rate_bps`` through a FIFO of ``link_bps``; the estimator's reading."""
    cluster = ProbeCluster(1, rate_bps)
    estimator = ProbeResultEstimator()
    gap_ms = size * 8000 / rate_bps
    link_free = 0.0
    arrivals = []
    for i in range(packets):
        send = i * gap_ms
        estimator.on_sent(cluster, send, size)
        link_free = max(link_free, send) + size * 8000 / link_bps
        arrivals.append((i, link_free + 20.0))
    result = None
    for i, arrival in arrivals:
        stamped = arrivals[-1][1] if bunch_ms and i >= packets // 2 else arrival
        reading = estimator.on_received(1, i, stamped, size)
        result = reading if reading is not None else result
    return result


def test_a_cluster_under_the_capacity_reads_its_own_rate() -> None:
    reading = _cluster_through(600_000, 2_000_000)
    assert reading is not None and not reading.link_limited
    assert 0.9 * 600_000 <= reading.bitrate_bps <= 1.05 * 600_000
    assert reading.jump_from(300_000) == reading.bitrate_bps


def test_a_cluster_over_the_capacity_reads_the_link() -> None:
    reading = _cluster_through(1_200_000, 300_000)
    # 95 % of the receive rate, which is the link's
    assert reading is not None and reading.link_limited
    assert 0.8 * 300_000 <= reading.bitrate_bps <= 300_000
    # an upper bound only (a token bucket inflates it): half way there
    assert reading.jump_from(200_000) == pytest.approx((200_000 + reading.bitrate_bps) / 2)


def test_too_few_packets_back_give_no_reading() -> None:
    cluster = ProbeCluster(1, 1_000_000)
    estimator = ProbeResultEstimator()
    for i in range(10):
        estimator.on_sent(cluster, i * 2.0, 275)
    readings = [estimator.on_received(1, i, 30.0 + i * 2.2, 275) for i in range(4)]
    assert readings == [None] * 4  # 4 of 10 packets, under 80 %


def test_arrivals_bunched_far_faster_than_sent_give_no_reading() -> None:
    cluster = ProbeCluster(1, 500_000)
    estimator = ProbeResultEstimator()
    for i in range(10):
        estimator.on_sent(cluster, i * 4.4, 275)
    readings = [estimator.on_received(1, i, 100.0 + i * 0.1, 275) for i in range(10)]
    assert all(r is None for r in readings)


def test_feedback_repeated_for_a_packet_counts_once() -> None:
    cluster = ProbeCluster(1, 1_000_000)
    estimator = ProbeResultEstimator()
    for i in range(6):
        estimator.on_sent(cluster, i * 2.2, 275)
    for _ in range(6):
        assert estimator.on_received(1, 0, 30.0, 275) is None


def test_the_start_probes_three_and_six_times_the_start_rate() -> None:
    planner = ProbePlanner(start_bps=300_000, max_bps=2_500_000)
    first = planner.next_cluster(0.0)
    assert first is not None and first.bitrate_bps == 900_000
    assert first.min_bytes == int(900_000 * CLUSTER_MS / 8000)
    assert planner.next_cluster(10.0) is None  # waits for the first one's result
    planner.on_result(first.cluster_id, 900_000, True, 100.0)  # no faster than sent
    second = planner.next_cluster(120.0)
    assert second is not None and second.bitrate_bps == 1_800_000


def test_a_start_probe_that_fell_short_ends_the_start() -> None:
    planner = ProbePlanner(start_bps=300_000, max_bps=2_500_000)
    first = planner.next_cluster(0.0)
    assert first is not None
    planner.on_result(first.cluster_id, 400_000, True, 100.0)  # the link is slower
    assert planner.next_cluster(120.0) is None


def test_a_result_that_kept_up_probes_twice_as_high_up_to_the_max() -> None:
    planner = ProbePlanner(start_bps=1_000_000, max_bps=2_500_000)
    first = planner.next_cluster(0.0)
    assert first is not None and first.bitrate_bps == 2_500_000  # 3 x capped; 6 x dropped
    planner.on_estimate(800_000, 50.0)
    planner.on_result(first.cluster_id, 900_000, True, 50.0)  # 36 %: stop climbing
    assert planner.next_cluster(60.0) is None


def test_exponential_probing_follows_good_results() -> None:
    planner = ProbePlanner(start_bps=300_000, max_bps=5_000_000)
    cluster = planner.next_cluster(0.0)
    assert cluster is not None
    planner.on_result(cluster.cluster_id, 880_000, True, 80.0)
    planner.on_estimate(880_000, 80.0)
    nxt = planner.next_cluster(100.0)
    # the start's 6 x cluster (1.8 Mbit/s) was replaced by 2 x the result
    assert nxt is not None and nxt.bitrate_bps == 1_760_000


def _settled_planner(*, application_limited: bool = True) -> ProbePlanner:
    planner = ProbePlanner(start_bps=300_000, max_bps=2_500_000)
    cluster = planner.next_cluster(0.0)
    assert cluster is not None
    planner.on_result(cluster.cluster_id, 290_000, False, 100.0)  # link-limited: stop
    planner.on_estimate(280_000, 100.0)
    if application_limited:
        planner.on_alr(100.0, None)
    return planner


def test_periodic_probes_while_application_limited_and_below_the_max() -> None:
    planner = _settled_planner()
    assert planner.next_cluster(PERIODIC_MS - 10) is None
    periodic = planner.next_cluster(PERIODIC_MS + 10)
    assert periodic is not None and periodic.bitrate_bps == 560_000


def test_no_periodic_probe_while_the_encoder_fills_the_estimate() -> None:
    planner = _settled_planner(application_limited=False)
    assert all(planner.next_cluster(t) is None for t in range(0, 60_000, 20))
    # the sender becomes application-limited: a probe once that has lasted a moment
    planner.on_alr(60_000.0, None)
    assert planner.next_cluster(60_000.0 + ALR_SETTLE_MS - 20) is None
    cluster = planner.next_cluster(60_000.0 + ALR_SETTLE_MS + 20)
    assert cluster is not None and cluster.bitrate_bps == 560_000
    # and none after it ended
    planner.on_alr(None, 61_000.0)
    assert all(planner.next_cluster(t) is None for t in range(61_000, 80_000, 20))


def test_a_large_drop_while_application_limited_probes_the_rate_before_it() -> None:
    planner = _settled_planner(application_limited=False)
    planner.on_estimate(1_200_000, 5_000.0)
    planner.on_alr(5_000.0, None)
    planner.on_decrease(6_000.0)
    planner.on_estimate(500_000, 6_000.0)  # under 66 % of the last estimate
    assert planner.next_cluster(6_500.0) is None  # the cut is still settling
    cluster = planner.next_cluster(7_020.0)
    assert cluster is not None and cluster.bitrate_bps == int(0.85 * 1_200_000)
    assert planner.drop_probes == 1


def test_a_large_drop_with_the_encoder_filling_the_estimate_probes_nothing() -> None:
    planner = _settled_planner(application_limited=False)
    planner.on_estimate(1_200_000, 5_000.0)
    planner.on_decrease(6_000.0)
    planner.on_estimate(500_000, 6_000.0)
    assert all(planner.next_cluster(t) is None for t in range(6_000, 12_000, 20))
    assert planner.drop_probes == 0


def test_a_link_that_proved_faster_is_probed_once() -> None:
    planner = _settled_planner(application_limited=False)
    planner.on_estimate(400_000, 3_000.0)
    planner.on_link_faster(3_000.0)
    cluster = planner.next_cluster(3_020.0)
    assert cluster is not None and cluster.bitrate_bps == 800_000
    planner.on_result(cluster.cluster_id, 500_000, True, 3_100.0)  # fell short: no more
    assert all(planner.next_cluster(t) is None for t in range(3_120, 20_000, 20))
    assert planner.faster_probes == 1


def test_no_periodic_probe_soon_after_a_cut_or_near_the_max() -> None:
    planner = _settled_planner()
    planner.on_decrease(PERIODIC_MS)
    assert planner.next_cluster(PERIODIC_MS + 100) is None
    near_max = _settled_planner()
    near_max.on_estimate(2_450_000, 200.0)
    assert near_max.next_cluster(10 * PERIODIC_MS) is None


def test_a_jump_cut_soon_after_backs_the_periodic_probes_off() -> None:
    planner = _settled_planner()
    now = PERIODIC_MS + 10
    for _ in range(4):
        cluster = planner.next_cluster(now)
        assert cluster is not None
        planner.on_result(cluster.cluster_id, 420_000, True, now + 80)
        planner.on_decrease(now + 600)  # the jump overfilled the link
        planner.on_estimate(280_000, now + 600)
        now += MAX_PERIODIC_MS + 10
    assert planner.failed == 4
    # backed off to the longest wait: nothing after the base interval
    last = now - MAX_PERIODIC_MS - 10
    assert planner.next_cluster(last + PERIODIC_MS + 100) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_probing_finds_a_link_that_got_faster(seed: int) -> None:
    link = Link(capacity_bps=steps((0, 2_000_000), (20_000, 300_000), (40_000, 2_000_000)))
    probed = simulate(link, 60, start_bps=300_000, seed=seed, probing=True, max_bps=2_500_000)
    # measured: 80 % of 2 Mbit/s after 0.9 s (start) and 2.4-2.7 s after the step up
    # (the encoder fills the estimate: no periodic probe, one once the acknowledged rate
    # passed the old capacity); without probing 9.1 s and 9.7-10.6 s
    start = probed.first_time(0, lambda s: s.target_bps >= 0.8 * 2_000_000)
    assert start is not None and start <= 4
    up = probed.first_time(40, lambda s: s.target_bps >= 0.8 * 2_000_000)
    assert up is not None and up <= 6
    assert probed.planner is not None and probed.planner.faster_probes >= 1
    # on the slow stretch probing does not drag the estimate over the link
    assert 0.7 * 300_000 <= probed.mean_target(25, 40) <= 1.0 * 300_000


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_sender_filling_a_lossy_link_sends_no_probe_after_the_start(seed: int) -> None:
    # the weak profile's link (no token-bucket burst here: a FIFO)
    link = Link(capacity_bps=steps((0, 300_000)), loss=lambda _t: 0.02)
    trace = simulate(link, 60, start_bps=300_000, seed=seed, probing=True, max_bps=1_500_000)
    assert trace.planner is not None
    assert trace.planner.probes == 1  # the start's 3 x; it fell short, so no 6 x
    assert 0.8 * 300_000 <= trace.mean_target(5, 60) <= 300_000


@pytest.mark.parametrize("seed", [1, 2])
def test_an_application_limited_sender_probes_its_estimate_up(seed: int) -> None:
    # the encoder makes at most 500 kbit/s on a 2 Mbit/s link: the estimate alone would
    # stay within 1.5 x what is acknowledged (about 800 kbit/s); probes show the room
    link = Link(capacity_bps=steps((0, 2_000_000)))
    trace = simulate(link, 30, seed=seed, probing=True, max_bps=2_500_000, encoder_max_bps=500_000)
    unprobed = simulate(link, 30, seed=seed, max_bps=2_500_000, encoder_max_bps=500_000)
    assert trace.planner is not None and trace.planner.probes >= 5
    assert trace.mean_target(10, 30) >= 1_500_000
    assert unprobed.mean_target(10, 30) <= 900_000


def test_padding_packets_carry_nothing_but_padding() -> None:
    from peer.congestion.packets import (
        is_padding_only,
        padding_packet,
        rtp_header,
        stamp_transport_sequence,
        with_sequence,
    )

    packet = padding_packet(payload_type=97, sequence=65535, timestamp=1234, ssrc=0xDEADBEEF)
    stamped = stamp_transport_sequence(packet, 3, 77)  # the shell adds the extension
    assert is_padding_only(packet) and is_padding_only(stamped)
    header = rtp_header(with_sequence(stamped, 5))
    assert (header.ssrc, header.sequence, header.payload_type) == (0xDEADBEEF, 5, 97)
    media = bytes([0x80, 96, 0, 1]) + bytes(8) + b"\x10\x00\x00"
    assert not is_padding_only(media)
    # padding bit set, but a payload before the padding: not padding only
    assert not is_padding_only(bytes([0xA0, 96, 0, 1]) + bytes(8) + b"\x10\x00\x02\x02")
