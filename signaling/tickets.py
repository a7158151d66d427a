"""Resume tickets: proof that a name was yours, checked after the server restarts.

A ticket is ``NAME:EXPIRY:MAC`` with MAC the hex HMAC-SHA256 of ``NAME:EXPIRY`` under
the server's session secret (``--session-secret-file``). The secret outlives the
process, so a server that restarted can tell the real holder of a name from someone
who merely asks for it first. Pure: no clock, no files; callers pass ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

# A ticket lives as long as a day of calls; each login gets a fresh one.
DEFAULT_TICKET_TTL: Final = 24 * 3600
# Usernames have no ':' (protocol.is_valid_username), so the split is unambiguous.
_SEPARATOR: Final = ":"
MAX_TICKET_CHARS: Final = 200


def _mac(secret: bytes, username: str, expiry: int) -> str:
    body = f"{username}{_SEPARATOR}{expiry}".encode()
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def make_ticket(secret: bytes, username: str, expiry: int) -> str:
    """A ticket for ``username`` valid until ``expiry`` (Unix seconds)."""
    return f"{username}{_SEPARATOR}{expiry}{_SEPARATOR}{_mac(secret, username, expiry)}"


def ticket_expiry(secret: bytes, ticket: str, username: str, now: float) -> int | None:
    """The expiry of a genuine, unexpired ticket for ``username``; None otherwise."""
    if len(ticket) > MAX_TICKET_CHARS:
        return None
    parts = ticket.split(_SEPARATOR)
    if len(parts) != 3:
        return None
    name, expiry_text, mac = parts
    if name != username or not expiry_text.isdigit():
        return None
    expiry = int(expiry_text)
    if not hmac.compare_digest(mac.encode(), _mac(secret, name, expiry).encode()):
        return None
    return expiry if expiry > now else None


def verify_ticket(secret: bytes, ticket: str, username: str, now: float) -> bool:
    return ticket_expiry(secret, ticket, username, now) is not None
