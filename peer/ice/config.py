"""ICE configuration: which STUN/TURN servers, the relay-only policy, and which
local addresses to gather.

The servers a call uses are the user's ``--ice-server`` URLs first, then those
the signaling server sent in its login reply (``iceServers``, TURN with
time-limited credentials). aiortc uses the first STUN and the first TURN URL it
can (``aiortc.rtcicetransport.connection_kwargs``); :func:`turn_server` asks that
same function, so what is checked is what a call will use.

aioice offers every interface but 127.0.0.1 as a host candidate. ``--ice-host``
replaces that list so a user with VPNs or several networks (and every loopback
test, on 127.0.0.1) chooses the addresses: :func:`validate_host_addresses` here,
the replacement inside aioice in ``peer/stack/host_addresses.py``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy
from aiortc.rtcicetransport import connection_kwargs, parse_stun_turn_uri

logger = logging.getLogger(__name__)

URL_FORMS = "stun:HOST:PORT, turn:HOST:PORT?transport=udp|tcp or turns:HOST:PORT"


class IceConfigError(ValueError):
    pass


def validate_host_addresses(addresses: Sequence[str]) -> list[str]:
    valid = []
    for address in addresses:
        try:
            valid.append(str(ipaddress.ip_address(address)))
        except ValueError:
            raise IceConfigError(f"--ice-host {address!r} is not an IP address") from None
    return valid


def check_url(url: str) -> dict[str, Any]:
    """Parse ``url`` as aiortc will; refuse what aiortc would reject or silently skip."""
    try:
        parsed = parse_stun_turn_uri(url)
    except ValueError:
        raise IceConfigError(f"ICE server {url!r} must look like {URL_FORMS}") from None
    scheme, transport = parsed["scheme"], parsed.get("transport")
    if scheme == "stuns":
        raise IceConfigError(f"ICE server {url!r}: aiortc cannot use stuns:, use stun:")
    if (scheme == "turn" and transport not in ("udp", "tcp")) or (
        scheme == "turns" and transport != "tcp"
    ):
        raise IceConfigError(
            f"ICE server {url!r}: the transport must be udp or tcp for turn: "
            "(TLS is turns:HOST:PORT, which runs over tcp)"
        )
    if not 0 < parsed["port"] < 65536:
        raise IceConfigError(f"ICE server {url!r}: port {parsed['port']} is out of range")
    return parsed


def ice_server(
    url: str, username: str | None = None, credential: str | None = None
) -> RTCIceServer:
    parsed = check_url(url)
    if parsed["scheme"].startswith("turn"):
        if not (username and credential):
            raise IceConfigError(f"TURN server {url!r} needs --turn-user and --turn-password")
        return RTCIceServer(urls=url, username=username, credential=credential)
    return RTCIceServer(urls=url)


def rtc_configuration(
    urls: Sequence[str],
    username: str | None = None,
    credential: str | None = None,
    *,
    relay_only: bool = False,
) -> RTCConfiguration:
    """The configuration from the command line (the server's list is added per call)."""
    if (username or credential) and not any(url.startswith("turn") for url in urls):
        raise IceConfigError("--turn-user and --turn-password go with an --ice-server turn:URL")
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    # An explicit empty list: with None aiortc adds a public STUN server, and on a
    # closed network gathering then waits for it.
    return RTCConfiguration(
        iceServers=[ice_server(u, username, credential) for u in urls], iceTransportPolicy=policy
    )


def servers_from_login(reply: Any) -> list[RTCIceServer]:
    """The ``iceServers`` a signaling server sent with its login reply (browser form)."""
    servers: list[RTCIceServer] = []
    if not isinstance(reply, list):
        return servers
    for entry in reply:
        if not isinstance(entry, dict):
            logger.warning("ignoring an ICE server from the signaling server: %r", entry)
            continue
        urls = entry.get("urls")
        urls = [urls] if isinstance(urls, str) else urls
        username, credential = entry.get("username"), entry.get("credential")
        try:
            if not isinstance(urls, list) or not urls:
                raise IceConfigError("no urls")
            for url in urls:
                check_url(str(url))
        except IceConfigError as exc:
            logger.warning("ignoring an ICE server from the signaling server (%s): %r", exc, entry)
            continue
        servers.append(
            RTCIceServer(
                urls=[str(u) for u in urls],
                username=username if isinstance(username, str) else None,
                credential=credential if isinstance(credential, str) else None,
            )
        )
    return servers


def call_configuration(
    base: RTCConfiguration, from_server: Sequence[RTCIceServer]
) -> RTCConfiguration:
    """The user's servers first (aiortc takes the first of each kind), then the server's."""
    return RTCConfiguration(
        iceServers=[*(base.iceServers or []), *from_server],
        iceTransportPolicy=base.iceTransportPolicy,
    )


def is_relay_only(configuration: RTCConfiguration) -> bool:
    return configuration.iceTransportPolicy is RTCIceTransportPolicy.RELAY


@dataclass(frozen=True)
class TurnServer:
    """The one TURN server aiortc will use for a call, with its credentials."""

    host: str
    port: int
    transport: str  # to the server: udp or tcp
    tls: bool
    username: str | None
    password: str | None

    @property
    def url(self) -> str:
        if self.tls:
            return f"turns:{self.host}:{self.port}"
        return f"turn:{self.host}:{self.port}?transport={self.transport}"


def turn_server(configuration: RTCConfiguration) -> TurnServer | None:
    kwargs = connection_kwargs(configuration.iceServers or [])
    if "turn_server" not in kwargs:
        return None
    host, port = kwargs["turn_server"]
    return TurnServer(
        host=host,
        port=port,
        transport=kwargs["turn_transport"],
        tls=kwargs["turn_ssl"],
        username=kwargs["turn_username"],
        password=kwargs["turn_password"],
    )
