"""The GCC-like send-side bandwidth estimate.

The shell tells it what left (transport sequence, size, send time) and hands it each
transport-wide feedback packet. For every packet the feedback acknowledges, the send
time comes from the history kept here and the arrival time from the feedback:

- delay-based: :class:`~.trendline.InterArrival` groups -> :class:`~.trendline.TrendlineEstimator`
  (overuse detector) -> :class:`~.rate_control.AimdRateControl`, with the
  :class:`~.acknowledged.AcknowledgedBitrate` as the decrease's reference;
- loss-based: :class:`~.loss_based.LossBasedController` on the reported losses;
- a REMB from the receiver is an upper bound.

The target is the smallest of the three, within the bounds the shell set.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from peer.congestion.acknowledged import AcknowledgedBitrate
from peer.congestion.loss_based import LossBasedController
from peer.congestion.probing import ProbeCluster, ProbeReading, ProbeResultEstimator
from peer.congestion.rate_control import AimdRateControl
from peer.congestion.trendline import BandwidthUsage, InterArrival, TrendlineEstimator
from peer.congestion.twcc import REFERENCE_WRAP_US, SEQUENCE_MODULO, TransportFeedback

logger = logging.getLogger(__name__)

HISTORY_PACKETS: Final = 1 << 14  # well under half the sequence space: unwrapping stays exact
# How long data may sit in the network beyond one round trip before the window is full.
WINDOW_QUEUE_MS: Final = 350.0
# While the window is full one packet still goes this often: its feedback reveals what
# was lost and reopens the window (otherwise losses at the tail are never reported).
WINDOW_KEEPALIVE_MS: Final = 500.0
DEFAULT_RTT_MS: Final = 100.0
RTT_SMOOTHING: Final = 0.2


@dataclass
class _SentPacket:
    send_ms: float
    size_bytes: int
    reported_lost: bool = False
    acknowledged: bool = False
    cluster_id: int | None = None  # the probe cluster it was part of


class SendSideEstimator:
    """Delay-based (trendline + AIMD) and loss-based estimates, combined as GCC does."""

    def __init__(self, *, start_bps: int, min_bps: int, max_bps: int) -> None:
        _check_bounds(min_bps, max_bps)
        self._min_bps = min_bps
        self._max_bps = max_bps
        start = min(max(start_bps, min_bps), max_bps)
        self._rate_control = AimdRateControl(start_bps=start, min_bps=min_bps, max_bps=max_bps)
        self._loss = LossBasedController(start_bps=start)
        self._acked = AcknowledgedBitrate()
        self._inter_arrival = InterArrival()
        self._trendline = TrendlineEstimator()
        self._history: OrderedDict[int, _SentPacket] = OrderedDict()
        self._last_sent: int | None = None  # unwrapped
        self._reference_us: int | None = None  # unwrapped reference time of the last feedback
        self._remb_bps: float | None = None
        self._rtt_ms: float | None = None
        self._feedback_rtt_ms: float | None = None
        self._target_bps = start
        self._in_flight_bytes = 0
        self._last_send_ms: float | None = None
        self._probes = ProbeResultEstimator()
        self._probe_result: tuple[int, float, bool] | None = None  # cluster, bps, jumped
        self.probe_jumps = 0
        self.last_probe_kbps: float | None = None
        self.feedbacks = 0
        self.unknown_packets = 0

    # -- what the shell reports -------------------------------------------------

    def on_packet_sent(
        self,
        sequence: int,
        size_bytes: int,
        send_ms: float,
        cluster: ProbeCluster | None = None,
    ) -> None:
        """A packet carrying transport sequence ``sequence`` left at ``send_ms`` (as part
        of probe ``cluster`` when one was running)."""
        unwrapped = self._unwrap(sequence)
        self._last_sent = unwrapped if self._last_sent is None else max(self._last_sent, unwrapped)
        previous = self._history.pop(unwrapped, None)
        if previous is not None and not (previous.acknowledged or previous.reported_lost):
            self._in_flight_bytes -= previous.size_bytes
        self._history[unwrapped] = _SentPacket(
            send_ms, size_bytes, cluster_id=None if cluster is None else cluster.cluster_id
        )
        if cluster is not None:
            self._probes.on_sent(cluster, send_ms, size_bytes)
        self._in_flight_bytes += size_bytes
        if self._last_send_ms is None or send_ms > self._last_send_ms:
            self._last_send_ms = send_ms
        while len(self._history) > HISTORY_PACKETS:
            _, dropped = self._history.popitem(last=False)
            if not (dropped.acknowledged or dropped.reported_lost):
                self._in_flight_bytes -= dropped.size_bytes

    def on_feedback(self, feedback: TransportFeedback, now_ms: float) -> None:
        """Transport-wide feedback arrived at ``now_ms``."""
        self.feedbacks += 1
        offset_us = self._arrival_offset_us(feedback.reference_time_us)
        acknowledged: list[tuple[float, float, int]] = []  # arrival, send, size
        probe: tuple[int, ProbeReading] | None = None
        expected = lost = 0
        newest_send_ms: float | None = None
        for sequence, arrival_us in feedback.packets:
            packet = self._history.get(self._unwrap(sequence)) if self._history else None
            if packet is None or packet.acknowledged:
                self.unknown_packets += packet is None
                continue
            if arrival_us is None:
                if not packet.reported_lost:
                    packet.reported_lost = True
                    self._in_flight_bytes -= packet.size_bytes
                    expected += 1
                    lost += 1
                continue
            if packet.reported_lost:
                lost -= 1  # it arrived after all (late, or the report was a guess)
            else:
                expected += 1
                self._in_flight_bytes -= packet.size_bytes
            packet.acknowledged = True
            arrival_ms = (arrival_us + offset_us) / 1000
            acknowledged.append((arrival_ms, packet.send_ms, packet.size_bytes))
            if packet.cluster_id is not None:
                reading = self._probes.on_received(
                    packet.cluster_id, self._unwrap(sequence), arrival_ms, packet.size_bytes
                )
                if reading is not None:
                    probe = (packet.cluster_id, reading)
            if newest_send_ms is None or packet.send_ms > newest_send_ms:
                newest_send_ms = packet.send_ms
        if newest_send_ms is not None:
            sample = max(now_ms - newest_send_ms, 0.0)
            previous = self._feedback_rtt_ms
            self._feedback_rtt_ms = (
                sample if previous is None else previous + RTT_SMOOTHING * (sample - previous)
            )
        self._loss.on_packets(expected, lost)

        usage = self._trendline.state
        resets_before = self._inter_arrival.resets
        for arrival_ms, send_ms, size in sorted(acknowledged):
            self._acked.add(arrival_ms, size)
            delta = self._inter_arrival.add(send_ms, arrival_ms, size)
            if delta is not None:
                usage = self._trendline.update(delta)
        if self._inter_arrival.resets != resets_before:
            logger.debug("feedback arrival times jumped; delay estimation restarts")
            self._acked.reset()
        if acknowledged:
            self._rate_control.update(usage, self._acked.bps, self.rtt_ms, now_ms)
        if probe is not None:
            self._apply_probe(probe[0], probe[1], usage, now_ms)
        self._combine(now_ms)

    def _apply_probe(
        self, cluster_id: int, reading: ProbeReading, usage: BandwidthUsage, now_ms: float
    ) -> None:
        """A probe measured the link: jump to it, unless the delay rose meanwhile."""
        rate_bps = reading.bitrate_bps
        self.last_probe_kbps = round(rate_bps / 1000, 1)
        jump_bps = reading.jump_from(self._target_bps)
        jumped = usage is not BandwidthUsage.OVERUSING and jump_bps > self._target_bps
        self._rate_control.on_probe(rate_bps, now_ms)
        if jumped:
            self._rate_control.set_estimate(jump_bps, now_ms)
            self._loss.set_bitrate(jump_bps)
            self.probe_jumps += 1
        self._probe_result = (cluster_id, rate_bps, jumped)

    def take_probe_result(self) -> tuple[int, float, bool] | None:
        """The newest probe reading since the last call: (cluster id, bit/s, jumped)."""
        result, self._probe_result = self._probe_result, None
        return result

    def on_remb(self, bps: int, now_ms: float) -> None:
        """A REMB receiver's estimate: an upper bound."""
        self._remb_bps = float(max(bps, 0))
        self._combine(now_ms)

    def on_rtt(self, rtt_ms: float) -> None:
        """A round-trip time measured by the shell (RTCP sender/receiver reports)."""
        if rtt_ms >= 0:
            self._rtt_ms = rtt_ms

    def set_bounds(self, min_bps: int, max_bps: int) -> None:
        """Change the limits the target stays within."""
        _check_bounds(min_bps, max_bps)
        self._min_bps, self._max_bps = min_bps, max_bps
        self._rate_control.set_bounds(min_bps, max_bps)
        self._target_bps = min(max(self._target_bps, min_bps), max_bps)

    # -- what the shell reads ---------------------------------------------------

    @property
    def target_bps(self) -> int:
        """The combined delay- and loss-based estimate, within bounds."""
        return self._target_bps

    @property
    def rtt_ms(self) -> float:
        """The shell's RTT if it gave one, else send-to-feedback time, else 100 ms."""
        if self._rtt_ms is not None:
            return self._rtt_ms
        if self._feedback_rtt_ms is not None:
            return self._feedback_rtt_ms
        return DEFAULT_RTT_MS

    @property
    def in_flight_bytes(self) -> int:
        """Bytes sent that no feedback has reported yet (received or lost)."""
        return self._in_flight_bytes

    @property
    def congestion_window_bytes(self) -> int | None:
        """How much may be in flight: the target over one RTT + 350 ms of queue.

        A sender holding video back while ``in_flight_bytes`` exceeds this stops filling a
        link whose feedback has stopped (the link is gone or its queue is huge) instead of
        trusting an estimate nothing confirms. None until feedback has been seen, so a
        peer that negotiated transport-cc but never reports does not stall the video.
        """
        if not self.feedbacks:
            return None
        return int(self._target_bps * (self.rtt_ms + WINDOW_QUEUE_MS) / 8000)

    def window_allows(self, size_bytes: int, now_ms: float) -> bool:
        """Whether the congestion window lets a paced packet of ``size_bytes`` go now.

        Yes when there is no window yet, when the packet fits, or when nothing has left
        for 500 ms (a keep-alive whose feedback reports the losses that filled the window).
        """
        window = self.congestion_window_bytes
        if window is None or self._in_flight_bytes + size_bytes <= window:
            return True
        return self._last_send_ms is None or now_ms - self._last_send_ms >= WINDOW_KEEPALIVE_MS

    @property
    def capacity_outgrown(self) -> int:
        """How often the delay-based estimate rose clear of the capacity it had overused at
        with no overuse on the way: the link got faster."""
        return self._rate_control.capacity_outgrown

    @property
    def decreases(self) -> int:
        """How often the delay- or loss-based side cut the estimate."""
        return self._rate_control.decreases + self._loss.decreases

    @property
    def delay_state(self) -> BandwidthUsage:
        return self._trendline.state

    def snapshot(self) -> dict[str, float | int | str | None]:
        """Figures for the stats line."""
        acked = self._acked.bps
        return {
            "target_kbps": round(self._target_bps / 1000, 1),
            "delay_kbps": round(self._rate_control.bitrate_bps / 1000, 1),
            "loss_kbps": round(self._loss.bitrate_bps / 1000, 1),
            "acked_kbps": None if acked is None else round(acked / 1000, 1),
            "remb_kbps": None if self._remb_bps is None else round(self._remb_bps / 1000, 1),
            "loss_pct": round(self._loss.loss_fraction * 100, 1),
            "delay_state": self._trendline.state.value,
            "rate_state": self._rate_control.state.value,
            "trend_threshold": round(self._trendline.threshold, 2),
            "rtt_ms": round(self.rtt_ms, 1),
            "in_flight_bytes": self._in_flight_bytes,
            "window_bytes": self.congestion_window_bytes,
            "feedbacks": self.feedbacks,
            "arrival_resets": self._inter_arrival.resets,
            "delay_decreases": self._rate_control.decreases,
            "loss_decreases": self._loss.decreases,
            "capacity_outgrown": self._rate_control.capacity_outgrown,
            "probe_jumps": self.probe_jumps,
            "probe_kbps": self.last_probe_kbps,
        }

    # -- inside -----------------------------------------------------------------

    def _combine(self, now_ms: float) -> None:
        ceiling = self._rate_control.bitrate_bps
        if self._remb_bps is not None:
            ceiling = min(ceiling, self._remb_bps)
        loss_bps = self._loss.update(now_ms, ceiling, self.rtt_ms)
        target = min(ceiling, loss_bps)
        self._target_bps = int(min(max(target, self._min_bps), self._max_bps))

    def _unwrap(self, sequence: int) -> int:
        if self._last_sent is None:
            return sequence % SEQUENCE_MODULO
        step = (sequence - self._last_sent) % SEQUENCE_MODULO
        if step >= SEQUENCE_MODULO // 2:
            step -= SEQUENCE_MODULO
        return self._last_sent + step

    def _arrival_offset_us(self, reference_us: int) -> int:
        """What to add to this feedback's arrival times so they continue the last one's."""
        last = self._reference_us
        if last is None:
            self._reference_us = reference_us
            return 0
        base = last - last % REFERENCE_WRAP_US
        candidates = (base - REFERENCE_WRAP_US, base, base + REFERENCE_WRAP_US)
        unwrapped = min((c + reference_us for c in candidates), key=lambda u: abs(u - last))
        self._reference_us = unwrapped
        return unwrapped - reference_us


def _check_bounds(min_bps: int, max_bps: int) -> None:
    if not 0 < min_bps <= max_bps:
        raise ValueError(f"bitrate bounds must satisfy 0 < min <= max, got {min_bps}..{max_bps}")
