"""VP8 through libvpx itself: the bitrate changes in place, with no restart or keyframe.

Every frame is decoded by PyAV's (FFmpeg's) libvpx decoder, as a receiver would; the
rate is read from the sizes of the frames that come out, at a 30 fps clock.
"""

from __future__ import annotations

import fractions
import itertools
import math
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor

from peer.congestion.adaptation import max_intra_bitrate_pct
from peer.congestion.encoders import LIVE_SHARE, CommittedBitrate, ControlledVp8Encoder, LiveBitrate
from peer.congestion.vpx_live import (
    VIDEO_CLOCK,
    VP8_DEFAULTS,
    EncodedFrame,
    Libvpx,
    LibvpxRefused,
    LiveVp8Encoder,
    Vp8Settings,
    candidate_paths,
    load_libvpx,
)

FPS = 30
STEP = VIDEO_CLOCK // FPS
# Keyframes held to the calls' share of the budget: an unbounded first keyframe drains
# the rate buffer and libvpx then drops the frames after it (tested on its own below).
INTRA_PCT = max_intra_bitrate_pct(FPS)


class Picture:
    """Scrolling bars over a faint moving texture: libvpx's rate control has room both
    ways at 320x240 (about 100 kbit/s at its coarsest quantizer, 400 kbit/s easily)."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        self.width, self.height = width, height
        y, x = np.mgrid[0:height, 0 : 2 * width]
        wave = 0.5 + 0.5 * np.sin(2 * math.pi * ((x + y) % 40) / 40)
        self.bars = (60 + 140 * wave).astype(np.uint8)
        self.texture = np.random.default_rng(7).integers(0, 256, (height, 2 * width), np.uint8)

    def frame(self, number: int) -> av.VideoFrame:
        w, h = self.width, self.height
        yuv: npt.NDArray[np.uint8] = np.full((h * 3 // 2, w), 128, np.uint8)
        bars, texture = (number * 4) % w, (number * 3) % w
        yuv[:h] = (
            self.bars[:, bars : bars + w] // 4 * 3 + self.texture[:, texture : texture + w] // 8
        )
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = number * STEP
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class Receiver:
    """FFmpeg's libvpx decoder: what arrives, frame by frame."""

    def __init__(self) -> None:
        self.decoder = av.CodecContext.create("libvpx", "r")
        self.sizes: list[tuple[int, int]] = []

    def decode(self, data: bytes) -> None:
        frames = self.decoder.decode(av.Packet(data))
        assert len(frames) == 1, "every encoded frame decodes to one picture"
        frame = frames[0]
        assert isinstance(frame, av.VideoFrame)
        self.sizes.append((frame.width, frame.height))


def kbps(frames: list[EncodedFrame], start: int, end: int) -> float:
    return sum(len(f.data) for f in frames[start:end]) * 8 * FPS / (end - start) / 1000


@pytest.fixture(scope="module")
def libvpx() -> Libvpx:
    return load_libvpx()


def test_libvpx_loads_and_is_checked(libvpx: Libvpx) -> None:
    assert libvpx.version.startswith("v1.")
    assert "av.libs" in libvpx.path, "PyAV's own libvpx comes first"


def test_encoded_frames_decode_at_their_size(libvpx: Libvpx) -> None:
    picture, receiver = Picture(), Receiver()
    encoder = LiveVp8Encoder(libvpx, 300_000, INTRA_PCT)
    frames = [encoder.encode(picture.frame(n), n * STEP) for n in range(30)]
    for frame in frames:
        receiver.decode(frame.data)
    assert receiver.sizes == [(320, 240)] * 30
    assert [f.keyframe for f in frames] == [True] + [False] * 29
    encoder.close()


def test_rate_follows_set_bitrate_within_a_second_without_keyframes(libvpx: Libvpx) -> None:
    picture, receiver = Picture(), Receiver()
    encoder = LiveVp8Encoder(libvpx, 400_000, INTRA_PCT)
    frames = []
    for n in range(9 * FPS):
        if n == 3 * FPS:
            encoder.set_bitrate(100_000)
        if n == 6 * FPS:
            encoder.set_bitrate(400_000)
        frames.append(encoder.encode(picture.frame(n), n * STEP))
        receiver.decode(frames[-1].data)
    before = kbps(frames, 2 * FPS, 3 * FPS)
    down = kbps(frames, 3 * FPS + FPS // 2, 4 * FPS + FPS // 2)
    up = kbps(frames, 6 * FPS + FPS // 2, 7 * FPS + FPS // 2)
    assert before > 300, f"{before:.0f} kbit/s at a 400 kbit/s target"
    assert down < 130, f"{down:.0f} kbit/s 0.5-1.5 s after the target fell to 100"
    assert up > 280, f"{up:.0f} kbit/s 0.5-1.5 s after the target rose to 400"
    assert sum(f.keyframe for f in frames) == 1, "only the first frame is a keyframe"
    assert encoder.opens == 1 and encoder.keyframes == 1
    assert len(receiver.sizes) == 9 * FPS
    encoder.close()


def test_forced_keyframe(libvpx: Libvpx) -> None:
    picture = Picture()
    encoder = LiveVp8Encoder(libvpx, 300_000, INTRA_PCT)
    frames = [encoder.encode(picture.frame(n), n * STEP, keyframe=n == 20) for n in range(30)]
    assert [n for n, f in enumerate(frames) if f.keyframe] == [0, 20]
    # A receiver that starts at the forced keyframe decodes from there on.
    receiver = Receiver()
    for frame in frames[20:]:
        receiver.decode(frame.data)
    assert receiver.sizes == [(320, 240)] * 10
    encoder.close()


def test_resolution_change_opens_anew_with_a_keyframe(libvpx: Libvpx) -> None:
    large, small, odd = Picture(320, 240), Picture(160, 120), Picture(162, 122)
    receiver = Receiver()
    encoder = LiveVp8Encoder(libvpx, 300_000, INTRA_PCT)
    frames = [encoder.encode(large.frame(n), n * STEP) for n in range(10)]
    frames += [encoder.encode(small.frame(n), n * STEP) for n in range(10, 20)]
    frames += [encoder.encode(large.frame(n), n * STEP) for n in range(20, 30)]
    odd_frame = odd.frame(30).reformat(width=161, height=121)
    frames += [encoder.encode(odd_frame, 30 * STEP)]
    for frame in frames:
        receiver.decode(frame.data)
    assert receiver.sizes == [(320, 240)] * 10 + [(160, 120)] * 10 + [(320, 240)] * 10 + [
        (161, 121)
    ]
    assert [n for n, f in enumerate(frames) if f.keyframe] == [0, 10, 20, 30]
    assert encoder.opens == 4
    encoder.close()


def test_timestamps_going_back_do_not_stop_the_encoder(libvpx: Libvpx) -> None:
    picture, receiver = Picture(), Receiver()
    encoder = LiveVp8Encoder(libvpx, 300_000, INTRA_PCT)
    stamps = [90_000, 93_000, 96_000, 3_000, 6_000, 6_000, 9_000]  # a source that restarted
    for n, pts in enumerate(stamps):
        frame = encoder.encode(picture.frame(n), pts)
        receiver.decode(frame.data)
    assert receiver.sizes == [(320, 240)] * len(stamps)
    assert encoder.keyframes == 1
    encoder.close()


def test_wrong_default_is_refused() -> None:
    wrong = {**VP8_DEFAULTS, "rc_target_bitrate": 257}
    with pytest.raises(LibvpxRefused, match=r"rc_target_bitrate 256 \(expected 257\)"):
        load_libvpx(expected=wrong)


def test_a_library_that_is_not_libvpx_is_refused() -> None:
    libs = Path(candidate_paths()[0]).parent
    opus = next(libs.glob("libopus-*.so*"))
    with pytest.raises(LibvpxRefused, match="cannot load"):
        load_libvpx(str(opus))


def depacketize(payloads: list[bytes]) -> bytes:
    return b"".join(VpxPayloadDescriptor.parse(payload)[1] for payload in payloads)


def test_controlled_encoder_follows_the_target_without_restarts(libvpx: Libvpx) -> None:
    picture, receiver = Picture(), Receiver()
    encoder = ControlledVp8Encoder(400_000, libvpx)
    assert encoder.live is not None and isinstance(encoder.bitrate, LiveBitrate)
    sent: list[int] = []
    picture_ids: list[int] = []
    for n in range(6 * FPS):
        if n == 2 * FPS:
            encoder.set_target(100_000, FPS)  # a dip CommittedBitrate held for a second
        if n == 4 * FPS:
            encoder.set_target(400_000, FPS)
        payloads, timestamp = encoder.encode(picture.frame(n))
        assert timestamp == n * STEP
        data = depacketize(payloads)
        sent.append(len(data))
        if payloads:  # none for a frame libvpx dropped to hold the rate
            descriptor = VpxPayloadDescriptor.parse(payloads[0])[0]
            assert descriptor.picture_id is not None
            picture_ids.append(descriptor.picture_id)
            receiver.decode(data)
    down = sum(sent[2 * FPS + FPS // 2 : 3 * FPS + FPS // 2]) * 8 / 1000
    assert down < 100, f"{down:.0f} kbit/s 0.5-1.5 s after the target fell to 100"
    assert encoder.keyframes == 1 and encoder.bitrate.restarts == 0
    assert encoder.target_bitrate == round(400_000 * LIVE_SHARE), "the rest is for recovery"
    assert receiver.sizes == [(320, 240)] * (6 * FPS - encoder.dropped)
    steps = {(b - a) % (1 << 15) for a, b in itertools.pairwise(picture_ids)}
    assert steps == {1}, "a dropped frame uses no picture id (a gap reads as a lost frame)"


def test_frames_are_dropped_rather_than_sent_over_the_target(libvpx: Libvpx) -> None:
    """640x480 at 100 kbit/s: in the first second (a keyframe, then a picture that
    cannot get under the target) libvpx without dropping sends about 2x the target."""
    picture, receiver = Picture(640, 480), Receiver()
    rates = []
    for threshold in (0, Vp8Settings().drop_frame_threshold):
        encoder = LiveVp8Encoder(
            libvpx, 100_000, INTRA_PCT, Vp8Settings(drop_frame_threshold=threshold)
        )
        frames = [encoder.encode(picture.frame(n), n * STEP) for n in range(5 * FPS)]
        rates.append(kbps(frames, 0, FPS))
        for frame in frames:
            if frame.data:
                receiver.decode(frame.data)
        encoder.close()
    assert encoder.dropped > 0
    assert rates[1] < rates[0], f"{rates[1]:.0f} kbit/s dropping, {rates[0]:.0f} not"
    assert len(receiver.sizes) == 10 * FPS - encoder.dropped


def test_refused_libvpx_falls_back_to_the_restarting_encoder() -> None:
    try:
        load_libvpx(expected={**VP8_DEFAULTS, "g_w": 321})
    except LibvpxRefused as exc:
        refused = exc
    else:
        pytest.fail("a wrong sentinel must be refused")
    picture, receiver = Picture(), Receiver()
    encoder = ControlledVp8Encoder(400_000, refused)
    assert encoder.live is None and isinstance(encoder.bitrate, CommittedBitrate)
    for n in range(FPS):
        if n == FPS // 2:
            encoder.set_target(100_000, FPS)  # a squeeze: committed at once, a restart
        receiver.decode(depacketize(encoder.encode(picture.frame(n))[0]))
    assert receiver.sizes == [(320, 240)] * FPS
    assert encoder.bitrate.restarts == 1
    assert encoder.keyframes == 2, "FFmpeg's encoder begins again with a keyframe"


def test_live_bitrate_follows_every_request_at_once() -> None:
    bitrate = LiveBitrate(300_000)
    assert bitrate.request(150_000, 10.0) and bitrate.bps == 150_000
    assert bitrate.request(330_000, 10.1) and bitrate.bps == 330_000
    assert not bitrate.request(330_000, 10.2)
    assert bitrate.restarts == 0
