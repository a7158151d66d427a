"""The server's messages as types (peer/session/messages.py) and the inbox that keeps
them for whoever waits (peer/session/inbox.py)."""

from __future__ import annotations

import asyncio

import pytest

from peer.session.inbox import Inbox
from peer.session.messages import (
    CloseReason,
    RemoteCandidate,
    RemoteClose,
    RemoteOffer,
    ServerError,
    Unhandled,
    UsersOnline,
    close,
    parse,
)
from signaling.protocol import Reason


def test_relayed_messages_carry_their_sender() -> None:
    offer = {"type": "offer", "sdp": "v=0"}
    assert parse({"type": "offer", "username": "bob", "offer": offer}) == RemoteOffer("bob", offer)
    candidate = parse(
        {"type": "candidate", "username": "bob", "candidate": {"usernameFragment": "u1"}}
    )
    assert isinstance(candidate, RemoteCandidate) and candidate.ufrag == "u1"


def test_a_close_reason_is_the_code_it_was_sent_with() -> None:
    busy = parse({"type": "close", "username": "bob", "reason": "busy"})
    assert busy == RemoteClose("bob", CloseReason.BUSY)
    assert CloseReason.BUSY == Reason.BUSY
    assert parse({"type": "close", "username": "bob", "reason": 7}) == RemoteClose("bob", None)
    forged = parse({"type": "close", "username": "bob", "reason": "x\x1b[2Jy"})
    assert isinstance(forged, RemoteClose) and forged.reason is not None
    assert "\x1b" not in forged.reason


def test_a_sender_name_that_breaks_the_rule_is_dropped() -> None:
    assert parse({"type": "offer", "username": "bob\nalice", "offer": {}}) is None


def test_users_errors_and_the_rest() -> None:
    assert parse({"type": "users", "users": ["bob", "no way", 3]}) == UsersOnline(("bob",))
    error = parse({"type": "error", "reason": "unknown-user", "message": "no such user"})
    assert isinstance(error, ServerError) and error.reason == Reason.UNKNOWN_USER
    assert isinstance(parse({"type": "login", "success": True}), Unhandled)
    assert isinstance(parse({"type": "offer", "offer": {}}), Unhandled)  # no sender


def test_close_leaves_out_an_empty_reason() -> None:
    assert close("bob") == {"type": "close", "otherUsername": "bob"}
    assert close("bob", CloseReason.DECLINED)["reason"] == "declined"


async def test_the_inbox_gives_the_oldest_wanted_item_and_keeps_the_rest_in_order() -> None:
    inbox: Inbox[object] = Inbox()
    for item in ("a1", 1, "a2", 2):
        inbox.put(item)
    assert await inbox.take(lambda item: isinstance(item, int)) == 1
    assert inbox.take_nowait(lambda item: isinstance(item, int)) == 2
    assert inbox.take_nowait(lambda item: isinstance(item, int)) is None
    assert await inbox.peek(lambda item: isinstance(item, str)) == "a1"
    inbox.discard(lambda item: item == "a1")
    assert await inbox.take(lambda item: True) == "a2"
    assert len(inbox) == 0


async def test_the_inbox_wakes_a_waiter_only_for_what_it_wants() -> None:
    inbox: Inbox[object] = Inbox()
    waiter = asyncio.ensure_future(inbox.take(lambda item: item == "wanted"))
    inbox.put("other")
    await asyncio.sleep(0.01)
    assert not waiter.done()
    inbox.put("wanted")
    assert await asyncio.wait_for(waiter, 1) == "wanted"
    assert len(inbox) == 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(inbox.take(lambda item: item == "never"), 0.05)
