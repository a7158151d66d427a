"""The selected candidate pair, read from aiortc/aioice internals on a real loopback call.

If an aiortc or aioice upgrade moves what peer/ice/candidate_pair.py reads, this fails
(PairUnavailable names the attribute) instead of the stats line quietly saying null.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import VideoStreamTrack

from peer.ice.candidate_pair import PairWatcher, SelectedPair, selected_pair
from peer.stack.host_addresses import restrict_host_addresses


@pytest.fixture
def loopback_only() -> Iterator[None]:
    restrict_host_addresses(["127.0.0.1"])
    try:
        yield
    finally:
        restrict_host_addresses([])


def connected_event(pc: RTCPeerConnection) -> asyncio.Event:
    event = asyncio.Event()

    @pc.on("connectionstatechange")
    def changed() -> None:
        if pc.connectionState == "connected":
            event.set()

    return event


async def test_a_loopback_call_uses_a_host_pair(loopback_only: None) -> None:
    caller = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    callee = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected = [connected_event(caller), connected_event(callee)]
    try:
        caller.addTrack(VideoStreamTrack())
        assert selected_pair(caller) is None  # nothing nominated before ICE ran
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        async with asyncio.timeout(10):
            await asyncio.gather(*(event.wait() for event in connected))
        watcher = PairWatcher()
        for pc in (caller, callee):
            pair = watcher.update(pc)
            assert pair is not None
            assert (pair.type, pair.local_type, pair.remote_type) == ("host", "host", "host")
            assert pair.protocol == "udp" and pair.relay_protocol is None
            assert pair.local_address.startswith("127.0.0.1:")
            assert pair.describe() == "host/udp (host <-> host)"
    finally:
        await caller.close()
        await callee.close()
    # Closed, aioice forgets the pair; the watcher still names the last one for the report.
    assert selected_pair(caller) is None
    assert watcher.update(caller) is not None


@pytest.mark.parametrize(
    ("local", "remote", "kind"),
    [
        ("host", "host", "host"),
        ("host", "srflx", "srflx"),
        ("srflx", "prflx", "prflx"),
        ("relay", "host", "relay"),
        ("host", "relay", "relay"),
    ],
)
def test_a_pair_is_named_after_its_more_relayed_end(local: str, remote: str, kind: str) -> None:
    pair = SelectedPair(local, remote, "10.0.0.1:1", "203.0.113.5:2", "udp", None)
    assert pair.type == kind
    assert pair.as_dict()["type"] == kind
