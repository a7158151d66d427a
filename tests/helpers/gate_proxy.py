"""A TCP relay in front of the signaling server that a test can shut and open: the
page is loaded through it, so the test decides when the page can reach the server
again (after an attacker has knocked first), whatever the page's retry timer does.
A reverse proxy in front of the server is an ordinary deployment; this one relays
bytes and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.helpers.support import free_port


class Gate:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.is_open = True
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for relay in self._relays:
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_open:
            writer.close()  # as a server that is not up yet: the connection ends at once
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            relay = asyncio.create_task(_pipe(source, sink))
            self._relays.add(relay)
            relay.add_done_callback(self._relays.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        sink.close()


@contextlib.asynccontextmanager
async def gate_to(upstream_port: int) -> AsyncIterator[Gate]:
    gate = Gate(upstream_port)
    await gate.start()
    try:
        yield gate
    finally:
        await gate.stop()
