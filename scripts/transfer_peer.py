#!/usr/bin/env python3
"""One side of a data-channel transfer, for scripts/bench_transfer.py and the tests.

Logs in to the signaling server; the sender offers a call with one ``file`` data
channel, sends a text header ``{"size": N}`` then N bytes in 64 KiB binary messages
(the plain send loop of aiortc's examples: keep ``bufferedAmount`` under a high-water
mark, wait on ``bufferedamountlow``), and waits for the receiver's ``{"sha256": ...}``.
The receiver answers, hashes what arrives and replies with its digest. Each prints
one JSON line with what it measured about itself: bytes, SHA-256, seconds, CPU
seconds and memory over the transfer.

The bytes are a fixed pseudo-random 1 MiB block repeated, so both ends and the
test know the digest without a file on disk; the receiver never assumes it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchproc import memory_kib

from peer.ice.config import rtc_configuration
from peer.session.client import SignalingClient, SignalingError
from peer.stack.host_addresses import restrict_host_addresses
from peer.stack.sctp_speed import SCTP_MODES, install_sctp

logger = logging.getLogger(__name__)

MESSAGE_BYTES = 65536
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024
BLOCK_BYTES = 1024 * 1024


def payload_block(seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(BLOCK_BYTES)


def expected_sha256(size: int, seed: int = 7) -> str:
    """The digest of the ``size`` bytes a sender with ``seed`` sends."""
    block = payload_block(seed)
    digest = hashlib.sha256()
    whole, rest = divmod(size, BLOCK_BYTES)
    for _ in range(whole):
        digest.update(block)
    digest.update(block[:rest])
    return digest.hexdigest()


def self_usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": memory_kib(os.getpid()) / 1024,
    }


class Transfer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.client = SignalingClient(args.server, args.login)
        self.pc = RTCPeerConnection(rtc_configuration([]))
        self.other: str | None = args.send_to
        self.finished = asyncio.Event()
        self.result: dict[str, Any] = {"role": "sender" if args.send_to else "receiver"}

    async def run(self) -> dict[str, Any]:
        try:
            await self.client.connect()
        except BaseException:
            await self.client.close()
            await self.pc.close()
            raise
        print("logged in", flush=True)
        listener = asyncio.create_task(self._listen())
        try:
            if self.other is not None:
                channel = self.pc.createDataChannel("file")
                install_sctp(self.pc, self.args.sctp)
                channel.on("open", lambda: asyncio.ensure_future(self._send(channel)))
                channel.on("message", self._on_reply)
                await self.pc.setLocalDescription(await self.pc.createOffer())
                await self.client.send(
                    {
                        "type": "offer",
                        "offer": _description_json(self.pc),
                        "otherUsername": self.other,
                    }
                )
            else:
                self.pc.on("datachannel", self._on_channel)
            await asyncio.wait_for(self.finished.wait(), self.args.timeout)
        finally:
            listener.cancel()
            await self.pc.close()
            await self.client.close()
        return self.result

    async def _listen(self) -> None:
        while True:
            message = await self.client.receive()
            kind = message.get("type")
            if kind == "offer":
                self.other = str(message["username"])
                await self.pc.setRemoteDescription(RTCSessionDescription(**message["offer"]))
                install_sctp(self.pc, self.args.sctp)
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self.client.send(
                    {
                        "type": "answer",
                        "answer": _description_json(self.pc),
                        "otherUsername": self.other,
                    }
                )
            elif kind == "answer":
                await self.pc.setRemoteDescription(RTCSessionDescription(**message["answer"]))
            elif kind == "candidate" and message.get("candidate"):
                data = message["candidate"]
                candidate = candidate_from_sdp(data["candidate"].removeprefix("candidate:"))
                candidate.sdpMid = data.get("sdpMid")
                candidate.sdpMLineIndex = data.get("sdpMLineIndex")
                await self.pc.addIceCandidate(candidate)

    # ---- sender --------------------------------------------------------------------
    async def _send(self, channel: RTCDataChannel) -> None:
        size: int = self.args.bytes
        block = payload_block()
        digest = hashlib.sha256()
        low = asyncio.Event()
        channel.bufferedAmountLowThreshold = LOW_WATER
        channel.on("bufferedamountlow", low.set)
        channel.send(json.dumps({"size": size}))
        self.result["before"] = self_usage()
        self.started = time.monotonic()
        sent = 0
        while sent < size:
            offset = sent % BLOCK_BYTES
            chunk = block[offset : offset + min(MESSAGE_BYTES, size - sent)]
            digest.update(chunk)
            channel.send(chunk)
            sent += len(chunk)
            if channel.bufferedAmount > HIGH_WATER:
                low.clear()
                await low.wait()
        self.result.update(bytes=sent, sha256=digest.hexdigest())

    def _on_reply(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.result["seconds"] = time.monotonic() - self.started
            self.result["after"] = self_usage()
            self.result["peak_rss_mib"] = memory_kib(os.getpid(), "VmHWM") / 1024
            self.result["receiver_sha256"] = json.loads(message)["sha256"]
            self.finished.set()

    # ---- receiver ------------------------------------------------------------------
    def _on_channel(self, channel: RTCDataChannel) -> None:
        digest = hashlib.sha256()
        state: dict[str, Any] = {"size": None, "received": 0}

        def on_message(message: str | bytes) -> None:
            if isinstance(message, str):
                state["size"] = json.loads(message)["size"]
                return
            if state["received"] == 0:
                self.result["before"] = self_usage()
                state["started"] = time.monotonic()
            digest.update(message)
            state["received"] += len(message)
            if state["received"] >= state["size"]:
                sha = digest.hexdigest()
                self.result.update(
                    bytes=state["received"],
                    sha256=sha,
                    seconds=time.monotonic() - state["started"],
                    after=self_usage(),
                    peak_rss_mib=memory_kib(os.getpid(), "VmHWM") / 1024,
                )
                channel.send(json.dumps({"sha256": sha}))
                # Let the reply leave before the connection closes.
                asyncio.get_running_loop().call_later(1.0, self.finished.set)

        channel.on("message", on_message)


def _description_json(pc: RTCPeerConnection) -> dict[str, str]:
    description = pc.localDescription
    return {"type": description.type, "sdp": description.sdp}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--login", required=True)
    parser.add_argument("--send-to", help="offer to this user and send; else receive")
    parser.add_argument("--bytes", type=int, default=64 * 1024 * 1024)
    parser.add_argument("--sctp", choices=SCTP_MODES, default="fast")
    parser.add_argument("--ice-host", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--profile", type=Path, help="write cProfile stats here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    restrict_host_addresses(args.ice_host)
    transfer = Transfer(args)
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        result = asyncio.run(transfer.run())
    except TimeoutError:
        print(json.dumps({"error": "timed out", **transfer.result}), flush=True)
        return 1
    except SignalingError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    finally:
        if args.profile:
            profiler.disable()
            profiler.dump_stats(str(args.profile))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
