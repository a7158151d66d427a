"""The aiortc shell of congestion control: transport-cc negotiated, stamped, fed back.

The byte-level helpers are checked against aiortc's own RTP parser; the call tests run
two real ``Call``s (aiortc RTCPeerConnections, ICE and DTLS over real UDP on
127.0.0.1) with synthetic video and audio.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    HeaderExtensionsMap,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    pack_remb_fci,
)
from av import VideoFrame

from media.sources.synthetic import SyntheticVideoTrack, ToneTrack
from peer.call.connection import Call
from peer.congestion.encoders import CommittedBitrate
from peer.congestion.packets import (
    nack_count,
    read_transport_sequence,
    split_compound,
    stamp_transport_sequence,
)
from peer.congestion.sdp import offer_with_transport_cc
from peer.congestion.shell import CongestionShell, check_aiortc
from peer.congestion.track import AdaptedVideoTrack
from peer.congestion.twcc import TWCC_URI
from peer.ice.config import rtc_configuration
from peer.stack import seam
from peer.stack.host_addresses import restrict_host_addresses
from peer.stack.seam import StackChanged

TWCC_ID = 5


def extensions_map(**ids: int) -> HeaderExtensionsMap:
    uris = {
        "mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
        "abs_send_time": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "twcc": TWCC_URI,
    }
    parameters = RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=number, uri=uris[name])
            for name, number in ids.items()
        ]
    )
    mapping = HeaderExtensionsMap()
    mapping.configure(parameters)
    return mapping


def rtp_bytes(mapping: HeaderExtensionsMap, *, mid: str | None, abs_send_time: int | None) -> bytes:
    packet = RtpPacket(payload_type=97, sequence_number=4242, timestamp=123456, ssrc=0xDEADBEEF)
    packet.payload = bytes(range(200))
    packet.marker = 1
    packet.extensions.mid = mid
    packet.extensions.abs_send_time = abs_send_time
    return packet.serialize(mapping)


# ---- bytes ----------------------------------------------------------------------------
def test_a_stamp_joins_the_extensions_aiortc_wrote_and_aiortc_reads_it_back() -> None:
    mapping = extensions_map(mid=1, abs_send_time=3, twcc=TWCC_ID)
    data = rtp_bytes(mapping, mid="0", abs_send_time=0x123456)
    stamped = stamp_transport_sequence(data, TWCC_ID, 65535)
    parsed = RtpPacket.parse(stamped, mapping)
    assert parsed.extensions.transport_sequence_number == 65535
    assert parsed.extensions.mid == "0"
    assert parsed.extensions.abs_send_time == 0x123456
    assert parsed.payload == bytes(range(200))
    assert (parsed.sequence_number, parsed.ssrc, parsed.marker) == (4242, 0xDEADBEEF, 1)
    assert read_transport_sequence(stamped, TWCC_ID) == 65535
    # Stamping again replaces the number rather than adding a second element.
    again = stamp_transport_sequence(stamped, TWCC_ID, 7)
    assert len(again) == len(stamped)
    assert read_transport_sequence(again, TWCC_ID) == 7


def test_a_packet_without_extensions_gets_a_block() -> None:
    mapping = extensions_map(twcc=TWCC_ID)
    data = rtp_bytes(mapping, mid=None, abs_send_time=None)
    assert not data[0] & 0x10
    assert read_transport_sequence(data, TWCC_ID) is None
    stamped = stamp_transport_sequence(data, TWCC_ID, 300)
    parsed = RtpPacket.parse(stamped, mapping)
    assert parsed.extensions.transport_sequence_number == 300
    assert parsed.payload == bytes(range(200))


def test_malformed_rtp_is_refused() -> None:
    mapping = extensions_map(mid=1, twcc=TWCC_ID)
    data = rtp_bytes(mapping, mid="0", abs_send_time=None)
    with pytest.raises(ValueError):
        read_transport_sequence(data[:14], TWCC_ID)  # extension header cut off
    with pytest.raises(ValueError):
        stamp_transport_sequence(b"\x00" * 20, TWCC_ID, 1)  # not version 2


def test_a_compound_rtcp_datagram_splits_and_nacks_are_counted() -> None:
    nack = RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=[10, 11, 13, 40])
    data = bytes(nack) + bytes(RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=[5]))
    packets = split_compound(data)
    assert [(p.packet_type, p.fmt) for p in packets] == [(205, 1), (205, 1)]
    assert [nack_count(p) for p in packets] == [4, 1]
    assert len(RtcpPacket.parse(b"".join(p.data for p in packets))) == 2
    with pytest.raises(ValueError):
        split_compound(data[:-2])


def test_our_offer_carries_transport_cc_on_audio_and_video() -> None:
    sdp = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 96 0",
            "a=mid:0",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=rtpmap:96 opus/48000/2",
            "a=rtpmap:0 PCMU/8000",
            "m=video 9 UDP/TLS/RTP/SAVPF 97 98",
            "a=mid:1",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
            "a=rtpmap:97 VP8/90000",
            "a=rtpmap:98 rtx/90000",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "a=mid:2",
            "",
        ]
    )
    offer = offer_with_transport_cc(sdp)
    lines = offer.split("\r\n")
    assert lines.count(f"a=extmap:2 {TWCC_URI}") == 2  # the lowest free id, both m-lines
    assert "a=rtcp-fb:96 transport-cc" in lines
    assert "a=rtcp-fb:97 transport-cc" in lines
    assert "a=rtcp-fb:98 transport-cc" not in lines and "a=rtcp-fb:0 transport-cc" not in lines
    assert offer_with_transport_cc(offer) == offer


def test_the_installed_aiortc_still_has_the_hooks() -> None:
    check_aiortc()


def test_an_unchecked_aiortc_version_is_refused_naming_the_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(seam, "installed_version", lambda library: "9.0.0")
    with pytest.raises(StackChanged, match=r"aiortc 9\.0\.0 .*run with --congestion-control stock"):
        check_aiortc()


# ---- calls ----------------------------------------------------------------------------
@dataclass
class Side:
    call: Call
    frames: list[Any] = field(default_factory=list)
    consumers: list[asyncio.Task[None]] = field(default_factory=list)

    def take(self, track: MediaStreamTrack) -> None:
        async def consume() -> None:
            try:
                while True:
                    frame = await track.recv()
                    if track.kind == "video":
                        self.frames.append(frame)
            except MediaStreamError:
                pass

        self.consumers.append(asyncio.create_task(consume()))


@pytest_asyncio.fixture
async def loopback() -> AsyncIterator[None]:
    restrict_host_addresses(["127.0.0.1"])
    yield
    restrict_host_addresses([])


async def start_call(caller_mode: str, callee_mode: str) -> tuple[Side, Side]:
    sides: dict[str, Side] = {}

    async def to_callee(message: dict[str, Any]) -> None:
        if message["type"] == "offer":
            await sides["callee"].call.offer_received(message["offer"])

    async def to_caller(message: dict[str, Any]) -> None:
        if message["type"] == "answer":
            await sides["caller"].call.answer_received(message["answer"])

    for name, mode, send in (
        ("caller", caller_mode, to_callee),
        ("callee", callee_mode, to_caller),
    ):
        holder: list[Side] = []

        def take(track: MediaStreamTrack, holder: list[Side] = holder) -> None:
            holder[0].take(track)

        call = Call(
            "callee" if name == "caller" else "caller",
            configuration=rtc_configuration([]),
            send=send,
            local_tracks=[SyntheticVideoTrack(320, 240, 30.0), ToneTrack()],
            on_remote_track=take,
            congestion_control=mode,
        )
        side = Side(call)
        holder.append(side)
        sides[name] = side
    await sides["caller"].call.dial()
    await asyncio.wait_for(
        asyncio.gather(
            sides["caller"].call.connected.wait(), sides["callee"].call.connected.wait()
        ),
        20,
    )
    return sides["caller"], sides["callee"]


async def end_call(*sides: Side) -> None:
    for side in sides:
        await side.call.hang_up(notify=False)
        for task in side.consumers:
            task.cancel()


def sdp_lines(pc: RTCPeerConnection, which: str) -> list[str]:
    description = pc.localDescription if which == "local" else pc.remoteDescription
    assert description is not None
    return description.sdp.split("\r\n")


async def test_transport_cc_is_negotiated_and_feedback_flows_both_ways(loopback: None) -> None:
    caller, callee = await start_call("gcc", "gcc")
    try:
        await asyncio.sleep(4)
        for side in (caller, callee):
            for which in ("local", "remote"):
                lines = sdp_lines(side.call.pc, which)
                assert any(line.endswith(f" {TWCC_URI}") for line in lines), which
                assert any(line.endswith(" transport-cc") for line in lines), which
            shell = side.call.congestion
            assert shell is not None
            assert shell.extension_id is not None
            stats = shell.snapshot()
            assert stats["transport_cc"] is True
            assert stats["feedback_sent"] > 20  # every 50 ms for ~4 s
            assert stats["feedback_received"] > 20
            assert stats["feedback_malformed"] == 0
            assert stats["remb_received"] == 0  # with transport-cc, no REMB caps the estimate
            assert stats["send_kbps"] > 0
            assert stats["sent_width"] == 320
            assert len(side.frames) > 30  # video decoded at the other end of each way
            # Probing: padding clusters went out on the RTX stream, the feedback on them
            # read the loopback's room and the estimate jumped (additive/multiplicative
            # growth alone reaches about 450 kbit/s from the 300 kbit/s start in 4 s).
            assert stats["probes_sent"] >= 1 and stats["probe_padding_sent"] >= 5
            assert stats["probe_jumps"] >= 1 and stats["probe_kbps"] is not None
            assert stats["target_kbps"] >= 800
            assert stats["core_errors"] == 0
    finally:
        await end_call(caller, callee)


async def test_stock_offers_what_aiortc_offers_and_a_gcc_peer_falls_back(
    loopback: None,
) -> None:
    caller, callee = await start_call("stock", "gcc")
    try:
        assert caller.call.congestion is None
        offer = sdp_lines(caller.call.pc, "local")
        assert not any("transport-cc" in line or TWCC_URI in line for line in offer)
        answer = sdp_lines(callee.call.pc, "local")
        assert not any("transport-cc" in line or TWCC_URI in line for line in answer)
        shell = callee.call.congestion
        assert shell is not None and shell.extension_id is None
        await asyncio.sleep(2)
        assert len(caller.frames) > 10 and len(callee.frames) > 10
        # Without transport-cc feedback the stock side's REMB sets the target.
        for _ in range(80):
            if shell.snapshot()["remb_received"] > 0:
                break
            await asyncio.sleep(0.1)
        figures = shell.snapshot()
        assert figures["remb_received"] > 0
        assert figures["feedback_received"] == 0
        assert figures["target_kbps"] > 0
    finally:
        await end_call(caller, callee)


# ---- what the encoder is given ----------------------------------------------------------
class CountingSource(MediaStreamTrack):
    """Frames stamped at 30 fps, as fast as they are asked for."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def recv(self) -> VideoFrame:
        frame = VideoFrame(width=640, height=480, format="yuv420p")
        frame.pts = self.count * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self.count += 1
        return frame


async def next_frame(track: MediaStreamTrack) -> VideoFrame:
    frame = await track.recv()
    assert isinstance(frame, VideoFrame)
    return frame


async def test_the_adapted_track_scales_and_thins_to_what_it_is_told() -> None:
    source = CountingSource()
    track = AdaptedVideoTrack(source)
    first = [await next_frame(track) for _ in range(10)]
    assert all((f.width, f.height) == (640, 480) for f in first)
    assert track.source_fps == pytest.approx(30, abs=0.1)
    track.size, track.fps = (320, 240), 15.0
    before = source.count
    later = [await next_frame(track) for _ in range(30)]
    assert all((f.width, f.height) == (320, 240) for f in later)
    assert source.count - before == pytest.approx(60, abs=2)  # every other frame dropped
    gaps = {(b.pts or 0) - (a.pts or 0) for a, b in itertools.pairwise(later[1:])}
    assert gaps == {6000}  # evenly: one frame in two at 90 kHz
    assert (track.sent.width, track.sent.dropped) == (320, source.count - 40)
    track.size, track.fps = None, None
    assert (await next_frame(track)).width == 640


def test_the_encoder_bitrate_follows_with_hysteresis() -> None:
    committed = CommittedBitrate(300_000)
    assert not committed.request(280_000, 0.0)  # within 15 %: no restart, no keyframe
    assert committed.request(150_000, 0.0)  # a squeeze to half: down at once
    assert not committed.request(80_000, 0.2)  # but not again within half a second
    assert committed.request(80_000, 0.6)
    assert not committed.request(200_000, 1.9)  # up only after 2 s
    assert not committed.request(200_000, 2.7)  # and once the rise has lasted 1 s
    assert committed.request(200_000, 2.9)
    assert committed.bps == 160_000  # and at most doubling
    assert committed.restarts == 3


def test_a_peak_of_the_estimate_costs_no_encoder_restart() -> None:
    committed = CommittedBitrate(150_000)
    assert not committed.request(260_000, 10.0)  # one sample up...
    assert not committed.request(160_000, 10.1)  # ...and back: nothing to commit
    assert not any(
        committed.request(bps, 11 + t / 10) for t, bps in enumerate([200_000, 190_000] * 5)
    )
    assert committed.request(200_000, 12.0)  # a rise held for 1 s...
    assert committed.bps == 190_000  # ...committed at its lowest


def test_a_mild_dip_that_recovers_costs_no_encoder_restart() -> None:
    committed = CommittedBitrate(600_000)
    # The estimate dips to 75 % for 0.8 s (a cut after a keyframe burst) and recovers.
    assert not any(committed.request(450_000, t / 10) for t in range(8))
    assert not committed.request(600_000, 0.9)
    assert (committed.bps, committed.restarts) == (600_000, 0)
    # The same dip held for a second is real: committed then.
    assert not any(committed.request(450_000, 2 + t / 10) for t in range(10))
    assert committed.request(450_000, 3.0)
    assert committed.bps == 450_000


async def test_our_keyframe_requests_are_throttled_and_counted() -> None:
    pc = RTCPeerConnection()
    try:
        shell = CongestionShell(pc)
        pli = bytes(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2))
        nack = bytes(RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=[7, 8]))
        assert shell._outgoing_rtcp(pli + nack) == pli + nack
        # A second request right after: held back, the NACK beside it still goes.
        assert shell._outgoing_rtcp(nack + pli) == nack
        assert shell._outgoing_rtcp(pli) == b""
        counters = shell.counters
        assert (counters.plis_sent, counters.plis_suppressed, counters.nacks_sent) == (1, 2, 4)
        remb = bytes(RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=pack_remb_fci(500_000, [2])))
        assert shell._outgoing_rtcp(remb) == remb  # no transport-cc: the peer needs our REMB
        shell.negotiated(3)
        assert shell._outgoing_rtcp(remb) == b""
    finally:
        await pc.close()
