"""Negotiating transport-wide congestion control on one RTCPeerConnection.

aiortc's codec table offers neither the transport-cc header extension nor
``a=rtcp-fb:<pt> transport-cc``, and it drops both from a remote description it
answers. Changing its module-level tables would change every connection in the
process (``--congestion-control stock`` must keep aiortc's own SDP byte for byte), so
this works per connection instead:

- our offer gets the extension and the feedback lines added to its text;
- after any remote description, the transceivers get back what the remote side
  offered or accepted of the two (aiortc kept only what its own table knows), so our
  answer carries them and the senders and receivers use the extension.
"""

from __future__ import annotations

import re
from typing import Final

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpHeaderExtensionParameters
from aiortc.sdp import SessionDescription

from peer.congestion.twcc import TWCC_URI
from peer.stack.rtp_hooks import negotiated_codecs, negotiated_header_extensions

TRANSPORT_CC: Final = "transport-cc"
# Chromium asks for transport-cc feedback on Opus as well as on video.
_FEEDBACK_CODECS: Final = frozenset({"vp8", "vp9", "h264", "av1", "opus"})
_EXTMAP: Final = re.compile(r"^a=extmap:(\d+)(?:/\w+)? (\S+)")
_RTPMAP: Final = re.compile(r"^a=rtpmap:(\d+) ([\w-]+)/")
_MAX_ONE_BYTE_ID: Final = 14


def offer_with_transport_cc(sdp: str) -> str:
    """Our offer's ``sdp`` with the transport-cc extension and feedback in every
    audio and video section (one extension id for the whole bundle)."""
    lines = sdp.split("\r\n")
    used = {int(m.group(1)) for line in lines if (m := _EXTMAP.match(line))}
    if any(m.group(2) == TWCC_URI for line in lines if (m := _EXTMAP.match(line))):
        return sdp
    free = next((i for i in range(1, _MAX_ONE_BYTE_ID + 1) if i not in used), None)
    if free is None:
        return sdp  # no one-byte id left: offer it without transport-cc
    out: list[str] = []
    kind: str | None = None
    for line in lines:
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        out.append(line)
        if kind not in ("audio", "video"):
            continue
        if (rtpmap := _RTPMAP.match(line)) and rtpmap.group(2).lower() in _FEEDBACK_CODECS:
            out.append(f"a=rtcp-fb:{rtpmap.group(1)} {TRANSPORT_CC}")
        elif line.startswith("a=mid:"):
            out.append(f"a=extmap:{free} {TWCC_URI}")
    return "\r\n".join(out)


def adopt_remote_transport_cc(pc: RTCPeerConnection) -> int | None:
    """Give ``pc``'s transceivers what the remote description has of transport-cc;
    returns the extension id now in use, or None when the remote side lacks it."""
    description = pc.remoteDescription
    if description is None:
        return None
    remote = SessionDescription.parse(description.sdp)
    extension_id: int | None = None
    for transceiver in pc.getTransceivers():
        media = next((m for m in remote.media if m.rtp.muxId == transceiver.mid), None)
        if media is None or media.kind not in ("audio", "video"):
            continue
        extension = next((x for x in media.rtp.headerExtensions if x.uri == TWCC_URI), None)
        if extension is None:
            continue
        extension_id = extension.id
        ours = negotiated_header_extensions(transceiver)
        if not any(x.uri == TWCC_URI for x in ours):
            ours.append(RTCRtpHeaderExtensionParameters(id=extension.id, uri=TWCC_URI))
        with_feedback = {
            c.payloadType
            for c in media.rtp.codecs
            if any(f.type == TRANSPORT_CC for f in c.rtcpFeedback)
        }
        for codec in negotiated_codecs(transceiver):  # aiortc deep-copied these from its table
            if codec.payloadType in with_feedback and not any(
                f.type == TRANSPORT_CC for f in codec.rtcpFeedback
            ):
                codec.rtcpFeedback.append(RTCRtcpFeedback(type=TRANSPORT_CC))
    return extension_id
