"""Microphone and speaker through PortAudio on a real sound server
(tests/helpers/sound_server_support.py).

A PulseAudio null sink and its monitor stand in for a sound card: what the speaker
plays comes back to the microphone, as echo does in a room without headphones. Every
program here runs as a child process with the server in its environment, because
PortAudio reads the devices once, when it starts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from media.measure.echo_path import level_db, speech_like
from tests.helpers.peer_support import start_peer
from tests.helpers.sound_server_support import SoundServer
from tests.helpers.support import BIN, ROOT, SignalingServer

pytestmark = pytest.mark.slow

# The speaker plays a tone; the microphone, on the monitor, hears it.
_LOOP = """
import asyncio, sys
import numpy as np
from media.measure.analysis import dominant_frequency
from media.sources.microphone import MicrophoneTrack
from media.sinks.speaker import Speaker
from media.sources.synthetic import ToneTrack

async def main():
    tone = ToneTrack(440)
    speaker = Speaker(tone, device=sys.argv[1])
    playing = asyncio.create_task(speaker.run())
    microphone = MicrophoneTrack(sys.argv[2])
    heard = [await microphone.recv() for _ in range(100)]
    tone.stop(); microphone.stop()
    await asyncio.wait_for(playing, 5)
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in heard[50:]]).astype(float)
    print("microphone", microphone.device, "speaker frames", speaker.frames_played)
    print("heard %.1f Hz at %.1f dBFS" % (
        dominant_frequency(samples, 48000), 20 * np.log10(np.sqrt(np.mean(samples**2)) / 32767)))

asyncio.run(main())
"""


def _run(sound_server: SoundServer, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **sound_server.env},
    )


def test_list_devices_shows_the_sound_servers_devices(sound_server: SoundServer) -> None:
    done = _run(sound_server, str(BIN / "webcam-peer"), "--list-devices")
    assert done.returncode == 0, done.stderr
    microphones = done.stdout.split("microphones (--audio mic:N or mic:NAME):\n")[1]
    assert "default  [ALSA]  (default)" in microphones.split("speakers")[0]
    speakers = done.stdout.split("speakers (--speaker-device N or NAME):\n")[1]
    assert "default  [ALSA]  (default)" in speakers


@pytest.mark.parametrize(("speaker", "microphone"), [("default", "default"), ("pulse", "1")])
def test_what_the_speaker_plays_the_microphone_hears(
    sound_server: SoundServer, speaker: str, microphone: str
) -> None:
    done = _run(sound_server, sys.executable, "-c", _LOOP, speaker, microphone)
    assert done.returncode == 0, done.stderr[-3000:]
    heard = done.stdout.splitlines()[-1].split()
    assert float(heard[1]) == pytest.approx(440, abs=2), done.stdout
    assert float(heard[4]) > -30, done.stdout  # the tone, not silence


def _voice_file(path: Path, seconds: float) -> Path:
    samples = (speech_like(seconds, seed=7, pitch_hz=130.0, level_db=-18.0) * 32767).astype(
        np.int16
    )
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        for packet in (*stream.encode(frame), *stream.encode(None)):
            container.mux(packet)
    return path


def _recorded_level(path: Path, skip_s: float) -> float:
    with av.open(str(path)) as container:
        chunks = [
            frame.to_ndarray().astype(np.float64).reshape(-1) for frame in container.decode(audio=0)
        ]
    samples = np.concatenate(chunks)
    if np.issubdtype(samples.dtype, np.integer) or np.abs(samples).max() > 1.5:
        samples = samples / 32767
    return level_db(samples[int(skip_s * 48000) :])


def _echo_heard_back(
    signaling_server: SignalingServer, sound_server: SoundServer, tmp_path: Path, *bob_flags: str
) -> float:
    """alice talks to bob; bob's speaker and microphone share the room; what alice gets back."""
    voice = _voice_file(tmp_path / "voice.wav", 20.0)
    recording = tmp_path / f"alice{len(bob_flags)}.mkv"
    bob = start_peer(
        signaling_server,
        *("--login", "bob", "--once", "--video", "none", "--audio", "mic"),
        *("--speaker", "--speaker-device", "default", "-v", *bob_flags),
        env=sound_server.env,
    )
    alice = None
    try:
        bob.wait_for("waiting for calls")
        alice = start_peer(
            signaling_server,
            *("--login", "alice", "--call", "bob", "--video", "none"),
            *("--audio", f"file:{voice}", "--record", str(recording)),
        )
        alice.wait_for("call with bob connected")
        alice.wait_for("recording the call")
        time.sleep(12)
        alice.stop()
        bob_exit = bob.wait(15)
    finally:
        for process in (alice, bob):
            if process is not None:
                process.stop()
    assert any("speaker" in line and "opened" in line for line in bob.lines), bob.lines[-30:]
    for line in bob.lines:  # what the devices did, for a run that misses the floor
        if any(word in line for word in ("speaker", "microphone", "echo delay")):
            print("bob:", line)
    # The call ended normally: no crash of the sound library as bob exits.
    assert bob_exit == 0, bob.lines[-30:]
    # From 5 s on: the canceller's settled state (it converges within 1-3 s on this path;
    # the simulated path in scripts/bench_audio.py measures how fast).
    return _recorded_level(recording, skip_s=5.0)


def test_echo_cancellation_on_a_real_sound_path(
    signaling_server: SignalingServer, sound_server: SoundServer, tmp_path: Path
) -> None:
    unprocessed = _echo_heard_back(
        signaling_server, sound_server, tmp_path, "--no-audio-processing"
    )
    processed = _echo_heard_back(signaling_server, sound_server, tmp_path)
    print(
        f"alice hears her own voice back at {unprocessed:.1f} dBFS unprocessed, "
        f"{processed:.1f} dBFS with bob's audio processing"
    )
    assert unprocessed > -35, "without processing alice must hear herself: the path works"
    assert processed < unprocessed - 20
