"""A protocol v1 client over an aiohttp WebSocket: log in, send, receive, reconnect."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from signaling.websocket_ends import ENDED

logger = logging.getLogger(__name__)

JSONObject = dict[str, Any]
FIRST_DELAY: Final = 0.25
MAX_DELAY: Final = 5.0


@dataclass
class Backoff:
    """Reconnection delays: doubled after each failed attempt up to ``cap``, each one
    scattered by +-50 % so that every client of a restarted server does not come back
    in the same millisecond."""

    first: float = FIRST_DELAY
    cap: float = MAX_DELAY
    rng: random.Random = field(default_factory=random.Random)
    _delay: float = field(init=False)

    def __post_init__(self) -> None:
        self._delay = self.first

    def next(self) -> float:
        """How long to wait before the next attempt."""
        wait = self._delay * self.rng.uniform(0.5, 1.5)
        self._delay = min(self._delay * 2, self.cap)
        return wait


class SignalingError(Exception):
    """Base class: something about the signaling server the user must hear about."""


class ServerUnreachable(SignalingError):
    pass


class LoginRefused(SignalingError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SignalingLost(SignalingError):
    """The connection dropped and could not be re-established."""


def normalise_url(url: str) -> str:
    """Accept ws(s):// or http(s):// and a bare host:port; default path /ws."""
    if "://" not in url:
        url = "ws://" + url
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"server URL {url!r} must look like ws://HOST:PORT or wss://HOST:PORT")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


class SignalingClient:
    """One logged-in connection to the signaling server.

    ``receive()`` hides short outages: when the socket drops it reconnects with
    exponential backoff and jitter and logs in again under the same name, so a call
    whose media flows peer to peer survives a server restart.
    """

    def __init__(
        self,
        url: str,
        username: str,
        token: str | None = None,
        *,
        verify_tls: bool = True,
        reconnect_for: float = 60.0,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.url = normalise_url(url)
        self.username = username
        self.token = token
        self.reconnect_for = reconnect_for
        self._ssl: ssl.SSLContext | bool = verify_tls
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closing = False
        self._reconnecting = False
        self.login_extras: JSONObject = {}
        self.reconnects = 0
        # Told "reconnecting..." and "reconnected": the person at the terminal should
        # know why hanging up or calling does not reach anybody for a while.
        self._on_status = on_status or (lambda text: None)

    @property
    def connected(self) -> bool:
        """Logged in over an open socket now (False while reconnecting)."""
        return self._ws is not None and not self._ws.closed and not self._reconnecting

    async def connect(self) -> None:
        """Connect and log in; raises ServerUnreachable or LoginRefused."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(
                self.url, heartbeat=20.0, ssl=self._ssl, timeout=aiohttp.ClientWSTimeout(ws_close=5)
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ServerUnreachable(
                f"cannot reach the signaling server at {self.url}: {exc}"
            ) from exc
        login: JSONObject = {"type": "login", "username": self.username}
        if self.token is not None:
            login["token"] = self.token
        ticket = self.login_extras.get("ticket")
        if isinstance(ticket, str):
            # The name back after a server restart, and from nobody else (docs/protocol.md).
            login["ticket"] = ticket
        await self._ws.send_json(login)
        while True:
            reply = await self._receive_raw()
            if reply is None:
                raise ServerUnreachable(f"the signaling server at {self.url} closed the connection")
            if reply.get("type") == "login":
                break
            if reply.get("type") == "error":
                # e.g. rate-limited or already logged in: report as a refusal.
                break
        if reply.get("success") is not True:
            reason = str(reply.get("reason") or "refused")
            message = str(reply.get("message") or reason)
            await self._ws.close()
            raise LoginRefused(reason, f"login as {self.username!r} refused: {message}")
        self.login_extras = {k: v for k, v in reply.items() if k not in ("type", "success")}
        logger.info("logged in to %s as %s", self.url, self.username)

    async def send(self, message: JSONObject) -> None:
        if self._ws is None or self._ws.closed or self._reconnecting:
            raise SignalingLost("not connected to the signaling server")
        try:
            await self._ws.send_str(json.dumps(message, separators=(",", ":")))
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise SignalingLost(f"could not send to the signaling server: {exc}") from exc

    async def receive(self) -> JSONObject:
        """The next message from the server, reconnecting if the socket drops."""
        while True:
            message = await self._receive_raw()
            if message is not None:
                return message
            if self._closing:
                raise SignalingLost("signaling connection closed")
            await self._reconnect()

    async def _receive_raw(self) -> JSONObject | None:
        assert self._ws is not None
        while True:
            frame = await self._ws.receive()
            if frame.type is aiohttp.WSMsgType.TEXT:
                try:
                    data = json.loads(frame.data)
                except ValueError:
                    logger.warning("ignoring a non-JSON frame from the server")
                    continue
                if isinstance(data, dict):
                    return data
                continue
            if frame.type in ENDED:
                return None

    async def _reconnect(self) -> None:
        self._reconnecting = True
        try:
            await self._reconnect_with_backoff()
        finally:
            self._reconnecting = False

    async def _reconnect_with_backoff(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.reconnect_for
        backoff = Backoff()
        logger.warning("lost the signaling server; reconnecting")
        self._on_status(
            f"lost the signaling server; reconnecting… (for up to {self.reconnect_for:.0f} s)"
        )
        warned_taken = False
        while not self._closing:
            try:
                await self.connect()
            except LoginRefused as exc:
                if exc.reason != "username-taken":
                    raise SignalingLost(str(exc)) from exc
                # Our old session may not have been dropped yet, so keep trying; but
                # the person hears it: someone else may have logged in as them.
                if not warned_taken:
                    warned_taken = True
                    logger.warning(
                        "the name %s is taken on the server: someone else may be using it "
                        "(possible impersonation); still trying to log in again",
                        self.username,
                    )
                    self._on_status(
                        f"the name {self.username} is taken on the signaling server: "
                        "someone else may be logged in as you (possible impersonation)"
                    )
            except ServerUnreachable:
                pass
            else:
                self.reconnects += 1
                logger.warning("reconnected to the signaling server")
                self._on_status(
                    f"reconnected to the signaling server after {loop.time() - started:.1f} s; "
                    f"logged in again as {self.username}"
                )
                return
            wait = backoff.next()
            if loop.time() + wait > deadline:
                break
            await asyncio.sleep(wait)
        raise SignalingLost(
            f"the signaling server at {self.url} has been unreachable "
            f"for {self.reconnect_for:.0f} s"
        )

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
