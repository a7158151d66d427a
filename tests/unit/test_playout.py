"""The playout buffer between the network and the speaker (media/sinks/playout.py), with arrays.

What the device is handed must be exactly what the echo canceller is told was
played: every pull is whole, in order, silence where audio is missing, and nothing
is ever repeated or skipped except the oldest audio when too much is waiting.
"""

from __future__ import annotations

import numpy as np
import pytest

from media.audio_processing import BLOCK_SAMPLES, PROCESSING_RATE, AudioProcessor
from media.measure.echo_path import EchoPath, level_db, speech_like
from media.sinks.playout import DevicePace, PlayoutBuffer


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


# ---- the echo canceller behind a speaker that receives audio with gaps --------------

_FRAME = 2 * BLOCK_SAMPLES  # 20 ms, one Opus packet


def _cancelled_echo_db(*, canceller_hears_the_device: bool) -> float:
    """Echo return loss enhancement (dB, from 3 s on) of a call whose packets go missing.

    10 ms ticks: the network delivers 20 ms frames (3% never arrive), the device takes
    one block a tick, the room returns it 60 ms later to the microphone. Either the
    canceller is given the blocks the device plays (the speaker now), or the frames
    as they arrive, while the device's own silence fills the gaps (the speaker before).
    """
    seconds = 8.0
    voice = (speech_like(seconds, seed=7, pitch_hz=130.0, level_db=-18.0) * 32767).astype(np.int16)
    frames = voice[: voice.size - voice.size % _FRAME].reshape(-1, _FRAME)
    lost = set(np.random.default_rng(11).choice(len(frames), len(frames) * 3 // 100, replace=False))
    if canceller_hears_the_device:
        buffer = PlayoutBuffer(prebuffer=4 * BLOCK_SAMPLES, limit=20 * BLOCK_SAMPLES)
    else:
        buffer = PlayoutBuffer(prebuffer=0, limit=10**9)  # a device buffer that never drops
    played, told = [], []
    for tick in range(len(frames) * 2):
        arrived = [frames[tick // 2]] if tick % 2 == 0 and tick // 2 not in lost else []
        for frame in arrived:
            buffer.push(frame)
        block = buffer.pull(BLOCK_SAMPLES)
        played.append(block)
        told.append([block] if canceller_hears_the_device else arrived)
    echo = EchoPath(delay_ms=60.0, gain_db=-6.0).apply(np.concatenate(played) / 32767)
    microphone = np.round(echo * 32767).astype(np.int16)
    processor = AudioProcessor()
    processor.set_delay_ms(60)
    out = []
    for tick, blocks in enumerate(told):
        for block in blocks:
            processor.far_end(block)
        out.append(
            processor.near_end(microphone[tick * BLOCK_SAMPLES : (tick + 1) * BLOCK_SAMPLES])
        )
    settled = 3 * PROCESSING_RATE
    return level_db(echo[settled:]) - level_db(np.concatenate(out)[settled:] / 32767)


def test_the_canceller_told_what_the_device_plays_keeps_up_with_missing_packets() -> None:
    heard_by_device = _cancelled_echo_db(canceller_hears_the_device=True)
    as_arrived = _cancelled_echo_db(canceller_hears_the_device=False)
    print(
        f"echo removed: {heard_by_device:.1f} dB told what is played, "
        f"{as_arrived:.1f} dB told what arrives"
    )
    assert heard_by_device >= 30
    # The speaker before: each gap the device filled moved the echo, and it leaked.
    assert as_arrived < heard_by_device - 10
