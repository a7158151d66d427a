"""A real sound server (PulseAudio from Debian) with a null sink and its monitor.

This machine has no sound card. The nearest thing to a speaker and a microphone in
one room: whatever is played to the null sink ``room`` comes back, sample for
sample and with the server's real buffering delay, from its monitor source, which is
the default microphone. Programs reach it through ALSA's ``pulse`` plugin (PortAudio's
``default`` and ``pulse`` devices) once ``env`` is in their environment.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CONFIG = """\
load-module module-native-protocol-unix auth-anonymous=1 socket={socket}
load-module module-null-sink sink_name=room rate=48000 channels=2
set-default-sink room
set-default-source room.monitor
"""


@dataclass
class SoundServer:
    env: dict[str, str]  # what a client needs to find it
    process: subprocess.Popen[bytes]


@pytest.fixture
def sound_server(tmp_path: Path) -> Iterator[SoundServer]:
    home = tmp_path / "pulse"
    home.mkdir()
    socket = home / "native"
    config = home / "server.pa"
    config.write_text(CONFIG.format(socket=socket))
    env = {"PULSE_SERVER": f"unix:{socket}", "HOME": str(home), "XDG_RUNTIME_DIR": str(home)}
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [
            "pulseaudio",
            "--daemonize=no",
            "-n",  # no default script: only the modules above
            "-F",
            str(config),
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--log-target=stderr",
        ],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            probe = subprocess.run(
                ["pactl", "info"], env={**os.environ, **env}, capture_output=True, timeout=10
            )
            if probe.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "pulseaudio did not start: " + (home / "server.log").read_text()[-2000:]
                )
            time.sleep(0.1)
        yield SoundServer(env, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
