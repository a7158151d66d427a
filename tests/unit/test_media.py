"""media/: the stamp survives real codecs, tracks produce what they promise, sinks write it."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from media.audio_processing import AudioProcessor
from media.errors import MediaSourceError
from media.measure.analysis import dominant_frequency
from media.measure.receive import VideoReceiveMeter
from media.measure.stamp import Stamp, capture_clock_us, luma_plane, read_stamp, write_stamp
from media.sinks.recorder import Recorder
from media.sinks.speaker import Speaker
from media.sources.capture import CaptureThread, DeviceTrack
from media.sources.clock import MediaClock
from media.sources.echo import EchoTrack
from media.sources.file import FileAudioTrack, FileVideoTrack
from media.sources.microphone import MicrophoneTrack
from media.sources.select import open_audio_source, open_video_source
from media.sources.synthetic import SyntheticVideoTrack, ToneTrack


def _encoder(codec: str, width: int, height: int, bit_rate: int) -> av.VideoCodecContext:
    encoder = av.CodecContext.create(codec, "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuv420p"
    encoder.bit_rate = bit_rate
    # Rate control budgets bits per frame from the frame rate, as aiortc's encoders do.
    encoder.framerate = fractions.Fraction(30, 1)
    encoder.time_base = fractions.Fraction(1, 30)
    return encoder


@pytest.mark.parametrize(("codec", "decoder"), [("libvpx", "vp8"), ("libx264", "h264")])
@pytest.mark.parametrize(("width", "height"), [(320, 240), (640, 480), (1280, 720)])
async def test_stamp_survives_compression(
    codec: str, decoder: str, width: int, height: int
) -> None:
    track = SyntheticVideoTrack(width, height, fps=120)
    # A low bit rate, as at the start of a call before congestion control ramps up.
    encoder = _encoder(codec, width, height, bit_rate=250_000)
    decoding = av.CodecContext.create(decoder, "r")
    assert isinstance(decoding, av.VideoCodecContext)
    sent: list[int] = []
    read: list[int | None] = []
    packets: list[av.Packet | None] = []
    for _ in range(20):
        frame = await track.recv()
        frame.pts, frame.time_base = len(sent), encoder.time_base
        sent.append(len(sent))
        packets += encoder.encode(frame)
    packets += [*encoder.encode(None), None]  # None drains the decoder too
    for packet in packets:
        for decoded in decoding.decode(packet):
            assert isinstance(decoded, VideoFrame)
            stamp = read_stamp(luma_plane(decoded))
            read.append(None if stamp is None else stamp.frame_number)
    track.stop()
    assert read == sent


def test_damaged_stamp_reads_as_none_not_as_a_wrong_number() -> None:
    luma = np.full((240, 320), 128, dtype=np.uint8)
    write_stamp(luma, Stamp(1234, 5678))
    assert read_stamp(luma) == Stamp(1234, 5678)
    luma[0:8, 0:8] = 235 - luma[0:8, 0:8] + 16  # flip one cell
    assert read_stamp(luma) is None
    assert read_stamp(np.zeros((240, 320), dtype=np.uint8)) is None
    assert read_stamp(np.full((240, 320), 255, dtype=np.uint8)) is None


def test_stamp_age_wraps_around_the_clock_modulus() -> None:
    stamp = Stamp(0, (1 << 40) - 1000)
    assert stamp.age_us(now_us=500) == 1500
    assert 0 <= Stamp(0, capture_clock_us()).age_us() < 1_000_000


def _gray_frame(number: int | None, level: int = 128) -> VideoFrame:
    luma = np.full((240, 320), level, dtype=np.uint8)
    if number is not None:
        write_stamp(luma, Stamp(number, capture_clock_us()))
    yuv = np.concatenate([luma, np.full((120, 320), 128, dtype=np.uint8)])
    return VideoFrame.from_ndarray(yuv, format="yuv420p")


def test_meter_counts_repeats_skips_black_frames_and_freezes() -> None:
    now = [0.0]
    meter = VideoReceiveMeter(clock=lambda: now[0])
    for number, gap in [(0, 0), (1, 1 / 30), (1, 1 / 30), (4, 1 / 30), (5, 0.5), (None, 1 / 30)]:
        now[0] += gap
        meter.on_frame(_gray_frame(number))
    now[0] += 1 / 30
    meter.on_frame(_gray_frame(None, level=16))
    snapshot = meter.snapshot()
    assert snapshot["frames"] == 7
    assert snapshot["stamped_frames"] == 5
    assert snapshot["repeated_frames"] == 1
    assert snapshot["skipped_frames"] == 2  # 2 and 3 never came
    assert snapshot["freezes"] == 1 and snapshot["longest_gap_ms"] == 500.0
    assert snapshot["black_frames"] == 1
    assert (snapshot["width"], snapshot["height"]) == (320, 240)
    assert snapshot["first_frame_number"] == 0 and snapshot["last_frame_number"] == 5
    assert snapshot["latency_ms"]["p50"] is not None
    assert snapshot["out_of_order_frames"] == 0


def test_meter_counts_frames_that_go_backwards() -> None:
    meter = VideoReceiveMeter()
    for number in (0, 1, 3, 2, 4, 5, 1, 6):
        meter.on_frame(_gray_frame(number))
    snapshot = meter.snapshot()
    assert snapshot["out_of_order_frames"] == 2  # 2 after 3, 1 after 5
    assert snapshot["skipped_frames"] == 1  # 2 was passed over when 3 came
    assert snapshot["repeated_frames"] == 0
    assert snapshot["last_frame_number"] == 6


def test_a_switched_source_starts_a_new_numbering_not_a_gap() -> None:
    """Camera -> screen -> camera: each source counts from its own start."""
    meter = VideoReceiveMeter()
    for number in (*range(0, 5), *range(500_000, 500_005), *range(40, 43)):
        meter.on_frame(_gray_frame(number))
    snapshot = meter.snapshot()
    assert snapshot["numberings"] == 3
    assert snapshot["skipped_frames"] == 0 and snapshot["out_of_order_frames"] == 0
    assert snapshot["last_frame_number"] == 42


async def test_tone_has_its_frequency_and_real_time_pacing() -> None:
    track = ToneTrack(660)
    loop = asyncio.get_running_loop()
    started = loop.time()
    frames = [await track.recv() for _ in range(25)]
    elapsed = loop.time() - started
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float64)
    assert dominant_frequency(samples, 48000) == pytest.approx(660, abs=2)
    assert [f.pts for f in frames[:3]] == [0, 960, 1920]
    assert elapsed >= 0.4  # 24 frame intervals of 20 ms: it does not run ahead


async def test_echo_replays_its_source_and_waits_between_sources() -> None:
    echo = EchoTrack("video")
    first = SyntheticVideoTrack(320, 240, fps=60)
    echo.set_source(first)
    frame = await echo.recv()
    assert isinstance(frame, VideoFrame)
    stamp = read_stamp(luma_plane(frame))
    assert stamp is not None and stamp.frame_number == 0
    first.stop()  # the call ended: the echo waits for the next source
    waiting = asyncio.ensure_future(echo.recv())
    await asyncio.sleep(0.1)
    assert not waiting.done()
    echo.set_source(SyntheticVideoTrack(640, 480, fps=60))
    frame = await asyncio.wait_for(waiting, 5)
    assert isinstance(frame, VideoFrame) and frame.width == 640
    with pytest.raises(ValueError, match="cannot echo audio"):
        echo.set_source(ToneTrack())


async def _record(path: Path, seconds: float) -> None:
    video = SyntheticVideoTrack(320, 240, fps=30)
    audio = ToneTrack(440)
    recorder = Recorder(path, video, audio)
    await recorder.start()
    await asyncio.sleep(seconds)
    await recorder.stop()


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
async def test_recorder_writes_video_and_audio_that_read_back(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"call{suffix}"
    await _record(path, 1.5)
    with av.open(str(path)) as container:
        frames = [f for f in container.decode(video=0)]
        assert len(frames) >= 30
        assert (frames[0].width, frames[0].height) == (320, 240)
        stamps = [read_stamp(luma_plane(f)) for f in frames]
        numbers = [s.frame_number for s in stamps if s is not None]
        assert len(numbers) >= 30 and numbers == sorted(numbers)
    with av.open(str(path)) as container:
        chunks = [f.to_ndarray()[0] for f in container.decode(audio=0)]
        rate = container.streams.audio[0].rate
    audio = np.concatenate(chunks).astype(np.float64)
    assert dominant_frequency(audio, rate) == pytest.approx(440, abs=5)


async def test_file_sources_loop_the_file_in_real_time(tmp_path: Path) -> None:
    path = tmp_path / "clip.mkv"
    await _record(path, 0.5)  # about 15 frames
    with av.open(str(path)) as container:
        length = sum(1 for _ in container.decode(video=0))
    video = FileVideoTrack(path, fps=60)
    numbers = []
    for _ in range(length + 5):  # more frames than the file has: it loops
        frame = await video.recv()
        assert isinstance(frame, VideoFrame)
        stamp = read_stamp(luma_plane(frame))
        assert stamp is not None
        numbers.append(stamp.frame_number)
    video.stop()
    assert numbers[length:] == numbers[:5]
    assert numbers[:length] == sorted(numbers[:length])
    audio = FileAudioTrack(path)
    frame = await audio.recv()
    assert isinstance(frame, AudioFrame) and frame.samples == 960 and frame.sample_rate == 48000
    audio.stop()


async def test_speaker_plays_to_an_output_device() -> None:
    tone = ToneTrack(440)
    speaker = Speaker(tone, device="alsa:null")  # ALSA's null device: a real output that discards
    playing = asyncio.create_task(speaker.run())
    await asyncio.sleep(0.5)
    tone.stop()
    await asyncio.wait_for(playing, 5)
    assert speaker.frames_played >= 10


@pytest.mark.parametrize(
    ("device", "complaint"),
    [
        ("alsa:hw:99", "cannot open speaker 'hw:99' (alsa)"),
        ("hw:99", "no speaker matches 'hw:99' (--list-devices shows them)"),
    ],
)
async def test_missing_speaker_does_not_end_the_call(
    device: str, complaint: str, caplog: pytest.LogCaptureFixture
) -> None:
    tone = ToneTrack(440)
    speaker = Speaker(tone, device=device)
    await asyncio.wait_for(speaker.run(), 10)  # returns: the call goes on without sound
    assert complaint in caplog.text
    tone.stop()


async def test_microphone_on_a_real_alsa_device_passes_through_the_processor() -> None:
    # ALSA's null capture device gives silence: a real device read by the real path.
    processor = AudioProcessor()
    microphone = MicrophoneTrack("alsa:null", processor=processor)
    try:
        frames = [await asyncio.wait_for(microphone.recv(), 5) for _ in range(5)]
    finally:
        microphone.stop()
    assert all(isinstance(f, AudioFrame) and f.samples == 960 for f in frames)
    assert all(isinstance(f, AudioFrame) and f.sample_rate == 48000 for f in frames)
    assert processor.counters.near_blocks >= 10


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("webcam", "camera, camera:N"),
        ("file:", "camera, camera:N"),
        ("synthetic:7", "camera, camera:N"),
    ],
)
def test_video_specs_that_do_not_parse(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        open_video_source(spec, 640, 480, 30)


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("speaker", "mic, mic:N, mic:NAME"),
        ("synthetic:loud", "must be a number"),
        ("synthetic:5", "20-20000"),
    ],
)
def test_audio_specs_that_do_not_parse(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        open_audio_source(spec)


def test_missing_devices_and_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(MediaSourceError, match=r"/dev/video99.*--video synthetic"):
        open_video_source("camera:/dev/video99", 640, 480, 30)
    with pytest.raises(MediaSourceError, match=r"'hw:99'.*--audio synthetic"):
        MicrophoneTrack("hw:99")
    with pytest.raises(MediaSourceError, match=r"cannot open microphone 'hw:99' \(alsa\)"):
        MicrophoneTrack("alsa:hw:99")
    with pytest.raises(MediaSourceError, match="no such file"):
        open_video_source(f"file:{tmp_path / 'nope.mkv'}", 640, 480, 30)
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(MediaSourceError, match="cannot read"):
        open_audio_source(f"file:{text}")
    assert open_video_source("none", 640, 480, 30) is None
    assert open_audio_source("none") is None


class _CountingDevice(DeviceTrack):
    """The capture machinery of camera and microphone, fed from a list of frames."""

    kind = "audio"

    def __init__(self, frames: list[AudioFrame]) -> None:
        super().__init__()
        self.closed = 0
        self._pending = iter(frames)
        self._clock = MediaClock(48000, 0.02)
        self._frames = CaptureThread("test device", self._read, self._close, depth=100)

    def _read(self) -> AudioFrame | None:
        return next(self._pending, None)

    def _close(self) -> None:
        self.closed += 1


async def test_device_track_delivers_in_order_then_ends_and_closes_once() -> None:
    tone = ToneTrack(440)
    frames = [await tone.recv() for _ in range(5)]
    device = _CountingDevice(frames)
    received = [await device.recv() for _ in range(5)]
    assert all(isinstance(f, AudioFrame) and f.samples == 960 for f in received)
    stamps = [f.pts or 0 for f in received]
    assert stamps == sorted(stamps)
    with pytest.raises(MediaStreamError):
        await device.recv()  # the device ran dry: the track ends
    assert device.readyState == "ended"
    await asyncio.sleep(0.05)
    assert device.closed == 1


def test_capture_queue_drops_the_oldest_when_the_reader_lags() -> None:
    async def lagging_reader() -> list[int | None]:
        numbers = iter(range(50))
        capture: CaptureThread[int] = CaptureThread(
            "test", lambda: next(numbers, None), lambda: None, depth=2
        )
        capture.start()
        await asyncio.sleep(0.2)  # the producer runs ahead of us
        return [await capture.get() for _ in range(3)]

    newest = asyncio.run(lagging_reader())
    assert newest == [48, 49, None]  # only the newest two survive, then the end


def test_capture_stop_returns_after_the_device_is_closed() -> None:
    """A process that exits right after stop() must not tear the audio library down
    under a read still in progress (PortAudio on PulseAudio crashed bob with -11)."""
    reading = threading.Event()
    closed: list[float] = []

    def slow_read() -> int:
        reading.set()
        time.sleep(0.2)  # a device read in progress
        return 1

    async def stop_mid_read() -> float:
        capture: CaptureThread[int] = CaptureThread(
            "test", slow_read, lambda: closed.append(time.monotonic())
        )
        capture.start()
        await asyncio.to_thread(reading.wait)
        capture.stop()
        return time.monotonic()

    stopped_at = asyncio.run(stop_mid_read())
    assert len(closed) == 1 and closed[0] <= stopped_at


def test_meter_counts_long_freezes_and_the_last_second_of_latency() -> None:
    now = [0.0]
    meter = VideoReceiveMeter(clock=lambda: now[0])
    for number, gap in [(0, 0), (1, 0.3), (2, 0.6), (3, 1.2), (4, 0.1)]:
        now[0] += gap
        meter.on_frame(_gray_frame(number))
    snapshot = meter.snapshot()
    assert snapshot["freezes"] == 3  # over 200 ms
    assert snapshot["long_freezes"] == 2  # over 500 ms: the 0.6 s and 1.2 s gaps
    assert snapshot["long_freeze_ms"] == 1800.0
    assert snapshot["latency_recent_ms"]["p50"] is not None  # frames 3 and 4, within 1 s
    now[0] += 1.5
    assert meter.snapshot()["latency_recent_ms"] == {"p50": None, "p95": None}
