"""The application-limited region detector on synthetic send traces."""

from __future__ import annotations

from peer.congestion.alr import WINDOW_MS, AlrDetector


def _send(detector: AlrDetector, rate_bps: float, start_ms: float, end_ms: float) -> None:
    """Packets of 1000 bytes at ``rate_bps`` from ``start_ms`` to ``end_ms``."""
    gap_ms = 1000 * 8000 / rate_bps
    t = start_ms
    while t < end_ms:
        detector.on_sent(1000, t)
        t += gap_ms


def test_a_sender_at_its_estimate_is_not_application_limited() -> None:
    detector = AlrDetector(1_000_000)
    _send(detector, 950_000, 0.0, 10_000.0)
    assert not detector.in_alr and detector.periods == 0


def test_sending_under_two_thirds_of_the_estimate_enters_and_filling_it_leaves() -> None:
    detector = AlrDetector(1_000_000)
    _send(detector, 1_000_000, 0.0, 2_000.0)
    _send(detector, 300_000, 2_000.0, 6_000.0)
    assert detector.in_alr and detector.started_ms is not None
    # sending at the estimate left a debt of at most the window: under two seconds to tell
    assert 2_000.0 + WINDOW_MS <= detector.started_ms <= 4_000.0
    _send(detector, 1_000_000, 6_000.0, 10_000.0)
    assert not detector.in_alr
    assert detector.ended_ms is not None and 6_000.0 <= detector.ended_ms <= 7_000.0
    assert detector.periods == 1


def test_just_over_the_usage_ratio_stays_out() -> None:
    detector = AlrDetector(1_000_000)
    _send(detector, 700_000, 0.0, 20_000.0)
    assert detector.periods == 0


def test_a_long_pause_counts_for_no_more_than_the_window() -> None:
    detector = AlrDetector(1_000_000)
    detector.on_sent(1000, 0.0)
    detector.on_sent(1000, 60_000.0)  # a minute of nothing
    assert detector.in_alr and detector.level <= 1.0
    # half a second at the estimate brings it out again, not a minute
    _send(detector, 1_000_000, 60_000.0, 60_600.0)
    assert not detector.in_alr


def test_a_lower_estimate_makes_the_same_sending_fill_it() -> None:
    detector = AlrDetector(2_000_000)
    _send(detector, 800_000, 0.0, 3_000.0)
    assert detector.in_alr
    detector.set_estimate(800_000)
    _send(detector, 800_000, 3_000.0, 5_000.0)
    assert not detector.in_alr
