"""peer/stack/arrival_queue.py: the queue a stream's packets wait in, from synthetic
arrival traces (RTP timestamps at 90 kHz, arrival times in ms)."""

from __future__ import annotations

import pytest

from peer.stack.arrival_queue import BASE_WINDOW_MS, RECENT_MS, ArrivalQueue

FRAME_TICKS = 3000  # 30 fps at 90 kHz
FRAME_MS = 1000 / 30


def test_a_steady_stream_queues_nothing_whatever_the_clock_offset() -> None:
    queue = ArrivalQueue()
    for frame in range(60):
        queue.on_packet(123_456 + frame * FRAME_TICKS, 50_000 + frame * FRAME_MS + 7)
    assert queue.queue_ms(50_000 + 60 * FRAME_MS) == pytest.approx(0.0, abs=1e-6)


def test_a_growing_queue_reads_as_the_extra_delay_and_drains_away() -> None:
    queue = ArrivalQueue()
    for frame in range(30):
        queue.on_packet(frame * FRAME_TICKS, frame * FRAME_MS)
    for frame in range(30, 40):  # each frame 15 ms later than the one before
        queue.on_packet(frame * FRAME_TICKS, frame * FRAME_MS + (frame - 29) * 15)
    last = 39 * FRAME_MS + 150
    assert queue.queue_ms(last) == pytest.approx(150.0)
    for frame in range(40, 80):  # the queue gone again
        queue.on_packet(frame * FRAME_TICKS, frame * FRAME_MS)
    assert queue.queue_ms(80 * FRAME_MS + RECENT_MS) == pytest.approx(0.0)


def test_timestamps_wrap_around() -> None:
    queue = ArrivalQueue()
    start = (1 << 32) - 10 * FRAME_TICKS
    for frame in range(20):
        queue.on_packet((start + frame * FRAME_TICKS) % (1 << 32), frame * FRAME_MS)
    assert queue.queue_ms(20 * FRAME_MS) == pytest.approx(0.0, abs=1e-6)


def test_the_empty_queue_delay_is_relearned_after_the_base_window() -> None:
    queue = ArrivalQueue()
    queue.on_packet(0, 0.0)  # one early outlier
    for frame in range(1, 400):
        queue.on_packet(frame * FRAME_TICKS, frame * FRAME_MS + 40)
    assert queue.queue_ms(399 * FRAME_MS + 40) == pytest.approx(0.0, abs=1e-6)
    assert 399 * FRAME_MS > BASE_WINDOW_MS
