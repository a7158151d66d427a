"""The signaling server on the open internet (issue 16): each attack a real process refuses.

Every test runs a real ``signaling-server`` process and acts as the attacker does,
over real sockets; docs/security.md lists each promise next to its test.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tests.helpers.support import (
    BIN,
    ROOT,
    SignalingServer,
    free_port,
    start_signaling_server,
    wait_until_logged,
)
from tests.process.test_server import connected, logged_in, make_cert
from wsraw import OP_CLOSE, client_frame, open_websocket, read_frame

StartServer = Callable[..., SignalingServer]


async def _handshake_status(
    url: str, origin: str | None = None, headers: dict[str, str] | None = None
) -> int:
    """The HTTP status a WebSocket upgrade gets (101 when it opens)."""
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(url, origin=origin, headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101


# ---- Origin and Host --------------------------------------------------------------------


async def test_a_foreign_web_page_cannot_open_a_socket(start_server: StartServer) -> None:
    server = start_server("--allowed-origin", "https://calls.example.org")
    own = f"http://127.0.0.1:{server.port}"
    root = server.ws_url.removesuffix("/ws")
    for url in (server.ws_url, root):
        assert await _handshake_status(url, origin="https://evil.example") == 403
        assert await _handshake_status(url, origin="null") == 403
        # The server's own page, as the browser reached it.
        assert await _handshake_status(url, origin=own) == 101
        assert await _handshake_status(url, origin="https://calls.example.org") == 101
        # webcam-peer and scripts send no Origin at all.
        assert await _handshake_status(url) == 101
    # The same host on another port is another origin.
    assert await _handshake_status(server.ws_url, origin="http://127.0.0.1:1") == 403
    wait_until_logged([server.process], "page origin 'https://evil.example' is not allowed")


async def test_a_rebound_dns_name_gets_nothing_from_a_loopback_server(
    start_server: StartServer,
) -> None:
    server = start_server()
    async with aiohttp.ClientSession() as session:
        for path in ("/", "/config", "/healthz", "/static/app.js"):
            async with session.get(
                server.http_url + path, headers={"Host": f"evil.example:{server.port}"}
            ) as response:
                assert response.status == 403, path
            async with session.get(
                server.http_url + path, headers={"Host": f"localhost:{server.port}"}
            ) as response:
                assert response.status == 200, path
    # The rebound page's socket: same-origin with itself, refused by its Host.
    status = await _handshake_status(
        server.ws_url,
        origin=f"http://evil.example:{server.port}",
        headers={"Host": f"evil.example:{server.port}"},
    )
    assert status == 403


async def test_a_server_bound_to_all_addresses_answers_any_host_name(
    start_server: StartServer,
) -> None:
    server = start_server("--host", "0.0.0.0")
    async with aiohttp.ClientSession() as session:
        async with session.get(
            server.http_url + "/", headers={"Host": f"calls.example.org:{server.port}"}
        ) as response:
            assert response.status == 200
    # ... and still refuses foreign pages.
    assert await _handshake_status(server.ws_url, origin="https://evil.example") == 403


# ---- headers ---------------------------------------------------------------------------


async def _headers(url: str, **options: object) -> CIMultiDictProxy[str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, **options) as response:  # type: ignore[arg-type]
            assert response.status == 200
            return response.headers


async def test_the_page_is_served_with_security_headers(start_server: StartServer) -> None:
    server = start_server()
    for path in ("/", "/static/app.js", "/config"):
        headers = await _headers(server.http_url + path)
        csp = headers["Content-Security-Policy"]
        for directive in (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ):
            assert directive in csp, (path, csp)
        assert "unsafe" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Permissions-Policy"] == (
            "camera=(self), microphone=(self), display-capture=(self)"
        )
        assert headers["Server"] == "signaling-server"
        assert "Strict-Transport-Security" not in headers  # plain http: nothing to pin
    status = await _handshake_status(server.ws_url)
    assert status == 101


async def test_hsts_with_a_certificate(start_server: StartServer, tmp_path: Path) -> None:
    import ssl

    cert, key = make_cert(tmp_path / "certs")
    server = start_server("--cert", str(cert), "--key", str(key))
    trust = ssl.create_default_context(cafile=str(cert))
    headers = await _headers(server.http_url + "/", ssl=trust)
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert not re.search(r"\d", headers["Server"])


class _InlineFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script" and "src" not in names:
            self.inline.append("<script> without src")
        self.inline += [f"{tag} {name}=" for name in names if name == "style" or name[:2] == "on"]


def test_the_page_has_no_inline_script_or_style() -> None:
    finder = _InlineFinder()
    finder.feed((ROOT / "signaling" / "static" / "index.html").read_text())
    assert finder.inline == []


# ---- connection limits ----------------------------------------------------------------------


async def test_a_socket_that_never_logs_in_is_closed_after_10_s(
    start_server: StartServer,
) -> None:
    server = start_server()
    async with connected(server.ws_url, 2) as [idle, user]:
        opened = time.monotonic()
        assert await user.login("deadline-user") == {"type": "login", "success": True}
        # A wrong message does not count as logging in.
        assert (await idle.request({"type": "list"}))["reason"] == "not-logged-in"
        assert await idle.close_frame(within=20) == 1008  # policy violation
        # The default deadline, not earlier (a floor, not a speed claim).
        assert time.monotonic() - opened >= 9.5
        # The one who logged in is still there, well past the deadline.
        assert await user.users() == ["deadline-user"]
    wait_until_logged([server.process], "did not log in in time")


async def test_connections_per_address_are_capped(start_server: StartServer) -> None:
    server = start_server("--max-per-ip", "3")
    async with connected(server.ws_url, 3) as clients:
        assert await _handshake_status(server.ws_url) == 429
        # X-Forwarded-For from an untrusted peer changes nothing.
        headers = {"X-Forwarded-For": "203.0.113.9"}
        assert await _handshake_status(server.ws_url, headers=headers) == 429
        # Those inside carry on.
        assert (await clients[0].login("cap-a"))["success"] is True
    # Closed sockets give their places back.
    assert await _handshake_status(server.ws_url) == 101


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(
    start_server: StartServer,
) -> None:
    server = start_server("--max-per-ip", "2", "--trusted-proxy", "127.0.0.0/8")
    office = {"X-Forwarded-For": "198.51.100.7"}
    # The client wrote a first entry itself; the proxy appended the real address.
    spoofed_office = {"X-Forwarded-For": "10.9.9.9, 198.51.100.7"}
    async with (
        connected(server.ws_url, 1, headers=office),
        connected(server.ws_url, 1, headers=spoofed_office),
    ):
        assert await _handshake_status(server.ws_url, headers=office) == 429
        # Another client behind the same proxy has its own count.
        assert (
            await _handshake_status(server.ws_url, headers={"X-Forwarded-For": "192.0.2.1"}) == 101
        )
        assert await _handshake_status(server.ws_url) == 101  # the proxy itself


async def test_a_frame_over_128_kib_is_refused_before_its_payload(
    start_server: StartServer,
) -> None:
    server = start_server()
    reader, writer = await open_websocket("127.0.0.1", server.port)
    try:
        # Announce 1 MiB, send only 8 KiB of it, and wait: the server must not wait
        # for (and hold) the rest.
        frame = client_frame(b"x" * 8192, b"abcd", declared=1024 * 1024)
        writer.write(frame)
        await writer.drain()
        opcode, payload = await asyncio.wait_for(read_frame(reader), 5)
        assert opcode == OP_CLOSE and int.from_bytes(payload[:2], "big") == 1009
    finally:
        writer.close()
    # 127 KiB (over the protocol's 64 KiB) gets the polite error, the socket stays.
    async with logged_in(server, "frame-ok") as [client]:
        await client.send_raw('{"type":"list","pad":"' + "x" * (127 * 1024) + '"}')
        assert (await client.recv())["reason"] == "too-large"
        assert await client.users() == ["frame-ok"]


async def test_a_slow_http_request_is_cut_off(start_server: StartServer) -> None:
    server = start_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    opened = time.monotonic()
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # One header line every 2 s, never the blank line that ends the request.
        while time.monotonic() - opened < 40:
            await asyncio.sleep(2)
            writer.write(b"X-Slow: 1\r\n")
            try:
                await writer.drain()
            except ConnectionError:
                break
            if reader.at_eof():
                break
            try:
                await asyncio.wait_for(reader.read(1), 0.01)
            except TimeoutError:
                continue
            if reader.at_eof():
                break
        held = time.monotonic() - opened
    finally:
        writer.close()
    # aiohttp's own default held it 75 s; the server's request timeout is 10 s.
    assert held < 30, f"a slowloris request was held {held:.0f} s"


async def test_three_wrong_tokens_close_the_socket_and_are_logged(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server("--token", "right-token")
    async with connected(server.ws_url) as [guesser]:
        for attempt in range(3):
            reply = await guesser.login("guesser", token=f"guess-{attempt}")
            assert reply["reason"] == "unauthorized"
        assert await guesser.close_frame() == 1008
    log = wait_until_logged([server.process], "wrong token from 127.0.0.1", count=3)
    assert log.count("wrong token from 127.0.0.1") == 3, log
    # The right token still works, first time.
    async with connected(server.ws_url) as [user]:
        assert (await user.login("guesser", token="right-token"))["success"] is True


# ---- TURN ----------------------------------------------------------------------------------


def _run_server(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A server command that must exit by itself (a refusal to start)."""
    return subprocess.run(
        [str(BIN / "signaling-server"), *argv],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def test_anonymous_turn_is_refused_unless_asked_for(
    start_server: StartServer, tmp_path: Path
) -> None:
    secret = tmp_path / "turn-secret"
    secret.write_text("shared-with-coturn\n")
    turn = ("--ice-server", "turn:127.0.0.1:3478?transport=udp", "--turn-secret-file", str(secret))
    done = _run_server(*turn)
    assert done.returncode == 2
    assert "open relay" in done.stderr and "--allow-anonymous-turn" in done.stderr
    assert "Traceback" not in done.stderr
    start_server(*turn, "--allow-anonymous-turn")
    start_server(*turn, "--token", "t")


async def test_turn_credentials_last_an_hour_and_need_the_token(
    start_server: StartServer, tmp_path: Path
) -> None:
    secret = tmp_path / "turn-secret"
    secret.write_text("shared-with-coturn\n")
    token = tmp_path / "token"
    token.write_text("team-token\n")
    server = start_server(
        "--ice-server",
        "turn:127.0.0.1:3478?transport=udp",
        "--turn-secret-file",
        str(secret),
        "--token-file",
        str(token),
    )
    async with connected(server.ws_url) as [client]:
        refused = await client.login("turner", token="guess")
        assert refused["reason"] == "unauthorized" and "iceServers" not in refused
        before = time.time()
        reply = await client.login("turner", token="team-token")
        assert reply["success"] is True
        [turn] = reply["iceServers"]
        expiry = int(turn["username"].split(":")[0])
        assert before + 3600 - 5 <= expiry <= time.time() + 3600 + 5


# ---- secrets and configuration --------------------------------------------------------------


async def test_token_from_the_environment_or_a_file(
    start_server: StartServer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("from-a-file\n")
    for server, right in (
        (start_server("--token-file", str(token)), "from-a-file"),
        (start_signaling_server(env={"SIGNALING_TOKEN": "from-env"}), "from-env"),
    ):
        try:
            # Not on the command line, where ps shows it.
            assert right not in " ".join(server.process.argv)
            async with connected(server.ws_url) as [client]:
                assert (await client.login("env-user", token="wrong"))["reason"] == "unauthorized"
                assert (await client.login("env-user", token=right))["success"] is True
        finally:
            server.process.stop()
    done = _run_server("--token", "a", "--token-file", str(token))
    assert done.returncode == 2 and "give one of them" in done.stderr


def test_settings_from_the_environment(start_server: StartServer) -> None:
    port = free_port()
    server = start_signaling_server(port=port, env={"SIGNALING_HOST": "0.0.0.0"})
    try:
        server.process.wait_for(r"listening on http://0\.0\.0\.0:")
    finally:
        server.process.stop()


def test_a_token_over_plain_ws_on_a_public_address_is_warned_about(
    start_server: StartServer,
) -> None:
    loud = start_server("--host", "0.0.0.0", "--token", "t")
    loud.process.wait_for("the token travels in clear text over ws://")
    quiet = start_server("--token", "t")  # loopback: nothing crosses a network
    assert "clear text" not in "\n".join(quiet.process.drain())


def test_webcam_peer_warns_about_a_token_over_plain_ws(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("peer-token\n")
    done = subprocess.run(
        [
            str(BIN / "webcam-peer"),
            "--login",
            "alice",
            "--token-file",
            str(token),
            "--server",
            "ws://192.0.2.1:9/ws",  # TEST-NET: never answers; the warning comes first
            "--video",
            "none",
            "--audio",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "the token travels in clear text to ws://192.0.2.1:9/ws" in done.stderr
    assert done.returncode != 0


# ---- requests ------------------------------------------------------------------------------


async def test_list_has_its_own_small_rate_limit_and_a_cap(start_server: StartServer) -> None:
    server = start_server()
    # Three sessions: one aiohttp session opens at most 100 connections.
    async with (
        connected(server.ws_url, 70) as some,
        connected(server.ws_url, 70) as more,
        connected(server.ws_url, 70) as most,
    ):
        clients = some + more + most
        for number, client in enumerate(clients):
            assert (await client.login(f"crowd{number:03}"))["success"] is True
        lister = clients[0]
        for _ in range(20):
            await lister.send({"type": "list"})
        replies = [await lister.recv() for _ in range(20)]
        listed = [r for r in replies if r["type"] == "users"]
        limited = [r for r in replies if r.get("reason") == "rate-limited"]
        # A burst of 5, then 1 a second: nowhere near 20 lists of the crowd.
        assert 5 <= len(listed) <= 8 and len(listed) + len(limited) == 20, replies
        assert {len(r["users"]) for r in listed} == {200}
        # Other messages are not held back by it.
        await lister.send(
            {"type": "offer", "offer": {"type": "offer", "sdp": "v=0"}, "otherUsername": "crowd001"}
        )
        assert (await clients[1].recv())["type"] == "offer"


async def test_no_list(start_server: StartServer) -> None:
    server = start_server("--no-list")
    async with logged_in(server, "hidden-a", "hidden-b") as [a, _]:
        assert await a.request({"type": "list"}) == {
            "type": "users",
            "users": [],
            "listDisabled": True,
        }


async def test_an_unanswered_call_stops_ringing_and_both_sides_are_told(
    start_server: StartServer,
) -> None:
    server = start_server("--ring-timeout", "2")
    async with logged_in(server, "ringer", "away") as [ringer, away]:
        await ringer.send(
            {"type": "offer", "offer": {"type": "offer", "sdp": "v=0"}, "otherUsername": "away"}
        )
        assert (await away.recv())["type"] == "offer"
        assert await ringer.recv(within=10) == {
            "type": "close",
            "username": "away",
            "reason": "no-answer",
        }
        assert await away.recv(within=10) == {
            "type": "close",
            "username": "ringer",
            "reason": "no-answer",
        }
        # The call is gone on the server: a late answer is refused, a new call works.
        await away.send(
            {
                "type": "answer",
                "answer": {"type": "answer", "sdp": "v=0"},
                "otherUsername": "ringer",
            }
        )
        assert (await away.recv())["reason"] == "not-in-call"


def test_the_default_ring_timeout_is_60_s() -> None:
    from signaling.router import DEFAULT_RING_TIMEOUT, Router

    router = Router()
    for connection, name in ((1, "a"), (2, "b")):
        router.connect(connection)
        router.handle_frame(connection, f'{{"type":"login","username":"{name}"}}')
    router.handle_frame(
        1, '{"type":"offer","offer":{"type":"offer","sdp":"v=0"},"otherUsername":"b"}'
    )
    assert DEFAULT_RING_TIMEOUT == 60.0
    call = router._users["a"].call
    assert call is not None
    assert router.expire_ringing(60.0, now=call.rang_at + 59.0) == []
    assert len(router.expire_ringing(60.0, now=call.rang_at + 60.0)) == 2


# ---- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize("command", ["signaling-server", "webcam-peer"])
def test_version(command: str) -> None:
    done = subprocess.run(
        [str(BIN / command), "--version"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(rf"{command} \d+\.\d+\.\d+\S*\n", done.stdout), done.stdout


# ---- names that survive a restart -------------------------------------------------------


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_after_a_restart_a_name_is_kept_for_the_holder_of_its_ticket(
    tmp_path: Path, how: signal.Signals
) -> None:
    secret_file = tmp_path / "session-secret"
    port = free_port()

    def start() -> SignalingServer:
        server = start_signaling_server("--session-secret-file", str(secret_file), port=port)
        started.append(server)
        return server

    started: list[SignalingServer] = []
    try:
        await _name_kept_through_a_restart(start, secret_file, how)
    finally:
        for server in started:
            server.process.stop()


async def _name_kept_through_a_restart(
    start: Callable[[], SignalingServer], secret_file: Path, how: signal.Signals
) -> None:
    server = start()
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    async with connected(server.ws_url, 2) as [alice, bob]:
        alice_reply = await alice.login("alice")
        bob_reply = await bob.login("bob")
        assert alice_reply["success"] is True and bob_reply["success"] is True
        alice_ticket, bob_ticket = alice_reply["ticket"], bob_reply["ticket"]
        assert alice_ticket.startswith("alice:")
        # A crash loses only what was not yet written: the names go out each second.
        await asyncio.sleep(1.5)
        server.process.signal(how)
        server.process.wait()
    server = start()
    async with connected(server.ws_url, 4) as [attacker, forger, carol, real_alice]:
        # The attacker who is first in the gap does not get alice's name ...
        refused = await attacker.login("alice")
        assert refused["success"] is False and refused["reason"] == "username-taken"
        # ... nor with a ticket of his own (bob's) or one he made up.
        assert (await forger.login("alice", ticket=bob_ticket))["success"] is False
        assert (await forger.login("alice", ticket="alice:9999999999:00"))["success"] is False
        # The tutorial's own client, which knows nothing of tickets, logs in as before.
        assert (await carol.login("carol"))["success"] is True
        # The real alice, with her ticket, has her name back, and a fresh ticket.
        back = await real_alice.login("alice", ticket=alice_ticket)
        assert back["success"] is True and back["ticket"] != alice_ticket
    wait_until_logged([server.process], "login as alice refused")


async def test_without_a_session_secret_the_login_reply_is_as_before(
    start_server: StartServer,
) -> None:
    server = start_server()
    async with connected(server.ws_url) as [alice]:
        assert await alice.login("alice", ticket="alice:1:00") == {"type": "login", "success": True}


def test_an_unusable_session_secret_file_is_a_one_line_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    result = _run_server("--session-secret-file", str(empty))
    assert result.returncode == 2
    assert "cannot use --session-secret-file" in result.stderr
    assert "Traceback" not in result.stderr
