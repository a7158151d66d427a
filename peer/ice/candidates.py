"""ICE candidates between the browser's JSON form and aiortc's RTCIceCandidate.

The browser sends ``RTCIceCandidate.toJSON()``: ``{"candidate": "candidate:...",
"sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "..."}``; ``null`` or an
empty ``candidate`` string means end-of-candidates.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp


class CandidateError(ValueError):
    """A remote candidate that cannot be understood."""


def candidate_from_json(data: dict[str, Any] | None) -> RTCIceCandidate | None:
    """Parse a browser candidate; None means end-of-candidates."""
    if data is None:
        return None
    line = data.get("candidate")
    if not isinstance(line, str):
        raise CandidateError("candidate JSON has no 'candidate' string")
    line = line.strip()
    if line.startswith("a="):
        line = line[2:]
    if not line:
        return None
    if not line.startswith("candidate:"):
        raise CandidateError(f"not an ICE candidate line: {line[:60]!r}")
    try:
        candidate = candidate_from_sdp(line.removeprefix("candidate:"))
    except (AssertionError, ValueError, IndexError) as exc:
        raise CandidateError(f"malformed ICE candidate: {line[:80]!r}") from exc
    sdp_mid = data.get("sdpMid")
    sdp_mline_index = data.get("sdpMLineIndex")
    candidate.sdpMid = sdp_mid if isinstance(sdp_mid, str) else None
    candidate.sdpMLineIndex = (
        sdp_mline_index
        if isinstance(sdp_mline_index, int) and not isinstance(sdp_mline_index, bool)
        else None
    )
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        # A browser always names one; without either aiortc cannot place it.
        candidate.sdpMLineIndex = 0
    return candidate


def candidate_to_json(candidate: RTCIceCandidate) -> dict[str, Any]:
    """The form a browser's addIceCandidate() accepts."""
    return {
        "candidate": "candidate:" + candidate_to_sdp(candidate),
        "sdpMid": candidate.sdpMid,
        "sdpMLineIndex": candidate.sdpMLineIndex,
    }
