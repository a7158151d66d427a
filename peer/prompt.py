"""Asking the person at the terminal a yes/no question without blocking the event loop."""

from __future__ import annotations

import asyncio
import os
import sys


async def ask_yes_no(question: str, answer_within: float = 30.0) -> bool:
    """True for an answer starting with y; no answer, EOF or a timeout count as no."""
    print(question, flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        # A duplicate, so closing the pipe afterwards leaves stdin open for next time.
        pipe = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
    except (ValueError, OSError, NotImplementedError, AttributeError):
        return False  # no usable terminal (Windows console, closed stdin)
    try:
        line = await asyncio.wait_for(reader.readline(), answer_within)
    except TimeoutError:
        print()
        return False
    finally:
        transport.close()
    return line.decode(errors="replace").strip().lower().startswith("y")
