"""A track that sends back what the other side sends us (round-trip latency, loopback tests)."""

from __future__ import annotations

import asyncio
import logging

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

logger = logging.getLogger(__name__)


class EchoTrack(MediaStreamTrack):
    """Replays frames from whichever remote track ``set_source`` names last.

    It outlives calls: between them (and before the first) ``recv`` simply waits.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("audio", "video"):
            raise ValueError(f"kind must be audio or video, not {kind!r}")
        self.kind = kind
        self._source: MediaStreamTrack | None = None
        self._source_changed = asyncio.Event()

    def set_source(self, track: MediaStreamTrack) -> None:
        if track.kind != self.kind:
            raise ValueError(f"cannot echo {track.kind} on a {self.kind} track")
        self._source = track
        self._source_changed.set()

    async def recv(self) -> AudioFrame | VideoFrame:
        while self.readyState == "live":
            source = self._source
            if source is None:
                self._source_changed.clear()
                await self._source_changed.wait()
                continue
            try:
                frame = await source.recv()
            except MediaStreamError:
                if self._source is source:
                    self._source = None
                continue
            assert isinstance(frame, AudioFrame | VideoFrame)
            return frame
        raise MediaStreamError
