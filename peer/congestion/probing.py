"""Bandwidth probing: find out quickly that a link got faster.

Once an overuse has shown where the capacity is, the delay-based estimate only creeps
up (about a packet per response time), so a link that went from 300 kbit/s to 2 Mbit/s
is used after tens of seconds. GCC probes instead: a short cluster of packets paced
at a multiple of the estimate, whose receive rate (from transport-wide feedback) says
what the link carries now. Two pure parts:

- :class:`ProbePlanner` decides when to send a cluster and at what rate: at the start
  (3 x the start rate, then 6 x unless the first fell short), again at 2 x a result
  that kept up with its cluster (exponential probing), and every few seconds while
  the sender is application-limited (:mod:`peer.congestion.alr`), the estimate is
  below the most the sender wants and nothing was cut lately. While the encoder fills
  the estimate there are no periodic probes: the delay and loss signals already say
  whether the link carries it, and a token-bucket link lets a short cluster through
  at line rate (read at 385-412 kbit/s on a 300 kbit/s link; every jump was cut again
  within a second). A probe whose jump is cut by an overuse soon after doubles the
  wait before the next periodic probe, up to ``MAX_PERIODIC_MS``. After a large drop
  of the estimate (to under 66 %) while application-limited, or within 3 s of it, one
  probe at 85 % of the rate before the drop checks whether the drop was only a
  moment's: an application-limited sender's estimate cannot climb back by itself (it
  stays within 1.5 x what is acknowledged).
- :class:`ProbeResultEstimator` turns the feedback on a cluster's packets into a
  bitrate: libwebrtc's rule (sent bytes over the send interval, received bytes over
  the receive interval, the smaller of the two; 95 % of the receive rate when it fell
  clearly short of the send rate, since then the link is what limited it).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

INITIAL_FACTORS: Final = (3.0, 6.0)  # the second only if the first kept up
EXPONENTIAL_FACTOR: Final = 2.0
FURTHER_RATIO: Final = 0.7  # a result at this share of its cluster's rate probes higher
PERIODIC_FACTOR: Final = 2.0
PERIODIC_MS: Final = 2_500.0
MAX_PERIODIC_MS: Final = 5_000.0
ALR_SETTLE_MS: Final = 300.0  # an application-limited stretch shorter than this: no probe
LARGE_DROP_RATIO: Final = 0.66
DROP_PROBE_SHARE: Final = 0.85
DROP_PROBE_AFTER_MS: Final = 1_000.0  # no further cut this long after the drop: probe
DROP_PROBE_WITHIN_MS: Final = 5_000.0
ALR_ENDED_WITHIN_MS: Final = 3_000.0
QUIET_AFTER_DECREASE_MS: Final = 3_000.0
FAILED_WITHIN_MS: Final = 3_000.0  # a cut this soon after a probe's jump: it misread
HEADROOM: Final = 0.95  # no periodic probe once the estimate is this close to the most wanted
CLUSTER_MS: Final = 30.0
CLUSTER_MIN_PACKETS: Final = 6
RESULT_TIMEOUT_MS: Final = 1_000.0

MIN_RECEIVED_SHARE: Final = 0.8
MAX_INTERVAL_MS: Final = 1_000.0
MAX_RECEIVE_OVER_SEND: Final = 2.0
LINK_LIMITED_RATIO: Final = 0.9
LINK_LIMITED_UTILIZATION: Final = 0.95
KEPT_CLUSTERS: Final = 8
# A reading the link held below the cluster's rate is an upper bound that a token bucket
# inflates (its burst passes at line rate): the estimate goes only this far towards it.
LINK_LIMITED_JUMP_SHARE: Final = 0.5
_BITS_PER_BYTE_MS: Final = 8_000


@dataclass(frozen=True)
class ProbeCluster:
    """Send at ``bitrate_bps`` for ``duration_ms`` and at least ``min_packets`` packets."""

    cluster_id: int
    bitrate_bps: int
    duration_ms: float = CLUSTER_MS
    min_packets: int = CLUSTER_MIN_PACKETS

    @property
    def min_bytes(self) -> int:
        return int(self.bitrate_bps * self.duration_ms / _BITS_PER_BYTE_MS)


class ProbePlanner:
    """When to probe and how fast. Feed it the estimate; ask it for the next cluster."""

    def __init__(self, *, start_bps: int, max_bps: int) -> None:
        self.max_bps = max_bps
        self.probes = 0
        self.failed = 0
        self.drop_probes = 0  # probes after a large drop of the estimate
        self._start_bps = start_bps
        self._estimate_bps = float(start_bps)
        self._next_id = 1
        self._pending: list[int] = []  # bitrates of clusters to send as soon as possible
        self._started = False
        self._waiting: ProbeCluster | None = None  # sent, result not in yet
        self._waiting_since_ms = 0.0
        self._last_probe_ms: float | None = None
        self._last_decrease_ms: float | None = None
        self._jumped_ms: float | None = None
        self._periodic_ms = PERIODIC_MS
        self._alr_started_ms: float | None = None
        self._alr_ended_ms: float | None = None
        self._drop: tuple[float, float] | None = None  # (estimate before, when)
        self._faster_ms: float | None = None
        self.faster_probes = 0  # probes after the link showed it got faster

    def on_estimate(self, estimate_bps: float, now_ms: float) -> None:
        if estimate_bps < LARGE_DROP_RATIO * self._estimate_bps:
            before = self._estimate_bps
            if self._drop is not None and now_ms - self._drop[1] <= DROP_PROBE_WITHIN_MS:
                before = max(before, self._drop[0])  # a drop in steps: from the top
            self._drop = (before, now_ms)
        self._estimate_bps = estimate_bps

    def on_link_faster(self, now_ms: float) -> None:
        """The delay-based estimate rose clear of the capacity it had overused at, with no
        overuse on the way: the link got faster. One probe at 2 x the estimate finds how
        much faster (the delay-based increase alone takes about 10 s from 300 kbit/s to
        2 Mbit/s); unlike a periodic probe it follows evidence from the media itself."""
        self._faster_ms = now_ms

    def on_alr(self, started_ms: float | None, ended_ms: float | None) -> None:
        """Since when the sender is application-limited (None: it is not), and when its
        last application-limited stretch ended."""
        self._alr_started_ms = started_ms
        self._alr_ended_ms = ended_ms

    def on_decrease(self, now_ms: float) -> None:
        """The estimate was cut (overuse or loss)."""
        self._last_decrease_ms = now_ms
        self._pending.clear()  # the link is full: probing higher now would only add queue
        if self._jumped_ms is not None and now_ms - self._jumped_ms <= FAILED_WITHIN_MS:
            self.failed += 1
            self._periodic_ms = min(self._periodic_ms * 2, MAX_PERIODIC_MS)
        self._jumped_ms = None

    def on_result(self, cluster_id: int, bitrate_bps: float, jumped: bool, now_ms: float) -> None:
        """A cluster's measured rate; ``jumped`` when the estimate was raised to it."""
        waiting = self._waiting
        if waiting is None or waiting.cluster_id != cluster_id:
            return
        self._waiting = None
        if jumped:
            self._jumped_ms = now_ms  # held for FAILED_WITHIN_MS: the wait is reset
        kept_up = bitrate_bps >= FURTHER_RATIO * waiting.bitrate_bps
        if kept_up and waiting.bitrate_bps < self.max_bps:
            self._pending = [int(min(bitrate_bps * EXPONENTIAL_FACTOR, self.max_bps))]
        else:
            self._pending.clear()  # the link is slower than this cluster: no higher one

    def next_cluster(self, now_ms: float) -> ProbeCluster | None:
        """The cluster to send now, or None."""
        if self._jumped_ms is not None and now_ms - self._jumped_ms > FAILED_WITHIN_MS:
            self._jumped_ms = None
            self._periodic_ms = PERIODIC_MS  # the last jump held: the link was really faster
        if self._waiting is not None:
            if now_ms - self._waiting_since_ms < RESULT_TIMEOUT_MS:
                return None
            self._waiting = None  # its feedback never came (lost, or too few packets)
            self._pending.clear()
        if not self._started:
            self._started = True
            self._pending = [
                int(min(self._start_bps * f, self.max_bps))
                for f in INITIAL_FACTORS
                if self._start_bps * f <= self.max_bps or f == INITIAL_FACTORS[0]
            ]
            self._pending = [b for b in self._pending if b > self._start_bps]
        if not self._pending and self._drop_probe_due(now_ms):
            assert self._drop is not None
            self._pending = [int(min(self._drop[0] * DROP_PROBE_SHARE, self.max_bps))]
            self._drop = None
            self.drop_probes += 1
        if not self._pending and self._faster_ms is not None:
            self._faster_ms = None
            if self._estimate_bps < HEADROOM * self.max_bps:
                self._pending = [int(min(self._estimate_bps * PERIODIC_FACTOR, self.max_bps))]
                self.faster_probes += 1
        if not self._pending and self._periodic_due(now_ms):
            self._pending = [int(min(self._estimate_bps * PERIODIC_FACTOR, self.max_bps))]
        while self._pending:
            bitrate = self._pending.pop(0)
            if bitrate <= self._estimate_bps:
                continue  # the estimate got there anyway
            cluster = ProbeCluster(self._next_id, bitrate)
            self._next_id += 1
            self.probes += 1
            self._waiting = cluster
            self._waiting_since_ms = now_ms
            self._last_probe_ms = now_ms
            return cluster
        return None

    def _limited_by_application(self, now_ms: float, *, settled: bool) -> bool:
        started = self._alr_started_ms
        if started is not None:
            return not settled or now_ms - started >= ALR_SETTLE_MS
        ended = self._alr_ended_ms
        return not settled and ended is not None and now_ms - ended <= ALR_ENDED_WITHIN_MS

    def _drop_probe_due(self, now_ms: float) -> bool:
        if self._drop is None:
            return False
        _, dropped_ms = self._drop
        if now_ms - dropped_ms > DROP_PROBE_WITHIN_MS:
            self._drop = None
            return False
        if self._last_decrease_ms is not None and now_ms - self._last_decrease_ms < (
            DROP_PROBE_AFTER_MS
        ):
            return False
        return self._limited_by_application(now_ms, settled=False)

    def _periodic_due(self, now_ms: float) -> bool:
        if not self._limited_by_application(now_ms, settled=True):
            return False
        if self._estimate_bps >= HEADROOM * self.max_bps:
            return False
        if self._last_decrease_ms is not None and (
            now_ms - self._last_decrease_ms < QUIET_AFTER_DECREASE_MS
        ):
            return False
        return self._last_probe_ms is None or now_ms - self._last_probe_ms >= self._periodic_ms


@dataclass(frozen=True)
class ProbeReading:
    """What a cluster measured; ``link_limited``: it arrived clearly slower than sent."""

    bitrate_bps: float
    link_limited: bool

    def jump_from(self, estimate_bps: float) -> float:
        """Where the estimate goes from ``estimate_bps`` on this reading."""
        if not self.link_limited:
            return self.bitrate_bps
        return estimate_bps + LINK_LIMITED_JUMP_SHARE * (self.bitrate_bps - estimate_bps)


@dataclass
class _ClusterFeedback:
    sent_packets: int = 0
    sent_bytes: int = 0
    first_send_ms: float | None = None
    last_send_ms: float | None = None
    last_send_size: int = 0
    received_packets: int = 0
    received_bytes: int = 0
    first_arrival_ms: float | None = None
    first_arrival_size: int = 0
    last_arrival_ms: float | None = None
    acknowledged: set[int] = field(default_factory=set)


class ProbeResultEstimator:
    """The rate a cluster got through, from the sender's record and the feedback."""

    def __init__(self) -> None:
        self._clusters: OrderedDict[int, _ClusterFeedback] = OrderedDict()
        self._min_packets: dict[int, int] = {}
        self._min_bytes: dict[int, int] = {}

    def on_sent(self, cluster: ProbeCluster, send_ms: float, size_bytes: int) -> None:
        """A packet of ``cluster`` left (padding or media sent while it ran)."""
        record = self._clusters.get(cluster.cluster_id)
        if record is None:
            record = self._clusters[cluster.cluster_id] = _ClusterFeedback()
            self._min_packets[cluster.cluster_id] = cluster.min_packets
            self._min_bytes[cluster.cluster_id] = cluster.min_bytes
            while len(self._clusters) > KEPT_CLUSTERS:
                old, _ = self._clusters.popitem(last=False)
                self._min_packets.pop(old, None)
                self._min_bytes.pop(old, None)
        record.sent_packets += 1
        record.sent_bytes += size_bytes
        if record.first_send_ms is None or send_ms < record.first_send_ms:
            record.first_send_ms = send_ms
        if record.last_send_ms is None or send_ms >= record.last_send_ms:
            record.last_send_ms = send_ms
            record.last_send_size = size_bytes

    def on_received(
        self, cluster_id: int, packet_id: int, arrival_ms: float, size_bytes: int
    ) -> ProbeReading | None:
        """Feedback says a cluster's packet arrived; the cluster's rate once it can tell."""
        record = self._clusters.get(cluster_id)
        if record is None or packet_id in record.acknowledged:
            return None
        record.acknowledged.add(packet_id)
        record.received_packets += 1
        record.received_bytes += size_bytes
        if record.first_arrival_ms is None or arrival_ms < record.first_arrival_ms:
            record.first_arrival_ms = arrival_ms
            record.first_arrival_size = size_bytes
        if record.last_arrival_ms is None or arrival_ms > record.last_arrival_ms:
            record.last_arrival_ms = arrival_ms
        return self._rate(cluster_id, record)

    def _rate(self, cluster_id: int, record: _ClusterFeedback) -> ProbeReading | None:
        min_packets = self._min_packets[cluster_id] * MIN_RECEIVED_SHARE
        min_bytes = self._min_bytes[cluster_id] * MIN_RECEIVED_SHARE
        if record.received_packets < min_packets or record.received_bytes < min_bytes:
            return None
        assert record.first_send_ms is not None and record.last_send_ms is not None
        assert record.first_arrival_ms is not None and record.last_arrival_ms is not None
        send_ms = record.last_send_ms - record.first_send_ms
        receive_ms = record.last_arrival_ms - record.first_arrival_ms
        if not (0 < send_ms <= MAX_INTERVAL_MS and 0 < receive_ms <= MAX_INTERVAL_MS):
            return None
        # The last packet sent and the first received mark the ends of the intervals:
        # they do not count inside them.
        send_bps = (record.sent_bytes - record.last_send_size) * _BITS_PER_BYTE_MS / send_ms
        receive_bps = (
            (record.received_bytes - record.first_arrival_size) * _BITS_PER_BYTE_MS / receive_ms
        )
        if receive_bps > MAX_RECEIVE_OVER_SEND * send_bps:
            return None  # arrivals bunched up by something other than the link: no reading
        if receive_bps < LINK_LIMITED_RATIO * send_bps:
            return ProbeReading(LINK_LIMITED_UTILIZATION * receive_bps, link_limited=True)
        return ProbeReading(min(send_bps, receive_bps), link_limited=False)
