"""peer/stack/consent.py: what it changes in aioice is still there, and two real aioice
connections over loopback behave as promised with it.

What it is for, with real peers: a partner that vanished along with the server is
noticed within 15 s
(tests/network/test_reliability.py::test_a_vanished_peer_is_noticed_through_consent),
and a call across a congested link is not taken for a dead one (tests/network/test_liveness.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aioice import ice, stun, turn

from peer.ice.consent_freshness import ConsentPolicy
from peer.stack import consent, seam
from peer.stack.host_addresses import restrict_host_addresses
from peer.stack.seam import StackChanged, Undo

# Quick settings for the loopback pair, so that each case takes seconds.
QUICK = ConsentPolicy(interval=0.2, failures=5, max_timeout=2.5)
QUEUE = 0.9  # seconds the partner's answers are held back: a congested link's round trip


@pytest.fixture
def undo() -> Iterator[Undo]:
    """What a test installs is taken out again afterwards: aioice as it ships."""
    steps = Undo()
    yield steps
    steps()


def test_the_aioice_seams_are_still_there() -> None:
    consent.STOCK_SEAM.check()  # raises, naming the global, if aioice moved it
    consent.TOLERANT_SEAM.check()  # raises, naming the line, if aioice changed


def test_install_sets_the_globals_and_undo_puts_aioices_back(undo: Undo) -> None:
    interval, failures = ice.CONSENT_INTERVAL, ice.CONSENT_FAILURES
    stock, delete = ice.Connection.query_consent, turn.TurnClientMixin.delete
    consent.install(undo, "stock")
    assert ice.CONSENT_INTERVAL == consent.CHECK_INTERVAL
    assert ice.CONSENT_FAILURES == consent.FAILURES
    assert ice.Connection.query_consent is stock  # aioice's own loop
    bounded = turn.TurnClientMixin.delete
    assert bounded.__module__ == consent.__name__
    undo()
    consent.install(undo, "tolerant")
    assert ice.Connection.query_consent.__module__ == consent.__name__
    undo()
    assert (interval, failures) == (ice.CONSENT_INTERVAL, ice.CONSENT_FAILURES)
    assert ice.Connection.query_consent is stock
    assert turn.TurnClientMixin.delete is delete
    consent.install(undo, "aioice")  # nothing at all
    assert ice.Connection.query_consent is stock
    assert turn.TurnClientMixin.delete is delete
    # The promise is 15 s; the settings leave a margin for a loaded machine.
    assert consent.worst_case_seconds("stock") < 11
    assert consent.worst_case_seconds("tolerant") < 11


def test_an_unknown_mode_is_refused(undo: Undo) -> None:
    with pytest.raises(
        ValueError, match="consent mode 'eager' is not one of tolerant, stock, aioice"
    ):
        consent.install(undo, "eager")


def test_an_aioice_it_was_not_checked_against_is_refused_naming_the_way_out(
    monkeypatch: pytest.MonkeyPatch, undo: Undo
) -> None:
    monkeypatch.setattr(seam, "installed_version", lambda library: "0.99.0")
    with pytest.raises(StackChanged) as refused:
        consent.install(undo, "tolerant")
    assert "aioice 0.99.0 is not a version it was checked against (0.13.x)" in str(refused.value)
    assert "run with --consent aioice to keep aioice's own settings" in str(refused.value)
    stock = ice.Connection.query_consent
    consent.install(undo, "aioice")  # the way out works
    assert ice.Connection.query_consent is stock


def test_a_moved_line_is_named(monkeypatch: pytest.MonkeyPatch, undo: Undo) -> None:
    def datagram_received(self: ice.StunProtocol, data: bytes, addr: tuple[str, int]) -> None:
        """A future aioice that finds transactions some other way."""

    monkeypatch.setattr(ice.StunProtocol, "datagram_received", datagram_received)
    with pytest.raises(StackChanged) as refused:
        consent.install(undo, "tolerant")
    assert "StunProtocol.datagram_received no longer looks responses up" in str(refused.value)
    assert "run with --consent stock to keep aioice's own loop" in str(refused.value)
    consent.install(undo, "stock")  # the way out works


# ---- two real aioice connections over loopback -------------------------------------------


@contextlib.asynccontextmanager
async def connected_pair() -> AsyncIterator[tuple[ice.Connection, ice.Connection]]:
    """Two aioice connections on 127.0.0.1, connected; closed afterwards."""
    restrict_host_addresses(["127.0.0.1"])
    ours = ice.Connection(ice_controlling=True, use_ipv6=False)
    theirs = ice.Connection(ice_controlling=False, use_ipv6=False)
    try:
        await asyncio.gather(ours.gather_candidates(), theirs.gather_candidates())
        for one, other in ((ours, theirs), (theirs, ours)):
            for candidate in other.local_candidates:
                await one.add_remote_candidate(candidate)
            await one.add_remote_candidate(None)
            one.remote_username = other.local_username
            one.remote_password = other.local_password
        await asyncio.gather(ours.connect(), theirs.connect())
        yield ours, theirs
    finally:
        await asyncio.gather(ours.close(), theirs.close())
        restrict_host_addresses([])


def answer_late(connection: ice.Connection, delay: float, key: bytes | None = None) -> None:
    """Hold back every STUN answer ``connection`` sends by ``delay``, as a queue in
    front of a slow link would (this kernel has no netem; the real queue is in
    tests/network/test_liveness.py); with ``key``, sign them with it instead of its password."""
    loop = asyncio.get_running_loop()
    for protocol in connection._protocols:
        send = protocol.send_stun

        def late(message: stun.Message, addr: tuple[str, int], send: object = send) -> None:
            assert callable(send)
            if message.message_class is not stun.Class.RESPONSE:
                send(message, addr)
                return
            if key is not None:
                message.add_message_integrity(key)
            loop.call_later(delay, send, message, addr)

        setattr(protocol, "send_stun", late)  # noqa: B010


async def closed_within(connection: ice.Connection, seconds: float) -> float | None:
    """How long ``connection`` took to close (consent expired), or None if it did not."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if connection._closed:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    return None


async def test_stock_consent_takes_a_slow_partner_for_a_dead_one(
    monkeypatch: pytest.MonkeyPatch, undo: Undo
) -> None:
    consent.install(undo, "stock")
    monkeypatch.setattr(ice, "CONSENT_INTERVAL", QUICK.interval)
    async with connected_pair() as (ours, theirs):
        answer_late(theirs, QUEUE)
        # Each answer comes 0.9 s after its check: past aioice's 0.5 s, every time.
        assert await closed_within(ours, 15) is not None


async def test_tolerant_consent_keeps_a_slow_partner(undo: Undo) -> None:
    consent.install(undo, "tolerant", QUICK)
    async with connected_pair() as (ours, theirs):
        answer_late(theirs, QUEUE)
        # Many times what the stock loop needed to give up above.
        assert await closed_within(ours, 8) is None
        await ours.send(b"still here")
        assert await asyncio.wait_for(theirs.recv(), 5) == b"still here"


async def test_tolerant_consent_still_notices_a_partner_that_is_gone(undo: Undo) -> None:
    consent.install(undo, "tolerant", QUICK)
    async with connected_pair() as (ours, theirs):
        answer_late(theirs, QUEUE)
        await asyncio.sleep(2)  # the round trip measured, the timeout widened
        await theirs.close()
        took = await closed_within(ours, 15)
        assert took is not None
        assert took <= QUICK.worst_case_seconds() + consent.TURN_DELETE_TIMEOUT + 1


async def test_an_answer_not_signed_with_the_partners_password_is_no_answer(undo: Undo) -> None:
    consent.install(undo, "tolerant", QUICK)
    async with connected_pair() as (ours, theirs):
        # Answers signed with another password: as if someone else answered.
        answer_late(theirs, 0.0, key=b"someone-else-entirely")
        assert await closed_within(ours, 15) is not None
