"""The pieces of the estimate: inter-arrival groups, trendline, AIMD, acked and loss rates."""

from __future__ import annotations

import math
import random

import pytest

from peer.congestion.acknowledged import AcknowledgedBitrate
from peer.congestion.loss_based import LossBasedController
from peer.congestion.rate_control import AimdRateControl, RateState
from peer.congestion.trendline import (
    BandwidthUsage,
    GroupDelta,
    InterArrival,
    TrendlineEstimator,
)


def test_packets_sent_within_5_ms_form_one_group() -> None:
    groups = InterArrival()
    deltas = []
    # three frames 33 ms apart, each 4 packets sent 1 ms apart, arriving 2 ms apart
    for frame in range(3):
        for packet in range(4):
            send = frame * 33.0 + packet
            delta = groups.add(send, send + 20 + packet, 1000)
            if delta is not None:
                deltas.append(delta)
    delta = groups.add(99.0, 119.0, 1000)  # the first packet of a fourth frame
    assert delta is not None
    deltas.append(delta)
    # frames 0->1 judged when frame 2 starts, 1->2 when frame 3 starts
    assert [(d.send_delta_ms, d.arrival_delta_ms) for d in deltas] == [(33.0, 33.0), (33.0, 33.0)]


def test_a_burst_arriving_back_to_back_joins_the_group() -> None:
    groups = InterArrival()
    groups.add(0.0, 50.0, 1000)
    # sent 8 ms later but queued behind the first: arrives 1 ms after it
    assert groups.add(8.0, 51.0, 1000) is None
    assert groups.add(40.0, 90.0, 1000) is None  # starts the next group
    delta = groups.add(80.0, 130.0, 1000)
    assert delta == GroupDelta(send_delta_ms=32.0, arrival_delta_ms=39.0, arrival_ms=90.0)


def test_arrival_jumps_restart_the_grouping() -> None:
    groups = InterArrival()
    for n in range(3):
        groups.add(n * 33.0, n * 33.0 + 20, 1000)
    groups.add(99.0, 99.0 + 20 + 10_000, 1000)  # the receiver's clock jumped 10 s
    assert groups.add(132.0, 132.0 + 20 + 10_000, 1000) is None  # no delta across the jump
    assert groups.resets == 1
    assert groups.add(165.0, 165.0 + 20 + 10_000, 1000) is None
    assert groups.add(198.0, 198.0 + 20 + 10_000, 1000) == GroupDelta(33.0, 33.0, 10_185.0)


def _feed(trend: TrendlineEstimator, extra_per_group_ms: float, groups: int) -> BandwidthUsage:
    arrival = 1000.0
    state = trend.state
    for _ in range(groups):
        arrival += 33 + extra_per_group_ms
        state = trend.update(GroupDelta(33.0, 33 + extra_per_group_ms, arrival))
    return state


def test_steady_delay_is_normal() -> None:
    trend = TrendlineEstimator()
    assert _feed(trend, 0.0, 100) is BandwidthUsage.NORMAL
    assert trend.trend == pytest.approx(0.0)


def test_a_growing_queue_is_overuse_and_a_draining_one_underuse() -> None:
    trend = TrendlineEstimator()
    _feed(trend, 0.0, 30)
    assert _feed(trend, 3.0, 30) is BandwidthUsage.OVERUSING  # +3 ms per frame
    trend = TrendlineEstimator()
    _feed(trend, 0.0, 30)
    assert _feed(trend, -3.0, 30) is BandwidthUsage.UNDERUSING


def test_overuse_needs_the_signal_to_last() -> None:
    trend = TrendlineEstimator()
    _feed(trend, 0.0, 30)
    states = [_feed(trend, 20.0, 1)]  # one late group is jitter, not congestion
    assert states == [BandwidthUsage.NORMAL]


def _arrivals(trend: TrendlineEstimator, delays_ms: list[float]) -> list[BandwidthUsage]:
    """Groups sent every 33 ms arriving after the given one-way delays."""
    states = []
    previous = None
    for n, delay in enumerate(delays_ms):
        arrival = n * 33 + delay
        if previous is not None:
            states.append(trend.update(GroupDelta(33.0, arrival - previous, arrival)))
        previous = arrival
    return states


def test_jitter_without_queue_growth_is_not_overuse() -> None:
    rng = random.Random(7)
    trend = TrendlineEstimator()
    states = _arrivals(trend, [20 + rng.uniform(0, 20) for _ in range(3000)])
    assert BandwidthUsage.OVERUSING not in states


def test_threshold_rises_on_a_swinging_path_and_settles_when_it_calms() -> None:
    trend = TrendlineEstimator()
    _arrivals(trend, [20 + 40 * (1 + math.sin(n / 6)) for n in range(1000)])
    assert trend.threshold > 10  # from its 6 ms floor: the path swings this much anyway
    _arrivals(trend, [20.0] * 1000)
    assert trend.threshold == 6.0


def test_aimd_decreases_to_085_of_the_acknowledged_rate_then_holds() -> None:
    aimd = AimdRateControl(start_bps=1_000_000, min_bps=10_000, max_bps=10_000_000)
    aimd.update(BandwidthUsage.NORMAL, 900_000, 50, 0)
    assert aimd.update(BandwidthUsage.OVERUSING, 800_000, 50, 100) == pytest.approx(680_000)
    assert aimd.state is RateState.HOLD
    # within one RTT a second overuse waits for the first decrease to take effect
    assert aimd.update(BandwidthUsage.OVERUSING, 700_000, 50, 120) == pytest.approx(680_000)
    assert aimd.update(BandwidthUsage.OVERUSING, 700_000, 50, 200) == pytest.approx(595_000)
    assert aimd.decreases == 2


def test_aimd_increases_multiplicatively_then_additively_near_capacity() -> None:
    aimd = AimdRateControl(start_bps=500_000, min_bps=10_000, max_bps=10_000_000)
    aimd.update(BandwidthUsage.NORMAL, None, 50, 0)
    rate = aimd.update(BandwidthUsage.NORMAL, None, 50, 1000)
    assert rate == pytest.approx(540_000, rel=0.02)  # +8 % in the first second
    aimd.update(BandwidthUsage.OVERUSING, 500_000, 50, 1100)  # capacity now known: ~500k
    aimd.update(BandwidthUsage.NORMAL, 425_000, 50, 1200)
    before = aimd.bitrate_bps
    after = aimd.update(BandwidthUsage.NORMAL, 425_000, 50, 2200)
    # about one packet per response time (RTT + 100 ms): 14.2 kbit/frame / 2 packets / 0.15 s
    assert after - before == pytest.approx(47_222, rel=0.05)


def test_aimd_does_not_run_away_from_what_is_acknowledged() -> None:
    aimd = AimdRateControl(start_bps=300_000, min_bps=10_000, max_bps=10_000_000)
    for t in range(0, 60_000, 100):
        aimd.update(BandwidthUsage.NORMAL, 100_000, 50, t)  # the sender only uses 100k
    assert aimd.bitrate_bps <= 300_000  # not above 1.5 x 100k + 10k, nor decreased


def test_aimd_holds_while_the_queue_drains() -> None:
    aimd = AimdRateControl(start_bps=500_000, min_bps=10_000, max_bps=10_000_000)
    aimd.update(BandwidthUsage.NORMAL, None, 50, 0)
    held = aimd.update(BandwidthUsage.UNDERUSING, None, 50, 500)
    assert aimd.update(BandwidthUsage.UNDERUSING, None, 50, 1500) == held
    assert aimd.state is RateState.HOLD


def test_acknowledged_bitrate_over_its_window() -> None:
    acked = AcknowledgedBitrate(window_ms=500)
    assert acked.bps is None
    for n in range(100):
        acked.add(n * 10.0, 1250)  # 1250 bytes every 10 ms = 1 Mbit/s
    assert acked.bps == pytest.approx(1_000_000, rel=0.03)
    acked.reset()
    assert acked.bps is None


def test_loss_controller_holds_between_2_and_10_percent() -> None:
    loss = LossBasedController(start_bps=1_000_000)
    loss.update(0, 1_000_000, 50)
    loss.on_packets(100, 5)
    held = loss.update(600, 5_000_000, 50)
    assert loss.loss_fraction == pytest.approx(0.05)
    assert held == 1_000_000
    assert loss.update(1200, 5_000_000, 50) == held


def test_loss_controller_cuts_by_half_the_loss_above_10_percent() -> None:
    loss = LossBasedController(start_bps=1_000_000)
    loss.update(0, 1_000_000, 50)
    loss.on_packets(100, 20)
    assert loss.update(600, 1_000_000, 50) == pytest.approx(900_000)
    loss.on_packets(100, 20)
    assert loss.update(1_200, 1_000_000, 50) == pytest.approx(810_000)
    assert loss.decreases == 2


def test_loss_controller_grows_under_2_percent_but_never_above_the_ceiling() -> None:
    loss = LossBasedController(start_bps=1_000_000)
    loss.update(0, 1_000_000, 50)
    loss.on_packets(100, 20)
    cut = loss.update(600, 1_000_000, 50)
    loss.on_packets(100, 1)
    grown = loss.update(1_600, 1_000_000, 50)
    assert cut < grown <= 1.09 * cut  # 8 % a second after a cut
    for t in range(2_000, 8_000, 500):
        loss.on_packets(100, 0)
        loss.update(t, 950_000, 50)
    assert loss.bitrate_bps == 950_000  # 5 s after the cut the delay-based rate rules
