"""Echo cancellation on a simulated echo path: ERLE, double talk and CPU per call.

No sound device is involved: the "room" of media/measure/echo_path.py delays, attenuates
and filters what the speaker plays and adds it to a synthetic near-end voice and
room noise; WebRTC's audio processing module (livekit) gets the far end in 10 ms
blocks as it would go to the speaker, and the microphone signal block by block.
For each room, three chains:

- default: what webcam-peer runs on its microphone (echo cancellation, noise
  suppression, high-pass filter, gain control), told the path's delay;
- default, delay misestimated: the same told 60 ms whatever the path is;
- no gain control: echo cancellation and noise suppression alone (gain control lifts
  the residual with the voice, so it lowers the ERLE this measures).

    .venv/bin/python scripts/bench_audio.py [--write]

--write puts the table into docs/benchmarks.md (its own section). Runs hold
/tmp/webcam-peer-bench.lock, like every benchmark on the shared machine.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import platform
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchdoc import write_section  # noqa: E402

from media.audio_processing import AudioProcessor  # noqa: E402
from media.measure.echo_path import ROOMS, EchoReport, measure  # noqa: E402

LOCK = Path("/tmp/webcam-peer-bench.lock")
TARGET_ERLE_DB = 25.0

CHAINS: tuple[tuple[str, Callable[[], AudioProcessor], float | None], ...] = (
    ("default", AudioProcessor, None),
    ("default, told 60 ms", AudioProcessor, 60.0),
    ("no gain control", functools.partial(AudioProcessor, gain_control=False), None),
)


@contextmanager
def bench_lock() -> Iterator[None]:
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _row(chain: str, report: EchoReport) -> str:
    path = report.path
    converged = "-" if report.converged_after_s is None else f"{report.converged_after_s:.1f} s"
    first_two = " ".join(f"{value:.0f}" for value in report.erle_curve_db[:4])
    return (
        f"| {path.delay_ms:.0f} ms, {path.gain_db:+.0f} dB, {len(path.taps)} taps | {chain} "
        f"| {report.erle_db:.1f} | {first_two} | {converged} "
        f"| {report.near_in_double_talk_db:+.1f} | {report.near_gain_db:+.1f} "
        f"| {report.cpu_ms_per_s:.1f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    rows = []
    with bench_lock():
        for room in ROOMS:
            for chain, make, hint in CHAINS:
                report = measure(room, make, delay_hint_ms=hint, target_db=TARGET_ERLE_DB)
                rows.append(_row(chain, report))
                print(rows[-1], flush=True)
    text = "\n".join(
        [
            "## Audio processing: echo cancellation on a simulated echo path "
            "(`scripts/bench_audio.py`)",
            "",
            "A test stands in for the room and the devices here (this machine has no sound",
            "card): the far end (speech-like, -18 dBFS) goes to the module as it would go to",
            "the speaker; the microphone gets it back delayed, attenuated and filtered, plus",
            "a near-end voice (-20 dBFS, from 4 s on) and room noise (-60 dBFS). Script: far",
            "end alone 0-4 s, both talking 4-7 s, near end alone 7-9 s. ERLE is the echo's",
            "level over the output's from 2 s to 4 s (target >= 25 dB within 2 s); the ERLE",
            "of the first four 0.5 s windows shows the convergence. Double talk: the near",
            "end's level in the output while both talk, against the same near end through",
            "the same chain with the far end silent (target within 3 dB). Gain: what gain",
            "control does to the near end. CPU: the module's thread time (both sides) per",
            "second of call audio, on one core.",
            "",
            "| echo path | chain | ERLE dB | ERLE 0-2 s, per 0.5 s | >= 25 dB from "
            "| double talk dB | gain dB | CPU ms/s |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "livekit `rtc.AudioProcessingModule` (WebRTC AEC3), Python "
            f"{platform.python_version()}."
            " `.venv/bin/python scripts/bench_audio.py --write`.",
        ]
    )
    if args.write:
        print(f"wrote {write_section('audio-processing', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
