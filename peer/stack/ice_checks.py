"""Triggered checks for in-progress pairs: the ICE step aioice leaves out.

When a connectivity check arrives on a pair whose own check is still waiting
for an answer, the agent is to send a fresh check at once (RFC 5245 7.2.1.4;
RFC 8445 7.3.1.4 asks for at least an immediate retransmission). aioice does
nothing and waits for its retransmission timer, 500 ms later.

Behind NATs that is exactly the common case: each side's first check is dropped
by the other side's NAT, whose hole only opens once the other side's own check
has left. The incoming check proves the hole is open now; answering it with a
new check instead of waiting is what makes srflx and relay calls connect in tens
of milliseconds instead of ~600 ms, and it keeps aioice's aggressive nomination
from settling on a relay pair merely because the direct pair's first check was
unlucky by a few milliseconds.

The behaviour is added around ``aioice.ice.Connection.check_incoming``;
:data:`SEAM` names whatever internal it relies on that moved, and
``--ice-checks stock`` leaves aioice's own behaviour.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from aioice.ice import CandidatePair, Connection

from peer.stack.seam import Lines, Seam, Undo, replace

logger = logging.getLogger(__name__)

ICE_CHECK_MODES: Final = ("triggered", "stock")
_RETRIGGERED: Final = "_webcam_peer_retriggered"
SEAM: Final = Seam(
    "re-checking in-progress pairs",
    "run with --ice-checks stock to keep aioice's own",
    "peer/stack/ice_checks.py",
    libraries=("aioice",),
    lines=(
        Lines(
            Connection,
            "check_incoming",
            {
                "finds the pair a check came in on": (
                    "pair = self._find_pair(protocol, remote_candidate)"
                ),
                "starts checks only on waiting pairs": (
                    "if pair.state == CandidatePair.State.WAITING:"
                ),
            },
        ),
        Lines(Connection, "__init__", {"knows a lite partner": "self.remote_is_lite = "}),
    ),
    present=(
        (Connection, "check_start_task"),
        (Connection, "check_state"),
        (Connection, "remote_candidates"),
        (CandidatePair.State, "IN_PROGRESS"),
        (CandidatePair.State, "WAITING"),
    ),
)


def install(undo: Undo) -> None:
    """Make every aioice Connection re-check an in-progress pair a check arrives on."""
    SEAM.check()
    original = Connection.check_incoming

    def check_incoming(self: Connection, message: Any, addr: Any, protocol: Any) -> None:
        original(self, message, addr, protocol)
        _retrigger(self, addr, protocol)

    replace(Connection, "check_incoming", check_incoming, undo)
    logger.debug("aioice: in-progress pairs are re-checked when a check arrives on them")


def _retrigger(connection: Connection, addr: Any, protocol: Any) -> None:
    if connection.remote_is_lite:  # a lite peer never checks; nothing to speed up
        return
    remote = next(
        (
            c
            for c in connection.remote_candidates
            if getattr(c, "_network_host", c.host) == addr[0] and c.port == addr[1]
        ),
        None,
    )
    if remote is None:
        return
    pair = connection._find_pair(protocol, remote)
    # Once per pair: the first incoming check is the news that the path is open;
    # later ones are the other side's retransmissions.
    if (
        pair is None
        or pair.state is not CandidatePair.State.IN_PROGRESS
        or pair.task is None
        or getattr(pair, _RETRIGGERED, False)
    ):
        return
    setattr(pair, _RETRIGGERED, True)
    logger.info("re-checking %s at once: a check just came in on it", pair)
    pair.task.cancel()  # its transaction stops retransmitting; the new check replaces it
    pair.task = None
    connection.check_state(pair, CandidatePair.State.WAITING)
    connection.check_start_task(pair)
