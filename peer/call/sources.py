"""The peer's own media: camera or file, microphone, or echo (what the partner sends,
sent back), opened once and shared by every call."""

from __future__ import annotations

import logging

from aiortc import MediaStreamTrack

from media.audio_processing import AudioProcessingUnavailable, AudioProcessor
from media.sources.echo import EchoTrack
from media.sources.select import MediaSourceError, is_microphone
from peer.call.local_media import LocalMedia
from peer.errors import ExitCode, PeerError
from peer.options import PeerOptions

logger = logging.getLogger(__name__)


class LocalSources:
    def __init__(self, options: PeerOptions, media: LocalMedia) -> None:
        self.options = options
        self.media = media
        self.video: MediaStreamTrack | None = None
        self.audio: MediaStreamTrack | None = None
        self.processor: AudioProcessor | None = None
        self.echo: dict[str, EchoTrack] = {}

    def open(self) -> None:
        o = self.options
        try:
            if o.video == "echo":
                self.echo["video"] = EchoTrack("video")
            if o.audio == "echo":
                self.echo["audio"] = EchoTrack("audio")
            else:
                self.processor = self._audio_processor()
            self.media.open(
                video=o.video != "echo", audio=o.audio != "echo", processor=self.processor
            )
            self.video, self.audio = self.media.video, self.media.audio
        except MediaSourceError as exc:
            raise PeerError(ExitCode.MEDIA_DEVICE, str(exc)) from exc
        except ValueError as exc:  # a source spec that does not parse
            raise PeerError(ExitCode.USAGE, str(exc)) from exc

    def _audio_processor(self) -> AudioProcessor | None:
        o = self.options
        if not (o.audio_processing and o.speaker and is_microphone(o.audio)):
            return None
        try:
            return AudioProcessor()
        except AudioProcessingUnavailable as exc:
            logger.warning("%s; the microphone goes out unprocessed", exc)
            return None

    def sent(self) -> list[MediaStreamTrack]:
        """What every call sends."""
        tracks = (self.video, self.audio, *self.echo.values())
        return [track for track in tracks if track is not None]

    async def close(self) -> None:
        await self.media.close()
        for track in self.sent():
            track.stop()
