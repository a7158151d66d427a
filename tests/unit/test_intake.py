"""The pure checks on what a call takes from outside: descriptions, candidates, chat
rate, and the one printable filter (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from peer.data.channels import CallBudget, default_download_dir
from peer.data.chat import CHAT_BURST, ChatLimiter
from peer.session.intake import BadMessage, CandidateGate, candidate_address, description
from peer.tty.untrusted import shown, shown_lines, username_from_server

HOST = "candidate:1 1 udp 2130706431 192.0.2.7 5000 typ host"
MDNS = "candidate:2 1 udp 2130706431 0b1c2d3e-aaaa-bbbb-cccc-0123456789ab.local 5000 typ host"


def test_description_shapes() -> None:
    assert description({"type": "offer", "sdp": "v=0"}, "offer") == {"type": "offer", "sdp": "v=0"}
    for bad in ("v=0", None, {"type": "offer"}, {"type": "answer", "sdp": "v=0"}, {"sdp": 5}):
        with pytest.raises(BadMessage):
            description(bad, "offer")
    with pytest.raises(BadMessage, match="characters long"):
        description({"type": "offer", "sdp": "x" * 70_000}, "offer")


def test_candidate_address() -> None:
    assert candidate_address(HOST) == "192.0.2.7"
    assert candidate_address("a=" + MDNS).endswith(".local")  # type: ignore[union-attr]
    assert candidate_address("candidate:broken") is None


def test_the_gate_caps_candidates_and_refuses_mdns_unless_allowed() -> None:
    gate = CandidateGate(limit=3)
    assert gate.admit({"candidate": MDNS}) is not None
    assert [gate.admit({"candidate": HOST}) for _ in range(3)] == [None] * 3
    assert "more than 3" in str(gate.admit({"candidate": HOST}))
    assert gate.admit(None) is None and gate.admit({"candidate": ""}) is None  # end marks
    assert gate.admit("candidate") is not None and gate.admit({"candidate": 5}) is not None
    assert CandidateGate(allow_mdns=True).admit({"candidate": MDNS}) is None
    assert gate.first_time("x") and not gate.first_time("x")


def test_the_gate_filters_an_sdp() -> None:
    sdp = "v=0\r\n" + "".join(f"a={HOST}\r\n" for _ in range(5)) + f"a={MDNS}\r\nm=x\r\n"
    filtered, refusals = CandidateGate(limit=2).filter_sdp(sdp)
    assert filtered.count("a=candidate:") == 2 and ".local" not in filtered
    assert len(refusals) == 4 and filtered.endswith("m=x\r\n")


def test_shown_removes_every_escape_and_cuts() -> None:
    text = shown("\x1b]0;PWNED\x07\x1b[2J\u202eevil\nline\x9b", None)
    assert not any(c in text for c in "\x1b\x07\u202e\n\x9b")
    assert "PWNED" in text and "evil" in text
    assert shown("a" * 500) == "a" * 200 + "…"
    assert shown(["x\x1b"]) == "['x\\x1b']"
    assert shown_lines("one\n\x1b[2Jtwo") == "one\n\N{REPLACEMENT CHARACTER}[2Jtwo"


def test_usernames_from_the_server_follow_the_rule() -> None:
    assert username_from_server("bob.smith-2") == "bob.smith-2"
    for bad in ("", "a" * 33, "bob\x1b", "bob smith", 5, None, ["bob"]):
        assert username_from_server(bad) is None


def test_chat_limiter() -> None:
    limiter = ChatLimiter(rate=5, burst=CHAT_BURST)
    allowed = sum(limiter.allow(0.0) for _ in range(100))
    assert allowed == CHAT_BURST and limiter.untold() == 100 - CHAT_BURST
    assert limiter.untold() == 0
    assert limiter.allow(0.2) and not limiter.allow(0.2)  # one token back after 0.2 s


def test_the_default_download_dir_is_never_the_current_one(tmp_path: Path) -> None:
    assert default_download_dir(tmp_path, {}) == tmp_path / "Downloads" / "webcam-peer"
    xdg = {"XDG_DOWNLOAD_DIR": "$HOME/Téléchargements"}
    assert default_download_dir(tmp_path, xdg) == tmp_path / "Téléchargements" / "webcam-peer"
    relative = {"XDG_DOWNLOAD_DIR": "somewhere"}  # not absolute: not trusted
    assert default_download_dir(tmp_path, relative) == tmp_path / "Downloads" / "webcam-peer"


def test_the_call_budget() -> None:
    budget = CallBudget(100)
    assert budget.take(60) and not budget.take(41) and budget.take(40) and not budget.take(1)
    assert CallBudget(None).take(2**53)
