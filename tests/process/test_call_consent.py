"""Consent for calls (docs/security.md): a webcam-peer answers only when a person
says y at its terminal, or its user said --auto-answer / --answer-from."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from peer.call.answering import Answer, AnswerPolicy
from tests.helpers.peer_support import NO_MEDIA, peer_at_a_terminal, start_peer
from tests.helpers.support import BIN, Process, SignalingServer

pytestmark = pytest.mark.slow

# BOT_FLAGS without --auto-answer: a webcam-peer as someone starts it by hand.
BY_HAND = ("--no-window", "--no-speaker", "--ice-host", "127.0.0.1")


def by_hand(server: SignalingServer, *args: str) -> Process:
    return Process([str(BIN / "webcam-peer"), "--server", server.ws_url, *BY_HAND, *args])


def test_the_policy() -> None:
    default = AnswerPolicy()
    assert default.decide("alice", at_a_terminal=True) is Answer.ASK
    assert default.decide("alice", at_a_terminal=False) is Answer.DECLINE
    auto = AnswerPolicy.of(True, [], False)
    assert auto.decide("mallory", at_a_terminal=False) is Answer.ANSWER
    listed = AnswerPolicy.of(False, ["alice"], False)
    assert listed.decide("alice", at_a_terminal=False) is Answer.ANSWER
    assert listed.decide("mallory", at_a_terminal=False) is Answer.DECLINE
    assert listed.decide("mallory", at_a_terminal=True) is Answer.ASK
    assert AnswerPolicy.of(True, [], True).decide("x", at_a_terminal=False) is Answer.ASK


def test_without_a_terminal_or_auto_answer_a_call_is_declined(
    signaling_server: SignalingServer,
) -> None:
    bob = by_hand(signaling_server, "--login", "bob", *NO_MEDIA)
    try:
        bob.wait_for("waiting for calls")
        alice = start_peer(signaling_server, "--login", "alice", "--call", "bob", *NO_MEDIA)
        assert alice.wait(30) == 7
        assert any("bob declined the call" in line for line in alice.lines), alice.lines
        bob.wait_for(
            r"declined the call from alice: nobody at a terminal to ask "
            r"\(--auto-answer, or --answer-from alice, answers calls unattended\)"
        )
        assert not any("connected" in line for line in bob.drain())
    finally:
        bob.stop()


def test_answer_from_answers_only_the_named_callers(signaling_server: SignalingServer) -> None:
    bob = by_hand(signaling_server, "--login", "bob", *NO_MEDIA, "--answer-from", "alice")
    try:
        bob.wait_for("waiting for calls")
        mallory = start_peer(signaling_server, "--login", "mallory", "--call", "bob", *NO_MEDIA)
        assert mallory.wait(30) == 7
        bob.wait_for("declined the call from mallory")
        alice = start_peer(signaling_server, "--login", "alice", "--call", "bob", *NO_MEDIA)
        try:
            alice.wait_for("call with bob connected", timeout=30)
            bob.wait_for("call with alice connected")
        finally:
            alice.stop()
    finally:
        bob.stop()


@pytest.fixture
def bob_at_a_terminal(signaling_server: SignalingServer) -> Iterator[tuple[Process, int]]:
    """bob with a pseudo-terminal as standard input (a person could type there);
    the master end to type on."""
    with peer_at_a_terminal(signaling_server, *BY_HAND, "--login", "bob", *NO_MEDIA) as bob:
        yield bob


@pytest.mark.parametrize("typed", ["y", "n"])
def test_a_person_at_a_terminal_is_asked(
    signaling_server: SignalingServer, bob_at_a_terminal: tuple[Process, int], typed: str
) -> None:
    bob, keyboard = bob_at_a_terminal
    bob.wait_for("waiting for calls")
    alice = start_peer(signaling_server, "--login", "alice", "--call", "bob", *NO_MEDIA)
    try:
        bob.wait_for(r"answer the call from alice\? \[y/n\]")
        os.write(keyboard, f"{typed}\n".encode())
        if typed == "y":
            alice.wait_for("call with bob connected", timeout=30)
            bob.wait_for("call with alice connected")
        else:
            assert alice.wait(30) == 7
            bob.wait_for("declined the call from alice")
    finally:
        alice.stop()
