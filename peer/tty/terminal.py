"""The one reader of standard input for the whole peer.

Lines go to whoever asked a question (``ask``) or else to the line handler (chat and
commands during a call), so the two never fight over stdin. A daemon thread does
the blocking reads: that works the same for a terminal, a pipe (tests, bots) and a
regular file, where the event loop's pipe readers do not. At EOF reading stops.

A peer started in the background of an interactive shell (``webcam-peer ... &``)
must not be stopped by SIGTTIN for reading its terminal: the signal is ignored, the
read then fails with EIO, and the reader waits until the peer is in the foreground.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

logger = logging.getLogger(__name__)

BACKGROUND_RETRY = 1.0  # seconds between reads while in the background of a shell

LineHandler = Callable[[str], None]


class Terminal:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._handler: LineHandler | None = None
        self._question: asyncio.Future[str | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    @property
    def interactive(self) -> bool:
        """A person can answer: standard input is a terminal still open."""
        stream = self._stream if self._stream is not None else sys.stdin
        if self.closed or stream is None or stream.closed:
            return False
        try:
            return stream.isatty()
        except (ValueError, OSError):
            return False

    def start(self, handler: LineHandler) -> None:
        """Read lines from now on; call from the event loop."""
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        stream = self._stream if self._stream is not None else sys.stdin
        if stream is None or stream.closed:
            self.closed = True
            return
        if stream.isatty():
            with contextlib.suppress(ValueError, OSError, AttributeError):
                signal.signal(signal.SIGTTIN, signal.SIG_IGN)
        threading.Thread(target=self._read, args=(stream,), name="stdin", daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        while True:
            try:
                line = stream.readline()
            except OSError as exc:
                if exc.errno == errno.EIO and _in_background(stream):
                    time.sleep(BACKGROUND_RETRY)  # until the shell brings us back
                    continue
                logger.debug("stopped reading stdin: %s", exc)
                break
            except ValueError as exc:  # stdin closed under us
                logger.debug("stopped reading stdin: %s", exc)
                break
            if not line:
                break
            if not self._deliver(line.rstrip("\r\n")):
                return
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


def _in_background(stream: IO[str]) -> bool:
    """True when another process group owns the terminal (a shell's background job);
    False when it is ours or gone (hung up)."""
    try:
        return os.tcgetpgrp(stream.fileno()) != os.getpgrp()
    except OSError:
        return False
