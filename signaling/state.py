"""What the signaling server keeps: its configuration, each connection's state, and
the state of the whole server, with how a router's output reaches the sockets."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import protocol
from .clientaddr import Network
from .cluster import DEFAULT_PRESENCE_TTL
from .ice_servers import IceServers, with_ice_servers
from .metrics import Metrics
from .outbox import Flusher, Outbox
from .ratelimit import TokenBucket
from .router import DEFAULT_RING_TIMEOUT, Connection, Outgoing, Router
from .routing import Routing
from .turn_credentials import DEFAULT_TTL

if TYPE_CHECKING:
    from .websocket import LoginWatch

# A connection that has not logged in by then is closed: idle sockets would take
# the places of real users under --max-connections.
DEFAULT_LOGIN_TIMEOUT = 10.0
# Connections from one address (NAT'd offices and campuses share one).
DEFAULT_MAX_PER_ADDRESS = 256


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


def deliver(state: SignalingState, sender: int | None, outgoing: list[Outgoing]) -> None:
    """Send the router's output to this process's sockets (``sender``: whose frame made it)."""
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


def drop(state: SignalingState, connection: Connection) -> None:
    """Cut a connection off at once (it is logged in elsewhere now)."""
    client = state.clients.get(connection)  # type: ignore[call-overload]
    if client is not None:
        client.outbox.abort()
