"""peer/ice/consent_freshness.py: is consent still fresh, given when checks went out and
when their answers came back?

Synthetic traces on a made-up clock. With real peers on a congested link, and with
the link cut, it is tests/network/test_liveness.py.
"""

from __future__ import annotations

import itertools

import pytest

from peer.ice.consent_freshness import MIN_TIMEOUT, ConsentFreshness, ConsentPolicy, RoundTrip

POLICY = ConsentPolicy(interval=0.5, failures=10, max_timeout=2.5)


def run(
    freshness: ConsentFreshness,
    until: float,
    answers: dict[int, float],
    *,
    start: float = 0.0,
    first: int = 0,
) -> float | None:
    """Send a check every interval from ``start`` until ``until`` (numbered from
    ``first``); check ``n``'s answer comes ``answers[n]`` s after it left, if at all.
    Returns when consent expired, or None."""
    events: list[tuple[float, int, str]] = []
    n = first
    t = start
    while t < until:
        events.append((t, n, "sent"))
        if n in answers:
            events.append((t + answers[n], n, "answer"))
        n += 1
        t += freshness.policy.interval
    events.sort()
    for at, check, what in events:
        if at >= until:
            break
        if freshness.expired(at):
            return at
        if what == "sent":
            freshness.sent(check, at)
        else:
            freshness.answer(check, at)
    return until if freshness.expired(until) else None


def test_a_prompt_path_keeps_consent() -> None:
    freshness = ConsentFreshness(POLICY)
    assert run(freshness, 60, {n: 0.002 for n in range(200)}) is None
    assert freshness.answered == freshness.checks == 120
    assert freshness.answered_late == 0
    assert freshness.timeout == MIN_TIMEOUT


def test_answers_behind_a_queue_are_late_for_aioice_but_count_here() -> None:
    # 0.85 s round trips: every one over aioice's 0.5 s, every one counted.
    freshness = ConsentFreshness(POLICY)
    assert run(freshness, 60, {n: 0.85 for n in range(200)}) is None
    assert freshness.answered >= 100
    # Only the first answers are late: the timeout follows the round trip they measured.
    assert 0 < freshness.answered_late <= 2
    assert 0.85 <= freshness.timeout <= 1.5
    assert freshness.rtt.smoothed == pytest.approx(0.85, abs=0.05)


def test_a_queue_that_builds_up_slowly_is_followed() -> None:
    # From 5 ms to 2 s of round trip over 30 s: well past any fixed timeout.
    freshness = ConsentFreshness(POLICY)
    answers = {n: 0.005 + 2.0 * min(n / 60, 1) for n in range(200)}
    assert run(freshness, 60, answers) is None
    assert freshness.answered_late == 0  # the timeout grew ahead of the round trip
    assert freshness.timeout > 2.0


def test_a_sudden_queue_is_ridden_out_through_late_answers() -> None:
    # 5 ms, then at once 2.2 s: the timeout still says 0.5 s when the first slow
    # answers are due, but each one that comes in clears the misses before it.
    freshness = ConsentFreshness(POLICY)
    answers = {n: 0.005 if n < 20 else 2.2 for n in range(200)}
    assert run(freshness, 60, answers) is None
    assert freshness.answered_late >= 1


def test_lost_checks_are_ridden_out_while_some_get_through() -> None:
    # A quarter lost, in runs of up to 9: consent holds.
    freshness = ConsentFreshness(POLICY)
    lost = set(range(10, 19)) | set(range(40, 200, 4))
    answers = {n: 0.85 for n in range(200) if n not in lost}
    assert run(freshness, 60, answers) is None
    assert freshness.longest_silence == 9


def test_ten_lost_in_a_row_expire_consent() -> None:
    freshness = ConsentFreshness(POLICY)
    answers = {n: 0.01 for n in range(200) if not 20 <= n < 30}
    expired = run(freshness, 60, answers)
    # Check 29 left at 14.5 s and had 0.5 s: nothing from check 30 counts any more.
    assert expired == pytest.approx(15.0, abs=0.01)


@pytest.mark.parametrize("round_trip", [0.002, 0.85, 2.2])
def test_a_cut_is_noticed_within_the_worst_case(round_trip: float) -> None:
    freshness = ConsentFreshness(POLICY)
    cut = 30.0
    # Every check answered until the cut; a check whose answer would arrive after it is lost.
    answers = {n: round_trip for n in range(200) if n * POLICY.interval + round_trip < cut}
    expired = run(freshness, 60, answers)
    assert expired is not None
    assert cut < expired <= cut + POLICY.worst_case_seconds()
    # And not much sooner than the failures take: no false alarm from the queue itself.
    assert expired - cut >= POLICY.failures * POLICY.interval - round_trip


def test_an_answer_only_clears_checks_sent_before_it() -> None:
    freshness = ConsentFreshness(POLICY)
    for n in range(12):
        freshness.sent(n, n * 0.5)
    assert freshness.answer(3, 6.0) == pytest.approx(4.5)
    assert [check for check, _ in freshness.pending] == list(range(4, 12))
    # An answer to a check already cleared, or to one never sent, counts for nothing.
    assert freshness.answer(1, 6.1) is None
    assert freshness.answer("stranger", 6.1) is None
    assert freshness.answered == 1
    assert freshness.longest_silence == 3


def test_expiry_time_is_when_the_tenth_unanswered_check_runs_out() -> None:
    freshness = ConsentFreshness(POLICY)
    for n in range(9):
        freshness.sent(n, n * 0.5)
    assert freshness.expires_at() is None  # too few out to expire whatever happens
    freshness.sent(9, 4.5)
    assert freshness.expires_at() == pytest.approx(4.5 + MIN_TIMEOUT)
    assert not freshness.expired(5.0)
    assert freshness.expired(5.01)
    assert freshness.missed(5.01) == 10


def test_the_timeout_is_rfc6298s_and_bounded() -> None:
    rtt = RoundTrip()
    assert rtt.timeout(2.5) == MIN_TIMEOUT  # nothing measured: STUN's own
    rtt.add(0.1)
    assert rtt.smoothed == 0.1 and rtt.variation == 0.05
    assert rtt.timeout(2.5) == MIN_TIMEOUT  # 0.1 + 4 x 0.05 is under the floor
    for sample in itertools.repeat(0.9, 3):
        rtt.add(sample)
    assert 0.9 < rtt.timeout(2.5) < 2.5
    for _ in range(50):
        rtt.add(5.0)
    assert rtt.timeout(2.5) == 2.5


def test_the_worst_case_is_inside_the_promise() -> None:
    # docs/reliability.md promises 15 s; the bounded TURN deletion adds 1 s.
    assert POLICY.worst_case_seconds() == pytest.approx(9.1)
    assert ConsentPolicy() == POLICY


@pytest.mark.parametrize(
    ("interval", "failures", "max_timeout"),
    [(0, 10, 2.5), (-1, 10, 2.5), (0.5, 0, 2.5), (0.5, 10, 0.1)],
)
def test_bad_settings_are_refused(interval: float, failures: int, max_timeout: float) -> None:
    with pytest.raises(ValueError, match="bad consent settings"):
        ConsentPolicy(interval=interval, failures=failures, max_timeout=max_timeout)
