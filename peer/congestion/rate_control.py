"""AIMD rate control: turn the delay signal into a bitrate.

A state machine as a table: the delay detector's verdict moves it between
``increase``, ``hold`` and ``decrease``.

- increase: +8 % a second while the link's capacity is unknown, growing by 4 points
  for every second without overuse up to +25 % a second (GCC keeps 8 % and relies on
  probing to find a link that got faster; without probes this recovers a 300 kbit/s ->
  2 Mbit/s step in about 10 s instead of 22, and overshoots by a few % for the
  ~150 ms the detector needs); once an overuse has
  shown where the capacity is, about one packet per response time (RTT + 100 ms) so it
  creeps up to the edge instead of overshooting. Never more than 1.5 x what the
  receiver acknowledged + 10 kbit/s: a sender that does not use its estimate must not
  inflate it.
- decrease: to 0.85 x the acknowledged rate (what the link demonstrably carried), or
  of a probe's reading of the last 2 s when that is higher (once), at most once per
  RTT, then hold.
- hold: wait for the queue to drain (underuse) or settle (normal).
"""

from __future__ import annotations

import enum
import math
from typing import Final

from peer.congestion.trendline import BandwidthUsage
from signaling.statetable import from_each, step

BETA: Final = 0.85
MULTIPLICATIVE_PER_SECOND: Final = 1.08
MULTIPLICATIVE_GAIN_PER_SECOND: Final = 0.04
MAX_MULTIPLICATIVE_PER_SECOND: Final = 1.25
MIN_INCREASE_BPS: Final = 1_000
MIN_ADDITIVE_BPS_PER_SECOND: Final = 4_000
ACKED_HEADROOM: Final = 1.5
ACKED_HEADROOM_BPS: Final = 10_000
ASSUMED_FPS: Final = 30.0
MTU_BITS: Final = 1_200 * 8
RESPONSE_EXTRA_MS: Final = 100.0
DECREASE_INTERVAL_RANGE_MS: Final = (10.0, 200.0)
MAX_INCREASE_STEP_MS: Final = 1_000.0
CAPACITY_SMOOTHING: Final = 0.05
CAPACITY_DEVIATION_RANGE: Final = (0.4, 2.5)
# A probe's reading stays the reference of the first decrease this long after it: the
# acknowledged rate lags a jump (the encoder has not caught up), and a cut to 0.85 x
# that lagging rate would undo the probe.
PROBE_REFERENCE_MS: Final = 2_000.0


class RateState(enum.Enum):
    HOLD = "hold"
    INCREASE = "increase"
    DECREASE = "decrease"


# (state, detector verdict) -> next state: overuse always decreases, underuse always
# holds (the queue drains), a normal verdict steps decrease -> hold -> increase.
_TRANSITIONS: Final[dict[tuple[RateState, BandwidthUsage], RateState]] = {
    (RateState.HOLD, BandwidthUsage.NORMAL): RateState.INCREASE,
    (RateState.INCREASE, BandwidthUsage.NORMAL): RateState.INCREASE,
    (RateState.DECREASE, BandwidthUsage.NORMAL): RateState.HOLD,
    **from_each(
        RateState,
        {BandwidthUsage.OVERUSING: RateState.DECREASE, BandwidthUsage.UNDERUSING: RateState.HOLD},
    ),
}


class LinkCapacity:
    """Where overuse happened: a running mean and spread of the acknowledged rate then."""

    def __init__(self) -> None:
        self.estimate_kbps: float | None = None
        self._deviation = CAPACITY_DEVIATION_RANGE[0]

    def _spread_kbps(self) -> float:
        return math.sqrt(self._deviation * (self.estimate_kbps or 0.0))

    def upper_bps(self) -> float:
        return ((self.estimate_kbps or 0.0) + 3 * self._spread_kbps()) * 1000

    def lower_bps(self) -> float:
        return max((self.estimate_kbps or 0.0) - 3 * self._spread_kbps(), 0.0) * 1000

    def on_overuse(self, acked_bps: float) -> None:
        sample = acked_bps / 1000
        if self.estimate_kbps is None:
            self.estimate_kbps = sample
        else:
            self.estimate_kbps += CAPACITY_SMOOTHING * (sample - self.estimate_kbps)
        error = self.estimate_kbps - sample
        normalizer = max(self.estimate_kbps, 1.0)
        self._deviation += CAPACITY_SMOOTHING * (error * error / normalizer - self._deviation)
        low, high = CAPACITY_DEVIATION_RANGE
        self._deviation = min(max(self._deviation, low), high)

    def reset(self) -> None:
        self.estimate_kbps = None


class AimdRateControl:
    """The delay-based bitrate: additive/multiplicative increase, multiplicative decrease."""

    def __init__(self, *, start_bps: int, min_bps: int, max_bps: int) -> None:
        self.min_bps = min_bps
        self.max_bps = max_bps
        self.bitrate_bps = float(min(max(start_bps, min_bps), max_bps))
        self.state = RateState.INCREASE
        self.capacity = LinkCapacity()
        self.decreases = 0
        # Times the link carried clearly more than the capacity it had overused at, with no
        # overuse on the way: it got faster (the probe planner's cue).
        self.capacity_outgrown = 0
        self._outgrown_bps: float | None = None  # the capacity's upper bound when it was reset
        self._changed_ms: float | None = None
        self._decreased_ms: float | None = None
        self._multiplicative_since_ms: float | None = None
        self._probed: tuple[float, float] | None = None  # bit/s, when

    def update(
        self, usage: BandwidthUsage, acked_bps: float | None, rtt_ms: float, now_ms: float
    ) -> float:
        """Apply one detector verdict; the new delay-based bitrate."""
        if self._changed_ms is None:
            self._changed_ms = now_ms
        if usage is BandwidthUsage.OVERUSING and not self._may_decrease(rtt_ms, now_ms):
            return self.bitrate_bps  # a decrease just happened; let it take effect first
        self.state = step(_TRANSITIONS, self.state, usage)
        if self.state is RateState.INCREASE:
            self._increase(acked_bps, rtt_ms, now_ms)
        elif self.state is RateState.DECREASE:
            self._decrease(acked_bps, now_ms)
        else:
            self._changed_ms = now_ms  # an increase after holding starts from now
        self.bitrate_bps = min(max(self.bitrate_bps, self.min_bps), self.max_bps)
        return self.bitrate_bps

    def set_bounds(self, min_bps: int, max_bps: int) -> None:
        self.min_bps, self.max_bps = min_bps, max_bps
        self.bitrate_bps = min(max(self.bitrate_bps, min_bps), max_bps)

    def on_probe(self, bitrate_bps: float, now_ms: float) -> None:
        """A probe measured ``bitrate_bps`` through the link."""
        self._probed = (bitrate_bps, now_ms)

    def set_estimate(self, bitrate_bps: float, now_ms: float) -> None:
        """A probe showed the link carries ``bitrate_bps``: start from there."""
        if self.capacity.estimate_kbps is not None and bitrate_bps > self.capacity.upper_bps():
            self.capacity.reset()  # the capacity it overused at is gone
        self.bitrate_bps = min(max(bitrate_bps, self.min_bps), self.max_bps)
        self._changed_ms = now_ms

    def _may_decrease(self, rtt_ms: float, now_ms: float) -> bool:
        if self._decreased_ms is None:
            return True
        low, high = DECREASE_INTERVAL_RANGE_MS
        return now_ms - self._decreased_ms >= min(max(rtt_ms, low), high)

    def _increase(self, acked_bps: float | None, rtt_ms: float, now_ms: float) -> None:
        assert self._changed_ms is not None
        elapsed_ms = min(max(now_ms - self._changed_ms, 0.0), MAX_INCREASE_STEP_MS)
        if self.capacity.estimate_kbps is not None and self.bitrate_bps > self.capacity.upper_bps():
            self._outgrown_bps = self.capacity.upper_bps()
            self.capacity.reset()  # far above where it last overused: the link changed
        if self._outgrown_bps is not None and (acked_bps or 0.0) > self._outgrown_bps:
            # Not the estimate alone (it may sit above a loss-limited target): what arrived.
            self._outgrown_bps = None
            self.capacity_outgrown += 1
        if self.capacity.estimate_kbps is None:
            if self._multiplicative_since_ms is None:
                self._multiplicative_since_ms = now_ms
            growing_s = max(self._changed_ms - self._multiplicative_since_ms, 0.0) / 1000
            per_second = min(
                MULTIPLICATIVE_PER_SECOND + MULTIPLICATIVE_GAIN_PER_SECOND * growing_s,
                MAX_MULTIPLICATIVE_PER_SECOND,
            )
            factor = per_second ** (elapsed_ms / 1000) - 1
            increase = max(self.bitrate_bps * factor, MIN_INCREASE_BPS * elapsed_ms / 1000)
        else:
            self._multiplicative_since_ms = None
            increase = self._additive_per_second(rtt_ms) * elapsed_ms / 1000
        raised = self.bitrate_bps + increase
        if acked_bps is not None:
            # Room above what was acknowledged, but no further from an unused estimate.
            headroom = ACKED_HEADROOM * acked_bps + ACKED_HEADROOM_BPS
            raised = min(raised, max(self.bitrate_bps, headroom))
        self.bitrate_bps = raised
        self._changed_ms = now_ms

    def _additive_per_second(self, rtt_ms: float) -> float:
        bits_per_frame = self.bitrate_bps / ASSUMED_FPS
        packets_per_frame = max(math.ceil(bits_per_frame / MTU_BITS), 1)
        packet_bits = bits_per_frame / packets_per_frame
        response_s = (rtt_ms + RESPONSE_EXTRA_MS) / 1000
        return max(packet_bits / response_s, MIN_ADDITIVE_BPS_PER_SECOND)

    def _decrease(self, acked_bps: float | None, now_ms: float) -> None:
        if self._probed is not None:
            probed_bps, probed_ms = self._probed
            self._probed = None
            if now_ms - probed_ms <= PROBE_REFERENCE_MS and (acked_bps or 0.0) < probed_bps:
                acked_bps = probed_bps
        if acked_bps is not None:
            if self.capacity.estimate_kbps is not None and acked_bps < self.capacity.lower_bps():
                self.capacity.reset()  # the link got much slower than it was
            decreased = BETA * acked_bps
            if decreased > self.bitrate_bps and self.capacity.estimate_kbps is not None:
                decreased = BETA * self.capacity.estimate_kbps * 1000
            self.capacity.on_overuse(acked_bps)
        else:
            decreased = BETA * self.bitrate_bps
        self.bitrate_bps = min(self.bitrate_bps, decreased)
        self.decreases += 1
        self._outgrown_bps = None
        self._multiplicative_since_ms = None
        self._decreased_ms = now_ms
        self._changed_ms = now_ms
        self.state = RateState.HOLD
