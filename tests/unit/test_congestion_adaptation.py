"""Resolution and frame-rate steps with hysteresis, and the audio/video split."""

from __future__ import annotations

import random

import pytest

from peer.congestion.adaptation import (
    VideoAdaptation,
    VideoSettings,
    build_ladder,
    max_intra_bitrate_pct,
    max_keyframe_bytes,
    needed_bps,
    split_bitrate,
)


def test_ladder_steps_resolution_then_frame_rate() -> None:
    ladder = [(r.width, r.height, r.fps) for r in build_ladder(640, 480, 30)]
    assert ladder == [
        (640, 480, 30),
        (480, 360, 30),
        (320, 240, 30),
        (240, 180, 30),
        (160, 120, 30),
        (160, 120, 20),
        (160, 120, 15),
        (160, 120, 10),
    ]
    needs = [r.need_bps for r in build_ladder(640, 480, 30)]
    assert needs == sorted(needs, reverse=True)


def test_ladder_keeps_the_source_aspect_and_even_dimensions() -> None:
    ladder = build_ladder(1280, 720, 25)
    assert [(r.width, r.height) for r in ladder][:5] == [
        (1280, 720),
        (960, 540),
        (640, 360),
        (480, 270),
        (320, 180),
    ]
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in ladder)
    assert all(abs(r.width / r.height - 16 / 9) < 0.05 for r in ladder)
    assert [r.fps for r in ladder if r.fps != 25] == [20, 15, 10]
    odd = build_ladder(333, 251, 15)
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in odd)
    assert [r.fps for r in odd if r.fps != 15] == [10]


def test_ladder_refuses_an_empty_source() -> None:
    with pytest.raises(ValueError, match="cannot be adapted"):
        VideoAdaptation(0, 480, 30)


def test_steps_down_at_once_and_up_only_after_two_seconds_of_margin() -> None:
    adaptation = VideoAdaptation(640, 480, 30)
    assert adaptation.update(2_000_000, 0) == VideoSettings(640, 480, 30, 2_000_000)
    low = adaptation.update(120_000, 100)  # a capacity step down: several rungs at once
    assert (low.width, low.height, low.fps) == (240, 180, 30)
    assert low.bitrate_bps == 120_000
    # back up: 1.3 x what 320x240 needs, held for 2 s, one rung at a time
    enough = int(1.3 * needed_bps(320, 240, 30)) + 1
    sizes = [(adaptation.update(enough, t).width) for t in range(200, 2_300, 100)]
    assert sizes[:-1] == [240] * (len(sizes) - 1)
    assert sizes[-1] == 320
    # a dip below the margin restarts the 2 s wait for the next rung
    plenty = 10_000_000
    for t in range(2_300, 3_300, 100):
        assert adaptation.update(plenty, t).width == 320
    adaptation.update(int(1.2 * needed_bps(480, 360, 30)), 3_300)
    for t in range(3_400, 5_400, 100):
        assert adaptation.update(plenty, t).width == 320
    assert adaptation.update(plenty, 5_400).width == 480


def test_frame_rate_steps_below_the_smallest_resolution() -> None:
    adaptation = VideoAdaptation(640, 480, 30)
    settings = adaptation.update(needed_bps(160, 120, 15), 0)
    assert (settings.width, settings.height, settings.fps) == (160, 120, 15)
    settings = adaptation.update(1_000, 100)
    assert (settings.width, settings.height, settings.fps) == (160, 120, 10)


@pytest.mark.parametrize("seed", range(5))
def test_a_noisy_target_does_not_make_it_flap(seed: int) -> None:
    rng = random.Random(seed)
    adaptation = VideoAdaptation(640, 480, 30)
    # An estimate jumping ±35 % around the middle of the 480x360 rung's range, across
    # both of its edges, every 50 ms for a minute.
    middle = (needed_bps(480, 360, 30) + needed_bps(640, 480, 30)) / 2
    targets = [int(middle * rng.uniform(0.65, 1.35)) for _ in range(1200)]
    assert min(targets) < needed_bps(480, 360, 30) and max(targets) > needed_bps(640, 480, 30)
    settings = [adaptation.update(target, n * 50) for n, target in enumerate(targets)]
    assert adaptation.changes <= 3
    assert settings[-1].width in (480, 320)


def test_a_slowly_recovering_target_climbs_back_to_the_source() -> None:
    adaptation = VideoAdaptation(640, 480, 30)
    adaptation.update(20_000, 0)
    target = 20_000.0
    for t in range(0, 60_000, 100):
        target = min(target * 1.01, 1_500_000)
        settings = adaptation.update(int(target), t)
    assert (settings.width, settings.height, settings.fps) == (640, 480, 30)


def test_split_gives_audio_its_share_and_accounts_for_headers() -> None:
    audio, video = split_bitrate(1_000_000, audio_active=True)
    assert audio == 32_000
    # 50 audio packets a second of 58 header bytes; video loses 58 of every 1258 bytes
    assert video == int((1_000_000 - 32_000 - 23_200) * 1200 / 1258)
    audio, video = split_bitrate(150_000, audio_active=True)
    assert audio == 16_000
    assert 16_000 + 23_200 + video * 1258 / 1200 <= 150_000
    assert split_bitrate(1_000_000, audio_active=False) == (0, int(1_000_000 * 1200 / 1258))


def test_split_keeps_a_floor_for_video() -> None:
    assert split_bitrate(20_000, audio_active=True) == (16_000, 10_000)


def test_keyframes_are_capped_to_a_few_hundred_ms_of_the_budget() -> None:
    assert max_keyframe_bytes(250_000) == 9_375  # 300 ms at 250 kbit/s
    assert max_keyframe_bytes(0) == 1
    assert max_intra_bitrate_pct(30) == 900
    assert max_intra_bitrate_pct(10) == 300
    assert max_intra_bitrate_pct(1) == 100


def test_a_call_starts_at_a_rung_well_inside_its_first_target() -> None:
    # 300 kbit/s start, about 250 of it video: 480x360 needs 247, so it starts at 320x240
    adaptation = VideoAdaptation(640, 480, 30, start_bps=250_000)
    settings = adaptation.update(250_000, 0)
    assert (settings.width, settings.height) == (320, 240)
    # and climbs once the estimate holds above the next rung
    for t in range(0, 2_600, 100):
        settings = adaptation.update(400_000, t)
    assert (settings.width, settings.height) == (480, 360)
    roomy = VideoAdaptation(640, 480, 30, start_bps=2_000_000)
    assert roomy.update(2_000_000, 0).width == 640
