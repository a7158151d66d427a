"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01).

RTCP transport-layer feedback (PT=205) with FMT=15. Skeleton: bodies land in the
next commit; the signatures are the contract the shell codes against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

TWCC_URI: Final = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


@dataclass(frozen=True)
class TransportFeedback:
    """One feedback packet.

    ``packets`` holds ``(16-bit transport sequence, arrival time in µs or None)``
    in sequence order from ``base_sequence``; arrival times are relative to an
    origin that stays the same within one feedback stream.
    """

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    feedback_count: int
    reference_time_us: int
    packets: tuple[tuple[int, int | None], ...]


def parse_feedback(data: bytes) -> TransportFeedback:
    """Parse one whole RTCP transport-wide feedback packet; ``ValueError`` when malformed."""
    raise NotImplementedError


def serialize_feedback(fb: TransportFeedback) -> bytes:
    """Build one whole RTCP packet (padded to 32 bits) for ``fb``."""
    raise NotImplementedError


class FeedbackRecorder:
    """Receive side: record transport-wide sequence numbers and arrivals, build feedback."""

    def __init__(self, sender_ssrc: int) -> None:
        self.sender_ssrc = sender_ssrc

    def on_packet(self, media_ssrc: int, sequence: int, arrival_us: int) -> None:
        """Record one arrival (16-bit sequence; wrap, duplicates, reordering handled)."""
        raise NotImplementedError

    def build(self, now_us: int) -> list[bytes]:
        """The feedback packets due now: everything recorded since the last build."""
        raise NotImplementedError
