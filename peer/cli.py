"""``webcam-peer``: the command line, logging set-up and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import peer.media_libraries  # noqa: F401  (before aiortc: OpenCV first, or a one-line exit)
from peer.congestion.shell import CONGESTION_MODES, DEFAULT_MAX_BPS
from peer.data.channels import DEFAULT_CALL_BUDGET, DEFAULT_MAX_RECEIVE, default_download_dir
from peer.data.filenames import unreadable_file
from peer.errors import ExitCode
from peer.ice.config import IceConfigError, rtc_configuration, validate_host_addresses
from peer.stack import ICE_CHECK_MODES, ProcessOptions, StackChanged, consent, install_process
from peer.stack.nack_requests import NACK_MODES
from peer.stack.receive_path import RECEIVE_PATHS
from peer.stack.sctp_speed import SCTP_MODES
from peer.tty.untrusted import PrintableFormatter
from signaling import argtypes
from signaling.logging_setup import set_up_logging

logger = logging.getLogger(__name__)

DESCRIPTION = """\
A WebRTC video call from the terminal: your webcam and microphone to another
webcam-peer or to someone in the browser page of the signaling server, with the
other side shown in a window.
"""

EPILOG = """\
examples:
  webcam-peer --login bob                         # wait for calls; asks y/n for each
  webcam-peer --login bob --answer-from alice     # ...answers alice's without asking
  webcam-peer --login alice --call bob            # call bob (he must be online)
  webcam-peer --login alice --call bob --wait     # ...or wait until he logs in
  webcam-peer --login bot --video synthetic --audio synthetic --no-window --stats-interval 1 \\
      --auto-answer                               # a headless bot printing JSON stats
  webcam-peer --login echo --video echo --audio echo --no-window --auto-answer
                                                  # send back whatever is received
  webcam-peer --login alice --call bob --send-file report.pdf
                                                  # send a file once the call is up; during
                                                  # the call, type a line to chat, /help
  webcam-peer --login bob --download-dir ~/Downloads --accept-files-from alice
                                                  # alice's files go there without a question
                                                  # (others': /accept N), never overwriting
  webcam-peer --login alice --call bob --server wss://calls.example.org --token s3cret
  webcam-peer --login alice --call bob --ice-server stun:turn.example.org:3478 \\
      --ice-server 'turn:turn.example.org:3478?transport=udp' --turn-user alice --turn-password pw
                                                  # STUN and TURN of your own
  webcam-peer --login alice --call bob --server wss://calls.example.org --relay-only
                                                  # media only through the TURN server the
                                                  # signaling server hands out at login

sources:  --video camera | camera:N | camera:/dev/videoN | screen | screen:N | synthetic
                  | file:PATH | echo | none
          --audio mic | mic:N | mic:NAME | mic:alsa:PCM | synthetic | synthetic:FREQ | file:PATH
                  | echo | none
devices:  webcam-peer --list-devices shows what N and NAME can be; --speaker-device too.
keys in the window: q or Esc hangs up and quits, m mutes/unmutes, v turns the camera off/on.

exit codes: 0 done, 1 error, 2 bad usage, 3 server unreachable, 4 login refused,
5 user not online, 6 busy, 7 declined or unanswered, 8 camera/mic missing, 9 call failed,
10 --relay-only but no usable TURN server (missing, unreachable or refusing the credentials)

STUN/TURN: the signaling server may send ICE servers at login (TURN with credentials
valid for a limited time); they are used after any --ice-server of yours. aiortc uses
the first STUN and the first TURN server of that list. The stats line and the window
name the candidate pair a call uses: host, srflx/prflx (through a NAT) or relay (TURN).
"""


# The types live in signaling.argtypes, shared with signaling-server.
_username = argtypes.username
_size = argtypes.frame_size
_fps = argtypes.number(float, "fps", 1, 120)
_kbps = argtypes.number(int, "bitrate", 100, 50_000)
_seconds = argtypes.non_negative(float)
_byte_size = argtypes.byte_size
_version = argtypes.package_version


def _prepare_download_dir(directory: Path) -> str | None:
    """Create ``directory`` if missing; why it cannot take files, or None."""
    if directory.exists() and not directory.is_dir():
        return f"--download-dir {directory} is not a directory"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--download-dir {directory}: {exc.strerror or exc}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"--download-dir {directory}: not writable (permission denied)"
    return None


class _ListDevices(argparse.Action):
    """Prints the devices and exits during parsing, as --help does: no --login needed."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from media.sources.devices import format_listing, list_devices

        print(format_listing(list_devices()), flush=True)
        parser.exit(0)


def _token(parser: argparse.ArgumentParser, given: str | None, path: Path | None) -> str | None:
    from_environment = os.environ.get("WEBCAM_PEER_TOKEN")
    return argtypes.secret_from_file(
        parser, "token", given, path, from_environment=from_environment
    )


def _cleartext_server(url: str) -> bool:
    """A ws:// server URL whose host is not this machine's loopback."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "ws" or host in ("localhost", ""):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webcam-peer",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    who = parser.add_argument_group("who")
    who.add_argument(
        "--login",
        required=True,
        type=_username,
        metavar="NAME",
        help="your username on the server, e.g. --login alice",
    )
    who.add_argument(
        "--call",
        type=_username,
        metavar="OTHER",
        help="call this user, e.g. --call bob; without it, wait for calls",
    )
    who.add_argument(
        "--wait",
        action="store_true",
        help="with --call: if OTHER is not online yet, wait until they log in",
    )
    who.add_argument(
        "--auto-answer",
        action="store_true",
        help="answer every call without asking (bots, scripts); by default a person at "
        "a terminal is asked y/n, and with no terminal calls are declined",
    )
    who.add_argument(
        "--answer-from",
        action="append",
        default=[],
        type=_username,
        metavar="NAME",
        help="answer calls from NAME without asking, repeatable; others are asked or declined",
    )
    who.add_argument(
        "--ask",
        action="store_true",
        help="ask y/n on standard input before answering, even when it is not a terminal "
        "(and even with --auto-answer)",
    )
    who.add_argument(
        "--once", action="store_true", help="when waiting for calls: quit after the first call ends"
    )

    server = parser.add_argument_group("server")
    server.add_argument(
        "--server",
        default=os.environ.get("WEBCAM_PEER_SERVER", "ws://127.0.0.1:8080/ws"),
        metavar="URL",
        help="signaling server, e.g. ws://host:8080 or wss://host (default %(default)s; "
        "env WEBCAM_PEER_SERVER)",
    )
    argtypes.add_secret_arguments(
        server,
        "token",
        what="the token",
        metavar="T",
        env="WEBCAM_PEER_TOKEN",
        file_env="WEBCAM_PEER_TOKEN_FILE",
        help="token the server asks for at login (env WEBCAM_PEER_TOKEN; on the command "
        "line it shows in ps: prefer --token-file)",
    )
    server.add_argument(
        "--insecure",
        action="store_true",
        help="accept a self-signed TLS certificate from the server",
    )

    media = parser.add_argument_group("media")
    media.add_argument(
        "--video",
        default="camera",
        metavar="SRC",
        help="video to send: camera, camera:N, camera:/dev/video2, screen, screen:N, synthetic, "
        "file:PATH, echo or none (default %(default)s)",
    )
    media.add_argument(
        "--audio",
        default="mic",
        metavar="SRC",
        help="audio to send: mic, mic:N, mic:NAME, mic:alsa:PCM, synthetic, synthetic:FREQ, "
        "file:PATH, echo or none (default %(default)s)",
    )
    media.add_argument(
        "--size",
        type=_size,
        default=(640, 480),
        metavar="WxH",
        help="capture/synthetic video size (default 640x480)",
    )
    media.add_argument("--fps", type=_fps, default=30.0, help="frames per second (default 30)")
    media.add_argument("--codec", choices=["vp8", "h264"], help="prefer this video codec")
    media.add_argument(
        "--receive-path",
        "--jitter",  # its old name, kept for scripts
        dest="receive_path",
        choices=RECEIVE_PATHS,
        default="fast",
        help="video receive path: fast hands each frame to the decoder the moment its "
        "last packet arrives; stock is aiortc's own, one frame interval later, kept "
        "for comparison (default %(default)s; --jitter is its old name)",
    )
    media.add_argument(
        "--nack",
        choices=NACK_MODES,
        default="scheduled",
        help="asking for lost video packets: scheduled asks for each again every round "
        "trip until it arrives (bounded tries); stock is aiortc's own, which asks again "
        "only when a new loss comes along (default %(default)s)",
    )
    media.add_argument(
        "--sctp",
        choices=SCTP_MODES,
        default="fast",
        help="data-channel transport: fast acknowledges in batches and skips aiortc's "
        "per-packet rescans (several times the file throughput); stock is aiortc's own "
        "(default %(default)s)",
    )
    media.add_argument(
        "--congestion-control",
        choices=CONGESTION_MODES,
        default="gcc",
        help="gcc estimates the link from transport-wide feedback, paces what it sends and "
        "lowers bitrate, resolution and frame rate to fit; stock is aiortc's own (no "
        "transport-cc, no pacer), kept for comparison (default %(default)s)",
    )
    media.add_argument(
        "--max-bitrate",
        type=_kbps,
        default=DEFAULT_MAX_BPS // 1000,
        metavar="KBPS",
        help="the most the congestion controller sends, in kbit/s (default %(default)s)",
    )
    media.add_argument(
        "--no-window",
        dest="window",
        action="store_false",
        help="do not open a window (bots; implied when there is no display)",
    )
    media.add_argument(
        "--speaker",
        dest="speaker",
        action="store_true",
        default=True,
        help="play the remote audio (default)",
    )
    media.add_argument(
        "--no-speaker", dest="speaker", action="store_false", help="do not play the remote audio"
    )
    media.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="record what is received, e.g. --record call.webm (or .mkv, .mp4)",
    )

    devices = parser.add_argument_group("devices and sound")
    devices.add_argument(
        "--list-devices",
        action=_ListDevices,
        help="list cameras, microphones and speakers with the numbers and names "
        "--video camera:N, --audio mic:N|NAME and --speaker-device take, and exit",
    )
    devices.add_argument(
        "--speaker-device",
        metavar="DEV",
        help="play the remote audio here: a number or name from --list-devices, or "
        "alsa:PCM (e.g. alsa:hw:1) for ALSA directly (default: the system's output)",
    )
    devices.add_argument(
        "--no-audio-processing",
        dest="audio_processing",
        action="store_false",
        help="send the microphone as captured: no echo cancellation, noise suppression "
        "or gain control (default: on whenever the speaker plays)",
    )

    ice = parser.add_argument_group("network")
    ice.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server, repeatable: stun:HOST:PORT, "
        "turn:HOST:PORT?transport=udp|tcp, turns:HOST:PORT (TLS); used before "
        "those the signaling server sends (default: only the server's, if any)",
    )
    ice.add_argument("--turn-user", metavar="USER", help="username for your turn: server")
    ice.add_argument("--turn-password", metavar="PASSWORD", help="its password")
    ice.add_argument(
        "--relay-only",
        action="store_true",
        help="send and receive media only through the TURN relay (iceTransportPolicy "
        "relay): no local address is offered; exits with 10 if no TURN server works",
    )
    ice.add_argument(
        "--ice-host",
        action="append",
        default=[],
        metavar="ADDR",
        help="offer only these local addresses, repeatable, e.g. --ice-host "
        "192.168.1.20 (useful with VPNs; tests use 127.0.0.1)",
    )
    ice.add_argument(
        "--consent",
        choices=consent.CONSENT_MODES,
        default="tolerant",
        help="ICE consent checks: tolerant counts a late answer and gives each check a "
        "timeout from the measured round trip, so a congested link is not taken for a "
        "dead one; stock is aioice's own loop (0.5 s per check) checking every second; "
        "aioice is aioice as it ships (30 s to notice a dead path) (default %(default)s)",
    )
    ice.add_argument(
        "--ice-checks",
        choices=ICE_CHECK_MODES,
        default="triggered",
        help="triggered re-checks a pair at once when the other side's check arrives on "
        "it (connects behind NATs in tens of ms); stock is aioice's own, which waits "
        "500 ms (default %(default)s)",
    )

    ice.add_argument(
        "--resolve-mdns",
        action="store_true",
        help="look up the other side's mDNS .local candidates (browsers hide local "
        "addresses behind them); off by default: each is a multicast query on your "
        "network on a stranger's say-so",
    )

    files = parser.add_argument_group("chat and files (type a line during a call to chat)")
    files.add_argument(
        "--send-file",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="send this file once the call's data channels are open, repeatable; "
        "during a call, /send PATH does the same",
    )
    files.add_argument(
        "--download-dir",
        type=Path,
        metavar="DIR",
        help="save received files here, never overwriting (default: ~/Downloads/webcam-peer, "
        "under the desktop's Downloads folder if it names one; never the current "
        "directory; created if missing)",
    )
    files.add_argument(
        "--accept-files-from",
        action="append",
        default=[],
        type=_username,
        metavar="NAME",
        help="take files from NAME without asking, repeatable; from anyone else a file is "
        "announced and taken only after /accept N at the terminal (with no terminal, refused)",
    )
    files.add_argument(
        "--max-receive-size",
        type=_byte_size,
        default=DEFAULT_MAX_RECEIVE,
        metavar="SIZE",
        help="refuse files larger than this, e.g. 500M or 2G (default 1G)",
    )
    files.add_argument(
        "--max-receive-per-call",
        type=_byte_size,
        default=DEFAULT_CALL_BUDGET,
        metavar="SIZE",
        help="refuse files once those accepted in one call add up to this (default 4G)",
    )

    report = parser.add_argument_group("reporting")
    report.add_argument(
        "--stats-interval",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="print a JSON stats line every S seconds (0: off)",
    )
    report.add_argument(
        "--answer-timeout",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="give up a call nobody answers after S seconds (default 30)",
    )
    report.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv for debug)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.wait and not args.call:
        parser.error("--wait goes with --call")
    set_up_logging(
        args.verbose,
        quiet=("aioice", "aiortc", "aiohttp.access") if args.verbose < 2 else (),
        formatter=PrintableFormatter,
    )

    try:
        validate_host_addresses(args.ice_host)
        configuration = rtc_configuration(
            args.ice_server, args.turn_user, args.turn_password, relay_only=args.relay_only
        )
    except IceConfigError as exc:
        parser.error(str(exc))
    for path in args.send_file:
        if problem := unreadable_file(path):
            parser.error(f"--send-file {problem}")
    if args.download_dir is not None and (problem := _prepare_download_dir(args.download_dir)):
        parser.error(problem)
    stack = ProcessOptions(
        consent=args.consent,
        ice_checks=args.ice_checks,
        ice_hosts=tuple(args.ice_host),
        receive_path=args.receive_path,
        nack=args.nack,
        sctp=args.sctp,
        congestion_control=args.congestion_control,
    )
    try:
        install_process(stack)  # for the life of the process
    except StackChanged as exc:
        parser.error(str(exc))

    token = _token(parser, args.token, args.token_file)
    if token and _cleartext_server(args.server):
        print(
            f"webcam-peer: warning: the token travels in clear text to {args.server}; "
            "use a wss:// server",
            file=sys.stderr,
        )

    # Imported late: media pulls in OpenCV and PyAV, which --help need not wait for.
    from peer.app import Peer, PeerOptions

    width, height = args.size
    options = PeerOptions(
        login=args.login,
        server=args.server,
        call=args.call,
        wait=args.wait,
        token=token,
        video=args.video,
        audio=args.audio,
        width=width,
        height=height,
        fps=args.fps,
        codec=args.codec,
        receive_path=args.receive_path,
        nack_mode=args.nack,
        sctp_mode=args.sctp,
        congestion_control=args.congestion_control,
        max_bitrate_bps=args.max_bitrate * 1000,
        window=args.window,
        speaker=args.speaker,
        speaker_device=args.speaker_device,
        audio_processing=args.audio_processing,
        record=args.record,
        once=args.once,
        ask=args.ask,
        auto_answer=args.auto_answer,
        answer_from=list(args.answer_from),
        accept_files_from=list(args.accept_files_from),
        stats_interval=args.stats_interval,
        answer_timeout=args.answer_timeout,
        configuration=configuration,
        verify_tls=not args.insecure,
        send_files=list(args.send_file),
        download_dir=args.download_dir or default_download_dir(),
        max_receive_size=args.max_receive_size,
        max_receive_per_call=args.max_receive_per_call,
        resolve_mdns=args.resolve_mdns,
    )
    try:
        peer = Peer(options)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return asyncio.run(peer.run())
    except KeyboardInterrupt:
        return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
