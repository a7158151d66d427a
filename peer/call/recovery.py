"""What to do when a call's media connection dies: re-establish it once, or end it.

Sans-I/O. A call whose ICE path fails (consent lost, a network that changed)
while both people are still logged in is negotiated afresh, once: a new
RTCPeerConnection, so new ICE credentials and a new candidate search (aiortc
cannot restart ICE on a connection). Only the side that dialled sends the fresh
offer, so the two never offer at once (glare); the other side waits for it, or
takes it as a replacement of its call if the offer comes before it noticed the
failure itself. A second failure, or a fresh negotiation that does not connect,
ends the call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

MAX_ATTEMPTS: Final = 1
# How long the re-established call may take to connect, and the side that did not
# dial waits for the fresh offer (the dialler may notice the failure a few seconds
# later: each side's consent checks run on their own clock).
RECOVERY_TIMEOUT: Final = 20.0
# A partner who hangs up closes the connection directly (DTLS close_notify) before
# their close can cross the signaling server; a failure is only a failure once this
# has passed with no close from them.
HANG_UP_GRACE: Final = 2.0
_UFRAG: Final = re.compile(r"^a=ice-ufrag:(\S+)", re.MULTILINE)


class Ending(Enum):
    """How one RTCPeerConnection of a call ended."""

    MEDIA_FAILED = "media-failed"  # it had connected, then ICE failed
    REPLACED = "replaced"  # the partner sent a fresh offer: they are re-establishing
    OTHER = "other"  # hung up, closed, never connected, quitting


class Step(Enum):
    END = "end"
    REOFFER = "reoffer"  # make a new connection and send a fresh offer
    AWAIT_OFFER = "await-offer"  # make a new connection from the partner's fresh offer


# (ending, we dialled) -> step, while an attempt is left and signaling is up.
STEPS: Final[dict[tuple[Ending, bool], Step]] = {
    (Ending.MEDIA_FAILED, True): Step.REOFFER,
    (Ending.MEDIA_FAILED, False): Step.AWAIT_OFFER,
    (Ending.REPLACED, False): Step.AWAIT_OFFER,
    # The dialler never receives a replacement: the other side does not offer.
    (Ending.REPLACED, True): Step.END,
}


@dataclass
class Recovery:
    """The re-establishment budget of one conversation with one partner."""

    dialled: bool
    attempts: int = 0

    def next_step(self, ending: Ending, *, signaling_up: bool) -> Step:
        if ending is Ending.OTHER or not signaling_up or self.attempts >= MAX_ATTEMPTS:
            # Without the server the partner cannot be reached for a fresh offer, and
            # may be gone altogether: the call ends.
            return Step.END
        step = STEPS[(ending, self.dialled)]
        if step is not Step.END:
            self.attempts += 1
        return step


def ice_ufrag(sdp: str) -> str | None:
    """The first ICE username fragment of a session description (None without one)."""
    match = _UFRAG.search(sdp)
    return match.group(1) if match else None


def is_fresh_negotiation(current_remote_sdp: str | None, offer_sdp: str) -> bool:
    """Whether an offer from the current partner starts over (new ICE credentials) rather
    than renegotiating the connection that exists (same credentials)."""
    if current_remote_sdp is None:
        return False
    current = ice_ufrag(current_remote_sdp)
    offered = ice_ufrag(offer_sdp)
    return current is not None and offered is not None and current != offered


# ---- a fresh offer while our own connection still works ---------------------------------
#
# A fresh offer says "my side of the call failed, start over". Taken blindly it hands
# the call to whoever can send offers in the partner's name: an attacker who got the
# partner's name in a server's restart gap, or a server that forwards what it likes.
# So it is taken only once our own media has failed or is failing. An honest partner
# closed its old connection before offering, so ours stops receiving at once and
# fails by consent within the hold (peer/stack/consent.py: at most about 9 s); a fresh
# offer that finds our connection still receiving at the end of the hold is refused
# with a close saying why, and the call goes on.

FRESH_OFFER_HOLD: Final = 10.0
FRESH_OFFER_CHECK: Final = 0.5  # how often our connection is looked at meanwhile
# Nothing received from the partner (media, RTCP, data) for this long: failing.
SILENT_IS_FAILING: Final = 2.0
# The close's reason when a fresh offer is refused.
CONNECTION_HEALTHY: Final = "connection-healthy"


class Verdict(Enum):
    TAKE = "take"  # our media failed or is failing: the fresh offer replaces the call
    REFUSE = "refuse"  # our media kept flowing for the whole hold
    WAIT = "wait"


@dataclass
class FreshOfferHold:
    """Judges one fresh offer from samples of what our connection has received."""

    received_at: float
    hold: float = FRESH_OFFER_HOLD
    silent_after: float = SILENT_IS_FAILING
    _bytes: int | None = None
    _changed_at: float = 0.0

    def judge(self, now: float, bytes_received: int) -> Verdict:
        """``bytes_received``: all our connection has received so far; a call that
        ended meanwhile is the shell's to see (its failure takes the offer)."""
        if self._bytes is None or bytes_received != self._bytes:
            self._bytes = bytes_received
            self._changed_at = now
        elif now - self._changed_at >= self.silent_after:
            return Verdict.TAKE
        if now - self.received_at >= self.hold:
            return Verdict.REFUSE
        return Verdict.WAIT
