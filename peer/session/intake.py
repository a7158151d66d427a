"""What a call takes from the other side over signaling: descriptions of the right
shape, and at most ``MAX_REMOTE_CANDIDATES`` remote ICE candidates, none of them an
mDNS ``.local`` name unless the user allows looking those up (docs/security.md).

Pure: the shell (peer/app.py) asks before it hands anything to aiortc. Each
candidate aioice takes costs a connectivity check (and an ``.local`` one a multicast
query on the local network), so a stranger's flood must stop here.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from peer.tty.untrusted import shown

logger = logging.getLogger(__name__)

JSONObject = dict[str, Any]
MAX_REMOTE_CANDIDATES: Final = 100
# A description is a few KiB; the server refuses frames over 64 KiB anyway.
MAX_SDP_CHARS: Final = 64 * 1024


class BadMessage(ValueError):
    """A signaling message of the right type whose content cannot be used."""


def description(data: object, kind: str) -> JSONObject:
    """``data`` as a session description of ``kind`` (offer/answer); BadMessage if not."""
    if not isinstance(data, dict):
        raise BadMessage(f"the {kind} is not an object")
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp.strip():
        raise BadMessage(f"the {kind} has no SDP text")
    if len(sdp) > MAX_SDP_CHARS:
        raise BadMessage(f"the {kind}'s SDP is {len(sdp)} characters long")
    if data.get("type") != kind:
        raise BadMessage(f"an {kind} of type {shown(data.get('type'), 20)}")
    return {"type": kind, "sdp": sdp}


def candidate_address(line: str) -> str | None:
    """The connection address of an ICE candidate line (``candidate:...`` or the SDP
    attribute ``a=candidate:...``), or None if the line has none."""
    fields = line.strip().removeprefix("a=").split()
    return fields[4] if len(fields) > 5 and fields[0].startswith("candidate:") else None


class CandidateGate:
    """The remote candidates one call admits."""

    def __init__(self, *, allow_mdns: bool = False, limit: int = MAX_REMOTE_CANDIDATES) -> None:
        self.allow_mdns = allow_mdns
        self.limit = limit
        self.admitted = 0
        self.refused = 0
        self._told: set[str] = set()

    def first_time(self, why: str) -> bool:
        """True the first time a refusal for ``why`` is reported (tell the user once)."""
        if why in self._told:
            return False
        self._told.add(why)
        return True

    def admit_line(self, line: str) -> str | None:
        """Why the candidate ``line`` is refused, or None when it is admitted (counted)."""
        address = candidate_address(line)
        mdns = address is not None and address.lower().rstrip(".").endswith(".local")
        if mdns and not self.allow_mdns:
            self.refused += 1
            return "an mDNS .local candidate (--resolve-mdns looks those up)"
        if self.admitted >= self.limit:
            self.refused += 1
            return f"more than {self.limit} candidates in this call"
        self.admitted += 1
        return None

    def admit(self, candidate: object) -> str | None:
        """For a trickled candidate (the browser's JSON form); end-of-candidates passes."""
        if candidate is None:
            return None
        if not isinstance(candidate, dict):
            self.refused += 1
            return "a candidate that is not an object"
        line = candidate.get("candidate")
        if not isinstance(line, str):
            self.refused += 1
            return "a candidate without a candidate line"
        if not line.strip():
            return None  # end of candidates
        return self.admit_line(line)

    def filter_sdp(self, sdp: str) -> tuple[str, list[str]]:
        """``sdp`` without the candidate lines this call refuses; why each went."""
        kept: list[str] = []
        refusals: list[str] = []
        for line in sdp.split("\n"):
            if line.startswith("a=candidate:"):
                why = self.admit_line(line)
                if why is not None:
                    refusals.append(why)
                    continue
            kept.append(line)
        return "\n".join(kept), refusals
