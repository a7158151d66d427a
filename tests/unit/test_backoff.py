"""The signaling client's reconnection delays: doubling, capped, jittered.

That a call survives the reconnection is tests/network/test_reliability.py's business.
"""

from __future__ import annotations

import random

from peer.session.client import FIRST_DELAY, MAX_DELAY, Backoff


def test_delays_double_up_to_the_cap_within_the_jitter() -> None:
    backoff = Backoff(rng=random.Random(1))
    nominal = FIRST_DELAY
    for _ in range(12):
        wait = backoff.next()
        assert 0.5 * nominal <= wait <= 1.5 * nominal
        nominal = min(nominal * 2, MAX_DELAY)
    assert nominal == MAX_DELAY  # reached the cap; never more than 1.5x it


def test_two_clients_do_not_wait_alike() -> None:
    waits = [Backoff().next() for _ in range(50)]
    assert len(set(waits)) > 40  # scattered, not one instant for every client
