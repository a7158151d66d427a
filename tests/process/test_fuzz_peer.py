"""Hypothesis against a real webcam-peer: hostile sequences of signaling messages
(wrong order, duplicates, wrong types, huge and malformed SDP, escapes) from
strangers on a real server, and hostile messages on a call's data channels. The peer
never leaves its loop (it stays up, reading, without a traceback), never saves a
file nobody completed, prints no escape, and a well-formed call still connects
afterwards (docs/security.md)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.datachannel_peer import scripted_call
from tests.helpers.peer_support import NO_MEDIA, files_in, start_peer
from tests.helpers.server_support import Client
from tests.helpers.support import Process, SignalingServer

pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        ["\x1b]0;PWNED\x07", "\x1b[2J", "\x1b]52;c;ZWNobw==\x07", "\u202e", "a\r\nb", ""]
    ),
)
SDP = st.one_of(
    HOSTILE_TEXT,
    st.just("v=0\r\nm=bogus"),
    st.just("v=0\r\n" + "a=candidate:1 1 udp 1 10.0.0.1 9 typ host\r\n" * 300),
    st.builds(lambda n: "v=0\r\nm=" + "x" * n, st.integers(0, 60_000)),
    st.just(
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
        "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=mid:0\r\n"
        "a=sctp-port:5000\r\na=setup:actpass\r\n"
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n"
    ),
)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=6,
)
CANDIDATE = st.one_of(
    st.none(),
    JSON_VALUE,
    st.fixed_dictionaries(
        {
            "candidate": st.one_of(
                HOSTILE_TEXT,
                st.just("candidate:1 1 udp 2130706431 abc.local 9 typ host"),
                st.just("candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"),
            ),
            "sdpMid": st.one_of(st.none(), st.just("0"), JSON_VALUE),
            "sdpMLineIndex": st.one_of(st.none(), st.integers(-2, 5), JSON_VALUE),
        }
    ),
)
MESSAGE = st.one_of(
    st.builds(
        lambda sdp, kind: {"type": "offer", "offer": {"type": kind, "sdp": sdp}},
        SDP,
        st.sampled_from(["offer", "answer"]),
    ),
    st.builds(lambda sdp: {"type": "answer", "answer": {"type": "answer", "sdp": sdp}}, SDP),
    st.builds(lambda c: {"type": "candidate", "candidate": c}, CANDIDATE),
    st.builds(lambda r: {"type": "close", "reason": r}, HOSTILE_TEXT),
    st.builds(lambda t, v: {"type": t, "offer": v}, HOSTILE_TEXT, JSON_VALUE),
)
SEQUENCES = st.lists(MESSAGE, min_size=1, max_size=8)


@pytest.fixture
def bob(signaling_server: SignalingServer, tmp_path: Path) -> Iterator[Process]:
    (tmp_path / "dl").mkdir()
    process = start_peer(
        signaling_server,
        *("--login", "bob", *NO_MEDIA, "--download-dir", str(tmp_path / "dl")),
        *("--accept-files-from", "mallory"),  # hostile messages reach the accepted states
    )
    process.wait_for("waiting for calls")
    yield process
    process.stop()


def still_sound(server: SignalingServer, bob: Process, downloads: Path) -> None:
    """bob is up, never left his loop, printed no escape, saved nothing, and takes a
    well-formed call."""
    assert bob.popen.poll() is None, "\n".join(bob.drain()[-30:])
    alice = start_peer(server, "--login", "alice", "--call", "bob", *NO_MEDIA)
    try:
        alice.wait_for("call with bob connected", timeout=40)
        bob.wait_for("call with alice connected")
    finally:
        alice.stop()
    output = bob.drain()
    text = "\n".join(output)
    assert "Traceback" not in text and "lost the signaling server" not in text
    assert "exception was never retrieved" not in text
    for line in output:
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", line), repr(line)
    assert [f for f in files_in(downloads) if not f.startswith(".webcam-peer-")] == []


def test_hostile_signaling_sequences(
    signaling_server: SignalingServer, bob: Process, tmp_path: Path
) -> None:
    names = (f"s{n}" for n in itertools.count())

    async def play(name: str, sequence: list[dict[str, Any]]) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(signaling_server.ws_url) as ws:
                stranger = Client(ws)
                assert (await stranger.login(name))["success"] is True
                for message in sequence:
                    await stranger.send({**message, "otherUsername": "bob"})
                    await asyncio.sleep(0.03)  # under the server's rate limit
                await asyncio.sleep(0.2)  # bob handles them while the stranger is there

    @FUZZ
    @given(SEQUENCES)
    def run(sequence: list[dict[str, Any]]) -> None:
        asyncio.run(play(next(names), sequence))
        assert bob.popen.poll() is None, "\n".join(bob.drain()[-30:])

    run()
    still_sound(signaling_server, bob, tmp_path / "dl")


DATA_MESSAGE = st.one_of(
    st.tuples(st.just("chat"), st.builds(json.dumps, JSON_VALUE)),
    st.tuples(st.just("chat"), HOSTILE_TEXT),
    st.tuples(st.just("chat"), st.binary(max_size=64)),
    st.tuples(
        st.just("file"),
        st.builds(
            lambda name, size: json.dumps({"type": "file", "name": name, "size": size}),
            HOSTILE_TEXT,
            st.one_of(st.integers(-5, 2**60), JSON_VALUE),
        ),
    ),
    st.tuples(st.just("file"), st.builds(json.dumps, JSON_VALUE)),
    st.tuples(st.just("file"), st.binary(max_size=256)),
    st.tuples(
        st.just("file"),
        st.builds(
            lambda kind, digest: json.dumps({"type": kind, "sha256": digest}),
            st.sampled_from(["end", "done", "accept", "cancel"]),
            st.one_of(st.just("0" * 64), HOSTILE_TEXT),
        ),
    ),
    st.tuples(st.sampled_from(["bogus", "", "\x1b[2J"]), HOSTILE_TEXT),
)


def test_hostile_data_channel_messages(
    signaling_server: SignalingServer, bob: Process, tmp_path: Path
) -> None:
    async def play(sequence: list[tuple[str, str | bytes]]) -> None:
        started = time.monotonic()  # the end of this call, not an earlier one's
        async with scripted_call(signaling_server, "mallory", "bob") as peer:
            channels = {"chat": peer.chat_channel}
            for label, message in sequence:
                if label not in channels:
                    channels[label] = peer.open(label)
                    await channels[label].wait_open()
                if channels[label].channel.readyState == "open":
                    channels[label].send(message)
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
        await asyncio.to_thread(bob.wait_for, "call with mallory ended", 20, started)

    @settings(FUZZ, max_examples=8)
    @given(st.lists(DATA_MESSAGE, min_size=1, max_size=12))
    def run(sequence: list[tuple[str, str | bytes]]) -> None:
        asyncio.run(play(sequence))
        assert bob.popen.poll() is None, "\n".join(bob.drain()[-30:])

    run()
    still_sound(signaling_server, bob, tmp_path / "dl")
