"""What the call page's RTCPeerConnection says about its call, a second at a time.

:data:`PAGE_STATS_JS` reads ``window.webcamPeer.pc.getStats()`` (and the negotiated
header extensions) into one flat object; :func:`per_second` turns two of them into
the figures the shaped-link lab prints for a Python peer: received fps, decoded
resolution, sending bitrate, freezes. Chromium cannot read the synthetic video's
capture stamps, so its latency is an estimate from its own counters
(:func:`latency_estimate_ms`), not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

TWCC_URI: Final = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

PAGE_STATS_JS: Final = """
async (twccUri) => {
  const peer = window.webcamPeer;
  const pc = peer ? peer.pc : null;
  if (!pc) return null;
  const report = await pc.getStats();
  const byId = new Map();
  report.forEach((r) => byId.set(r.id, r));
  const out = { at_ms: performance.now(), state: pc.connectionState, inbound: null,
                outbound: null, pair: null, bytes_sent: 0, bytes_received: 0 };
  let pairId = null;
  report.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      out.inbound = {
        frames_decoded: r.framesDecoded || 0, width: r.frameWidth || 0,
        height: r.frameHeight || 0, freeze_count: r.freezeCount || 0,
        freezes_s: r.totalFreezesDuration || 0,
        jitter_buffer_s: r.jitterBufferDelay || 0,
        jitter_buffer_frames: r.jitterBufferEmittedCount || 0,
        processing_s: r.totalProcessingDelay || 0,
        packets_lost: r.packetsLost || 0, nacks_sent: r.nackCount || 0,
        plis_sent: r.pliCount || 0,
      };
    } else if (r.type === 'outbound-rtp' && r.kind === 'video') {
      out.outbound = {
        width: r.frameWidth || 0, height: r.frameHeight || 0,
        frames_encoded: r.framesEncoded || 0, encode_s: r.totalEncodeTime || 0,
        packets_sent: r.packetsSent || 0, pacer_s: r.totalPacketSendDelay || 0,
        retransmitted_bytes: r.retransmittedBytesSent || 0,
        limitation: r.qualityLimitationReason || null,
        target_bps: r.targetBitrate || null,
      };
    } else if (r.type === 'transport') {
      out.bytes_sent += r.bytesSent || 0;
      out.bytes_received += r.bytesReceived || 0;
      pairId = r.selectedCandidatePairId || pairId;
    }
  });
  const pair = pairId ? byId.get(pairId) : null;
  if (pair) {
    const local = byId.get(pair.localCandidateId) || {};
    const remote = byId.get(pair.remoteCandidateId) || {};
    out.pair = {
      rtt_s: pair.currentRoundTripTime ?? null,
      available_outgoing_bps: pair.availableOutgoingBitrate ?? null,
      local: `${local.address}:${local.port}`, remote: `${remote.address}:${remote.port}`,
      protocol: local.protocol || null, local_type: local.candidateType || null,
    };
  }
  const has = (params) => params.headerExtensions.some((e) => e.uri === twccUri);
  const video = (t) => t.track && t.track.kind === 'video';
  const sdp = (d) => (d ? d.sdp : '');
  out.twcc = {
    send_extension: pc.getSenders().filter(video).some((s) => has(s.getParameters())),
    receive_extension: pc.getReceivers().filter(video).some((r) => has(r.getParameters())),
    local_feedback: /a=rtcp-fb:\\S+ transport-cc/.test(sdp(pc.currentLocalDescription)),
    remote_feedback: /a=rtcp-fb:\\S+ transport-cc/.test(sdp(pc.currentRemoteDescription)),
  };
  return out;
}
"""


@dataclass(frozen=True)
class PageSecond:
    """One interval of a page's call, from two samples of :data:`PAGE_STATS_JS`."""

    fps: float | None
    width: int
    height: int
    send_kbps: float
    freezes: int  # Chromium's own freezeCount, new in this interval
    frozen_ms: float
    rtt_ms: float | None
    available_outgoing_kbps: float | None
    processing_ms: float | None  # first packet received -> decoded, per frame
    pacer_ms: float | None  # per packet, in the sender's pacer
    encode_ms: float | None


def _delta(new: dict[str, Any] | None, old: dict[str, Any] | None, key: str) -> float:
    if not new:
        return 0.0
    return float(new.get(key) or 0) - float((old or {}).get(key) or 0)


def _ratio(numerator: float, denominator: float, scale: float = 1000.0) -> float | None:
    return numerator / denominator * scale if denominator > 0 else None


def per_second(new: dict[str, Any], old: dict[str, Any]) -> PageSecond:
    seconds = max((float(new["at_ms"]) - float(old["at_ms"])) / 1000, 1e-3)
    inbound, old_in = new.get("inbound"), old.get("inbound")
    outbound, old_out = new.get("outbound"), old.get("outbound")
    pair = new.get("pair") or {}
    decoded = _delta(inbound, old_in, "frames_decoded")
    rtt = pair.get("rtt_s")
    available = pair.get("available_outgoing_bps")
    return PageSecond(
        fps=decoded / seconds if inbound else None,
        width=int((inbound or {}).get("width") or 0),
        height=int((inbound or {}).get("height") or 0),
        send_kbps=(float(new["bytes_sent"]) - float(old["bytes_sent"])) * 8 / seconds / 1000,
        freezes=int(_delta(inbound, old_in, "freeze_count")),
        frozen_ms=_delta(inbound, old_in, "freezes_s") * 1000,
        rtt_ms=None if rtt is None else float(rtt) * 1000,
        available_outgoing_kbps=None if available is None else float(available) / 1000,
        processing_ms=_ratio(_delta(inbound, old_in, "processing_s"), decoded),
        pacer_ms=_ratio(
            _delta(outbound, old_out, "pacer_s"), _delta(outbound, old_out, "packets_sent")
        ),
        encode_ms=_ratio(
            _delta(outbound, old_out, "encode_s"), _delta(outbound, old_out, "frames_encoded")
        ),
    )


def latency_estimate_ms(sender: PageSecond, receiver: PageSecond) -> float | None:
    """Capture-to-decoded as well as Chromium's counters allow, per frame on average:
    the sender's encode time and pacer delay, half the round trip (which carries both
    directions' queues), and the receiver's first-packet-to-decoded time. Capture and
    whatever the counters leave out are not in it, so it errs low."""
    if receiver.processing_ms is None or receiver.rtt_ms is None:
        return None
    return (
        (sender.encode_ms or 0.0)
        + (sender.pacer_ms or 0.0)
        + receiver.rtt_ms / 2
        + receiver.processing_ms
    )
