"""A partner who hangs up closes the media connection at once (DTLS close_notify, peer
to peer) and sends the close through the signaling server, which may deliver it later
on a busy machine. webcam-peer must read that as a hang-up, not as a failed connection
to re-establish (peer/call/recovery.py HANG_UP_GRACE)."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers.datachannel_peer import scripted_call
from tests.helpers.peer_support import NO_MEDIA, start_peer
from tests.helpers.support import SignalingServer

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("close_trails_by", [0.0, 1.0])
async def test_a_hang_up_whose_close_trails_the_connection_is_a_hang_up(
    signaling_server: SignalingServer, close_trails_by: float
) -> None:
    bob = start_peer(signaling_server, "--login", "bob", *NO_MEDIA)
    try:
        await asyncio.to_thread(bob.wait_for, "waiting for calls")
        async with scripted_call(signaling_server, "alice", "bob") as alice:
            await asyncio.to_thread(bob.wait_for, "call with alice connected")
            await alice.pc.close()
            await asyncio.sleep(close_trails_by)
            # Leaving the block sends alice's close through the server.
        ended = await asyncio.to_thread(bob.wait_for, r"call with alice ended: .*", 20.0)
        assert ended.group(0) == "call with alice ended: alice hung up", bob.lines[-20:]
        await asyncio.to_thread(bob.wait_for, "waiting for the next call")
        assert not any("reconnecting" in line for line in bob.lines), bob.lines[-20:]
    finally:
        bob.stop()
