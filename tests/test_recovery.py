"""peer/recovery.py: when a call's media fails, who re-offers, and only once.

The whole behaviour, with real peers whose media path is cut in a namespace lab, is
tests/test_reliability.py::test_a_failed_media_connection_is_re_established_once.
"""

from __future__ import annotations

import pytest

from peer.recovery import (
    MAX_ATTEMPTS,
    STEPS,
    Ending,
    Recovery,
    Step,
    ice_ufrag,
    is_fresh_negotiation,
)

SDP = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "a=ice-ufrag:{}\r\na=ice-pwd:x\r\n"
)


@pytest.mark.parametrize(("dialled", "step"), [(True, Step.REOFFER), (False, Step.AWAIT_OFFER)])
def test_only_the_side_that_dialled_re_offers(dialled: bool, step: Step) -> None:
    recovery = Recovery(dialled=dialled)
    assert recovery.next_step(Ending.MEDIA_FAILED, signaling_up=True) is step
    assert recovery.attempts == 1


def test_a_fresh_offer_from_the_partner_is_waited_for_by_the_side_that_did_not_dial() -> None:
    assert Recovery(dialled=False).next_step(Ending.REPLACED, signaling_up=True) is Step.AWAIT_OFFER
    # The dialler never gets one (the other side does not offer): it ends.
    assert Recovery(dialled=True).next_step(Ending.REPLACED, signaling_up=True) is Step.END


@pytest.mark.parametrize("dialled", [True, False])
def test_one_attempt_then_the_call_ends(dialled: bool) -> None:
    recovery = Recovery(dialled=dialled)
    for _ in range(MAX_ATTEMPTS):
        assert recovery.next_step(Ending.MEDIA_FAILED, signaling_up=True) is not Step.END
    assert recovery.next_step(Ending.MEDIA_FAILED, signaling_up=True) is Step.END
    assert recovery.next_step(Ending.REPLACED, signaling_up=True) is Step.END
    assert recovery.attempts == MAX_ATTEMPTS


@pytest.mark.parametrize("ending", list(Ending))
@pytest.mark.parametrize("dialled", [True, False])
def test_no_attempt_without_the_server_or_after_a_hang_up(ending: Ending, dialled: bool) -> None:
    recovery = Recovery(dialled=dialled)
    assert recovery.next_step(ending, signaling_up=False) is Step.END
    assert Recovery(dialled=dialled).next_step(Ending.OTHER, signaling_up=True) is Step.END
    assert recovery.attempts == 0  # an ending that is not tried does not use the budget


def test_the_table_covers_every_recoverable_ending_for_both_sides() -> None:
    recoverable = [e for e in Ending if e is not Ending.OTHER]
    assert set(STEPS) == {(e, d) for e in recoverable for d in (True, False)}


def test_ice_ufrag_reads_the_first_one() -> None:
    assert ice_ufrag(SDP.format("abcd") + "a=ice-ufrag:later\r\n") == "abcd"
    assert ice_ufrag("v=0\r\n") is None


@pytest.mark.parametrize(
    ("current", "offered", "fresh"),
    [
        (SDP.format("abcd"), SDP.format("wxyz"), True),  # new credentials: starting over
        (SDP.format("abcd"), SDP.format("abcd"), False),  # a renegotiation
        (None, SDP.format("abcd"), False),  # no connection yet: the first offer
        (SDP.format("abcd"), "v=0\r\n", False),  # nothing to compare
    ],
)
def test_a_fresh_negotiation_is_told_by_its_ice_credentials(
    current: str | None, offered: str, fresh: bool
) -> None:
    assert is_fresh_negotiation(current, offered) is fresh
