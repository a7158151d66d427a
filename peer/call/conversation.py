"""The conversation: who the peer is talking with, and what happens next.

It calls (or waits to be called), answers, declines or answers busy, and once a call
is live, re-establishes it once when its media connection fails (peer/call/recovery.py).
Its phases are a table (peer/call/phases.py) stepped by
:func:`signaling.statetable.step`; what surrounds each call (media sinks, the report,
the data side) is the ``CallSide``'s (peer/call/wiring.py).

Messages from the server arrive typed (peer/session/messages.py) through
:meth:`Conversation.handle`; the ones somebody waits for (an incoming offer, a refusal
of our offer, the user list, the partner's news between two calls) are kept in the one
:class:`Inbox` until taken. No sockets here: the session and the calls come in as the
small interfaces of peer/call/wiring.py, so tests drive a conversation with fakes (tests/unit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from peer.call.answering import Answer
from peer.call.connection import CallState, IllegalTransition
from peer.call.phases import AFTER_CALL, MOVES, Move, Phase
from peer.call.recovery import (
    Ending,
    FreshOfferHold,
    Recovery,
    Step,
    Verdict,
    ice_ufrag,
    is_fresh_negotiation,
)
from peer.call.wiring import CallLike, CallSide, Clock, Conduct, Session
from peer.errors import ExitCode, PeerError
from peer.session.client import SignalingError
from peer.session.inbox import Inbox
from peer.session.intake import BadMessage, CandidateGate, description
from peer.session.messages import (
    CloseReason,
    RemoteAnswer,
    RemoteCandidate,
    RemoteClose,
    RemoteOffer,
    ServerError,
    ServerMessage,
    Unhandled,
    UsersOnline,
    close,
    list_users,
)
from peer.tasks import TaskSupervisor
from peer.tty.untrusted import shown
from signaling.protocol import Reason
from signaling.statetable import step

logger = logging.getLogger(__name__)

JSONObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A stranger's offer (checked), waiting for the conversation to be free."""

    caller: str
    offer: JSONObject


# What the inbox keeps.
Kept = ServerMessage | IncomingCall


class Conversation:
    def __init__(
        self,
        conduct: Conduct,
        session: Session,
        side: CallSide,
        *,
        ask: Callable[[str], Awaitable[bool]],
        at_a_terminal: Callable[[], bool],
        quit: asyncio.Event,
        say: Callable[[str], None],
        clock: Clock | None = None,
    ) -> None:
        self.conduct = conduct
        self.session = session
        self.side = side
        self.ask = ask
        self.at_a_terminal = at_a_terminal
        self.quit = quit
        self.quit_code = ExitCode.OK
        self.say = say
        self.clock = clock or Clock()
        self.phase = Phase.IDLE
        self.call: CallLike | None = None
        self.inbox: Inbox[Kept] = Inbox()
        self._call_tasks = TaskSupervisor("conversation")
        self._gate = CandidateGate()  # the current call's remote candidates
        # The partner of the conversation in progress (across re-established calls).
        self._partner: str | None = None
        self._replaced: CallLike | None = None  # the call a fresh offer from the partner ended
        self._held_ufrag: str | None = None  # of a fresh offer being judged (recovery.py)
        self._ringing: str | None = None  # the caller being asked about
        self._ringing_stopped = asyncio.Event()  # ...hung up before the answer
        self._refusal: RemoteClose | None = None  # the partner's close of our offer

    def _move(self, move: Move) -> None:
        before, self.phase = self.phase, step(MOVES, self.phase, move)
        logger.debug("conversation: %s -(%s)-> %s", before.value, move.value, self.phase.value)

    async def close(self) -> None:
        await self._call_tasks.stop()

    # ---- the whole run -----------------------------------------------------------
    async def run(self) -> ExitCode:
        if self.conduct.call:
            return await self._outgoing(self.conduct.call)
        self.say("waiting for calls (Ctrl-C to quit)")
        while not self.quit.is_set():
            ringing = await self._until_quit(self.inbox.take(_is_incoming_call))
            if ringing is None:
                break
            code = await self._incoming(ringing.caller, ringing.offer)
            if self.conduct.once or self.quit.is_set():
                return code
            self.say("waiting for the next call")
        return self.quit_code

    async def _until_quit(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Await ``coroutine`` unless quitting comes first (then None)."""
        task = asyncio.ensure_future(coroutine)
        quitting = asyncio.ensure_future(self.quit.wait())
        done, _ = await asyncio.wait({task, quitting}, return_when=asyncio.FIRST_COMPLETED)
        quitting.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    # ---- outgoing calls ----------------------------------------------------------
    async def _outgoing(self, other: str) -> ExitCode:
        if other == self.conduct.login:
            raise PeerError(ExitCode.USAGE, "you cannot call yourself")
        if self.conduct.wait:
            await self._wait_until_online(other)
            if self.quit.is_set():
                return ExitCode.OK
        self.say(f"calling {other}")
        call = self._new_call(other)
        self._move(Move.DIAL)
        await call.dial()
        outcome = await self._until_quit(self._await_answer(call))
        if self.quit.is_set():  # the user quit while it rang
            return ExitCode.OK
        if isinstance(outcome, PeerError):
            self._move(Move.REFUSED)
            await call.hang_up(notify=False)
            raise outcome
        self._move(Move.ANSWERED)
        return await self._in_call(call)

    async def _wait_until_online(self, other: str) -> None:
        announced = False
        while not self.quit.is_set():
            await self.session.send(list_users())
            users = await self._until_quit(asyncio.wait_for(self.inbox.take(_is_user_list), 10))
            if users is None or other in users.users:
                return
            if not announced:
                self.say(f"{other} is not online; waiting for them to log in (Ctrl-C to give up)")
                announced = True
            await self._until_quit(asyncio.sleep(1.0))

    async def _await_answer(self, call: CallLike) -> PeerError | None:
        """Wait until the call is answered or refused."""
        deadline = asyncio.get_running_loop().time() + self.conduct.answer_timeout
        while call.state is CallState.OFFERING:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return PeerError(ExitCode.DECLINED, f"{call.other} did not answer")
            error_wait = asyncio.ensure_future(self.inbox.take(_is_error))
            ended_wait = asyncio.ensure_future(call.ended.wait())
            answered = asyncio.ensure_future(call.described.wait())
            done, pending = await asyncio.wait(
                {error_wait, ended_wait, answered},
                timeout=remaining,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
            if error_wait in done:
                error = error_wait.result()
                assert isinstance(error, ServerError)
                refusal = _refusal(call.other, error)
                if refusal is not None:
                    return refusal
            if ended_wait in done and call.state is CallState.ENDED:
                return self._declined(call)
        return None

    def _declined(self, call: CallLike) -> PeerError:
        close_ = self._refusal
        if close_ is None:  # ended by something other than the partner's close
            return PeerError(ExitCode.DECLINED, call.end_reason or "the call ended")
        detail = f" ({close_.reason})" if close_.reason else ""
        code = ExitCode.BUSY if close_.reason == CloseReason.BUSY else ExitCode.DECLINED
        return PeerError(code, f"{call.other} declined the call{detail}")

    # ---- incoming calls ----------------------------------------------------------
    async def _incoming(self, caller: str, offer: JSONObject) -> ExitCode:
        decision = self.conduct.answer_policy.decide(caller, self.at_a_terminal())
        if decision is Answer.DECLINE:
            self._move(Move.DECLINE)
            self.say(
                f"declined the call from {caller}: nobody at a terminal to ask "
                f"(--auto-answer, or --answer-from {caller}, answers calls unattended)"
            )
            await self._send_quietly(close(caller, CloseReason.DECLINED))
            return ExitCode.OK
        self.say(f"incoming call from {caller}")
        if decision is Answer.ASK:
            self._move(Move.RING)
            if not await self._ask_to_answer(caller):
                return ExitCode.OK
        self._move(Move.ACCEPT)
        call = self._new_call(caller)
        try:
            await call.offer_received(self._admitted(offer, "offer"))
        except Exception as exc:  # a stranger's offer must not end the program
            why = _why(exc)
            logger.warning("the offer from %s could not be applied: %s", caller, why)
            self.say(f"refused the call from {caller}: their offer could not be applied ({why})")
            await call.hang_up(CloseReason.BAD_OFFER)
            await self._abandon(call)
            self._move(Move.ENDED)
            return ExitCode.OK
        return await self._in_call(call)

    async def _ask_to_answer(self, caller: str) -> bool:
        """y/n at the terminal, unless the caller hangs up first; True to answer."""
        self._ringing = caller
        self._ringing_stopped.clear()
        question = asyncio.ensure_future(self.ask(caller))
        stopped = asyncio.ensure_future(self._ringing_stopped.wait())
        try:
            await self._until_quit(
                asyncio.wait({question, stopped}, return_when=asyncio.FIRST_COMPLETED)
            )
        finally:
            self._ringing = None
            stopped.cancel()
            if not question.done():
                question.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await question
        if question.cancelled() or self.quit.is_set():
            if self._ringing_stopped.is_set():
                self.say(f"{caller} hung up before the call was answered")
            self._move(Move.CALLER_LEFT)
            return False
        if question.result():
            return True
        self._move(Move.DECLINE)
        await self._send_quietly(close(caller, CloseReason.DECLINED))
        self.say(f"declined the call from {caller}")
        return False

    # ---- a call in progress ------------------------------------------------------
    def _new_call(self, other: str) -> CallLike:
        self.call = self.side.new_call(other)
        self._gate = CandidateGate(allow_mdns=self.conduct.allow_mdns)
        self._refusal = None
        return self.call

    async def _in_call(self, call: CallLike) -> ExitCode:
        """A conversation: the call, and the one re-established call that may follow it."""
        self._partner = call.other
        recovery = Recovery(dialled=call.dialled)
        gave_up = False
        farewell: str | None = None  # the partner hung up just as the connection closed
        self.inbox.discard(_is_from_user)  # left from an earlier conversation
        try:
            while True:
                await self._attend(call)
                ending = self._ending(call)
                next_step = recovery.next_step(
                    ending, signaling_up=self.session.connected and not self.quit.is_set()
                )
                move = AFTER_CALL.get((ending, next_step), Move.ENDED)
                self._move(move)
                if move is Move.ENDED and recovery.attempts and ending is Ending.MEDIA_FAILED:
                    self.say(f"media connection with {call.other} failed again; call ended")
                if self.phase is Phase.GRACE:
                    farewell = await self._partners_close_within(self.clock.hang_up_grace)
                    self._move(Move.GRACE_OVER if farewell is None else Move.PARTNER_CLOSED)
                if self.phase is not Phase.RE_ESTABLISHING:
                    break
                replacement = await self._re_establish(call, next_step, recovery)
                self._move(Move.GAVE_UP if replacement is None else Move.RE_ESTABLISHED)
                if replacement is None:
                    gave_up = True
                    break
                call = replacement
        finally:
            self._partner = None
            self._replaced = None
        if farewell is not None:
            self.say(f"call with {call.other} ended: {farewell}")
            return self.quit_code
        if call.state is CallState.FAILED or gave_up:
            # Nobody re-establishes it: the partner must not wait for an offer.
            await self._send_quietly(close(call.other, CloseReason.FAILED))
        reason = call.end_reason or "the call failed"
        if call.state is CallState.FAILED and call.timings.connected is None:
            reason = self.side.explain_failure(reason)
        self.say(f"call with {call.other} ended: {reason}")
        if call.state is CallState.FAILED:
            if self.conduct.call:
                raise PeerError(ExitCode.CALL_FAILED, reason)
            return ExitCode.CALL_FAILED
        return self.quit_code

    async def _attend(self, call: CallLike) -> None:
        """The call's tasks run until it ends."""
        self.side.started(call)
        await self._until_quit(call.ended.wait())
        if call.live:
            await call.hang_up()
        await self.side.finished(call)
        await self._call_tasks.stop()
        self.call = None

    def _ending(self, call: CallLike) -> Ending:
        if call is self._replaced:
            return Ending.REPLACED
        if call.state is CallState.FAILED and call.timings.connected is not None:
            return Ending.MEDIA_FAILED
        return Ending.OTHER

    async def _re_establish(
        self, failed: CallLike, next_step: Step, recovery: Recovery
    ) -> CallLike | None:
        """A fresh negotiation with the same partner; the new call once it connects."""
        other = failed.other
        attempts = f"{recovery.attempts} attempt" + ("s" if recovery.attempts != 1 else "")
        self.say(f"media connection with {other} failed; reconnecting the call ({attempts})")
        call: CallLike | None = None
        try:
            if next_step is Step.REOFFER:
                call, why = await self._reoffer(other)
            else:
                call, why = await self._take_fresh_offer(other)
            if call is not None:
                call, why = await self._until_connected(call)
        except (TimeoutError, SignalingError) as exc:
            timeout = self.clock.recovery_timeout
            why = str(exc) or f"nothing from {other} within {timeout:.0f} s"
            if self.call is not None and self.call is not failed:  # the half-made new call
                await self._abandon(self.call)
            call = None
        if call is None or self.quit.is_set():
            self.say(f"could not re-establish the call with {other} ({why}); call ended")
            return None
        self.say(f"call with {other} re-established")
        return call

    async def _reoffer(self, other: str) -> tuple[CallLike | None, str]:
        """We dialled: a new connection and a fresh offer; the call once answered."""
        call = self._new_call(other)
        await call.dial()
        refusal = await self._until_quit(
            asyncio.wait_for(self._await_answer(call), self.clock.recovery_timeout)
        )
        if isinstance(refusal, PeerError):
            await self._abandon(call)
            return None, str(refusal)
        return call, ""

    async def _take_fresh_offer(self, other: str) -> tuple[CallLike | None, str]:
        """The partner dialled: a new connection answering their fresh offer."""
        news = await self._until_quit(self._partners_next_offer())
        if not isinstance(news, RemoteOffer):
            return None, f"{other} hung up"
        call = self._new_call(other)
        try:
            await call.offer_received(self._admitted(news.offer, "offer"))
        except Exception as exc:  # as in _incoming: only this call ends
            await self._abandon(call)
            return None, f"their offer could not be applied ({_why(exc)})"
        while (late := self.inbox.take_nowait(self._from_partner(RemoteCandidate))) is not None:
            assert isinstance(late, RemoteCandidate)  # trickled after the offer
            await self._remote_candidate(call, late.candidate)
        return call, ""

    async def _until_connected(self, call: CallLike) -> tuple[CallLike | None, str]:
        timeout = self.clock.recovery_timeout
        ended = asyncio.ensure_future(call.ended.wait())
        connected = asyncio.ensure_future(call.connected.wait())
        await self._until_quit(
            asyncio.wait({ended, connected}, timeout=timeout, return_when="FIRST_COMPLETED")
        )
        ended.cancel()
        connected.cancel()
        if call.state is CallState.CONNECTED:
            return call, ""
        why = call.end_reason or f"no media connection within {timeout:.0f} s"
        await self._abandon(call)
        return None, why

    async def _partners_close_within(self, grace: float) -> str | None:
        """Why the partner hung up, if their close arrives within ``grace`` seconds.

        A partner who hangs up closes their connection at once (DTLS close_notify,
        straight to us) and sends their close through the server, which may arrive
        later: without this wait a plain hang-up would read as a failed connection
        and start a pointless re-establishment. Their other news stays in the inbox."""
        try:
            async with asyncio.timeout(grace):
                news = await self.inbox.peek(self._from_partner(*_FROM_USER))
        except TimeoutError:
            return None
        if not isinstance(news, RemoteClose):
            return None
        self.inbox.discard(lambda kept: kept is news)
        detail = f" ({news.reason})" if news.reason else ""
        return f"{news.sender} hung up{detail}"

    async def _partners_next_offer(self) -> RemoteOffer | RemoteClose:
        """The partner's fresh offer or close (their stale candidates are skipped)."""
        async with asyncio.timeout(self.clock.recovery_timeout):
            news = await self.inbox.take(self._from_partner(RemoteOffer, RemoteClose))
        assert isinstance(news, RemoteOffer | RemoteClose)
        return news

    def _from_partner(self, *kinds: type) -> Callable[[Kept], bool]:
        partner = self._partner
        return lambda news: isinstance(news, kinds) and getattr(news, "sender", None) == partner

    # ---- a fresh offer while our call still runs (recovery.py) -------------------------
    def _hold_fresh_offer(self, call: CallLike, offer: RemoteOffer, sdp: str) -> None:
        """Keep the partner's fresh offer where a failure of our call finds it, and
        judge it by our own connection meanwhile (recovery.py, FreshOfferHold)."""
        if self._held_ufrag is not None:
            logger.warning("ignored another fresh offer from %s while one is held", call.other)
            return
        self._held_ufrag = ice_ufrag(sdp)
        self.inbox.put(offer)
        self._call_tasks.spawn(self._judge_fresh_offer(call, offer), "fresh-offer")

    async def _judge_fresh_offer(self, call: CallLike, offer: RemoteOffer) -> None:
        clock = self.clock
        hold = FreshOfferHold(
            time.monotonic(), hold=clock.fresh_offer_hold, silent_after=clock.fresh_offer_silent
        )
        try:
            while call.live:
                received = await self.side.bytes_received(call)
                verdict = hold.judge(time.monotonic(), received)
                if verdict is Verdict.TAKE and not call.dialled and call.live:
                    # Our media stopped too: this connection gives way to theirs.
                    self._replaced = call
                    await call.hang_up("replaced by a fresh negotiation", notify=False)
                    return
                if verdict is Verdict.REFUSE:
                    self._forget_held(offer)
                    self.say(
                        f"refused a fresh offer from {call.other}: our media connection "
                        "with them still works; the call goes on"
                    )
                    await self._send_quietly(close(call.other, CloseReason.CONNECTION_HEALTHY))
                    return
                await asyncio.sleep(self.clock.fresh_offer_check)
        finally:
            self._held_ufrag = None

    def _forget_held(self, offer: RemoteOffer) -> None:
        """Take a refused fresh offer and its candidates out of the inbox."""
        ufrag = self._held_ufrag
        self.inbox.discard(
            lambda news: (
                news is offer or (isinstance(news, RemoteCandidate) and news.ufrag == ufrag)
            )
        )

    async def _abandon(self, call: CallLike) -> None:
        """End a re-establishing call quietly (the caller of this tells the partner)."""
        if call.live:
            await call.hang_up(notify=False)
        self.call = None
        await self.side.abandoned(call)
        await self._call_tasks.stop()

    async def _send_quietly(self, message: JSONObject) -> None:
        try:
            await self.session.send(message)
        except SignalingError as exc:  # the server may be gone; nothing more to do
            logger.info(
                "could not send %s to %s: %s", message["type"], message.get("otherUsername"), exc
            )

    # ---- what the server sends ---------------------------------------------------------
    async def handle(self, message: ServerMessage) -> None:
        """One message; whatever it does wrong ends at most the call it belongs to."""
        kind = _kind(message)
        sender = getattr(message, "sender", None)
        try:
            await self._dispatch(message)
        except SignalingError:
            raise  # the connection itself: the reader's business
        except IllegalTransition as exc:
            logger.warning("ignored %s from %s: %s", kind, shown(sender, 40), exc)
        except Exception as exc:
            why = _why(exc)
            logger.warning("ignored %s from %s: %s", kind, shown(sender, 40), why)
            call = self.call
            if call is not None and call.live and sender == call.other:
                self.say(
                    f"ending the call with {call.other}: their {kind} could not be applied ({why})"
                )
                await call.hang_up(CloseReason.BAD_MESSAGE)

    async def _dispatch(self, message: ServerMessage) -> None:
        call, kind = self.call, _kind(message)
        sender = getattr(message, "sender", None)
        from_partner = call is not None and call.live and sender == call.other
        between_calls = self._partner is not None and sender == self._partner and not from_partner
        match message:
            case RemoteOffer() | RemoteCandidate() | RemoteClose() if between_calls:
                # Between two calls of a conversation (re-establishing): for _re_establish.
                self.inbox.put(message)
            case RemoteOffer():
                await self._offer(message, from_partner)
            case RemoteAnswer() if from_partner:
                assert call is not None
                await call.answer_received(self._admitted(message.answer, "answer"))
            case RemoteCandidate() if from_partner:
                assert call is not None
                if self._held_ufrag is not None and message.ufrag == self._held_ufrag:
                    self.inbox.put(message)  # for the held fresh offer
                else:
                    await self._remote_candidate(call, message.candidate)
            case RemoteClose() if sender == self._ringing:
                self._ringing_stopped.set()
            case RemoteClose() if from_partner:
                assert call is not None
                if call.state is CallState.OFFERING:
                    self._refusal = message
                await call.remote_closed(message.reason)
            case UsersOnline():
                self.inbox.put(message)
            case ServerError():
                logger.info("server error: %s", shown(message.raw, 400))
                if call is not None and call.state is CallState.OFFERING:
                    self.inbox.put(message)
                elif message.reason != Reason.NOT_IN_CALL:
                    self.say(f"server says: {message.text}")
            case _:
                logger.debug("ignoring %s from %s", kind, shown(sender, 40))

    async def _offer(self, message: RemoteOffer, from_partner: bool) -> None:
        call, sender = self.call, message.sender
        if from_partner:
            assert call is not None
            offer = description(message.offer, "offer")
            if is_fresh_negotiation(call.remote_sdp, offer["sdp"]):
                # The partner starts over on a new connection: only if ours failed too.
                self._hold_fresh_offer(call, message, offer["sdp"])
            else:
                await call.offer_received(self._admitted(offer, "offer"))
        elif call is not None and call.live:
            self.say(f"{sender} called while we are in a call; answering busy")
            await self.session.send(close(sender, CloseReason.BUSY))
        elif self.conduct.call:
            self.say(f"ignoring a call from {sender}: this peer only calls {self.conduct.call}")
            await self.session.send(close(sender, CloseReason.BUSY))
        else:
            try:
                checked = description(message.offer, "offer")
            except BadMessage as exc:
                # The server now has us ringing with them: the close frees both.
                self.say(f"refused the call from {sender}: {exc}")
                await self.session.send(close(sender, CloseReason.BAD_OFFER))
                return
            self.inbox.put(IncomingCall(sender, checked))

    def _admitted(self, data: object, kind: str) -> JSONObject:
        """A description from the other side, its refused candidates taken out."""
        checked = description(data, kind)
        checked["sdp"], refusals = self._gate.filter_sdp(checked["sdp"])
        if refusals:
            logger.info("left out %d candidate(s) of the %s: %s", len(refusals), kind, refusals[0])
        return checked

    async def _remote_candidate(self, call: CallLike, candidate: object) -> None:
        why = self._gate.admit(candidate)
        if why is not None:
            if self._gate.first_time(why):
                self.say(f"ignoring candidates from {call.other}: {why}")
            return
        await call.candidate_received(candidate if isinstance(candidate, dict) else None)


_FROM_USER: Final = (RemoteOffer, RemoteCandidate, RemoteClose)


def _is_incoming_call(kept: Kept) -> bool:
    return isinstance(kept, IncomingCall)


def _is_user_list(kept: Kept) -> bool:
    return isinstance(kept, UsersOnline)


def _is_error(kept: Kept) -> bool:
    return isinstance(kept, ServerError)


def _is_from_user(kept: Kept) -> bool:
    return isinstance(kept, _FROM_USER)


def _kind(message: ServerMessage) -> str:
    if isinstance(message, Unhandled):
        return shown(message.kind, 20)
    return {
        RemoteOffer: "offer",
        RemoteAnswer: "answer",
        RemoteCandidate: "candidate",
        RemoteClose: "close",
        UsersOnline: "users",
        ServerError: "error",
    }.get(type(message), "message")


def _refusal(other: str, error: ServerError) -> PeerError | None:
    if error.reason == Reason.UNKNOWN_USER:
        return PeerError(ExitCode.USER_OFFLINE, f"{other} is not online (try --wait)")
    if error.reason == Reason.BUSY:
        return PeerError(ExitCode.BUSY, f"{other} is busy in another call")
    if error.reason in (Reason.IN_ANOTHER_CALL, Reason.SELF_CALL, Reason.INVALID_USERNAME):
        return PeerError(ExitCode.ERROR, error.text)
    return None


def _why(exc: BaseException) -> str:
    """An exception as a one-line reason (aiortc's assertions carry no message)."""
    return shown(str(exc) or type(exc).__name__, 160)
