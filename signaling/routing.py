"""What the server shell hands each frame to: the router of this process alone, or
(``--redis``) :class:`~signaling.redis_routing.RedisRouting` around a cluster router.

Both answer the same three calls, so the shell has one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .router import Connection, Outgoing, Router


class Routing(Protocol):
    async def handle_frame(self, connection: Connection, frame: str | bytes) -> list[Outgoing]:
        """The messages for this process's sockets that ``frame`` makes."""
        ...

    def disconnect(self, connection: Connection) -> list[Outgoing]: ...

    def problems(self) -> list[str]:
        """Why this process cannot serve its users fully now (empty: healthy)."""
        ...


@dataclass(frozen=True, slots=True)
class InProcess:
    """Every user on this process: the router answers everything itself, at once."""

    router: Router

    async def handle_frame(self, connection: Connection, frame: str | bytes) -> list[Outgoing]:
        return self.router.handle_frame(connection, frame)

    def disconnect(self, connection: Connection) -> list[Outgoing]:
        return self.router.disconnect(connection)

    def problems(self) -> list[str]:
        return []
