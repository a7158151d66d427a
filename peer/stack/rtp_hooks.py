"""Where send-side congestion control (peer/congestion/shell.py) reaches into aiortc.

The shell hooks one connection's DTLS transport (every RTP and RTCP packet of the
bundle passes through its ``_send_rtp``, ``_handle_rtp_data`` and
``_handle_rtcp_data``), puts its own encoders (subclasses of aiortc's, in
peer/congestion/encoders.py) in place of the ones aiortc's senders would make, and
reads the codecs, header extensions and SSRCs aiortc negotiated.
:data:`SEAM` checks each of those before a call starts;
``--congestion-control stock`` keeps aiortc's own.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters

from peer.stack.seam import Lines, Seam, Undo, replace

SendRtp = Callable[[bytes], Awaitable[None]]
HandleRtp = Callable[..., Awaitable[None]]
HandleRtcp = Callable[[bytes], Awaitable[None]]
_PRIVATE_SENDER: Final = "_RTCRtpSender__"


def _descriptions_take_header_extensions() -> list[str]:
    try:
        from aiortc.rtcpeerconnection import create_media_description_for_transceiver
    except ImportError:
        return ["create_media_description_for_transceiver is gone"]
    source = inspect.getsource(create_media_description_for_transceiver)
    if "headerExtensions=transceiver._headerExtensions" not in source:
        return ["media descriptions no longer take the transceiver's header extensions"]
    return []


SEAM: Final = Seam(
    "congestion control",
    "run with --congestion-control stock to keep aiortc's own",
    "peer/stack/rtp_hooks.py",
    lines=(
        Lines(
            RTCDtlsTransport,
            "_recv_next",
            {
                "hands RTCP to _handle_rtcp_data": "await self._handle_rtcp_data(data)",
                "hands RTP to _handle_rtp_data": (
                    "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)"
                ),
            },
        ),
        Lines(RTCDtlsTransport, "_send_rtp", {"sends RTP and RTCP alike": "if is_rtcp(data):"}),
        Lines(
            RTCRtpSender,
            "_run_rtp",
            {"sends through the transport": "await self.transport._send_rtp("},
        ),
        Lines(
            RTCRtpSender,
            "_retransmit",
            {
                "resends through the transport": "await self.transport._send_rtp(",
                "resends on the RTX SSRC": "ssrc=self._rtx_ssrc",
            },
        ),
        Lines(
            RTCRtpSender,
            "_next_encoded_frame",
            {"makes its encoder lazily": "if self.__encoder is None:"},
        ),
        Lines(
            RTCRtpSender,
            "__init__",
            {
                "keeps its SSRC": "self._ssrc = ",
                "keeps its RTX SSRC": "self._rtx_ssrc = ",
                "keeps its encoder": "self.__encoder: Optional[Encoder] = None",
            },
        ),
        Lines(
            H264Encoder,
            "_encode_frame",
            {
                "keeps a codec whose bitrate is within 10 %": (
                    "abs(self.target_bitrate - self.codec.bit_rate) / self.codec.bit_rate"
                ),
                "opens libx264 only when it has none": "if self.codec is None:",
            },
        ),
        # What the encoders of peer/congestion/encoders.py (subclasses of aiortc's) use.
        Lines(
            H264Encoder,
            "__init__",
            {
                "keeps its codec": "self.codec: Optional[VideoCodecContext] = None",
                "buffers NAL units": 'self.buffer_data = b""',
                "keeps the buffer's pts": "self.buffer_pts: Optional[int] = None",
            },
        ),
        Lines(
            Vp8Encoder,
            "__init__",
            {
                "keeps its codec": "self.codec: Optional[VideoCodecContext] = None",
                "numbers pictures": "self.picture_id = ",
            },
        ),
        Lines(Vp8Encoder, "encode", {"packetizes": "self._packetize("}),
        Lines(
            OpusEncoder,
            "encode",
            {
                "encodes with self.codec": "self.codec.encode(frame)",
                "counts time from its first packet": "packets[0].pts - self.first_packet_pts",
            },
        ),
        Lines(
            RTCPeerConnection,
            "setRemoteDescription",
            {
                "keeps the common header extensions on the transceiver": (
                    "transceiver._headerExtensions = find_common_header_extensions("
                ),
                "keeps the common codecs on the transceiver": "transceiver._codecs = common",
            },
        ),
        Lines(
            RTCPeerConnection,
            "createAnswer",
            {"answers from the transceivers": "create_media_description_for_transceiver("},
        ),
    ),
    extra=(_descriptions_take_header_extensions,),
)


# ---- reads --------------------------------------------------------------------------------
def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs both sides agreed on, the sending one first (aiortc's own copies: a
    change to them goes into the next description aiortc writes)."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    return codecs


def negotiated_header_extensions(
    transceiver: RTCRtpTransceiver,
) -> list[RTCRtpHeaderExtensionParameters]:
    """The header extensions both sides agreed on (aiortc's own list, as above)."""
    extensions: list[RTCRtpHeaderExtensionParameters] = transceiver._headerExtensions
    return extensions


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The sender's media SSRC and its RTX SSRC."""
    return int(sender._ssrc), int(sender._rtx_ssrc)


def sender_encoder(sender: RTCRtpSender) -> Any:
    """The encoder the sender encodes with, None until its first frame."""
    return getattr(sender, _PRIVATE_SENDER + "encoder", None)


# ---- patches ------------------------------------------------------------------------------
def set_sender_encoder(sender: RTCRtpSender, encoder: object, undo: Undo) -> None:
    """Make ``sender`` encode with ``encoder`` instead of making its own."""
    replace(sender, _PRIVATE_SENDER + "encoder", encoder, undo)


def hook_transport(
    transport: RTCDtlsTransport,
    sending: Callable[[SendRtp], SendRtp],
    receiving_rtp: Callable[[HandleRtp], HandleRtp],
    receiving_rtcp: Callable[[HandleRtcp], HandleRtcp],
    undo: Undo,
) -> SendRtp:
    """Route ``transport``'s outgoing packets and incoming RTP and RTCP through the
    wrappers each factory makes around aiortc's own; returns aiortc's own sender."""
    send_rtp: SendRtp = transport._send_rtp
    replace(transport, "_send_rtp", sending(send_rtp), undo)
    replace(transport, "_handle_rtp_data", receiving_rtp(transport._handle_rtp_data), undo)
    replace(transport, "_handle_rtcp_data", receiving_rtcp(transport._handle_rtcp_data), undo)
    return send_rtp
