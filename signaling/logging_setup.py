"""The logging both commands set up from their ``-v`` count: one format, one level scale."""

from __future__ import annotations

import logging
from collections.abc import Iterable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)


def set_up_logging(
    verbosity: int,
    *,
    quiet: Iterable[str] = (),
    formatter: type[logging.Formatter] = logging.Formatter,
) -> None:
    """Log to stderr: warnings at 0, info at 1, debug from 2; the ``quiet`` loggers
    (chatty libraries) warnings only."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(LOG_FORMAT))
    logging.basicConfig(level=_LEVELS[min(max(verbosity, 0), 2)], handlers=[handler])
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
