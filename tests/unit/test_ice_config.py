"""ICE configuration without a network: URLs, relay-only, TURN REST credentials, who gets what."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiortc import RTCIceServer, RTCIceTransportPolicy

from peer import cli as peer_cli
from peer.ice.config import (
    IceConfigError,
    call_configuration,
    check_url,
    rtc_configuration,
    servers_from_login,
    turn_server,
)
from signaling import cli as server_cli
from signaling.ice_servers import IceServerConfigError, IceServers, with_ice_servers
from signaling.turn_credentials import mint

# ---- TURN REST API credentials ------------------------------------------------------------


def test_minted_credentials_match_coturns_scheme() -> None:
    # Independently: echo -n 1700003600:alice | openssl dgst -sha1 -hmac s3cret -binary | base64
    credentials = mint("s3cret", "alice", ttl=3600, now=1_700_000_000.7)
    assert credentials.username == "1700003600:alice"
    assert credentials.credential == "YAFdW/YDZewZsR1QSgUk2IrfbRI="
    assert credentials.expires_at == 1_700_003_600


def test_minting_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        mint("s3cret", "alice", ttl=0)
    with pytest.raises(ValueError, match="empty"):
        mint("", "alice", ttl=60)


# ---- what the signaling server hands out ----------------------------------------------------


def test_turn_goes_only_to_logged_in_users_with_fresh_credentials() -> None:
    ice = IceServers(
        ("stun:turn.example.org:3478", "turn:turn.example.org:3478?transport=udp"),
        turn_secret="s3cret",
        turn_ttl=3600,
    )
    assert ice.public() == [{"urls": "stun:turn.example.org:3478"}]
    assert ice.for_user("alice", now=1_700_000_000) == [
        {"urls": "stun:turn.example.org:3478"},
        {
            "urls": ["turn:turn.example.org:3478?transport=udp"],
            "username": "1700003600:alice",
            "credential": "YAFdW/YDZewZsR1QSgUk2IrfbRI=",
        },
    ]


def test_only_a_successful_login_reply_to_a_logged_in_user_gets_ice_servers() -> None:
    ice = IceServers(("stun:h:3478",))
    ok = {"type": "login", "success": True}
    refused = {"type": "login", "success": False, "reason": "username-taken"}
    relayed = {"type": "offer", "offer": {}, "username": "bob"}
    users = {1: "alice"}.get
    out = with_ice_servers([(1, ok), (2, relayed), (1, refused)], users, ice)
    assert out[0] == (1, {**ok, "iceServers": [{"urls": "stun:h:3478"}]})
    assert out[1:] == [(2, relayed), (1, refused)]
    assert ok == {"type": "login", "success": True}  # the router's message is not mutated
    # No ICE servers configured: the reply stays exactly the tutorial's.
    assert with_ice_servers([(1, ok)], users, IceServers()) == [(1, ok)]


@pytest.mark.parametrize(
    ("urls", "secret", "message"),
    [
        (("turn:h:3478",), None, "needs --turn-secret"),
        (("stun:h:3478",), "s3cret", "needs at least one --ice-server turn:"),
        (("turn:h:3478?transport=sctp",), "s3cret", "must look like"),
        (("stun:h:3478?transport=udp",), None, "takes no ?transport="),
        (("http://h:3478",), None, "must look like"),
        (("stun:h:99999",), None, "must look like"),
    ],
)
def test_server_ice_configuration_errors(
    urls: tuple[str, ...], secret: str | None, message: str
) -> None:
    with pytest.raises(IceServerConfigError, match=message.replace("?", r"\?")):
        IceServers(urls, turn_secret=secret)


def test_signaling_server_cli_explains_turn_mistakes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        server_cli.main(["--ice-server", "turn:h:3478"])
    assert exit_info.value.code == 2
    assert "never a long-lived password" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        server_cli.main(
            ["--ice-server", "turn:h:1", "--turn-secret", "a", "--turn-secret-file", "f"]
        )
    assert "give one of them" in capsys.readouterr().err


def test_turn_secret_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SystemExit):
        server_cli.main(["--ice-server", "turn:h:1", "--turn-secret-file", str(empty)])
    assert "is empty" in capsys.readouterr().err


# ---- the peer's side ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("turn:h:3478?transport=tls", "must be udp or tcp"),
        ("turns:h:5349?transport=udp", "must be udp or tcp"),
        ("stuns:h:5349", "cannot use stuns"),
        ("stun:h:3478?transport=udp", "must look like"),
        ("h:3478", "must look like"),
        ("turn:h:0", "out of range"),
    ],
)
def test_peer_refuses_urls_aiortc_would_skip(url: str, message: str) -> None:
    with pytest.raises(IceConfigError, match=message):
        check_url(url)


def test_relay_only_is_aiortcs_own_policy() -> None:
    configuration = rtc_configuration(["turn:h:3478?transport=tcp"], "u", "p", relay_only=True)
    assert configuration.iceTransportPolicy is RTCIceTransportPolicy.RELAY
    server = turn_server(configuration)
    assert server is not None
    assert (server.host, server.port, server.transport, server.tls) == ("h", 3478, "tcp", False)
    assert server.url == "turn:h:3478?transport=tcp"
    plain = rtc_configuration(["stun:h:3478"])
    assert plain.iceTransportPolicy is RTCIceTransportPolicy.ALL
    assert turn_server(plain) is None


def test_turn_credentials_need_a_turn_url() -> None:
    with pytest.raises(IceConfigError, match="needs --turn-user and --turn-password"):
        rtc_configuration(["turn:h:3478"])
    with pytest.raises(IceConfigError, match="go with an --ice-server turn:"):
        rtc_configuration(["stun:h:3478"], "u", "p")


def test_the_users_servers_come_before_the_signaling_servers() -> None:
    login_reply = [
        {"urls": "stun:s:3478"},
        {"urls": ["turn:s:3478?transport=udp"], "username": "1:alice", "credential": "c"},
        {"urls": ["ftp://nonsense"]},
        "not an object",
    ]
    from_server = servers_from_login(login_reply)
    assert from_server == [
        RTCIceServer(urls=["stun:s:3478"]),
        RTCIceServer(urls=["turn:s:3478?transport=udp"], username="1:alice", credential="c"),
    ]
    mine = rtc_configuration(["turns:mine:5349"], "me", "pw", relay_only=True)
    merged = call_configuration(mine, from_server)
    assert merged.iceTransportPolicy is RTCIceTransportPolicy.RELAY
    chosen = turn_server(merged)
    assert chosen is not None and (chosen.host, chosen.tls, chosen.username) == ("mine", True, "me")
    # Without a TURN server of our own, the signaling server's is used, credentials and all.
    theirs = turn_server(call_configuration(rtc_configuration([]), from_server))
    assert theirs is not None and (theirs.host, theirs.username) == ("s", "1:alice")
    assert servers_from_login(None) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ice-server", "turn:h:3478"], "needs --turn-user and --turn-password"),
        (["--turn-user", "u", "--turn-password", "p"], "go with an --ice-server turn:"),
        (["--ice-server", "stun:h:3478?transport=udp"], "must look like"),
    ],
)
def test_peer_cli_explains_ice_mistakes(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        peer_cli.main(["--login", "alice", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
