"""A WebSocket client at the level of bytes, for load, soak and fuzz tools.

aiohttp's client only sends well-formed frames and always closes politely. The load
generator needs frames built with no overhead, the soak needs to vanish without a
close frame (a TCP reset), and the socket fuzzer needs every header field under its
control: opcode, FIN, reserved bits, the mask, a length that lies. All three build
frames here (RFC 6455 section 5.2).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
import struct
from typing import Final

WEBSOCKET_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA


class HandshakeError(RuntimeError):
    """The server did not switch protocols."""


def client_frame(
    payload: bytes,
    mask: bytes,
    opcode: int = OP_TEXT,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    declared: int | None = None,
) -> bytes:
    """A client frame, masked as RFC 6455 requires of clients (unless ``masked`` is
    False); ``declared`` claims a length other than the payload's."""
    length = len(payload) if declared is None else declared
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0xF)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 65536:
        header = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    if not masked:
        return header + payload
    size = len(payload)
    # XOR as one big integer: a C loop instead of a Python one over the bytes.
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "little")
    return header + mask + (int.from_bytes(payload, "little") ^ key).to_bytes(size, "little")


def handshake_request(host: str, port: int, path: str = "/ws", key: bytes | None = None) -> bytes:
    key = key or base64.b64encode(os.urandom(16))
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def open_websocket(
    host: str, port: int, path: str = "/ws"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection that has completed the upgrade; raises HandshakeError if refused."""
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16))
    writer.write(handshake_request(host, port, path, key))
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        writer.transport.abort()
        raise HandshakeError(f"connection closed during the upgrade: {exc}") from exc
    accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())
    if not head.startswith(b"HTTP/1.1 101 ") or accept not in head:
        writer.transport.abort()
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        raise HandshakeError(f"upgrade refused: {status}")
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One frame from the server (servers never mask): its opcode and payload."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


def reset(writer: asyncio.StreamWriter) -> None:
    """Vanish with a TCP RST: no close frame, no FIN, as a crashed client or a dropped
    network looks to the server."""
    sock = writer.get_extra_info("socket")
    if sock is not None and not writer.transport.is_closing():
        # Already closed (reset twice, or closed by the server): nothing to reset.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
