"""Chat and file transfers between two webcam-peer processes, through a real server."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.peer_support import (
    NO_MEDIA,
    connected_pair,
    files_in,
    random_file,
    sha256_of,
    start_peer,
    stats_lines,
    wait_for_stats,
)
from tests.helpers.support import Process, SignalingServer

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
# Generous: throughput is not what these tests measure, and the machine is shared.
TRANSFER_TIMEOUT = 400.0
# The receiver takes the caller's files without a question (tests/process/test_file_consent.py
# covers the question).
FROM_ALICE = ("--accept-files-from", "alice")


def sparse_file(path: Path, size: int) -> Path:
    """A big file that costs no disk: a transfer of it is still running when cancelled."""
    with path.open("wb") as file:
        file.truncate(size)
    return path


def peak_rss_kib(process: Process) -> int:
    status = Path(f"/proc/{process.popen.pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


def wait_for_partial_file(directory: Path, at_least: int = 2 * MIB) -> Path:
    """The receiver's temporary file, once it holds ``at_least`` bytes."""
    deadline = time.monotonic() + TRANSFER_TIMEOUT
    while time.monotonic() < deadline:
        parts = list(directory.glob(".webcam-peer-*.part"))
        if parts and parts[0].stat().st_size >= at_least:
            return parts[0]
        time.sleep(0.1)
    raise AssertionError(f"no temporary file of {at_least} bytes in {directory}")


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    alice.mkdir()
    bob.mkdir()
    yield alice, bob


def test_chat_both_ways_and_commands(
    signaling_server: SignalingServer, dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    alice_dir, _ = dirs
    note = tmp_path / "note for alice.txt"
    note.write_text("a short note\n")
    alice, bob = connected_pair(
        signaling_server,
        (*NO_MEDIA, "--download-dir", str(alice_dir), "--accept-files-from", "bob"),
        NO_MEDIA,
    )
    try:
        alice.wait_for("chat with bob open")
        bob.wait_for("chat with alice open")
        alice.type_line("hello bob, ça va? 👋")
        bob.wait_for(r"^\[\d\d:\d\d:\d\d\] alice: hello bob, ça va\? 👋$")
        bob.type_line("fine thanks")
        alice.wait_for(r"^\[\d\d:\d\d:\d\d\] bob: fine thanks$")
        bob.type_line("//slash at the start")
        alice.wait_for(r"\] bob: /slash at the start$")

        alice.type_line("y" * 5000)
        alice.wait_for(r"chat line too long \(5000 bytes, at most 4096\): not sent")
        alice.type_line("/nonsense")
        alice.wait_for(r"unknown command /nonsense")
        alice.type_line("/help")
        alice.wait_for(r"/send PATH\s+send a file")
        alice.type_line("after the refusals")
        bob.wait_for(r"\] alice: after the refusals$")

        # A file sent with a command typed during the call.
        bob.type_line(f"/send {tmp_path / 'missing.txt'}")
        bob.wait_for(r"missing\.txt: no such file")
        bob.type_line(f"/send {note}")
        bob.wait_for(
            r"sent note for alice\.txt \(13 bytes\) to alice, sha256 \w+: verified by alice$"
        )
        alice.wait_for(r"received note for alice\.txt from bob -> .* verified$")
        alice.type_line("/cancel")
        alice.wait_for("no transfer to cancel")
    finally:
        alice.stop()
        bob.stop()
    assert (alice_dir / "note for alice.txt").read_text() == "a short note\n"
    assert not any("yyyy" in line or "nonsense" in line for line in bob.lines)
    assert "Traceback" not in "\n".join(alice.lines + bob.lines)


@pytest.mark.timeout(2 * TRANSFER_TIMEOUT + 60)
def test_100_mib_both_ways_in_one_call(
    signaling_server: SignalingServer, dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    alice_dir, bob_dir = dirs
    to_bob = random_file(tmp_path / "to bob.bin", 100 * MIB)
    to_alice = random_file(tmp_path / "to-alice.dat", 100 * MIB + 12345)
    # bob already has a file of that name: it must survive, the new one gets "(1)".
    (bob_dir / "to bob.bin").write_bytes(b"bob's own file")
    alice, bob = connected_pair(
        signaling_server,
        (
            *NO_MEDIA,
            "--send-file",
            str(to_bob),
            "--download-dir",
            str(alice_dir),
            "--accept-files-from",
            "bob",
            "--stats-interval",
            "1",
        ),
        (*NO_MEDIA, "--send-file", str(to_alice), "--download-dir", str(bob_dir), *FROM_ALICE),
    )
    try:
        alice.wait_for("chat with bob open")
        start_peak = {"alice": peak_rss_kib(alice), "bob": peak_rss_kib(bob)}
        received_by_bob = bob.wait_for(
            r"received to bob\.bin from alice -> (.+) \((\d+) bytes\), sha256 ([0-9a-f]{64}) "
            r"verified$",
            TRANSFER_TIMEOUT,
        )
        received_by_alice = alice.wait_for(
            r"received to-alice\.dat from bob -> (.+) \((\d+) bytes\), sha256 ([0-9a-f]{64}) "
            r"verified$",
            TRANSFER_TIMEOUT,
        )
        alice.wait_for(
            rf"sent to bob\.bin \({100 * MIB} bytes\) to bob, sha256 \w+: verified by bob"
        )
        bob.wait_for(r"sent to-alice\.dat \(\d+ bytes\) to alice, sha256 \w+: verified by alice")
        growth = {
            "alice": peak_rss_kib(alice) - start_peak["alice"],
            "bob": peak_rss_kib(bob) - start_peak["bob"],
        }
        # The stats line in force once both transfers are over.
        transfers = wait_for_stats(
            alice,
            lambda s: (
                (s.get("transfers") or {}).get("files_received") == 1
                and s["transfers"]["files_sent"] == 1
            ),
        )["transfers"]
        assert transfers["bytes_sent"] == 100 * MIB
        assert transfers["bytes_received"] == 100 * MIB + 12345
        alice.type_line("still talking after the files")
        bob.wait_for(r"\] alice: still talking after the files$")
    finally:
        alice.stop()
        bob.stop()

    # The last stats line, printed as the call ends, still counts what went through.
    final = [line for line in stats_lines(alice) if line["event"] == "final"]
    assert final and final[-1]["transfers"]["files_sent"] == 1
    assert final[-1]["transfers"]["files_received"] == 1
    saved_by_bob = Path(received_by_bob.group(1))
    saved_by_alice = Path(received_by_alice.group(1))
    assert saved_by_bob == bob_dir / "to bob (1).bin"
    assert saved_by_alice == alice_dir / "to-alice.dat"
    assert sha256_of(saved_by_bob) == sha256_of(to_bob) == received_by_bob.group(3)
    assert sha256_of(saved_by_alice) == sha256_of(to_alice) == received_by_alice.group(3)
    assert (bob_dir / "to bob.bin").read_bytes() == b"bob's own file"
    assert files_in(bob_dir) == ["to bob (1).bin", "to bob.bin"]  # no .part left
    assert files_in(alice_dir) == ["to-alice.dat"]
    # Each process sent and received 100 MiB at once without holding either file.
    for who, kib in growth.items():
        assert kib < 50 * 1024, f"{who}'s peak memory grew by {kib} KiB"
    # Progress was reported along the way, not only at the end.
    assert any(re.search(r"sending to bob\.bin: 50% ", line) for line in alice.lines)
    assert any(re.search(r"receiving to bob\.bin: 50% ", line) for line in bob.lines)


def start_big_transfer(
    server: SignalingServer, bob_dir: Path, tmp_path: Path
) -> tuple[Process, Process]:
    """alice calls bob and starts sending him 1 GiB (sparse, so it costs no disk)."""
    big = sparse_file(tmp_path / "big.iso", 1024 * MIB)
    return connected_pair(
        server,
        (*NO_MEDIA, "--send-file", str(big)),
        (*NO_MEDIA, "--download-dir", str(bob_dir), *FROM_ALICE),
    )


@pytest.mark.parametrize("who", ["sender", "receiver"])
def test_cancel_mid_transfer(
    signaling_server: SignalingServer, dirs: tuple[Path, Path], tmp_path: Path, who: str
) -> None:
    _, bob_dir = dirs
    alice, bob = start_big_transfer(signaling_server, bob_dir, tmp_path)
    try:
        number = bob.wait_for(r"receiving big\.iso \(\d+ bytes\) from alice as transfer (\d+)")
        wait_for_partial_file(bob_dir)
        if who == "sender":
            alice.type_line("/cancel")
            alice.wait_for(r"transfer of big\.iso to bob cancelled$")
            bob.wait_for(r"transfer of big\.iso from alice cancelled by alice \(nothing saved\)$")
        else:
            bob.type_line(f"/cancel {number.group(1)}")
            bob.wait_for(r"transfer of big\.iso from alice cancelled \(nothing saved\)$")
            alice.wait_for(r"transfer of big\.iso to bob cancelled by bob$")
        assert files_in(bob_dir) == []
        # The call and its chat go on.
        alice.type_line("sorry, wrong file")
        bob.wait_for(r"\] alice: sorry, wrong file$")
    finally:
        alice.stop()
        bob.stop()
    assert files_in(bob_dir) == []
    assert "Traceback" not in "\n".join(alice.lines + bob.lines)


@pytest.mark.parametrize(
    ("who", "signum"),
    [("sender", signal.SIGTERM), ("sender", signal.SIGKILL), ("receiver", signal.SIGTERM)],
)
def test_hanging_up_mid_transfer_leaves_no_file(
    signaling_server: SignalingServer,
    dirs: tuple[Path, Path],
    tmp_path: Path,
    who: str,
    signum: int,
) -> None:
    _, bob_dir = dirs
    alice, bob = start_big_transfer(signaling_server, bob_dir, tmp_path)
    try:
        wait_for_partial_file(bob_dir)
        if who == "sender":
            alice.signal(signum)
            bob.wait_for(r"transfer of big\.iso from alice failed: .* \(nothing saved\)$")
            bob.wait_for(r"call with alice ended")
        else:
            bob.signal(signum)
            assert bob.wait() == 0
            alice.wait_for(r"transfer of big\.iso to bob failed")
    finally:
        alice.stop()
        bob.stop()
    assert files_in(bob_dir) == []


def test_a_killed_receivers_partial_file_is_removed_by_its_next_run(
    signaling_server: SignalingServer, dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    _, bob_dir = dirs
    alice, bob = start_big_transfer(signaling_server, bob_dir, tmp_path)
    try:
        partial = wait_for_partial_file(bob_dir)
        bob.signal(signal.SIGKILL)  # no chance to delete anything
        bob.wait()
        alice.wait_for(r"transfer of big\.iso to bob failed")
    finally:
        alice.stop()
        bob.stop()
    assert files_in(bob_dir) == [partial.name]
    # Another run's transfer in progress is left alone; only an abandoned one goes.
    live = bob_dir / ".webcam-peer-live.part"
    live.write_bytes(b"being written")
    long_ago = time.time() - 3600
    os.utime(partial, (long_ago, long_ago))
    bob = start_peer(signaling_server, "--login", "bob", *NO_MEDIA, "--download-dir", str(bob_dir))
    try:
        bob.wait_for(r"removed 1 partial file\(s\) an interrupted earlier run left")
        bob.wait_for("waiting for calls")
    finally:
        bob.stop()
    assert files_in(bob_dir) == [live.name]


def test_bad_command_line_files(signaling_server: SignalingServer, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"x")
    cases = [
        (("--send-file", str(tmp_path / "missing.bin")), "missing.bin: no such file"),
        (("--send-file", str(tmp_path)), "not a regular file"),
        (("--download-dir", str(tmp_path / "a-file")), "is not a directory"),
        (("--max-receive-size", "lots"), "must look like 1048576, 500M or 2G"),
    ]
    for flags, message in cases:
        peer = start_peer(signaling_server, "--login", "carol", *NO_MEDIA, *flags)
        assert peer.wait() == 2
        output = "\n".join(peer.lines)
        assert message in output and "Traceback" not in output
    # A missing download directory is made.
    peer = start_peer(
        signaling_server, "--login", "carol", *NO_MEDIA, "--download-dir", str(tmp_path / "new/dl")
    )
    try:
        peer.wait_for("waiting for calls")
        assert (tmp_path / "new" / "dl").is_dir()
    finally:
        peer.stop()
