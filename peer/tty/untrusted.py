"""Text from outside (the other side of a call, the signaling server) made safe to
show: the one printable filter every such string goes through before it is printed,
logged or drawn (docs/security.md).

A name, a close reason or an error text may carry terminal escapes (``ESC ]52``
writes the clipboard, ``ESC [2J`` clears the screen), line breaks that forge a line
of our own, or bidirectional overrides that disguise what follows; none survives.
"""

from __future__ import annotations

import logging
from typing import Final

from signaling.protocol import is_valid_username

REPLACEMENT: Final = "\N{REPLACEMENT CHARACTER}"
# A reason or error text is a few words; more is noise somebody wants us to print.
DEFAULT_LIMIT: Final = 200


def shown(value: object, limit: int | None = DEFAULT_LIMIT) -> str:
    """``value`` as one printable line: every control, format or separator character
    (but the ASCII space) replaced, cut to ``limit`` characters (None: no cut)."""
    text = value if isinstance(value, str) else repr(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return "".join(c if c.isprintable() or c == " " else REPLACEMENT for c in text)


def shown_lines(text: str) -> str:
    """Our own multi-line text that may embed remote parts: each line made printable,
    the line breaks kept (a remote part cannot bring one: it went through
    :func:`shown` first, or this replaces its escapes all the same)."""
    return "\n".join(shown(line, None) for line in text.split("\n"))


def username_from_server(value: object) -> str | None:
    """A username the server stamped on a message, if it follows the protocol's rule
    (1-32 letters, digits, '_', '.', '-'); None for anything else."""
    return value if is_valid_username(value) and isinstance(value, str) else None


class PrintableFormatter(logging.Formatter):
    """The log's last line of defence: whatever a message interpolated, what reaches
    stderr has no escapes (line breaks stay, for tracebacks)."""

    def format(self, record: logging.LogRecord) -> str:
        return shown_lines(super().format(record))
