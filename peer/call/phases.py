r"""The conversation's phases as a table (peer/call/conversation.py steps through it).

Pure. A call of the conversation ends in one of recovery.py's ``Ending``\ s; with what
recovery.py says comes next, :data:`AFTER_CALL` names the move that follows.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from peer.call.recovery import Ending, Step


class Phase(Enum):
    IDLE = "idle"  # logged in, no call
    DIALLING = "dialling"  # our offer is out
    RINGING = "ringing"  # the person at the terminal is asked about a caller
    IN_CALL = "in-call"
    GRACE = "grace"  # the media failed; the partner's close may still be on its way
    RE_ESTABLISHING = "re-establishing"  # a fresh negotiation with the same partner


class Move(Enum):
    DIAL = "dial"
    ANSWERED = "answered"  # our offer was answered
    REFUSED = "refused"  # busy, declined, offline, not answered
    RING = "ring"  # a call to ask about
    ACCEPT = "accept"
    DECLINE = "decline"
    CALLER_LEFT = "caller-left"  # hung up (or we quit) before the answer
    ENDED = "ended"  # hung up, closed, or failed for good
    MEDIA_FAILED = "media-failed"  # ...with a re-establishment left
    REPLACED = "replaced"  # the partner's fresh offer took over (recovery.py)
    PARTNER_CLOSED = "partner-closed"
    GRACE_OVER = "grace-over"
    RE_ESTABLISHED = "re-established"
    GAVE_UP = "gave-up"


MOVES: Final[dict[tuple[Phase, Move], Phase]] = {
    (Phase.IDLE, Move.DIAL): Phase.DIALLING,
    (Phase.DIALLING, Move.ANSWERED): Phase.IN_CALL,
    (Phase.DIALLING, Move.REFUSED): Phase.IDLE,
    (Phase.IDLE, Move.RING): Phase.RINGING,
    (Phase.IDLE, Move.ACCEPT): Phase.IN_CALL,
    (Phase.IDLE, Move.DECLINE): Phase.IDLE,
    (Phase.RINGING, Move.ACCEPT): Phase.IN_CALL,
    (Phase.RINGING, Move.DECLINE): Phase.IDLE,
    (Phase.RINGING, Move.CALLER_LEFT): Phase.IDLE,
    (Phase.IN_CALL, Move.ENDED): Phase.IDLE,
    # A hang-up reaches us as a closed connection before its close crosses the server.
    (Phase.IN_CALL, Move.MEDIA_FAILED): Phase.GRACE,
    (Phase.IN_CALL, Move.REPLACED): Phase.RE_ESTABLISHING,
    (Phase.GRACE, Move.PARTNER_CLOSED): Phase.IDLE,
    (Phase.GRACE, Move.GRACE_OVER): Phase.RE_ESTABLISHING,
    (Phase.RE_ESTABLISHING, Move.RE_ESTABLISHED): Phase.IN_CALL,
    (Phase.RE_ESTABLISHING, Move.GAVE_UP): Phase.IDLE,
}

# How a call's end moves the conversation, by what recovery.py says comes next.
AFTER_CALL: Final[dict[tuple[Ending, Step], Move]] = {
    (Ending.MEDIA_FAILED, Step.REOFFER): Move.MEDIA_FAILED,
    (Ending.MEDIA_FAILED, Step.AWAIT_OFFER): Move.MEDIA_FAILED,
    (Ending.REPLACED, Step.AWAIT_OFFER): Move.REPLACED,
}
