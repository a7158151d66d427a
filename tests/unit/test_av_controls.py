"""Mute, camera off and screen sharing: the commands, the state table, the media-state
message (pure), and the switchable track with real synthetic sources."""

from __future__ import annotations

import json

import numpy as np
import pytest
from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame

from media.measure.stamp import luma_plane, read_stamp
from media.sources.select import open_video_source
from media.sources.switchable import SwitchableTrack
from media.sources.synthetic import ToneTrack
from peer.call.av_commands import (
    AvUsage,
    CameraCommand,
    MuteCommand,
    ShareCommand,
    VideoCommand,
)
from peer.call.av_controls import (
    AUDIO_TABLE,
    VIDEO_TABLE,
    camera_spec,
    describe_change,
    initial_state,
    next_state,
    screen_spec,
    window_key_command,
)
from peer.call.media_state import (
    AUDIO_VALUES,
    VIDEO_VALUES,
    MediaState,
    decode_media_state,
    encode_media_state,
)
from peer.tty.commands import HELP, BadCommand, ChatCommand, parse_command


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("/mute", MuteCommand(True)),
        ("/unmute", MuteCommand(False)),
        ("/video off", VideoCommand(False)),
        ("/video ON", VideoCommand(True)),
        ("/share", ShareCommand(None)),
        ("/share 2", ShareCommand(2)),
        ("/camera", CameraCommand()),
        ("/video", AvUsage("usage: /video off|on")),
        ("/video maybe", AvUsage("usage: /video off|on")),
        ("/mute now", AvUsage("usage: /mute (no argument)")),
        ("//mute", ChatCommand("/mute")),
    ],
)
def test_media_commands_parse(line: str, command: object) -> None:
    assert parse_command(line) == command


def test_share_with_a_bad_monitor_says_so() -> None:
    command = parse_command("/share left")
    assert isinstance(command, AvUsage) and "'left' is not a monitor number" in command.why


def test_unknown_commands_are_still_refused_and_help_lists_the_media_commands() -> None:
    assert isinstance(parse_command("/volume 3"), BadCommand)
    for name in ("/mute", "/unmute", "/video off|on", "/share", "/camera"):
        assert name in HELP


def test_tables_cover_every_state_and_command() -> None:
    assert set(AUDIO_TABLE) == {(a, m) for a in AUDIO_VALUES for m in (True, False)}
    commands = ("on", "off", "share", "camera")
    assert set(VIDEO_TABLE) == {(v, c) for v in VIDEO_VALUES for c in commands}
    assert set(AUDIO_TABLE.values()) <= set(AUDIO_VALUES)
    assert set(VIDEO_TABLE.values()) <= set(VIDEO_VALUES)


def test_commands_move_the_state() -> None:
    state = initial_state("synthetic")
    assert state == MediaState("on", "on")
    state = next_state(state, MuteCommand(True))
    assert state == MediaState("muted", "on")
    state = next_state(state, ShareCommand(None))
    assert state == MediaState("muted", "screen")
    state = next_state(state, VideoCommand(True))  # on while sharing: still the screen
    assert state == MediaState("muted", "screen")
    state = next_state(state, VideoCommand(False))
    assert state == MediaState("muted", "off")
    state = next_state(state, CameraCommand())
    assert state == MediaState("muted", "on")
    assert next_state(state, AvUsage("x")) == state
    assert initial_state("screen:2") == MediaState("on", "screen")


def test_window_keys_toggle() -> None:
    assert window_key_command("m", MediaState("on", "on")) == MuteCommand(True)
    assert window_key_command("M", MediaState("muted", "on")) == MuteCommand(False)
    assert window_key_command("v", MediaState("on", "on")) == VideoCommand(False)
    assert window_key_command("v", MediaState("on", "off")) == VideoCommand(True)
    assert window_key_command("v", MediaState("on", "screen")) == VideoCommand(False)
    assert window_key_command("x", MediaState()) is None


def test_sources_for_camera_and_screen() -> None:
    assert camera_spec("synthetic") == "synthetic"
    assert camera_spec("screen:1") == "camera"
    assert screen_spec("synthetic", None) == "screen"
    assert screen_spec("screen:2", None) == "screen:2"
    assert screen_spec("camera", 3) == "screen:3"


def test_media_state_round_trips() -> None:
    for audio in AUDIO_VALUES:
        for video in VIDEO_VALUES:
            state = MediaState(audio, video)
            message = encode_media_state(state)
            assert json.loads(message)["type"] == "media"
            assert decode_media_state(message) == state


@pytest.mark.parametrize(
    "message",
    [
        b'{"type":"media","audio":"on","video":"on"}',
        "not json",
        "[]",
        '{"type":"chat","text":"x"}',
        '{"type":"media","audio":"loud","video":"on"}',
        '{"type":"media","audio":"on"}',
        '{"type":"media","audio":"on","video":"on","pad":"' + "x" * 300 + '"}',
    ],
)
def test_bad_media_state_messages_are_refused(message: str | bytes) -> None:
    assert decode_media_state(message) is None


def test_changes_are_described_for_people() -> None:
    assert describe_change(None, MediaState(), "bob") == []
    assert describe_change(None, MediaState("muted", "off"), "bob") == [
        "bob muted the microphone",
        "bob turned the camera off",
    ]
    assert describe_change(MediaState("muted", "off"), MediaState("on", "screen"), "bob") == [
        "bob unmuted the microphone",
        "bob is sharing the screen",
    ]
    assert MediaState("muted", "off").describe() == "muted, camera off"
    assert MediaState().describe() == ""


# ---- the switchable track, with real synthetic sources ------------------------------------


def _open(spec: str) -> MediaStreamTrack | None:
    return open_video_source(spec, 160, 120, 30.0)


async def _frames(track: SwitchableTrack, count: int) -> list[VideoFrame]:
    frames = []
    for _ in range(count):
        frame = await track.recv()
        assert isinstance(frame, VideoFrame)
        frames.append(frame)
    return frames


def _is_black(frame: VideoFrame) -> bool:
    return float(np.asarray(luma_plane(frame)).mean()) < 24


async def test_video_off_sends_black_and_on_resumes_with_forward_timestamps() -> None:
    source = open_video_source("synthetic", 160, 120, 30.0)
    assert source is not None
    track = SwitchableTrack("video", _open, source, "synthetic", size=(160, 120))
    try:
        before = await _frames(track, 3)
        assert all(read_stamp(luma_plane(f)) is not None for f in before)
        await track.switch_to(None)
        assert source.readyState == "ended"  # the source was released
        assert not track.is_on
        off = await _frames(track, 3)
        assert all(_is_black(f) and (f.width, f.height) == (160, 120) for f in off)
        await track.switch_to("synthetic")
        after = await _frames(track, 3)
        assert all(read_stamp(luma_plane(f)) is not None for f in after)
        pts = [int(f.pts or 0) for f in before + off + after]
        assert pts == sorted(pts) and len(set(pts)) == len(pts)
    finally:
        track.stop()


async def test_a_source_that_fails_to_open_leaves_the_current_one() -> None:
    source = open_video_source("synthetic", 160, 120, 30.0)
    assert source is not None
    track = SwitchableTrack("video", _open, source, "synthetic")
    try:
        with pytest.raises(ValueError):
            await track.switch_to("nonsense:1")
        assert track.is_on and track.spec == "synthetic"
        frame = await track.recv()
        assert isinstance(frame, VideoFrame) and read_stamp(luma_plane(frame)) is not None
    finally:
        track.stop()


async def test_muted_audio_is_silence_in_sample_counted_timestamps() -> None:
    track = SwitchableTrack("audio", lambda s: ToneTrack(), ToneTrack(), "synthetic")
    try:
        loud = await track.recv()
        await track.switch_to(None)
        quiet = [await track.recv() for _ in range(3)]
        await track.switch_to("synthetic")
        again = await track.recv()
        for frame in (loud, *quiet, again):
            assert isinstance(frame, AudioFrame)
        assert np.abs(loud.to_ndarray()).max() > 1000
        assert all(np.abs(f.to_ndarray()).max() == 0 for f in quiet)
        assert np.abs(again.to_ndarray()).max() > 1000
        pts = [f.pts for f in (loud, *quiet, again)]
        assert pts == [0, 960, 1920, 2880, 3840]
    finally:
        track.stop()
