"""Video or audio from a media file (anything FFmpeg reads), looped, in real time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import VIDEO_CLOCK_RATE, MediaStreamError
from av import AudioFrame, VideoFrame

from media.errors import MediaSourceError
from media.sources.clock import MediaClock

logger = logging.getLogger(__name__)

AUDIO_RATE: Final = 48000
FRAME_SAMPLES: Final = 960

Frame = AudioFrame | VideoFrame


class _LoopedFileTrack(MediaStreamTrack):
    """Plays one stream of a file over and over, paced by ``clock``."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__()
        self.path = path
        if not path.is_file():
            raise MediaSourceError(f"no such file: {path}")
        try:
            self._container = av.open(str(path), mode="r")
        except (av.FFmpegError, OSError) as exc:
            raise MediaSourceError(f"cannot read {path}: {exc}") from exc
        streams = (
            self._container.streams.video if kind == "video" else self._container.streams.audio
        )
        if not streams:
            self._container.close()
            raise MediaSourceError(f"{path} has no {kind} stream")
        self._clock = self._make_clock()
        self._frames = self._forever()

    def _make_clock(self) -> MediaClock:
        raise NotImplementedError

    def _one_pass(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _forever(self) -> Iterator[Frame]:
        while True:
            produced = False
            for frame in self._one_pass():
                produced = True
                yield frame
            if not produced:
                raise MediaSourceError(f"{self.path} has no decodable {self.kind}")
            self._container.seek(0)

    async def recv(self) -> Frame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._clock.next_pts()
        frame = next(self._frames)
        frame.pts = pts
        frame.time_base = self._clock.time_base
        return frame

    def stop(self) -> None:
        super().stop()
        self._container.close()


class FileVideoTrack(_LoopedFileTrack):
    kind = "video"

    def __init__(self, path: Path, fps: float | None = None) -> None:
        self._fps = fps
        super().__init__(path, "video")

    def _make_clock(self) -> MediaClock:
        rate = self._fps or float(self._container.streams.video[0].average_rate or 30)
        return MediaClock(VIDEO_CLOCK_RATE, 1 / max(min(rate, 120.0), 1.0))

    def _one_pass(self) -> Iterator[Frame]:
        yield from self._container.decode(video=0)


class FileAudioTrack(_LoopedFileTrack):
    kind = "audio"

    def __init__(self, path: Path) -> None:
        super().__init__(path, "audio")

    def _make_clock(self) -> MediaClock:
        return MediaClock(AUDIO_RATE, FRAME_SAMPLES / AUDIO_RATE)

    def _one_pass(self) -> Iterator[Frame]:
        resampler = av.AudioResampler(
            format="s16", layout="mono", rate=AUDIO_RATE, frame_size=FRAME_SAMPLES
        )
        for frame in self._container.decode(audio=0):
            yield from resampler.resample(frame)
