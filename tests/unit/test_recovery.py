"""peer/call/recovery.py: when a call's media fails, who re-offers, and only once.

The whole behaviour, with real peers whose media path is cut in a namespace lab, is
tests/network/test_reliability.py::test_a_failed_media_connection_is_re_established_once.
"""

from __future__ import annotations

import pytest

from peer.call.recovery import (
    FRESH_OFFER_HOLD,
    MAX_ATTEMPTS,
    SILENT_IS_FAILING,
    STEPS,
    Ending,
    FreshOfferHold,
    Recovery,
    Step,
    Verdict,
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


def test_a_fresh_offer_is_refused_while_our_connection_keeps_receiving() -> None:
    hold = FreshOfferHold(received_at=100.0)
    now, received = 100.0, 0
    while now < 100.0 + FRESH_OFFER_HOLD:
        assert hold.judge(now, received) is Verdict.WAIT
        now += 0.5
        received += 1200
    assert hold.judge(now, received) is Verdict.REFUSE


def test_a_fresh_offer_is_taken_once_our_connection_falls_silent() -> None:
    hold = FreshOfferHold(received_at=0.0)
    assert hold.judge(0.0, 5000) is Verdict.WAIT
    assert hold.judge(1.0, 6000) is Verdict.WAIT
    assert hold.judge(1.0 + SILENT_IS_FAILING - 0.1, 6000) is Verdict.WAIT
    assert hold.judge(1.0 + SILENT_IS_FAILING, 6000) is Verdict.TAKE


def test_silence_is_measured_from_the_first_look_not_the_offer() -> None:
    """A connection already silent when the offer comes is given the same 2 s: nothing
    is known of what came before the first sample."""
    hold = FreshOfferHold(received_at=0.0)
    assert hold.judge(0.0, 0) is Verdict.WAIT
    assert hold.judge(SILENT_IS_FAILING, 0) is Verdict.TAKE
