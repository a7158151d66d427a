"""Progress of one file transfer for the person at the terminal.

A tqdm bar on stderr when stderr is a terminal; otherwise (logs, tests, bots) a plain
line at every tenth, so a log shows progress without a line per chunk.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Final, Protocol

from tqdm import tqdm

STEPS: Final = 10


class Progress(Protocol):
    def advance(self, count: int) -> None: ...

    def close(self) -> None: ...


class BarProgress:
    def __init__(self, label: str, total: int) -> None:
        self._bar = tqdm(
            total=total,
            desc=label,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
        )

    def advance(self, count: int) -> None:
        self._bar.update(count)

    def close(self) -> None:
        self._bar.close()


class LineProgress:
    def __init__(self, label: str, total: int, say: Callable[[str], None]) -> None:
        self._label = label
        self._total = total
        self._say = say
        self._done = 0
        self._step = 0

    def advance(self, count: int) -> None:
        self._done += count
        if self._total <= 0:
            return
        step = self._done * STEPS // self._total
        if step > self._step and step < STEPS:  # the final line says 100%
            self._step = step
            self._say(
                f"{self._label}: {step * 100 // STEPS}% ({self._done} of {self._total} bytes)"
            )

    def close(self) -> None:
        pass


def make_progress(label: str, total: int, say: Callable[[str], None]) -> Progress:
    if sys.stderr is not None and sys.stderr.isatty():
        return BarProgress(label, total)
    return LineProgress(label, total, say)


@contextlib.contextmanager
def above_progress_bars() -> Iterator[None]:
    """Print a line above any progress bar on the terminal instead of through it."""
    with tqdm.external_write_mode():
        yield
