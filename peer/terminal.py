"""The one reader of standard input for the whole peer.

Lines go to whoever asked a question (``ask``) or else to the line handler (chat and
commands during a call), so the two never fight over stdin. A daemon thread does
the blocking reads: that works the same for a terminal, a pipe (tests, bots) and a
regular file, where the event loop's pipe readers do not. At EOF reading stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import IO

logger = logging.getLogger(__name__)

LineHandler = Callable[[str], None]


class Terminal:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._handler: LineHandler | None = None
        self._question: asyncio.Future[str | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def start(self, handler: LineHandler) -> None:
        """Read lines from now on; call from the event loop."""
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        stream = self._stream if self._stream is not None else sys.stdin
        if stream is None or stream.closed:
            self.closed = True
            return
        threading.Thread(target=self._read, args=(stream,), name="stdin", daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                if not self._deliver(line.rstrip("\r\n")):
                    return
        except (OSError, ValueError) as exc:  # stdin closed under us
            logger.debug("stopped reading stdin: %s", exc)
        self._deliver(None)

    def _deliver(self, line: str | None) -> bool:
        loop = self._loop
        assert loop is not None
        try:
            loop.call_soon_threadsafe(self._line, line)
        except RuntimeError:  # the loop is closed: the peer is exiting
            return False
        return True

    def _line(self, line: str | None) -> None:
        if line is None:
            self.closed = True
        question = self._question
        if question is not None and not question.done():
            question.set_result(line)
            return
        if line is not None and self._handler is not None:
            self._handler(line)

    async def ask(self, prompt: str, answer_within: float) -> str | None:
        """The next line typed, or None at EOF or after ``answer_within`` seconds."""
        print(prompt, flush=True)
        if self.closed or self._loop is None:
            return None
        self._question = self._loop.create_future()
        try:
            return await asyncio.wait_for(self._question, answer_within)
        except TimeoutError:
            print()
            return None
        finally:
            with contextlib.suppress(asyncio.InvalidStateError):
                self._question.cancel()
            self._question = None
