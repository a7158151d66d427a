"""The stats line's ``codec``: the answer's first video payload type, from real SDP."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCRtpSender

from media.sources.synthetic import SyntheticVideoTrack
from peer.call.stats import first_video_codec, negotiated_video_codec

AUDIO_THEN_VIDEO = """v=0
o=- 1 1 IN IP4 0.0.0.0
s=-
t=0 0
m=audio 9 UDP/TLS/RTP/SAVPF 111
a=rtpmap:111 opus/48000/2
m=video 9 UDP/TLS/RTP/SAVPF 102 97 96
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=rtpmap:102 H264/90000
"""


def test_first_video_payload_type_names_the_codec() -> None:
    assert first_video_codec(AUDIO_THEN_VIDEO) == "h264"
    assert first_video_codec(AUDIO_THEN_VIDEO.replace("102 97 96", "96 97 102")) == "vp8"


def test_no_video_or_a_rejected_video_section_names_none() -> None:
    assert first_video_codec(AUDIO_THEN_VIDEO.split("m=video")[0]) is None
    assert first_video_codec(AUDIO_THEN_VIDEO.replace("m=video 9", "m=video 0")) is None


@pytest.mark.parametrize("wanted", ["vp8", "h264"])
async def test_two_aiortc_peers_report_the_codec_they_agreed(wanted: str) -> None:
    caller, callee = RTCPeerConnection(), RTCPeerConnection()
    try:
        transceiver = caller.addTransceiver(SyntheticVideoTrack(), direction="sendrecv")
        codecs = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences(
            [c for c in codecs if c.mimeType.lower() == f"video/{wanted}"]
            + [c for c in codecs if c.mimeType.lower() != f"video/{wanted}"]
        )
        assert negotiated_video_codec(caller) is None  # nothing agreed yet
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        callee.addTrack(SyntheticVideoTrack())
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        assert negotiated_video_codec(caller) == wanted
        assert negotiated_video_codec(callee) == wanted
    finally:
        await caller.close()
        await callee.close()
