"""Outgoing text frames, written to each socket once per event-loop turn.

aiohttp's ``send_frame`` makes one ``transport.write`` (one ``send`` system call) per
message, and on a loaded server those writes were the largest single cost of a
relayed message. Here a message is framed and queued; the first message queued for
any socket in a loop turn schedules one flush, which writes every socket's queue as a
single buffer. Under load many messages share a write; a lone message waits no more
than the rest of the current loop turn.

Frames are unmasked text frames (servers never mask) without compression: the server
turns permessage-deflate off, which RFC 7692 would allow here anyway (a frame without
RSV1 is an uncompressed message).

A socket whose peer stops reading would make its queue, and the transport's buffer,
grow without end; past ``limit`` bytes waiting in the transport the connection is
dropped (``on_overflow`` says so first).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Final, Protocol

logger = logging.getLogger(__name__)

DEFAULT_LIMIT: Final = 4 * 1024 * 1024
_TEXT_FIN: Final = 0x81
_SHORT: Final = struct.Struct("!BB").pack
_MEDIUM: Final = struct.Struct("!BBH").pack
_LONG: Final = struct.Struct("!BBQ").pack


class Writable(Protocol):
    """The part of an asyncio transport the outbox uses."""

    def write(self, data: bytes) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...


def text_frame_header(length: int) -> bytes:
    if length < 126:
        return _SHORT(_TEXT_FIN, length)
    if length < 65536:
        return _MEDIUM(_TEXT_FIN, 126, length)
    return _LONG(_TEXT_FIN, 127, length)


class Flusher:
    """Writes, once per loop turn, every outbox that got frames during that turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[Outbox] = []

    def mark(self, outbox: Outbox) -> None:
        if not self._dirty:
            self._loop.call_soon(self.flush)
        self._dirty.append(outbox)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for outbox in dirty:
            outbox.flush()


class Outbox:
    """The text frames waiting for one WebSocket."""

    __slots__ = ("_flusher", "_frames", "_is_closed", "_limit", "_on_overflow", "_transport")

    def __init__(
        self,
        transport: Writable,
        flusher: Flusher,
        *,
        is_closed: Callable[[], bool],
        on_overflow: Callable[[], None],
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self._transport = transport
        self._flusher = flusher
        self._frames: list[bytes] = []
        self._is_closed = is_closed
        self._on_overflow: Callable[[], None] | None = on_overflow
        self._limit = limit

    def put(self, payload: bytes) -> None:
        """Queue one text message (its UTF-8 payload)."""
        frames = self._frames
        if not frames:
            self._flusher.mark(self)
        frames.append(text_frame_header(len(payload)))
        frames.append(payload)

    def abort(self) -> None:
        """Drop the connection at once (what is queued is lost)."""
        self._frames = []
        self._transport.abort()

    def flush(self) -> None:
        frames, self._frames = self._frames, []
        transport = self._transport
        # Once the close handshake has begun no data frame may follow the close frame.
        if not frames or self._is_closed() or transport.is_closing():
            return
        transport.write(b"".join(frames))
        if self._on_overflow is not None and transport.get_write_buffer_size() > self._limit:
            on_overflow, self._on_overflow = self._on_overflow, None
            on_overflow()
            self.abort()
