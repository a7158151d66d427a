"""Send-side congestion control on one RTCPeerConnection: the aiortc shell around the
pure core of ``peer/congestion/``.

Everything goes through the connection's DTLS transport, where every RTP and RTCP
packet of the bundle passes as bytes:

- leaving (``_send_rtp``): audio and RTCP go at once; video and retransmissions
  (RTX, or an old sequence number resent) wait in the pacer's queue, which lets
  them out at ``PACING_FACTOR`` x the target, retransmissions first. Each RTP packet
  gets its transport-wide sequence number as it really leaves, and its size and time
  go to the estimator. Outgoing keyframe requests pass the throttle or are dropped.
- arriving (``_handle_rtp_data``): the arrival time of each packet carrying the
  transport-cc extension is recorded; a task sends the feedback every
  ``FEEDBACK_INTERVAL_S``.
- arriving RTCP (``_handle_rtcp_data``): transport-cc feedback and REMB feed the
  estimator; NACKs and PLIs are counted; the rest goes on to aiortc.

A control task applies the estimate every ``CONTROL_INTERVAL_S``: the audio/video split,
the video encoder's bitrate, the resolution and frame rate of the adapted video track,
the pacing rate. The hooks are aiortc internals: ``peer/stack/rtp_hooks.py`` makes them
and checks them (:func:`check_aiortc`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpSender
from aiortc.rtp import is_rtcp, unpack_remb_fci

from peer.congestion.adaptation import VideoAdaptation, split_bitrate
from peer.congestion.alr import AlrDetector
from peer.congestion.encoders import (
    ControlledH264Encoder,
    ControlledOpusEncoder,
    ControlledVp8Encoder,
)
from peer.congestion.estimator import SendSideEstimator
from peer.congestion.keyframes import KeyframeRequestThrottle
from peer.congestion.pacer import PacingBudget, retransmission_fits
from peer.congestion.packets import (
    is_keyframe_request,
    is_nack,
    is_remb,
    is_transport_feedback,
    nack_count,
    padding_packet,
    read_transport_sequence,
    rtp_header,
    split_compound,
    stamp_transport_sequence,
    with_sequence,
)
from peer.congestion.probing import ProbeCluster, ProbePlanner
from peer.congestion.protection import RetransmissionRate, protection_bps
from peer.congestion.track import AdaptedVideoTrack
from peer.congestion.twcc import FeedbackRecorder, parse_feedback
from peer.stack.nack_requests import NackScheduler
from peer.stack.receive_path import FrameCompletionBuffer, stall_limit_for
from peer.stack.rtp_hooks import (
    SEAM,
    HandleRtcp,
    HandleRtp,
    SendRtp,
    hook_transport,
    negotiated_codecs,
    sender_encoder,
    sender_ssrcs,
    set_sender_encoder,
)
from peer.stack.seam import Undo

logger = logging.getLogger(__name__)

CONGESTION_MODES: Final = ("gcc", "stock")
START_BPS: Final = 300_000  # where Chromium starts too
MIN_BPS: Final = 50_000
# About libwebrtc's 1.7 Mbit/s video ceiling at 640x480 plus audio and headers: a
# 2 Mbit/s link (the lab's ``step``) can be used to over 80 %. On loopback the latency
# follows the bitrate, not the controller: capped at stock aiortc's ~0.88 Mbit/s ours
# had stock's p50 (8.2-9.3 against 8.6-9.9 ms); at 1.5 Mbit/s 10.3 ms, at 2 Mbit/s
# 11.1 ms (means of 4 calls each, interleaved in two runs; per-call spread ~1 ms):
# more packets per frame, each crossing both Python event loops (docs/network.md).
DEFAULT_MAX_BPS: Final = 2_000_000
PACING_FACTOR: Final = 2.5
# A whole frame (1 / (2.5 x fps) of a second's budget: 13 ms at 30 fps) may leave at
# once when nothing waits, so a link with room adds no latency; keyframes and
# back-to-back frames are still spread out.
PACING_BURST_MS: Final = 40.0
FEEDBACK_INTERVAL_S: Final = 0.05
CONTROL_INTERVAL_S: Final = 0.1
RTT_EVERY: Final = 10  # control rounds between RTT reads
MAX_RETRANSMISSIONS_QUEUED: Final = 256
RATE_WINDOW_S: Final = 1.0
SEQUENCE_HALF: Final = 1 << 15
PROBE_TICK_S: Final = 0.02  # how often the planner is asked, and a cluster's pacing step
PROBE_MAX_STRETCH: Final = 4.0  # a cluster that cannot keep its rate stops at 4 x its length

VideoEncoder = ControlledVp8Encoder | ControlledH264Encoder


def _now_ms() -> float:
    return time.monotonic() * 1000.0


@dataclass
class CongestionCounters:
    nacks_sent: int = 0  # packets asked for again
    nacks_received: int = 0
    plis_sent: int = 0
    plis_received: int = 0
    plis_suppressed: int = 0  # our keyframe requests the throttle held back
    retransmissions_sent: int = 0
    retransmissions_dropped: int = 0
    feedback_sent: int = 0
    feedback_received: int = 0
    feedback_malformed: int = 0
    remb_received: int = 0
    probes_sent: int = 0  # probe clusters
    probe_padding_sent: int = 0  # padding packets sent in them
    core_errors: int = 0  # exceptions from the estimator or adaptation, caught


@dataclass
class _Queued:
    data: bytes
    send: SendRtp
    left: asyncio.Future[None] | None  # the sender loop waits on it (back-pressure)


@dataclass
class _RateMeter:
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, amount: int) -> None:
        self.samples.append((now, amount))
        while self.samples and self.samples[0][0] < now - RATE_WINDOW_S:
            self.samples.popleft()

    def per_second(self, now: float) -> float:
        while self.samples and self.samples[0][0] < now - RATE_WINDOW_S:
            self.samples.popleft()
        return sum(amount for _, amount in self.samples) / RATE_WINDOW_S


class CongestionShell:
    """Send-side congestion control of one RTCPeerConnection (``--congestion-control gcc``)."""

    def __init__(
        self, pc: RTCPeerConnection, *, max_bps: int = DEFAULT_MAX_BPS, start_bps: int = START_BPS
    ) -> None:
        self._pc = pc
        self._max_bps = max_bps
        self.estimator = SendSideEstimator(
            start_bps=min(start_bps, max_bps), min_bps=MIN_BPS, max_bps=max_bps
        )
        self.budget = PacingBudget(int(start_bps * PACING_FACTOR), burst_ms=PACING_BURST_MS)
        self.keyframes = KeyframeRequestThrottle()
        self.counters = CongestionCounters()
        self.extension_id: int | None = None
        self._recorder: FeedbackRecorder | None = None
        self._feedback_send: SendRtp | None = None
        self._wrapped: set[int] = set()
        self.undo = Undo()  # puts back what attach() changed in aiortc (tests use it)
        self._raw_send: dict[int, SendRtp] = {}  # per transport: its own _send_rtp
        self._kinds: dict[int, str] = {}  # our SSRCs: "audio", "video" or "rtx"
        self._highest: dict[int, int] = {}  # newest RTP sequence number sent per SSRC
        self._retransmissions: deque[_Queued] = deque()
        self._video: deque[_Queued] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._transport_sequence = 0
        self._video_encoders: list[VideoEncoder] = []
        self._audio_encoders: list[ControlledOpusEncoder] = []
        self._tracks: list[AdaptedVideoTrack] = []
        self._adaptation: VideoAdaptation | None = None
        self._encoder_fps: float = 30.0
        self.rtt_ms: float | None = None
        self._remb_bps: int | None = None
        self._sent = _RateMeter()
        self._retransmitted = _RateMeter()  # retransmissions let through
        self._least_rtt_ms: float | None = None
        self._retransmission_rate = RetransmissionRate()
        self._protection_bps = 0
        self.prober = ProbePlanner(start_bps=min(start_bps, max_bps), max_bps=max_bps)
        self.alr = AlrDetector(self.estimator.target_bps)
        self._cluster: ProbeCluster | None = None
        self._cluster_bytes = 0
        self._cluster_packets = 0
        self._decreases_seen = 0
        self._outgrown_seen = 0
        # Probes are padding on the video's RTX stream: aiortc numbers the RTX packets it
        # sends, so the shell renumbers them all as they leave to share one sequence.
        self._rtx_payload_types: dict[int, int] = {}  # RTX SSRC -> RTX payload type
        self._rtx_sequence: dict[int, int] = {}
        self._rtx_send: SendRtp | None = None
        self._timestamps: dict[int, int] = {}  # newest RTP timestamp sent per video SSRC
        # Our receive paths: how long they wait for a retransmission follows the RTT,
        # and so do how often and how long the NACK schedulers ask for one.
        self.receive_buffers: list[FrameCompletionBuffer] = []
        self.nack_schedulers: list[NackScheduler] = []

    # ---- set-up ------------------------------------------------------------------------
    def negotiated(self, extension_id: int | None) -> None:
        """The transport-cc extension id both sides agreed on (None: not negotiated)."""
        if extension_id is not None:
            self.extension_id = extension_id

    def attach(self) -> None:
        """Hook into ``pc``'s transports, senders and tracks once both descriptions are
        set (idempotent: a renegotiation may add transceivers)."""
        for transceiver in self._pc.getTransceivers():
            sender = transceiver.sender
            self._wrap(sender.transport)
            ssrc, rtx_ssrc = sender_ssrcs(sender)
            codecs = negotiated_codecs(transceiver)
            self._kinds[ssrc] = transceiver.kind
            if transceiver.kind == "video":
                self._kinds[rtx_ssrc] = "rtx"
                rtx_type = _rtx_payload_type(codecs)
                if rtx_type is not None:
                    self._rtx_payload_types[rtx_ssrc] = rtx_type
                    self._rtx_sequence.setdefault(rtx_ssrc, random.randrange(1 << 16))
                    self._rtx_send = self._raw_send.get(id(sender.transport))
            track = sender.track
            if isinstance(track, AdaptedVideoTrack) and track not in self._tracks:
                self._tracks.append(track)
            if track is not None and codecs:
                self._install_encoder(sender, codecs[0].mimeType.lower())
        if self._recorder is None:
            senders = [t.sender for t in self._pc.getTransceivers()]
            if senders:
                self._recorder = FeedbackRecorder(sender_ssrc=sender_ssrcs(senders[0])[0])
        if not self._tasks and not self._closed:
            self._tasks = [
                asyncio.create_task(self._pace(), name="cc-pacer"),
                asyncio.create_task(self._send_feedback(), name="cc-feedback"),
                asyncio.create_task(self._control(), name="cc-control"),
                asyncio.create_task(self._probe(), name="cc-probe"),
            ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # a failed task must not stop the call's clean-up
                logger.warning("congestion control task ended: %s", exc)
        self._tasks = []
        self._closed = True
        self._release_waiting()

    def _install_encoder(self, sender: RTCRtpSender, mime: str) -> None:
        if sender_encoder(sender) is not None:
            return  # already encoding (a renegotiation): keep it
        audio_bps, video_bps = split_bitrate(self.target_bps, True)
        encoder: VideoEncoder | ControlledOpusEncoder
        if mime == "video/vp8":
            encoder = ControlledVp8Encoder(video_bps)
            self._video_encoders.append(encoder)
        elif mime == "video/h264":
            encoder = ControlledH264Encoder(video_bps)
            self._video_encoders.append(encoder)
        elif mime == "audio/opus":
            encoder = ControlledOpusEncoder(audio_bps)
            self._audio_encoders.append(encoder)
        else:
            return
        set_sender_encoder(sender, encoder, self.undo)

    def _wrap(self, transport: RTCDtlsTransport) -> None:
        if id(transport) in self._wrapped:
            return
        self._wrapped.add(id(transport))
        send_rtp = hook_transport(
            transport, self._sending, self._receiving_rtp, self._receiving_rtcp, self.undo
        )
        if self._feedback_send is None:
            self._feedback_send = send_rtp
        self._raw_send[id(transport)] = send_rtp

    def _sending(self, send_rtp: SendRtp) -> SendRtp:
        async def sending(data: bytes) -> None:
            await self._leaving(send_rtp, data)

        return sending

    def _receiving_rtp(self, handle_rtp: HandleRtp) -> HandleRtp:
        async def receiving_rtp(data: bytes, arrival_time_ms: int) -> None:
            self._record_arrival(data)
            await handle_rtp(data, arrival_time_ms=arrival_time_ms)

        return receiving_rtp

    def _receiving_rtcp(self, handle_rtcp: HandleRtcp) -> HandleRtcp:
        async def receiving_rtcp(data: bytes) -> None:
            rest = self._arriving_rtcp(data)
            if rest:
                await handle_rtcp(rest)

        return receiving_rtcp

    # ---- leaving -----------------------------------------------------------------------
    async def _leaving(self, send: SendRtp, data: bytes) -> None:
        if self._closed:
            await send(data)
            return
        if is_rtcp(data):
            data = self._outgoing_rtcp(data)
            if data:
                await send(data)
            return
        try:
            header = rtp_header(data)
        except ValueError:
            await send(data)
            return
        kind = self._kinds.get(header.ssrc)
        if kind is None or kind == "audio":
            await self._emit(send, data)
            return
        if kind == "rtx" and header.ssrc in self._rtx_sequence:
            data = with_sequence(data, self._next_rtx_sequence(header.ssrc))
        elif kind == "video" and len(data) >= 8:
            self._timestamps[header.ssrc] = struct.unpack_from("!L", data, 4)[0]
        resent = kind == "rtx" or self._resent(header.ssrc, header.sequence)
        if resent:
            self._retransmission_rate.add(_now_ms(), len(data))
            clock = time.monotonic()
            if not retransmission_fits(
                self._sent.per_second(clock),
                self._retransmitted.per_second(clock),
                len(data),
                self.target_bps,
                self.queue_delay_ms,
            ):
                self.counters.retransmissions_dropped += 1
                return
            self._retransmitted.add(clock, len(data))
            self.counters.retransmissions_sent += 1
        if not self._video and not self._retransmissions:
            # Nothing waits and the budget has room: no detour through the pacer task.
            now = _now_ms()
            if self.budget.delay_until_send(len(data), now) <= 0:
                self.budget.on_sent(len(data), now)
                await self._emit(send, data, probe=True)
                return
        if resent:
            if len(self._retransmissions) >= MAX_RETRANSMISSIONS_QUEUED:
                self._retransmissions.popleft()
                self.counters.retransmissions_dropped += 1
            # Not awaited: aiortc resends from its RTCP receive loop, which must not stall.
            self._retransmissions.append(_Queued(data, send, None))
            self._wake.set()
            return
        left: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._video.append(_Queued(data, send, left))
        self._wake.set()
        await left

    def _resent(self, ssrc: int, sequence: int) -> bool:
        """Whether ``sequence`` went out on ``ssrc`` before (aiortc resends without RTX)."""
        highest = self._highest.get(ssrc)
        if highest is not None and (highest - sequence) % (1 << 16) < SEQUENCE_HALF:
            return True
        self._highest[ssrc] = sequence
        return False

    async def _emit(self, send: SendRtp, data: bytes, *, probe: bool = False) -> None:
        """Send one RTP packet now, stamped with the next transport-wide sequence number;
        ``probe``: video that counts in a probe cluster if one is running."""
        now = _now_ms()
        if self.extension_id is not None:
            sequence = self._transport_sequence
            self._transport_sequence = (sequence + 1) & 0xFFFF
            data = stamp_transport_sequence(data, self.extension_id, sequence)
            cluster = self._cluster if probe else None
            if cluster is not None:
                self._cluster_bytes += len(data)
                self._cluster_packets += 1
            try:
                self.estimator.on_packet_sent(sequence, len(data), now, cluster)
                self.alr.on_sent(len(data), now)
            except Exception as exc:  # the packet goes anyway
                self._core_failed(exc)
        self._sent.add(now / 1000, len(data))
        await send(data)

    def _outgoing_rtcp(self, data: bytes) -> bytes:
        try:
            packets = split_compound(data)
        except ValueError:
            return data
        kept = []
        for packet in packets:
            if is_keyframe_request(packet):
                if not self.keyframes.allow(_now_ms(), self.rtt_ms):
                    self.counters.plis_suppressed += 1
                    continue
                self.counters.plis_sent += 1
            elif is_nack(packet):
                self.counters.nacks_sent += nack_count(packet)
            elif is_remb(packet) and self.extension_id is not None:
                # aiortc's receiver estimate; with transport-cc the sender estimates
                # for itself, and a REMB would only cap it (Chromium sends none then).
                continue
            kept.append(packet.data)
        return b"".join(kept)

    async def _pace(self) -> None:
        while True:
            if not self._retransmissions and not self._video:
                self._wake.clear()
                await self._wake.wait()
                continue
            queue = self._retransmissions if self._retransmissions else self._video
            item = queue[0]
            now = _now_ms()
            delay = self.budget.delay_until_send(len(item.data), now)
            if delay > 0:
                await asyncio.sleep(delay / 1000)
                continue  # a retransmission may have come in meanwhile
            queue.popleft()
            self.budget.on_sent(len(item.data), now)
            try:
                await self._emit(item.send, item.data, probe=True)
            except ConnectionError:
                pass
            finally:
                if item.left is not None and not item.left.done():
                    item.left.set_result(None)

    def _release_waiting(self) -> None:
        for item in (*self._retransmissions, *self._video):
            if item.left is not None and not item.left.done():
                item.left.set_exception(ConnectionError("the call ended"))
        self._retransmissions.clear()
        self._video.clear()

    def _next_rtx_sequence(self, ssrc: int) -> int:
        sequence = self._rtx_sequence[ssrc]
        self._rtx_sequence[ssrc] = (sequence + 1) & 0xFFFF
        return sequence

    # ---- probing -----------------------------------------------------------------------
    async def _probe(self) -> None:
        while True:
            await asyncio.sleep(PROBE_TICK_S)
            try:
                cluster = self._plan_probe(_now_ms())
            except Exception as exc:
                self._core_failed(exc)
                continue
            if cluster is not None:
                try:
                    await self._send_cluster(cluster)
                except ConnectionError:
                    pass
                finally:
                    self._cluster = None

    def _plan_probe(self, now: float) -> ProbeCluster | None:
        """Tell the planner what the estimator saw; the cluster to send now, if any."""
        estimator = self.estimator
        if estimator.decreases != self._decreases_seen:
            self._decreases_seen = estimator.decreases
            self.prober.on_decrease(now)
        if estimator.capacity_outgrown != self._outgrown_seen:
            self._outgrown_seen = estimator.capacity_outgrown
            self.prober.on_link_faster(now)
        result = estimator.take_probe_result()
        if result is not None:
            self.prober.on_result(result[0], result[1], result[2], now)
        self.prober.on_estimate(estimator.target_bps, now)
        self.alr.set_estimate(estimator.target_bps)
        self.prober.on_alr(self.alr.started_ms, self.alr.ended_ms)
        if (
            self.extension_id is None
            or self._rtx_send is None
            or not self._timestamps  # no video has left yet
            or not estimator.feedbacks  # the other side does not report (yet)
        ):
            return None
        return self.prober.next_cluster(now)

    async def _send_cluster(self, cluster: ProbeCluster) -> None:
        """Padding on the RTX stream at the cluster's rate; the video that leaves meanwhile
        counts in the cluster too (so the probe measures what the link carries in all)."""
        assert self._rtx_send is not None
        self.counters.probes_sent += 1
        self._cluster, self._cluster_bytes, self._cluster_packets = cluster, 0, 0
        rtx_ssrc = next(iter(self._rtx_payload_types))
        payload_type = self._rtx_payload_types[rtx_ssrc]
        timestamp = next(iter(self._timestamps.values()))
        start = _now_ms()
        while True:
            elapsed = _now_ms() - start
            if (
                elapsed >= cluster.duration_ms
                and self._cluster_bytes >= cluster.min_bytes
                and self._cluster_packets >= cluster.min_packets
            ) or elapsed >= PROBE_MAX_STRETCH * cluster.duration_ms:
                return
            due = cluster.bitrate_bps * (elapsed + PROBE_TICK_S * 250) / 8000
            while self._cluster_bytes < due or (
                elapsed >= cluster.duration_ms and self._cluster_packets < cluster.min_packets
            ):
                packet = padding_packet(
                    payload_type=payload_type,
                    sequence=self._next_rtx_sequence(rtx_ssrc),
                    timestamp=timestamp,
                    ssrc=rtx_ssrc,
                )
                self.counters.probe_padding_sent += 1
                await self._emit(self._rtx_send, packet, probe=True)
            await asyncio.sleep(PROBE_TICK_S / 4)

    # ---- arriving ----------------------------------------------------------------------
    def _record_arrival(self, data: bytes) -> None:
        if self.extension_id is None or self._recorder is None:
            return
        try:
            sequence = read_transport_sequence(data, self.extension_id)
            if sequence is not None:
                ssrc = rtp_header(data).ssrc
                self._recorder.on_packet(ssrc, sequence, time.monotonic_ns() // 1000)
        except ValueError:
            pass  # aiortc's own parser drops it and says so
        except Exception as exc:  # never into aiortc's receive loop
            self._core_failed(exc)

    def _arriving_rtcp(self, data: bytes) -> bytes:
        try:
            packets = split_compound(data)
        except ValueError:
            return data  # aiortc's parser reports it
        now = _now_ms()
        rest = []
        for packet in packets:
            if is_transport_feedback(packet):
                try:
                    feedback = parse_feedback(packet.data)
                except ValueError as exc:
                    self.counters.feedback_malformed += 1
                    logger.debug("ignoring transport-cc feedback: %s", exc)
                    continue
                self.counters.feedback_received += 1
                try:
                    self.estimator.on_feedback(feedback, now)
                except Exception as exc:  # never into aiortc's receive loop
                    self._core_failed(exc)
                continue  # aiortc would read it as a NACK
            if is_remb(packet):
                try:
                    bitrate, _ = unpack_remb_fci(packet.data[12:])
                except ValueError:
                    pass
                else:
                    self.counters.remb_received += 1
                    self._remb_bps = bitrate
                    self.estimator.on_remb(bitrate, now)
            elif is_nack(packet):
                self.counters.nacks_received += nack_count(packet)
            elif is_keyframe_request(packet):
                self.counters.plis_received += 1
            rest.append(packet.data)
        return b"".join(rest)

    async def _send_feedback(self) -> None:
        while True:
            await asyncio.sleep(FEEDBACK_INTERVAL_S)
            if self._recorder is None or self._feedback_send is None:
                continue
            try:
                packets = self._recorder.build(time.monotonic_ns() // 1000)
            except Exception as exc:
                self._core_failed(exc)
                continue
            for packet in packets:
                try:
                    await self._feedback_send(packet)
                except ConnectionError:
                    break
                self.counters.feedback_sent += 1

    # ---- applying the estimate ---------------------------------------------------------
    async def _control(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(CONTROL_INTERVAL_S)
            rounds += 1
            try:
                if rounds % RTT_EVERY == 0:
                    await self._read_rtt()
                now = _now_ms()
                self._tune_receivers(now)
                self._apply(self.target_bps, now)
            except Exception as exc:  # keep controlling with what works
                self._core_failed(exc)

    def _core_failed(self, exc: Exception) -> None:
        self.counters.core_errors += 1
        if self.counters.core_errors == 1:
            logger.warning("congestion control: %s: %s", type(exc).__name__, exc)

    @property
    def target_bps(self) -> int:
        """The estimate; with a peer that has no transport-cc (stock aiortc), its REMB."""
        if self.extension_id is not None or self._remb_bps is None:
            return self.estimator.target_bps
        return max(MIN_BPS, min(self._remb_bps, self._max_bps))

    def _apply(self, target_bps: int, now: float) -> None:
        audio_active = any(
            t.sender.track is not None for t in self._pc.getTransceivers() if t.kind == "audio"
        )
        audio_bps, video_bps = split_bitrate(target_bps, audio_active)
        fps = self._encoder_fps
        for track in self._tracks:
            if self._adaptation is None and track.source_size and track.source_fps:
                width, height = track.source_size
                self._adaptation = VideoAdaptation(
                    width, height, track.source_fps, start_bps=video_bps
                )
            if self._adaptation is None:
                continue
            settings = self._adaptation.update(video_bps, now)
            size = (settings.width, settings.height)
            track.size = None if size == track.source_size else size
            source_fps = track.source_fps or settings.fps
            track.fps = settings.fps if settings.fps < source_fps - 0.5 else None
            video_bps = settings.bitrate_bps
            fps = settings.fps
        self._encoder_fps = fps
        self._protection_bps = protection_bps(video_bps, self._retransmission_rate.bps(now))
        for encoder in self._video_encoders:
            encoder.set_target(video_bps, fps, self._protection_bps)
        for audio in self._audio_encoders:
            audio.set_target(audio_bps)
        self.budget.set_rate(int(target_bps * PACING_FACTOR))

    async def _read_rtt(self) -> None:
        rtts = []
        for transceiver in self._pc.getTransceivers():
            try:
                report = await transceiver.sender.getStats()
            except Exception:  # a sender being torn down
                continue
            for stats in report.values():
                rtt = getattr(stats, "roundTripTime", None)
                if getattr(stats, "type", None) == "remote-inbound-rtp" and rtt is not None:
                    rtts.append(float(rtt) * 1000)
        if rtts:
            self.rtt_ms = min(rtts)
            self.estimator.on_rtt(self.rtt_ms)
            if self._least_rtt_ms is None or self.rtt_ms < self._least_rtt_ms:
                self._least_rtt_ms = self.rtt_ms

    def _tune_receivers(self, now: float) -> None:
        """How long our receive paths wait for a retransmission, and how often the NACK
        schedulers ask: the round trip, plus the queue the arriving video waits in now
        (which the once-a-second RTCP round trip misses)."""
        queue_ms = max((s.queue_ms(now) for s in self.nack_schedulers), default=0.0)
        rtt_ms = None if self.rtt_ms is None else self.rtt_ms + queue_ms
        stall_limit = stall_limit_for(rtt_ms)
        for buffer in self.receive_buffers:
            buffer.set_stall_limit(stall_limit)
        # Past the receive path's wait the frame is given up: no use asking then.
        give_up_ms = stall_limit * 1000 if self.receive_buffers else None
        for scheduler in self.nack_schedulers:
            scheduler.set_rtt(self.rtt_ms, give_up_ms)

    @property
    def queue_delay_ms(self) -> float | None:
        """How much the round trip is over the least seen in the call: the queue on the
        path (None until a round trip is known)."""
        if self.rtt_ms is None or self._least_rtt_ms is None:
            return None
        return self.rtt_ms - self._least_rtt_ms

    # ---- reporting ---------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        sent = next((t.sent for t in self._tracks if t.sent.width), None)
        estimate = self.estimator.snapshot()
        return {
            "mode": "gcc",
            "transport_cc": self.extension_id is not None,
            **estimate,
            "target_kbps": round(self.target_bps / 1000, 1),
            "encoder_kbps": round(sum(e.bitrate.bps for e in self._video_encoders) / 1000, 1)
            if self._video_encoders
            else None,
            "stall_limit_ms": round(self.receive_buffers[0].stall_limit * 1000)
            if self.receive_buffers
            else None,
            "receive_queue_ms": round(max(s.queue_ms(now * 1000) for s in self.nack_schedulers))
            if self.nack_schedulers
            else None,
            "encoder_restarts": sum(e.bitrate.restarts for e in self._video_encoders),
            "encoder_keyframes": sum(
                e.keyframes for e in self._video_encoders if isinstance(e, ControlledVp8Encoder)
            ),
            "encoder_dropped": sum(
                e.dropped for e in self._video_encoders if isinstance(e, ControlledVp8Encoder)
            ),
            "encoder_live": any(
                e.live is not None
                for e in self._video_encoders
                if isinstance(e, ControlledVp8Encoder)
            ),
            "audio_kbps": round(self._audio_encoders[0].bitrate.bps / 1000, 1)
            if self._audio_encoders
            else None,
            "send_kbps": round(self._sent.per_second(now) * 8 / 1000, 1),
            "protection_kbps": round(self._protection_bps / 1000, 1),
            "queue_delay_ms": None if (queue := self.queue_delay_ms) is None else round(queue),
            "pacer_queue": len(self._video) + len(self._retransmissions),
            "alr": self.alr.in_alr,
            "alr_periods": self.alr.periods,
            "drop_probes": self.prober.drop_probes,
            "faster_probes": self.prober.faster_probes,
            "sent_width": sent.width if sent else None,
            "sent_height": sent.height if sent else None,
            "sent_fps": round(sent.fps(now), 1) if sent else None,
            **asdict(self.counters),
        }


def _rtx_payload_type(codecs: list[Any]) -> int | None:
    """The RTX payload type that repairs the first (sending) codec, if negotiated."""
    if not codecs:
        return None
    primary = codecs[0].payloadType
    for codec in codecs:
        if codec.mimeType.lower().endswith("/rtx") and codec.parameters.get("apt") == primary:
            return int(codec.payloadType)
    return None


def check_aiortc() -> None:
    """Raise :class:`peer.stack.seam.StackChanged` unless aiortc still has the hooks
    the shell uses."""
    SEAM.check()
