"""Transport-wide feedback: hand-made Chromium packets, round trips, hostile input, the recorder."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer.congestion.twcc import (
    FeedbackRecorder,
    TransportFeedback,
    parse_feedback,
    serialize_feedback,
)

# Chromium's receiver (libwebrtc TransportFeedback::Create) writes the packets below;
# each was put together by hand from the draft's format, byte by byte.

RUN_LENGTH_PACKET = bytes(
    [
        0xAF, 0xCD, 0x00, 0x06,  # V=2, P=1, FMT=15 | PT=205 | length 6 words (28 bytes)
        0x11, 0x22, 0x33, 0x44,  # sender SSRC
        0x55, 0x66, 0x77, 0x88,  # media source SSRC
        0x00, 0x05,              # base sequence 5
        0x00, 0x03,              # 3 packet statuses
        0x00, 0x00, 0x01,        # reference time 1 x 64 ms
        0x07,                    # feedback packet count 7
        0x20, 0x03,              # run-length chunk: 0 | status 01 (small delta) | run 3
        0x04,                    # seq 5: +4 x 250 µs = 65.0 ms
        0x08,                    # seq 6: +8 x 250 µs = 67.0 ms
        0x00,                    # seq 7: +0 (same instant) = 67.0 ms
        0x00, 0x00, 0x03,        # padding: two zeros and the count 3
    ]
)  # fmt: skip

TWO_BIT_VECTOR_PACKET = bytes(
    [
        0xAF, 0xCD, 0x00, 0x06,  # V=2, P=1, FMT=15 | PT=205 | 28 bytes
        0x00, 0x00, 0x00, 0x01,  # sender SSRC 1
        0xDE, 0xAD, 0xBE, 0xEF,  # media source SSRC
        0xFF, 0xFE,              # base sequence 65534: the report wraps to 0 and 1
        0x00, 0x04,              # 4 packet statuses
        0x00, 0x01, 0x00,        # reference time 256 x 64 ms = 16.384 s
        0xFF,                    # feedback packet count 255
        0xD2, 0x40,              # 1 1 | 01 00 10 01 000000: small, lost, large, small
        0x10,                    # 65534: +16 ticks = +4 ms      -> 16.388 s
        0xFF, 0xFC,              # 0: -4 ticks (2-byte, negative) -> 16.387 s
        0x02,                    # 1: +2 ticks                    -> 16.3875 s
        0x00, 0x02,              # padding: one zero and the count 2
    ]
)  # fmt: skip

ONE_BIT_VECTOR_PACKET = bytes(
    [
        0x8F, 0xCD, 0x00, 0x07,  # V=2, P=0, FMT=15 | PT=205 | 32 bytes
        0x00, 0x00, 0x00, 0x02,  # sender SSRC 2
        0x00, 0x00, 0x00, 0x03,  # media source SSRC 3
        0x01, 0x00,              # base sequence 256
        0x00, 0x0E,              # 14 packet statuses
        0x00, 0x00, 0x00,        # reference time 0
        0x00,                    # feedback packet count 0
        0xB3, 0x9F,              # 1 0 | 11001110011111: received 256,257,260,261,262,265-269
        0x01, 0x01, 0x01, 0x01,  # one 1-byte delta of 250 µs per received packet
        0x01, 0x01, 0x01, 0x01,
        0x01, 0x01,
    ]
)  # fmt: skip

LARGE_DELTA_RUN_PACKET = bytes(
    [
        0x8F, 0xCD, 0x00, 0x05,  # V=2, P=0, FMT=15 | PT=205 | 24 bytes, no padding needed
        0x00, 0x00, 0x00, 0x02,  # sender SSRC
        0x00, 0x00, 0x00, 0x03,  # media source SSRC
        0x00, 0x0A,              # base sequence 10
        0x00, 0x01,              # 1 status
        0x00, 0x00, 0x02,        # reference time 128 ms
        0x01,                    # feedback packet count 1
        0x40, 0x01,              # run-length chunk: status 10 (large delta), run 1
        0x7D, 0x00,              # +32000 ticks = +8 s (needs 2 bytes) -> 8.128 s
    ]
)  # fmt: skip


def test_run_length_packet_parses_and_rebuilds_byte_for_byte() -> None:
    fb = parse_feedback(RUN_LENGTH_PACKET)
    assert fb == TransportFeedback(
        sender_ssrc=0x11223344,
        media_ssrc=0x55667788,
        base_sequence=5,
        feedback_count=7,
        reference_time_us=64_000,
        packets=((5, 65_000), (6, 67_000), (7, 67_000)),
    )
    assert serialize_feedback(fb) == RUN_LENGTH_PACKET


def test_two_bit_vector_with_loss_negative_delta_and_wrap() -> None:
    fb = parse_feedback(TWO_BIT_VECTOR_PACKET)
    assert fb.base_sequence == 65534
    assert fb.feedback_count == 255
    assert fb.packets == ((65534, 16_388_000), (65535, None), (0, 16_387_000), (1, 16_387_500))
    assert serialize_feedback(fb) == TWO_BIT_VECTOR_PACKET


def test_one_bit_vector_without_padding() -> None:
    fb = parse_feedback(ONE_BIT_VECTOR_PACKET)
    received = [seq for seq, arrival in fb.packets if arrival is not None]
    assert received == [256, 257, 260, 261, 262, 265, 266, 267, 268, 269]
    assert [arrival for _, arrival in fb.packets if arrival is not None] == [
        250 * n for n in range(1, 11)
    ]
    assert serialize_feedback(fb) == ONE_BIT_VECTOR_PACKET


def test_large_positive_delta_uses_two_bytes() -> None:
    fb = parse_feedback(LARGE_DELTA_RUN_PACKET)
    assert fb.packets == ((10, 8_128_000),)
    assert serialize_feedback(fb) == LARGE_DELTA_RUN_PACKET


def _fb(base: int, arrivals: list[int | None], reference_us: int = 0) -> TransportFeedback:
    return TransportFeedback(
        sender_ssrc=1,
        media_ssrc=2,
        base_sequence=base,
        feedback_count=3,
        reference_time_us=reference_us,
        packets=tuple(((base + i) % 65536, a) for i, a in enumerate(arrivals)),
    )


def test_round_trip_across_the_sequence_wrap() -> None:
    fb = _fb(65530, [1000 * i for i in range(12)])
    assert [seq for seq, _ in fb.packets][5:8] == [65535, 0, 1]
    assert parse_feedback(serialize_feedback(fb)) == fb


def test_round_trip_with_long_runs_of_lost_packets() -> None:
    arrivals: list[int | None] = [250]
    arrivals += [None] * 9000  # more than one run-length chunk holds (8191)
    arrivals += [500, 750]
    arrivals += [None] * 3 + [1000]
    fb = _fb(100, arrivals)
    data = serialize_feedback(fb)
    assert len(data) < 60  # runs are a few chunks, not thousands of statuses
    assert parse_feedback(data) == fb


def test_round_trip_with_large_and_negative_deltas() -> None:
    # 2-byte deltas: far beyond 63.75 ms, backwards in time (reordering), the extremes.
    arrivals: list[int | None] = [64_000, 64_000 + 8_191_750, 64_000, 64_000 - 8_000, 200_000]
    fb = _fb(7, arrivals, reference_us=64_000)
    data = serialize_feedback(fb)
    # one 1-byte delta and four 2-byte ones after a single two-bit vector chunk:
    # 20 + 2 + 9 = 31, padded to 32
    assert len(data) == 32
    assert data[20:22] == bytes([0b1101_1010, 0b1010_0000])  # small, then 4 x large
    assert parse_feedback(data) == fb


def test_serialize_refuses_what_the_format_cannot_carry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        serialize_feedback(_fb(0, []))
    with pytest.raises(ValueError, match="overflows"):
        serialize_feedback(_fb(0, [0, 9_000_000]))
    broken = TransportFeedback(1, 2, 10, 0, 0, ((10, 0), (12, 250)))
    with pytest.raises(ValueError, match="consecutive"):
        serialize_feedback(broken)


statuses = st.lists(
    st.one_of(st.none(), st.integers(min_value=-400, max_value=30_000)), min_size=1, max_size=300
)


@settings(max_examples=200, deadline=None)
@given(
    base=st.integers(min_value=0, max_value=65535),
    steps=statuses,
    reference_ticks=st.integers(min_value=0, max_value=(1 << 24) - 1),
)
def test_round_trip_property(base: int, steps: list[int | None], reference_ticks: int) -> None:
    reference_us = reference_ticks * 64_000
    time_us = reference_us
    arrivals: list[int | None] = []
    for step in steps:
        if step is None:
            arrivals.append(None)
        else:
            time_us += step * 250
            arrivals.append(time_us)
    fb = _fb(base, arrivals, reference_us)
    data = serialize_feedback(fb)
    assert len(data) % 4 == 0
    assert parse_feedback(data) == fb


# Hostile input: every malformed packet is a ValueError with a precise message.


def _with_length(body: bytes, *, first: int = 0x8F) -> bytes:
    """Header fixed up so the length field matches ``body`` (which starts after word 0)."""
    return bytes([first, 0xCD]) + struct.pack("!H", len(body) // 4) + body


def _feedback_body(status_count: int, chunks: list[int], deltas: bytes) -> bytes:
    body = struct.pack("!IIHHI", 1, 2, 0, status_count, 0) + b"".join(
        struct.pack("!H", c) for c in chunks
    )
    body += deltas
    return body + bytes(-len(body) % 4)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (RUN_LENGTH_PACKET[:19], "too short"),
        (bytes([0x4F]) + RUN_LENGTH_PACKET[1:], "version"),
        (RUN_LENGTH_PACKET[:1] + bytes([0xCE]) + RUN_LENGTH_PACKET[2:], "not transport-wide"),
        (bytes([0xA1]) + RUN_LENGTH_PACKET[1:], "not transport-wide"),
        (RUN_LENGTH_PACKET[:-4], "length field"),
        (RUN_LENGTH_PACKET + bytes(4), "length field"),
        (RUN_LENGTH_PACKET[:-1] + b"\x00", "padding"),
        (RUN_LENGTH_PACKET[:-1] + b"\xff", "padding"),
        # the status count says 3 but the padding (P set) swallows the deltas
        (RUN_LENGTH_PACKET[:-1] + b"\x06", "delta of packet"),
        (_with_length(_feedback_body(0, [0x2001], b"\x01")), "no packets"),
        # lying counts: 100 statuses announced, two chunks holding 6
        (_with_length(_feedback_body(100, [0x2003, 0x0003], b"")), "truncated: 6 of 100"),
        # 65535 statuses announced: eight full runs and nothing more
        (_with_length(_feedback_body(65535, [0x1FFF] * 8, b"")), "truncated: 65528 of 65535"),
        # 5 received announced, only 2 deltas
        (_with_length(_feedback_body(5, [0x2005], b"\x01\x01")), "delta of packet 2 missing"),
        (_with_length(_feedback_body(2, [0x4002], b"\x00\x01")), "delta of packet 1 missing"),
        (_with_length(_feedback_body(3, [0x6003], b"")), "reserved"),
        (_with_length(_feedback_body(3, [0xF000], b"")), "reserved"),
        (_with_length(_feedback_body(1, [0x2001], b"\x01" + bytes(7))), "trailing"),
    ],
)
def test_hostile_packets_raise_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_feedback(data)


def test_unused_statuses_of_the_last_chunk_are_ignored() -> None:
    # A vector chunk holds 7 statuses; the count says 2, so the reserved ones after are padding.
    data = _with_length(_feedback_body(2, [0xD7FF], b"\x01\x01"))
    assert parse_feedback(data).packets == ((0, 250), (1, 500))


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_parse_or_raise_value_error(data: bytes) -> None:
    for candidate in (data, _with_length(data[: len(data) - len(data) % 4])):
        with contextlib.suppress(ValueError):
            parse_feedback(candidate)


@settings(max_examples=500, deadline=None)
@given(position=st.integers(min_value=0, max_value=27), value=st.integers(0, 255))
def test_corrupted_real_packets_parse_or_raise_value_error(position: int, value: int) -> None:
    data = bytearray(TWO_BIT_VECTOR_PACKET)
    data[position] = value
    with contextlib.suppress(ValueError):
        parse_feedback(bytes(data))


# The recorder: what a receiver sends back.


def _reports(recorder: FeedbackRecorder, now_us: int = 0) -> list[TransportFeedback]:
    return [parse_feedback(packet) for packet in recorder.build(now_us)]


def _all_packets(reports: list[TransportFeedback]) -> list[tuple[int, int | None]]:
    return [entry for fb in reports for entry in fb.packets]


def test_recorder_reports_arrivals_and_losses_relative_to_its_first_packet() -> None:
    recorder = FeedbackRecorder(sender_ssrc=9)
    base_us = 5_000_000_123  # any clock: monotonic microseconds of a long-running host
    for seq, offset_ms in [(10, 0), (11, 5), (13, 12), (14, 12)]:
        recorder.on_packet(0xABC, seq, base_us + offset_ms * 1000)
    (fb,) = _reports(recorder)
    assert fb.sender_ssrc == 9
    assert fb.media_ssrc == 0xABC
    assert fb.base_sequence == 10
    arrivals = dict(fb.packets)
    assert arrivals[12] is None
    first = arrivals[10]
    assert first is not None
    assert [(arrivals[s] or 0) - first for s in (11, 13, 14)] == [5000, 12000, 12000]
    assert recorder.build(0) == []  # nothing new


def test_recorder_continues_across_builds_and_the_wrap() -> None:
    recorder = FeedbackRecorder(sender_ssrc=1)
    for i, seq in enumerate([65533, 65534, 65535]):
        recorder.on_packet(1, seq, i * 1000)
    first = _reports(recorder)
    for i, seq in enumerate([0, 2]):
        recorder.on_packet(1, seq, 10_000 + i * 1000)
    second = _reports(recorder)
    assert [s for s, _ in _all_packets(first)] == [65533, 65534, 65535]
    assert _all_packets(second) == [(0, 10_000), (1, None), (2, 11_000)]
    assert second[0].feedback_count == (first[-1].feedback_count + 1) % 256


def test_recorder_reorders_and_drops_duplicates_and_late_packets() -> None:
    recorder = FeedbackRecorder(sender_ssrc=1)
    recorder.on_packet(1, 100, 0)
    recorder.on_packet(1, 102, 1000)
    recorder.on_packet(1, 101, 3000)  # reordered: its delta from 100 is +3 ms, 102's -2 ms
    recorder.on_packet(1, 102, 4000)  # duplicate
    assert _all_packets(_reports(recorder)) == [(100, 0), (101, 3000), (102, 1000)]
    recorder.on_packet(1, 99, 5000)  # reported (as missing or received) already
    assert recorder.build(0) == []
    assert recorder.packets_dropped == 2


def test_recorder_splits_when_a_delta_cannot_fit() -> None:
    recorder = FeedbackRecorder(sender_ssrc=1)
    recorder.on_packet(1, 1, 0)
    recorder.on_packet(1, 2, 20_000_000)  # 20 s later: beyond a 16-bit delta
    reports = _reports(recorder)
    assert len(reports) == 2
    assert _all_packets(reports) == [(1, 0), (2, 20_000_000)]


def test_recorder_splits_large_reports_under_1200_bytes() -> None:
    recorder = FeedbackRecorder(sender_ssrc=1)
    time_us = 0
    for seq in range(3000):
        time_us += 70_000 if seq % 2 else 1000  # alternate 2-byte and 1-byte deltas
        if seq % 5 != 3:
            recorder.on_packet(1, seq, time_us)
    packets = recorder.build(0)
    assert len(packets) > 2
    assert all(len(p) < 1200 for p in packets)
    reported = _all_packets([parse_feedback(p) for p in packets])
    assert [s for s, _ in reported] == list(range(3000))
    assert sum(1 for _, a in reported if a is None) == 600


def test_recorder_memory_is_bounded_under_hostile_jumps() -> None:
    recorder = FeedbackRecorder(sender_ssrc=1, max_pending=1000)
    time_us = 0
    for round_ in range(200):
        for seq in (round_ * 32_000 % 65536, (round_ * 32_000 + 20_000) % 65536):
            time_us += 100
            recorder.on_packet(1, seq, time_us)
    assert len(recorder._arrivals) <= 1000
    reports = _reports(recorder)
    assert sum(len(fb.packets) for fb in reports) <= 1000
    assert all(len(p) < 1200 for p in recorder.build(0))


def test_recorder_refuses_a_sequence_that_is_not_16_bit() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        FeedbackRecorder(sender_ssrc=1).on_packet(1, 65536, 0)


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=65535),
    events=st.lists(
        st.tuples(
            st.integers(min_value=-40, max_value=300),  # sequence step from the highest so far
            st.integers(min_value=0, max_value=400_000),  # µs since the previous arrival
            st.booleans(),  # build feedback after this packet
        ),
        min_size=1,
        max_size=200,
    ),
)
def test_recorder_reports_each_packet_once_with_its_first_arrival(
    start: int, events: list[tuple[int, int, bool]]
) -> None:
    recorder = FeedbackRecorder(sender_ssrc=1, max_pending=1 << 20)
    highest = start
    time_us = 1_000_000 + events[0][1]
    origin = time_us - time_us % 64_000  # arrival times leave relative to the first packet
    first_arrival: dict[int, int] = {}  # unwrapped sequence -> arrival
    reported: dict[int, int | None] = {}
    next_unreported = start

    def collect() -> None:
        nonlocal next_unreported
        for fb in _reports(recorder):
            for seq, arrival in fb.packets:
                unwrapped = next_unreported + (seq - next_unreported) % 65536
                assert unwrapped == next_unreported, "reports must continue where they stopped"
                reported[unwrapped] = arrival
                next_unreported = unwrapped + 1

    for index, (step, gap_us, build) in enumerate(events):
        sequence = start if index == 0 else highest + step
        if index:
            time_us += gap_us
        recorder.on_packet(1, sequence % 65536, time_us)
        if sequence >= next_unreported and sequence not in first_arrival:
            first_arrival[sequence] = time_us
        highest = max(highest, sequence)
        if build:
            collect()
    collect()
    for sequence, arrival in first_arrival.items():
        value = reported[sequence]
        assert value is not None
        assert abs(value - (arrival - origin)) <= 125  # rounded to the 250 µs tick
    assert {s for s, a in reported.items() if a is not None} == set(first_arrival)
    assert next_unreported == highest + 1
