"""A client that stops reading is dropped once megabytes wait for it (signaling/outbox.py),
instead of holding its partner up or growing the server without end."""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers.support import SignalingServer
from tests.process.test_server import OFFER_SDP, connected, logged_in

StartServer = Callable[..., SignalingServer]


async def test_a_client_that_stops_reading_is_dropped(start_server: StartServer) -> None:
    server = start_server("--rate-limit", "0")
    big_sdp = OFFER_SDP + "a=x-filler:" + "x" * 60_000 + "\r\n"
    async with logged_in(server, "talker", "bystander") as [talker, bystander]:
        # autoping off and never reading: the stuck client ignores pings and messages.
        async with connected(server.ws_url, autoping=False) as [stuck]:
            await stuck.send({"type": "login", "username": "stuck"})
            message = {
                "type": "offer",
                "offer": {"type": "offer", "sdp": big_sdp},
                "otherUsername": "stuck",
            }
            dropped = None
            # About 5 MB fit in the kernel's socket buffers, 4 MiB more in the server's
            # queue; then it gives up on the stuck client (40 MB is far beyond that).
            for _ in range(700):
                await talker.send(message)
                try:
                    dropped = await talker.recv(within=0.005)
                    break
                except TimeoutError:
                    continue
            assert dropped == {"type": "close", "username": "stuck", "reason": "disconnected"}
            # The server still answers everybody else at once.
            assert await bystander.users() == ["bystander", "talker"]
            assert await talker.users() == ["bystander", "talker"]
