"""The video receive path (``--receive-path``): a frame goes to the decoder once complete.

aiortc's ``JitterBuffer`` releases a video frame only when the first packet of the
*next* frame arrives, which adds one whole frame interval (33 ms at 30 fps) to every
frame. :class:`FrameCompletionBuffer` releases a frame as soon as it holds every packet
from the frame's first to its marker-bit packet. It keeps what the stock buffer does
for a live call and adds what it lacks:

- packets may arrive in any order and be duplicated; frames still leave in order;
- a lost packet holds the frames behind it back while a retransmission (NACK) can
  still fill the gap; after ``stall_limit`` seconds of media it gives up, drops
  the damaged frames, asks for a keyframe (PLI) and releases nothing but a keyframe
  next, so the decoder never sees a frame whose references are missing;
- a complete keyframe behind a gap ends the wait at once;
- sequence numbers and RTP timestamps wrap around.

The buffer is sans-I/O: packets in, ``(send_pli, frame or None)`` out, the same
contract as aiortc's buffer, which is what lets :func:`use_frame_completion` put it in
place of the stock one inside an aiortc ``RTCRtpReceiver``. That seam is private to
aiortc, so :data:`SEAM` verifies it and refuses, naming ``--receive-path stock``,
when it moves.
"""

from __future__ import annotations

import logging
import queue
from collections import deque
from dataclasses import dataclass
from typing import Final

from aiortc import RTCPeerConnection, RTCRtpCodecParameters, RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import TimestampMapper
from aiortc.rtp import RtpPacket

from peer.stack.seam import Lines, Seam, StackChanged, Undo, replace

logger = logging.getLogger(__name__)

RECEIVE_PATHS: Final = ("fast", "stock")

SEQUENCE_MODULO: Final = 1 << 16
TIMESTAMP_MODULO: Final = 1 << 32
VIDEO_CLOCK_RATE: Final = 90_000  # RTP clock of every video codec WebRTC negotiates
MIN_STALL_LIMIT_S: Final = 0.25
MAX_STALL_LIMIT_S: Final = 0.6
STALL_MARGIN_S: Final = 0.1
MAX_MISORDER: Final = 100  # older than this: the sender restarted, not a late packet
_RECEIVER_PRIVATE: Final = "_RTCRtpReceiver__"

_VP8_KEYFRAME_START_CODE: Final = b"\x9d\x01\x2a"
_H264_START_CODE: Final = b"\x00\x00\x01"
_H264_KEYFRAME_NAL_TYPES: Final = frozenset({5, 7})  # IDR slice, sequence parameter set


def sequence_distance(start: int, end: int) -> int:
    """How many steps forward from ``start`` to ``end`` (mod 2^16)."""
    return (end - start) % SEQUENCE_MODULO


def timestamp_after(later: int, earlier: int) -> bool:
    """RFC 3550 serial comparison of 32-bit RTP timestamps."""
    return 0 < (later - earlier) % TIMESTAMP_MODULO < TIMESTAMP_MODULO // 2


def is_keyframe_start(data: bytes) -> bool:
    """Whether depayloaded ``data`` (a frame's first packet) begins a keyframe.

    aiortc depayloads H.264 to Annex B (start codes) and VP8 to the bare VP8 frame,
    so the payload itself tells the codec apart.
    """
    if data.startswith(b"\x00" + _H264_START_CODE) or data.startswith(_H264_START_CODE):
        return any(nal in _H264_KEYFRAME_NAL_TYPES for nal in _h264_nal_types(data))
    # VP8 frame tag: bit 0 clear means keyframe, followed by the keyframe start code.
    return len(data) >= 6 and not data[0] & 1 and data[3:6] == _VP8_KEYFRAME_START_CODE


def _h264_nal_types(annex_b: bytes) -> list[int]:
    types = []
    position = annex_b.find(_H264_START_CODE)
    while position != -1 and position + 3 < len(annex_b):
        types.append(annex_b[position + 3] & 0x1F)
        position = annex_b.find(_H264_START_CODE, position + 3)
    return types


@dataclass
class BufferCounters:
    frames_released: int = 0
    frames_dropped: int = 0  # incomplete, or a delta frame while a keyframe was awaited
    gaps_abandoned: int = 0
    resets: int = 0


class FrameCompletionBuffer:
    """A video jitter buffer that releases each frame when its marker packet completes it."""

    def __init__(
        self,
        capacity: int = 512,
        stall_limit: float = MIN_STALL_LIMIT_S,
        clock_rate: int = VIDEO_CLOCK_RATE,
    ) -> None:
        self._capacity = capacity
        self._clock_rate = clock_rate
        self._stall_ticks = int(stall_limit * clock_rate)
        self._packets: dict[int, RtpPacket] = {}
        self._origin: int | None = None  # first sequence number not yet released
        self._origin_is_frame_start = False  # known, not guessed (after a marker, say)
        self._newest_sequence = 0
        self._newest_timestamp: int | None = None
        self._first_timestamp: int | None = None  # since the start or the last reset
        self._last_released_timestamp: int | None = None
        self._awaiting_keyframe = True  # until the first keyframe, nothing decodes
        self._keyframe_requested_at: int | None = None
        self._ready: deque[JitterFrame] = deque()
        self.counters = BufferCounters()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def stall_limit(self) -> float:
        """Seconds of media a gap may hold frames back before it is given up."""
        return self._stall_ticks / self._clock_rate

    def set_stall_limit(self, seconds: float) -> None:
        """Wait this long for a retransmission from now on (see :func:`stall_limit_for`)."""
        self._stall_ticks = int(seconds * self._clock_rate)

    @property
    def ready_count(self) -> int:
        """Complete frames not yet handed out (several can complete at once)."""
        return len(self._ready)

    def next_ready(self) -> JitterFrame | None:
        """The next complete frame that ``add`` did not hand out."""
        return self._ready.popleft() if self._ready else None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Take one depayloaded packet (``packet._data`` set, as aiortc does)."""
        sequence = packet.sequence_number
        send_pli = False
        if self._origin is None:
            self._origin = sequence
            self._newest_sequence = sequence
        else:
            ahead = sequence_distance(self._origin, sequence)
            behind = sequence_distance(sequence, self._origin)
            if behind and behind < ahead:
                if behind >= MAX_MISORDER:
                    self._reset(sequence)
                    send_pli = True
                elif self.counters.frames_released == 0:
                    # Before the first frame the origin is a guess; an earlier packet of
                    # the same burst arriving late moves it back.
                    self._origin = sequence
                else:
                    return False, self.next_ready()
            elif ahead >= self._capacity:
                self._make_room(sequence)
                send_pli = True
        if sequence in self._packets:
            return send_pli, self.next_ready()
        self._packets[sequence] = packet
        if sequence_distance(self._origin, sequence) > self._span():
            self._newest_sequence = sequence
        if self._first_timestamp is None:
            self._first_timestamp = packet.timestamp
        if self._newest_timestamp is None or timestamp_after(
            packet.timestamp, self._newest_timestamp
        ):
            self._newest_timestamp = packet.timestamp
        send_pli = self._collect() or send_pli
        return send_pli, self.next_ready()

    # ---- releasing ---------------------------------------------------------------------
    def _collect(self) -> bool:
        """Move every frame that can leave now to the ready queue; True to send a PLI."""
        send_pli = False
        while True:
            end = self._complete_frame_end()
            if end is not None and not self._origin_is_frame_start:
                assert self._origin is not None
                if not is_keyframe_start(_payload(self._packets[self._origin])):
                    end = None  # the frame's first packets may still be on their way
            if end is None:
                if self._jump_to_complete_keyframe():
                    continue
                if self._stalled():
                    self._abandon_gap()
                    send_pli = self._request_keyframe() or send_pli
                    continue
                return send_pli
            assert self._origin is not None
            packets = self._take(self._origin, end)
            self._origin_is_frame_start = True
            if self._awaiting_keyframe and not is_keyframe_start(_payload(packets[0])):
                self.counters.frames_dropped += 1
                send_pli = self._request_keyframe() or send_pli
                continue
            self._awaiting_keyframe = False
            self._keyframe_requested_at = None
            self._last_released_timestamp = packets[0].timestamp
            self._ready.append(
                JitterFrame(
                    data=b"".join(_payload(p) for p in packets), timestamp=packets[0].timestamp
                )
            )
            self.counters.frames_released += 1

    def _complete_frame_end(self, start: int | None = None) -> int | None:
        """Sequence number of the last packet of the complete frame at ``start``, if it is."""
        sequence = self._origin if start is None else start
        assert sequence is not None
        first = self._packets.get(sequence)
        if first is None:
            return None
        for _ in range(self._capacity):
            packet = self._packets.get(sequence)
            if packet is None:
                return None
            if packet.timestamp != first.timestamp:
                # The sender set no marker bit; a new timestamp still ends the frame.
                return (sequence - 1) % SEQUENCE_MODULO
            if packet.marker:
                return sequence
            sequence = (sequence + 1) % SEQUENCE_MODULO
        return None

    def _frame_starts(self) -> list[int]:
        """Sequence numbers after the origin where a frame provably begins."""
        assert self._origin is not None
        starts = []
        for offset in range(1, self._span() + 1):
            sequence = (self._origin + offset) % SEQUENCE_MODULO
            packet = self._packets.get(sequence)
            if packet is None:
                continue
            before = self._packets.get((sequence - 1) % SEQUENCE_MODULO)
            if before is None:
                # Nothing to compare with, but a keyframe header only starts a frame.
                if is_keyframe_start(_payload(packet)):
                    starts.append(sequence)
            elif before.marker or before.timestamp != packet.timestamp:
                starts.append(sequence)
        return starts

    def _jump_to_complete_keyframe(self) -> bool:
        """A whole keyframe behind a gap makes waiting for the gap pointless."""
        if self._origin is None or self._span() <= 0:
            return False
        if (
            self._origin_is_frame_start
            and self._packets.get(self._origin) is not None
            and not self._gap_before_newest()
        ):
            return False  # the frame at the origin is simply still arriving
        for start in self._frame_starts():
            if is_keyframe_start(_payload(self._packets[start])) and (
                self._complete_frame_end(start) is not None
            ):
                self._drop_before(start)
                self._origin_is_frame_start = True
                return True
        return False

    def _span(self) -> int:
        """Steps from the origin to the newest packet; -1 when none is ahead of it."""
        assert self._origin is not None
        distance = sequence_distance(self._origin, self._newest_sequence)
        return distance if distance < SEQUENCE_MODULO // 2 else -1

    def _gap_before_newest(self) -> bool:
        return len(self._packets) < self._span() + 1

    def _stalled(self) -> bool:
        if self._newest_timestamp is None or not self._packets:
            return False
        oldest = self._packets.get(self._origin) if self._origin is not None else None
        if oldest is not None:
            reference = oldest.timestamp
        elif self._last_released_timestamp is not None:
            reference = self._last_released_timestamp
        else:
            reference = self._first_timestamp if self._first_timestamp is not None else 0
        waited = (self._newest_timestamp - reference) % TIMESTAMP_MODULO
        return waited < TIMESTAMP_MODULO // 2 and waited > self._stall_ticks

    def _abandon_gap(self) -> None:
        """Give up on the frame at the origin: skip to the next provable frame start."""
        starts = self._frame_starts()
        self.counters.gaps_abandoned += 1
        if starts:
            self._drop_before(starts[0])
        else:
            self._drop_before((self._newest_sequence + 1) % SEQUENCE_MODULO)
        self._origin_is_frame_start = bool(starts)
        self._awaiting_keyframe = True

    def _request_keyframe(self) -> bool:
        """True when a PLI should go out now (once per ``stall_limit`` while waiting)."""
        newest = self._newest_timestamp
        requested = self._keyframe_requested_at
        if newest is None:
            return False
        if requested is not None and (newest - requested) % TIMESTAMP_MODULO <= self._stall_ticks:
            return False
        self._keyframe_requested_at = newest
        return True

    # ---- bookkeeping -------------------------------------------------------------------
    def _take(self, start: int, end: int) -> list[RtpPacket]:
        packets = [
            self._packets.pop((start + i) % SEQUENCE_MODULO)
            for i in range(sequence_distance(start, end) + 1)
        ]
        self._origin = (end + 1) % SEQUENCE_MODULO
        return packets

    def _drop_before(self, sequence: int) -> None:
        assert self._origin is not None
        timestamps = set()
        for i in range(sequence_distance(self._origin, sequence)):
            packet = self._packets.pop((self._origin + i) % SEQUENCE_MODULO, None)
            if packet is not None:
                timestamps.add(packet.timestamp)
        self.counters.frames_dropped += len(timestamps)
        self._origin = sequence
        if not self._packets:
            self._newest_sequence = (sequence - 1) % SEQUENCE_MODULO

    def _make_room(self, sequence: int) -> None:
        """A packet too far ahead: drop the oldest frames so it fits, then resync."""
        assert self._origin is not None
        self._drop_before((sequence - self._capacity + 1) % SEQUENCE_MODULO)
        self._origin_is_frame_start = False
        starts = self._frame_starts()
        if starts and self._packets.get(self._origin) is None:
            self._drop_before(starts[0])
            self._origin_is_frame_start = True
        self._awaiting_keyframe = True
        self.counters.gaps_abandoned += 1

    def _reset(self, sequence: int) -> None:
        self.counters.resets += 1
        self.counters.frames_dropped += len({p.timestamp for p in self._packets.values()})
        self._packets.clear()
        self._first_timestamp = None
        self._newest_timestamp = None
        self._last_released_timestamp = None
        self._origin = sequence
        self._origin_is_frame_start = False
        self._newest_sequence = sequence
        self._awaiting_keyframe = True


def _payload(packet: RtpPacket) -> bytes:
    data = getattr(packet, "_data", None)
    return packet.payload if data is None else data


# ---- the seam into aiortc -------------------------------------------------------------
# aiortc's receiver does, per packet:  pli, frame = buffer.add(packet);
# frame.timestamp = mapper.map(frame.timestamp); decoder_queue.put((codec, frame)).
# It takes one frame per packet, but a retransmission that fills a gap completes every
# frame held behind it at once; left waiting for later packets they would add latency
# for good on a stream of one packet per frame. So the decoder queue is replaced too,
# by one that hands the decoder the rest of those frames right behind the first.
SEAM: Final = Seam(
    "the fast receive path",
    "run with --receive-path stock to keep aiortc's own",
    "peer/stack/receive_path.py",
    lines=(
        Lines(
            RTCRtpReceiver,
            "__init__",
            {
                "builds a video JitterBuffer": (
                    "self.__jitter_buffer = JitterBuffer(capacity=512, is_video=True)"
                ),
                "builds a decoder queue.Queue": (
                    "self.__decoder_queue: queue.Queue = queue.Queue()"
                ),
                "builds a TimestampMapper": "self.__timestamp_mapper = TimestampMapper()",
            },
        ),
        Lines(
            RTCRtpReceiver,
            "_handle_rtp_packet",
            {
                "depayloads into packet._data": "packet._data = depayload(",
                "feeds the buffer one packet": (
                    "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)"
                ),
                "maps frame timestamps": "encoded_frame.timestamp = self.__timestamp_mapper.map(\n",
                "queues (codec, frame) for the decoder": (
                    "self.__decoder_queue.put((codec, encoded_frame))"
                ),
            },
        ),
        Lines(
            RTCRtpReceiver,
            "receive",
            {"hands the decoder queue to its thread": "self.__decoder_queue,"},
        ),
    ),
)


class DrainingDecoderQueue(queue.Queue):
    """aiortc's decoder queue, which also takes the frames that completed together."""

    def __init__(self, buffer: FrameCompletionBuffer, mapper: TimestampMapper) -> None:
        super().__init__()
        self._buffer = buffer
        self._mapper = mapper

    def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        if not isinstance(item, tuple):  # None: aiortc stopping its decoder thread
            return
        codec: RTCRtpCodecParameters = item[0]
        while (frame := self._buffer.next_ready()) is not None:
            frame.timestamp = self._mapper.map(frame.timestamp)
            super().put((codec, frame), block, timeout)


def check_aiortc() -> None:
    """Raise :class:`StackChanged` unless aiortc's receiver still builds and feeds its
    jitter buffer and decoder queue the way :func:`use_frame_completion` expects."""
    SEAM.check()


def use_frame_completion(
    receiver: RTCRtpReceiver, undo: Undo | None = None
) -> FrameCompletionBuffer:
    """Put a :class:`FrameCompletionBuffer` in place of ``receiver``'s video buffer.

    Must happen before the receiver starts (aiortc starts it once ICE and DTLS are
    up, well after the remote description that created it).
    """
    current = getattr(receiver, _RECEIVER_PRIVATE + "jitter_buffer", None)
    if isinstance(current, FrameCompletionBuffer):
        return current
    mapper = getattr(receiver, _RECEIVER_PRIVATE + "timestamp_mapper", None)
    if not isinstance(current, JitterBuffer) or not isinstance(mapper, TimestampMapper):
        raise StackChanged("RTCRtpReceiver has no jitter buffer or timestamp mapper to use")
    if getattr(receiver, _RECEIVER_PRIVATE + "decoder_thread", None) is not None:
        raise RuntimeError("the receiver already started; install the receive path earlier")
    replacement = FrameCompletionBuffer(capacity=current.capacity)
    steps = Undo() if undo is None else undo
    replace(receiver, _RECEIVER_PRIVATE + "jitter_buffer", replacement, steps)
    replace(
        receiver,
        _RECEIVER_PRIVATE + "decoder_queue",
        DrainingDecoderQueue(replacement, mapper),
        steps,
    )
    return replacement


def stall_limit_for(rtt_ms: float | None) -> float:
    """How long a gap may wait for its retransmission on a path with round trip ``rtt_ms``.

    A NACK is answered one round trip later at the earliest, and on a congested link the
    round trip includes the queue (100-400 ms on the ``weak`` lab link). Giving a gap up
    sooner turns each loss into a keyframe request, and the keyframe needs that round
    trip and more to arrive (and is itself more likely to lose a packet). So twice the
    round trip plus 100 ms, never under 250 ms nor over 600 ms (a gap that waits
    longer freezes the picture longer than a keyframe would take).
    """
    if rtt_ms is None:
        return MIN_STALL_LIMIT_S
    seconds = 2 * rtt_ms / 1000 + STALL_MARGIN_S
    return min(max(seconds, MIN_STALL_LIMIT_S), MAX_STALL_LIMIT_S)


def install_receive_path(
    pc: RTCPeerConnection, path: str, undo: Undo | None = None
) -> list[FrameCompletionBuffer]:
    """Give every video receiver of ``pc`` the chosen receive path (idempotent);
    returns the buffers now in place, whose counters the stats line reports. ``undo``
    puts aiortc's own buffers back (before the receivers start)."""
    if path not in RECEIVE_PATHS:
        raise ValueError(f"receive path must be one of {', '.join(RECEIVE_PATHS)}, not {path!r}")
    if path == "stock":
        return []
    return [
        use_frame_completion(transceiver.receiver, undo)
        for transceiver in pc.getTransceivers()
        if transceiver.kind == "video"
    ]
