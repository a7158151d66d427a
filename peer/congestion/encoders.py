"""Encoders whose bitrate the congestion controller sets, in place of aiortc's.

aiortc's encoders clamp their target (VP8 250 kbit/s - 1.5 Mbit/s, H.264 0.5-3 Mbit/s,
Opus fixed at 96 kbit/s) and take every REMB value as their target. Neither libvpx,
libx264 nor libopus as FFmpeg drives them takes a new bitrate without a restart, and a
restarted video encoder begins with a keyframe. VP8 therefore goes through libvpx
itself where the library passes the checks of peer/congestion/vpx_live.py: its bitrate follows
the controller's target at once, without a restart. Elsewhere (and for H.264) the
committed bitrate follows the target with hysteresis (down quickly, up slowly).
Keyframes are held to 300 ms of the budget either way (libvpx's max-intra-rate; for
H.264, x264's VBV buffer of 300 ms at the target), so one crosses the link quickly.
"""

from __future__ import annotations

import fractions
import logging
import time
from collections.abc import Iterator
from typing import Final

import av
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import SAMPLES_PER_FRAME, OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import VIDEO_TIME_BASE, convert_timebase
from av.frame import Frame

from peer.congestion.adaptation import max_intra_bitrate_pct
from peer.congestion.vpx_live import (
    Libvpx,
    LibvpxError,
    LibvpxRefused,
    LiveVp8Encoder,
    shared_libvpx,
)

logger = logging.getLogger(__name__)

MIN_VIDEO_BPS: Final = 30_000
DOWN_BELOW: Final = 0.85  # a lower target is committed once it is this far below...
DIP_HOLD_S: Final = 1.0  # ...and has stayed there this long (a dip that recovers costs nothing)
SQUEEZED_BELOW: Final = 0.6  # this far below is a real squeeze: committed at once
UP_ABOVE: Final = 1.15
RISE_HOLD_S: Final = 1.0  # a higher target is committed once it has lasted this long
DOWN_HOLD_S: Final = 0.5  # each restart costs a keyframe: not more often than this
UP_HOLD_S: Final = 2.0
KEYFRAME_BUDGET_MS: Final = 300.0
H264_REOPEN_CHANGE: Final = 0.1  # aiortc reopens libx264 on a bitrate change over 10 %
H264_MAX_FRAME_RATE: Final = 30  # aiortc's
# A live encoder spends what it is given (89 % of the target measured on ``weak``, where
# FFmpeg's restarting one spends 77-81 %): it gets this share of the video target, the
# rest left for retransmissions and the keyframes that answer losses (libwebrtc's
# protection bitrate, here a fixed share).
LIVE_SHARE: Final = 0.85


class CommittedBitrate:
    """The bitrate an encoder runs at: follows ``request`` with hysteresis.

    Every committed change restarts the encoder, and the keyframe it begins with is a
    burst the delay detector reads as a queue: measured on the ``dsl`` lab link, every
    restart was followed by an overuse within a second or two, the overuse by a cut,
    the cut by another restart (12 restarts, 24 cuts in 25 s, the estimate between 420
    and 840 kbit/s of a 1 Mbit/s link). So a mild dip (to 60-85 %) is committed only
    once it has lasted ``DIP_HOLD_S``; a deeper one at once. Likewise a rise is
    committed only once it has lasted ``RISE_HOLD_S``, at the lowest it was meanwhile:
    on ``weak`` one-sample peaks of the estimate made 12 restarts in 25 s, and the
    seconds after them were where the picture froze.
    """

    def __init__(self, bps: int) -> None:
        self.bps = bps
        self.requested = bps
        self.restarts = 0
        self._changed_at = -1e9
        self._dip_since: float | None = None
        self._rise_since: float | None = None
        self._rise_floor = 0

    def request(self, bps: int, now: float) -> bool:
        """Ask for ``bps``; True when the committed value changed."""
        self.requested = bps
        since = now - self._changed_at
        if bps < self.bps * DOWN_BELOW:
            if self._dip_since is None:
                self._dip_since = now
        else:
            self._dip_since = None
        if bps > self.bps * UP_ABOVE:
            if self._rise_since is None:
                self._rise_since, self._rise_floor = now, bps
            self._rise_floor = min(self._rise_floor, bps)
        else:
            self._rise_since = None
        dipped_long = self._dip_since is not None and now - self._dip_since >= DIP_HOLD_S
        down = bps < self.bps * SQUEEZED_BELOW or dipped_long
        risen = self._rise_since is not None and now - self._rise_since >= RISE_HOLD_S
        if down and since >= DOWN_HOLD_S:
            self._commit(bps, now)
            return True
        if risen and since >= UP_HOLD_S:
            self._commit(min(self._rise_floor, 2 * self.bps), now)
            return True
        return False

    def _commit(self, bps: int, now: float) -> None:
        self.bps = bps
        self._changed_at = now
        self._dip_since = self._rise_since = None
        self.restarts += 1


class LiveBitrate:
    """The bitrate of an encoder that takes a new one in place: the request, at once.

    No hysteresis: a change costs no restart and no keyframe. (Following a rise only at
    the lowest target of the last second was tried: on ``step`` it left 800 kbit/s sent
    10 s after the step up instead of 1.0-1.4 Mbit/s, and on ``weak`` the freezes were
    within the run-to-run spread.)
    """

    def __init__(self, bps: int) -> None:
        self.bps = bps
        self.requested = bps
        self.restarts = 0  # new encoders after the first (a new frame size)

    def request(self, bps: int, now: float) -> bool:
        changed = bps != self.bps
        self.bps = self.requested = bps
        return changed


class TargetFromController:
    """``target_bitrate`` as the controller set it. aiortc's sender writes every REMB
    value there; the congestion controller decides instead, so those writes are dropped."""

    bitrate: LiveBitrate | CommittedBitrate

    @property
    def target_bitrate(self) -> int:
        return self.bitrate.bps

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        pass


class ControlledVp8Encoder(TargetFromController, Vp8Encoder):
    """VP8 at the controller's bitrate: libvpx retargeted in place where it can be,
    else FFmpeg's libvpx restarted on each committed change."""

    def __init__(self, start_bps: int, libvpx: Libvpx | LibvpxRefused | None = None) -> None:
        super().__init__()
        self.fps = 30.0
        self.keyframes = 0
        self.dropped = 0  # frames the live encoder skipped to hold its rate
        loaded = shared_libvpx() if libvpx is None else libvpx
        self.live: LiveVp8Encoder | None = None
        if isinstance(loaded, Libvpx):
            self.live = LiveVp8Encoder(loaded, start_bps, max_intra_bitrate_pct(self.fps))
            self.bitrate = LiveBitrate(start_bps)
        else:
            self.bitrate = CommittedBitrate(start_bps)

    def set_target(self, bps: int, fps: float, protection_bps: int | None = None) -> None:
        """``protection_bps``: what the live encoder leaves for retransmissions and
        keyframes (``peer/congestion/protection.py``); None: ``LIVE_SHARE`` of ``bps``."""
        # Called on the event loop; encode() runs in aiortc's executor thread and hands
        # the value to libvpx there (one thread per libvpx context).
        self.fps = fps
        if self.live is None:
            encoder_bps = bps  # FFmpeg's restarting encoder spends 77-81 % unasked
        elif protection_bps is None:
            encoder_bps = round(bps * LIVE_SHARE)
        else:
            encoder_bps = bps - protection_bps
        self.bitrate.request(max(MIN_VIDEO_BPS, encoder_bps), time.monotonic())

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, av.VideoFrame)
        assert frame.pts is not None and frame.time_base is not None
        timestamp = convert_timebase(frame.pts, frame.time_base, VIDEO_TIME_BASE)
        data = None
        if self.live is not None:
            try:
                data = self._encode_live(self.live, frame, timestamp, force_keyframe)
            except LibvpxError as exc:
                logger.warning("libvpx failed (%s): VP8 bitrate changes now restart it", exc)
                self.live.close()
                self.live = None
                self.bitrate = CommittedBitrate(self.bitrate.bps)
        if data is None:
            data = self._encode_restarting(frame, force_keyframe)
        if not data:
            return [], timestamp  # a dropped frame: nothing sent, no picture id used
        payloads = self._packetize(data, self.picture_id)
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        return payloads, timestamp

    def _encode_live(
        self, live: LiveVp8Encoder, frame: av.VideoFrame, timestamp: int, keyframe: bool
    ) -> bytes:
        if live.bps != self.bitrate.bps:
            live.set_bitrate(self.bitrate.bps)
        intra_pct = max_intra_bitrate_pct(self.fps)
        if live.max_intra_pct != intra_pct:
            live.set_max_intra_pct(intra_pct)
        opened = live.opens
        encoded = live.encode(frame, timestamp, keyframe)
        if opened and live.opens > opened:
            self.bitrate.restarts += 1
        self.keyframes += encoded.keyframe
        self.dropped += not encoded.data
        return encoded.data

    def _encode_restarting(self, frame: av.VideoFrame, force_keyframe: bool) -> bytes:
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        bps = self.bitrate.bps
        if self.codec is not None and (
            frame.width != self.codec.width
            or frame.height != self.codec.height
            or self.codec.bit_rate != bps
        ):
            self.codec = None
        if force_keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        if self.codec is None:
            self.codec = self._open(frame.width, frame.height, bps)
        packets = self.codec.encode(frame)
        self.keyframes += sum(1 for packet in packets if packet.is_keyframe)
        return b"".join(bytes(packet) for packet in packets)

    def _open(self, width: int, height: int, bps: int) -> av.video.codeccontext.VideoCodecContext:
        codec = av.CodecContext.create("libvpx", "w")
        assert isinstance(codec, av.video.codeccontext.VideoCodecContext)
        codec.width = width
        codec.height = height
        codec.bit_rate = bps
        codec.pix_fmt = "yuv420p"
        codec.time_base = VIDEO_TIME_BASE
        codec.framerate = fractions.Fraction(round(self.fps * 1000), 1000)
        codec.gop_size = 3000
        codec.qmin = 2
        codec.qmax = 56
        codec.options = {
            "bufsize": str(bps),  # a one-second rate buffer
            "cpu-used": "-6",
            "deadline": "realtime",
            "lag-in-frames": "0",
            "minrate": str(bps),
            "maxrate": str(bps),
            "max-intra-rate": str(max_intra_bitrate_pct(self.fps)),
            "noise-sensitivity": "4",
            "overshoot-pct": "15",
            "partitions": "0",
            "static-thresh": "1",
            "undershoot-pct": "100",
        }
        codec.thread_count = 1 if width * height <= 640 * 480 else 2
        return codec


class ControlledH264Encoder(TargetFromController, H264Encoder):
    """aiortc's H.264 encoder, its bitrate set by the controller instead of clamped.

    aiortc opens libx264 with average-bitrate control only, so a keyframe may be many
    times a frame's budget. Here the encoder is opened with a VBV buffer of
    ``KEYFRAME_BUDGET_MS`` at the target (``vbv-maxrate`` = the target): no frame,
    keyframes included, is bigger than 300 ms of the budget. aiortc keeps the codec it
    finds in ``self.codec`` while size and bitrate still match (checked by
    ``peer/stack/rtp_hooks.py``'s seam), so this opens it first with the same settings plus
    the buffer.
    """

    def __init__(self, start_bps: int) -> None:
        super().__init__()
        self.bitrate = CommittedBitrate(start_bps)

    def set_target(self, bps: int, fps: float, protection_bps: int | None = None) -> None:
        del protection_bps  # like FFmpeg's VP8, libx264 restarted spends less than asked
        self.bitrate.request(max(MIN_VIDEO_BPS, bps), time.monotonic())

    def _encode_frame(self, frame: av.VideoFrame, force_keyframe: bool) -> Iterator[bytes]:
        codec = self.codec
        stale = (
            codec is None
            or not codec.bit_rate
            or frame.width != codec.width
            or frame.height != codec.height
            or abs(self.target_bitrate - codec.bit_rate) / codec.bit_rate > H264_REOPEN_CHANGE
        )
        if stale:
            self.buffer_data = b""
            self.buffer_pts = None
            self.codec = _open_h264(frame.width, frame.height, self.target_bitrate)
        return super()._encode_frame(frame, force_keyframe)


def _open_h264(width: int, height: int, bps: int) -> av.video.codeccontext.VideoCodecContext:
    """libx264 as aiortc opens it, plus a VBV buffer that caps every frame's size."""
    codec = av.CodecContext.create("libx264", "w")
    assert isinstance(codec, av.video.codeccontext.VideoCodecContext)
    codec.width = width
    codec.height = height
    codec.bit_rate = bps
    codec.pix_fmt = "yuv420p"
    codec.framerate = fractions.Fraction(H264_MAX_FRAME_RATE, 1)
    codec.time_base = fractions.Fraction(1, H264_MAX_FRAME_RATE)
    kbps = max(bps // 1000, 1)
    buffer_kbit = max(round(kbps * KEYFRAME_BUDGET_MS / 1000), 1)
    codec.options = {
        "level": "31",
        "tune": "zerolatency",
        "x264-params": f"vbv-maxrate={kbps}:vbv-bufsize={buffer_kbit}",
    }
    codec.profile = "Baseline"
    return codec


class ControlledOpusEncoder(OpusEncoder):
    """aiortc's Opus encoder at the controller's audio bitrate instead of 96 kbit/s."""

    def __init__(self, start_bps: int) -> None:
        super().__init__()
        self.codec.bit_rate = start_bps
        self.bitrate = CommittedBitrate(start_bps)
        self._offset = 0
        self._last_timestamp = -SAMPLES_PER_FRAME

    def set_target(self, bps: int) -> None:
        self.bitrate.request(bps, time.monotonic())

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        # aiortc encodes in an executor thread: the codec is swapped here, not in set_target.
        if self.codec.bit_rate != self.bitrate.bps:
            self._reopen(self.bitrate.bps)
        payloads, timestamp = super().encode(frame, force_keyframe)
        if payloads:
            timestamp += self._offset
            self._last_timestamp = timestamp
        return payloads, timestamp

    def _reopen(self, bps: int) -> None:
        # A new libopus starts its timestamps over: keep ours running on.
        options = dict(self.codec.options)
        self.codec = av.CodecContext.create("libopus", "w")
        self.codec.bit_rate = bps
        self.codec.format = "s16"
        self.codec.layout = "stereo"
        self.codec.options = options
        self.codec.sample_rate = 48000
        self.codec.time_base = fractions.Fraction(1, 48000)
        self.first_packet_pts = None
        self._offset = self._last_timestamp + SAMPLES_PER_FRAME
