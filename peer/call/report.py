"""What the peer tells about the call in progress: the JSON stats line (``--stats``),
the final line when the call ends, the window's overlay and the "connected" line.

The numbers come from the call's connection and from what the remote media sinks
count (peer/call/remote_media.py feeds :meth:`CallReport.video_frame` and
:meth:`CallReport.audio_frame`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from av import AudioFrame, VideoFrame

from media.measure.level import AudioLevel
from media.measure.receive import VideoReceiveMeter
from peer.call.connection import Call
from peer.call.stats import (
    TransportStats,
    congestion_overlay,
    congestion_stats,
    negotiated_video_codec,
)
from peer.ice.candidate_pair import PairWatcher
from peer.stack.sctp_speed import sctp_counters


class CallReport:
    def __init__(
        self,
        login: str,
        *,
        interval: float,
        receive_path: str,
        sctp_mode: str,
        transfers: Callable[[], dict[str, int] | None],
        media: Callable[[], dict[str, Any]],
        say: Callable[[str], None],
    ) -> None:
        self.login = login
        self.interval = interval  # seconds between stats lines; 0: no stats lines
        self.receive_path = receive_path
        self.sctp_mode = sctp_mode
        self._transfers = transfers
        self._media = media
        self._say = say
        self.meter: VideoReceiveMeter | None = None
        self.audio_frames = 0
        self.audio_level = AudioLevel()
        self.transport = TransportStats()
        self.pair = PairWatcher()

    def new_call(self) -> None:
        self.meter = VideoReceiveMeter()
        self.audio_frames = 0
        self.audio_level = AudioLevel()
        self.transport = TransportStats()
        self.pair = PairWatcher()

    def video_frame(self, call: Call, frame: VideoFrame, at: float) -> None:
        if call.timings.first_frame is None:
            call.timings.first_frame = at
        if self.meter is not None:
            self.meter.on_frame(frame)

    def audio_frame(self, frame: object) -> None:
        self.audio_frames += 1
        if isinstance(frame, AudioFrame):
            self.audio_level.on_frame(frame)

    async def announce_connected(self, call: Call) -> None:
        await call.connected.wait()
        pair = self.pair.update(call.pc)
        over = f" over {pair.describe()}" if pair else ""
        self._say(f"call with {call.other} connected{over}")

    async def run(self, call: Call) -> None:
        """A stats line every ``interval`` seconds while the call lives."""
        while call.live:
            await asyncio.sleep(self.interval)
            if not call.live:
                return
            await self.transport.update(call.pc)
            self.print(call)

    def print(self, call: Call, final: bool = False) -> None:
        if self.interval <= 0:
            return
        stats = self.stats(call)
        if final:
            stats["event"] = "final"
        print(json.dumps(stats), flush=True)

    def stats(self, call: Call) -> dict[str, Any]:
        video = self.meter.snapshot() if self.meter else {}
        return {
            "event": "stats",
            "user": self.login,
            "peer": call.other,
            "state": call.state.value,
            "video": video,
            "audio_frames": self.audio_frames,
            "audio_level_dbfs": self.audio_level.dbfs,
            **self.transport.as_dict(),
            "pair": pair.as_dict() if (pair := self.pair.update(call.pc)) else None,
            "receive_path": _receive_path_counters(self.receive_path, call),
            "codec": negotiated_video_codec(call.pc),
            "transfers": self._transfers(),
            "sctp": sctp_counters(self.sctp_mode, call.pc),
            "congestion": congestion_stats(call.congestion),
            "media": self._media(),
            "setup_ms": {
                "ice": _ms(call.timings.since_start(call.timings.ice_connected)),
                "connected": _ms(call.timings.since_start(call.timings.connected)),
                "first_frame": _ms(call.timings.since_start(call.timings.first_frame)),
            },
        }

    def overlay_lines(self, call: Call | None) -> list[str]:
        """The window's figures: resolution, rate, bit rate, RTT, sending, the path."""
        video = self.meter.snapshot() if self.meter else {}
        parts = []
        if video.get("width"):
            parts.append(f"{video['width']}x{video['height']}")
        if video.get("fps") is not None:
            parts.append(f"{video['fps']:.1f} fps")
        if self.transport.bitrate_in_kbps is not None:
            parts.append(f"{self.transport.bitrate_in_kbps / 1000:.2f} Mbit/s")
        if self.transport.rtt_ms is not None:
            parts.append(f"RTT {self.transport.rtt_ms:.0f} ms")
        lines = [" ".join(parts)] if parts else ["connecting..."]
        if call is not None and (sending := congestion_overlay(call.congestion)):
            lines.append(sending)
        pair = self.pair.update(call.pc) if call is not None else self.pair.last
        if pair is not None:
            lines.append(pair.describe())
        return lines


def _receive_path_counters(path: str, call: Call) -> dict[str, Any]:
    counters: dict[str, Any] = {"path": path}
    counted: list[object] = [b.counters for b in call.receive_buffers]
    counted += [s.counters for s in call.nack_schedulers]
    for source in counted:
        for name, value in vars(source).items():
            counters[name] = counters.get(name, 0) + value
    return counters


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
