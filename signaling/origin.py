"""Which web pages may open a WebSocket here, and which Host names a loopback server answers.

Pure functions, no aiohttp. Browsers send ``Origin`` on every WebSocket upgrade and
let any page open a socket to any address, the user's own ``127.0.0.1`` and LAN
included: without this check any site the user visits could log in, list users and
call them. Clients that are not browsers (webcam-peer, scripts) send no ``Origin``
and cannot be made to send a forged one by a web page, so they are let in.

DNS rebinding: a page on ``evil.example`` whose name the attacker re-points to
127.0.0.1 is same-origin with itself, so the Origin check passes; the ``Host``
header still says ``evil.example``. A server bound to a loopback address only
answers Host names that are loopback names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def _split_host_port(authority: str) -> tuple[str, int | None] | None:
    """``host[:port]`` or ``[v6][:port]`` -> (lower-case host without brackets, port)."""
    authority = authority.strip().lower()
    if not authority:
        return None
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        host, rest = authority[1:end], authority[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    else:
        host, _, port_text = authority.partition(":")
    if not port_text:
        return host, None
    if not port_text.isdigit() or int(port_text) > 65535:
        return None
    return host, int(port_text)


def normalize_origin(origin: str) -> tuple[str, str, int] | None:
    """An Origin header (or --allowed-origin) -> (scheme, host, port); None if malformed
    (``null`` included: sandboxed frames and files have no origin to trust)."""
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc or parts.path not in ("", "/"):
        return None
    split = _split_host_port(parts.netloc)
    if split is None:
        return None
    host, port = split
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def origin_allowed(
    origin: str | None, host_header: str | None, secure: bool, allowed: Iterable[str] = ()
) -> bool:
    """May a WebSocket upgrade carrying ``origin`` go ahead?

    Allowed: no Origin at all (not a browser); the server's own origin (the page it
    serves, as the browser reached it: scheme of this connection, ``Host`` header);
    any origin listed with ``--allowed-origin``."""
    if origin is None:
        return True
    parsed = normalize_origin(origin)
    if parsed is None:
        return False
    if any(normalize_origin(entry) == parsed for entry in allowed):
        return True
    if host_header is None:
        return False
    scheme = "https" if secure else "http"
    return normalize_origin(f"{scheme}://{host_header}") == parsed


def is_loopback_host(host: str) -> bool:
    """Is a bind address or Host name a loopback one (127.0.0.0/8, ::1, localhost)?"""
    host = host.strip().lower().strip("[]")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str | None, bind_host: str) -> bool:
    """Does a server bound to ``bind_host`` answer a request for ``host_header``?

    Only loopback-bound servers check: they are the ones a rebound name reaches from
    the user's own browser. A server bound to a public or LAN address may be reached
    by any name (reverse proxies, DNS aliases); the Origin check protects it."""
    if not is_loopback_host(bind_host):
        return True
    if host_header is None:
        return False
    split = _split_host_port(host_header)
    return split is not None and is_loopback_host(split[0])
