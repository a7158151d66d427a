"""Private attributes of aiortc and aioice that modules outside peer/stack/ read.

Each accessor names the attribute that moved (:class:`StackChanged`) instead of
failing with an AttributeError; :data:`PAIR_READS` checks, once per process, that
the libraries still set them where the readers expect.
"""

from __future__ import annotations

from typing import Any, Final

from aioice.ice import CandidatePair, Connection
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport

from peer.stack.seam import Lines, Seam, StackChanged

PAIR_READS: Final = Seam(
    "reading the nominated candidate pair",
    "the stats leave the candidate pair out",
    "peer/stack/internals.py",
    libraries=("aiortc", "aioice"),
    lines=(
        Lines(
            RTCIceGatherer,
            "__init__",
            {"keeps its aioice Connection": "self._connection = Connection("},
        ),
        Lines(
            RTCIceTransport,
            "__init__",
            {"shares the gatherer's Connection": "self._connection = gatherer._connection"},
        ),
        Lines(Connection, "__init__", {"keeps nominated pairs": "self._nominated: dict[int,"}),
        Lines(
            Connection,
            "check_complete",
            {"nominates per component": "self._nominated[pair.component] = pair"},
        ),
    ),
)


def _read(owner: object, name: str, where: str) -> Any:
    try:
        return getattr(owner, name)
    except AttributeError:
        raise StackChanged(
            f"{where}.{name} is gone in this aiortc/aioice: peer/stack/internals.py needs updating"
        ) from None


def ice_connection(transport: RTCIceTransport) -> Connection:
    """The aioice Connection behind an aiortc ICE transport."""
    connection: Connection = _read(transport, "_connection", "RTCIceTransport")
    return connection


def nominated_pairs(connection: Connection) -> dict[int, CandidatePair]:
    """The pair aioice nominated, per component (1: RTP and RTCP muxed)."""
    pairs: dict[int, CandidatePair] = _read(connection, "_nominated", "aioice.Connection")
    return pairs
