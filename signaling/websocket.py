"""The WebSocket endpoint of the signaling server: admission (origin, capacity, per
address), each connection's registration, its read loop (login deadline, rate limit,
the routing), and its teardown."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from . import protocol
from .clientaddr import client_address
from .origin import origin_allowed
from .outbox import Flusher, Outbox
from .protocol import Reason
from .ratelimit import TokenBucket
from .router import Outgoing, Router
from .state import STATE, Client, SignalingState, deliver
from .websocket_ends import CLOSING

logger = logging.getLogger(__name__)

# Frames between the protocol limit and this get a polite "too-large" error and the
# connection stays open; beyond it aiohttp closes the socket with 1009. aiohttp checks
# a frame's declared length before reading its payload, so a connection never holds
# more than this of a frame it is still receiving.
HARD_FRAME_LIMIT = 128 * 1024
# Failed token attempts one connection may make.
MAX_TOKEN_FAILURES = 3
# How long a close waits for the client's answering close frame (aiohttp's default is
# 10 s): a client that never answers holds up the server's shutdown this long.
CLOSE_TIMEOUT = 3.0


@dataclass
class LoginWatch:
    """Until a connection has logged in: its deadline and its failed token attempts."""

    deadline: float
    done: bool = False
    token_failures: int = 0

    def check(self, router: Router, client: Client, outgoing: list[Outgoing]) -> bool:
        """After a frame: True when the connection has failed the token too often."""
        if router.username_of(client.id) is not None:
            self.done = True
            return False
        for destination, message in outgoing:
            if destination == client.id and message.get("reason") == Reason.UNAUTHORIZED:
                self.token_failures += 1
                logger.warning(
                    "wrong token from %s (attempt %d of %d)",
                    client.address,
                    self.token_failures,
                    MAX_TOKEN_FAILURES,
                )
        if self.token_failures >= MAX_TOKEN_FAILURES:
            logger.warning("closing connection from %s: too many wrong tokens", client.address)
            return True
        return False


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    address = _admit(request, state)
    state.per_address[address] = state.per_address.get(address, 0) + 1
    try:
        return await _serve_websocket(request, state, address)
    finally:
        left = state.per_address[address] - 1
        if left:
            state.per_address[address] = left
        else:
            del state.per_address[address]


def _admit(request: web.Request, state: SignalingState) -> str:
    """The client's address, once its origin, the server's capacity and the address's
    share of it allow another WebSocket; raises the HTTP refusal otherwise."""
    config = state.config
    origin = request.headers.get("Origin")
    if not origin_allowed(origin, request.host, request.secure, config.allowed_origins):
        logger.warning(
            "refusing a WebSocket from %s: page origin %r is not allowed (--allowed-origin)",
            request.remote,
            origin[:100] if origin else origin,
        )
        raise web.HTTPForbidden(text="this page's origin may not connect (--allowed-origin)\n")
    if len(state.clients) >= config.max_connections:
        logger.warning("refusing connection from %s: limit reached", request.remote)
        raise web.HTTPServiceUnavailable(text="too many connections\n")
    address = client_address(
        request.remote, request.headers.getall("X-Forwarded-For", ()), config.trusted_proxies
    )
    if state.per_address.get(address, 0) >= config.max_per_address:
        logger.warning(
            "refusing connection from %s: %d already open from there (--max-per-ip)",
            address,
            config.max_per_address,
        )
        raise web.HTTPTooManyRequests(text="too many connections from your address\n")
    return address


async def _serve_websocket(
    request: web.Request, state: SignalingState, address: str
) -> web.StreamResponse:
    ws = web.WebSocketResponse(
        heartbeat=state.config.heartbeat or None,
        max_msg_size=HARD_FRAME_LIMIT,
        timeout=CLOSE_TIMEOUT,
        # Deflate costs CPU on every message and some 300 KB of zlib state per
        # browser connection; signaling frames are small. Node's `ws` says the same.
        compress=False,
    )
    try:
        await ws.prepare(request)
    except ConnectionResetError:
        # Reset right after its upgrade request: nothing to serve, and not an error of
        # ours (aiohttp would log the failed 101 write as one, with a traceback).
        # The WebSocketResponse is half-prepared and cannot be returned; aiohttp's
        # attempt to send this one fails quietly as a premature disconnection.
        logger.debug("connection from %s gone during the upgrade", request.remote)
        return web.Response()
    transport = request.transport
    if transport is None:  # the client went away during the upgrade
        return ws
    client = _register(state, ws, transport, address)
    try:
        await _read_frames(state, client)
    except ConnectionResetError:
        # aiohttp answers pings inside receive(); a client that resets its connection
        # while pings are queued makes that write fail. It is a disconnect like any
        # other (the socket fuzzer's ping flood then reset found it).
        logger.debug("connection %s reset by the client", client.id)
    except asyncio.CancelledError:
        if not state.shutting_down:
            raise
        # Cancelled by _close_sockets: close from this task, which is not waiting in
        # receive() any more, so close() waits for the client's answering close frame
        # before the TCP connection goes. Closed from another task while receive()
        # waits, aiohttp drops the connection right after sending its close frame; the
        # client's answer then cannot be written and aiohttp's client reports 1006
        # instead of the 1001 it received (the "KNOWN FLAKE" of test_server.py).
        client.handler.uncancel()
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
    finally:
        _unregister(state, client)
    return ws


def _register(
    state: SignalingState, ws: web.WebSocketResponse, transport: asyncio.Transport, address: str
) -> Client:
    loop = asyncio.get_running_loop()
    if state.flusher is None:
        state.flusher = Flusher(loop)
    connection = next(state.ids)
    handler = asyncio.current_task()
    assert handler is not None
    outbox = Outbox(
        transport,
        state.flusher,
        is_closed=lambda: ws.closed,
        on_overflow=lambda: _slow_reader(connection),
    )
    client = Client(
        connection,
        address,
        ws,
        handler,
        outbox,
        rate=TokenBucket(state.config.rate_limit, state.config.rate_burst),
        login=LoginWatch(loop.time() + state.config.login_timeout),
    )
    state.clients[connection] = client
    state.router.connect(connection)
    logger.debug("connection %s opened from %s", connection, address)
    return client


def _unregister(state: SignalingState, client: Client) -> None:
    del state.clients[client.id]
    left = state.routing.disconnect(client.id)
    if not state.shutting_down:
        deliver(state, client.id, left)
    logger.debug("connection %s closed (code %s)", client.id, client.ws.close_code)


def _slow_reader(connection: int) -> None:
    # Messages for it are queued behind megabytes it is not reading: nothing more
    # can reach it, and the memory is better freed now than at the next heartbeat.
    logger.warning("connection %s stopped reading; dropping it", connection)


async def _read_frames(state: SignalingState, client: Client) -> None:
    """Hand each frame to the routing and send what comes back, until the client
    leaves, fails to log in in time, or fails the token too often."""
    ws, connection, login = client.ws, client.id, client.login
    while True:
        # receive() rather than `async for`: one coroutine less per message, 4% of
        # a relayed message's CPU in the profile.
        if login.done:
            frame = await ws.receive()
        else:
            remaining = login.deadline - asyncio.get_running_loop().time()
            try:
                frame = await ws.receive(timeout=max(remaining, 0.001))
            except TimeoutError:
                logger.info(
                    "connection %s from %s did not log in in time", connection, client.address
                )
                await _refuse(client, b"log in first")
                return
        if frame.type is WSMsgType.TEXT or frame.type is WSMsgType.BINARY:
            payload: str | bytes = frame.data
        elif frame.type is WSMsgType.ERROR:
            logger.info("connection %s error: %s", connection, ws.exception())
            return
        elif frame.type in CLOSING:
            return
        else:
            continue
        if client.rate.allow():
            outgoing = await state.routing.handle_frame(connection, payload)
        else:
            outgoing = [(connection, protocol.error(Reason.RATE_LIMITED))]
        deliver(state, connection, outgoing)
        if not login.done and login.check(state.router, client, outgoing):
            await _refuse(client, b"wrong token")
            return
        # Not kept while waiting for the next frame: 10,000 idle connections
        # would otherwise hold on to 10,000 last messages.
        del frame, payload, outgoing


async def _refuse(client: Client, why: bytes) -> None:
    """Close with 1008 (policy violation), after what is queued for it (its last reply)."""
    client.outbox.flush()
    await client.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=why)
