"""The fast receive path, fed crafted RTP packets in every order a network produces.

Frames are checked byte for byte against what was sent: a buffer that released a
damaged or mixed-up frame, or released one late, fails here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecParameters, RTCRtpReceiver
from aiortc.codecs import depayload, get_decoder, get_encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import TimestampMapper
from aiortc.rtp import RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from media.measure.stamp import luma_plane, read_stamp
from media.sources.synthetic import SyntheticVideoTrack
from peer.stack import seam
from peer.stack.receive_path import (
    MAX_MISORDER,
    DrainingDecoderQueue,
    FrameCompletionBuffer,
    check_aiortc,
    install_receive_path,
    is_keyframe_start,
    stall_limit_for,
    use_frame_completion,
)
from peer.stack.seam import StackChanged, Undo

VP8_KEY_HEADER = b"\x50\x02\x00\x9d\x01\x2a\x80\x02\xe0\x01"  # keyframe tag, start code, 640x480
VP8_DELTA_HEADER = b"\x51\x02\x00"
H264_SPS = b"\x00\x00\x00\x01\x67\x42\xc0\x1e"
H264_IDR = b"\x00\x00\x00\x01\x65\x88\x84"
H264_SLICE = b"\x00\x00\x00\x01\x41\x9a\x02"
TICKS_PER_FRAME = 3000  # 90 kHz / 30 fps


@dataclass
class SentFrame:
    timestamp: int
    data: bytes
    packets: list[RtpPacket]
    keyframe: bool


def packet(sequence: int, timestamp: int, data: bytes, marker: bool) -> RtpPacket:
    rtp = RtpPacket(
        payload_type=96,
        marker=int(marker),
        sequence_number=sequence % 65536,
        timestamp=timestamp % 2**32,
        ssrc=1234,
        payload=data,
    )
    rtp._data = data  # type: ignore[attr-defined]  # what aiortc's depayload leaves
    return rtp


def stream(
    frames: int,
    packets_per_frame: int = 3,
    *,
    first_sequence: int = 1000,
    first_timestamp: int = 90_000,
    keyframes: frozenset[int] = frozenset({0}),
    header: tuple[bytes, bytes] = (VP8_KEY_HEADER, VP8_DELTA_HEADER),
) -> list[SentFrame]:
    sent = []
    sequence = first_sequence
    for index in range(frames):
        keyframe = index in keyframes
        chunks = [
            (header[0] if keyframe and part == 0 else header[1] if part == 0 else b"")
            + bytes([index % 251, part]) * (5 + part)
            for part in range(packets_per_frame)
        ]
        timestamp = (first_timestamp + index * TICKS_PER_FRAME) % 2**32
        packets = [
            packet(sequence + part, timestamp, chunk, part == packets_per_frame - 1)
            for part, chunk in enumerate(chunks)
        ]
        sequence += packets_per_frame
        sent.append(SentFrame(timestamp, b"".join(chunks), packets, keyframe))
    return sent


@dataclass
class Fed:
    frames: list[JitterFrame]
    released_at: list[int]  # index of the packet whose arrival released each frame
    plis: int


def feed(buffer: FrameCompletionBuffer | JitterBuffer, packets: list[RtpPacket]) -> Fed:
    """Feed packets the way aiortc's receiver does, with our decoder queue draining
    the frames that completed together."""
    fed = Fed([], [], 0)
    for index, rtp in enumerate(packets):
        pli, frame = buffer.add(rtp)
        fed.plis += int(pli)
        while frame is not None:
            fed.frames.append(frame)
            fed.released_at.append(index)
            frame = buffer.next_ready() if isinstance(buffer, FrameCompletionBuffer) else None
    return fed


def all_packets(sent: list[SentFrame]) -> list[RtpPacket]:
    return [p for frame in sent for p in frame.packets]


def assert_frames_are(fed: Fed, expected: list[SentFrame]) -> None:
    assert [(f.timestamp, f.data) for f in fed.frames] == [(s.timestamp, s.data) for s in expected]


# ---- in order --------------------------------------------------------------------------
def test_each_frame_leaves_on_its_marker_packet_while_stock_waits_for_the_next_frame() -> None:
    sent = stream(5)
    packets = all_packets(sent)
    fast = feed(FrameCompletionBuffer(), packets)
    assert_frames_are(fast, sent)
    markers = [i for i, p in enumerate(packets) if p.marker]
    assert fast.released_at == markers
    assert fast.plis == 0

    stock = feed(JitterBuffer(capacity=512, is_video=True), all_packets(stream(5)))
    # aiortc releases frame n when frame n+1's first packet arrives: one frame later.
    assert stock.released_at == [m + 1 for m in markers[:-1]]


def test_a_single_packet_frame_is_released_at_once() -> None:
    sent = stream(4, packets_per_frame=1)
    fed = feed(FrameCompletionBuffer(), all_packets(sent))
    assert_frames_are(fed, sent)
    assert fed.released_at == [0, 1, 2, 3]


def test_a_frame_without_a_marker_bit_ends_where_the_next_timestamp_begins() -> None:
    sent = stream(3)
    sent[0].packets[-1].marker = 0
    fed = feed(FrameCompletionBuffer(), all_packets(sent))
    assert_frames_are(fed, sent)
    assert fed.released_at[0] == 3  # frame 1's first packet proves frame 0 ended


# ---- reordering and duplicates ---------------------------------------------------------
def test_packets_reordered_inside_a_frame() -> None:
    sent = stream(4, packets_per_frame=4)
    packets = []
    for frame in sent:
        packets += [frame.packets[i] for i in (2, 0, 3, 1)]
    fed = feed(FrameCompletionBuffer(), packets)
    assert_frames_are(fed, sent)
    assert fed.released_at == [3, 7, 11, 15]  # each when its last missing packet came


def test_a_later_frame_complete_first_waits_for_the_earlier_one() -> None:
    sent = stream(3)
    # frame 1's middle packet is late: frame 2 arrives whole before it.
    packets = [*sent[0].packets, sent[1].packets[0], sent[1].packets[2], *sent[2].packets]
    packets.append(sent[1].packets[1])
    fed = feed(FrameCompletionBuffer(), packets)
    assert_frames_are(fed, sent)
    assert fed.released_at == [2, 8, 8]  # frames 1 and 2 both leave with the late packet
    assert fed.plis == 0


def test_duplicated_packets_release_each_frame_once() -> None:
    sent = stream(4)
    packets = [p for p in all_packets(sent) for _ in range(2)]
    fed = feed(FrameCompletionBuffer(), packets)
    assert_frames_are(fed, sent)


def test_a_late_copy_of_an_already_released_packet_is_ignored() -> None:
    sent = stream(3)
    packets = [*all_packets(sent), sent[0].packets[1], sent[1].packets[0]]
    fed = feed(FrameCompletionBuffer(), packets)
    assert_frames_are(fed, sent)


def test_the_first_packets_of_the_call_arriving_out_of_order() -> None:
    sent = stream(2)
    packets = [sent[0].packets[1], sent[0].packets[0], sent[0].packets[2], *sent[1].packets]
    fed = feed(FrameCompletionBuffer(), packets)
    assert_frames_are(fed, sent)


# ---- wrap-around -----------------------------------------------------------------------
def test_sequence_numbers_wrap_around() -> None:
    sent = stream(6, first_sequence=65530)
    assert {p.sequence_number for p in all_packets(sent)} >= {65535, 0, 1}
    fed = feed(FrameCompletionBuffer(), all_packets(sent))
    assert_frames_are(fed, sent)
    assert fed.released_at == [2, 5, 8, 11, 14, 17]


def test_timestamps_wrap_around() -> None:
    sent = stream(6, first_timestamp=2**32 - 2 * TICKS_PER_FRAME)
    assert sent[-1].timestamp < sent[0].timestamp
    fed = feed(FrameCompletionBuffer(), all_packets(sent))
    assert_frames_are(fed, sent)
    assert fed.plis == 0


def test_a_gap_across_the_wrap_is_abandoned_and_recovered() -> None:
    sent = stream(20, first_sequence=65520, keyframes=frozenset({0, 15}))
    lost = sent[2].packets[1]
    packets = [p for p in all_packets(sent) if p is not lost]
    fed = feed(FrameCompletionBuffer(), packets)
    assert [f.timestamp for f in fed.frames] == [s.timestamp for s in sent[:2] + sent[15:]]


# ---- loss ------------------------------------------------------------------------------
def test_a_retransmitted_packet_fills_the_gap_and_every_frame_is_released_in_order() -> None:
    sent = stream(5)
    lost = sent[1].packets[1]
    packets = [p for p in all_packets(sent) if p is not lost] + [lost]  # NACK brings it back
    fed = feed(FrameCompletionBuffer(), packets)
    assert_frames_are(fed, sent)
    assert fed.plis == 0
    assert fed.released_at == [2, 14, 14, 14, 14]


def test_a_packet_that_never_comes_costs_a_pli_and_only_a_keyframe_restarts_decoding() -> None:
    # 30 frames = 1 s of media; the gap in frame 3 is given up after 0.25 s.
    sent = stream(30, keyframes=frozenset({0, 14}))
    lost = sent[3].packets[1]
    buffer = FrameCompletionBuffer(stall_limit=0.25)
    fed = feed(buffer, [p for p in all_packets(sent) if p is not lost])
    assert fed.plis == 1
    # Frames 0-2 played; 3 and the delta frames after it are never shown damaged;
    # decoding restarts at the keyframe the PLI asked for.
    assert_frames_are(fed, sent[:3] + sent[14:])
    assert buffer.counters.gaps_abandoned == 1


def test_the_keyframe_request_is_repeated_while_no_keyframe_comes() -> None:
    sent = stream(40)
    lost = sent[3].packets[1]
    fed = feed(
        FrameCompletionBuffer(stall_limit=0.25), [p for p in all_packets(sent) if p is not lost]
    )
    assert_frames_are(fed, sent[:3])
    # one PLI per 0.25 s of delta frames dropped (frames 11..39 span about 1 s)
    assert 3 <= fed.plis <= 5


def test_a_whole_keyframe_behind_a_gap_ends_the_wait_at_once() -> None:
    sent = stream(8, keyframes=frozenset({0, 4}))
    lost = sent[2].packets[0]
    packets = [p for p in all_packets(sent) if p is not lost]
    fed = feed(FrameCompletionBuffer(stall_limit=10.0), packets)
    assert_frames_are(fed, sent[:2] + sent[4:])
    assert fed.plis == 0
    marker_of_keyframe = packets.index(sent[4].packets[-1])
    assert fed.released_at[2] == marker_of_keyframe


def test_losing_a_marker_packet_does_not_glue_two_frames_together() -> None:
    sent = stream(30, keyframes=frozenset({0, 12}))
    lost = sent[1].packets[-1]
    fed = feed(FrameCompletionBuffer(), [p for p in all_packets(sent) if p is not lost])
    assert_frames_are(fed, sent[:1] + sent[12:])


def test_a_stream_that_starts_mid_frame_waits_for_a_keyframe() -> None:
    sent = stream(30, keyframes=frozenset({0, 10}))
    packets = all_packets(sent)[2:]  # the keyframe's first two packets never came
    fed = feed(FrameCompletionBuffer(), packets)
    assert_frames_are(fed, sent[10:])
    assert fed.plis >= 1


def test_a_sender_restart_far_behind_resets_and_asks_for_a_keyframe() -> None:
    before = stream(3, first_sequence=5000)
    after = stream(3, first_sequence=5000 - MAX_MISORDER - 50, first_timestamp=7)
    fed = feed(FrameCompletionBuffer(), all_packets(before) + all_packets(after))
    assert fed.plis == 1
    assert_frames_are(fed, before + after)


def test_a_packet_too_far_ahead_makes_room_and_resyncs() -> None:
    sent = stream(3)
    far = stream(3, first_sequence=1000 + 600, first_timestamp=90_000 + 100 * TICKS_PER_FRAME)
    packets = [*sent[0].packets, sent[1].packets[0], *all_packets(far)]
    fed = feed(FrameCompletionBuffer(capacity=512), packets)
    assert fed.plis >= 1
    assert_frames_are(fed, sent[:1] + far)


# ---- H.264 -----------------------------------------------------------------------------
def test_h264_keyframes_are_recognised_from_annex_b() -> None:
    assert is_keyframe_start(H264_SPS + H264_IDR)
    assert is_keyframe_start(H264_IDR)
    assert not is_keyframe_start(H264_SLICE)
    assert is_keyframe_start(VP8_KEY_HEADER)
    assert not is_keyframe_start(VP8_DELTA_HEADER + b"\x9d\x01\x2a")
    assert not is_keyframe_start(b"")


def test_h264_stream_starting_with_a_delta_frame_waits_for_the_idr() -> None:
    sent = stream(6, keyframes=frozenset({2}), header=(H264_SPS + H264_IDR, H264_SLICE))
    fed = feed(FrameCompletionBuffer(), all_packets(sent))
    assert_frames_are(fed, sent[2:])
    assert fed.plis == 0  # the IDR came on its own; no need to ask for one


# ---- any order a network can produce ---------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    frames=st.integers(2, 25),
    packets_per_frame=st.integers(1, 5),
    first_sequence=st.integers(0, 65535),
    first_timestamp=st.integers(0, 2**32 - 1),
    keyframe_every=st.integers(1, 10),
    seed=st.integers(0, 2**32),
    loss=st.floats(0, 0.2),
    duplicates=st.floats(0, 0.2),
    window=st.integers(1, 8),
)
def test_whatever_the_order_only_whole_frames_leave_in_order(
    frames: int,
    packets_per_frame: int,
    first_sequence: int,
    first_timestamp: int,
    keyframe_every: int,
    seed: int,
    loss: float,
    duplicates: float,
    window: int,
) -> None:
    rng = random.Random(seed)
    keyframes = frozenset(range(0, frames, keyframe_every))
    sent = stream(
        frames,
        packets_per_frame,
        first_sequence=first_sequence,
        first_timestamp=first_timestamp,
        keyframes=keyframes,
    )
    packets = [p for p in all_packets(sent) if rng.random() >= loss]
    packets += [p for p in packets if rng.random() < duplicates]
    # local reordering: each packet moves at most ``window`` places
    keyed = sorted(
        enumerate(packets), key=lambda item: item[0] + rng.uniform(0, window) * (item[0] > 0)
    )
    arrival = [p for _, p in keyed]
    buffer = FrameCompletionBuffer()
    fed = feed(buffer, arrival)
    original = {s.timestamp: s.data for s in sent}
    order = {s.timestamp: i for i, s in enumerate(sent)}
    released = [order[f.timestamp] for f in fed.frames]
    assert all(f.data == original[f.timestamp] for f in fed.frames), "a damaged frame left"
    assert released == sorted(set(released)), "frames left twice or out of order"
    if released:
        assert sent[released[0]].keyframe, "decoding must start at a keyframe"
    if loss == 0:
        # Nothing lost: a frame goes unshown only when a later keyframe, complete
        # before it, made it unnecessary (it would be stale by then anyway).
        for missing in set(range(frames)) - set(released):
            assert any(sent[j].keyframe for j in released if j > missing), (
                f"frame {missing} was never lost, yet not shown"
            )
    assert buffer.ready_count == 0


# ---- real encoders and decoders --------------------------------------------------------
CODECS = {
    "vp8": RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96),
    "h264": RTCRtpCodecParameters(
        mimeType="video/H264",
        clockRate=90_000,
        payloadType=102,
        parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
    ),
}


@pytest.mark.parametrize("codec_name", ["vp8", "h264"])
async def test_real_encoded_frames_shuffled_and_duplicated_decode_to_every_stamp(
    codec_name: str,
) -> None:
    codec = CODECS[codec_name]
    encoder = get_encoder(codec)
    decoder = get_decoder(codec)
    source = SyntheticVideoTrack(width=320, height=240, fps=30, label="jitter")
    rng = random.Random(7)
    buffer = FrameCompletionBuffer()
    sequence = 65500  # wraps during the test
    arrival: list[RtpPacket] = []
    for _ in range(40):
        frame = await source.recv()
        payloads, timestamp = encoder.encode(frame, False)
        packets = []
        for index, payload in enumerate(payloads):
            rtp = RtpPacket(
                payload_type=codec.payloadType or 96,
                marker=int(index == len(payloads) - 1),
                sequence_number=sequence % 65536,
                timestamp=timestamp,
                payload=payload,
            )
            rtp._data = depayload(codec, payload)  # type: ignore[attr-defined]
            packets.append(rtp)
            sequence += 1
        rng.shuffle(packets)
        arrival += [*packets, rng.choice(packets)]
    source.stop()
    numbers = []
    for rtp in arrival:
        _, encoded = buffer.add(rtp)
        if encoded is not None:
            for picture in decoder.decode(encoded):
                stamp = read_stamp(luma_plane(picture))  # type: ignore[arg-type]
                assert stamp is not None, "a decoded picture lost its stamp"
                numbers.append(stamp.frame_number)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert len(numbers) >= 39  # the last frame may still wait for nothing


def test_the_decoder_queue_takes_every_frame_that_completed_together() -> None:
    sent = stream(4)
    buffer = FrameCompletionBuffer()
    mapper = TimestampMapper()
    decoder_queue = DrainingDecoderQueue(buffer, mapper)
    late = sent[1].packets[0]
    codec = object()
    for rtp in [p for p in all_packets(sent) if p is not late] + [late]:
        # what aiortc's RTCRtpReceiver does with each packet
        _, frame = buffer.add(rtp)
        if frame is not None:
            frame.timestamp = mapper.map(frame.timestamp)
            decoder_queue.put((codec, frame))
    decoder_queue.put(None)  # aiortc stopping its decoder thread
    queued = [decoder_queue.get_nowait() for _ in range(decoder_queue.qsize())]
    assert queued[-1] is None
    assert [(c, f.timestamp, f.data) for c, f in queued[:-1]] == [
        (codec, i * TICKS_PER_FRAME, s.data) for i, s in enumerate(sent)
    ]


# ---- the seam into aiortc --------------------------------------------------------------
def test_the_installed_aiortc_still_has_the_seam_we_replace() -> None:
    check_aiortc()  # fails loudly, naming what changed, when aiortc moves


def test_an_unchecked_aiortc_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seam, "installed_version", lambda library: "1.17.0")
    with pytest.raises(
        StackChanged, match=r"aiortc 1\.17\.0 .*run with --receive-path stock to keep aiortc's"
    ):
        check_aiortc()


def test_a_changed_receiver_is_refused_naming_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def handle_rtp_packet(self: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
        """A future aiortc that buffers some other way."""

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle_rtp_packet)
    with pytest.raises(
        StackChanged,
        match=r"RTCRtpReceiver\._handle_rtp_packet no longer feeds the buffer one packet.*"
        r"--receive-path stock",
    ):
        check_aiortc()


async def test_undo_puts_aiortcs_buffer_and_queue_back() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("video").receiver
        stock_buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        stock_queue = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        undo = Undo()
        install_receive_path(pc, "fast", undo)
        assert receiver._RTCRtpReceiver__jitter_buffer is not stock_buffer  # type: ignore[attr-defined]
        undo()
        assert receiver._RTCRtpReceiver__jitter_buffer is stock_buffer  # type: ignore[attr-defined]
        assert receiver._RTCRtpReceiver__decoder_queue is stock_queue  # type: ignore[attr-defined]
    finally:
        await pc.close()


async def test_install_replaces_only_the_video_receivers_buffer() -> None:
    pc = RTCPeerConnection()
    try:
        video = pc.addTransceiver("video")
        audio = pc.addTransceiver("audio")
        install_receive_path(pc, "fast")
        assert isinstance(video.receiver._RTCRtpReceiver__jitter_buffer, FrameCompletionBuffer)  # type: ignore[attr-defined]
        assert not isinstance(audio.receiver._RTCRtpReceiver__jitter_buffer, FrameCompletionBuffer)  # type: ignore[attr-defined]
        assert use_frame_completion(video.receiver) is video.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="fast, stock"):
            install_receive_path(pc, "turbo")
    finally:
        await pc.close()


async def test_stock_leaves_aiortc_alone() -> None:
    pc = RTCPeerConnection()
    try:
        video = pc.addTransceiver("video")
        install_receive_path(pc, "stock")
        buffer = video.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        assert type(buffer) is JitterBuffer
    finally:
        await pc.close()


def test_the_wait_for_a_retransmission_follows_the_round_trip() -> None:
    assert stall_limit_for(None) == 0.25
    assert stall_limit_for(20.0) == 0.25  # a fast path: give up as soon as before
    assert stall_limit_for(200.0) == pytest.approx(0.5)  # a queue on the path: wait for it
    assert stall_limit_for(2_000.0) == 0.6  # but a keyframe is quicker than that


@pytest.mark.parametrize(("rtt_ms", "gives_up"), [(None, True), (200.0, False)])
def test_a_retransmission_a_round_trip_late_still_fills_its_gap(
    rtt_ms: float | None, gives_up: bool
) -> None:
    # Frame 3 loses a packet; its retransmission comes 12 frames (0.4 s) later, as on a
    # link whose queue makes the round trip 200 ms.
    sent = stream(30, keyframes=frozenset({0}))
    lost = sent[3].packets[1]
    packets = [p for p in all_packets(sent) if p is not lost]
    packets.insert(packets.index(sent[15].packets[0]), lost)
    buffer = FrameCompletionBuffer()
    buffer.set_stall_limit(stall_limit_for(rtt_ms))
    fed = feed(buffer, packets)
    if gives_up:
        assert fed.plis >= 1
        assert_frames_are(fed, sent[:3])  # the rest waits for a keyframe: a freeze
    else:
        assert fed.plis == 0
        assert_frames_are(fed, sent)  # nothing dropped, nothing frozen until a keyframe
