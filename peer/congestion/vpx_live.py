"""VP8 through libvpx itself (ctypes), so the bitrate changes without a restart.

FFmpeg's libvpx wrapper reads the bitrate only when it opens the encoder (setting
``bit_rate`` afterwards changes nothing; checked), so every change of the congestion
controller's target cost a restart and the keyframe it begins with. libvpx itself
takes a new target in place (``vpx_codec_enc_config_set``), as Chromium's WebRTC
does on every rate update; this module drives it directly.

The structures are libvpx's ABI. ``vpx_codec_enc_cfg_t`` and ``vpx_codec_cx_pkt_t``
below are laid out as in ``vpx/vpx_encoder.h``, unchanged from v1.12 to v1.17
(checked by compiling against each tag: config 504 bytes, ``g_w`` at 12,
``g_timebase`` at 28, ``rc_target_bitrate`` at 112, ``kf_max_dist`` at 168, a frame
packet's flags at 40). A library is used only when (1) its version is one whose
``VPX_ENCODER_ABI_VERSION`` is known (``vpx_codec_enc_init_ver`` wants it exactly)
and (2) ``vpx_codec_enc_config_default`` reads back the defaults of
``vp8/vp8_cx_iface.c`` at those offsets. Otherwise it is refused with one line
saying why, and the caller keeps FFmpeg's encoder.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import numpy as np

logger = logging.getLogger(__name__)

# libvpx's version string -> the VPX_ENCODER_ABI_VERSION its headers define.
ENCODER_ABI: Final[Mapping[str, int]] = {
    "v1.12.0": 25,
    "v1.13.0": 30,
    "v1.13.1": 30,
    "v1.14.0": 34,
    "v1.14.1": 34,
    "v1.15.0": 36,
    "v1.15.1": 37,
    "v1.15.2": 37,
    "v1.16.0": 39,
}

# What vp8_cx_iface.c's default configuration holds (usage 0): read back after
# vpx_codec_enc_config_default at the offsets of _EncoderConfig, or the layout is not ours.
VP8_DEFAULTS: Final[Mapping[str, int]] = {
    "g_w": 320,
    "g_h": 240,
    "g_input_bit_depth": 8,
    "g_timebase.num": 1,
    "g_timebase.den": 30,
    "rc_scaled_width": 1,
    "rc_target_bitrate": 256,
    "rc_min_quantizer": 4,
    "rc_max_quantizer": 63,
    "rc_buf_sz": 6000,
    "rc_buf_initial_sz": 4000,
    "rc_buf_optimal_sz": 5000,
    "rc_2pass_vbr_maxsection_pct": 400,
    "kf_mode": 1,  # VPX_KF_AUTO
    "kf_max_dist": 128,
    "ss_number_layers": 1,
    "ts_number_layers": 1,
}

VIDEO_CLOCK: Final = 90_000  # RTP's video clock: pts arrive in 1/90000 s
_CONFIG_SIZE: Final = 504
_VPX_CODEC_OK: Final = 0
_VPX_CBR: Final = 1
_VPX_IMG_FMT_I420: Final = 0x102
_VPX_DL_REALTIME: Final = 1
_VPX_EFLAG_FORCE_KF: Final = 1
_VPX_FRAME_IS_KEY: Final = 0x1
_VPX_CODEC_CX_FRAME_PKT: Final = 0
# enum vp8e_enc_control_id (vpx/vp8cx.h)
_VP8E_SET_CPUUSED: Final = 13
_VP8E_SET_NOISE_SENSITIVITY: Final = 15
_VP8E_SET_STATIC_THRESHOLD: Final = 17
_VP8E_SET_TOKEN_PARTITIONS: Final = 18
_VP8E_SET_MAX_INTRA_BITRATE_PCT: Final = 26


class _Rational(ctypes.Structure):
    _fields_ = [("num", ctypes.c_int), ("den", ctypes.c_int)]


class _FixedBuffer(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("sz", ctypes.c_size_t)]


class _EncoderConfig(ctypes.Structure):
    """vpx_codec_enc_cfg_t up to the spatial/temporal layer fields, the rest opaque."""

    _fields_ = [
        ("g_usage", ctypes.c_uint),
        ("g_threads", ctypes.c_uint),
        ("g_profile", ctypes.c_uint),
        ("g_w", ctypes.c_uint),
        ("g_h", ctypes.c_uint),
        ("g_bit_depth", ctypes.c_int),
        ("g_input_bit_depth", ctypes.c_uint),
        ("g_timebase", _Rational),
        ("g_error_resilient", ctypes.c_uint32),
        ("g_pass", ctypes.c_int),
        ("g_lag_in_frames", ctypes.c_uint),
        ("rc_dropframe_thresh", ctypes.c_uint),
        ("rc_resize_allowed", ctypes.c_uint),
        ("rc_scaled_width", ctypes.c_uint),
        ("rc_scaled_height", ctypes.c_uint),
        ("rc_resize_up_thresh", ctypes.c_uint),
        ("rc_resize_down_thresh", ctypes.c_uint),
        ("rc_end_usage", ctypes.c_int),
        ("rc_twopass_stats_in", _FixedBuffer),
        ("rc_firstpass_mb_stats_in", _FixedBuffer),
        ("rc_target_bitrate", ctypes.c_uint),
        ("rc_min_quantizer", ctypes.c_uint),
        ("rc_max_quantizer", ctypes.c_uint),
        ("rc_undershoot_pct", ctypes.c_uint),
        ("rc_overshoot_pct", ctypes.c_uint),
        ("rc_buf_sz", ctypes.c_uint),
        ("rc_buf_initial_sz", ctypes.c_uint),
        ("rc_buf_optimal_sz", ctypes.c_uint),
        ("rc_2pass_vbr_bias_pct", ctypes.c_uint),
        ("rc_2pass_vbr_minsection_pct", ctypes.c_uint),
        ("rc_2pass_vbr_maxsection_pct", ctypes.c_uint),
        ("rc_2pass_vbr_corpus_complexity", ctypes.c_uint),
        ("kf_mode", ctypes.c_int),
        ("kf_min_dist", ctypes.c_uint),
        ("kf_max_dist", ctypes.c_uint),
        ("ss_number_layers", ctypes.c_uint),
        ("ss_enable_auto_alt_ref", ctypes.c_int * 5),
        ("ss_target_bitrate", ctypes.c_uint * 5),
        ("ts_number_layers", ctypes.c_uint),
        ("_rest", ctypes.c_ubyte * (_CONFIG_SIZE - 220)),
    ]


class _FramePacket(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("sz", ctypes.c_size_t),
        ("pts", ctypes.c_int64),
        ("duration", ctypes.c_ulong),
        ("flags", ctypes.c_uint32),
    ]


class _CxPacket(ctypes.Structure):
    """vpx_codec_cx_pkt_t as far as a frame packet goes (read only, libvpx owns it)."""

    _fields_ = [("kind", ctypes.c_int), ("frame", _FramePacket)]


assert ctypes.sizeof(_EncoderConfig) == _CONFIG_SIZE
assert _EncoderConfig.rc_target_bitrate.offset == 112
assert _EncoderConfig.kf_max_dist.offset == 168
assert _CxPacket.frame.offset + _FramePacket.flags.offset == 40

_CONTEXT_BYTES: Final = 256  # vpx_codec_ctx_t is 56 bytes; opaque to us


class LibvpxRefused(Exception):
    """This libvpx cannot be driven safely; the one-line reason is the message."""


class LibvpxError(RuntimeError):
    """A libvpx call failed on a library that passed the checks."""


@dataclass(frozen=True)
class Libvpx:
    """A loaded libvpx whose encoder ABI was checked."""

    lib: ctypes.CDLL
    path: str
    version: str
    abi: int

    def error(self, call: str, code: int, context: ctypes.Array[ctypes.c_ubyte] | None) -> str:
        text = self.lib.vpx_codec_err_to_string(code)
        detail = self.lib.vpx_codec_error_detail(context) if context is not None else None
        message = f"{call}: {text.decode(errors='replace') if text else code}"
        return message + (f" ({detail.decode(errors='replace')})" if detail else "")


def candidate_paths() -> list[str]:
    """PyAV's own libvpx first (the decoder the tests and FFmpeg use), then the system's."""
    bundled = Path(av.__file__).resolve().parent.parent / "av.libs"
    paths = [str(p) for p in sorted(bundled.glob("libvpx-*.so*"))]
    system = ctypes.util.find_library("vpx")
    return paths + ([system] if system else [])


def load_libvpx(path: str | None = None, expected: Mapping[str, int] = VP8_DEFAULTS) -> Libvpx:
    """The libvpx at ``path`` (default: the first of ``candidate_paths``), checked.

    Raises LibvpxRefused naming what did not match.
    """
    if path is None:
        paths = candidate_paths()
        if not paths:
            raise LibvpxRefused("no libvpx found (neither PyAV's av.libs nor the system's)")
        path = paths[0]
    try:
        lib = ctypes.CDLL(path)
        _declare(lib)
    except (OSError, AttributeError) as exc:
        raise LibvpxRefused(f"cannot load {path}: {exc}") from exc
    raw_version = lib.vpx_codec_version_str()
    version = raw_version.decode(errors="replace") if raw_version else "unknown"
    abi = ENCODER_ABI.get(version)
    if abi is None:
        raise LibvpxRefused(
            f"libvpx {version} ({path}) is not a version whose encoder ABI was checked "
            f"({', '.join(ENCODER_ABI)}); update peer/congestion/vpx_live.py"
        )
    libvpx = Libvpx(lib, path, version, abi)
    config = _EncoderConfig()
    code = lib.vpx_codec_enc_config_default(lib.vpx_codec_vp8_cx(), ctypes.byref(config), 0)
    if code != _VPX_CODEC_OK:
        raise LibvpxRefused(libvpx.error("vpx_codec_enc_config_default", code, None))
    if wrong := [
        f"{name} {_read(config, name)} (expected {value})"
        for name, value in expected.items()
        if _read(config, name) != value
    ]:
        raise LibvpxRefused(
            f"libvpx {version}'s default VP8 configuration does not read back as laid out "
            f"in peer/congestion/vpx_live.py: {', '.join(wrong)}"
        )
    return libvpx


@functools.cache
def shared_libvpx() -> Libvpx | LibvpxRefused:
    """The process's libvpx, loaded and checked once; a refusal is logged once."""
    try:
        libvpx = load_libvpx()
    except LibvpxRefused as exc:
        logger.warning("VP8 bitrate changes will restart the encoder: %s", exc)
        return exc
    logger.debug("libvpx %s (%s) drives VP8 with live bitrate changes", libvpx.version, libvpx.path)
    return libvpx


def _read(config: _EncoderConfig, name: str) -> int:
    value: object = config
    for part in name.split("."):
        value = getattr(value, part)
    assert isinstance(value, int)
    return value


def _declare(lib: ctypes.CDLL) -> None:
    lib.vpx_codec_version_str.restype = ctypes.c_char_p
    lib.vpx_codec_version_str.argtypes = []
    lib.vpx_codec_err_to_string.restype = ctypes.c_char_p
    lib.vpx_codec_err_to_string.argtypes = [ctypes.c_int]
    lib.vpx_codec_error_detail.restype = ctypes.c_char_p
    lib.vpx_codec_error_detail.argtypes = [ctypes.c_void_p]
    lib.vpx_codec_vp8_cx.restype = ctypes.c_void_p
    lib.vpx_codec_vp8_cx.argtypes = []
    lib.vpx_codec_enc_config_default.restype = ctypes.c_int
    lib.vpx_codec_enc_config_default.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint]
    lib.vpx_codec_enc_init_ver.restype = ctypes.c_int
    lib.vpx_codec_enc_init_ver.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_int,
    ]  # fmt: skip
    lib.vpx_codec_enc_config_set.restype = ctypes.c_int
    lib.vpx_codec_enc_config_set.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.vpx_codec_control_.restype = ctypes.c_int  # variadic: arguments passed as c_int
    lib.vpx_codec_encode.restype = ctypes.c_int
    lib.vpx_codec_encode.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_ulong, ctypes.c_long,
        ctypes.c_ulong,
    ]  # fmt: skip
    lib.vpx_codec_get_cx_data.restype = ctypes.POINTER(_CxPacket)
    lib.vpx_codec_get_cx_data.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.vpx_codec_destroy.restype = ctypes.c_int
    lib.vpx_codec_destroy.argtypes = [ctypes.c_void_p]
    lib.vpx_img_wrap.restype = ctypes.c_void_p
    lib.vpx_img_wrap.argtypes = [
        ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
        ctypes.c_void_p,
    ]  # fmt: skip
    lib.vpx_img_set_rect.restype = ctypes.c_int
    lib.vpx_img_set_rect.argtypes = [
        ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
    ]  # fmt: skip
    lib.vpx_img_free.restype = None
    lib.vpx_img_free.argtypes = [ctypes.c_void_p]


@dataclass(frozen=True)
class EncodedFrame:
    data: bytes  # one VP8 frame, as the RTP packetizer takes it; empty: libvpx dropped it
    keyframe: bool


@dataclass(frozen=True)
class Vp8Settings:
    """What today's FFmpeg encoder was opened with (peer/congestion/encoders.py), for libvpx."""

    cpu_used: int = -6
    min_quantizer: int = 2
    max_quantizer: int = 56
    undershoot_pct: int = 100
    overshoot_pct: int = 15
    buffer_ms: int = 1000  # a one-second rate buffer
    keyframe_interval: int = 3000  # keyframes on request, not by the clock
    noise_sensitivity: int = 4
    static_threshold: int = 1
    # Below this fullness of the rate buffer (in %) libvpx skips a frame rather than
    # overshoot: a picture that cannot get smaller at the lowest quality would otherwise
    # be sent anyway (1.5x a 145 kbit/s target measured on ``weak``). Chromium uses 30.
    drop_frame_threshold: int = 30


class LiveVp8Encoder:
    """One libvpx VP8 encoder (CBR, realtime, no lag) whose bitrate changes in place.

    Not thread-safe: ``set_bitrate``, ``set_max_intra_pct`` and ``encode`` belong to
    one thread (aiortc encodes in an executor thread, so the caller hands values over).
    A new frame size opens a new encoder, which begins with a keyframe.
    """

    def __init__(
        self, libvpx: Libvpx, bps: int, max_intra_pct: int = 0, settings: Vp8Settings | None = None
    ) -> None:
        self.libvpx = libvpx
        self.settings = settings or Vp8Settings()
        self.bps = bps
        self.max_intra_pct = max_intra_pct
        self.width = self.height = 0
        self.opens = 0  # encoders initialised (the first, then one per size change)
        self.keyframes = 0
        self.dropped = 0  # frames libvpx skipped to hold the rate
        self._context: ctypes.Array[ctypes.c_ubyte] | None = None
        self._config = _EncoderConfig()
        self._image: int | None = None
        self._raw: np.ndarray | None = None
        self._last_pts: int | None = None
        self._encoder_pts = 0

    # ---- rate --------------------------------------------------------------------------
    def set_bitrate(self, bps: int) -> None:
        """Retarget the running encoder; no restart, no keyframe."""
        self.bps = bps
        if self._context is not None:
            self._config.rc_target_bitrate = _kbps(bps)
            self._check("vpx_codec_enc_config_set", self._lib.vpx_codec_enc_config_set(
                self._context, ctypes.byref(self._config)
            ))  # fmt: skip

    def set_max_intra_pct(self, pct: int) -> None:
        """A keyframe's most, in % of a frame's budget (0: no limit)."""
        self.max_intra_pct = pct
        if self._context is not None:
            self._control(_VP8E_SET_MAX_INTRA_BITRATE_PCT, pct)

    # ---- encoding ----------------------------------------------------------------------
    def encode(
        self, frame: av.VideoFrame, pts: int | None = None, keyframe: bool = False
    ) -> EncodedFrame:
        """Encode one frame (any format; pts in 1/90000 s, default 30 fps steps)."""
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        if (frame.width, frame.height) != (self.width, self.height):
            self._open(frame.width, frame.height)
        # libvpx refuses a pts below its first one: it gets a clock of its own that
        # advances by the frames' spacing (30 fps where that goes backwards or is unknown).
        duration = VIDEO_CLOCK // 30
        if pts is not None and self._last_pts is not None and pts > self._last_pts:
            duration = pts - self._last_pts
        if pts is not None:
            self._last_pts = pts
        self._encoder_pts += duration
        self._fill(frame)
        flags = _VPX_EFLAG_FORCE_KF if keyframe else 0
        self._check("vpx_codec_encode", self._lib.vpx_codec_encode(
            self._context, self._image, self._encoder_pts, duration, flags, _VPX_DL_REALTIME
        ))  # fmt: skip
        chunks, is_key = [], False
        iterator = ctypes.c_void_p()
        while packet := self._lib.vpx_codec_get_cx_data(self._context, ctypes.byref(iterator)):
            if packet.contents.kind == _VPX_CODEC_CX_FRAME_PKT:
                body = packet.contents.frame
                chunks.append(ctypes.string_at(body.buf, body.sz))
                is_key = is_key or bool(body.flags & _VPX_FRAME_IS_KEY)
        self.keyframes += is_key
        self.dropped += not chunks
        return EncodedFrame(b"".join(chunks), is_key)

    def close(self) -> None:
        if self._image is not None:
            self._lib.vpx_img_free(self._image)
            self._image = None
        if self._context is not None:
            self._lib.vpx_codec_destroy(self._context)
            self._context = None
        self.width = self.height = 0

    def __del__(self) -> None:
        self.close()

    # ---- internals ---------------------------------------------------------------------
    @property
    def _lib(self) -> ctypes.CDLL:
        return self.libvpx.lib

    def _open(self, width: int, height: int) -> None:
        self.close()
        lib, s, config = self._lib, self.settings, self._config
        self._check_code(
            "vpx_codec_enc_config_default",
            lib.vpx_codec_enc_config_default(lib.vpx_codec_vp8_cx(), ctypes.byref(config), 0),
        )
        config.g_w, config.g_h = width, height
        config.g_threads = 1 if width * height <= 640 * 480 else 2
        config.g_timebase.num, config.g_timebase.den = 1, VIDEO_CLOCK
        config.g_lag_in_frames = 0
        config.g_error_resilient = 0
        config.rc_dropframe_thresh = s.drop_frame_threshold
        config.rc_end_usage = _VPX_CBR
        config.rc_target_bitrate = _kbps(self.bps)
        config.rc_min_quantizer = s.min_quantizer
        config.rc_max_quantizer = s.max_quantizer
        config.rc_undershoot_pct = s.undershoot_pct
        config.rc_overshoot_pct = s.overshoot_pct
        config.rc_buf_sz = s.buffer_ms
        config.rc_buf_optimal_sz = s.buffer_ms * 5 // 6  # as FFmpeg sets it beside bufsize
        config.kf_max_dist = s.keyframe_interval
        context = (ctypes.c_ubyte * _CONTEXT_BYTES)()
        self._check_code(
            "vpx_codec_enc_init_ver",
            lib.vpx_codec_enc_init_ver(
                context, lib.vpx_codec_vp8_cx(), ctypes.byref(config), 0, self.libvpx.abi
            ),
            context,
        )
        self._context = context
        self.width, self.height = width, height
        self.opens += 1
        self._control(_VP8E_SET_CPUUSED, s.cpu_used)
        self._control(_VP8E_SET_NOISE_SENSITIVITY, s.noise_sensitivity)
        self._control(_VP8E_SET_STATIC_THRESHOLD, s.static_threshold)
        self._control(_VP8E_SET_TOKEN_PARTITIONS, 0)  # one partition
        self._control(_VP8E_SET_MAX_INTRA_BITRATE_PCT, self.max_intra_pct)
        # An even-sized I420 buffer (libvpx's chroma stride is half the luma one), shown
        # at the frame's own size.
        even_w, even_h = width + width % 2, height + height % 2
        self._raw = np.zeros(even_w * even_h * 3 // 2, dtype=np.uint8)
        image = lib.vpx_img_wrap(None, _VPX_IMG_FMT_I420, even_w, even_h, 1, self._raw.ctypes.data)
        if not image or lib.vpx_img_set_rect(image, 0, 0, width, height) != 0:
            if image:
                lib.vpx_img_free(image)
            self.close()
            raise LibvpxError(f"vpx_img_wrap failed for {width}x{height}")
        self._image = image

    def _fill(self, frame: av.VideoFrame) -> None:
        assert self._raw is not None
        even_w, even_h = self.width + self.width % 2, self.height + self.height % 2
        offset = 0
        for index, (plane_w, plane_h) in enumerate(
            ((even_w, even_h), (even_w // 2, even_h // 2), (even_w // 2, even_h // 2))
        ):
            plane = frame.planes[index]
            rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
            used_h, used_w = min(plane_h, rows.shape[0]), min(plane_w, plane.width)
            target = self._raw[offset : offset + plane_w * plane_h].reshape(plane_h, plane_w)
            target[:used_h, :used_w] = rows[:used_h, :used_w]
            offset += plane_w * plane_h

    def _control(self, control: int, value: int) -> None:
        self._check(
            f"vpx_codec_control_({control})",
            self._lib.vpx_codec_control_(self._context, ctypes.c_int(control), ctypes.c_int(value)),
        )

    def _check(self, call: str, code: int) -> None:
        self._check_code(call, code, self._context)

    def _check_code(
        self, call: str, code: int, context: ctypes.Array[ctypes.c_ubyte] | None = None
    ) -> None:
        if code != _VPX_CODEC_OK:
            raise LibvpxError(self.libvpx.error(call, code, context))


def _kbps(bps: int) -> int:
    return max(1, round(bps / 1000))
