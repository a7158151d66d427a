"""Shared by the benchmark scripts and the tests: what they read about the processes
they start.

A free loopback port to start a server on, a process's output read line by line as it
comes, and its CPU time and memory from /proc, the same way everywhere so the figures
compare.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LineReader:
    """A child process's output, read line by line in a daemon thread as it comes.

    ``lines`` and ``arrived`` (each line's time.monotonic()) grow together under
    ``changed``; ``on_line`` sees each line first, in the reader thread (to parse a stats
    line or set an event).
    """

    def __init__(self, stream: IO[str], on_line: Callable[[str], None] | None = None) -> None:
        self.lines: list[str] = []
        self.arrived: list[float] = []
        self.ended = False  # the stream is at its end: the process has exited
        self.changed = threading.Condition()
        self._stream = stream
        self._on_line = on_line
        self._thread = threading.Thread(target=self._read, name="line-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for raw in self._stream:
            line = raw.rstrip("\n")
            at = time.monotonic()
            if self._on_line is not None:
                self._on_line(line)
            with self.changed:
                self.lines.append(line)
                self.arrived.append(at)
                self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def search(
        self, pattern: str, timeout: float, since: float | None = None
    ) -> tuple[int, re.Match[str]] | None:
        """The index and match of the first line matching ``pattern`` (among those that
        arrived at or after ``since``), waiting up to ``timeout`` s for it; None when none
        came in time or the output ended first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = 0
        with self.changed:
            while True:
                for index in range(checked, len(self.lines)):
                    if since is not None and self.arrived[index] < since:
                        continue
                    if match := regex.search(self.lines[index]):
                        return index, match
                checked = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    return None
                self.changed.wait(left)

    def tail(self, count: int = 15) -> str:
        with self.changed:
            return "\n".join(self.lines[-count:])

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)


class ReadProcess:
    """A child process whose stdout and stderr, merged, are read by a LineReader as they
    come; a subclass sees each line first in ``_read``, in the reader thread.

    A subclass sets what ``_read`` fills before calling this ``__init__``: lines can arrive
    as soon as the process starts.
    """

    def __init__(self, argv: list[str], **popen: Any) -> None:
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
        )
        assert self.process.stdout is not None
        self._output = LineReader(self.process.stdout, on_line=self._read)

    @property
    def lines(self) -> list[str]:
        return self._output.lines

    def _read(self, line: str) -> None:
        """Nothing by default: the lines are kept either way."""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGINT (the peer's own clean shut-down), SIGKILL after ``timeout`` s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._output.join(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a whole process (all its threads) so far."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of /proc/PID/status: VmRSS now, VmHWM its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def redis_server_argv(binary: str, port: int, directory: Path) -> list[str]:
    """A redis-server on loopback ``port`` that writes nothing to disk (tests, benchmarks)."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
    ]
