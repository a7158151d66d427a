"""Device names resolved and listed (media/sources/devices.py), and --list-devices as a
user runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from media.errors import MediaSourceError
from media.sources.devices import AudioDevice, Camera, DeviceList, format_listing, resolve
from peer.errors import ExitCode
from tests.helpers.peer_support import start_peer
from tests.helpers.support import BIN, SignalingServer

# What PortAudio reports on a Windows laptop: one microphone seen through three host
# APIs, a headset, and speakers.
WINDOWS = [
    AudioDevice(0, "Microphone Array (Realtek Audio)", "MME", 2, 0, default_input=True),
    AudioDevice(1, "Speakers (Realtek Audio)", "MME", 0, 2, default_output=True),
    AudioDevice(2, "Headset Microphone (Jabra EVOLVE 20)", "MME", 1, 0),
    AudioDevice(3, "Microphone Array (Realtek Audio)", "Windows DirectSound", 2, 0),
    AudioDevice(4, "Headset Earphone (Jabra EVOLVE 20)", "Windows WASAPI", 0, 2),
]


@pytest.mark.parametrize(
    ("spec", "direction", "index"),
    [
        (None, "input", 0),
        ("default", "output", 1),
        ("2", "input", 2),
        ("headset", "input", 2),
        ("HEADSET EARPHONE (JABRA EVOLVE 20)", "output", 4),
        ("microphone array", "input", 0),  # one name, two host APIs: the default one
        ("jabra", "output", 4),  # only one output has it
    ],
)
def test_names_resolve(spec: str | None, direction: str, index: int) -> None:
    assert resolve(spec, WINDOWS, direction).index == index  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "direction", "complaint"),
    [
        ("1", "input", "no microphone has index 1"),  # index 1 only plays
        ("webcam", "input", r"no microphone matches 'webcam' \(--list-devices shows them\)"),
        ("microphone", "input", r"matches several microphones \(0 .*2 .*\).*--audio mic:0"),
        (None, "output", None),
    ],
)
def test_names_that_do_not_resolve_say_why(
    spec: str | None, direction: str, complaint: str | None
) -> None:
    if complaint is None:  # no default output on a machine without speakers
        with pytest.raises(MediaSourceError, match="no default speaker found"):
            resolve(spec, WINDOWS[:1], direction)  # type: ignore[arg-type]
        return
    with pytest.raises(MediaSourceError, match=complaint):
        resolve(spec, WINDOWS, direction)  # type: ignore[arg-type]


def test_listing_shows_what_the_flags_take() -> None:
    text = format_listing(
        DeviceList(cameras=[Camera(0, "Integrated Camera", "/dev/video0")], audio=WINDOWS)
    )
    assert "cameras (--video camera:N):\n    0  Integrated Camera  (/dev/video0)" in text
    microphones = text.split("microphones (--audio mic:N or mic:NAME):\n")[1].split("speakers")[0]
    assert "    0  Microphone Array (Realtek Audio)  [MME]  (default)" in microphones
    assert "Speakers" not in microphones
    assert "    4  Headset Earphone (Jabra EVOLVE 20)  [Windows WASAPI]" in text
    assert "no " not in text.split("\n")[-2]


def test_listing_says_when_there_is_nothing() -> None:
    text = format_listing(DeviceList(problems=["PortAudio is not installed"]))
    assert text.startswith("no cameras, microphones or speakers found on this machine")
    assert "note: PortAudio is not installed" in text


def test_list_devices_on_this_machine(tmp_path: Path) -> None:
    # This machine has no /dev/snd and no /dev/video*; a fresh home and runtime
    # directory make sure no sound server answers for a card either. No --login needed.
    done = subprocess.run(
        [str(BIN / "webcam-peer"), "--list-devices"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no cameras, microphones or speakers found on this machine")
    assert "--speaker-device alsa:PCM" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_microphone_name_that_resolves_to_nothing_is_one_line(
    signaling_server: SignalingServer,
) -> None:
    peer = start_peer(
        signaling_server, "--login", "alice", "--video", "none", "--audio", "mic:no such mic"
    )
    assert peer.wait() == ExitCode.MEDIA_DEVICE
    text = "\n".join(peer.lines)
    assert "no microphone matches 'no such mic'" in text, text
    assert "--list-devices" in text and "--audio synthetic" in text
    assert "Traceback" not in text
