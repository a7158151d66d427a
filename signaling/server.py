"""The aiohttp shell around the router: WebSockets in, router outputs out.

Everything that decides anything lives in :mod:`signaling.router`; this module
reads frames, applies the per-connection rate limit, sends what the router
returns, and serves the page, ``/config``, ``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from . import protocol
from .clientaddr import Network, client_address
from .cluster import DEFAULT_PRESENCE_TTL, ClusterRouter
from .headers import security_headers
from .ice_servers import IceServers, with_ice_servers
from .metrics import Metrics
from .origin import host_allowed, origin_allowed
from .outbox import Flusher, Outbox
from .protocol import MAX_MESSAGE_BYTES, Reason
from .ratelimit import TokenBucket
from .resume import HeldNamesWriter, start_resumption
from .router import DEFAULT_RING_TIMEOUT, Connection, Outgoing, Router
from .routing import InProcess, Routing
from .turn_credentials import DEFAULT_TTL
from .websocket_ends import CLOSING

logger = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("signaling") / "static"))
# Frames between the protocol limit and this get a polite "too-large" error and the
# connection stays open; beyond it aiohttp closes the socket with 1009. aiohttp checks
# a frame's declared length before reading its payload, so a connection never holds
# more than this of a frame it is still receiving.
HARD_FRAME_LIMIT = 128 * 1024
# A connection that has not logged in by then is closed: idle sockets would take
# the places of real users under --max-connections.
DEFAULT_LOGIN_TIMEOUT = 10.0
# Connections from one address (NAT'd offices and campuses share one).
DEFAULT_MAX_PER_ADDRESS = 256
# How long a client may take to send a whole HTTP request (the upgrade included),
# counted from its connection; also how long an idle keep-alive connection stays.
# aiohttp's default is 75 s, which lets a slowloris hold sockets for that long.
HTTP_REQUEST_TIMEOUT = 10.0
# `list` per connection: the page asks every 3 s; a reply may hold 200 names (and
# costs a Redis SCAN with --redis), so a client gets no more than this.
LIST_RATE = 1.0
LIST_BURST = 5
# Failed token attempts one connection may make.
MAX_TOKEN_FAILURES = 3
# How long a close waits for the client's answering close frame (aiohttp's default is
# 10 s): a client that never answers holds up the server's shutdown this long.
CLOSE_TIMEOUT = 3.0


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None
    ice_servers: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl: int = DEFAULT_TTL
    max_connections: int = 10_000
    heartbeat: float = 20.0
    rate_limit: float = 50.0
    rate_burst: int = 200
    redis_url: str | None = None
    redis_ttl: float = DEFAULT_PRESENCE_TTL
    # Web origins besides the server's own whose pages may open a WebSocket here.
    allowed_origins: tuple[str, ...] = ()
    login_timeout: float = DEFAULT_LOGIN_TIMEOUT
    ring_timeout: float = DEFAULT_RING_TIMEOUT
    listing: bool = True
    max_per_address: int = DEFAULT_MAX_PER_ADDRESS
    # Reverse proxies whose X-Forwarded-For names the client.
    trusted_proxies: tuple[Network, ...] = ()
    # Resume tickets and names kept across a restart (signaling.resume); None: neither.
    session_secret_file: Path | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


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


@dataclass(eq=False, slots=True)
class Client:
    """One WebSocket connection: what the shell keeps for it. The router knows it by
    ``id``."""

    id: int
    address: str
    ws: web.WebSocketResponse
    # The task serving it: on shutdown it closes its own socket (see _close_sockets).
    handler: asyncio.Task[Any]
    outbox: Outbox
    rate: TokenBucket
    login: LoginWatch
    # `list` requests (made on the first one: most clients never ask).
    list_rate: TokenBucket | None = None


@dataclass
class SignalingState:
    config: ServerConfig
    router: Router
    metrics: Metrics
    # Where frames go: the router itself, or (--redis) the link to the other processes.
    routing: Routing
    clients: dict[int, Client] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    flusher: Flusher | None = None
    # STUN/TURN: the public part for /config, TURN credentials in each login reply.
    ice: IceServers = field(default_factory=IceServers)
    # Set while the server shuts down: its sockets closing are not users leaving, so
    # nobody's partner is told "disconnected" (calls go on peer to peer, and both
    # peers log in again to the next server: docs/reliability.md); nothing else is sent.
    shutting_down: bool = False
    # Open WebSockets per client address (see clientaddr), for --max-per-ip.
    per_address: dict[str, int] = field(default_factory=dict)


STATE = web.AppKey("signaling_state", SignalingState)


def _deliver(state: SignalingState, sender: int | None, outgoing: list[Outgoing]) -> None:
    if state.shutting_down:
        # The users leaving now are not hanging up: their calls may outlive this
        # process (peers reconnect to its successor), so nobody is told "close".
        return
    if state.ice.urls:
        # Here rather than after handle_frame: with --redis the login reply comes
        # later, once Redis granted the name. TURN credentials are minted per user.
        outgoing = with_ice_servers(outgoing, state.router.username_of, state.ice)
    clients = state.clients
    for connection, message in outgoing:
        state.metrics.observe_outgoing(message, relayed=connection != sender)
        client = clients.get(connection)  # type: ignore[call-overload]
        if client is not None:
            client.outbox.put(protocol.encode_frame(message))


def _drop(state: SignalingState, connection: Connection) -> None:
    client = state.clients.get(connection)  # type: ignore[call-overload]
    if client is not None:
        client.outbox.abort()


# ---- the WebSocket endpoint -------------------------------------------------------------


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
        _deliver(state, client.id, left)
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
        _deliver(state, connection, outgoing)
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


# ---- HTTP -------------------------------------------------------------------------------


async def index_or_websocket(request: web.Request) -> web.StreamResponse:
    # The tutorial client connects to ws://host:8080 with no path.
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await websocket_handler(request)
    return web.FileResponse(STATIC_DIR / "index.html")


async def config_handler(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ice_servers = request.app[STATE].ice.public()  # TURN only with credentials, at login
    return web.json_response({"iceServers": ice_servers, "tokenRequired": bool(state.config.token)})


async def healthz_handler(request: web.Request) -> web.Response:
    state = request.app[STATE]
    counts = {"connections": state.router.connection_count, "users": state.router.user_count}
    problems = state.routing.problems()
    if problems:
        body = {"status": "unhealthy", "reason": "; ".join(problems), **counts}
        return web.json_response(body, status=503)
    return web.json_response({"status": "ok", **counts})


async def metrics_handler(request: web.Request) -> web.Response:
    body, content_type = request.app[STATE].metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def _close_sockets(app: web.Application) -> None:
    state = app[STATE]
    # What is queued goes out before the close frames; nothing after them.
    if state.flusher is not None:
        state.flusher.flush()
    state.shutting_down = True
    # All at once: a client that never answers the close must not hold up the others.
    # Each handler closes its own socket (see websocket_handler).
    handlers = [client.handler for client in state.clients.values()]
    for handler in handlers:
        handler.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)


@web.middleware
async def _check_host(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # request.host falls back to the server's own address when Host is missing;
    # the header itself is what a rebound name shows up in.
    if not host_allowed(request.headers.get("Host"), request.app[STATE].config.host):
        logger.warning(
            "refusing a request from %s for host %r: a loopback server answers loopback names",
            request.remote,
            request.headers.get("Host", "")[:100],
        )
        raise web.HTTPForbidden(text="unknown host\n")
    return await handler(request)


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(security_headers(request.app[STATE].config.cert is not None))


def create_app(config: ServerConfig | None = None) -> web.Application:
    config = config or ServerConfig()
    router = (
        Router(token=config.token)
        if config.redis_url is None
        else ClusterRouter(token=config.token)
    )
    app = web.Application(client_max_size=MAX_MESSAGE_BYTES, middlewares=[_check_host])
    app.on_response_prepare.append(_add_security_headers)
    ice = IceServers(config.ice_servers, config.turn_secret, config.turn_ttl)
    state = SignalingState(config, router, Metrics(router), InProcess(router), ice=ice)
    app[STATE] = state
    router.list_disabled = not config.listing
    router.list_gate = lambda connection: _may_list(state, connection)
    app.cleanup_ctx.append(_ring_timeouts)
    app.router.add_get("/", index_or_websocket)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/config", config_handler)
    app.router.add_get("/healthz", healthz_handler)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_static("/static/", STATIC_DIR)
    app.on_shutdown.append(_close_sockets)
    if config.redis_url is not None:
        app.cleanup_ctx.append(_share_through_redis)
    if config.session_secret_file is not None:
        _keep_names_across_restarts(app, router, config.session_secret_file)
    return app


def _keep_names_across_restarts(app: web.Application, router: Router, secret_file: Path) -> None:
    router.resume = start_resumption(secret_file, time.time())
    writer = HeldNamesWriter(router.resume, secret_file)

    async def save_each_second(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(writer.run(), name="held-names")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def save_before_sockets_close(_app: web.Application) -> None:
        writer.final_save()

    app.cleanup_ctx.append(save_each_second)
    app.on_shutdown.insert(0, save_before_sockets_close)


def _may_list(state: SignalingState, connection: Connection) -> bool:
    client = state.clients.get(connection)  # type: ignore[call-overload]
    if client is None:
        return False
    if client.list_rate is None:
        client.list_rate = TokenBucket(LIST_RATE, LIST_BURST)
    return client.list_rate.allow()


async def _ring_timeouts(app: web.Application) -> AsyncIterator[None]:
    """End the calls nobody answers: the caller is told, and so is the callee whose
    page or peer would otherwise ring on."""
    state = app[STATE]
    timeout = state.config.ring_timeout

    async def watch() -> None:
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            _deliver(state, None, state.router.expire_ringing(timeout))

    task = asyncio.create_task(watch(), name="ring-timeouts")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _share_through_redis(app: web.Application) -> AsyncIterator[None]:
    # Imported here: redis-py costs a single process 0.15 s of start-up and 7 MB.
    from .redis_routing import RedisRouting

    state = app[STATE]
    assert state.config.redis_url is not None and isinstance(state.router, ClusterRouter)
    cluster = RedisRouting(
        state.config.redis_url,
        state.router,
        lambda outgoing: _deliver(state, None, outgoing),
        drop=lambda connection: _drop(state, connection),
        on_bad_envelope=state.metrics.count_bad_envelope,
        ttl=state.config.redis_ttl,
    )
    await cluster.start()
    state.routing = cluster
    yield
    await cluster.stop()
