"""A real aiortc peer in the test process that calls a webcam-peer and puts on its
data channels whatever a test wants, lies included: the other side of the wire
format, for checking what a webcam-peer refuses."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from peer.stack.host_addresses import restrict_host_addresses
from tests.helpers.server_support import Client
from tests.helpers.support import SignalingServer

TIMEOUT = 20.0


@dataclass
class Channel:
    """A data channel and everything received on it."""

    channel: RTCDataChannel
    inbox: asyncio.Queue[str | bytes] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.channel.on("message", self.inbox.put_nowait)
        self.channel.on("close", self.closed.set)

    def send(self, message: str | bytes | dict[str, Any]) -> None:
        self.channel.send(json.dumps(message) if isinstance(message, dict) else message)

    async def receive(self) -> dict[str, Any]:
        """The next control message (JSON) the webcam-peer sent."""
        message = await asyncio.wait_for(self.inbox.get(), TIMEOUT)
        assert isinstance(message, str), message
        data: dict[str, Any] = json.loads(message)
        return data

    async def wait_open(self) -> None:
        if self.channel.readyState != "open":
            opened = asyncio.Event()
            self.channel.on("open", opened.set)
            await asyncio.wait_for(opened.wait(), TIMEOUT)


@dataclass
class ScriptedPeer:
    pc: RTCPeerConnection
    chat: Channel | None  # None: an offer without data channels (the tutorial's page)

    @property
    def chat_channel(self) -> Channel:
        assert self.chat is not None
        return self.chat

    def open(self, label: str) -> Channel:
        return Channel(self.pc.createDataChannel(label, ordered=True))


@contextlib.asynccontextmanager
async def scripted_call(
    server: SignalingServer, me: str, other: str, *, data_channels: bool = True
) -> AsyncIterator[ScriptedPeer]:
    """Log in as ``me``, call ``other`` with a chat channel, yield once it is open
    (without ``data_channels``: offer audio only, yield once connected)."""
    restrict_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration([]))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(server.ws_url) as ws:
                client = Client(ws)
                assert (await client.login(me))["success"] is True
                chat = Channel(pc.createDataChannel("chat")) if data_channels else None
                if chat is None:
                    pc.addTransceiver("audio", direction="recvonly")
                connected = asyncio.Event()

                @pc.on("connectionstatechange")
                def _state() -> None:
                    if pc.connectionState == "connected":
                        connected.set()

                await pc.setLocalDescription(await pc.createOffer())
                local = pc.localDescription
                await client.send(
                    {
                        "type": "offer",
                        "offer": {"type": local.type, "sdp": local.sdp},
                        "otherUsername": other,
                    }
                )
                while (message := await client.recv(TIMEOUT))["type"] != "answer":
                    pass  # trickled candidates: the answer's SDP carries them all
                answer = message["answer"]
                await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
                if chat is not None:
                    await chat.wait_open()
                await asyncio.wait_for(connected.wait(), TIMEOUT)
                yield ScriptedPeer(pc, chat)
                await client.send({"type": "close", "otherUsername": other})
    finally:
        await pc.close()
        restrict_host_addresses([])


@contextlib.asynccontextmanager
async def loopback_pcs() -> AsyncIterator[tuple[RTCPeerConnection, RTCPeerConnection]]:
    """Two peer connections in this process, gathering on 127.0.0.1 only; add
    channels to the first, then connect them with :func:`negotiate`."""
    restrict_host_addresses(["127.0.0.1"])
    caller = RTCPeerConnection(RTCConfiguration([]))
    callee = RTCPeerConnection(RTCConfiguration([]))
    try:
        yield caller, callee
    finally:
        await caller.close()
        await callee.close()
        restrict_host_addresses([])


async def negotiate(caller: RTCPeerConnection, callee: RTCPeerConnection) -> None:
    """Offer/answer between two in-process connections (candidates ride in the SDP)."""
    await caller.setLocalDescription(await caller.createOffer())
    await callee.setRemoteDescription(caller.localDescription)
    await callee.setLocalDescription(await callee.createAnswer())
    await caller.setRemoteDescription(callee.localDescription)
