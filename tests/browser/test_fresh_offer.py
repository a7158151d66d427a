"""A partner's "fresh negotiation" offer (new ICE credentials: "my side failed, start
over") is taken only once our own media has failed or is failing (issue 16).

Nobody but the partner can send offers in the partner's name, so the hostile party is
whoever holds that name on the server: an attacker who got it in a restart gap, or a
server that forwards what it likes. Here it is the test itself: a plain WebSocket
client logged in as mallory, with a real aiortc connection sending synthetic video,
in a real call with a real webcam-peer (or the page in Chromium). While that call's
media flows, mallory sends a fresh offer from a second connection."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from playwright.async_api import Browser

from media.sources.synthetic import SyntheticVideoTrack
from peer.call.recovery import CONNECTION_HEALTHY, FRESH_OFFER_HOLD
from peer.ice.candidates import CandidateError, candidate_from_json
from peer.stack.host_addresses import restrict_host_addresses
from tests.helpers.browser_support import login_page, page_state, remote_video_playing, text_of
from tests.helpers.peer_support import start_peer
from tests.helpers.server_support import Client, JSONObject
from tests.helpers.support import Process, SignalingServer, start_signaling_server
from tests.network.test_reliability import (
    BOT,
    PROOF,
    STATS,
    assert_no_traceback,
    frames,
    frames_keep_coming,
)

pytestmark = pytest.mark.slow

TIMEOUT = 20.0


@dataclass
class Leg:
    """One RTCPeerConnection of mallory's: synthetic video out, frames in counted."""

    pc: RTCPeerConnection
    frames: int = 0
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def new(cls) -> Leg:
        leg = cls(RTCPeerConnection(RTCConfiguration([])))
        leg.pc.addTrack(SyntheticVideoTrack(320, 240, 15))

        @leg.pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            leg.readers.append(asyncio.create_task(leg._count(track)))

        return leg

    async def _count(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames += 1
                self.arrived.set()

    async def reach(self, count: int, within: float = TIMEOUT) -> None:
        async with asyncio.timeout(within):
            while self.frames < count:
                self.arrived.clear()
                await self.arrived.wait()

    async def offer(self) -> JSONObject:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        local = self.pc.localDescription
        return {"type": local.type, "sdp": local.sdp}

    async def close(self) -> None:
        await self.pc.close()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


@dataclass
class Mallory:
    """The partner in signaling terms; what the other side sends lands in ``news``."""

    client: Client
    other: str
    first: Leg
    news: asyncio.Queue[JSONObject] = field(default_factory=asyncio.Queue)
    latest: Leg | None = None  # the leg last offered

    async def read(self) -> None:
        """Trickled candidates (the page trickles all of its own) go to the latest leg."""
        while True:
            message = await self.client.recv(3600)
            if message.get("type") == "candidate" and message.get("username") == self.other:
                with contextlib.suppress(CandidateError, ValueError):
                    candidate = candidate_from_json(message.get("candidate"))
                    if candidate is not None and self.latest is not None:
                        await self.latest.pc.addIceCandidate(candidate)
            else:
                await self.news.put(message)

    async def next(self, kind: str, within: float = TIMEOUT) -> JSONObject:
        async with asyncio.timeout(within):
            while (message := await self.news.get())["type"] != kind:
                pass
        return message

    async def send_offer(self, leg: Leg) -> None:
        self.latest = leg
        offer = await leg.offer()
        await self.client.send({"type": "offer", "offer": offer, "otherUsername": self.other})


@contextlib.asynccontextmanager
async def mallory_calls(server: SignalingServer, other: str) -> AsyncIterator[Mallory]:
    """mallory logs in, calls ``other`` from a connection that sends video, and yields
    once it is connected and receiving."""
    restrict_host_addresses(["127.0.0.1"])
    first = Leg.new()
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url) as ws:
            mallory = Mallory(Client(ws), other, first)
            assert (await mallory.client.login("mallory"))["success"] is True
            reader = asyncio.create_task(mallory.read())
            try:
                await mallory.send_offer(first)
                answer = (await mallory.next("answer", 40))["answer"]
                await first.pc.setRemoteDescription(
                    RTCSessionDescription(answer["sdp"], answer["type"])
                )
                await first.reach(PROOF)
                yield mallory
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    finally:
        await first.close()
        restrict_host_addresses([])


async def test_webcam_peer_refuses_a_fresh_offer_while_its_media_flows() -> None:
    server = start_signaling_server()
    bob = start_peer(server, "--login", "bob", *BOT, *STATS)
    try:
        await asyncio.to_thread(bob.wait_for, "waiting for calls")
        async with mallory_calls(server, "bob") as mallory:
            await asyncio.to_thread(frames, bob, PROOF)
            await _fresh_offer_is_refused(mallory)
            answers = [m for m in mallory.client.received if m["type"] == "answer"]
            assert len(answers) == 1  # the first call's only
            await asyncio.to_thread(
                bob.wait_for,
                "refused a fresh offer from mallory: our media connection with them still "
                "works; the call goes on",
            )
            # The call is the same call: video keeps coming both ways.
            await asyncio.to_thread(frames, bob, frames(bob) + PROOF)
            await mallory.first.reach(mallory.first.frames + PROOF)
            await _honest_fresh_offer_is_taken(mallory, bob)
        # mallory gone: bob's call ends before bob is stopped (a quit while aiortc
        # still closes the connection by itself trips aiortc, not what is tested here).
        await asyncio.to_thread(bob.wait_for, "call with mallory ended")
    finally:
        bob.stop()
        server.process.stop()
    assert_no_traceback(bob)


async def _fresh_offer_is_refused(mallory: Mallory) -> None:
    """A fresh offer mid-call is held, then refused (connection-healthy), never connected."""
    fresh = Leg.new()
    try:
        sent = time.monotonic()
        await mallory.send_offer(fresh)
        close = await mallory.next("close", FRESH_OFFER_HOLD + 10)
        assert close.get("reason") == CONNECTION_HEALTHY, close
        assert time.monotonic() - sent >= FRESH_OFFER_HOLD - 1
        assert fresh.pc.connectionState != "connected"
    finally:
        await fresh.close()


async def _honest_fresh_offer_is_taken(mallory: Mallory, bob: Process) -> None:
    """The honest case still works: a partner whose old connection is gone (closed
    here) and who starts over gets the call re-established."""
    assert not any(" ended: " in line or "reconnecting the call" in line for line in bob.lines)
    await mallory.first.close()
    fresh = Leg.new()
    try:
        await mallory.send_offer(fresh)
        answer = (await mallory.next("answer", 30))["answer"]
        await fresh.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        await asyncio.to_thread(bob.wait_for, "call with mallory re-established", 30)
        await fresh.reach(PROOF)
    finally:
        await fresh.close()


@pytest.mark.browser
async def test_the_page_refuses_a_fresh_offer_while_its_media_flows(browser: Browser) -> None:
    server = start_signaling_server()
    try:
        carol = await login_page(browser, server.http_url, "carol")
        async with mallory_calls(server, "carol") as mallory:
            await remote_video_playing(carol)
            await _fresh_offer_is_refused(mallory)
            assert await text_of(carol, "#notice") == (
                "Refused a new connection from mallory: this call's connection still works, "
                "so the call goes on."
            )
            assert await text_of(carol, "#error") == ""
            await frames_keep_coming(carol)
            await mallory.first.reach(mallory.first.frames + PROOF)
            assert await page_state(carol) == "in-call"
            assert await text_of(carol, "#status") == "In a call with mallory."
            # Honest: mallory's old connection goes, her fresh offer is held until the
            # page's own connection falters, then taken.
            await mallory.first.close()
            fresh = Leg.new()
            try:
                await mallory.send_offer(fresh)
                answer = (await mallory.next("answer", 30))["answer"]
                await fresh.pc.setRemoteDescription(
                    RTCSessionDescription(answer["sdp"], answer["type"])
                )
                await carol.wait_for_function(
                    "() => document.getElementById('status').textContent"
                    " === 'Call with mallory re-established.'",
                    timeout=30_000,
                )
                await fresh.reach(PROOF)
                await frames_keep_coming(carol)
            finally:
                await fresh.close()
    finally:
        server.process.stop()
