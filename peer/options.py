"""What the user asked the peer for: the command line, parsed (peer/cli.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiortc import RTCConfiguration

from peer.congestion.shell import DEFAULT_MAX_BPS
from peer.data.channels import DEFAULT_CALL_BUDGET, DEFAULT_MAX_RECEIVE, default_download_dir


@dataclass
class PeerOptions:
    login: str
    server: str = "ws://127.0.0.1:8080/ws"
    call: str | None = None
    wait: bool = False
    token: str | None = None
    video: str = "camera"
    audio: str = "mic"
    width: int = 640
    height: int = 480
    fps: float = 30.0
    codec: str | None = None
    receive_path: str = "fast"
    nack_mode: str = "scheduled"
    sctp_mode: str = "fast"
    congestion_control: str = "gcc"
    max_bitrate_bps: int = DEFAULT_MAX_BPS
    window: bool = True
    speaker: bool = True
    speaker_device: str | None = None  # None: the system's default output
    audio_processing: bool = True  # echo cancellation etc. on the mic while the speaker plays
    record: Path | None = None
    once: bool = False
    ask: bool = False
    auto_answer: bool = False
    answer_from: list[str] = field(default_factory=list)
    accept_files_from: list[str] = field(default_factory=list)
    stats_interval: float = 0.0
    answer_timeout: float = 30.0
    configuration: RTCConfiguration = field(default_factory=lambda: RTCConfiguration([]))
    verify_tls: bool = True
    send_files: list[Path] = field(default_factory=list)
    download_dir: Path = field(default_factory=default_download_dir)
    max_receive_size: int | None = DEFAULT_MAX_RECEIVE
    max_receive_per_call: int | None = DEFAULT_CALL_BUDGET
    resolve_mdns: bool = False
