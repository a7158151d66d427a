"""Writes what a call receives to a file with PyAV: .mkv/.webm (VP8 + Opus) or .mp4
(H.264 + AAC). Timestamps are re-based so the file starts at zero."""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from pathlib import Path
from typing import Final

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from media.errors import MediaSourceError

logger = logging.getLogger(__name__)

# The encoder runs on the event loop beside the call: real-time settings keep it cheap.
REALTIME_OPTIONS: Final[dict[str, dict[str, object]]] = {
    "libvpx": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
    "libx264": {"preset": "ultrafast", "tune": "zerolatency"},
}
# container suffix -> (video codec, audio codec)
CODECS: Final = {
    ".mkv": ("libvpx", "libopus"),
    ".webm": ("libvpx", "libopus"),
    ".mp4": ("libx264", "aac"),
}
VIDEO_TIME_BASE: Final = fractions.Fraction(1, 1000)


class Recorder:
    def __init__(
        self, path: Path, video: MediaStreamTrack | None, audio: MediaStreamTrack | None
    ) -> None:
        if path.suffix.lower() not in CODECS:
            raise ValueError(f"--record {path}: use a .mkv, .webm or .mp4 file name")
        self.path = path
        self._video = video
        self._audio = audio
        self._container: av.container.OutputContainer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.video_frames = 0
        self.audio_frames = 0

    async def start(self, first_frame_within: float = 10.0) -> None:
        """Open the file once the first video frame tells the picture size."""
        video_codec, audio_codec = CODECS[self.path.suffix.lower()]
        first: VideoFrame | None = None
        if self._video is not None:
            try:
                received = await asyncio.wait_for(self._video.recv(), first_frame_within)
            except (TimeoutError, MediaStreamError):
                logger.warning("no video to record within %.0f s", first_frame_within)
                self._video = None
            else:
                assert isinstance(received, VideoFrame)
                first = received
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), mode="w")
        except (av.FFmpegError, OSError) as exc:
            raise MediaSourceError(f"cannot write {self.path}: {exc}") from exc
        # Every stream must exist before the first packet is written.
        if first is not None:
            video_stream = self._container.add_stream(video_codec, rate=30)
            assert isinstance(video_stream, av.video.stream.VideoStream)
            video_stream.width, video_stream.height = first.width, first.height
            video_stream.pix_fmt = "yuv420p"
            video_stream.time_base = VIDEO_TIME_BASE
            video_stream.options = dict(REALTIME_OPTIONS.get(video_codec, {}))
            self._tasks.append(asyncio.create_task(self._write_video(video_stream, first)))
        if self._audio is not None:
            audio_stream = self._container.add_stream(audio_codec, rate=48000)
            assert isinstance(audio_stream, av.audio.stream.AudioStream)
            self._tasks.append(asyncio.create_task(self._write_audio(audio_stream)))

    async def _write_video(self, stream: av.video.stream.VideoStream, first: VideoFrame) -> None:
        assert self._container is not None and self._video is not None
        started = time.monotonic()
        last_pts = -1
        frame: VideoFrame = first
        while True:
            if (frame.width, frame.height) != (stream.width, stream.height):
                frame = frame.reformat(width=stream.width, height=stream.height)
            # Wall-clock timestamps: the sender's pts may jump across renegotiations.
            pts = max(int((time.monotonic() - started) * 1000), last_pts + 1)
            last_pts = pts
            frame.pts = pts
            frame.time_base = VIDEO_TIME_BASE
            for packet in stream.encode(frame):
                self._container.mux(packet)
            self.video_frames += 1
            try:
                received = await self._video.recv()
            except MediaStreamError:
                return
            assert isinstance(received, VideoFrame)
            frame = received

    async def _write_audio(self, stream: av.audio.stream.AudioStream) -> None:
        assert self._container is not None and self._audio is not None
        resampler = av.AudioResampler(format=stream.format, layout="stereo", rate=48000)
        samples = 0
        while True:
            try:
                frame = await self._audio.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, AudioFrame)
            for chunk in resampler.resample(frame):
                chunk.pts = samples
                chunk.time_base = fractions.Fraction(1, 48000)
                samples += chunk.samples
                for packet in stream.encode(chunk):
                    self._container.mux(packet)
            self.audio_frames += 1

    async def stop(self) -> None:
        """Finish the file. Safe to call from a task that is itself being cancelled."""
        for task in self._tasks:
            task.cancel()
        # Closed before any await: a cancelled writer never touches the container again,
        # and a cancellation arriving here cannot leave the file without its trailer.
        self._close()
        for outcome in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                logger.warning("recording %s failed: %s", self.path, outcome)

    def _close(self) -> None:
        container = self._container
        if container is None:
            return
        self._container = None
        for stream in container.streams:
            if not isinstance(stream, av.video.stream.VideoStream | av.audio.stream.AudioStream):
                continue
            try:
                for packet in stream.encode(None):
                    container.mux(packet)
            except (av.FFmpegError, ValueError) as exc:
                logger.debug("flushing %s: %s", stream, exc)
        container.close()
        logger.info(
            "recorded %d video and %d audio frames to %s",
            self.video_frames,
            self.audio_frames,
            self.path,
        )
