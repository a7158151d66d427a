"""The conversation's promises, in-process: a fake signaling session and fake calls,
no sockets, no processes (peer/call/conversation.py).

Busy and declined callees, answering busy while in a call, re-establishing a failed
call once and then ending it, the partner's hang-up that arrives after the media
failure (HANG_UP_GRACE), and a fresh offer held, refused or taken.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from peer.call.answering import AnswerPolicy
from peer.call.connection import CallState
from peer.call.conversation import Conversation
from peer.call.phases import MOVES, Move, Phase
from peer.call.wiring import CallLike, Clock, Conduct
from peer.errors import ExitCode, PeerError
from peer.session.messages import RemoteAnswer, RemoteClose, RemoteOffer, ServerError

JSONObject = dict[str, Any]
QUICK = Clock(
    hang_up_grace=0.3,
    recovery_timeout=2.0,
    fresh_offer_hold=0.6,
    fresh_offer_check=0.02,
    fresh_offer_silent=0.2,
)


def sdp(ufrag: str) -> JSONObject:
    return {"type": "offer", "sdp": f"v=0\r\na=ice-ufrag:{ufrag}\r\n"}


def answer(ufrag: str) -> JSONObject:
    return {"type": "answer", "sdp": f"v=0\r\na=ice-ufrag:{ufrag}\r\n"}


class FakeSession:
    def __init__(self) -> None:
        self.sent: list[JSONObject] = []
        self.connected = True

    async def send(self, message: JSONObject) -> None:
        self.sent.append(message)

    def closes(self) -> list[tuple[str, str | None]]:
        return [(m["otherUsername"], m.get("reason")) for m in self.sent if m["type"] == "close"]


class FakeCall:
    """A call's states as the conversation sees them; the test says when media
    connects or fails."""

    def __init__(self, other: str, session: FakeSession) -> None:
        self.other = other
        self.session = session
        self.state = CallState.NEW
        self.dialled = False
        self.end_reason: str | None = None
        self.ended = asyncio.Event()
        self.described = asyncio.Event()
        self.connected = asyncio.Event()
        self.timings = SimpleNamespace(connected=None)
        self.remote_sdp: str | None = None
        self.bytes = 0

    @property
    def live(self) -> bool:
        return self.state not in (CallState.ENDED, CallState.FAILED)

    async def dial(self) -> None:
        self.state, self.dialled = CallState.OFFERING, True
        await self.session.send({"type": "offer", "otherUsername": self.other})

    async def offer_received(self, offer: JSONObject) -> None:
        self.remote_sdp = offer["sdp"]
        if self.state is CallState.NEW:
            self.state = CallState.CONNECTING
        self.described.set()

    async def answer_received(self, answer: JSONObject) -> None:
        if self.state is CallState.OFFERING:
            self.remote_sdp = answer["sdp"]
            self.state = CallState.CONNECTING
            self.described.set()

    async def candidate_received(self, candidate: JSONObject | None) -> None:
        pass

    async def hang_up(self, reason: str | None = None, *, notify: bool = True) -> None:
        if not self.live:
            return
        self.state = CallState.ENDED
        if notify:
            message = {"type": "close", "otherUsername": self.other}
            await self.session.send({**message, "reason": reason} if reason else message)
        self.end_reason = reason or "hung up"
        self.ended.set()

    async def remote_closed(self, reason: str | None) -> None:
        if self.live:
            self.state = CallState.ENDED
            self.end_reason = f"{self.other} hung up" + (f" ({reason})" if reason else "")
            self.ended.set()

    # ---- what the test makes happen ----------------------------------------------------
    def connect(self) -> None:
        self.state = CallState.CONNECTED
        self.timings.connected = time.monotonic()
        self.connected.set()

    def fail(self) -> None:
        self.state = CallState.FAILED
        self.end_reason = f"the media connection with {self.other} failed (ICE)"
        self.ended.set()


@dataclass
class FakeSide:
    session: FakeSession
    calls: list[FakeCall] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def new_call(self, other: str) -> FakeCall:
        self.calls.append(FakeCall(other, self.session))
        return self.calls[-1]

    def started(self, call: CallLike) -> None:
        self.events.append("started")

    async def finished(self, call: CallLike) -> None:
        self.events.append("finished")

    async def abandoned(self, call: CallLike) -> None:
        self.events.append("abandoned")

    async def bytes_received(self, call: CallLike) -> int:
        assert isinstance(call, FakeCall)
        return call.bytes

    def explain_failure(self, reason: str) -> str:
        return reason


class Scene:
    """alice's conversation, with what she said and sent."""

    def __init__(self, conduct: Conduct) -> None:
        self.session = FakeSession()
        self.side = FakeSide(self.session)
        self.said: list[str] = []
        self.quit = asyncio.Event()
        self.answers: asyncio.Queue[bool] = asyncio.Queue()
        self.conversation = Conversation(
            conduct,
            self.session,
            self.side,
            ask=self._ask,
            at_a_terminal=lambda: False,
            quit=self.quit,
            say=self.said.append,
            clock=QUICK,
        )
        self.run: asyncio.Task[ExitCode] = asyncio.ensure_future(self.conversation.run())

    async def _ask(self, caller: str) -> bool:
        return await self.answers.get()

    @property
    def calls(self) -> list[FakeCall]:
        return self.side.calls

    async def until(self, condition: Callable[[], bool], within: float = 3.0) -> None:
        async with asyncio.timeout(within):
            while not condition():
                if self.run.done():
                    self.run.result()  # its exception, if that is why
                    raise AssertionError("the conversation ended before that happened")
                await asyncio.sleep(0.01)

    async def said_line(self, text: str) -> None:
        await self.until(lambda: any(text in line for line in self.said))

    async def incoming(self, caller: str = "bob", ufrag: str = "one") -> FakeCall:
        """``caller``'s call, answered and connected."""
        count = len(self.calls)
        await self.conversation.handle(RemoteOffer(caller, sdp(ufrag)))
        await self.until(lambda: len(self.calls) > count)
        call = self.calls[-1]
        await self.until(lambda: self.side.events.count("started") > count)
        call.connect()
        return call

    async def outcome(self) -> ExitCode:
        async with asyncio.timeout(3):
            code = await self.run
        assert self.conversation.phase is Phase.IDLE
        return code


def answering(**extra: Any) -> Conduct:
    return Conduct("alice", answer_policy=AnswerPolicy(auto_answer=True), once=True, **extra)


def calling(other: str = "bob") -> Conduct:
    return Conduct("alice", call=other, answer_timeout=2.0)


# ---- refusals of our call ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("reason", "code", "text"),
    [
        ("busy", ExitCode.BUSY, "bob declined the call (busy)"),
        ("declined", ExitCode.DECLINED, "bob declined the call (declined)"),
        (None, ExitCode.DECLINED, "bob declined the call"),
    ],
)
async def test_a_close_of_our_offer_refuses_the_call_by_its_reason(
    reason: str | None, code: ExitCode, text: str
) -> None:
    scene = Scene(calling())
    await scene.until(lambda: bool(scene.calls) and scene.calls[0].state is CallState.OFFERING)
    await scene.conversation.handle(RemoteClose("bob", reason))
    with pytest.raises(PeerError) as refused:
        await scene.outcome()
    assert (refused.value.code, str(refused.value)) == (code, text)
    assert scene.conversation.phase is Phase.IDLE


async def test_busy_is_the_reason_code_not_a_word_in_the_callees_name() -> None:
    scene = Scene(calling("busybee"))
    await scene.until(lambda: bool(scene.calls))
    await scene.conversation.handle(RemoteClose("busybee", "declined"))
    with pytest.raises(PeerError) as refused:
        await scene.outcome()
    assert refused.value.code is ExitCode.DECLINED


async def test_the_server_saying_busy_is_busy() -> None:
    scene = Scene(calling())
    await scene.until(lambda: bool(scene.calls))
    await scene.conversation.handle(ServerError("busy", "the user is in another call", {}))
    with pytest.raises(PeerError) as refused:
        await scene.outcome()
    assert (refused.value.code, str(refused.value)) == (
        ExitCode.BUSY,
        "bob is busy in another call",
    )


async def test_an_answered_call_that_the_callee_hangs_up_ends_cleanly() -> None:
    scene = Scene(calling())
    await scene.until(lambda: bool(scene.calls))
    await scene.conversation.handle(RemoteAnswer("bob", answer("b1")))
    scene.calls[0].connect()
    await scene.until(lambda: scene.conversation.phase is Phase.IN_CALL)
    await scene.conversation.handle(RemoteClose("bob", None))
    assert await scene.outcome() is ExitCode.OK
    assert "call with bob ended: bob hung up" in scene.said


# ---- calls to us ------------------------------------------------------------------------
async def test_a_second_caller_hears_busy_and_the_call_goes_on() -> None:
    scene = Scene(answering())
    call = await scene.incoming("bob")
    await scene.conversation.handle(RemoteOffer("carol", sdp("c1")))
    assert ("carol", "busy") in scene.session.closes()
    assert "carol called while we are in a call; answering busy" in scene.said
    assert call.live and len(scene.calls) == 1
    await scene.conversation.handle(RemoteClose("bob", None))
    assert await scene.outcome() is ExitCode.OK


async def test_nobody_to_ask_declines_the_call() -> None:
    scene = Scene(Conduct("alice", once=True))  # no --auto-answer, not at a terminal
    await scene.conversation.handle(RemoteOffer("bob", sdp("b1")))
    assert await scene.outcome() is ExitCode.OK
    assert scene.session.closes() == [("bob", "declined")]
    assert not scene.calls


async def test_saying_no_declines_and_saying_yes_answers() -> None:
    scene = Scene(Conduct("alice", answer_policy=AnswerPolicy(ask=True)))
    await scene.conversation.handle(RemoteOffer("bob", sdp("b1")))
    await scene.until(lambda: scene.conversation.phase is Phase.RINGING)
    scene.answers.put_nowait(False)
    await scene.said_line("declined the call from bob")
    assert scene.session.closes() == [("bob", "declined")]
    await scene.conversation.handle(RemoteOffer("carol", sdp("c1")))
    await scene.until(lambda: scene.conversation.phase is Phase.RINGING)
    scene.answers.put_nowait(True)
    await scene.until(lambda: bool(scene.calls) and scene.calls[0].other == "carol")
    scene.quit.set()
    await scene.outcome()


# ---- recovery ---------------------------------------------------------------------------
async def test_a_failed_call_is_re_established_once_then_ends() -> None:
    scene = Scene(answering())
    first = await scene.incoming("bob", "one")
    first.fail()
    await scene.said_line("media connection with bob failed; reconnecting the call (1 attempt)")
    await scene.until(lambda: scene.conversation.phase is Phase.RE_ESTABLISHING)
    await scene.conversation.handle(RemoteOffer("bob", sdp("two")))  # bob's fresh offer
    await scene.until(lambda: len(scene.calls) == 2)
    second = scene.calls[1]
    assert second.remote_sdp is not None and "two" in second.remote_sdp
    second.connect()
    await scene.said_line("call with bob re-established")
    second.fail()
    assert await scene.outcome() is ExitCode.CALL_FAILED
    assert "media connection with bob failed again; call ended" in scene.said
    assert len(scene.calls) == 2  # once, not twice
    assert scene.session.closes() == [("bob", "failed")]


async def test_the_dialler_re_establishes_with_a_fresh_offer() -> None:
    scene = Scene(calling())
    await scene.until(lambda: bool(scene.calls))
    await scene.conversation.handle(RemoteAnswer("bob", answer("b1")))
    scene.calls[0].connect()
    await scene.until(lambda: scene.conversation.phase is Phase.IN_CALL)
    scene.calls[0].fail()
    await scene.until(lambda: len(scene.calls) == 2)
    assert scene.calls[1].dialled  # the side that dialled offers again
    await scene.conversation.handle(RemoteAnswer("bob", answer("b2")))
    scene.calls[1].connect()
    await scene.said_line("call with bob re-established")
    await scene.conversation.handle(RemoteClose("bob", None))
    assert await scene.outcome() is ExitCode.OK


async def test_no_fresh_offer_in_time_ends_the_call() -> None:
    scene = Scene(answering())
    (await scene.incoming()).fail()
    assert await scene.outcome() is ExitCode.CALL_FAILED
    assert any("could not re-establish the call with bob" in line for line in scene.said)
    assert scene.session.closes() == [("bob", "failed")]


# ---- hang-up ----------------------------------------------------------------------------
async def test_the_partners_close_after_the_media_failure_is_a_hang_up() -> None:
    """Their DTLS close reaches us before their close crosses the server: within the
    grace, that is a hang-up, not a failure to re-establish."""
    scene = Scene(answering())
    call = await scene.incoming()
    call.fail()
    await scene.until(lambda: scene.conversation.phase is Phase.GRACE)
    await scene.conversation.handle(RemoteClose("bob", None))
    assert await scene.outcome() is ExitCode.OK
    assert "call with bob ended: bob hung up" in scene.said
    assert len(scene.calls) == 1
    assert not any("reconnecting" in line for line in scene.said)
    assert scene.session.closes() == []


async def test_quitting_hangs_up() -> None:
    scene = Scene(answering())
    call = await scene.incoming()
    scene.quit.set()
    assert await scene.outcome() is ExitCode.OK
    assert call.state is CallState.ENDED
    assert scene.session.closes() == [("bob", None)]
    assert scene.side.events == ["started", "finished"]


# ---- a fresh offer while our call still works -------------------------------------------
async def test_a_fresh_offer_is_refused_while_our_media_flows() -> None:
    scene = Scene(answering())
    call = await scene.incoming("bob", "one")

    async def flowing() -> None:
        while True:
            call.bytes += 100
            await asyncio.sleep(0.01)

    flow = asyncio.ensure_future(flowing())
    try:
        await scene.conversation.handle(RemoteOffer("bob", sdp("two")))
        await scene.said_line("refused a fresh offer from bob")
    finally:
        flow.cancel()
    assert scene.session.closes() == [("bob", "connection-healthy")]
    assert call.live and len(scene.calls) == 1
    assert len(scene.conversation.inbox) == 0  # the refused offer is gone
    scene.quit.set()
    await scene.outcome()


async def test_a_fresh_offer_is_held_then_taken_once_our_media_stops() -> None:
    scene = Scene(answering())
    call = await scene.incoming("bob", "one")
    await scene.conversation.handle(RemoteOffer("bob", sdp("two")))
    assert call.live  # held, not taken at once
    await scene.until(lambda: len(scene.calls) == 2)  # nothing received: taken
    assert call.state is CallState.ENDED
    second = scene.calls[1]
    assert second.remote_sdp is not None and "two" in second.remote_sdp
    second.connect()
    await scene.said_line("call with bob re-established")
    assert scene.session.closes() == []
    scene.quit.set()
    await scene.outcome()


# ---- the table --------------------------------------------------------------------------
def test_every_phase_can_be_left_and_reached() -> None:
    assert {before for before, _ in MOVES} == set(Phase)
    assert set(MOVES.values()) == set(Phase)
    assert {move for _, move in MOVES} == set(Move)
