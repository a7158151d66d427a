"""Helpers for the signaling-server tests: a JSON WebSocket client that records what it
receives, the documented error reasons, and reading Prometheus text."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from signaling.websocket_ends import ENDED
from tests.helpers.support import ROOT

JSONObject = dict[str, Any]
RECEIVE_TIMEOUT = 5.0
# How long "nothing arrives" is watched for. A router reply is one loop turn away, but on
# the shared 2-core machine a process can be descheduled for hundreds of milliseconds, and
# over Redis a relay takes a pub/sub round trip: 2 s is long enough to mean "never".
QUIET_PERIOD = 2.0


def documented_error_reasons() -> set[str]:
    """The reasons in docs/protocol.md's error table (rows like "| `busy` | ...")."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("## Errors", 1)[1]
    return set(re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.MULTILINE))


@dataclass
class Client:
    """One WebSocket connection speaking protocol v1."""

    ws: aiohttp.ClientWebSocketResponse
    name: str = "?"
    received: list[JSONObject] = field(default_factory=list)

    async def _receive(self, within: float) -> aiohttp.WSMessage:
        # Not receive(timeout=...): aiohttp restarts that timeout at every ping it
        # answers, so with the server's heartbeat on it would never expire.
        return await asyncio.wait_for(self.ws.receive(), within)

    async def send(self, message: JSONObject) -> None:
        await self.ws.send_str(json.dumps(message))

    async def send_raw(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    async def recv(self, within: float = RECEIVE_TIMEOUT) -> JSONObject:
        """The next JSON message; fails on anything else (close, binary, timeout)."""
        msg = await self._receive(within)
        assert msg.type is aiohttp.WSMsgType.TEXT, (
            f"{self.name}: expected a text frame, got {msg.type!r} {msg.data!r} {msg.extra!r}"
        )
        data = json.loads(msg.data)
        assert isinstance(data, dict)
        self.received.append(data)
        return data

    async def expect_nothing(self, period: float = QUIET_PERIOD) -> None:
        """Nothing arrives for a while (and the socket is still open)."""
        try:
            msg = await self._receive(period)
        except TimeoutError:
            assert not self.ws.closed
            return
        raise AssertionError(f"{self.name}: expected nothing, got {msg.type!r} {msg.data!r}")

    async def login(self, username: str, **extra: Any) -> JSONObject:
        self.name = username
        await self.send({"type": "login", "username": username, **extra})
        return await self.recv()

    async def request(self, message: JSONObject) -> JSONObject:
        await self.send(message)
        return await self.recv()

    async def users(self) -> list[str]:
        reply = await self.request({"type": "list"})
        assert reply["type"] == "users", reply
        users: list[str] = reply["users"]
        return users

    async def close_frame(self, within: float = RECEIVE_TIMEOUT) -> int | None:
        """Wait for the server to close the socket; the close code it sent."""
        while True:
            msg = await self._receive(within)
            if msg.type is aiohttp.WSMsgType.TEXT:
                continue
            assert msg.type in ENDED, msg
            return self.ws.close_code


def metric_values(text: str, name: str) -> dict[str, float]:
    """Samples of one Prometheus metric: label text (or "") -> value."""
    values: dict[str, float] = {}
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", re.MULTILINE)
    for labels, value in pattern.findall(text):
        values[labels] = float(value)
    return values
