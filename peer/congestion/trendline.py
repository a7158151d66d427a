"""The delay signal: is the bottleneck queue growing, steady or draining?

Packets sent within 5 ms of each other form a group (a frame leaves as a burst and
should be judged as one). For consecutive groups, the difference between how far
apart they arrived and how far apart they were sent is the change in queueing delay.
:class:`TrendlineEstimator` accumulates those changes, smooths them and fits a line
through the last 20 points: a positive slope means the queue grows. The slope, scaled
by how many deltas it rests on, is compared with a threshold that adapts to the
network's own jitter (it drifts slowly toward the signal, so a noisy path does not
look congested and a clean one reacts fast); a slope held above it for more than
10 ms is overuse, below its negative is underuse.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Final

GROUP_SPAN_MS: Final = 5.0
BURST_ARRIVAL_MS: Final = 5.0
MAX_BURST_MS: Final = 100.0
ARRIVAL_JUMP_MS: Final = 3_000.0  # arrival and send spacing this far apart: clocks moved

WINDOW: Final = 20
SMOOTHING: Final = 0.9
THRESHOLD_GAIN: Final = 4.0
MAX_DELTAS_FOR_GAIN: Final = 60
OVERUSE_TIME_MS: Final = 10.0
INITIAL_THRESHOLD: Final = 12.5
THRESHOLD_RANGE: Final = (6.0, 600.0)
THRESHOLD_UP_RATE: Final = 0.0087  # per ms, while the signal is above the threshold
THRESHOLD_DOWN_RATE: Final = 0.039  # per ms, while below
THRESHOLD_IGNORE_ABOVE: Final = 15.0  # spikes this far over are not let into the threshold
THRESHOLD_MAX_STEP_MS: Final = 100.0


class BandwidthUsage(enum.Enum):
    """What the delay signal says about the bottleneck."""

    NORMAL = "normal"
    OVERUSING = "overusing"
    UNDERUSING = "underusing"


@dataclass
class _Group:
    first_send_ms: float
    last_send_ms: float
    first_arrival_ms: float
    last_arrival_ms: float
    size_bytes: int


@dataclass(frozen=True)
class GroupDelta:
    """How far apart two consecutive groups were sent and arrived."""

    send_delta_ms: float
    arrival_delta_ms: float
    arrival_ms: float  # when the later group finished arriving


class InterArrival:
    """Groups packets by send time and yields the deltas between complete groups."""

    def __init__(self) -> None:
        self._current: _Group | None = None
        self._previous: _Group | None = None
        self.resets = 0

    def add(self, send_ms: float, arrival_ms: float, size_bytes: int) -> GroupDelta | None:
        """Add one acknowledged packet (in arrival order); a delta when a group completes."""
        current = self._current
        if current is None:
            self._current = _Group(send_ms, send_ms, arrival_ms, arrival_ms, size_bytes)
            return None
        if send_ms < current.first_send_ms:
            return None  # reordered into a group already judged
        if self._belongs(current, send_ms, arrival_ms):
            current.last_send_ms = max(current.last_send_ms, send_ms)
            current.last_arrival_ms = max(current.last_arrival_ms, arrival_ms)
            current.size_bytes += size_bytes
            return None
        delta = None
        previous = self._previous
        if previous is not None:
            send_delta = current.last_send_ms - previous.last_send_ms
            arrival_delta = current.last_arrival_ms - previous.last_arrival_ms
            if arrival_delta < 0 or abs(arrival_delta - send_delta) > ARRIVAL_JUMP_MS:
                # The receiver's clock jumped or the path changed: start over.
                self.resets += 1
                self._previous = None
                self._current = _Group(send_ms, send_ms, arrival_ms, arrival_ms, size_bytes)
                return None
            delta = GroupDelta(send_delta, arrival_delta, current.last_arrival_ms)
        self._previous = current
        self._current = _Group(send_ms, send_ms, arrival_ms, arrival_ms, size_bytes)
        return delta

    @staticmethod
    def _belongs(group: _Group, send_ms: float, arrival_ms: float) -> bool:
        if send_ms - group.first_send_ms <= GROUP_SPAN_MS:
            return True
        # A burst: packets queued behind each other arrive back to back, closer than they
        # were sent; they measure the link's rate, not its queue, so they join the group.
        arrival_gap = arrival_ms - group.last_arrival_ms
        propagation_delta = arrival_gap - (send_ms - group.last_send_ms)
        return (
            propagation_delta < 0
            and arrival_gap <= BURST_ARRIVAL_MS
            and arrival_ms - group.first_arrival_ms < MAX_BURST_MS
        )


class TrendlineEstimator:
    """Slope of the smoothed accumulated delay, with the adaptive-threshold detector."""

    def __init__(self) -> None:
        self.state = BandwidthUsage.NORMAL
        self.threshold = INITIAL_THRESHOLD
        self.trend = 0.0
        self.modified_trend = 0.0
        self._points: deque[tuple[float, float]] = deque(maxlen=WINDOW)
        self._deltas = 0
        self._first_arrival_ms: float | None = None
        self._accumulated_ms = 0.0
        self._smoothed_ms = 0.0
        self._previous_trend = 0.0
        self._overuse_ms = -1.0
        self._overuse_count = 0
        self._threshold_updated_ms: float | None = None

    def update(self, delta: GroupDelta) -> BandwidthUsage:
        """Take one group delta; the detector's verdict."""
        self._deltas = min(self._deltas + 1, 1000)
        if self._first_arrival_ms is None:
            self._first_arrival_ms = delta.arrival_ms
        self._accumulated_ms += delta.arrival_delta_ms - delta.send_delta_ms
        self._smoothed_ms = SMOOTHING * self._smoothed_ms + (1 - SMOOTHING) * self._accumulated_ms
        self._points.append((delta.arrival_ms - self._first_arrival_ms, self._smoothed_ms))
        if len(self._points) == WINDOW:
            slope = _slope(self._points)
            if slope is not None:
                self.trend = slope
        self._detect(delta.send_delta_ms, delta.arrival_ms)
        return self.state

    def _detect(self, send_delta_ms: float, now_ms: float) -> None:
        if self._deltas < 2:
            self.state = BandwidthUsage.NORMAL
            return
        modified = min(self._deltas, MAX_DELTAS_FOR_GAIN) * self.trend * THRESHOLD_GAIN
        self.modified_trend = modified
        if modified > self.threshold:
            if self._overuse_ms < 0:
                self._overuse_ms = send_delta_ms / 2  # assume half of this delta was over
            else:
                self._overuse_ms += send_delta_ms
            self._overuse_count += 1
            if (
                self._overuse_ms > OVERUSE_TIME_MS
                and self._overuse_count > 1
                and self.trend >= self._previous_trend
            ):
                self._overuse_ms = 0.0
                self._overuse_count = 0
                self.state = BandwidthUsage.OVERUSING
        elif modified < -self.threshold:
            self._overuse_ms = -1.0
            self._overuse_count = 0
            self.state = BandwidthUsage.UNDERUSING
        else:
            self._overuse_ms = -1.0
            self._overuse_count = 0
            self.state = BandwidthUsage.NORMAL
        self._previous_trend = self.trend
        self._adapt_threshold(modified, now_ms)

    def _adapt_threshold(self, modified: float, now_ms: float) -> None:
        if self._threshold_updated_ms is None:
            self._threshold_updated_ms = now_ms
        if abs(modified) > self.threshold + THRESHOLD_IGNORE_ABOVE:
            self._threshold_updated_ms = now_ms
            return
        rate = THRESHOLD_DOWN_RATE if abs(modified) < self.threshold else THRESHOLD_UP_RATE
        elapsed = min(max(now_ms - self._threshold_updated_ms, 0.0), THRESHOLD_MAX_STEP_MS)
        self.threshold += rate * (abs(modified) - self.threshold) * elapsed
        low, high = THRESHOLD_RANGE
        self.threshold = min(max(self.threshold, low), high)
        self._threshold_updated_ms = now_ms


def _slope(points: deque[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x; None when every x is the same."""
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in points)
    denominator = sum((x - mean_x) ** 2 for x, _ in points)
    return numerator / denominator if denominator else None
