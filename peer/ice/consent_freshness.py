"""Whether the partner still consents to our packets on a pair: ICE consent (RFC 7675)
that a congested path does not fool.

Sans-I/O: the clock, the checks sent and the answers received come in; out come
whether consent has expired, when to look again, and how long a check is given.
``peer/stack/consent.py`` runs it inside aioice.

**What was wrong.** aioice sends a consent check, waits 0.5 s for its answer and
forgets it, and the next check waits for that. On a congested link the answer is
not lost, it is late: behind a 400 ms queue at each end (a 300 kbit/s link with
video queued into it) a check comes back after 0.8-0.9 s, aioice has already
counted a miss and thrown the answer away, five such misses end the call, the
re-made call queues up the same way and ends too. A congested call was read as
a dead one.

**What counts as consent here.** Only what RFC 7675 counts: an answer to one of
our own checks, authenticated with the partner's ICE password (checked by the
shell) and carrying a transaction ID only we and the partner have seen. The RFC
lets consent ride on an answer to *any* check sent within its window, not just
the latest, so:

1. **An answer counts however late it is.** A check stays answerable until
   consent expires or a newer check is answered. Its answer proves the
   partner's ICE agent took our packet and replied: the path works in both
   directions, only slowly. It clears that check and every earlier one.
2. **A check is only counted as missed once it has had a fair time**:
   RFC 6298's retransmission timeout over the round trips the answers measured
   (smoothed RTT + 4 x its variation), never below STUN's 0.5 s and never above
   :attr:`ConsentPolicy.max_timeout`, the cap that keeps the promise of
   docs/reliability.md.
3. **Checks do not wait for each other.** One goes out every interval whether
   the previous one has been answered or not, so a queue slows the answers down
   but never the questions.

Consent expires when ``failures`` checks in a row, each given its timeout, have
gone unanswered (nothing newer answered either). That is aioice's rule with the
two misreadings taken out, so a vanished partner or a cut path is noticed as
before: within ``failures`` intervals plus one timeout.

**What does not count: media from the partner.** Authenticated RTP/RTCP coming in
says the partner is *sending* to us, not that our packets still reach it or
that it still wants them: a path dead in our direction only, or a partner whose
receive side is gone, would keep us sending (at full rate, with no congestion
control) to whoever is at that address. RFC 7675's point is that the receiver,
not the sender, decides; only an answer to our check carries its word. And it
is not needed: the answers do get through a queue, late, and counting them is
enough (docs/reliability.md has the figures).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final

MIN_TIMEOUT: Final = 0.5  # RFC 8489's initial RTO; aioice's RETRY_RTO


@dataclass(frozen=True)
class ConsentPolicy:
    interval: float = 0.5  # seconds between checks (the shell scatters it 0.8-1.2x)
    failures: int = 10  # checks in a row, each given its timeout, unanswered: consent is gone
    max_timeout: float = 2.5  # longest a check is given before it counts as missed

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.failures < 1 or self.max_timeout < MIN_TIMEOUT:
            raise ValueError(
                f"bad consent settings: interval {self.interval} s, {self.failures} failures, "
                f"timeout up to {self.max_timeout} s"
            )

    def worst_case_seconds(self) -> float:
        """The longest a path may be dead before consent expires: the last answered
        check went out just before the path died, then ``failures`` checks at the
        longest interval, the last of them given the longest timeout."""
        return (1 + self.failures) * 1.2 * self.interval + self.max_timeout


@dataclass
class RoundTrip:
    """RFC 6298's smoothed round-trip time and its variation, from answered checks."""

    smoothed: float | None = None
    variation: float = 0.0

    def add(self, sample: float) -> None:
        if self.smoothed is None:
            self.smoothed, self.variation = sample, sample / 2
            return
        self.variation = 0.75 * self.variation + 0.25 * abs(self.smoothed - sample)
        self.smoothed = 0.875 * self.smoothed + 0.125 * sample

    def timeout(self, ceiling: float) -> float:
        if self.smoothed is None:
            return MIN_TIMEOUT
        return min(max(self.smoothed + 4 * self.variation, MIN_TIMEOUT), ceiling)


@dataclass
class ConsentFreshness:
    """Consent on one candidate pair, from its checks and their answers."""

    policy: ConsentPolicy = field(default_factory=ConsentPolicy)
    rtt: RoundTrip = field(default_factory=RoundTrip)
    # Checks sent since the newest answered one, oldest first: (id, sent at).
    pending: list[tuple[Hashable, float]] = field(default_factory=list)
    checks: int = 0
    answered: int = 0
    answered_late: int = 0  # after their timeout: each one a miss aioice would have counted
    longest_silence: int = 0  # most checks in a row unanswered before an answer came
    last_answer: float | None = None

    def sent(self, check: Hashable, now: float) -> None:
        self.checks += 1
        self.pending.append((check, now))

    def answer(self, check: Hashable, now: float) -> float | None:
        """Count an (authenticated) answer to ``check``: its round trip, or None if it
        is not one still waited for (unknown, or older than an answer counted already)."""
        index = next((i for i, (pending, _) in enumerate(self.pending) if pending == check), None)
        if index is None:
            return None
        round_trip = now - self.pending[index][1]
        if round_trip > self.timeout:
            self.answered_late += 1
        self.rtt.add(round_trip)
        self.answered += 1
        self.last_answer = now
        self.longest_silence = max(self.longest_silence, index)
        # An answer vouches for the path from then on: earlier checks no longer matter.
        del self.pending[: index + 1]
        return round_trip

    @property
    def timeout(self) -> float:
        """How long a check is given before it counts as missed."""
        return self.rtt.timeout(self.policy.max_timeout)

    def missed(self, now: float) -> int:
        """Checks in a row, since the newest answer, unanswered past their timeout."""
        timeout = self.timeout
        return sum(1 for _, sent_at in self.pending if now - sent_at > timeout)

    def expired(self, now: float) -> bool:
        return self.missed(now) >= self.policy.failures

    def expires_at(self) -> float | None:
        """When consent expires if no answer comes; None while too few checks are out."""
        if len(self.pending) < self.policy.failures:
            return None
        return self.pending[self.policy.failures - 1][1] + self.timeout
