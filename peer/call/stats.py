"""The numbers a call reports: bitrate and RTT from getStats(), plus the receive meter."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiortc import RTCPeerConnection

if TYPE_CHECKING:
    from peer.congestion.shell import CongestionShell


@dataclass
class TransportSample:
    """Bytes received so far and the latest RTT, for bitrate over an interval."""

    at: float = field(default_factory=time.monotonic)
    bytes_received: int = 0
    bytes_sent: int = 0


@dataclass
class TransportStats:
    bitrate_in_kbps: float | None = None
    bitrate_out_kbps: float | None = None
    rtt_ms: float | None = None
    _last: TransportSample | None = None

    async def update(self, pc: RTCPeerConnection) -> None:
        report = await pc.getStats()
        received = sent = 0
        rtts: list[float] = []
        for stats in report.values():
            kind = getattr(stats, "type", None)
            if kind == "transport":
                # aiortc counts bytes per transport only (its inbound-rtp has none).
                received += int(getattr(stats, "bytesReceived", 0) or 0)
                sent += int(getattr(stats, "bytesSent", 0) or 0)
            elif kind == "remote-inbound-rtp":
                rtt = getattr(stats, "roundTripTime", None)
                if rtt is not None:
                    rtts.append(float(rtt))
        sample = TransportSample(bytes_received=received, bytes_sent=sent)
        if self._last is not None and sample.at > self._last.at:
            elapsed = sample.at - self._last.at
            self.bitrate_in_kbps = (received - self._last.bytes_received) * 8 / elapsed / 1000
            self.bitrate_out_kbps = (sent - self._last.bytes_sent) * 8 / elapsed / 1000
        if rtts:
            self.rtt_ms = min(rtts) * 1000
        self._last = sample

    def as_dict(self) -> dict[str, Any]:
        return {
            "bitrate_in_kbps": _round(self.bitrate_in_kbps),
            "bitrate_out_kbps": _round(self.bitrate_out_kbps),
            "rtt_ms": _round(self.rtt_ms),
        }


async def received_bytes(pc: RTCPeerConnection) -> int:
    """All a connection has received (media, RTCP, data channels; not ICE checks)."""
    report = await pc.getStats()
    return sum(
        int(getattr(stats, "bytesReceived", 0) or 0)
        for stats in report.values()
        if getattr(stats, "type", None) == "transport"
    )


def congestion_stats(shell: CongestionShell | None) -> dict[str, Any]:
    """The stats line's ``congestion`` object: the estimate and what the sender does with it."""
    if shell is None:
        return {"mode": "stock"}
    return shell.snapshot()


def congestion_overlay(shell: CongestionShell | None) -> str | None:
    """The window's line about sending: the estimate and the sent resolution."""
    if shell is None:
        return None
    figures = shell.snapshot()
    line = f"sending: estimate {figures.get('target_kbps') or 0:.0f} kbit/s"
    if figures.get("sent_width"):
        line += f", {figures['sent_width']}x{figures['sent_height']}"
        line += f" at {figures.get('sent_fps') or 0:.0f} fps"
    return line


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def negotiated_video_codec(pc: RTCPeerConnection) -> str | None:
    """The video codec the call's answer settled on ("vp8", "h264"), None before there is one.

    The first payload type of the answer's video section is the one both sides send."""
    answer = next(
        (
            description
            for description in (pc.localDescription, pc.remoteDescription)
            if description is not None and description.type == "answer"
        ),
        None,
    )
    return None if answer is None else first_video_codec(answer.sdp)


def first_video_codec(sdp: str) -> str | None:
    """The codec name of the first payload type in the SDP's first video section."""
    payload_type: str | None = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            if payload_type is not None:
                return None  # the video section named no codec
            fields = line[2:].split()
            if fields[0] == "video" and len(fields) > 3 and fields[1] != "0":
                payload_type = fields[3]
        elif payload_type is not None and line.startswith(f"a=rtpmap:{payload_type} "):
            return line.split(" ", 1)[1].split("/", 1)[0].lower()
    return None
