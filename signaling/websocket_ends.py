"""The aiohttp WebSocket message types that end a connection, in one place for the
server, the peer's signaling client and the tests."""

from __future__ import annotations

from typing import Final

from aiohttp import WSMsgType

# The other side closed, or aiohttp is closing or has closed the socket.
CLOSING: Final = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED})
# Where a reader stops: a close, or the transport failed (ws.exception() says how).
ENDED: Final = CLOSING | {WSMsgType.ERROR}
