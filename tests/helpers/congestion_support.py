"""A tiny pure link simulator for the congestion-control core.

One direction of a call in 1 ms steps: a 30 fps encoder makes frames of
``target / 30`` bits, the :class:`PacingBudget` lets packets out at 2.5 x target, each
packet may be dropped at random (iptables' ``statistic`` match, before the queue), then
waits in a drop-tail FIFO in front of a bottleneck of the given capacity (``tbf``: a
packet that would wait longer than ``queue_limit_ms`` is dropped) and arrives
``one_way_ms`` after leaving it. The receiver's :class:`FeedbackRecorder` reports every
``feedback_interval_ms``; its packets travel back (uncongested) to the
:class:`SendSideEstimator`, whose target the encoder follows. With ``use_window`` the
sender also holds packets while the estimator's congestion window is full. With
``probing`` a :class:`ProbePlanner` adds padding clusters as the shell sends them.

Everything is deterministic for a given seed: traces replay exactly.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from peer.congestion.alr import AlrDetector
from peer.congestion.estimator import SendSideEstimator
from peer.congestion.pacer import PacingBudget
from peer.congestion.probing import ProbeCluster, ProbePlanner
from peer.congestion.twcc import FeedbackRecorder, parse_feedback

MAX_PACKET_BYTES = 1200
PADDING_PACKET_BYTES = 275  # a padding-only RTX packet: header, extension, 255 bytes


@dataclass
class Link:
    """The bottleneck: capacity and loss may change over time (ms -> value)."""

    capacity_bps: Callable[[float], float]
    loss: Callable[[float], float] = lambda _t: 0.0
    queue_limit_ms: float = 400.0
    one_way_ms: float = 20.0
    # The receiver's event loop stalls now and then (a busy Python process): packets
    # arriving during a stall are stamped when it ends. (mean gap between stalls, longest)
    receiver_stalls_ms: tuple[float, float] | None = None


def steps(*changes: tuple[float, float]) -> Callable[[float], float]:
    """A value that changes at given times: ``steps((0, 2e6), (20_000, 3e5))``."""
    ordered = sorted(changes)

    def value(t: float) -> float:
        current = ordered[0][1]
        for start, v in ordered:
            if t >= start:
                current = v
        return current

    return value


@dataclass
class Sample:
    """The state every 100 ms."""

    t_ms: float
    target_bps: int
    capacity_bps: float
    queue_delay_ms: float
    sent_bps: float  # what the sender put on the link in the last 100 ms
    delivered_bps: float  # what came out of the bottleneck in the last 100 ms


@dataclass
class Trace:
    samples: list[Sample] = field(default_factory=list)
    estimator: SendSideEstimator | None = None
    planner: ProbePlanner | None = None

    def between(self, start_s: float, end_s: float) -> list[Sample]:
        return [s for s in self.samples if start_s * 1000 <= s.t_ms < end_s * 1000]

    def mean_target(self, start_s: float, end_s: float) -> float:
        window = self.between(start_s, end_s)
        return sum(s.target_bps for s in window) / len(window)

    def mean_delivered(self, start_s: float, end_s: float) -> float:
        window = self.between(start_s, end_s)
        return sum(s.delivered_bps for s in window) / len(window)

    def first_time(self, start_s: float, predicate: Callable[[Sample], bool]) -> float | None:
        """Seconds from ``start_s`` until ``predicate`` first holds, None if never."""
        for sample in self.samples:
            if sample.t_ms >= start_s * 1000 and predicate(sample):
                return (sample.t_ms - start_s * 1000) / 1000
        return None


def simulate(
    link: Link,
    seconds: float,
    *,
    start_bps: int = 300_000,
    min_bps: int = 30_000,
    max_bps: int = 5_000_000,
    feedback_interval_ms: float = 100.0,
    pacing_factor: float = 2.5,
    fps: float = 30.0,
    seed: int = 1,
    start_sequence: int = 0,
    use_window: bool = False,
    probing: bool = False,
    encoder_max_bps: float | None = None,
) -> Trace:
    rng = random.Random(seed)
    estimator = SendSideEstimator(start_bps=start_bps, min_bps=min_bps, max_bps=max_bps)
    pacer = PacingBudget(int(start_bps * pacing_factor))
    recorder = FeedbackRecorder(sender_ssrc=1)
    trace = Trace(estimator=estimator)

    send_queue: deque[int] = deque()
    in_flight: deque[tuple[float, int, int]] = deque()  # arrival, sequence, size
    feedback_path: deque[tuple[float, bytes]] = deque()
    link_free_ms = 0.0
    sequence = start_sequence
    next_frame_ms = 0.0
    next_feedback_ms = feedback_interval_ms
    sent_bytes = delivered_bytes = 0
    delivered: deque[tuple[float, int]] = deque()  # leaves the bottleneck at, size
    stall_until = next_stall = 0.0
    planner = ProbePlanner(start_bps=start_bps, max_bps=max_bps) if probing else None
    cluster: ProbeCluster | None = None
    cluster_start = cluster_bytes = 0.0
    decreases_seen = outgrown_seen = 0
    alr = AlrDetector(start_bps)
    trace.planner = planner

    for tick in range(int(seconds * 1000)):
        now = float(tick)
        target = estimator.target_bps
        pacer.set_rate(int(target * pacing_factor))
        if now >= next_frame_ms:
            wanted = target if encoder_max_bps is None else min(target, encoder_max_bps)
            frame_bytes = max(int(wanted / fps / 8 * rng.uniform(0.8, 1.2)), 200)
            while frame_bytes > 0:
                send_queue.append(min(frame_bytes, MAX_PACKET_BYTES))
                frame_bytes -= MAX_PACKET_BYTES
            next_frame_ms += 1000 / fps
        if planner is not None:
            if estimator.decreases != decreases_seen:
                decreases_seen = estimator.decreases
                planner.on_decrease(now)
            if estimator.capacity_outgrown != outgrown_seen:
                outgrown_seen = estimator.capacity_outgrown
                planner.on_link_faster(now)
            result = estimator.take_probe_result()
            if result is not None:
                planner.on_result(*result, now)
            planner.on_estimate(estimator.target_bps, now)
            alr.set_estimate(estimator.target_bps)
            planner.on_alr(alr.started_ms, alr.ended_ms)
            if cluster is None and tick % 20 == 0 and sequence > 30:
                cluster = planner.next_cluster(now)
                cluster_start, cluster_bytes = now, 0.0
        outgoing: list[tuple[int, bool]] = []  # size, padding
        while send_queue and pacer.delay_until_send(send_queue[0], now) == 0:
            if use_window and not estimator.window_allows(send_queue[0], now):
                break  # the shell holds video while the window is full
            size = send_queue.popleft()
            pacer.on_sent(size, now)
            outgoing.append((size, False))
        if cluster is not None:
            elapsed = now - cluster_start
            pending = cluster_bytes + sum(s for s, _ in outgoing)
            while pending < cluster.bitrate_bps * (elapsed + 1) / 8000:
                outgoing.append((PADDING_PACKET_BYTES, True))
                pending += PADDING_PACKET_BYTES
        for size, _padding in outgoing:
            estimator.on_packet_sent(sequence, size, now, cluster)
            alr.on_sent(size, now)
            if cluster is not None:
                cluster_bytes += size
            sent_bytes += size
            if rng.random() >= link.loss(now):
                start = max(link_free_ms, now)
                if start - now <= link.queue_limit_ms:
                    link_free_ms = start + size * 8000 / link.capacity_bps(start)
                    delivered.append((link_free_ms, size))
                    in_flight.append((link_free_ms + link.one_way_ms, sequence, size))
            sequence = (sequence + 1) % 65536
        if cluster is not None and (
            now - cluster_start >= cluster.duration_ms and cluster_bytes >= cluster.min_bytes
        ):
            cluster = None
        while delivered and delivered[0][0] <= now:
            delivered_bytes += delivered.popleft()[1]
        if link.receiver_stalls_ms is not None and now >= next_stall:
            mean_gap, longest = link.receiver_stalls_ms
            stall_until = now + rng.uniform(0, longest)
            next_stall = now + rng.expovariate(1 / mean_gap)
        while in_flight and in_flight[0][0] <= now and now >= stall_until:
            arrival, seq, _ = in_flight.popleft()
            stamped = max(arrival, now) if link.receiver_stalls_ms else arrival
            recorder.on_packet(2, seq, int(stamped * 1000))
        if now >= next_feedback_ms:
            next_feedback_ms += feedback_interval_ms
            for packet in recorder.build(int(now * 1000)):
                feedback_path.append((now + link.one_way_ms, packet))
        while feedback_path and feedback_path[0][0] <= now:
            estimator.on_feedback(parse_feedback(feedback_path.popleft()[1]), now)
        if tick % 100 == 99:
            trace.samples.append(
                Sample(
                    t_ms=now,
                    target_bps=estimator.target_bps,
                    capacity_bps=link.capacity_bps(now),
                    queue_delay_ms=max(link_free_ms - now, 0.0),
                    sent_bps=sent_bytes * 80,
                    delivered_bps=delivered_bytes * 80,
                )
            )
            sent_bytes = delivered_bytes = 0
    return trace
