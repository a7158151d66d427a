"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01).

The receiver of a media stream reports, for every packet carrying a transport-wide
sequence number, whether it arrived and when. The sender's estimator turns those
arrival times into its delay- and loss-based estimates.

Wire format (RTCP transport-layer feedback, PT=205, FMT=15)::

    |V=2|P| FMT=15 | PT=205 | length (32-bit words - 1)   |
    | sender SSRC                                         |
    | media source SSRC                                   |
    | base sequence number    | packet status count       |
    | reference time (24 bits, 64 ms) | feedback count    |
    | packet chunks (2 bytes each) ...                    |
    | receive deltas (1 or 2 bytes each, 250 µs) ...      |
    | padding (the last byte counts it when P is set)     |

A chunk is either a run (``0 SS LLLLLLLLLLLLL``: one status repeated L times) or a
status vector (``1 0`` + 14 one-bit statuses, or ``1 1`` + 7 two-bit statuses).
Statuses: 0 not received, 1 received with a 1-byte delta (0..63.75 ms), 2 received with
a 2-byte signed delta; 3 is reserved. Deltas are from the previous received packet's
arrival, the first from the reference time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

TWCC_URI: Final = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

RTCP_VERSION: Final = 2
RTPFB_PACKET_TYPE: Final = 205
TWCC_FMT: Final = 15
SEQUENCE_MODULO: Final = 1 << 16
DELTA_TICK_US: Final = 250
REFERENCE_TICK_US: Final = 64_000
REFERENCE_MODULO: Final = 1 << 24
REFERENCE_WRAP_US: Final = REFERENCE_MODULO * REFERENCE_TICK_US
MAX_FEEDBACK_BYTES: Final = 1200

NOT_RECEIVED: Final = 0
SMALL_DELTA: Final = 1
LARGE_DELTA: Final = 2
_RESERVED_STATUS: Final = 3

# V/P/FMT, PT, length, sender SSRC, media SSRC, base sequence, status count, and the
# 24-bit reference time with the 8-bit feedback count read as one word.
_HEADER: Final = struct.Struct("!BBHIIHHI")
_HEADER_BYTES: Final = _HEADER.size  # 20
_MAX_STATUSES: Final = SEQUENCE_MODULO - 1  # the 16-bit packet status count
_MAX_RUN: Final = (1 << 13) - 1
_ONE_BIT_CAPACITY: Final = 14
_TWO_BIT_CAPACITY: Final = 7
_SMALL_DELTA_MAX: Final = 0xFF
_LARGE_DELTA_MIN: Final = -(1 << 15)
_LARGE_DELTA_MAX: Final = (1 << 15) - 1


@dataclass(frozen=True)
class TransportFeedback:
    """One feedback packet.

    ``packets`` holds ``(16-bit transport sequence, arrival time in µs or None)``
    in sequence order from ``base_sequence``; arrival times are relative to an
    origin that stays the same within one feedback stream (the reference time
    wraps after 2^24 x 64 ms, about 12 days: the estimator unwraps it).
    """

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    feedback_count: int
    reference_time_us: int
    packets: tuple[tuple[int, int | None], ...]


def parse_feedback(data: bytes) -> TransportFeedback:
    """Parse one whole RTCP transport-wide feedback packet; ``ValueError`` when malformed."""
    if len(data) < _HEADER_BYTES:
        raise ValueError(f"transport feedback too short: {len(data)} bytes, need {_HEADER_BYTES}")
    fields = _HEADER.unpack_from(data)
    first, packet_type, length_words, sender_ssrc, media_ssrc = fields[:5]
    base_sequence, status_count, reference_and_count = fields[5:]
    if first >> 6 != RTCP_VERSION:
        raise ValueError(f"RTCP version {first >> 6}, expected {RTCP_VERSION}")
    if packet_type != RTPFB_PACKET_TYPE or first & 0x1F != TWCC_FMT:
        raise ValueError(
            f"not transport-wide feedback: PT={packet_type} FMT={first & 0x1F}, "
            f"expected PT={RTPFB_PACKET_TYPE} FMT={TWCC_FMT}"
        )
    declared = (length_words + 1) * 4
    if declared != len(data):
        raise ValueError(f"RTCP length field says {declared} bytes, packet has {len(data)}")
    end = len(data)
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or padding > end - _HEADER_BYTES:
            raise ValueError(f"invalid RTCP padding count {padding}")
        end -= padding
    if status_count == 0:
        raise ValueError("transport feedback reports no packets")
    reference_ticks = reference_and_count >> 8
    feedback_count = reference_and_count & 0xFF

    statuses: list[int] = []
    offset = _HEADER_BYTES
    while len(statuses) < status_count:
        if offset + 2 > end:
            raise ValueError(
                f"transport feedback truncated: {len(statuses)} of {status_count} "
                "packet statuses present"
            )
        (chunk,) = struct.unpack_from("!H", data, offset)
        offset += 2
        remaining = status_count - len(statuses)
        statuses.extend(_decode_chunk(chunk, remaining))

    arrivals: list[tuple[int, int | None]] = []
    time_us = reference_ticks * REFERENCE_TICK_US
    for index, status in enumerate(statuses):
        sequence = (base_sequence + index) % SEQUENCE_MODULO
        if status == NOT_RECEIVED:
            arrivals.append((sequence, None))
            continue
        size = 1 if status == SMALL_DELTA else 2
        if offset + size > end:
            raise ValueError(
                f"transport feedback truncated: receive delta of packet {sequence} missing"
            )
        if size == 1:
            ticks = data[offset]
        else:
            (ticks,) = struct.unpack_from("!h", data, offset)
        offset += size
        time_us += ticks * DELTA_TICK_US
        arrivals.append((sequence, time_us))
    if end - offset > 3:
        raise ValueError(f"transport feedback has {end - offset} unexplained trailing bytes")
    return TransportFeedback(
        sender_ssrc=sender_ssrc,
        media_ssrc=media_ssrc,
        base_sequence=base_sequence,
        feedback_count=feedback_count,
        reference_time_us=reference_ticks * REFERENCE_TICK_US,
        packets=tuple(arrivals),
    )


def _decode_chunk(chunk: int, remaining: int) -> list[int]:
    """The statuses of one chunk, at most ``remaining`` of them (the last chunk may pad)."""
    if not chunk & 0x8000:
        status = (chunk >> 13) & 0x3
        if status == _RESERVED_STATUS:
            raise ValueError("run-length chunk with the reserved status 3")
        return [status] * min(chunk & _MAX_RUN, remaining)
    if chunk & 0x4000:
        statuses = [(chunk >> shift) & 0x3 for shift in range(12, -1, -2)]
        if _RESERVED_STATUS in statuses[:remaining]:
            raise ValueError("status vector chunk with the reserved status 3")
    else:
        statuses = [(chunk >> shift) & 0x1 for shift in range(13, -1, -1)]
    return statuses[:remaining]


def serialize_feedback(fb: TransportFeedback) -> bytes:
    """Build one whole RTCP packet (padded to 32 bits, P bit set) for ``fb``.

    Arrival times are rounded to the 250 µs tick and the reference time down to its
    64 ms tick; a delta beyond ±8.19 s or more than 65535 statuses raise ``ValueError``
    (:class:`FeedbackRecorder` splits its packets so neither happens).
    """
    if not fb.packets:
        raise ValueError("transport feedback must report at least one packet")
    if len(fb.packets) > _MAX_STATUSES:
        raise ValueError(f"transport feedback reports {len(fb.packets)} packets, at most 65535")
    for index, (sequence, _) in enumerate(fb.packets):
        if sequence != (fb.base_sequence + index) % SEQUENCE_MODULO:
            raise ValueError(
                f"packet {index} has sequence {sequence}, expected "
                f"{(fb.base_sequence + index) % SEQUENCE_MODULO} (consecutive from the base)"
            )
    reference_ticks = fb.reference_time_us // REFERENCE_TICK_US
    previous_ticks = reference_ticks * (REFERENCE_TICK_US // DELTA_TICK_US)
    encoder = _ChunkEncoder()
    deltas = bytearray()
    for sequence, arrival_us in fb.packets:
        if arrival_us is None:
            encoder.add(NOT_RECEIVED)
            continue
        ticks = _round_div(arrival_us, DELTA_TICK_US)
        delta = ticks - previous_ticks
        previous_ticks = ticks
        if 0 <= delta <= _SMALL_DELTA_MAX:
            encoder.add(SMALL_DELTA)
            deltas.append(delta)
        elif _LARGE_DELTA_MIN <= delta <= _LARGE_DELTA_MAX:
            encoder.add(LARGE_DELTA)
            deltas += struct.pack("!h", delta)
        else:
            raise ValueError(f"receive delta of packet {sequence} ({delta * 250} µs) overflows")
    body = b"".join(struct.pack("!H", chunk) for chunk in encoder.finish()) + bytes(deltas)
    size = _HEADER_BYTES + len(body)
    padding = -size % 4
    first = (RTCP_VERSION << 6) | TWCC_FMT | (0x20 if padding else 0)
    header = _HEADER.pack(
        first,
        RTPFB_PACKET_TYPE,
        (size + padding) // 4 - 1,
        fb.sender_ssrc,
        fb.media_ssrc,
        fb.base_sequence,
        len(fb.packets),
        ((reference_ticks % REFERENCE_MODULO) << 8) | (fb.feedback_count & 0xFF),
    )
    pad = bytes(padding - 1) + bytes([padding]) if padding else b""
    return header + body + pad


def _round_div(value: int, divisor: int) -> int:
    return (value + divisor // 2) // divisor


class _ChunkEncoder:
    """Packs statuses into the fewest chunks a greedy pass finds, as Chromium does.

    Statuses wait in ``pending``; when the next one does not fit, the pending ones
    leave as a run (all equal), a one-bit vector (14 without a large delta) or a
    two-bit vector of the first 7 (the rest keep waiting). A long run is kept as its
    status and length only, so memory stays bounded whatever the input.
    """

    def __init__(self) -> None:
        self.chunks: list[int] = []
        self.pending: list[int] = []  # at most 14 statuses; beyond that a run
        self.run_length = 0  # how many statuses wait (may exceed len(pending))
        self.all_same = True
        self.has_large = False

    def chunk_count_after(self, status: int) -> int:
        """How many chunks there would be once ``status`` is added."""
        if not self.run_length:
            return len(self.chunks) + 1
        return len(self.chunks) + (1 if self._fits(status) else 2)

    def add(self, status: int) -> None:
        if self.run_length and not self._fits(status):
            self._emit()
        if self.run_length and status != self.pending[0]:
            self.all_same = False
        if self.run_length < _ONE_BIT_CAPACITY:
            self.pending.append(status)
        self.run_length += 1
        self.has_large = self.has_large or status == LARGE_DELTA

    def finish(self) -> list[int]:
        if self.run_length:
            if self.all_same:
                self.chunks.append(_run_chunk(self.pending[0], self.run_length))
            elif self.run_length <= _TWO_BIT_CAPACITY:
                self.chunks.append(_two_bit_chunk(self.pending))
            else:
                self.chunks.append(_one_bit_chunk(self.pending))
            self._reset([])
        return self.chunks

    def _fits(self, status: int) -> bool:
        size = self.run_length
        if size < _TWO_BIT_CAPACITY:
            return True
        if size < _ONE_BIT_CAPACITY and not self.has_large and status != LARGE_DELTA:
            return True
        return size < _MAX_RUN and self.all_same and status == self.pending[0]

    def _emit(self) -> None:
        if self.all_same:
            self.chunks.append(_run_chunk(self.pending[0], self.run_length))
            self._reset([])
        elif self.run_length == _ONE_BIT_CAPACITY and not self.has_large:
            self.chunks.append(_one_bit_chunk(self.pending))
            self._reset([])
        else:
            self.chunks.append(_two_bit_chunk(self.pending[:_TWO_BIT_CAPACITY]))
            self._reset(self.pending[_TWO_BIT_CAPACITY:])

    def _reset(self, pending: list[int]) -> None:
        self.pending = pending
        self.run_length = len(pending)
        self.all_same = all(s == pending[0] for s in pending) if pending else True
        self.has_large = LARGE_DELTA in pending


def _run_chunk(status: int, length: int) -> int:
    return (status << 13) | length


def _one_bit_chunk(statuses: list[int]) -> int:
    chunk = 0x8000
    for index, status in enumerate(statuses):
        chunk |= status << (13 - index)
    return chunk


def _two_bit_chunk(statuses: list[int]) -> int:
    chunk = 0xC000
    for index, status in enumerate(statuses):
        chunk |= status << (12 - 2 * index)
    return chunk


class FeedbackRecorder:
    """Receive side: record transport-wide sequence numbers and arrivals, build feedback.

    Sequence numbers are unwrapped against the highest one seen. Each :meth:`build`
    reports every sequence from the first not yet reported to the highest received,
    so a packet reported lost stays lost (a late arrival of it is ignored, as
    Chromium's receiver does). A hostile peer's jumps cannot grow memory: at most
    ``max_pending`` sequences wait to be reported; older ones are dropped unreported.
    """

    def __init__(self, sender_ssrc: int, *, max_pending: int = 8192) -> None:
        self.sender_ssrc = sender_ssrc
        self.max_pending = max_pending
        self.media_ssrc = 0
        self.packets_recorded = 0
        self.packets_dropped = 0  # late, duplicate, or pushed out by a jump
        self._arrivals: dict[int, int] = {}  # unwrapped sequence -> arrival µs from origin
        self._next_unreported: int | None = None
        self._highest: int | None = None
        self._origin_us: int | None = None
        self._feedback_count = 0

    def on_packet(self, media_ssrc: int, sequence: int, arrival_us: int) -> None:
        """Record one arrival (16-bit sequence; wrap, duplicates, reordering handled)."""
        if not 0 <= sequence < SEQUENCE_MODULO:
            raise ValueError(f"transport sequence {sequence} is not a 16-bit number")
        self.media_ssrc = media_ssrc
        if self._origin_us is None:
            # Arrival times leave relative to the first packet, so the 24-bit
            # reference time starts at zero whatever clock the caller uses.
            self._origin_us = arrival_us - arrival_us % REFERENCE_TICK_US
        if self._highest is None or self._next_unreported is None:
            self._highest = sequence
            self._next_unreported = sequence
            unwrapped = sequence
        else:
            step = (sequence - self._highest) % SEQUENCE_MODULO
            if step >= SEQUENCE_MODULO // 2:
                step -= SEQUENCE_MODULO
            unwrapped = self._highest + step
        if unwrapped < self._next_unreported or unwrapped in self._arrivals:
            self.packets_dropped += 1
            return
        self._arrivals[unwrapped] = arrival_us - self._origin_us
        self.packets_recorded += 1
        if unwrapped > self._highest:
            self._highest = unwrapped
        oldest_kept = self._highest - self.max_pending + 1
        if self._next_unreported < oldest_kept:
            for stale in [s for s in self._arrivals if s < oldest_kept]:
                del self._arrivals[stale]
                self.packets_dropped += 1
            self._next_unreported = oldest_kept

    def build(self, now_us: int) -> list[bytes]:
        """The feedback packets due now: everything recorded since the last build.

        Each packet stays under 1200 bytes and every receive delta fits its 16 bits;
        an empty list when nothing arrived since the last build.
        """
        del now_us  # the caller decides when feedback is due; kept for the contract
        if not self._arrivals or self._next_unreported is None or self._highest is None:
            return []
        packets: list[bytes] = []
        sequence = self._next_unreported
        while sequence <= self._highest:
            sequence, feedback = self._next_feedback(sequence)
            packets.append(serialize_feedback(feedback))
        self._next_unreported = self._highest + 1
        self._arrivals.clear()
        return packets

    def _next_feedback(self, start: int) -> tuple[int, TransportFeedback]:
        """One packet's worth from ``start``: (the first sequence left over, the feedback)."""
        highest = self._highest
        assert highest is not None
        first_arrival = next(
            self._arrivals[s] for s in range(start, highest + 1) if s in self._arrivals
        )
        reference_ticks = first_arrival // REFERENCE_TICK_US
        previous_ticks = reference_ticks * (REFERENCE_TICK_US // DELTA_TICK_US)
        encoder = _ChunkEncoder()
        delta_bytes = 0
        entries: list[tuple[int, int | None]] = []
        sequence = start
        while sequence <= highest and len(entries) < _MAX_STATUSES:
            arrival = self._arrivals.get(sequence)
            if arrival is None:
                status, size, ticks = NOT_RECEIVED, 0, previous_ticks
            else:
                ticks = _round_div(arrival, DELTA_TICK_US)
                delta = ticks - previous_ticks
                if 0 <= delta <= _SMALL_DELTA_MAX:
                    status, size = SMALL_DELTA, 1
                elif _LARGE_DELTA_MIN <= delta <= _LARGE_DELTA_MAX:
                    status, size = LARGE_DELTA, 2
                else:
                    break  # a new packet with its own reference time carries it
            chunks = encoder.chunk_count_after(status)
            projected = _HEADER_BYTES + 2 * chunks + delta_bytes + size + 3
            if entries and projected >= MAX_FEEDBACK_BYTES:
                break
            encoder.add(status)
            delta_bytes += size
            previous_ticks = ticks
            entries.append((sequence % SEQUENCE_MODULO, arrival))
            sequence += 1
        feedback = TransportFeedback(
            sender_ssrc=self.sender_ssrc,
            media_ssrc=self.media_ssrc,
            base_sequence=start % SEQUENCE_MODULO,
            feedback_count=self._feedback_count,
            reference_time_us=reference_ticks * REFERENCE_TICK_US,
            packets=tuple(entries),
        )
        self._feedback_count = (self._feedback_count + 1) % 256
        return sequence, feedback
