"""Every way webcam-peer can fail to start a call ends with a clear line and its exit code."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from peer.errors import ExitCode
from tests.helpers.peer_support import NO_MEDIA, start_peer
from tests.helpers.server_support import Client
from tests.helpers.support import BIN, Process, SignalingServer, free_port


def _no_traceback(process: Process) -> None:
    assert not any("Traceback" in line for line in process.lines), "\n".join(process.lines)


def test_user_not_online(signaling_server: SignalingServer) -> None:
    alice = start_peer(
        signaling_server,
        "--login",
        "alice",
        "--call",
        "nobody",
        "--video",
        "synthetic",
        "--audio",
        "none",
    )
    assert alice.wait() == ExitCode.USER_OFFLINE
    assert any("nobody is not online" in line for line in alice.lines)
    _no_traceback(alice)


def test_server_unreachable() -> None:
    port = free_port()
    peer = Process(
        [
            str(BIN / "webcam-peer"),
            "--login",
            "alice",
            "--server",
            f"ws://127.0.0.1:{port}",
            "--video",
            "none",
            "--audio",
            "none",
            "--no-window",
        ]
    )
    assert peer.wait() == ExitCode.SERVER_UNREACHABLE
    assert any("cannot reach the signaling server" in line for line in peer.lines)
    _no_traceback(peer)


def test_login_taken(signaling_server: SignalingServer) -> None:
    first = start_peer(signaling_server, "--login", "alice", "--video", "none", "--audio", "none")
    try:
        first.wait_for("waiting for calls")
        second = start_peer(
            signaling_server, "--login", "alice", "--video", "none", "--audio", "none"
        )
        assert second.wait() == ExitCode.LOGIN_REFUSED
        assert any("taken" in line for line in second.lines)
        _no_traceback(second)
    finally:
        first.stop()


def test_wrong_token(start_server: object) -> None:
    server = start_server("--token", "s3cret")  # type: ignore[operator]
    peer = start_peer(
        server, "--login", "alice", "--token", "guess", "--video", "none", "--audio", "none"
    )
    assert peer.wait() == ExitCode.LOGIN_REFUSED
    assert any("wrong or missing token" in line for line in peer.lines)


def test_missing_camera_names_the_device(signaling_server: SignalingServer) -> None:
    peer = start_peer(
        signaling_server, "--login", "alice", "--video", "camera:/dev/video99", "--audio", "none"
    )
    assert peer.wait() == ExitCode.MEDIA_DEVICE
    text = "\n".join(peer.lines)
    assert "/dev/video99" in text and "--video synthetic" in text
    _no_traceback(peer)


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--login", "al ice"], "not a valid username"),
        (["--login", "alice", "--size", "640by480"], "must look like 640x480"),
        (["--login", "alice", "--fps", "0"], "between 1 and 120"),
        (["--login", "alice", "--wait"], "--wait goes with --call"),
        (["--login", "alice", "--ice-host", "not-an-ip"], "is not an IP address"),
        (["--login", "alice", "--ice-server", "http://x"], "must look like stun:"),
        (["--login", "alice", "--server", "ftp://x"], "must look like ws://"),
        (["--login", "alice", "--video", "webcam"], "camera"),
    ],
)
def test_bad_flags_are_explained(flags: list[str], complaint: str) -> None:
    peer = Process([str(BIN / "webcam-peer"), "--no-window", *flags])
    assert peer.wait() == ExitCode.USAGE
    assert any(complaint in line for line in peer.lines), "\n".join(peer.lines)
    _no_traceback(peer)


def test_help_teaches() -> None:
    peer = Process([str(BIN / "webcam-peer"), "--help"])
    assert peer.wait() == 0
    text = "\n".join(peer.lines)
    for flag in ("--login", "--call", "--video", "--audio", "--ice-host", "--record", "examples:"):
        assert flag in text


async def test_an_answer_aiortc_cannot_take_ends_the_call_in_one_line(
    signaling_server: SignalingServer,
) -> None:
    """The callee answers with a description aiortc cannot take: the answer passes the
    server (its sdp is a string) and aiortc's ValueError comes out of
    Call.answer_received. The message's own error boundary (``Conversation.handle`` in
    peer/call/conversation.py) ends that call in one line; the signaling reader goes on
    (it used to crash)."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(signaling_server.ws_url) as ws,
    ):
        bob = Client(ws)
        assert await bob.login("bob") == {"type": "login", "success": True}
        alice = start_peer(signaling_server, "--login", "alice", "--call", "bob", *NO_MEDIA)
        try:
            while (message := await bob.recv(within=20)).get("type") != "offer":
                pass
            assert message["username"] == "alice"
            await bob.send(
                {
                    "type": "answer",
                    "answer": {"type": "answer", "sdp": "v=0\r\nnot a session description"},
                    "otherUsername": "alice",
                }
            )
            code = await asyncio.to_thread(alice.wait, 20)
        finally:
            alice.stop()
    said = "\n".join(alice.lines)
    assert "ending the call with bob: their answer could not be applied" in said, said
    assert code == ExitCode.DECLINED, said  # no usable answer: as if bob had declined
    assert "the signaling reader crashed" not in said
    assert "Traceback" not in said
    assert "lost the signaling server" not in said
