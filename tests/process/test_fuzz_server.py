"""Promise 4b: random frames over real sockets never crash, hang or leak the server.

Batches of raw TCP connections hit a real ``signaling-server`` process at once: garbage
before the WebSocket handshake, random text and binary frames, invalid UTF-8,
truncated JSON, deep nesting, huge numbers, NaN, oversize frames, reserved bits and
opcodes, unmasked and fragmented frames, ping floods, and disconnects mid-frame (a TCP
reset with half a frame sent). Some connections only send bad protocol messages and
count the replies: exactly one error each. After every batch:

- the process is alive and ``/healthz`` answers;
- two fresh, well-behaved clients log in and relay an offer end to end;
- ``/metrics`` shows connections, users and calls back at zero and the event loop's
  task count back at its idle value (no leak);
- the server's output has no traceback.

The generator is seeded (``FUZZ_SEED``, printed, fixed in CI by ``.ci/run``) so a failing
batch replays;
``FUZZ_SECONDS`` (default 30) bounds the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from tests.helpers.server_support import metric_values
from tests.helpers.support import SignalingServer
from tests.process.test_server import StartServer, logged_in, offer_to
from wsraw import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    client_frame,
    handshake_request,
    open_websocket,
    read_frame,
    reset,
)

FUZZ_SECONDS: Final = float(os.environ.get("FUZZ_SECONDS", "30"))
CONNECTIONS_PER_BATCH: Final = 8
BATCH_TIMEOUT: Final = 60.0
SETTLE_TIMEOUT: Final = 15.0
HARD_LIMIT: Final = 128 * 1024  # signaling.websocket.HARD_FRAME_LIMIT
# What must never appear in the server's output, whatever it was sent.
CRASH_MARKERS: Final = (
    "Traceback",
    "Error handling request",
    "Unhandled exception",
    "Task exception was never retrieved",
    "was never awaited",
)


# ---- raw WebSocket bytes ------------------------------------------------------------------


def raw_frame(opcode: int, payload: bytes, **header: Any) -> bytes:
    """Any client frame (scripts/wsraw.py), with a fresh mask."""
    return client_frame(payload, os.urandom(4), opcode, **header)


def text(message: str | bytes) -> bytes:
    return raw_frame(OP_TEXT, message.encode() if isinstance(message, str) else message)


# ---- what a fuzz connection sends -----------------------------------------------------------

Rng = random.Random


def random_unicode(rng: Rng, size: int) -> str:
    # Everything but surrogates, which UTF-8 cannot carry.
    return "".join(
        chr(c) for c in (rng.randrange(0x110000) for _ in range(size)) if not 0xD800 <= c < 0xE000
    )


def bad_protocol_message(rng: Rng) -> bytes:
    """A text frame the server answers with exactly one error (before any login)."""
    choices: list[Callable[[], str | bytes]] = [
        lambda: random_unicode(rng, rng.randrange(1, 50)),
        lambda: '{"type":"offer","offer":{"type":"offer","sdp":"v=0"}'[: rng.randrange(1, 50)],
        lambda: "[" * rng.randrange(1, 50_000),
        lambda: json.dumps(rng.choice([None, 1, "x", [1, 2], 1.5, True])),
        lambda: (
            '{"type":"login","username":"x","n":' + rng.choice(["NaN", "1e999", "-Infinity"]) + "}"
        ),
        lambda: '{"n":' + "9" * rng.randrange(20, 6000) + "}",
        lambda: json.dumps({"type": random_unicode(rng, 5)}),
        lambda: json.dumps({"type": "offer", "otherUsername": "x" * 40, "offer": 5}),
        lambda: json.dumps(
            {"type": "candidate", "candidate": {"candidate": "a"}, "otherUsername": "nobody"}
        ),
        lambda: json.dumps({"type": "login", "username": random_unicode(rng, 40)}),
        lambda: '{"type":"close","reason":"' + "y" * 70_000 + '"}',
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))),  # binary
    ]
    message = rng.choice(choices)()
    if isinstance(message, bytes):
        return raw_frame(OP_BINARY, message)
    return text(message)


def chaos_frame(rng: Rng) -> tuple[bytes, bool]:
    """Any frame at all; True when the server may rightly close the connection for it."""
    kind = rng.randrange(16)
    if kind < 4:
        return bad_protocol_message(rng), False
    if kind == 4:
        name = f"f{rng.randrange(20)}"
        target = f"f{rng.randrange(20)}"
        message = rng.choice(
            [
                {"type": "login", "username": name},
                offer_to(target),
                {
                    "type": "answer",
                    "answer": {"type": "answer", "sdp": "v=0"},
                    "otherUsername": target,
                },
                {"type": "candidate", "candidate": None, "otherUsername": target},
                {"type": "close", "otherUsername": target},
                {"type": "list"},
            ]
        )
        return text(json.dumps(message)), False
    if kind == 5:  # invalid UTF-8 in a text frame
        return text(b"\xff\xfe" + os.urandom(rng.randrange(1, 30)) + b"\xc3"), True
    if kind == 6:  # over the hard limit: closed with 1009
        return text(b"x" * (HARD_LIMIT + rng.randrange(1, 4096))), True
    if kind == 7:
        return b"".join(
            raw_frame(OP_PING, os.urandom(rng.randrange(0, 125)))
            for _ in range(rng.randrange(50, 300))
        ), False
    if kind == 8:
        return raw_frame(OP_PONG, os.urandom(rng.randrange(0, 30))), False
    if kind == 9:  # reserved opcodes and bits, an unmasked client frame
        return rng.choice(
            [
                raw_frame(rng.choice([3, 4, 5, 6, 7, 0xB, 0xC, 0xF]), b"{}"),
                raw_frame(OP_TEXT, b"{}", rsv=rng.randrange(1, 8)),
                raw_frame(OP_TEXT, b'{"type":"list"}', masked=False),
            ]
        ), True
    if kind == 10:  # a fragmented message, sometimes broken
        body = json.dumps({"type": "list"}).encode()
        cut = rng.randrange(1, len(body))
        start = raw_frame(OP_TEXT, body[:cut], fin=False)
        rest = raw_frame(OP_CONTINUATION, body[cut:])
        return rng.choice([(start + rest, False), (rest, True), (start + start, True)])
    if kind == 11:  # control frames that break the rules: too long, fragmented
        return rng.choice(
            [
                raw_frame(OP_PING, os.urandom(126)),
                raw_frame(OP_PING, b"x", fin=False),
            ]
        ), True
    if kind == 12:  # a close frame with a random code and reason
        return raw_frame(OP_CLOSE, os.urandom(rng.randrange(0, 40))), True
    if kind == 13:  # a random binary frame of any size up to 64 KiB
        return raw_frame(OP_BINARY, os.urandom(rng.randrange(0, 65536))), False
    if kind == 14:  # a frame that claims more than it carries: the rest never comes
        return raw_frame(OP_TEXT, b'{"type":', declared=rng.choice([200, 70_000, 2**62])), True
    return os.urandom(rng.randrange(1, 200)), True  # bytes that are no frame at all


def pre_handshake_garbage(rng: Rng, port: int) -> bytes:
    return rng.choice(
        [
            os.urandom(rng.randrange(1, 4096)),
            handshake_request("127.0.0.1", port)[: rng.randrange(1, 60)],
            handshake_request("127.0.0.1", port).replace(b"Version: 13", b"Version: 99"),
            handshake_request("127.0.0.1", port, key=b"not base64!"),
            b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
            b"POST /ws HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nxx",
            b"GET /" + random_unicode(rng, 30).encode() + b" HTTP/1.1\r\n\r\n",
        ]
    )


# ---- one fuzz connection --------------------------------------------------------------------


@dataclass
class Tally:
    connections: int = 0
    frames: int = 0
    bytes: int = 0
    errors_counted: int = 0


async def drain_until_closed(reader: asyncio.StreamReader, within: float) -> None:
    """Read (and drop) whatever the server sends, until it closes or time is up."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except (TimeoutError, ConnectionError):
        pass


async def chaos_connection(server: SignalingServer, rng: Rng, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    tally.connections += 1
    drain = asyncio.create_task(drain_until_closed(reader, 30))
    try:
        if rng.random() < 0.15:
            garbage = pre_handshake_garbage(rng, server.port)
            writer.write(garbage)
            tally.bytes += len(garbage)
        else:
            # The reader task reads the 101 response along with everything else.
            writer.write(handshake_request(server.host, server.port))
            for _ in range(rng.randrange(1, 40)):
                frame, may_close = chaos_frame(rng)
                writer.write(frame)
                tally.frames += 1
                tally.bytes += len(frame)
                await writer.drain()
                if may_close or rng.random() < 0.05:
                    break
        ending = rng.randrange(3)
        if ending == 0:
            reset(writer)
        elif ending == 1:
            writer.write(raw_frame(OP_CLOSE, struct.pack("!H", 1000)))
            writer.close()
        else:
            writer.write_eof()
        await drain
    except (ConnectionError, OSError):
        reset(writer)
    finally:
        drain.cancel()
        writer.transport.abort()


async def polite_connection(server: SignalingServer, rng: Rng, tally: Tally) -> None:
    """Bad protocol messages on a sound WebSocket: exactly one error back for each."""
    reader, writer = await open_websocket(server.host, server.port)
    tally.connections += 1
    try:
        count = rng.randrange(1, 40)
        for _ in range(count):
            frame = bad_protocol_message(rng)
            writer.write(frame)
            tally.frames += 1
            tally.bytes += len(frame)
        for index in range(count):
            opcode, payload = await asyncio.wait_for(read_frame(reader), 10)
            assert opcode == OP_TEXT, (index, opcode, payload[:200])
            reply = json.loads(payload)
            assert reply["type"] == "error" and reply["message"], reply
        tally.errors_counted += count
        writer.write(raw_frame(OP_CLOSE, struct.pack("!H", 1000)))
        # Nothing more than the close frame answering ours.
        opcode, _ = await asyncio.wait_for(read_frame(reader), 10)
        assert opcode == OP_CLOSE, opcode
    finally:
        writer.transport.abort()


# ---- the checks after each batch ------------------------------------------------------------


async def scrape(server: SignalingServer) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        async with session.get(server.http_url + "/metrics") as response:
            assert response.status == 200
            body = await response.text()
    names = (
        "signaling_connections",
        "signaling_users",
        "signaling_active_calls",
        "signaling_tasks",
    )
    return {name: metric_values(body, name)[""] for name in names}


async def settled(server: SignalingServer, idle_tasks: float) -> dict[str, float]:
    """Metrics once every fuzz connection is gone; fails if they never get there."""
    want = {
        "signaling_connections": 0.0,
        "signaling_users": 0.0,
        "signaling_active_calls": 0.0,
        "signaling_tasks": idle_tasks,
    }
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while (seen := await scrape(server)) != want:
        assert time.monotonic() < deadline, f"left behind after the batch: {seen} != {want}"
        await asyncio.sleep(0.1)
    return seen


async def assert_healthy(server: SignalingServer, batch: int) -> None:
    assert server.process.popen.poll() is None, "the server died:\n" + "\n".join(
        server.process.drain()[-40:]
    )
    async with aiohttp.ClientSession() as session:
        async with session.get(server.http_url + "/healthz") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
    async with logged_in(server, f"probe{batch}a", f"probe{batch}b") as [a, b]:
        await a.send(offer_to(b.name))
        relayed = await b.recv()
        assert relayed["type"] == "offer" and relayed["username"] == a.name, relayed


def assert_no_crash(server: SignalingServer) -> None:
    lines = server.process.drain()
    crashes = [line for line in lines if any(marker in line for marker in CRASH_MARKERS)]
    assert not crashes, "\n".join(lines[-80:])


async def test_random_frames_from_many_sockets(start_server: StartServer) -> None:
    seed = int(os.environ.get("FUZZ_SEED", str(random.randrange(1 << 32))))
    print(f"FUZZ_SEED={seed}")
    rng = random.Random(seed)
    # No rate limit: the fuzzer would otherwise mostly meet "rate-limited" errors.
    server = start_server("--rate-limit", "0")
    idle = (await settled_first(server))["signaling_tasks"]
    tally = Tally()
    batches = 0
    deadline = time.monotonic() + FUZZ_SECONDS
    while batches < 3 or time.monotonic() < deadline:
        behaviours = [
            polite_connection if rng.random() < 0.3 else chaos_connection
            for _ in range(CONNECTIONS_PER_BATCH)
        ]
        jobs = [job(server, random.Random(rng.random()), tally) for job in behaviours]
        await asyncio.wait_for(asyncio.gather(*jobs), BATCH_TIMEOUT)
        await assert_healthy(server, batches)
        await settled(server, idle)
        assert_no_crash(server)
        batches += 1
    print(
        f"fuzz: {batches} batches, {tally.connections} connections, {tally.frames} frames, "
        f"{tally.bytes / 1e6:.1f} MB thrown; {tally.errors_counted} bad messages, "
        "each answered by exactly one error"
    )


async def settled_first(server: SignalingServer) -> dict[str, float]:
    """The idle metrics before any load (the task count to come back to)."""
    # The lowest of a few scrapes: the previous scrape's HTTP connection may not have
    # ended yet on the server's side.
    scrapes = [await scrape(server) for _ in range(5)]
    assert all(s["signaling_connections"] == s["signaling_users"] == 0 for s in scrapes)
    return min(scrapes, key=lambda s: s["signaling_tasks"])


# ---- what the fuzzer found, pinned down ---------------------------------------------------


async def test_malformed_http_gets_400_and_one_log_line(start_server: StartServer) -> None:
    """Found by the fuzzer: aiohttp logged each unparsable request as an ERROR with the
    parser's traceback, so a client sending garbage could fill the log with them."""
    server = start_server()
    for request in (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(request)
        response = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert re.match(rb"HTTP/1\.[01] 400 ", response), response[:200]
    await assert_healthy(server, 0)
    server.process.wait_for(r"INFO aiohttp\.server: bad HTTP request from 127\.0\.0\.1: 400")
    assert_no_crash(server)


async def test_reset_right_after_the_upgrade_request(start_server: StartServer) -> None:
    """Found by the fuzzer: a client that resets as soon as it has sent its upgrade
    request made the 101 write fail inside the handler, logged as a traceback."""
    server = start_server()
    idle = (await settled_first(server))["signaling_tasks"]  # before the load, not after
    for _ in range(40):
        _, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(handshake_request(server.host, server.port))
        reset(writer)
    await assert_healthy(server, 0)
    await settled(server, idle)
    assert_no_crash(server)


async def test_reset_during_a_ping_flood(start_server: StartServer) -> None:
    """Found by the fuzzer: aiohttp answers pings inside receive(); a client that resets
    with pings still queued made the pong write raise out of the handler (a traceback)."""
    server = start_server()
    idle = (await settled_first(server))["signaling_tasks"]
    for _ in range(20):
        _, writer = await open_websocket(server.host, server.port)
        writer.write(text(json.dumps({"type": "list"})))
        writer.write(b"".join(raw_frame(OP_PING, b"p" * 100) for _ in range(2000)))
        reset(writer)
    await assert_healthy(server, 0)
    await settled(server, idle)
    assert_no_crash(server)
