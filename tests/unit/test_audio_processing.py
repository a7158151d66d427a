"""Echo cancellation measured on a simulated echo path (media/measure/echo_path.py).

A test stands in for the room and the sound devices here: the speaker's output is
delayed 40-120 ms, attenuated and filtered, and added to a synthetic near-end voice.
Targets (docs/benchmarks.md has the figures): ERLE >= 25 dB within 2 s, the near
end within 3 dB during double talk. The floors below sit under the targets so that
a slower machine does not fail them, while a canceller that stops working does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from media.audio_processing import BLOCK_SAMPLES, AudioProcessor
from media.measure.echo_path import ROOMS, EchoPath, level_db, measure, speech_like

ERLE_FLOOR_DB = 20.0
DOUBLE_TALK_FLOOR_DB = -6.0


@pytest.mark.parametrize("room", ROOMS, ids=lambda room: f"{room.delay_ms:.0f}ms")
def test_the_default_chain_removes_the_echo_and_keeps_the_near_end(room: EchoPath) -> None:
    report = measure(room, AudioProcessor)
    # From 2 s on, every half second, the echo is at least ERLE_FLOOR_DB down.
    assert min(report.erle_curve_db[4:]) >= ERLE_FLOOR_DB, report
    assert report.erle_db >= ERLE_FLOOR_DB, report
    assert report.near_in_double_talk_db >= DOUBLE_TALK_FLOOR_DB, report
    assert report.cpu_ms_per_s > 0


def test_without_the_canceller_the_echo_stays() -> None:
    # The same measurement must be able to fail: noise suppression alone leaves the echo.
    report = measure(ROOMS[0], lambda: AudioProcessor(echo_cancellation=False, gain_control=False))
    assert report.erle_db < 10, report


def test_far_end_is_taken_in_any_length_and_near_end_in_whole_blocks() -> None:
    processor = AudioProcessor()
    voice = (speech_like(0.1, seed=3, pitch_hz=150.0) * 32767).astype(np.int16)
    processor.far_end(voice[:700])  # one block and a bit
    processor.far_end(voice[700:960])  # the bit completes the second
    assert processor.counters.far_blocks == 2
    out = processor.near_end(voice[: 2 * BLOCK_SAMPLES])
    assert out.dtype == np.int16 and out.size == 2 * BLOCK_SAMPLES
    assert processor.counters.near_blocks == 2
    with pytest.raises(ValueError, match="whole 10 ms blocks"):
        processor.near_end(voice[:100])
    floats: Any = np.zeros(BLOCK_SAMPLES)  # what a careless caller might pass
    with pytest.raises(ValueError, match="int16"):
        processor.far_end(floats)


def test_echo_path_delays_and_attenuates() -> None:
    impulse = np.zeros(48000)
    impulse[0] = 1.0
    room = EchoPath(delay_ms=40.0, gain_db=-6.0, taps=(1.0,))
    echoed = room.apply(impulse)
    assert int(np.argmax(np.abs(echoed))) == 40 * 48
    assert level_db(echoed) == pytest.approx(level_db(impulse) - 6.0, abs=0.01)
