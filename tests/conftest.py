from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.helpers.support import SignalingServer, start_signaling_server


@pytest.fixture
def signaling_server() -> Iterator[SignalingServer]:
    """A real signaling-server process on a free loopback port."""
    server = start_signaling_server()
    yield server
    server.process.stop()


@pytest.fixture
def start_server() -> Iterator[Callable[..., SignalingServer]]:
    """Start signaling-server processes with extra flags; all are stopped afterwards."""
    started: list[SignalingServer] = []

    def start(*extra: str) -> SignalingServer:
        server = start_signaling_server(*extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.stop()


from tests.helpers.browser_support import browser  # noqa: E402, F401  (fixture: Debian's Chromium)
from tests.helpers.redis_support import redis_server  # noqa: E402, F401  (fixture: a real redis-server)
from tests.helpers.sound_server_support import sound_server  # noqa: E402, F401  (fixture: real PulseAudio)
from tests.helpers.xvfb_support import xvfb  # noqa: E402, F401  (fixture: a real X server)
