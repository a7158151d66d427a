"""Malformed HTTP from clients: one log line, not a traceback.

aiohttp logs every request it cannot parse (garbage on the port, a header line over
8 KiB, a broken request line) at ERROR with the parser's traceback, under
``aiohttp.server``. The client already got its ``400``; for the operator it is one
event caused by somebody else's bytes, and a client sending garbage in a loop must not
fill the log with tracebacks. The socket fuzzer (tests/process/test_fuzz_server.py) found it.
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp.http_exceptions import HttpProcessingError

AIOHTTP_SERVER_LOGGER: Final = "aiohttp.server"


class BadRequestFilter(logging.Filter):
    """Turns aiohttp's traceback for a client's bad HTTP request into one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or not 400 <= exc.code < 500:
            return True
        logger = logging.getLogger(record.name)
        if not logger.isEnabledFor(logging.INFO):
            return False
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "bad HTTP request from %s: %s %s"
        record.args = (remote, exc.code, exc.message.splitlines()[0] if exc.message else "")
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def install() -> None:
    """Once per process (the entry point calls it with the rest of the logging set-up)."""
    logger = logging.getLogger(AIOHTTP_SERVER_LOGGER)
    if not any(isinstance(f, BadRequestFilter) for f in logger.filters):
        logger.addFilter(BadRequestFilter())
