"""signaling/logging_setup.py: what reaches stderr at each -v count (a fresh process each)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers.support import ROOT

PROBE = """\
import logging, sys
from signaling.logging_setup import set_up_logging
set_up_logging(int(sys.argv[1]), quiet=["chatty"])
for name in ("ours", "chatty"):
    log = logging.getLogger(name)
    log.debug("%s debug", name)
    log.info("%s info", name)
    log.warning("%s warning", name)
"""


@pytest.mark.parametrize(
    ("verbosity", "shown"),
    [
        (0, {"ours warning", "chatty warning"}),
        (1, {"ours info", "ours warning", "chatty warning"}),
        (2, {"ours debug", "ours info", "ours warning", "chatty warning"}),
    ],
)
def test_each_v_shows_one_level_more_and_quiet_loggers_only_warn(
    verbosity: int, shown: set[str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(verbosity)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = result.stderr.splitlines()
    assert {line.split(": ", 1)[1] for line in lines} == shown
    stamped = re.compile(r"\d{4}-\d\d-\d\d [\d:,]+ (DEBUG|INFO|WARNING) (ours|chatty): ")
    assert all(stamped.match(line) for line in lines), lines
