"""peer/stack/nack_requests.py: which lost packets are asked for, when, and how often.

Synthetic arrival traces (sequence numbers and times) go through the pure
:class:`NackScheduler`; the last tests drive the aiortc-facing generator with real
``RtpPacket`` objects and show the seam's refusal.
"""

from __future__ import annotations

import pytest
from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from peer.stack import nack_requests
from peer.stack.nack_requests import (
    MAX_JUMP,
    MAX_MISSING,
    MAX_TRIES,
    MIN_RETRY_MS,
    NackScheduler,
    ScheduledNackGenerator,
)
from peer.stack.seam import StackChanged


def arrive(scheduler: NackScheduler, sequences: list[int], now_ms: float) -> list[int]:
    """Feed packets at ``now_ms``; what is due right after the last one."""
    for sequence in sequences:
        scheduler.on_packet(sequence, now_ms)
    return scheduler.due(now_ms)


def test_a_gap_is_asked_for_at_once_and_not_again_within_a_round_trip() -> None:
    scheduler = NackScheduler(rtt_ms=40)
    assert arrive(scheduler, [10, 11], 0) == []
    assert arrive(scheduler, [14], 1) == [12, 13]
    assert arrive(scheduler, [15], 20) == []  # asked 19 ms ago, the round trip is 40 ms
    assert scheduler.counters.nack_first == 2
    assert scheduler.counters.nack_repeated == 0


def test_a_packet_still_missing_after_a_round_trip_is_asked_for_again() -> None:
    # aiortc's generator asks again only when a new gap appears; here no new loss comes.
    scheduler = NackScheduler(rtt_ms=40)
    arrive(scheduler, [1, 3], 0)
    assert arrive(scheduler, [4], 49) == []
    assert arrive(scheduler, [5], 51) == [2]  # 1.25 x 40 ms later
    assert arrive(scheduler, [6], 102) == [2]
    assert scheduler.counters.nack_repeated == 2


def test_a_retransmission_that_arrives_ends_the_requests_and_counts_as_recovered() -> None:
    scheduler = NackScheduler(rtt_ms=10)
    arrive(scheduler, [1, 4], 0)
    assert arrive(scheduler, [2], 5) == []
    assert arrive(scheduler, [5], 30) == [3]
    assert arrive(scheduler, [3], 35) == []
    assert scheduler.missing == []
    assert arrive(scheduler, [6], 100) == []
    assert scheduler.counters.nack_recovered == 2
    assert scheduler.counters.nack_given_up == 0


def test_the_retry_interval_has_a_floor_on_a_short_round_trip() -> None:
    scheduler = NackScheduler(rtt_ms=2)
    arrive(scheduler, [1, 3], 0)
    assert arrive(scheduler, [4], MIN_RETRY_MS - 1) == []
    assert arrive(scheduler, [5], MIN_RETRY_MS) == [2]


def test_a_packet_is_asked_for_at_most_max_tries_times() -> None:
    scheduler = NackScheduler(rtt_ms=20, give_up_ms=10_000)
    arrive(scheduler, [1, 3], 0)
    asked = sum(arrive(scheduler, [], t * 100.0) == [2] for t in range(1, 30))
    assert asked == MAX_TRIES - 1  # plus the first request at 0
    assert scheduler.missing == []
    assert scheduler.counters.nack_given_up == 1


def test_a_packet_older_than_the_deadline_is_given_up() -> None:
    scheduler = NackScheduler(rtt_ms=20)
    scheduler.set_rtt(20, give_up_ms=250)
    arrive(scheduler, [1, 3], 0)
    assert arrive(scheduler, [4], 240) == [2]
    assert arrive(scheduler, [5], 251) == []
    assert scheduler.counters.nack_given_up == 1


def test_the_round_trip_sets_the_retry_interval() -> None:
    scheduler = NackScheduler()  # 100 ms until a round trip is known
    arrive(scheduler, [1, 3], 0)
    assert arrive(scheduler, [4], 100) == []
    scheduler.set_rtt(200)
    assert arrive(scheduler, [5], 200) == []
    assert arrive(scheduler, [6], 250) == [2]


def test_sequence_numbers_wrap_around() -> None:
    scheduler = NackScheduler(rtt_ms=20)
    arrive(scheduler, [65533], 0)
    assert arrive(scheduler, [1], 1) == [65534, 65535, 0]
    assert arrive(scheduler, [65535], 2) == []  # a retransmission from before the wrap
    assert scheduler.missing == [65534, 0]
    assert arrive(scheduler, [2], 30) == [65534, 0]


def test_a_jump_too_big_for_a_loss_is_a_new_stream_not_a_thousand_requests() -> None:
    scheduler = NackScheduler(rtt_ms=20)
    arrive(scheduler, [100, 102], 0)
    assert arrive(scheduler, [30_000], 10) == []
    assert scheduler.missing == []
    assert scheduler.counters.nack_resets == 1
    assert arrive(scheduler, [30_002], 11) == [30_001]


def test_a_sender_opening_the_widest_gaps_keeps_only_the_newest_missing() -> None:
    # Every packet a hostile sender sends opens a gap just short of a new stream.
    scheduler = NackScheduler(rtt_ms=20)
    sequence = 0
    scheduler.on_packet(sequence, 0)
    for packet in range(1, 40):
        sequence = (sequence + MAX_JUMP) % 65_536
        scheduler.on_packet(sequence, packet)
    missing = scheduler.missing
    assert len(missing) == MAX_MISSING
    assert missing[-1] == (sequence - 1) % 65_536  # the newest gap, oldest dropped
    assert scheduler.counters.nack_given_up == 39 * (MAX_JUMP - 1) - MAX_MISSING
    assert scheduler.counters.nack_resets == 0
    assert len(scheduler.due(40)) == MAX_MISSING


def test_a_late_duplicate_or_reordered_packet_asks_for_nothing() -> None:
    scheduler = NackScheduler(rtt_ms=20)
    arrive(scheduler, [5, 6, 7], 0)
    assert arrive(scheduler, [6, 3], 1) == []
    assert scheduler.counters.nack_recovered == 0


def test_ten_percent_loss_with_lost_retransmissions_is_all_recovered() -> None:
    """A synthetic trace: 150 packets a second, every 10th lost, and the first
    retransmission of every other lost packet lost too; 5 ms round trip."""
    scheduler = NackScheduler(rtt_ms=5)
    lost_once: set[int] = set()
    arrivals: dict[float, list[int]] = {}
    for index in range(600):
        now = index * 1000 / 150
        sequence = index % 65536
        if index % 10 == 3:
            continue
        scheduler.on_packet(sequence, now)
        for asked in scheduler.due(now):
            if asked % 20 == 3 and asked not in lost_once:
                lost_once.add(asked)  # this retransmission is lost too
                continue
            arrivals.setdefault(now + 5, []).append(asked)
        for at in [t for t in arrivals if t <= now]:
            for resent in arrivals.pop(at):
                scheduler.on_packet(resent, at)
    assert scheduler.counters.nack_first == 60
    assert scheduler.counters.nack_recovered >= 59  # the last may still be on its way
    assert scheduler.counters.nack_given_up == 0
    assert scheduler.counters.nack_repeated == len(lost_once)


def packet(sequence: int) -> RtpPacket:
    return RtpPacket(payload_type=96, sequence_number=sequence, timestamp=0, ssrc=1234)


def test_the_generator_hands_aiortc_only_what_is_due() -> None:
    generator = ScheduledNackGenerator(NackScheduler(rtt_ms=1000))
    assert generator.add(packet(7)) is False
    assert generator.add(packet(10)) is True
    assert sorted(generator.missing) == [8, 9]
    assert generator.add(packet(11)) is False  # asked a moment ago: nothing due
    assert generator.missing == set()
    assert generator.add(packet(9)) is False
    assert generator.scheduler.missing == [8]


def test_the_seam_refuses_an_aiortc_that_no_longer_feeds_the_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def handle(self: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
        """A future aiortc that finds lost packets some other way."""

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle)
    with pytest.raises(StackChanged) as refused:
        nack_requests.check_aiortc()
    message = str(refused.value)
    assert "no longer feeds the NACK generator each packet" in message
    assert "run with --nack stock" in message


def test_the_retry_waits_for_the_queue_the_video_arrives_through() -> None:
    # weak: RTCP said 55 ms while the video queued 200 ms; a retry after 69 ms was early.
    scheduler = NackScheduler(rtt_ms=55)
    for frame in range(20):  # an empty link: each frame arrives 5 ms after capture
        scheduler.on_packet(frame, frame * 33.0 + 5, timestamp=frame * 2970)
    assert scheduler.queue_ms(20 * 33.0) == pytest.approx(0.0)
    for frame in range(20, 30):  # the queue grows to 200 ms
        scheduler.on_packet(frame, frame * 33.0 + 5 + (frame - 19) * 20, timestamp=frame * 2970)
    now = 29 * 33.0 + 5 + 200
    assert scheduler.queue_ms(now) == pytest.approx(200.0)
    assert scheduler.retry_ms(now) == pytest.approx(1.25 * (55 + 200))
    # a retransmission arriving late is not taken for the queue
    scheduler.on_packet(25, now + 1, timestamp=25 * 2970)
    assert scheduler.queue_ms(now + 1) == pytest.approx(200.0)
