from __future__ import annotations

import aiohttp

from tests.helpers.support import SignalingServer


async def test_login_over_a_real_socket(signaling_server: SignalingServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(signaling_server.ws_url) as ws:
            await ws.send_json({"type": "login", "username": "alice"})
            assert await ws.receive_json(timeout=5) == {"type": "login", "success": True}
