"""What to send at a given target: resolution, frame rate and the audio/video split.

An encoder squeezed far below what its resolution needs produces blocky frames and,
worse, keyframes too big for the link. :class:`VideoAdaptation` walks a ladder of
settings: the source resolution scaled by 3/4, 1/2, 3/8, 1/4 ... (same aspect, even
dimensions, the smaller side at least 120 pixels) at the source frame rate, then the
smallest resolution at 20, 15 and 10 fps. It steps down at once when the target falls
below what the current rung needs, and up one rung only after the target has stayed at
or above 1.3 x the next rung's need for 2 s, so a noisy estimate does not make it flap.

Given the call's first video target, the first rung is the largest that needs at most
``START_SHARE`` of it:
the start rate is a guess (300 kbit/s, as Chromium's), and a call that starts above its
link freezes for its first seconds while the estimate comes down; probing finds a faster
link within a second or two, and the ladder climbs from there.

A rung's need is a bits-per-pixel model: ``bits_per_pixel x pixels x fps``, with small
pictures given proportionally more (codecs spend more per pixel on them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

UP_MARGIN: Final = 1.3
UP_HOLD_MS: Final = 2_000.0
START_SHARE: Final = 0.6
BITS_PER_PIXEL: Final = 0.04  # at 640x480; VP8 at 30 fps looks decent from about here
REFERENCE_PIXELS: Final = 640 * 480
SMALL_PICTURE_EXPONENT: Final = 0.3
SCALE_FACTORS: Final = (1.0, 3 / 4, 1 / 2, 3 / 8, 1 / 4, 3 / 16, 1 / 8, 3 / 32, 1 / 16)
MIN_SIDE: Final = 120
REDUCED_FRAME_RATES: Final = (20.0, 15.0, 10.0)

# Audio: Opus at 32 kbit/s, 16 when the whole target is under 200 kbit/s, in 20 ms packets.
AUDIO_BPS: Final = 32_000
AUDIO_LOW_BPS: Final = 16_000
AUDIO_LOW_BELOW_BPS: Final = 200_000
AUDIO_PACKETS_PER_SECOND: Final = 50
# Per packet on the wire: IPv4 20 + UDP 8 + RTP 12 + header extensions 8 + SRTP tag 10.
PACKET_OVERHEAD_BYTES: Final = 58
VIDEO_PACKET_PAYLOAD_BYTES: Final = 1_200
MIN_VIDEO_BPS: Final = 10_000


@dataclass(frozen=True)
class VideoSettings:
    """What the video encoder should produce."""

    width: int
    height: int
    fps: float
    bitrate_bps: int


@dataclass(frozen=True)
class Rung:
    """One step of the ladder and the bitrate it needs."""

    width: int
    height: int
    fps: float
    need_bps: int


def needed_bps(width: int, height: int, fps: float, bits_per_pixel: float = BITS_PER_PIXEL) -> int:
    """The bitrate a picture of this size and rate needs to look acceptable."""
    pixels = width * height
    small_picture_bonus = (REFERENCE_PIXELS / pixels) ** SMALL_PICTURE_EXPONENT
    return round(bits_per_pixel * pixels * fps * small_picture_bonus)


def build_ladder(
    source_width: int, source_height: int, source_fps: float, bits_per_pixel: float = BITS_PER_PIXEL
) -> list[Rung]:
    """Rungs from the source down: resolutions first, then frame rates."""
    if source_width < 2 or source_height < 2 or source_fps <= 0:
        raise ValueError(
            f"video source {source_width}x{source_height} at {source_fps} fps cannot be adapted"
        )
    sizes: list[tuple[int, int]] = []
    for factor in SCALE_FACTORS:
        width = int(source_width * factor) // 2 * 2
        height = int(source_height * factor) // 2 * 2
        if sizes and min(width, height) < MIN_SIDE:
            break
        if (width, height) not in sizes:
            sizes.append((width, height))
    rungs = [Rung(w, h, source_fps, needed_bps(w, h, source_fps, bits_per_pixel)) for w, h in sizes]
    smallest_w, smallest_h = sizes[-1]
    for fps in REDUCED_FRAME_RATES:
        if fps < source_fps:
            need = needed_bps(smallest_w, smallest_h, fps, bits_per_pixel)
            rungs.append(Rung(smallest_w, smallest_h, fps, need))
    return rungs


class VideoAdaptation:
    """Steps resolution, then frame rate, down and up with hysteresis."""

    def __init__(
        self,
        source_width: int,
        source_height: int,
        source_fps: float,
        *,
        bits_per_pixel: float = BITS_PER_PIXEL,
        start_bps: int | None = None,
    ) -> None:
        """``start_bps``: the first video target, which picks the first rung."""
        self.source_width = source_width
        self.source_height = source_height
        self.source_fps = source_fps
        self.ladder = build_ladder(source_width, source_height, source_fps, bits_per_pixel)
        self.level = 0
        self.changes = 0
        self._up_since_ms: float | None = None
        if start_bps is not None:
            fits = START_SHARE * start_bps
            while self.level < len(self.ladder) - 1 and fits < self.ladder[self.level].need_bps:
                self.level += 1

    def update(self, target_bps: int, now_ms: float) -> VideoSettings:
        """The settings for ``target_bps`` (the video share) at ``now_ms``."""
        previous = self.level
        while self.level < len(self.ladder) - 1 and target_bps < self.ladder[self.level].need_bps:
            self.level += 1
        if self.level != previous:
            self._up_since_ms = None
        elif self.level > 0 and target_bps >= UP_MARGIN * self.ladder[self.level - 1].need_bps:
            if self._up_since_ms is None:
                self._up_since_ms = now_ms
            elif now_ms - self._up_since_ms >= UP_HOLD_MS:
                self.level -= 1
                self._up_since_ms = None
        else:
            self._up_since_ms = None
        if self.level != previous:
            self.changes += 1
        rung = self.ladder[self.level]
        return VideoSettings(rung.width, rung.height, rung.fps, max(target_bps, 0))


def split_bitrate(target_bps: int, audio_active: bool) -> tuple[int, int]:
    """Split a transport target into encoder bitrates ``(audio_bps, video_bps)``.

    The target is what may go on the wire; the encoders are given payload rates, so
    the headers of every packet (about 58 bytes: 23 kbit/s for 50 audio packets a
    second) come off first. Video keeps at least 10 kbit/s.
    """
    audio_bps = 0
    audio_wire_bps = 0
    if audio_active:
        audio_bps = AUDIO_LOW_BPS if target_bps < AUDIO_LOW_BELOW_BPS else AUDIO_BPS
        audio_wire_bps = audio_bps + AUDIO_PACKETS_PER_SECOND * PACKET_OVERHEAD_BYTES * 8
    video_wire_bps = target_bps - audio_wire_bps
    payload_share = VIDEO_PACKET_PAYLOAD_BYTES / (
        VIDEO_PACKET_PAYLOAD_BYTES + PACKET_OVERHEAD_BYTES
    )
    return audio_bps, max(int(video_wire_bps * payload_share), MIN_VIDEO_BPS)


KEYFRAME_BUDGET_MS: Final = 300.0


def max_keyframe_bytes(bitrate_bps: int, *, budget_ms: float = KEYFRAME_BUDGET_MS) -> int:
    """The largest keyframe that leaves within ``budget_ms`` at ``bitrate_bps``.

    A keyframe sized for a fast link takes seconds to cross a slow one, and the frames
    behind it wait; capping it to a few hundred ms of the budget keeps latency bounded.
    """
    return max(int(bitrate_bps * budget_ms / 8000), 1)


def max_intra_bitrate_pct(fps: float, *, budget_ms: float = KEYFRAME_BUDGET_MS) -> int:
    """The same cap as libvpx's ``VP8E_SET_MAX_INTRA_BITRATE_PCT`` wants it: a keyframe's
    size in percent of an average frame's (900 % at 30 fps for 300 ms)."""
    return max(int(budget_ms / 1000 * fps * 100), 100)
