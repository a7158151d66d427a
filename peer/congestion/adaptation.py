"""Resolution, frame rate and bitrate for a target. Skeleton: the body lands later."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VideoSettings:
    """What the video encoder should produce."""

    width: int
    height: int
    fps: float
    bitrate_bps: int


class VideoAdaptation:
    """Steps resolution, then frame rate, down and up with hysteresis."""

    def __init__(self, source_width: int, source_height: int, source_fps: float) -> None:
        self.source_width = source_width
        self.source_height = source_height
        self.source_fps = source_fps

    def update(self, target_bps: int, now_ms: float) -> VideoSettings:
        """The settings for ``target_bps`` (video share) at ``now_ms``."""
        raise NotImplementedError


def split_bitrate(target_bps: int, audio_active: bool) -> tuple[int, int]:
    """Split a transport target into (audio_bps, video_bps)."""
    raise NotImplementedError
