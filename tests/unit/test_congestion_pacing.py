"""The pacing budget, the send queue and the keyframe request throttle."""

from __future__ import annotations

import random

import pytest

from peer.congestion.keyframes import KeyframeRequestThrottle
from peer.congestion.pacer import (
    MAX_RETRANSMISSION_SHARE,
    QUEUEING_MS,
    PacingBudget,
    PacketKind,
    PacketQueue,
    retransmission_fits,
)


def _pace(
    budget: PacingBudget,
    arrivals: list[tuple[float, int]],
    rate_changes: dict[int, int] | None = None,
) -> list[tuple[float, int]]:
    """Send ``arrivals`` (time, size) through ``budget`` as a pacer task would: (time, size)."""
    rate_changes = rate_changes or {}
    pending = list(arrivals)
    queue: list[int] = []
    sent: list[tuple[float, int]] = []
    now = 0.0
    while pending or queue:
        while pending and pending[0][0] <= now:
            queue.append(pending.pop(0)[1])
        if not queue:
            now = pending[0][0]
            continue
        wait = budget.delay_until_send(queue[0], now)
        if wait == 0:
            size = queue.pop(0)
            budget.on_sent(size, now)
            sent.append((now, size))
            if len(sent) in rate_changes:
                budget.set_rate(rate_changes[len(sent)])
        else:
            now = min(now + wait, pending[0][0]) if pending else now + wait
    return sent


def _worst_excess(sent: list[tuple[float, int]], rate_bps: float) -> float:
    """max over windows [t_i, t_j] of bytes sent in it minus rate x duration."""
    worst = float("-inf")
    lowest_start = float("inf")
    total_before = 0.0
    for time, size in sent:
        # a window starting at this packet: bytes before it count negatively
        lowest_start = min(lowest_start, total_before - time * rate_bps / 8000)
        total_before += size
        worst = max(worst, total_before - time * rate_bps / 8000 - lowest_start)
    return worst


def _video_frames(seed: int, seconds: float) -> list[tuple[float, int]]:
    """A 30 fps encoder: every 33 ms a frame of 1-40 packets, keyframe-sized now and then."""
    rng = random.Random(seed)
    arrivals: list[tuple[float, int]] = []
    frame = 0
    while frame * 33.3 < seconds * 1000:
        count = 40 if frame % 60 == 0 else rng.randint(1, 8)
        arrivals += [(frame * 33.3, rng.randint(100, 1200)) for _ in range(count)]
        frame += 1
    return arrivals


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rate_bps", [150_000, 750_000, 5_000_000])
def test_no_window_ever_exceeds_the_budget(seed: int, rate_bps: int) -> None:
    budget = PacingBudget(rate_bps, burst_ms=5.0)
    frames = _video_frames(seed, 10)
    sent = _pace(budget, frames)
    allowance = max(budget.burst_bytes, max(size for _, size in sent))
    assert _worst_excess(sent, rate_bps) <= allowance + 1e-6
    assert _worst_excess(frames, rate_bps) > allowance  # what the encoder alone would do


def test_a_saturated_pacer_uses_its_rate() -> None:
    rate = 1_000_000
    arrivals = [(0.0, 1200)] * 2000  # far more than 10 s of sending, all at once
    sent = _pace(PacingBudget(rate), arrivals)
    ten_seconds = [size for time, size in sent if time < 10_000]
    assert sum(ten_seconds) * 8 / 10 >= 0.97 * rate
    assert sum(ten_seconds) * 8 / 10 <= 1.01 * rate


def test_rate_changes_take_effect_and_windows_hold_at_the_lower_rate() -> None:
    budget = PacingBudget(2_000_000)
    arrivals = [(0.0, 1000)] * 600
    sent = _pace(budget, arrivals, rate_changes={100: 200_000})
    after = sent[100:]
    assert _worst_excess(after, 200_000) <= 1000 + budget.burst_bytes
    duration_s = (after[-1][0] - after[0][0]) / 1000
    assert sum(size for _, size in after[1:]) * 8 / duration_s == pytest.approx(200_000, rel=0.02)


def test_a_packet_larger_than_the_burst_goes_alone_when_the_budget_is_clear() -> None:
    budget = PacingBudget(300_000, burst_ms=5.0)  # 187.5 bytes of burst
    assert budget.delay_until_send(1200, 0.0) == 0
    budget.on_sent(1200, 0.0)
    # the next waits until the whole 1200 bytes (32 ms at 300 kbit/s) are paid off
    assert budget.delay_until_send(1200, 0.0) == pytest.approx(32.0)
    assert budget.delay_until_send(1200, 20.0) == pytest.approx(12.0)
    assert budget.delay_until_send(1200, 32.0) == 0


def test_bypassing_packets_still_use_up_the_budget() -> None:
    budget = PacingBudget(1_000_000, burst_ms=5.0)  # 625 bytes of burst
    budget.on_sent(200, 0.0)  # an audio packet the shell sent around the pacer
    assert budget.delay_until_send(500, 0.0) > 0
    assert budget.delay_until_send(400, 0.0) == 0


def test_invalid_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        PacingBudget(0)
    with pytest.raises(ValueError, match="burst"):
        PacingBudget(1000, burst_ms=0)
    with pytest.raises(ValueError, match="rate"):
        PacingBudget(1000).set_rate(-5)


def test_a_clock_stepping_back_pays_nothing_off() -> None:
    budget = PacingBudget(800_000)
    budget.on_sent(1200, 100.0)
    waiting = budget.delay_until_send(1200, 100.0)
    assert budget.delay_until_send(1200, 50.0) == waiting


def test_queue_sends_audio_then_retransmissions_then_video() -> None:
    queue: PacketQueue[str] = PacketQueue()
    queue.push(PacketKind.VIDEO, 1000, "v1", 0)
    queue.push(PacketKind.RETRANSMISSION, 1000, "r1", 1)
    queue.push(PacketKind.VIDEO, 1000, "v2", 2)
    queue.push(PacketKind.AUDIO, 100, "a1", 3)
    queue.push(PacketKind.AUDIO, 100, "a2", 4)
    peeked = queue.peek()
    assert peeked is not None and peeked.item == "a1"
    order = []
    while (packet := queue.pop()) is not None:
        order.append(packet.item)
    assert order == ["a1", "a2", "r1", "v1", "v2"]
    assert queue.queued_bytes == 0 and len(queue) == 0


def test_a_full_queue_drops_the_oldest_video_first() -> None:
    queue: PacketQueue[int] = PacketQueue(max_bytes=5000)
    for n in range(5):
        queue.push(PacketKind.VIDEO, 1000, n, n)
    queue.push(PacketKind.AUDIO, 100, 100, 5)
    queue.push(PacketKind.RETRANSMISSION, 1000, 200, 6)
    assert queue.dropped == 2
    assert queue.queued_bytes <= 5000
    items = []
    while (packet := queue.pop()) is not None:
        items.append(packet.item)
    assert items == [100, 200, 2, 3, 4]  # videos 0 and 1 made room


def test_queue_reports_how_long_it_takes_to_drain_and_the_oldest_wait() -> None:
    queue: PacketQueue[None] = PacketQueue()
    assert queue.oldest_wait_ms(10) == 0
    queue.push(PacketKind.VIDEO, 1250, None, 10)
    queue.push(PacketKind.AUDIO, 1250, None, 30)
    assert queue.queue_ms(1_000_000) == pytest.approx(20.0)
    assert queue.oldest_wait_ms(50) == 40


def test_keyframe_requests_at_most_one_per_half_second() -> None:
    throttle = KeyframeRequestThrottle()
    allowed = [t for t in range(0, 10_000, 10) if throttle.allow(float(t), rtt_ms=20.0)]
    assert allowed == list(range(0, 10_000, 500))  # 2 a second
    assert throttle.suppressed == 1000 - 20


def test_keyframe_requests_wait_a_round_trip_when_it_is_longer() -> None:
    throttle = KeyframeRequestThrottle()
    allowed = [t for t in range(0, 10_000, 10) if throttle.allow(float(t), rtt_ms=850.0)]
    assert allowed == list(range(0, 10_000, 850))
    assert throttle.allow(10_200.0, None)  # no RTT known yet: the 500 ms floor
    assert not throttle.allow(10_600.0, None)
    assert throttle.allow(10_700.0, None)


def test_retransmissions_count_against_the_target_while_the_link_queues() -> None:
    target_bps = 160_000  # 20 000 bytes a second; retransmissions may reach 24 000
    queueing = QUEUEING_MS + 1
    assert retransmission_fits(0, 0, 1_200, target_bps, queueing)
    # a little over: losses get repaired
    assert retransmission_fits(22_000, 2_000, 1_200, target_bps, queueing)
    # What the weak link's first seconds looked like: 240 kbit/s leaving, target 160.
    assert not retransmission_fits(30_000, 2_000, 1_200, target_bps, queueing)
    assert not retransmission_fits(30_000, 2_000, 1_200, target_bps, None)  # not known yet


def test_loss_on_a_link_that_does_not_queue_is_repaired_after_a_cut() -> None:
    # burst-loss: the estimate cut from 1.5 to 1.06 Mbit/s at 10 % loss while the last
    # second had left at 1.83 Mbit/s; the round trip stayed 11 ms over its least.
    sent, target_bps = 1_830_000 / 8, 1_063_000
    assert not retransmission_fits(sent, 10_000, 1_200, target_bps, QUEUEING_MS + 1)
    assert retransmission_fits(sent, 10_000, 1_200, target_bps, 11.0)


def test_retransmissions_alone_never_take_over_their_share_of_the_target() -> None:
    target_bps = 1_000_000
    cap = MAX_RETRANSMISSION_SHARE * target_bps / 8
    assert retransmission_fits(0, cap - 1_200, 1_200, target_bps, 0.0)
    assert not retransmission_fits(0, cap - 1_199, 1_200, target_bps, 0.0)


def test_the_protection_share_follows_the_retransmission_rate() -> None:
    from peer.congestion.protection import (
        BASE_RESERVE,
        FLOOR_SHARE,
        WINDOW_MS,
        RetransmissionRate,
        protection_bps,
    )

    # a clean link: only the keyframe reserve
    assert protection_bps(1_000_000, 0) == round(BASE_RESERVE * 1_000_000)
    rate = RetransmissionRate()
    for i in range(100):  # 100 x 1000 bytes over 1 s: 400 kbit/s averaged over 2 s
        rate.add(i * 10.0, 1000)
    assert rate.bps(1_000) == pytest.approx(400_000)
    assert rate.bps(1_000 + WINDOW_MS) == 0  # all of it aged out
    # 40 kbit/s of retransmissions on a 1 Mbit/s target: kept from the encoder, with margin
    assert 90_000 <= protection_bps(1_000_000, 40_000) <= 110_000
    # heavy loss: the encoder still keeps FLOOR_SHARE
    assert protection_bps(300_000, 400_000) == round((1 - FLOOR_SHARE) * 300_000)
