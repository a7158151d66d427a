"""Starting webcam-peer processes against a test server, and reading their stats lines."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pty
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.support import BIN, Process, SignalingServer

# Bots answer every call: without --auto-answer (and no terminal) a webcam-peer declines.
BOT_FLAGS = ("--no-window", "--no-speaker", "--ice-host", "127.0.0.1", "--auto-answer")
# For calls that are about the data channels: no media, and the machine is shared.
NO_MEDIA = ("--video", "none", "--audio", "none")


def start_peer(server: SignalingServer, *args: str, env: dict[str, str] | None = None) -> Process:
    """A webcam-peer process talking to ``server``, loopback only, no window or speaker."""
    return Process(
        [str(BIN / "webcam-peer"), "--server", server.ws_url, *BOT_FLAGS, *args], env=env
    )


@contextlib.contextmanager
def peer_at_a_terminal(server: SignalingServer, *args: str) -> Iterator[tuple[Process, int]]:
    """A webcam-peer talking to ``server`` with exactly ``args`` (no flags added), whose
    standard input is a pseudo-terminal a person could type on; it and the master end to
    type on. Stopped, and the terminal closed, on leaving."""
    master, slave = pty.openpty()
    peer = Process([str(BIN / "webcam-peer"), "--server", server.ws_url, *args], stdin=slave)
    os.close(slave)
    try:
        yield peer, master
    finally:
        peer.stop()
        os.close(master)


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
    """Every JSON stats line the process has printed so far; ``_at`` is when it was read
    (time.monotonic())."""
    found = []
    for line, at in zip(process.drain(), process.arrived, strict=True):
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if data.get("event") in ("stats", "final"):
                data["_at"] = at
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


# Media floors for a call on loopback, well below what the benchmark measures
# (docs/benchmarks.md: 30 fps, fast p50 about 8 ms, stock about 43 ms) and below the
# spread measured on the shared 2-core machine under other engineers' load
# (docs/claims.md, "Media floors"). They catch a halved frame rate or a receive path
# that waits a frame interval; they do not time the machine.
WINDOW_SECONDS = 4.0
MIN_FPS_FROM_30 = 25.0  # a 30 fps synthetic source
MIN_FPS_FROM_CHROMIUM = 15.0  # Chromium's fake camera sends 20 fps
MAX_SKIPPED_SHARE = 0.01
AUDIO_FRAMES_PER_SECOND = 50.0  # 20 ms Opus frames
AUDIO_TOLERANCE = 0.2
# A frame interval (33 ms at 30 fps) is what aiortc's own buffer adds; the fast path
# releases a frame as its last packet arrives.
FAST_P50_BELOW_MS = 25.0
STOCK_P50_ABOVE_MS = 25.0
STOCK_P50_BELOW_MS = 120.0
# Echo: alice's frames through bob and back, both on the fast path (stock: two frame
# intervals, 67 ms, on top).
ECHO_ROUND_TRIP_P50_BELOW_MS = 50.0


@dataclass(frozen=True)
class MediaWindow:
    """What a peer received between two of its stats lines, after set-up."""

    first: dict[str, Any]
    last: dict[str, Any]

    @property
    def seconds(self) -> float:
        return float(self.last["_at"] - self.first["_at"])

    def grew(self, key: str) -> int:
        """How much a video counter of the stats line grew over the window."""
        return int(self.last["video"].get(key) or 0) - int(self.first["video"].get(key) or 0)

    @property
    def fps(self) -> float:
        return self.grew("frames") / self.seconds

    @property
    def audio_per_second(self) -> float:
        return (self.last["audio_frames"] - self.first["audio_frames"]) / self.seconds

    @property
    def skipped_share(self) -> float:
        """Frame numbers passed over, of all the sender's frame numbers in the window."""
        numbers = self.grew("last_frame_number")
        return self.grew("skipped_frames") / numbers if numbers > 0 else 1.0

    def describe(self) -> str:
        return json.dumps(
            {
                "seconds": round(self.seconds, 2),
                "fps": round(self.fps, 1),
                "audio_per_second": round(self.audio_per_second, 1),
                "skipped_share": round(self.skipped_share, 4),
                "first": {k: v for k, v in self.first.items() if k in _SHOWN},
                "last": {k: v for k, v in self.last.items() if k in _SHOWN},
            }
        )


_SHOWN = ("video", "audio_frames", "codec", "receive_path", "_at")


def media_windows(
    *processes: Process, seconds: float = WINDOW_SECONDS, after_frames: int = 30
) -> list[MediaWindow]:
    """Per process, two stats lines ``seconds`` apart, the first once ``after_frames`` frames
    arrived (the call is set up and the first keyframe decoded). The windows overlap, and
    the processes print a line every 0.5 s or so (--stats-interval)."""
    firsts = [wait_for_frames(process, after_frames) for process in processes]
    return [
        MediaWindow(first, _stats_after(process, first["_at"] + seconds))
        for process, first in zip(processes, firsts, strict=True)
    ]


def _stats_after(process: Process, moment: float) -> dict[str, Any]:
    """The first live stats line the process printed at or after ``moment``."""

    def after(line: dict[str, Any]) -> bool:
        return line["event"] == "stats" and line["_at"] >= moment

    return wait_for_stats(process, after, timeout=max(moment - time.monotonic(), 0) + 20)


def assert_media(
    window: MediaWindow,
    *,
    min_fps: float = MIN_FPS_FROM_30,
    codec: str | None = None,
    receive_path: str | None = None,
    stamped: bool = True,
    audio: bool = True,
) -> None:
    """The media promises of the README, on what one side received over ``window``:
    the frame rate, no freeze, every stamped frame in order (at most 1% skipped), the
    receive path's latency, audio at its rate, the codec and receive path in use."""
    seen = window.describe()
    print("media window:", seen)  # pytest shows it with a failure, or with -s
    assert window.fps >= min_fps, f"{window.fps:.1f} fps < {min_fps}: {seen}"
    assert window.grew("freezes") == 0, f"a freeze: {seen}"
    if stamped:
        assert window.grew("stamped_frames") == window.grew("frames"), f"unstamped: {seen}"
        assert window.grew("repeated_frames") == 0, f"a frame repeated: {seen}"
        assert window.grew("out_of_order_frames") == 0, f"a frame went backwards: {seen}"
        assert window.skipped_share <= MAX_SKIPPED_SHARE, f"frames skipped: {seen}"
    if audio:
        low = AUDIO_FRAMES_PER_SECOND * (1 - AUDIO_TOLERANCE)
        high = AUDIO_FRAMES_PER_SECOND * (1 + AUDIO_TOLERANCE)
        assert low <= window.audio_per_second <= high, f"audio rate: {seen}"
    if codec is not None:
        assert window.last["codec"] == codec, f"codec: {seen}"
    if receive_path is not None:
        path = window.last["receive_path"]
        assert path["path"] == receive_path, f"receive path: {seen}"
        released = int(path.get("frames_released", 0)) - int(
            window.first["receive_path"].get("frames_released", 0)
        )
        if receive_path == "fast":
            # Every decoded frame came out of the fast buffer: the flag took effect. Counted
            # from the start of the call: a window's first sample may catch a frame released
            # but not yet decoded, which would count in one difference and not the other.
            decoded = int(window.last["video"]["frames"])
            assert int(path["frames_released"]) >= decoded, f"not through the fast buffer: {seen}"
        else:
            assert released == 0, f"frames went through the fast buffer: {seen}"
        if stamped:
            p50 = window.last["video"]["latency_ms"]["p50"]
            if receive_path == "fast":
                assert p50 < FAST_P50_BELOW_MS, f"fast path p50 {p50} ms: {seen}"
            else:
                assert STOCK_P50_ABOVE_MS < p50 < STOCK_P50_BELOW_MS, f"stock p50 {p50}: {seen}"
