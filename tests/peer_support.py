"""Starting webcam-peer processes against a test server, and reading their stats lines."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .support import BIN, Process, SignalingServer

# Bots answer every call: without --auto-answer (and no terminal) a webcam-peer declines.
BOT_FLAGS = ("--no-window", "--no-speaker", "--ice-host", "127.0.0.1", "--auto-answer")
# For calls that are about the data channels: no media, and the machine is shared.
NO_MEDIA = ("--video", "none", "--audio", "none")


def start_peer(server: SignalingServer, *args: str, env: dict[str, str] | None = None) -> Process:
    """A webcam-peer process talking to ``server``, loopback only, no window or speaker."""
    return Process(
        [str(BIN / "webcam-peer"), "--server", server.ws_url, *BOT_FLAGS, *args], env=env
    )


def connected_pair(
    server: SignalingServer, alice_flags: Sequence[str] = (), bob_flags: Sequence[str] = ()
) -> tuple[Process, Process]:
    """bob waiting for calls, alice calling him, both connected."""
    bob = start_peer(server, "--login", "bob", *bob_flags)
    alice: Process | None = None
    try:
        bob.wait_for("waiting for calls")
        alice = start_peer(server, "--login", "alice", "--call", "bob", *alice_flags)
        alice.wait_for("call with bob connected")
        bob.wait_for("call with alice connected")
    except BaseException:
        for process in (alice, bob):
            if process is not None:
                process.stop()
        raise
    return alice, bob


def stats_lines(process: Process) -> list[dict[str, Any]]:
    """Every JSON stats line the process has printed so far."""
    found = []
    for line in process.drain():
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if data.get("event") in ("stats", "final"):
                found.append(data)
    return found


def wait_for_stats(
    process: Process, condition: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> dict[str, Any]:
    """Wait until the process prints a stats line for which ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = stats_lines(process)
        if lines and condition(lines[-1]):
            return lines[-1]
        if process.popen.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError("no stats line as expected; output:\n" + "\n".join(process.drain()[-40:]))


def wait_for_frames(process: Process, frames: int, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until a stats line reports at least ``frames`` video frames received."""
    try:
        return wait_for_stats(
            process, lambda line: (line["video"].get("frames") or 0) >= frames, timeout
        )
    except AssertionError as exc:
        raise AssertionError(f"fewer than {frames} frames reported; {exc}") from None


def files_in(directory: Path) -> list[str]:
    """The names in ``directory``, hidden temporary files included, sorted."""
    return sorted(p.name for p in directory.iterdir())


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read a MiB at a time (files here go up to hundreds of MiB)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def random_file(path: Path, size: int) -> Path:
    """``size`` random bytes, written a MiB at a time."""
    with path.open("wb") as file:
        for _ in range(size // (1024 * 1024)):
            file.write(os.urandom(1024 * 1024))
        file.write(os.urandom(size % (1024 * 1024)))
    return path
