"""scripts/demo.sh, the README's main job, run as a new user runs it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.support import BIN, ROOT, free_port

pytestmark = pytest.mark.slow

DEFAULT_SECONDS = 10
# Set-up (already done), server start, login, hang-up and the summary come on top of the
# call itself; the old script never returned at all.
RETURNS_WITHIN = DEFAULT_SECONDS + 20


def _processes_in_session(session: int) -> list[str]:
    """Command lines of the processes still alive in ``session`` (demo.sh's own session)."""
    found = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
            cmdline = (stat_path.parent / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields: state, ppid, pgrp, session, ...; a zombie has already ended.
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As a restarted server would bind: connections in TIME_WAIT do not count, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def run_demo(root: Path, *args: str) -> tuple[int, str, float, list[str], int]:
    """Run ``root``/scripts/demo.sh in a session of its own; returns its exit status, output,
    duration, what was left running in its session and the port it used."""
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [str(root / "scripts" / "demo.sh"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PORT": str(port)},
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=RETURNS_WITHIN)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        output, _ = process.communicate()
        raise AssertionError(
            f"scripts/demo.sh did not return within {RETURNS_WITHIN} s:\n{output[-3000:]}"
        ) from None
    elapsed = time.monotonic() - started
    time.sleep(0.3)  # what it left behind has had time to show up
    left = _processes_in_session(process.pid)
    if left:
        os.killpg(process.pid, 9)
    return process.returncode, output, elapsed, left, port


def test_demo_at_its_defaults_returns_cleans_up_and_reports() -> None:
    status, output, elapsed, left, port = run_demo(ROOT)
    assert status == 0, output[-4000:]
    assert elapsed >= DEFAULT_SECONDS
    assert left == [], f"left running: {left}"
    assert _port_is_free(port), f"port {port} still taken after the demo"
    summary = [line for line in output.splitlines() if line.startswith("demo: ")]
    for user, other in (("alice", "bob"), ("bob", "alice")):
        line = next((s for s in summary if s.startswith(f"demo: {user}:")), None)
        assert line is not None, output[-4000:]
        match = re.search(
            rf"received (\d+) frames from {other}, 640x480 at ([\d.]+) fps \((\w+)\), "
            r"latency p50 ([\d.]+) ms",
            line,
        )
        assert match, line
        frames, fps = int(match[1]), float(match[2])
        assert frames >= 20 * (DEFAULT_SECONDS - 3), line
        assert fps >= 20, line
        assert match[3] == "vp8", line
    assert summary[-1] == "demo: done"
    assert "Traceback" not in output


def _broken_copy(tmp_path: Path, replace: dict[str, str], *extra: str) -> Path:
    """demo.sh and its summary in a tree of their own, set-up already done, whose
    webcam-peer gets its arguments with ``replace`` applied and ``extra`` added (the demo
    itself is unchanged)."""
    root = tmp_path / "demo"
    (root / "scripts").mkdir(parents=True)
    for name in ("demo.sh", "demo_summary.py"):
        shutil.copy2(ROOT / "scripts" / name, root / "scripts" / name)
    setup = root / "scripts" / "setup.sh"
    setup.write_text("#!/bin/sh\nexit 0\n")
    setup.chmod(0o755)
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name in ("python", "signaling-server"):
        (venv_bin / name).symlink_to(BIN / name)
    peer = venv_bin / "webcam-peer"
    real = str(BIN / "webcam-peer")
    peer.write_text(
        f"#!{BIN / 'python'}\nimport os, sys\n"
        f"replace = {replace!r}\n"
        f"argv = [replace.get(arg, arg) for arg in sys.argv[1:]] + {list(extra)!r}\n"
        f"os.execv({real!r}, [{real!r}, *argv])\n"
    )
    peer.chmod(0o755)
    return root


def test_demo_fails_when_no_video_arrives(tmp_path: Path) -> None:
    status, output, _, left, _ = run_demo(_broken_copy(tmp_path, {"synthetic": "none"}), "4")
    assert status == 1, output[-4000:]
    assert "connected, but no video frame was decoded" in output
    assert "demo: FAILED" in output
    assert left == [], f"left running: {left}"


def test_demo_fails_when_the_call_never_connects(tmp_path: Path) -> None:
    # Both offer only an address nobody can reach: signaling works, ICE does not.
    broken = _broken_copy(tmp_path, {"127.0.0.1": "192.0.2.1"})
    status, output, _, left, _ = run_demo(broken, "4")
    assert status != 0, output[-4000:]
    assert "the call never connected" in output or "demo: FAILED" in output
    assert left == [], f"left running: {left}"
