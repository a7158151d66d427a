"""ICE consent freshness (RFC 7675) that notices a vanished partner in seconds and
does not take a congested path for a dead one.

aioice sends a consent check every 5 s (randomised 0.8-1.2x) with no
retransmission and declares the pair dead after 6 failed checks in a row: a
partner whose process or network disappeared is noticed only after about 30 s.
When the signaling server is down too, consent is the only news of it, and a
person does not stare at a frozen picture for half a minute.

aioice also gives each check 0.5 s, throws away an answer that comes later, and
sends the next check only once that time is up. Behind a queue of video (a
300 kbit/s link with 400 ms of buffer at each end) every answer comes back after
0.8-0.9 s: a congested call was ended as a dead one, re-made, and ended again.

``--consent tolerant`` (the default) replaces aioice's consent loop with one
driven by :class:`peer.ice.consent_freshness.ConsentFreshness`, which says why it
decides as it does (and why media from the partner is no evidence): a check
every 0.5 s whatever became of the last one, an answer counted however late it
comes, a check counted as missed only after a timeout taken from the measured
round trip, consent gone after 10 missed in a row. The rate is twice aioice's
as set below for the same time to notice: a full queue drops a quarter to
a third of the checks or their answers (measured on the weak link), and with
10 chances a run of misses that long is the path, not bad luck. That is about
2 kbit/s each way.

``--consent stock`` keeps aioice's own loop, told to check every second and to
give up after 5 misses (each waiting out the 0.5 s transaction timeout): the
behaviour before the tolerant loop, for comparison and for an aioice the
replacement was not checked against.

The replacement sends its checks as aioice's own would (``build_request``, the
partner's ICE password as integrity key) and waits for their answers in the
pair's STUN transaction table, where aioice hands each response whose
transaction ID it knows. :data:`TOLERANT_SEAM` verifies the aioice version and
the source lines this relies on and names ``--consent stock`` when they moved;
:data:`STOCK_SEAM` does the same for the two settings (naming ``--consent aioice``,
aioice exactly as it ships), so an aioice upgrade fails loudly instead of silently
going back to the stock behaviour.

The news of the expiry (aioice's ConnectionClosed event, which makes aiortc's
connection fail) is only given once the ICE connection has closed its sockets,
and closing a TURN allocation first asks the TURN server to delete it, waiting
out every STUN retransmission (about 40 s) when the path to it is dead too. The
deletion is a courtesy (an allocation nobody refreshes expires by itself, RFC
8656 section 6), so it is given :data:`TURN_DELETE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aioice import ice, stun, turn

from peer.ice.consent_freshness import ConsentFreshness, ConsentPolicy
from peer.stack.seam import Lines, Seam, Undo, replace

logger = logging.getLogger(__name__)

# --consent stock: aioice's own loop, told to check every second and give up after 5 misses.
CHECK_INTERVAL: Final = 1.0  # seconds between checks (randomised 0.8-1.2x)
FAILURES: Final = 5  # consecutive unanswered checks that end the media connection
# --consent tolerant: twice as many checks in the same time (see above).
TOLERANT: Final = ConsentPolicy(interval=0.5, failures=10, max_timeout=2.5)
TURN_DELETE_TIMEOUT: Final = 1.0  # seconds a TURN server gets to confirm a deletion
# aioice: aioice exactly as it ships (30 s to notice a dead path), for an aioice whose
# internals moved.
CONSENT_MODES: Final = ("tolerant", "stock", "aioice")


def _loop_reads_the_globals() -> list[str]:
    code = getattr(getattr(ice.Connection, "query_consent", None), "__code__", None)
    names = code.co_names if code is not None else ()
    problems = [
        f"Connection.query_consent no longer reads {name}"
        for name in ("CONSENT_INTERVAL", "CONSENT_FAILURES")
        if name not in names
    ]
    if not asyncio.iscoroutinefunction(getattr(turn.TurnClientMixin, "delete", None)):
        problems.append("TurnClientMixin.delete is no coroutine")
    return problems


# Both modes: the consent loop's two settings, and a bounded TURN deletion.
STOCK_SEAM: Final = Seam(
    "consent checks every second",
    "run with --consent aioice to keep aioice's own settings",
    "peer/stack/consent.py",
    libraries=("aioice",),
    present=(
        (ice, "CONSENT_INTERVAL"),
        (ice, "CONSENT_FAILURES"),
        (ice.Connection, "query_consent"),
        (turn.TurnClientMixin, "delete"),
    ),
    extra=(_loop_reads_the_globals,),
)
# What the tolerant loop relies on in aioice.
TOLERANT_SEAM: Final = Seam(
    "the tolerant consent checks",
    "run with --consent stock to keep aioice's own loop",
    "peer/stack/consent.py",
    libraries=("aioice",),
    lines=(
        Lines(
            ice.Connection,
            "connect",
            {
                "starts query_consent as the task close() cancels": (
                    "self._query_consent_task = asyncio.create_task(self.query_consent())"
                ),
            },
        ),
        Lines(
            ice.Connection,
            "close",
            {"cancels the consent task": "self._query_consent_task.cancel()"},
        ),
        Lines(
            ice.Connection,
            "check_complete",
            {"keeps the nominated pair per component": "self._nominated[pair.component] = pair"},
        ),
        Lines(
            ice.StunProtocol,
            "datagram_received",
            {
                "looks responses up by transaction ID": (
                    "message.transaction_id in self.transactions"
                ),
                "hands them to the transaction": "transaction.response_received(message, addr)",
            },
        ),
    ),
    present=((ice.Connection, "build_request"), (ice.StunProtocol, "send_stun")),
)


def install(undo: Undo, mode: str = "tolerant", policy: ConsentPolicy = TOLERANT) -> None:
    """Make every aioice connection check consent the tolerant way (with ``policy``),
    aioice's own way with a check a second and 5 strikes, or leave aioice as it is
    (``mode``). Refuses (:class:`StackChanged`) an aioice whose internals moved."""
    if mode not in CONSENT_MODES:
        raise ValueError(f"consent mode {mode!r} is not one of {', '.join(CONSENT_MODES)}")
    if mode == "aioice":
        return
    STOCK_SEAM.check()
    if mode == "tolerant":
        TOLERANT_SEAM.check()
    replace(ice, "CONSENT_INTERVAL", CHECK_INTERVAL, undo)
    replace(ice, "CONSENT_FAILURES", FAILURES, undo)
    _bound_turn_deletion(undo)
    if mode == "stock":
        logger.debug(
            "ICE consent (stock): a check every %.1f s, %d misses", CHECK_INTERVAL, FAILURES
        )
        return

    async def query_consent(self: ice.Connection) -> None:
        await _query_consent(self, policy)

    replace(ice.Connection, "query_consent", query_consent, undo)
    logger.debug("ICE consent (tolerant): %s", policy)


def _bound_turn_deletion(undo: Undo) -> None:
    original = turn.TurnClientMixin.delete

    async def delete(self: turn.TurnClientMixin) -> None:
        try:
            # aioice closes the socket in a finally, so a cancelled deletion leaks nothing.
            await asyncio.wait_for(original(self), TURN_DELETE_TIMEOUT)
        except TimeoutError:
            logger.info("the TURN server did not confirm deleting our allocation; left to expire")

    replace(turn.TurnClientMixin, "delete", delete, undo)


def worst_case_seconds(mode: str = "tolerant", policy: ConsentPolicy = TOLERANT) -> float:
    """The longest a dead path goes unnoticed, the bounded TURN deletion included."""
    if mode == "aioice":
        # As stock below with aioice's own settings; its TURN deletion is not bounded.
        interval, failures = float(ice.CONSENT_INTERVAL), int(ice.CONSENT_FAILURES)
        return 1.2 * interval + failures * (1.2 * interval + stun.RETRY_RTO)
    if mode == "stock":
        # One interval since the last answered check, then each miss waits out aioice's
        # transaction timeout before the next check goes out.
        checks = 1.2 * CHECK_INTERVAL + FAILURES * (1.2 * CHECK_INTERVAL + stun.RETRY_RTO)
    else:
        checks = policy.worst_case_seconds()
    return checks + TURN_DELETE_TIMEOUT


# ---- the tolerant loop --------------------------------------------------------------------


class _AnswerWaiter(stun.Transaction):
    """Stands in a pair's STUN transaction table for one consent check, so that its
    answer reaches us however late it comes. Never run: it sends nothing itself."""

    def __init__(
        self,
        request: stun.Message,
        addr: tuple[str, int],
        protocol: ice.StunProtocol,
        key: bytes,
        on_answer: Callable[[bytes], None],
    ) -> None:
        super().__init__(request, addr, protocol, retransmissions=0, integrity_key=key)
        self._key = key
        self._on_answer = on_answer

    def response_received(self, message: stun.Message, addr: tuple[str, int]) -> None:
        # Only a success signed with the partner's password is its consent (RFC 7675
        # section 5.1); an error or an unsigned answer is no answer.
        if message.message_class is stun.Class.RESPONSE and message.check_message_integrity(
            self._key
        ):
            self._on_answer(message.transaction_id)


@dataclass
class _PairConsent:
    """The consent checks of one nominated pair and where their answers are waited for."""

    pair: ice.CandidatePair
    freshness: ConsentFreshness
    waiting: dict[bytes, _AnswerWaiter] = field(default_factory=dict)

    def send(self, connection: ice.Connection, key: bytes, now: float) -> None:
        request = connection.build_request(self.pair, nominate=False)
        request.add_message_integrity(key)
        waiter = _AnswerWaiter(
            request, self.pair.remote_addr, self.pair.protocol, key, self._answered
        )
        self.pair.protocol.transactions[request.transaction_id] = waiter
        self.waiting[request.transaction_id] = waiter
        self.freshness.sent(request.transaction_id, now)
        self.pair.protocol.send_stun(request, self.pair.remote_addr)

    def _answered(self, transaction_id: bytes) -> None:
        late = self.freshness.answered_late
        round_trip = self.freshness.answer(transaction_id, asyncio.get_running_loop().time())
        if round_trip is None:
            return
        if self.freshness.answered_late > late:
            logger.debug("%s: consent check answered late (%.2f s), counted", self.pair, round_trip)
        still = {check for check, _ in self.freshness.pending}
        for done in [t for t in self.waiting if t not in still]:
            self.forget(done)

    def forget(self, transaction_id: bytes | None = None) -> None:
        """Stop waiting for one check's answer, or (None) for all of them."""
        for done in list(self.waiting) if transaction_id is None else [transaction_id]:
            self.waiting.pop(done, None)
            self.pair.protocol.transactions.pop(done, None)


async def _query_consent(connection: ice.Connection, policy: ConsentPolicy) -> None:
    """Replaces ``aioice.ice.Connection.query_consent`` (``--consent tolerant``)."""
    assert connection.remote_password is not None  # set before connect() starts us
    key = connection.remote_password.encode("utf8")
    loop = asyncio.get_running_loop()
    pairs: dict[int, _PairConsent] = {}
    next_check = loop.time() + _scattered(policy.interval)
    try:
        while True:
            now = loop.time()
            if now >= next_check:
                for component, pair in connection._nominated.items():
                    if component not in pairs or pairs[component].pair is not pair:
                        if component in pairs:
                            pairs[component].forget()
                        pairs[component] = _PairConsent(pair, ConsentFreshness(policy))
                    pairs[component].send(connection, key, now)
                next_check = now + _scattered(policy.interval)
            expired = next((p for p in pairs.values() if p.freshness.expired(now)), None)
            if expired is not None:
                _log_expiry(expired, now)
                connection._query_consent_task = None  # close() must not cancel us
                await connection.close()
                return
            wake = min(
                [next_check]
                + [t for p in pairs.values() if (t := p.freshness.expires_at()) is not None]
            )
            # A floor, so that waking a hair before an expiry does not spin.
            await asyncio.sleep(max(wake - loop.time(), 0.01))
    finally:
        for state in pairs.values():
            state.forget()
            _log_summary(state)


def _scattered(interval: float) -> float:
    # RFC 7675: scattered 0.8-1.2x so that many agents do not check in step.
    return interval * (0.8 + 0.4 * random.random())


def _log_summary(state: _PairConsent) -> None:
    freshness = state.freshness
    rtt = freshness.rtt.smoothed
    logger.info(
        "consent on %s: %d checks, %d answered (%d late, at most %d in a row unanswered "
        "before one was), round trip %s",
        state.pair,
        freshness.checks,
        freshness.answered,
        freshness.answered_late,
        freshness.longest_silence,
        "unmeasured" if rtt is None else f"{rtt * 1000:.0f} ms",
    )


def _log_expiry(state: _PairConsent, now: float) -> None:
    freshness = state.freshness
    rtt = freshness.rtt.smoothed
    logger.info(
        "consent to send on %s expired: %d checks in a row unanswered, each given %.1f s "
        "(round trip %s; %d answered before, %d of them late; last answer %s)",
        state.pair,
        freshness.missed(now),
        freshness.timeout,
        "unmeasured" if rtt is None else f"{rtt * 1000:.0f} ms",
        freshness.answered,
        freshness.answered_late,
        "never" if freshness.last_answer is None else f"{now - freshness.last_answer:.1f} s ago",
    )
