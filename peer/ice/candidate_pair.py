"""Which ICE candidate pair a call's media flows over: host, srflx, prflx or relay.

aiortc 1.16 has no candidate-pair stats, so the pair is read where aioice keeps
it: the RTCIceTransport's aioice ``Connection`` and its nominated pair per
component. Those are private attributes, read through ``peer/stack/internals.py``;
:func:`selected_pair` raises :class:`PairUnavailable` naming the one that moved, and
``tests/inprocess/test_candidate_pair.py`` runs a real call through it, so an aiortc or
aioice upgrade that moves them fails that test instead of silently reporting
nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from aiortc import RTCPeerConnection

from peer.stack.internals import PAIR_READS, ice_connection, nominated_pairs
from peer.stack.seam import StackChanged

logger = logging.getLogger(__name__)

# From the most direct to the most relayed: what a pair is called is the more
# relayed of its two ends (relay <-> host goes through a TURN server).
CANDIDATE_TYPES: Final = ("host", "srflx", "prflx", "relay")


class PairUnavailable(RuntimeError):
    """The aiortc/aioice internals this module reads are not where they were."""


@dataclass(frozen=True)
class SelectedPair:
    local_type: str
    remote_type: str
    local_address: str  # "host:port" of our end (for relay: the TURN server's relayed address)
    remote_address: str
    protocol: str  # the candidates' transport: aioice speaks ICE over UDP only
    relay_protocol: str | None  # ours to the TURN server when our end is relay: udp/tcp/tls

    @property
    def type(self) -> str:
        return max(self.local_type, self.remote_type, key=_rank)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "local": self.local_type,
            "remote": self.remote_type,
            "protocol": self.protocol,
            "relay_protocol": self.relay_protocol,
            "local_address": self.local_address,
            "remote_address": self.remote_address,
        }

    def describe(self) -> str:
        """One line for people: ``relay/udp (relay <-> host, TURN over tcp)``."""
        text = f"{self.type}/{self.protocol} ({self.local_type} <-> {self.remote_type}"
        if self.relay_protocol:
            text += f", TURN over {self.relay_protocol}"
        return text + ")"


def _rank(candidate_type: str) -> int:
    return CANDIDATE_TYPES.index(candidate_type) if candidate_type in CANDIDATE_TYPES else 0


def _attribute(owner: object, name: str, where: str) -> Any:
    try:
        return getattr(owner, name)
    except AttributeError:
        raise PairUnavailable(
            f"{where}.{name} is gone in this aiortc/aioice: "
            "peer/ice/candidate_pair.py needs updating"
        ) from None


def selected_pair(pc: RTCPeerConnection) -> SelectedPair | None:
    """The pair ICE nominated for the call's (bundled) transport; None before that."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is None:
            continue
        ice = _attribute(dtls, "transport", "RTCDtlsTransport")
        try:
            connection = ice_connection(ice)
            # RTP and RTCP are muxed: component 1 carries everything
            pair = nominated_pairs(connection).get(1)
        except StackChanged as exc:
            raise PairUnavailable(
                str(exc)
            ) from None  # RTP and RTCP are muxed: component 1 carries everything
        if pair is None:
            continue
        local = _attribute(pair, "local_candidate", "aioice.CandidatePair")
        remote = _attribute(pair, "remote_candidate", "aioice.CandidatePair")
        relay_protocol = None
        if local.type == "relay":
            tls = bool(_attribute(connection, "turn_ssl", "aioice.Connection"))
            relay_protocol = "tls" if tls else str(connection.turn_transport)
        return SelectedPair(
            local_type=str(local.type),
            remote_type=str(remote.type),
            local_address=f"{local.host}:{local.port}",
            remote_address=f"{remote.host}:{remote.port}",
            protocol=str(local.transport).lower(),
            relay_protocol=relay_protocol,
        )
    return None


class PairWatcher:
    """Remembers the last pair seen, so the final report still names it after the
    connection (and aioice's record of the pair) is closed."""

    def __init__(self) -> None:
        self.last: SelectedPair | None = None
        self._warned = False
        self._checked = False

    def update(self, pc: RTCPeerConnection) -> SelectedPair | None:
        try:
            if not self._checked:
                self._checked = True
                try:
                    PAIR_READS.check()
                except StackChanged as exc:
                    raise PairUnavailable(str(exc)) from None
            pair = selected_pair(pc)
        except PairUnavailable as exc:
            if not self._warned:
                logger.warning("cannot tell the candidate pair: %s", exc)
                self._warned = True
            return self.last
        if pair is not None:
            self.last = pair
        return self.last
