"""Helpers for tests that start real processes: free ports, waiting for output lines."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """A child process whose combined output is read line by line in a thread."""

    argv: Sequence[str]
    env: dict[str, str] | None = None
    stdin: int | None = None  # a file descriptor (a pseudo-terminal, say); default a pipe
    cwd: Path = ROOT
    popen: subprocess.Popen[str] = field(init=False)
    lines: list[str] = field(default_factory=list)
    # When each of ``lines`` was read (time.monotonic()): rates over a window need it.
    arrived: list[float] = field(default_factory=list)
    _queue: queue.Queue[tuple[float, str] | None] = field(default_factory=queue.Queue)

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
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._queue.put((time.monotonic(), line.rstrip("\n")))
        self._queue.put(None)

    def wait_for(
        self, pattern: str, timeout: float = 20.0, since: float | None = None
    ) -> re.Match[str]:
        """Read lines until one matches ``pattern``; fail with everything seen so far.

        ``since`` (a time.monotonic() taken before the action the line answers) ignores
        lines that arrived before it: a second call's "connected" must not match the first's.
        """
        regex = re.compile(pattern)
        for line, at in zip(self.lines, self.arrived, strict=True):
            if (since is None or at >= since) and (match := regex.search(line)):
                return match
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                if remaining <= 0:
                    raise AssertionError(
                        f"no line matching {pattern!r} within {timeout}s from {self.argv[:3]}; "
                        "output:\n" + "\n".join(self.lines[-60:])
                    ) from None
                continue
            if item is None:
                raise AssertionError(
                    f"process {self.argv[:3]} exited ({self.popen.wait()}) before printing "
                    f"{pattern!r}; output:\n" + "\n".join(self.lines[-60:])
                )
            self._keep(item)
            if (since is None or item[0] >= since) and (match := regex.search(item[1])):
                return match

    def drain(self) -> list[str]:
        """Collect whatever lines have arrived so far without waiting."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return self.lines
            if line is None:
                return self.lines
            self._keep(line)

    def _keep(self, item: tuple[float, str]) -> None:
        self.arrived.append(item[0])
        self.lines.append(item[1])

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
        time.sleep(0.05)
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
