"""Helpers for tests that start real processes: free ports, waiting for output lines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchproc import LineReader, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

__all__ = [
    "BIN",
    "ROOT",
    "Process",
    "SignalingServer",
    "free_port",
    "start_signaling_server",
    "wait_until_logged",
]


def wait_until_logged(
    processes: Sequence[Process], pattern: str, count: int = 1, timeout: float = 20.0
) -> str:
    """Wait until ``count`` lines of the processes' output match ``pattern``; return it all.

    A process logs after it has answered: the answer reaching the test does not mean the
    line has come through the pipe yet, so a log is waited for, never just read.
    """
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        log = "\n".join(line for process in processes for line in process.drain())
        found = sum(1 for line in log.splitlines() if regex.search(line))
        if found >= count:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{found} of {count} lines matching {pattern!r} within {timeout} s; "
                f"output:\n{log[-4000:]}"
            )
        time.sleep(0.05)


@dataclass
class Process:
    """A child process whose combined output is read line by line in a thread.

    ``lines`` and ``arrived`` change only in the test's own thread, in wait_for and
    drain: what a test reads from them stays put between those calls.
    """

    argv: Sequence[str]
    env: dict[str, str] | None = None
    stdin: int | None = None  # a file descriptor (a pseudo-terminal, say); default a pipe
    cwd: Path = ROOT
    popen: subprocess.Popen[str] = field(init=False)
    lines: list[str] = field(default_factory=list)
    # When each of ``lines`` was read (time.monotonic()): rates over a window need it.
    arrived: list[float] = field(default_factory=list)
    _output: LineReader = field(init=False)

    def __post_init__(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        self.popen = subprocess.Popen(
            list(self.argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if self.stdin is None else self.stdin,
            text=True,
            env=env,
            cwd=self.cwd,
        )
        assert self.popen.stdout is not None
        self._output = LineReader(self.popen.stdout)

    def wait_for(
        self, pattern: str, timeout: float = 20.0, since: float | None = None
    ) -> re.Match[str]:
        """Read lines until one matches ``pattern``; fail with everything seen so far.

        ``since`` (a time.monotonic() taken before the action the line answers) ignores
        lines that arrived before it: a second call's "connected" must not match the first's.
        """
        found = self._output.search(pattern, timeout, since)
        if found is None:
            self.drain()
            seen = "\n".join(self.lines[-60:])
            if self._output.ended:
                raise AssertionError(
                    f"process {self.argv[:3]} exited ({self.popen.wait()}) before printing "
                    f"{pattern!r}; output:\n{seen}"
                )
            raise AssertionError(
                f"no line matching {pattern!r} within {timeout}s from {self.argv[:3]}; "
                f"output:\n{seen}"
            )
        index, match = found
        self._take(index + 1)
        return match

    def drain(self) -> list[str]:
        """Collect whatever lines have arrived so far without waiting."""
        self._take(None)
        return self.lines

    def _take(self, upto: int | None) -> None:
        """Bring the reader's lines (up to index ``upto``) into ``lines``."""
        output = self._output
        with output.changed:
            end = len(output.lines) if upto is None else max(upto, len(self.lines))
            self.lines.extend(output.lines[len(self.lines) : end])
            self.arrived.extend(output.arrived[len(self.arrived) : end])

    def type_line(self, text: str) -> None:
        """Write one line to the process's stdin, as a person at its terminal would."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(text + "\n")
        self.popen.stdin.flush()

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        code = self.popen.wait(timeout=timeout)
        self._output.join(1.0)  # the last lines, still in the pipe
        self.drain()
        return code

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._output.join(0.2)
        self.drain()


@dataclass
class SignalingServer:
    process: Process
    host: str
    port: int
    scheme: str = "http"

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://{self.host}:{self.port}/ws"


def start_signaling_server(
    *extra: str, port: int | None = None, env: dict[str, str] | None = None
) -> SignalingServer:
    port = port or free_port()
    process = Process([str(BIN / "signaling-server"), "--port", str(port), "-v", *extra], env)
    match = process.wait_for(r"listening on (https?)://")
    return SignalingServer(process, "127.0.0.1", port, match.group(1))
