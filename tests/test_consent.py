"""peer/consent.py sets aioice's consent-freshness globals: they must still be read.

What it is for (a partner that vanished along with the server is noticed within
15 s) is shown by tests/test_reliability.py::test_a_vanished_peer_is_noticed_through_consent.
"""

from __future__ import annotations

import pytest
from aioice import ice, turn

from peer import consent


def test_the_aioice_globals_it_sets_are_still_read() -> None:
    consent.check_aioice_consent()  # raises, naming the global, if aioice moved it


def test_install_sets_the_globals_and_the_worst_case_is_within_the_promise() -> None:
    consent.install()
    assert ice.CONSENT_INTERVAL == consent.CHECK_INTERVAL
    assert ice.CONSENT_FAILURES == consent.FAILURES
    bounded = turn.TurnClientMixin.delete
    consent.install()  # twice: wrapped once
    assert turn.TurnClientMixin.delete is bounded
    assert bounded.__module__ == consent.__name__
    # The promise is 15 s; the settings leave a margin for a loaded machine.
    assert consent.worst_case_seconds() < 11


@pytest.mark.parametrize(("interval", "failures"), [(0, 5), (-1, 5), (1, 0)])
def test_bad_settings_are_refused(interval: float, failures: int) -> None:
    with pytest.raises(ValueError, match="bad consent settings"):
        consent.install(interval, failures)
