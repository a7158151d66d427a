"""The aiohttp shell around the router: the application, its background tasks, and
the page, ``/config``, ``/healthz`` and ``/metrics``.

Everything that decides anything lives in :mod:`signaling.router`; the WebSocket
endpoint (frames in, router outputs out) is :mod:`signaling.websocket`, and what the
server keeps is :mod:`signaling.state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path

from aiohttp import web

from .cluster import ClusterRouter
from .headers import security_headers
from .ice_servers import IceServers
from .metrics import Metrics
from .origin import host_allowed
from .protocol import MAX_MESSAGE_BYTES
from .ratelimit import TokenBucket
from .resume import HeldNamesWriter, start_resumption, writer_name
from .router import Connection, Router
from .routing import InProcess
from .state import (
    DEFAULT_LOGIN_TIMEOUT,
    DEFAULT_MAX_PER_ADDRESS,
    STATE,
    ServerConfig,
    SignalingState,
    deliver,
    drop,
)
from .websocket import websocket_handler

# What the command line and the tests take from here.
__all__ = [
    "DEFAULT_LOGIN_TIMEOUT",
    "DEFAULT_MAX_PER_ADDRESS",
    "HTTP_REQUEST_TIMEOUT",
    "STATE",
    "ServerConfig",
    "create_app",
]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("signaling") / "static"))
# How long a client may take to send a whole HTTP request (the upgrade included),
# counted from its connection; also how long an idle keep-alive connection stays.
# aiohttp's default is 75 s, which lets a slowloris hold sockets for that long.
HTTP_REQUEST_TIMEOUT = 10.0
# `list` per connection: the page asks every 3 s; a reply may hold 200 names (and
# costs a Redis SCAN with --redis), so a client gets no more than this.
LIST_RATE = 1.0
LIST_BURST = 5


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
        # With --redis each process writes its own list (resume.held_names_path).
        writer = None if config.redis_url is None else writer_name(config.host, config.port)
        _keep_names_across_restarts(app, router, config.session_secret_file, writer)
    return app


def _keep_names_across_restarts(
    app: web.Application, router: Router, secret_file: Path, writer_id: str | None
) -> None:
    router.resume = start_resumption(secret_file, time.time())
    writer = HeldNamesWriter(router.resume, secret_file, writer_id)

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
            deliver(state, None, state.router.expire_ringing(timeout))

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
        lambda outgoing: deliver(state, None, outgoing),
        drop=lambda connection: drop(state, connection),
        on_bad_envelope=state.metrics.count_bad_envelope,
        ttl=state.config.redis_ttl,
    )
    await cluster.start()
    state.routing = cluster
    yield
    await cluster.stop()
