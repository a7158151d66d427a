"""ICE configuration: which ICE servers, and which local addresses to gather.

aioice offers every interface but 127.0.0.1 as a host candidate. ``--ice-host``
replaces that list so a user with VPNs or several networks (and every test, on
127.0.0.1) chooses the addresses. aioice looks the function up at gathering time
through its module, so the replacement is installed there; ``check_aioice``
fails loudly if that seam moves in a new aioice release.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

logger = logging.getLogger(__name__)

_ICE_SCHEMES = ("stun", "stuns", "turn", "turns")


class IceConfigError(ValueError):
    pass


def check_aioice() -> None:
    """Fail loudly if the aioice internals this module relies on changed."""
    function = getattr(aioice.ice, "get_host_addresses", None)
    if not callable(function):
        raise RuntimeError(
            "aioice.ice.get_host_addresses is gone: --ice-host needs updating for this aioice"
        )


def validate_host_addresses(addresses: Sequence[str]) -> list[str]:
    valid = []
    for address in addresses:
        try:
            valid.append(str(ipaddress.ip_address(address)))
        except ValueError:
            raise IceConfigError(f"--ice-host {address!r} is not an IP address") from None
    return valid


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Gather host candidates only on ``addresses`` (an empty list restores aioice's)."""
    check_aioice()
    original: Callable[[bool, bool], list[str]] = getattr(
        aioice.ice, "_webcam_peer_original", aioice.ice.get_host_addresses
    )
    setattr(aioice.ice, "_webcam_peer_original", original)  # noqa: B010
    if not addresses:
        setattr(aioice.ice, "get_host_addresses", original)  # noqa: B010
        return
    chosen = validate_host_addresses(addresses)

    def chosen_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            a
            for a in chosen
            if (use_ipv4 and ipaddress.ip_address(a).version == 4)
            or (use_ipv6 and ipaddress.ip_address(a).version == 6)
        ]

    setattr(aioice.ice, "get_host_addresses", chosen_addresses)  # noqa: B010
    logger.info("ICE host candidates limited to %s", ", ".join(chosen))


def ice_server(
    url: str, username: str | None = None, credential: str | None = None
) -> RTCIceServer:
    parts = urlsplit(url)
    if parts.scheme not in _ICE_SCHEMES or not (parts.path or parts.netloc):
        raise IceConfigError(
            f"ICE server {url!r} must look like stun:HOST:PORT, turn:HOST:PORT?transport=udp "
            "or turns:HOST:PORT"
        )
    if parts.scheme.startswith("turn") and not (username and credential):
        raise IceConfigError(f"TURN server {url!r} needs --turn-user and --turn-password")
    return RTCIceServer(urls=url, username=username, credential=credential)


def rtc_configuration(
    urls: Sequence[str], username: str | None = None, credential: str | None = None
) -> RTCConfiguration:
    # An explicit empty list: with None aiortc adds a public STUN server, and on a
    # closed network gathering then waits for it.
    return RTCConfiguration(iceServers=[ice_server(u, username, credential) for u in urls])
