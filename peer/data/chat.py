"""Chat messages on the ``chat`` data channel (docs/datachannels.md): encode and validate.

Pure: no channel here. The sender refuses a line over ``MAX_CHAT_BYTES`` before it
goes out; the receiver refuses anything that is not one well-formed chat object, so a
hostile peer cannot flood the terminal or smuggle control characters into it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from peer.tty.untrusted import shown

MAX_CHAT_BYTES: Final = 4096
# A message may carry JSON escapes, so its raw size may exceed the text's; past this
# it is refused unread.
MAX_RAW_CHAT_BYTES: Final = 8192
# Received chat lines shown: a burst of 20 (a pasted paragraph), then 5 a second.
CHAT_LINES_PER_SECOND: Final = 5.0
CHAT_BURST: Final = 20


class ChatError(ValueError):
    """A line we refuse to send; the message is for the user."""


@dataclass(frozen=True)
class ChatLine:
    text: str


@dataclass(frozen=True)
class ChatRefused:
    """A message from the other side that is not shown; ``why`` is for the user."""

    why: str


@dataclass(frozen=True)
class ChatIgnored:
    """A well-formed message of a type this version does not know (later extensions)."""

    kind: str


ChatReceived = ChatLine | ChatRefused | ChatIgnored


def encode_chat(text: str) -> str:
    """The wire message for one typed line, or ChatError if it may not be sent."""
    if "\n" in text or "\r" in text:
        raise ChatError("a chat message is one line")
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_CHAT_BYTES:
        raise ChatError(f"chat line too long ({size} bytes, at most {MAX_CHAT_BYTES}): not sent")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ChatError("the line is not valid text: not sent") from None
    return json.dumps({"type": "chat", "text": text}, ensure_ascii=False)


def decode_chat(message: str | bytes, sender: str) -> ChatReceived:
    """What a message received on ``chat`` means; never raises."""
    if isinstance(message, bytes):
        return ChatRefused(f"refused a binary chat message from {sender} ({len(message)} bytes)")
    raw_size = len(message.encode("utf-8", errors="replace"))
    if raw_size > MAX_RAW_CHAT_BYTES:
        return ChatRefused(f"refused an oversize chat message from {sender} ({raw_size} bytes)")
    try:
        data = json.loads(message)
    except ValueError:
        return ChatRefused(f"refused a chat message from {sender}: not JSON")
    if not isinstance(data, dict):
        return ChatRefused(f"refused a chat message from {sender}: not an object")
    kind = data.get("type")
    if kind != "chat":
        return ChatIgnored(str(kind))
    text = data.get("text")
    if not isinstance(text, str):
        return ChatRefused(f"refused a chat message from {sender}: no text")
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_CHAT_BYTES:
        return ChatRefused(f"refused an oversize chat message from {sender} ({size} bytes)")
    if "\n" in text or "\r" in text:
        return ChatRefused(f"refused a chat message from {sender}: more than one line")
    return ChatLine(printable(text))


def printable(text: str) -> str:
    """``text`` without control characters, so it cannot move the cursor or clear the
    screen of the person reading it (the peer's one filter, peer/tty/untrusted.py)."""
    return shown(text, None)


class ChatLimiter:
    """A token bucket for received chat lines: ``rate`` a second, bursts of ``burst``.

    A person types a line every few seconds; a stranger's script sends thousands. What
    is over the limit is counted, not shown, and the count is told once the flood
    stops (``dropped_since_told``). Time is passed in, so this stays pure.
    """

    def __init__(self, rate: float = CHAT_LINES_PER_SECOND, burst: int = CHAT_BURST) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None
        self.dropped = 0
        self._told = 0

    def allow(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.dropped += 1
        return False

    def untold(self) -> int:
        """Lines dropped since the last time this was asked; resets the count."""
        count, self._told = self.dropped - self._told, self.dropped
        return count


class RecentLines:
    """The last few chat lines, each shown in the call window for ``keep`` seconds.

    Time is passed in, so this stays pure.
    """

    def __init__(self, keep: float = 5.0, at_most: int = 3) -> None:
        self.keep = keep
        self.at_most = at_most
        self._lines: list[tuple[float, str]] = []

    def add(self, line: str, now: float) -> None:
        self._lines.append((now, line))
        del self._lines[: -self.at_most]

    def visible(self, now: float) -> list[str]:
        # OpenCV's font draws ASCII only; anything else would come out as '?' anyway.
        return [
            line.encode("ascii", errors="replace").decode("ascii")
            for added, line in self._lines
            if now - added < self.keep
        ]
