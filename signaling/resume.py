"""Names that survive a server restart: tickets issued at login, names held at a start.

:class:`Resumption` is the pure core the router consults: it issues a ticket with
every login and, for a grace period after a start, keeps each name that was logged
in before the restart for whoever presents that name's ticket. The thin I/O around
it (the secret file, the file of held names) is here too, in plain functions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .tickets import DEFAULT_TICKET_TTL, make_ticket, verify_ticket

logger = logging.getLogger(__name__)

# Peers and pages try to log in again for a minute after losing the server
# (docs/reliability.md); the reservation outlasts that with room to spare.
DEFAULT_GRACE: Final = 90.0
SECRET_BYTES: Final = 32


@dataclass
class Resumption:
    secret: bytes
    # When the reservations of the names held before the start lapse (Unix seconds).
    grace_until: float = 0.0
    ticket_ttl: int = DEFAULT_TICKET_TTL
    # Names held before the start -> their tickets' expiry.
    reserved: dict[str, int] = field(default_factory=dict)
    # Names logged in now -> their tickets' expiry: what the next start reserves.
    held: dict[str, int] = field(default_factory=dict)
    dirty: bool = False

    def admits(self, username: str, ticket: str | None, now: float) -> bool:
        """May this login have ``username``? Not while the name is reserved for
        someone else: the holder shows it with a valid ticket."""
        expiry = self.reserved.get(username)
        if expiry is None or now >= self.grace_until or now >= expiry:
            return True
        return ticket is not None and verify_ticket(self.secret, ticket, username, now)

    def issue(self, username: str, now: float) -> str:
        """The ticket of a login that got ``username``."""
        self.reserved.pop(username, None)  # its holder has it back
        expiry = int(now) + self.ticket_ttl
        self.held[username] = expiry
        self.dirty = True
        return make_ticket(self.secret, username, expiry)

    def released(self, username: str) -> None:
        """The user left: the name is nobody's at the next start."""
        if self.held.pop(username, None) is not None:
            self.dirty = True


def load_or_create_secret(path: Path) -> bytes:
    """The session secret in ``path``, made (mode 0600) on the first start. Every
    ``--redis`` process given the same file signs with the same secret."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(SECRET_BYTES) + "\n")
        logger.info("created the session secret %s", path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"{path} is empty")
    return lines[0].strip().encode()


def held_names_path(secret_path: Path) -> Path:
    return secret_path.with_name(secret_path.name + ".names")


def load_held(path: Path, now: float) -> dict[str, int]:
    """Names held when the last process stopped, whose tickets are still valid."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    held: dict[str, int] = {}
    for line in text.splitlines():
        name, _, expiry = line.partition(" ")
        if expiry.isdigit() and int(expiry) > now:
            held[name] = int(expiry)
    return held


def save_held(path: Path, held: dict[str, int]) -> None:
    """Replace the file in one step: a crash mid-write leaves the previous list."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.writelines(f"{name} {expiry}\n" for name, expiry in held.items())
    os.replace(partial, path)


SAVE_INTERVAL: Final = 1.0


def start_resumption(secret_path: Path, now: float, grace: float = DEFAULT_GRACE) -> Resumption:
    """The secret (made if missing) and the names held before this start, reserved."""
    resumption = Resumption(load_or_create_secret(secret_path), grace_until=now + grace)
    resumption.reserved = load_held(held_names_path(secret_path), now)
    if resumption.reserved:
        logger.info(
            "%d names kept for %.0f s for their holders (resume tickets)",
            len(resumption.reserved),
            grace,
        )
    return resumption


class HeldNamesWriter:
    """Writes the names logged in to the file the next start reads: each second
    while they change, and once more as the server stops, before its sockets close
    (their closing is not the users leaving)."""

    def __init__(self, resumption: Resumption, secret_path: Path) -> None:
        self._resumption = resumption
        self._path = held_names_path(secret_path)
        self._stopped = False

    def save(self) -> None:
        if self._stopped or not self._resumption.dirty:
            return
        self._resumption.dirty = False
        try:
            save_held(self._path, self._resumption.held)
        except OSError as exc:
            logger.warning("cannot write %s: %s", self._path, exc)

    def final_save(self) -> None:
        self._resumption.dirty = True
        self.save()
        self._stopped = True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SAVE_INTERVAL)
            self.save()
