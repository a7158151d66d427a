"""A frame number and capture time drawn into a video frame, readable after VP8/H.264.

The stamp is a strip of large black/white cells across the top of the luma plane:
two rows of 40 cells carrying 80 bits = frame number (32) + capture time in
microseconds modulo 2**40 (40, about 12.7 days) + CRC-8 (8). A cell is a whole
number of pixels (width // 40, 16 px at 640x480), far coarser than codec blocks, and
is read from its centre, so compression and scaling by whole factors leave it
readable. The CRC turns a misread into "no stamp" instead of a wrong number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from av import VideoFrame

COLUMNS: Final = 40
ROWS: Final = 2
FRAME_BITS: Final = 32
TIME_BITS: Final = 40
CRC_BITS: Final = 8
TIME_MODULUS: Final = 1 << TIME_BITS
WHITE: Final = 235  # video-range luma
BLACK: Final = 16
MIN_CELL: Final = 2

Luma = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Stamp:
    frame_number: int
    capture_us: int  # microseconds of the wall clock, modulo 2**40

    def age_us(self, now_us: int | None = None) -> int:
        """Microseconds between capture and ``now_us`` (same host, same clock)."""
        now = capture_clock_us() if now_us is None else now_us
        return (now - self.capture_us) % TIME_MODULUS


def capture_clock_us() -> int:
    """The clock stamps are written with: wall time, so another process can read it."""
    return time.time_ns() // 1000 % TIME_MODULUS


def cell_size(width: int) -> int | None:
    """Pixels per cell for a frame ``width`` wide, or None when the stamp does not fit."""
    cell = width // COLUMNS
    return cell if cell >= MIN_CELL else None


def stamp_height(width: int) -> int:
    cell = cell_size(width)
    return 0 if cell is None else ROWS * cell


def _crc8(data: bytes) -> int:
    """CRC-8 (poly 0x07) with a non-zero start and final XOR, so all-black or all-white
    cells (a blank frame) never pass as a stamp."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0x5A


def _payload(frame_number: int, capture_us: int) -> bytes:
    value = ((frame_number % (1 << FRAME_BITS)) << TIME_BITS) | (capture_us % TIME_MODULUS)
    return value.to_bytes((FRAME_BITS + TIME_BITS) // 8, "big")


def _bits(stamp: Stamp) -> npt.NDArray[np.bool_]:
    payload = _payload(stamp.frame_number, stamp.capture_us)
    data = np.frombuffer(payload + bytes([_crc8(payload)]), dtype=np.uint8)
    return np.unpackbits(data).astype(bool)


def write_stamp(luma: Luma, stamp: Stamp) -> None:
    """Draw ``stamp`` into the top rows of a writable luma plane (height x width)."""
    height, width = luma.shape
    cell = cell_size(width)
    if cell is None or height < ROWS * cell:
        return
    cells = np.where(_bits(stamp), WHITE, BLACK).astype(np.uint8).reshape(ROWS, COLUMNS)
    block = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)
    luma[: ROWS * cell, : COLUMNS * cell] = block


def read_stamp(luma: Luma, cell: int | None = None) -> Stamp | None:
    """The stamp at the top-left of ``luma``, or None if there is none (or it is damaged)."""
    height, width = luma.shape[:2]
    cell = cell or cell_size(width)
    if cell is None or height < ROWS * cell or width < COLUMNS * cell:
        return None
    strip = luma[: ROWS * cell, : COLUMNS * cell].reshape(ROWS, cell, COLUMNS, cell)
    margin = cell // 4
    centres = strip[:, margin : cell - margin, :, margin : cell - margin]
    bits = centres.mean(axis=(1, 3)) > (WHITE + BLACK) / 2
    data = np.packbits(bits.reshape(-1)).tobytes()
    payload, crc = data[:-1], data[-1]
    if _crc8(payload) != crc:
        return None
    value = int.from_bytes(payload, "big")
    return Stamp(frame_number=value >> TIME_BITS, capture_us=value & (TIME_MODULUS - 1))


_PLANAR_LUMA_FIRST: Final = frozenset({"yuv420p", "yuvj420p", "nv12", "yuv422p", "yuv444p", "gray"})


def luma_plane(frame: VideoFrame) -> Luma:
    """The Y plane of a video frame (no copy for the planar YUV formats decoders give)."""
    if frame.format.name not in _PLANAR_LUMA_FIRST:
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
    return rows[: plane.height, : plane.width]
