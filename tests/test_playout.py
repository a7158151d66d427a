"""The playout buffer between the network and the speaker (media/playout.py), with arrays.

What the device is handed must be exactly what the echo canceller is told was
played: every pull is whole, in order, silence where audio is missing, and nothing
is ever repeated or skipped except the oldest audio when too much is waiting.
"""

from __future__ import annotations

import numpy as np
import pytest

from media.playout import DevicePace, PlayoutBuffer


def _ramp(start: int, count: int) -> np.ndarray:
    return np.arange(start, start + count, dtype=np.int16)


def test_audio_leaves_in_order_in_the_size_the_device_asks_for() -> None:
    buffer = PlayoutBuffer(prebuffer=0, limit=10_000)
    buffer.push(_ramp(0, 960))
    buffer.push(_ramp(960, 960))
    pulled = np.concatenate([buffer.pull(480) for _ in range(4)])
    assert np.array_equal(pulled, _ramp(0, 1920))
    assert buffer.waiting == 0
    assert buffer.counters.filled == 0 and buffer.counters.gaps == 0


def test_silence_before_the_first_audio_is_not_a_gap() -> None:
    buffer = PlayoutBuffer(prebuffer=960, limit=10_000)
    assert not buffer.pull(480).any()
    buffer.push(_ramp(1, 480))  # less than the prebuffer: still silence
    assert not buffer.pull(480).any()
    buffer.push(_ramp(481, 480))
    assert np.array_equal(buffer.pull(480), _ramp(1, 480))
    assert buffer.counters.played == 3 * 480
    assert buffer.counters.filled == 480  # only the wait after audio had begun to arrive


def test_running_dry_pads_with_silence_and_waits_for_the_prebuffer_again() -> None:
    buffer = PlayoutBuffer(prebuffer=480, limit=10_000)
    buffer.push(_ramp(1, 700))
    assert np.array_equal(buffer.pull(480), _ramp(1, 480))
    block = buffer.pull(480)  # 220 samples left, then silence
    assert np.array_equal(block[:220], _ramp(481, 220)) and not block[220:].any()
    assert buffer.counters.gaps == 1 and buffer.counters.filled == 260
    buffer.push(_ramp(701, 100))  # under the prebuffer: keep waiting, play nothing yet
    assert not buffer.pull(480).any()
    buffer.push(_ramp(801, 400))
    assert np.array_equal(buffer.pull(480), _ramp(701, 480))  # nothing lost, nothing repeated
    assert buffer.counters.gaps == 1


def test_too_much_waiting_drops_the_oldest_down_to_the_prebuffer() -> None:
    buffer = PlayoutBuffer(prebuffer=480, limit=1920)
    buffer.push(_ramp(0, 1920))
    assert buffer.counters.dropped == 0
    buffer.push(_ramp(1920, 960))  # a burst after a stall
    assert buffer.waiting == 480
    assert buffer.counters.dropped == 2880 - 480
    assert np.array_equal(buffer.pull(480), _ramp(2400, 480))  # the newest audio


def test_a_buffer_that_could_never_play_is_refused() -> None:
    with pytest.raises(ValueError, match="prebuffer < limit"):
        PlayoutBuffer(prebuffer=960, limit=960)


def test_pace_leaves_a_blocking_device_alone_and_holds_back_one_that_never_blocks() -> None:
    pace = DevicePace(rate=48000, headroom=0.05)
    now = 100.0
    # A device that blocks 10 ms a write: never a wait.
    for _ in range(50):
        now += 0.01
        assert pace.wait_after(480, write_took=0.01, now=now) == 0.0
    # A device that takes everything at once: 50 ms ahead of real time, then waits.
    waits = [pace.wait_after(480, write_took=0.0, now=now) for _ in range(10)]
    assert waits[:5] == [0.0] * 5
    assert waits[-1] == pytest.approx(0.05)
    # Sleeping as told keeps it at real time plus the headroom.
    now += waits[-1]
    assert pace.wait_after(480, write_took=0.0, now=now) == pytest.approx(0.01)
