"""Time-limited TURN credentials: the "TURN REST API" scheme coturn checks.

With ``use-auth-secret`` and ``static-auth-secret=S`` coturn accepts any username
of the form ``"<expiry>:<name>"`` whose password is
``base64(HMAC-SHA1(S, username))``, as long as ``<expiry>`` (Unix seconds) is
still in the future. The signaling server shares S with coturn and mints such a
pair for each user at login, so a browser only ever holds a password that stops
working after ``ttl`` seconds (draft-uberti-behave-turn-rest-00).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Final

# An hour: a leaked pair is useful to nobody for long, and clients get fresh ones
# each time they log in again (the draft suggests a day, which is an open relay's day).
DEFAULT_TTL: Final = 3_600


@dataclass(frozen=True)
class TurnCredentials:
    username: str
    credential: str
    expires_at: int  # Unix seconds


def mint(secret: str, name: str, ttl: int, now: float | None = None) -> TurnCredentials:
    """Credentials for ``name`` that coturn accepts until ``now + ttl``."""
    if ttl <= 0:
        raise ValueError(f"TURN credential lifetime must be positive, not {ttl}")
    if not secret:
        raise ValueError("the TURN secret must not be empty")
    expires_at = int(time.time() if now is None else now) + ttl
    username = f"{expires_at}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(digest).decode("ascii"), expires_at)
