"""The STUN/TURN servers the signaling server hands to its clients, and how.

STUN needs no credentials, so ``GET /config`` lists the STUN URLs for anyone. A
TURN URL is useless (and a browser's RTCPeerConnection refuses it) without
credentials, and the server never hands out a long-lived TURN password: TURN
URLs go only into the successful login reply, with credentials minted for that
user (:mod:`signaling.turn_credentials`). Clients that do not know the
``iceServers`` field (the tutorial's) ignore it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from .turn_credentials import DEFAULT_TTL, mint

Target = TypeVar("Target", bound=Hashable)  # a connection, as the router names it

JSONObject = dict[str, Any]

# The URI forms of RFC 7064/7065 that browsers and aiortc accept.
_URL: Final = re.compile(
    r"(?P<scheme>stuns?|turns?):(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)"
    r"(?::(?P<port>\d{1,5}))?(?:\?transport=(?P<transport>udp|tcp))?"
)


class IceServerConfigError(ValueError):
    """A server ICE configuration that cannot work; the message says why."""


def validate_url(url: str) -> str:
    match = _URL.fullmatch(url)
    if match is None or (match.group("port") and not 0 < int(match.group("port")) < 65536):
        raise IceServerConfigError(
            f"ICE server {url!r} must look like stun:HOST:PORT, "
            "turn:HOST:PORT?transport=udp|tcp or turns:HOST:PORT"
        )
    if match.group("scheme").startswith("stun") and match.group("transport"):
        raise IceServerConfigError(f"ICE server {url!r}: a STUN URL takes no ?transport=")
    return url


def is_turn(url: str) -> bool:
    return url.startswith("turn")


@dataclass(frozen=True)
class IceServers:
    urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl: int = DEFAULT_TTL

    def __post_init__(self) -> None:
        for url in self.urls:
            validate_url(url)
        if self.turn_ttl <= 0:
            raise IceServerConfigError("--turn-ttl must be a positive number of seconds")
        has_turn = any(is_turn(url) for url in self.urls)
        if has_turn and not self.turn_secret:
            raise IceServerConfigError(
                "a turn:/turns: --ice-server needs --turn-secret (the secret shared with "
                "coturn's static-auth-secret): the server hands out time-limited TURN "
                "credentials only, never a long-lived password"
            )
        if self.turn_secret and not has_turn:
            raise IceServerConfigError(
                "--turn-secret needs at least one --ice-server turn:HOST:PORT to sign for"
            )

    @property
    def stun_urls(self) -> list[str]:
        return [url for url in self.urls if not is_turn(url)]

    @property
    def turn_urls(self) -> list[str]:
        return [url for url in self.urls if is_turn(url)]

    def public(self) -> list[JSONObject]:
        """What ``GET /config`` lists: servers usable without logging in (STUN)."""
        return [{"urls": url} for url in self.stun_urls]

    def for_user(self, username: str, now: float | None = None) -> list[JSONObject]:
        """RTCIceServer dictionaries for ``username``, TURN with fresh credentials."""
        servers = self.public()
        if self.turn_urls and self.turn_secret:
            credentials = mint(self.turn_secret, username, self.turn_ttl, now)
            servers.append(
                {
                    "urls": self.turn_urls,
                    "username": credentials.username,
                    "credential": credentials.credential,
                }
            )
        return servers


def with_ice_servers(
    outgoing: Sequence[tuple[Target, JSONObject]],
    username_of: Callable[[Target], str | None],
    ice: IceServers,
) -> list[tuple[Target, JSONObject]]:
    """``outgoing`` with ``iceServers`` added to every successful login reply, minted for
    the user ``username_of`` names on that reply's connection."""
    if not ice.urls:
        return list(outgoing)
    delivered = []
    for target, message in outgoing:
        if message.get("type") == "login" and message.get("success") is True:
            username = username_of(target)
            if username is not None:
                message = {**message, "iceServers": ice.for_user(username)}
        delivered.append((target, message))
    return delivered
