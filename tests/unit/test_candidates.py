"""Candidate conversion, and calls whose candidates arrive trickled and out of order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import RTCConfiguration
from aiortc.mediastreams import VideoStreamTrack

from peer.call.connection import Call, CallState, CandidateBuffer
from peer.ice.candidates import CandidateError, candidate_from_json, candidate_to_json
from peer.stack.host_addresses import restrict_host_addresses

CHROME_CANDIDATE = {
    "candidate": "candidate:842163049 1 udp 1677729535 127.0.0.1 51234 typ srflx "
    "raddr 10.0.0.5 rport 51234 generation 0 ufrag sK5q network-cost 999",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "sK5q",
}


def test_browser_candidate_is_parsed() -> None:
    candidate = candidate_from_json(CHROME_CANDIDATE)
    assert candidate is not None
    assert (candidate.ip, candidate.port, candidate.type) == ("127.0.0.1", 51234, "srflx")
    assert (candidate.protocol, candidate.priority, candidate.foundation) == (
        "udp",
        1677729535,
        "842163049",
    )
    assert (candidate.relatedAddress, candidate.relatedPort) == ("10.0.0.5", 51234)
    assert (candidate.sdpMid, candidate.sdpMLineIndex) == ("0", 0)


def test_tcp_candidate_keeps_its_tcptype() -> None:
    line = "candidate:1 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0"
    candidate = candidate_from_json({"candidate": line, "sdpMid": "1", "sdpMLineIndex": 1})
    assert candidate is not None
    assert (candidate.protocol, candidate.tcpType, candidate.sdpMid) == ("tcp", "active", "1")


@pytest.mark.parametrize("end", [None, {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}])
def test_end_of_candidates(end: dict[str, Any] | None) -> None:
    assert candidate_from_json(end) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"sdpMid": "0"},
        {"candidate": 42},
        {"candidate": "hello world"},
        {"candidate": "candidate:1 1 udp"},
        {"candidate": "candidate:1 1 udp notanumber 127.0.0.1 9 typ host"},
    ],
)
def test_malformed_candidates_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(CandidateError):
        candidate_from_json(bad)


def test_round_trip_to_browser_form() -> None:
    candidate = candidate_from_json(CHROME_CANDIDATE)
    assert candidate is not None
    again = candidate_from_json(candidate_to_json(candidate))
    assert again == candidate


def test_buffer_holds_until_released_then_passes_through() -> None:
    buffer = CandidateBuffer()
    assert buffer.hold({"candidate": "a"}) is True
    assert buffer.hold(None) is True
    assert buffer.release() == [{"candidate": "a"}, None]
    assert buffer.hold({"candidate": "b"}) is False
    assert buffer.release() == []


@pytest.fixture
def loopback_only() -> Iterator[None]:
    restrict_host_addresses(["127.0.0.1"])
    yield
    restrict_host_addresses([])


def _strip_candidates(description: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Split an SDP into one without candidates and the candidates as a browser trickles them."""
    lines = description["sdp"].split("\r\n")
    kept: list[str] = []
    candidates: list[dict[str, Any]] = []
    mid: str | None = None
    mline = -1
    for line in lines:
        if line.startswith("m="):
            mline += 1
        if line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        if line.startswith("a=candidate:"):
            candidates.append({"candidate": line[2:], "sdpMid": mid, "sdpMLineIndex": mline})
        elif line != "a=end-of-candidates":
            kept.append(line)
    return {"type": description["type"], "sdp": "\r\n".join(kept)}, candidates


@pytest.mark.parametrize("candidates_first", [True, False])
async def test_trickled_candidates_connect_a_call(
    loopback_only: None, candidates_first: bool
) -> None:
    """The caller's offer carries no candidates (as Chromium's does); they come trickled,
    before the offer or after it, and the call still connects."""
    to_callee: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    to_caller: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send_to_callee(message: dict[str, Any]) -> None:
        await to_callee.put(message)

    async def send_to_caller(message: dict[str, Any]) -> None:
        await to_caller.put(message)

    def make_call(other: str, send: Any) -> Call:
        return Call(
            other,
            configuration=RTCConfiguration([]),
            send=send,
            local_tracks=[VideoStreamTrack()],
            on_remote_track=lambda track: None,
        )

    caller = make_call("bob", send_to_callee)
    callee = make_call("alice", send_to_caller)
    try:
        await caller.dial()
        offer_message = await to_callee.get()
        offer, candidates = _strip_candidates(offer_message["offer"])
        assert candidates, "aiortc put no candidates in its offer"
        assert "a=candidate" not in offer["sdp"]
        trickle = [*candidates, None]
        if candidates_first:
            for candidate in trickle:
                await callee.candidate_received(candidate)
            await callee.offer_received(offer)
        else:
            await callee.offer_received(offer)
            for candidate in trickle:
                await callee.candidate_received(candidate)
        answer_message = await to_caller.get()
        assert answer_message["type"] == "answer"
        # The caller never learns the callee's candidates: only the callee's checks,
        # sent to the candidates it was trickled, can connect this call.
        answer, _ = _strip_candidates(answer_message["answer"])
        await caller.answer_received(answer)
        await asyncio.wait_for(asyncio.gather(caller.connected.wait(), callee.connected.wait()), 15)
        assert caller.state is CallState.CONNECTED
        assert callee.state is CallState.CONNECTED
    finally:
        await caller.hang_up(notify=False)
        await callee.hang_up(notify=False)
