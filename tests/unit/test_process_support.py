"""tests/helpers/support.py's Process: a wait for a line can skip lines from before an action."""

from __future__ import annotations

import sys
import time

import pytest

from tests.helpers.support import Process

SAYS_TWICE = "print('call connected 1', flush=True); input(); print('call connected 2')"


def test_wait_for_since_ignores_lines_that_arrived_before_the_mark() -> None:
    process = Process([sys.executable, "-c", SAYS_TWICE])
    try:
        process.wait_for("call connected 1")
        second_call = time.monotonic()
        assert process.wait_for(r"call connected (\d)").group(1) == "1"  # no mark: the old line
        with pytest.raises(AssertionError, match="no line matching"):
            process.wait_for("call connected", timeout=0.5, since=second_call)
        process.type_line("")
        assert process.wait_for(r"call connected (\d)", since=second_call).group(1) == "2"
    finally:
        process.stop()
