"""Chat messages, typed commands and the overlay's recent lines (pure, no channel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peer.data.chat import (
    MAX_CHAT_BYTES,
    ChatError,
    ChatIgnored,
    ChatLine,
    ChatRefused,
    RecentLines,
    decode_chat,
    encode_chat,
)
from peer.tty.commands import (
    HELP,
    AnswerOfferCommand,
    BadCommand,
    CancelCommand,
    ChatCommand,
    HelpCommand,
    SendCommand,
    parse_command,
)


def test_a_line_round_trips() -> None:
    wire = encode_chat("héllo bob 👋")
    assert json.loads(wire) == {"type": "chat", "text": "héllo bob 👋"}
    assert decode_chat(wire, "alice") == ChatLine("héllo bob 👋")


def test_the_sender_refuses_an_oversize_line() -> None:
    encode_chat("x" * MAX_CHAT_BYTES)
    with pytest.raises(ChatError, match=r"too long \(4097 bytes, at most 4096\)"):
        encode_chat("x" * (MAX_CHAT_BYTES + 1))
    # Bytes of UTF-8 count, not characters.
    with pytest.raises(ChatError, match="too long"):
        encode_chat("é" * (MAX_CHAT_BYTES // 2 + 1))


def test_the_sender_refuses_several_lines() -> None:
    with pytest.raises(ChatError, match="one line"):
        encode_chat("a\nb")


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (json.dumps({"type": "chat", "text": "x" * 5000}), "oversize chat message from bob (5000"),
        ("x" * 9000, "oversize chat message from bob (9000 bytes)"),
        ("not json", "not JSON"),
        ("[1, 2]", "not an object"),
        (json.dumps({"type": "chat"}), "no text"),
        (json.dumps({"type": "chat", "text": 5}), "no text"),
        (json.dumps({"type": "chat", "text": "a\nb"}), "more than one line"),
        (b"\x00\x01binary", "binary chat message from bob (8 bytes)"),
    ],
)
def test_the_receiver_refuses(message: str | bytes, why: str) -> None:
    received = decode_chat(message, "bob")
    assert isinstance(received, ChatRefused)
    assert why in received.why


def test_unknown_types_are_ignored() -> None:
    assert decode_chat(json.dumps({"type": "typing"}), "bob") == ChatIgnored("typing")


def test_control_characters_never_reach_the_terminal() -> None:
    received = decode_chat(json.dumps({"type": "chat", "text": "hi\x1b[2J\x07 there"}), "bob")
    assert isinstance(received, ChatLine)
    assert "\x1b" not in received.text and "\x07" not in received.text
    assert received.text.startswith("hi") and received.text.endswith(" there")


def test_recent_lines_fade_after_their_time() -> None:
    recent = RecentLines(keep=5.0, at_most=2)
    recent.add("bob: one", now=100.0)
    recent.add("bob: two", now=102.0)
    recent.add("bob: thrée", now=103.0)
    assert recent.visible(104.0) == ["bob: two", "bob: thr?e"]
    assert recent.visible(107.5) == ["bob: thr?e"]
    assert recent.visible(110.0) == []


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("hello", ChatCommand("hello")),
        ("  spaced  ", ChatCommand("  spaced  ")),
        ("//etc is a dir", ChatCommand("/etc is a dir")),
        ("/send /tmp/a b.bin", SendCommand(Path("/tmp/a b.bin"))),
        ("/send", BadCommand("usage: /send PATH")),
        ("/cancel", CancelCommand(None)),
        ("/cancel 3", CancelCommand(3)),
        ("/accept 2", AnswerOfferCommand(2, accept=True)),
        ("/reject 12", AnswerOfferCommand(12, accept=False)),
        ("/help", HelpCommand()),
        ("", None),
        ("   ", None),
    ],
)
def test_parse_command(line: str, command: object) -> None:
    assert parse_command(line) == command


def test_bad_commands_say_why() -> None:
    bad = parse_command("/cancel x")
    assert isinstance(bad, BadCommand) and "not a transfer number" in bad.why
    bad = parse_command("/frobnicate")
    assert isinstance(bad, BadCommand) and "//frobnicate sends it as chat" in bad.why
    bad = parse_command("/accept")
    assert isinstance(bad, BadCommand) and "usage: /accept N" in bad.why
    assert "/accept N" in HELP and "/reject N" in HELP
