"""The load generator behind scripts/bench_signaling.py: many protocol-v1 clients in one
process, each a bare asyncio Protocol speaking just enough WebSocket.

Why not aiohttp's client: the generator shares two cores with the server it measures,
so every microsecond it spends on itself is taken from the server or shows up as
latency. A client here is one callback-driven object with no task of its own; a
message received can trigger the next send from inside ``data_received``.

A worker runs in three phases, each ended by the parent process (a multiprocessing
pipe): connect and log in all its clients, then pair them up (caller offers, callee
answers: both servers then relay either way), then the timed relay where every client
sends ``messages`` offers to its partner. Each offer's SDP carries a sequence number
and the send time (CLOCK_MONOTONIC, the same for every process on the host), so a
receiver counts lost, duplicated and out-of-order messages and measures latency.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, cast

from wsraw import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WEBSOCKET_GUID,
    client_frame,
    handshake_request,
)


class BenchError(RuntimeError):
    """The load could not be applied as asked (a refused login, a dead connection...)."""


@dataclass(frozen=True)
class LoadSpec:
    """What one worker does. ``urls[i % len(urls)]`` serves client i, so with two
    servers the two clients of every pair are on different servers."""

    urls: tuple[str, ...]
    first_client: int
    clients: int
    messages: int
    size: int
    rate: float  # offers per second per client; 0 means as fast as the window allows
    window: int  # offers a client may have in flight (sent, not yet received)
    connect_concurrency: int = 100
    timeout: float = 60.0


class LoadClient(asyncio.Protocol):
    """One signaling client: handshake, login, then offers to and from its partner."""

    def __init__(self, worker: Worker, index: int, host: str, port: int, path: str) -> None:
        self.worker = worker
        self.index = index
        self.name = f"u{index}"
        self.partner: LoadClient | None = None
        self._address = (host, port, path)
        self._mask = os.urandom(4)
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._handshaking = True
        self._expected_accept = b""
        self.logged_in: asyncio.Future[None] = worker.loop.create_future()
        self.answered: asyncio.Future[None] = worker.loop.create_future()
        self.closed = False
        self._closing = False
        # The relay: what this client sent, and what it got from its partner.
        self.sent = 0
        self.received = 0
        self.seen = bytearray(worker.spec.messages)
        self.highest = -1
        self.duplicated = 0
        self.reordered = 0
        self.misattributed = 0
        self.errors: list[str] = []
        # The offer's JSON text around its SDP, built once the partner is known.
        self._envelope = ("", "")
        self._envelope_size = 0

    # ---- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16))
        self._expected_accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())
        self._transport.write(handshake_request(*self._address, key=key))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._closing:
            self._settle(
                BenchError(f"{self.name}: connection lost ({exc or 'closed by the server'})")
            )
            self.worker.client_finished(self)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if self._handshaking and not self._finish_handshake():
            return
        position, end = 0, len(buffer)
        while end - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length, header = second & 0x7F, 2
            if length == 126:
                if end - position < 4:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 4], "big"), 4
            elif length == 127:
                if end - position < 10:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 10], "big"), 10
            if end - position < header + length:
                break
            payload = bytes(buffer[position + header : position + header + length])
            position += header + length
            opcode = first & 0x0F
            if opcode == OP_TEXT:
                self._on_text(payload)
            elif opcode == OP_PING:
                self._write(client_frame(payload, self._mask, OP_PONG))
            elif opcode == OP_CLOSE:
                self._write(client_frame(payload[:2], self._mask, OP_CLOSE))
                assert self._transport is not None
                self._transport.close()
        del buffer[:position]

    # ---- internals -----------------------------------------------------------------
    def _finish_handshake(self) -> bool:
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        head = bytes(self._buffer[:head_end])
        del self._buffer[: head_end + 4]
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" " or self._expected_accept not in head:
            self._fail(f"WebSocket upgrade refused: {status.decode(errors='replace')}")
            return False
        self._handshaking = False
        self.send_json({"type": "login", "username": self.name})
        return True

    def _write(self, frame: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame)

    def send_json(self, message: dict[str, Any]) -> None:
        self._write(client_frame(json.dumps(message, separators=(",", ":")).encode(), self._mask))

    def _fail(self, text: str) -> None:
        self.errors.append(text)
        self._settle(BenchError(f"{self.name}: {text}"))

    def _settle(self, error: BenchError) -> None:
        for future in (self.logged_in, self.answered):
            if not future.done():
                future.set_exception(error)
                # A callee's `answered` is never awaited: no "never retrieved" noise.
                future.exception()

    def _on_text(self, payload: bytes) -> None:
        now = time.monotonic_ns()
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "offer":
            if message["offer"].get("x-setup"):
                self._answer_setup(message)
            else:
                self._on_relayed(message, now)
        elif kind == "login":
            if message.get("success") is True:
                self.logged_in.set_result(None)
            else:
                self._fail(f"login refused: {payload.decode()}")
        elif kind == "answer":
            if not self.answered.done():
                self.answered.set_result(None)
        else:
            # Error replies, closes: the benchmark sends nothing a server should refuse.
            self.errors.append(payload.decode(errors="replace")[:200])

    def _answer_setup(self, message: dict[str, Any]) -> None:
        # The pairing offer: answering makes the call active on our server, after which
        # either side may offer (renegotiate). The tutorial server needs the answer too,
        # to learn who the callee is talking to.
        self.send_json(
            {
                "type": "answer",
                "answer": {"type": "answer", "sdp": "v=0\r\n"},
                "otherUsername": message.get("username"),
            }
        )

    def _on_relayed(self, message: dict[str, Any], now: int) -> None:
        partner = self.partner
        assert partner is not None
        if message.get("username") != partner.name:
            self.misattributed += 1
        # "v=0\r\no=- <seq> <send time ns> IN IP4 ..."
        fields = message["offer"]["sdp"].split(" ", 3)
        seq, sent_at = int(fields[1]), int(fields[2])
        if self.seen[seq]:
            self.duplicated += 1
        else:
            self.seen[seq] = 1
            self.received += 1
            if seq < self.highest:
                self.reordered += 1
            else:
                self.highest = seq
        self.worker.latencies.append((now - sent_at) / 1000.0)
        self.worker.message_received(self)
        if self.worker.spec.rate == 0:
            partner.pump()

    def set_partner_envelope(self) -> None:
        assert self.partner is not None
        text = json.dumps(
            {
                "type": "offer",
                "offer": {"type": "offer", "sdp": "@@"},
                "otherUsername": self.partner.name,
            },
            separators=(",", ":"),
        )
        before, after = text.split("@@")
        self._envelope = (before, after)
        self._envelope_size = len(before) + len(after)

    def offer_setup(self) -> None:
        assert self.partner is not None
        self.send_json(
            {
                "type": "offer",
                "offer": {"type": "offer", "sdp": "v=0\r\n", "x-setup": True},
                "otherUsername": self.partner.name,
            }
        )

    def send_offer(self) -> None:
        """One benchmark offer of ``size`` bytes (the whole JSON text) to the partner."""
        # The SDP as it appears inside the JSON string: "\r\n" is escaped there.
        sdp = f"v=0\\r\\no=- {self.sent} {time.monotonic_ns()} IN IP4 127.0.0.1\\r\\ns=-\\r\\n"
        fill = self.worker.spec.size - self._envelope_size - len(sdp) - 8
        if fill >= 0:
            sdp += "a=x:" + "x" * fill + "\\r\\n"
        text = self._envelope[0] + sdp + self._envelope[1]
        self._write(client_frame(text.encode(), self._mask))
        self.sent += 1

    def pump(self) -> None:
        """Window mode: keep ``window`` offers in flight until all are sent."""
        partner = self.partner
        assert partner is not None
        spec = self.worker.spec
        while self.sent < spec.messages and self.sent - partner.received < spec.window:
            self.send_offer()

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()


@dataclass
class Worker:
    spec: LoadSpec
    loop: asyncio.AbstractEventLoop
    clients: list[LoadClient] = field(default_factory=list)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    _expected: int = 0
    _received: int = 0
    _all_received: asyncio.Future[None] | None = None
    _timers: dict[int, asyncio.TimerHandle] = field(default_factory=dict)
    first_send: int = 0
    last_receive: int = 0

    def message_received(self, client: LoadClient) -> None:
        self._received += 1
        if self._received == self._expected:
            self.last_receive = time.monotonic_ns()
            if self._all_received is not None and not self._all_received.done():
                self._all_received.set_result(None)

    def client_finished(self, client: LoadClient) -> None:
        if self._all_received is not None and not self._all_received.done():
            self._all_received.set_exception(BenchError(f"{client.name}: connection lost"))

    async def connect(self) -> dict[str, Any]:
        """Open and log in every client, at most ``connect_concurrency`` at a time."""
        spec = self.spec
        gate = asyncio.Semaphore(spec.connect_concurrency)
        per_client: list[float] = []

        async def one(index: int) -> None:
            url = spec.urls[index % len(spec.urls)]
            host, port, path = _split_url(url)
            async with gate:
                started = time.monotonic()
                client = LoadClient(self, index, host, port, path)
                self.clients.append(client)
                await self.loop.create_connection(lambda: client, host, port)
                await client.logged_in
                per_client.append(time.monotonic() - started)

        started = time.monotonic()
        indexes = range(spec.first_client, spec.first_client + spec.clients)
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in indexes)), spec.timeout)
        elapsed = time.monotonic() - started
        self.clients.sort(key=lambda c: c.index)
        per_client.sort()
        return {
            "clients": len(self.clients),
            "seconds": elapsed,
            "p50_ms": 1000 * per_client[len(per_client) // 2] if per_client else 0.0,
            "p99_ms": 1000 * per_client[int(len(per_client) * 0.99)] if per_client else 0.0,
        }

    async def pair(self) -> None:
        """Clients 2k and 2k+1 call each other; wait until every call is answered."""
        for caller, callee in zip(self.clients[::2], self.clients[1::2], strict=True):
            caller.partner, callee.partner = callee, caller
        for client in self.clients:
            client.set_partner_envelope()
        callers = self.clients[::2]
        for caller in callers:
            caller.offer_setup()
        await asyncio.wait_for(
            asyncio.gather(*(caller.answered for caller in callers)), self.spec.timeout
        )

    async def relay(self) -> dict[str, Any]:
        """The timed phase: every client sends ``messages`` offers to its partner."""
        spec = self.spec
        self._expected = spec.messages * len(self.clients)
        self._all_received = self.loop.create_future()
        cpu_before = os.times()
        self.first_send = time.monotonic_ns()
        if spec.rate == 0:
            for client in self.clients:
                client.pump()
        else:
            interval = 1.0 / spec.rate
            start = self.loop.time() + 0.01
            phases = random.Random(spec.first_client)
            for client in self.clients:
                due = start + phases.random() * interval
                self._timers[client.index] = self.loop.call_at(
                    due, self._tick, client, due, interval
                )
        if self._expected == 0:
            self._all_received.set_result(None)
        failure = None
        try:
            await self._wait_for_progress()
        except (TimeoutError, BenchError) as exc:
            failure = str(exc) or "timed out"
        finally:
            for timer in self._timers.values():
                timer.cancel()
        cpu_after = os.times()
        if not self.last_receive:
            self.last_receive = time.monotonic_ns()
        return {
            "sent": sum(c.sent for c in self.clients),
            "received": sum(c.received for c in self.clients),
            "expected": self._expected,
            "lost": sum(spec.messages - c.received for c in self.clients),
            "duplicated": sum(c.duplicated for c in self.clients),
            "reordered": sum(c.reordered for c in self.clients),
            "misattributed": sum(c.misattributed for c in self.clients),
            "errors": [e for c in self.clients for e in c.errors][:10],
            "error_count": sum(len(c.errors) for c in self.clients),
            "first_send_ns": self.first_send,
            "last_receive_ns": self.last_receive,
            "cpu_seconds": (cpu_after.user - cpu_before.user)
            + (cpu_after.system - cpu_before.system),
            "latencies_us": self.latencies.tobytes(),
            "failure": failure,
        }

    async def _wait_for_progress(self) -> None:
        # Give up when nothing has arrived for a while, not after a fixed time: a slow
        # run still finishes, a stuck one reports what was lost.
        assert self._all_received is not None
        last = -1
        while last != self._received:
            last = self._received
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._all_received), 5.0)
                return

    def _tick(self, client: LoadClient, due: float, interval: float) -> None:
        if client.closed or client.sent >= self.spec.messages:
            return
        client.send_offer()
        if client.sent < self.spec.messages:
            # The next send is due one interval after this one was due: no drift.
            self._timers[client.index] = self.loop.call_at(
                due + interval, self._tick, client, due + interval, interval
            )


def _split_url(url: str) -> tuple[str, int, str]:
    if not url.startswith("ws://"):
        raise BenchError(f"only ws:// URLs are supported, not {url!r}")
    rest = url.removeprefix("ws://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    return host, int(port), "/" + path


def run_worker(spec: LoadSpec, pipe: Connection) -> None:
    """Entry point of a worker process: phases driven by commands from ``pipe``."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = Worker(spec, loop)
    try:
        pipe.send(("connected", loop.run_until_complete(worker.connect())))
        loop.run_until_complete(worker.pair())
        pipe.send(("paired", None))
        if pipe.recv() != "go":
            return
        pipe.send(("relayed", loop.run_until_complete(worker.relay())))
        pipe.recv()  # "stop": close only once every worker has finished
    except (BenchError, OSError, TimeoutError) as exc:
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        for client in worker.clients:
            client.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
