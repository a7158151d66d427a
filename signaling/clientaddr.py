"""Whose connection is this: the client's address, through trusted reverse proxies.

``X-Forwarded-For`` is whatever the client wrote, unless a proxy we trust wrote its
last entries. Walking the list from the right, each hop added by a trusted proxy is
skipped; the first address a trusted proxy vouches for that is not itself a trusted
proxy is the client. With no ``--trusted-proxy`` the header is ignored: anybody could
otherwise claim a fresh address per connection and never meet the per-address cap.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    """``10.0.0.5``, ``10.0.0.0/8`` or ``::1`` -> a network; ValueError if neither."""
    return ipaddress.ip_network(text.strip(), strict=False)


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[Network]
) -> str:
    """The address to count a connection against (``peer`` is the TCP peer)."""
    address = peer or "unknown"
    if not proxies or not _trusted(address, proxies):
        return address
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    while hops and _trusted(address, proxies):
        hop = hops.pop()
        try:
            address = str(ipaddress.ip_address(hop.strip("[]")))
        except ValueError:
            # Garbage where an address belongs: the last trusted proxy is all we know.
            return address
    return address
