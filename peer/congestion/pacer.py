"""Pacing: spread packets over time so no burst overruns a bottleneck's queue.

A video encoder hands over a whole frame at once (a keyframe can be 50 packets); sent
back to back they arrive at the bottleneck faster than it drains, fill its queue and
are lost or delayed together. :class:`PacingBudget` is a leaky bucket: every byte sent
is a debt that drains at the pacing rate, and a packet may go only while the debt plus
the packet stays within ``burst_ms`` worth of bytes (or when the debt is paid off, so a
packet bigger than the burst still goes, alone). Over any window of length W at most
``rate x W + max(burst, largest packet)`` leaves.

:class:`PacketQueue` holds what waits, audio first, then retransmissions, then video;
when full it drops the oldest video packet and counts it.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

_BITS_PER_BYTE_MS = 8_000  # bits per byte x ms per second
# Float error must not leave a packet waiting a femtosecond forever.
_ROUNDING_BYTES = 1e-6


class PacingBudget:
    """How long a packet must wait so no burst exceeds ``rate x burst_ms``."""

    def __init__(self, rate_bps: int, *, burst_ms: float = 5.0) -> None:
        if burst_ms <= 0:
            raise ValueError(f"pacing burst must be positive, got {burst_ms} ms")
        self.burst_ms = burst_ms
        self.rate_bps = 1
        self.set_rate(rate_bps)
        self._debt_bytes = 0.0
        self._last_ms: float | None = None

    @property
    def burst_bytes(self) -> float:
        """The most that may leave back to back (a bigger packet goes alone)."""
        return self.rate_bps * self.burst_ms / _BITS_PER_BYTE_MS

    def set_rate(self, rate_bps: int) -> None:
        """Change the pacing rate; the debt already owed drains at the new rate."""
        if rate_bps <= 0:
            raise ValueError(f"pacing rate must be positive, got {rate_bps} bit/s")
        self.rate_bps = rate_bps

    def delay_until_send(self, size_bytes: int, now_ms: float) -> float:
        """Milliseconds to wait before ``size_bytes`` may go (0: now)."""
        debt = self._debt_at(now_ms)
        allowed = max(self.burst_bytes - size_bytes, 0.0)
        if debt <= allowed + _ROUNDING_BYTES:
            return 0.0
        return (debt - allowed) * _BITS_PER_BYTE_MS / self.rate_bps

    def on_sent(self, size_bytes: int, now_ms: float) -> None:
        """``size_bytes`` left at ``now_ms`` (paced or not: every byte uses the link)."""
        self._debt_bytes = self._debt_at(now_ms) + size_bytes
        if self._last_ms is None or now_ms > self._last_ms:
            self._last_ms = now_ms

    def _debt_at(self, now_ms: float) -> float:
        if self._last_ms is None or now_ms <= self._last_ms:
            return self._debt_bytes  # a clock that steps back pays nothing off
        paid = (now_ms - self._last_ms) * self.rate_bps / _BITS_PER_BYTE_MS
        return max(self._debt_bytes - paid, 0.0)


class PacketKind(enum.IntEnum):
    """Send priority: lower values leave first."""

    AUDIO = 0
    RETRANSMISSION = 1
    VIDEO = 2


_T = TypeVar("_T")


@dataclass(frozen=True)
class QueuedPacket(Generic[_T]):
    """One packet waiting in a :class:`PacketQueue`."""

    kind: PacketKind
    size_bytes: int
    enqueued_ms: float
    item: _T


class PacketQueue(Generic[_T]):
    """Packets waiting for the pacer: audio > retransmission > video, FIFO within a kind.

    Bounded by ``max_bytes``: a push that overflows drops the oldest video packets
    first, then the oldest retransmissions, then the oldest audio (a stale frame is
    worth less than a fresh one). ``dropped`` counts what was dropped.
    """

    def __init__(self, *, max_bytes: int = 1_000_000) -> None:
        self.max_bytes = max_bytes
        self.dropped = 0
        self.queued_bytes = 0
        self._queues: dict[PacketKind, deque[QueuedPacket[_T]]] = {
            kind: deque() for kind in PacketKind
        }

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def push(self, kind: PacketKind, size_bytes: int, item: _T, now_ms: float) -> None:
        """Queue ``item``; drops older packets (video first) while over ``max_bytes``."""
        self._queues[kind].append(QueuedPacket(kind, size_bytes, now_ms, item))
        self.queued_bytes += size_bytes
        for victim_kind in (PacketKind.VIDEO, PacketKind.RETRANSMISSION, PacketKind.AUDIO):
            victims = self._queues[victim_kind]
            while self.queued_bytes > self.max_bytes and victims:
                self.queued_bytes -= victims.popleft().size_bytes
                self.dropped += 1

    def peek(self) -> QueuedPacket[_T] | None:
        """The packet that leaves next, left in place."""
        for kind in PacketKind:
            if self._queues[kind]:
                return self._queues[kind][0]
        return None

    def pop(self) -> QueuedPacket[_T] | None:
        """Take the packet that leaves next."""
        for kind in PacketKind:
            if self._queues[kind]:
                packet = self._queues[kind].popleft()
                self.queued_bytes -= packet.size_bytes
                return packet
        return None

    def queue_ms(self, rate_bps: int) -> float:
        """How long what waits takes to leave at ``rate_bps``."""
        return self.queued_bytes * _BITS_PER_BYTE_MS / max(rate_bps, 1)

    def oldest_wait_ms(self, now_ms: float) -> float:
        """How long the longest-waiting packet has waited (0 when empty)."""
        heads = [q[0].enqueued_ms for q in self._queues.values() if q]
        return max(now_ms - min(heads), 0.0) if heads else 0.0


# While the link queues, retransmissions may take the sending rate this far over the
# target, no further.
RETRANSMISSION_HEADROOM = 1.2
# Retransmissions alone never take more than this share of the target in a second
# (libwebrtc caps them at the whole target).
MAX_RETRANSMISSION_SHARE = 0.5
# A round trip this much over the least one seen: the link is queueing.
QUEUEING_MS = 100.0


def retransmission_fits(
    sent_last_second_bytes: float,
    retransmitted_last_second_bytes: float,
    size_bytes: int,
    target_bps: int,
    queue_delay_ms: float | None,
) -> bool:
    """Whether a retransmission of ``size_bytes`` may still go this second.

    Retransmissions count against the budget when the link is queueing: on the ``weak``
    lab link the queue's own drops (23-32 % of the packets in the first seconds) drew
    40-60 retransmissions a second, which kept the sender at 230-250 kbit/s while the
    target was 130-170 and the queue full (round trip 750-860 ms) for ten seconds. Then,
    once what left in the last second is 1.2 x the target, a retransmission is dropped:
    the receiver gives the gap up and asks for a keyframe instead, and the queue drains.

    Loss on a link that does not queue (``queue_delay_ms`` under ``QUEUEING_MS``) is
    not congestion, and dropping its repairs only turns each loss into a keyframe: on
    ``burst-loss`` (10 % loss, round trip 5-20 ms) the loss-based estimate fell from
    1.5 to 0.8-1.1 Mbit/s within two seconds, what had left in the last second (1.6-1.7
    Mbit/s, at the old target) was over 1.2 x the new one, and 55-339 retransmissions a
    side were dropped: every gap was given up and the picture froze for 0.6-1.1 s. Then
    only the retransmissions' own rate is capped (``MAX_RETRANSMISSION_SHARE``). An
    unknown queue delay (no round trip measured yet) counts as queueing.
    """
    target_bytes = target_bps / 8
    if retransmitted_last_second_bytes + size_bytes > MAX_RETRANSMISSION_SHARE * target_bytes:
        return False
    if queue_delay_ms is not None and queue_delay_ms < QUEUEING_MS:
        return True
    return sent_last_second_bytes + size_bytes <= RETRANSMISSION_HEADROOM * target_bytes
