"""Asking for lost video packets again (``--nack``): a receive-side NACK scheduler.

aiortc's ``NackGenerator`` sends a NACK only when a packet arrives that opens a *new*
gap, and then lists every sequence number still missing in the last 128, whatever it
asked before. So a NACK that is lost, or a retransmission that is lost, is asked for
again only when the next loss happens to come along, and a packet the receiver already
gave up on is asked for over and over until it falls out of the window. At 10 % loss
that is the difference between a gap filled one round trip later and a frame given up
(docs/network.md, "Losses without freezes").

:class:`NackScheduler` is what libwebrtc's NackRequester does, sans-I/O: each missing
packet is asked for as soon as the gap shows, then again every round trip (the RTCP round
trip plus the queue the stream's packets wait in now, :mod:`peer.stack.arrival_queue`;
at least ``MIN_RETRY_MS``) while it is still missing, at most ``MAX_TRIES`` times and
no longer than ``give_up_ms`` (the receive path's own wait: a gap it has given up on
needs no retransmission). Sequence numbers wrap around; a jump of more than
``MAX_JUMP`` is a new stream, not a loss.

The seam puts a :class:`ScheduledNackGenerator` (aiortc's generator interface around
the scheduler, driven by the packet arrivals aiortc feeds it) in place of the one each
video ``RTCRtpReceiver`` builds. ``--nack stock`` keeps aiortc's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtp import RtpPacket

from peer.stack.arrival_queue import ArrivalQueue
from peer.stack.seam import Lines, Seam, StackChanged, Undo, replace

NACK_MODES: Final = ("scheduled", "stock")

SEQUENCE_MODULO: Final = 1 << 16
DEFAULT_RTT_MS: Final = 100.0  # until the first RTCP round trip is known (libwebrtc's too)
MIN_RETRY_MS: Final = 25.0
RETRY_RTT_FACTOR: Final = 1.25  # a retransmission behind a packet or two of queue is not late
MAX_TRIES: Final = 10
DEFAULT_GIVE_UP_MS: Final = 1_000.0
MAX_JUMP: Final = 1_000  # more packets than a second of video at 1.5 Mbit/s: a new stream
MAX_MISSING: Final = 500  # the oldest go first beyond this
_RECEIVER_PRIVATE: Final = "_RTCRtpReceiver__"


@dataclass
class NackCounters:
    nack_first: int = 0  # missing packets asked for the first time
    nack_repeated: int = 0  # asked for again: the NACK or the retransmission was lost
    nack_recovered: int = 0  # missing packets that arrived after all
    nack_given_up: int = 0  # still missing after MAX_TRIES or give_up_ms
    nack_resets: int = 0  # sequence jumps taken for a new stream


@dataclass
class _Missing:
    first_seen_ms: float
    last_asked_ms: float | None = None
    tries: int = 0


class NackScheduler:
    """Which sequence numbers to ask for, when: packets in, due sequence numbers out."""

    def __init__(
        self,
        *,
        rtt_ms: float = DEFAULT_RTT_MS,
        give_up_ms: float = DEFAULT_GIVE_UP_MS,
        max_tries: int = MAX_TRIES,
    ) -> None:
        self.rtt_ms = rtt_ms
        self.give_up_ms = give_up_ms
        self.max_tries = max_tries
        self._newest: int | None = None  # extended (unwrapped) sequence number
        # extended sequence number -> state; gaps only open above the newest, so the
        # dict's order is ascending and its first key is the oldest.
        self._missing: dict[int, _Missing] = {}
        self.arrivals = ArrivalQueue()
        self.counters = NackCounters()

    @property
    def missing(self) -> list[int]:
        """Sequence numbers (mod 2^16) still awaited, oldest first."""
        return [sequence % SEQUENCE_MODULO for sequence in sorted(self._missing)]

    def set_rtt(self, rtt_ms: float | None, give_up_ms: float | None = None) -> None:
        """The RTCP round trip is ``rtt_ms``; stop asking after ``give_up_ms``."""
        if rtt_ms is not None:
            self.rtt_ms = rtt_ms
        if give_up_ms is not None:
            self.give_up_ms = give_up_ms

    def queue_ms(self, now_ms: float) -> float:
        """How long this stream's packets queue on the way here now."""
        return self.arrivals.queue_ms(now_ms)

    def retry_ms(self, now_ms: float) -> float:
        """How long a request waits for its answer before it is made again."""
        return max(MIN_RETRY_MS, RETRY_RTT_FACTOR * (self.rtt_ms + self.queue_ms(now_ms)))

    def on_packet(self, sequence: int, now_ms: float, timestamp: int | None = None) -> None:
        """A packet (or its retransmission, unwrapped) with ``sequence`` and RTP
        ``timestamp`` arrived."""
        if self._newest is None:
            self._newest = sequence
            if timestamp is not None:
                self.arrivals.on_packet(timestamp, now_ms)
            return
        step = _signed_distance(self._newest % SEQUENCE_MODULO, sequence)
        if abs(step) > MAX_JUMP:
            self.counters.nack_resets += 1
            self._missing.clear()
            self._newest = sequence
            return
        extended = self._newest + step
        if step > 0:
            if timestamp is not None:  # a retransmission's lateness is not the queue's
                self.arrivals.on_packet(timestamp, now_ms)
            for lost in range(self._newest + 1, extended):
                self._missing[lost] = _Missing(first_seen_ms=now_ms)
            self._newest = extended
            while len(self._missing) > MAX_MISSING:
                del self._missing[next(iter(self._missing))]
                self.counters.nack_given_up += 1
        elif self._missing.pop(extended, None) is not None:
            self.counters.nack_recovered += 1

    def due(self, now_ms: float) -> list[int]:
        """The sequence numbers (mod 2^16) to ask for now, oldest first; each is
        counted as asked at ``now_ms``."""
        asked = []
        retry_ms = self.retry_ms(now_ms)
        for sequence in sorted(self._missing):
            entry = self._missing[sequence]
            if entry.tries >= self.max_tries or now_ms - entry.first_seen_ms > self.give_up_ms:
                del self._missing[sequence]
                self.counters.nack_given_up += 1
                continue
            if entry.last_asked_ms is not None and now_ms - entry.last_asked_ms < retry_ms:
                continue
            if entry.tries:
                self.counters.nack_repeated += 1
            else:
                self.counters.nack_first += 1
            entry.tries += 1
            entry.last_asked_ms = now_ms
            asked.append(sequence % SEQUENCE_MODULO)
        return asked


def _signed_distance(start: int, end: int) -> int:
    """Steps from ``start`` to ``end`` (mod 2^16), in [-2^15, 2^15)."""
    forward = (end - start) % SEQUENCE_MODULO
    return forward - SEQUENCE_MODULO if forward >= SEQUENCE_MODULO // 2 else forward


# ---- the seam into aiortc -------------------------------------------------------------
# aiortc's video receiver, per packet (RTX already unwrapped to the original number):
#   if self.__nack_generator is not None and self.__nack_generator.add(packet):
#       await self._send_rtcp_nack(packet.ssrc, sorted(self.__nack_generator.missing))
# So a generator whose add() says whether anything is due and whose ``missing`` lists
# what is due drives the scheduler from the packet arrivals (at least every 33 ms while
# video flows, finer than any retry interval it uses).
SEAM: Final = Seam(
    "the NACK scheduler",
    "run with --nack stock to keep aiortc's own",
    "peer/stack/nack_requests.py",
    lines=(
        Lines(
            RTCRtpReceiver,
            "__init__",
            {"builds a video NackGenerator": "self.__nack_generator = NackGenerator()"},
        ),
        Lines(
            RTCRtpReceiver,
            "_handle_rtp_packet",
            {
                "unwraps RTX before the NACK generator": (
                    "packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)"
                ),
                "feeds the NACK generator each packet": "self.__nack_generator.add(packet)",
                "NACKs what the generator lists": "sorted(self.__nack_generator.missing)",
            },
        ),
    ),
)


class ScheduledNackGenerator:
    """aiortc's ``NackGenerator`` interface around a :class:`NackScheduler`."""

    def __init__(self, scheduler: NackScheduler | None = None) -> None:
        self.scheduler = NackScheduler() if scheduler is None else scheduler
        self.missing: set[int] = set()  # what aiortc NACKs when add() says so

    def add(self, packet: RtpPacket) -> bool:
        now_ms = time.monotonic() * 1000.0
        self.scheduler.on_packet(packet.sequence_number, now_ms, packet.timestamp)
        self.missing = set(self.scheduler.due(now_ms))
        return bool(self.missing)


def check_aiortc() -> None:
    """Raise :class:`StackChanged` unless aiortc's receiver still asks its NACK
    generator per packet the way :class:`ScheduledNackGenerator` expects."""
    SEAM.check()


def use_scheduled_nacks(receiver: RTCRtpReceiver, undo: Undo | None = None) -> NackScheduler:
    """Put a :class:`ScheduledNackGenerator` in place of ``receiver``'s NACK generator."""
    current = getattr(receiver, _RECEIVER_PRIVATE + "nack_generator", None)
    if isinstance(current, ScheduledNackGenerator):
        return current.scheduler
    if not isinstance(current, NackGenerator):
        raise StackChanged("RTCRtpReceiver has no NACK generator to replace")
    generator = ScheduledNackGenerator()
    replace(
        receiver, _RECEIVER_PRIVATE + "nack_generator", generator, Undo() if undo is None else undo
    )
    return generator.scheduler


def install_nack_scheduler(
    pc: RTCPeerConnection, mode: str, undo: Undo | None = None
) -> list[NackScheduler]:
    """Give every video receiver of ``pc`` the chosen NACK generator (idempotent);
    returns the schedulers now in place (their counters go in the stats line, the
    congestion shell tells them the round trip)."""
    if mode not in NACK_MODES:
        raise ValueError(f"--nack must be one of {', '.join(NACK_MODES)}, not {mode!r}")
    if mode == "stock":
        return []
    return [
        use_scheduled_nacks(transceiver.receiver, undo)
        for transceiver in pc.getTransceivers()
        if transceiver.kind == "video"
    ]
