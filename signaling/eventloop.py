"""The event loop the server runs on: uvloop's where it is installed.

Measured with scripts/bench_signaling.py (docs/benchmarks.md): uvloop takes the
socket reads and writes, which are most of what is left of a relayed message once
the JSON is fast, out of Python.
"""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        logger.info("uvloop is not installed; using asyncio's own event loop")
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
