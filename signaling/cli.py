"""``signaling-server``: run the signaling server from the command line."""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from pathlib import Path

from aiohttp import web

from . import argtypes, badrequests
from .clientaddr import parse_network
from .cluster import DEFAULT_PRESENCE_TTL
from .ice_servers import IceServerConfigError, IceServers
from .logging_setup import set_up_logging
from .origin import is_loopback_host, normalize_origin
from .resume import load_or_create_secret
from .router import DEFAULT_RING_TIMEOUT
from .server import (
    DEFAULT_LOGIN_TIMEOUT,
    DEFAULT_MAX_PER_ADDRESS,
    HTTP_REQUEST_TIMEOUT,
    ServerConfig,
    create_app,
)
from .turn_credentials import DEFAULT_TTL

logger = logging.getLogger(__name__)

EPILOG = """\
examples:
  signaling-server                         # ws://127.0.0.1:8080, page at http://127.0.0.1:8080/
  signaling-server --host 0.0.0.0          # reachable from other machines on the network
  scripts/make-cert.sh && signaling-server --host 0.0.0.0 --cert cert.pem --key key.pem
                                           # https/wss, so browsers elsewhere may use the camera
  signaling-server --token s3cret          # logins must carry {"token": "s3cret"}
  signaling-server --ice-server stun:stun.example.org:3478
                                           # handed to the browser page through GET /config
  signaling-server --ice-server stun:turn.example.org:3478 --ice-server \\
      'turn:turn.example.org:3478?transport=udp' --turn-secret-file /etc/turn-secret \\
      --token-file /etc/signaling-token
                                           # every login gets TURN credentials valid 1 h,
                                           # signed with coturn's static-auth-secret
                                           # (docs/nat.md: running coturn beside the server)
  signaling-server --port 8080 --redis redis://10.0.0.5:6379/0   # and on another process or
  signaling-server --port 8081 --redis redis://10.0.0.5:6379/0   # machine: one set of users

endpoints: / (page, or WebSocket upgrade as the tutorial client does), /ws, /config,
/healthz, /metrics (Prometheus)
"""


def _network(text: str) -> object:
    try:
        return parse_network(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address or network (10.0.0.5, 10.0.0.0/8)"
        ) from None


def _redis_url(text: str) -> str:
    scheme = text.partition("://")[0]
    if scheme not in ("redis", "rediss", "unix") or not text.partition("://")[2]:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Redis URL; expected redis://HOST:PORT/DB "
            "(or rediss://..., unix:///path/to/redis.sock)"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signaling-server",
        description="WebSocket signaling server for webcam-peer and the browser call page "
        "(protocol v1: login / offer / answer / candidate / close).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {argtypes.package_version()}"
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("SIGNALING_HOST", "127.0.0.1"),
        help="address to listen on (default %(default)s; env SIGNALING_HOST)",
    )
    parser.add_argument(
        "--port",
        type=argtypes.port,
        default=os.environ.get("SIGNALING_PORT", "8080"),
        help="TCP port (default %(default)s; 0 picks a free one; env SIGNALING_PORT)",
    )
    parser.add_argument(
        "--cert", type=Path, help="TLS certificate (PEM); with --key serves https/wss"
    )
    parser.add_argument("--key", type=Path, help="TLS private key (PEM)")
    argtypes.add_secret_arguments(
        parser,
        "token",
        what="the token",
        help="shared secret every login must carry as 'token' (env SIGNALING_TOKEN; "
        "on the command line it shows in ps: prefer --token-file)",
        env="SIGNALING_TOKEN",
        file_env="SIGNALING_TOKEN_FILE",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web origin (https://calls.example.org) whose pages may open a WebSocket "
        "here besides the server's own page (repeatable); other browser pages get 403, "
        "clients that send no Origin (webcam-peer, scripts) are let in",
    )
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN URL for the clients (repeatable): stun:HOST:PORT in GET /config; "
        "turn:HOST:PORT?transport=udp|tcp and turns:HOST:PORT only in the login reply, "
        "with time-limited credentials (needs --turn-secret)",
    )
    argtypes.add_secret_arguments(
        parser,
        "turn-secret",
        what="the TURN secret",
        help="coturn's static-auth-secret (use-auth-secret): the server signs per-user "
        "TURN credentials with it; prefer --turn-secret-file, this shows in ps",
        metavar="S",
        file_env="SIGNALING_TURN_SECRET_FILE",
    )
    parser.add_argument(
        "--allow-anonymous-turn",
        action="store_true",
        help="hand TURN credentials to logins without a --token: anyone who can reach "
        "the server may then relay through your TURN server (refused without this flag)",
    )
    parser.add_argument(
        "--turn-ttl",
        type=argtypes.non_negative(int),
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help="how long minted TURN credentials stay valid after login (default %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=argtypes.non_negative(int),
        default=10_000,
        help="refuse new WebSocket connections beyond this many (default %(default)s)",
    )
    parser.add_argument(
        "--max-per-ip",
        type=argtypes.non_negative(int),
        default=DEFAULT_MAX_PER_ADDRESS,
        metavar="N",
        help="refuse (HTTP 429) WebSocket connections from one address beyond this many "
        "(default %(default)s: an office behind one NAT address)",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        type=_network,
        metavar="ADDRESS[/BITS]",
        help="a reverse proxy whose X-Forwarded-For names the client (repeatable); "
        "without it the header is ignored",
    )
    parser.add_argument(
        "--login-timeout",
        type=argtypes.non_negative(float),
        default=DEFAULT_LOGIN_TIMEOUT,
        metavar="SECONDS",
        help="close a connection that has not logged in this long after it opened "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--ring-timeout",
        type=argtypes.non_negative(float),
        default=DEFAULT_RING_TIMEOUT,
        metavar="SECONDS",
        help="end a call whose offer is not answered in this time; both sides get "
        "close with reason no-answer (default %(default)s)",
    )
    parser.add_argument(
        "--no-list",
        action="store_true",
        help="do not tell anybody who is online: 'list' gets an empty reply "
        "(users call names they know)",
    )
    parser.add_argument(
        "--heartbeat",
        type=argtypes.non_negative(float),
        default=20.0,
        metavar="SECONDS",
        help="ping interval; a connection silent for 1.5x this is dropped "
        "(default %(default)s, 0 off)",
    )
    parser.add_argument(
        "--rate-limit",
        type=argtypes.non_negative(float),
        default=50.0,
        metavar="PER_SECOND",
        help="messages per second per connection on average (default %(default)s, 0 unlimited)",
    )
    parser.add_argument(
        "--rate-burst",
        type=argtypes.non_negative(int),
        default=200,
        metavar="MESSAGES",
        help="messages a connection may send at once (default %(default)s)",
    )
    parser.add_argument(
        "--redis",
        type=_redis_url,
        default=os.environ.get("SIGNALING_REDIS"),
        metavar="URL",
        help="share users with every server process started with the same Redis URL "
        "(redis://HOST:PORT/DB, rediss:// for TLS, unix:///path.sock): a username is "
        "unique across them and anyone can call anyone (default: this process alone; "
        "env SIGNALING_REDIS)",
    )
    parser.add_argument(
        "--redis-ttl",
        type=argtypes.non_negative(float),
        default=DEFAULT_PRESENCE_TTL,
        metavar="SECONDS",
        help="with --redis: how long the users of a process that died stay taken; "
        "the process renews them every third of it (default %(default)s)",
    )
    parser.add_argument(
        "--session-secret-file",
        type=Path,
        default=os.environ.get("SIGNALING_SESSION_SECRET_FILE"),
        metavar="FILE",
        help="sign a resume ticket for every login with the secret in FILE (made, mode "
        "0600, if missing; give every --redis process the same file: each writes its "
        "names to FILE.names.HOST-ADDRESS-PORT); after a restart, the names logged in "
        "before are kept 90 s for whoever shows their ticket "
        "(env SIGNALING_SESSION_SECRET_FILE)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    return parser


def config_is_cleartext(host: str, cert: Path | None) -> bool:
    """Would secrets cross a network unencrypted (plain ws:// on a reachable address)?"""
    return cert is None and not is_loopback_host(host)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    if args.rate_burst < 1:
        parser.error("--rate-burst must be at least 1")
    turn_secret = argtypes.secret_from_file(
        parser, "turn-secret", args.turn_secret, args.turn_secret_file
    )
    token = argtypes.secret_from_file(parser, "token", args.token, args.token_file)
    try:
        IceServers(tuple(args.ice_server), turn_secret, args.turn_ttl)
    except IceServerConfigError as exc:
        parser.error(str(exc))
    if turn_secret is not None and not token and not args.allow_anonymous_turn:
        parser.error(
            "TURN credentials for anonymous logins make your TURN server an open relay: "
            "give --token (or --token-file), or --allow-anonymous-turn if you mean it"
        )
    for origin in args.allowed_origin:
        if normalize_origin(origin) is None:
            parser.error(f"--allowed-origin {origin!r} is not an origin like https://host[:port]")
    if args.ring_timeout < 1:
        parser.error("--ring-timeout must be at least 1 second")
    if args.redis_ttl < 1:
        parser.error("--redis-ttl must be at least 1 second")
    set_up_logging(args.verbose + 1, quiet=("aiohttp.access",))  # info by default
    badrequests.install()
    if token and config_is_cleartext(args.host, args.cert) and not args.trusted_proxy:
        logger.warning(
            "the token travels in clear text over ws:// to %s, which is not a loopback "
            "address: give --cert/--key (wss://) or put a TLS proxy in front",
            args.host,
        )

    if args.session_secret_file is not None:
        try:
            load_or_create_secret(args.session_secret_file)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            parser.error(f"cannot use --session-secret-file {args.session_secret_file}: {exc}")

    config = ServerConfig(
        host=args.host,
        port=args.port,
        cert=args.cert,
        key=args.key,
        token=token,
        ice_servers=tuple(args.ice_server),
        turn_secret=turn_secret,
        turn_ttl=args.turn_ttl,
        max_connections=args.max_connections,
        heartbeat=args.heartbeat,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        redis_url=args.redis,
        redis_ttl=args.redis_ttl,
        allowed_origins=tuple(args.allowed_origin),
        login_timeout=args.login_timeout,
        ring_timeout=args.ring_timeout,
        listing=not args.no_list,
        max_per_address=args.max_per_ip,
        trusted_proxies=tuple(args.trusted_proxy),
        session_secret_file=args.session_secret_file,
    )
    try:
        ssl_context = config.ssl_context()
    except (OSError, ssl.SSLError) as exc:
        print(f"signaling-server: cannot load the TLS certificate/key: {exc}", file=sys.stderr)
        return 2

    def announce(text: str) -> None:
        # aiohttp's banner names the real address (even for --port 0); tests wait for it.
        url = text.strip().splitlines()[0].strip("= ").removeprefix("Running on ")
        print(f"signaling-server: listening on {url}/", flush=True)

    unavailable: tuple[type[Exception], ...] = ()
    if args.redis:
        try:
            from .redis_routing import RedisUnavailable
        except ImportError as exc:
            # A plain `pip install webcam-peer` has no redis-py: the extra brings it.
            print(
                f"signaling-server: --redis needs redis-py ({exc.name} is missing): "
                "pip install 'webcam-peer[server]'",
                file=sys.stderr,
            )
            return 2

        unavailable = (RedisUnavailable,)
    try:
        web.run_app(
            create_app(config),
            host=args.host,
            port=args.port,
            ssl_context=ssl_context,
            print=announce,
            handle_signals=True,
            shutdown_timeout=5.0,
            keepalive_timeout=HTTP_REQUEST_TIMEOUT,
        )
    except unavailable as exc:
        print(f"signaling-server: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"signaling-server: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0
