"""coturn (Debian's ``turnserver``) for the tests: a generated config, free ports, stopped after.

Two ways to authenticate, as deployments do: ``secret`` is the TURN REST API
(``use-auth-secret`` + ``static-auth-secret``, what ``signaling-server
--turn-secret`` signs for); ``users`` are static long-term credentials
(``lt-cred-mech``, what ``webcam-peer --turn-user/--turn-password`` carry).
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.support import ROOT, Process, free_port

TURNSERVER = "/usr/bin/turnserver"
REALM = "webcam-peer.test"


@dataclass
class Coturn:
    process: Process
    host: str
    port: int
    tls_port: int | None = None
    config: Path = field(default=Path())

    @property
    def stun_url(self) -> str:
        return f"stun:{self.host}:{self.port}"

    def turn_url(self, transport: str = "udp") -> str:
        return f"turn:{self.host}:{self.port}?transport={transport}"

    @property
    def turns_url(self) -> str:
        assert self.tls_port is not None, "start coturn with tls=True"
        return f"turns:{self.host}:{self.tls_port}"

    def stop(self) -> None:
        self.process.stop()


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the project's own make-cert.sh)."""
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "make-cert.sh"), str(directory)],
        check=True,
        capture_output=True,
    )
    return directory / "cert.pem", directory / "key.pem"


def coturn_config(
    directory: Path,
    listen: Sequence[str],
    port: int,
    *,
    secret: str | None = None,
    users: dict[str, str] | None = None,
    tls_port: int | None = None,
    certificate: tuple[Path, Path] | None = None,
) -> Path:
    if (secret is None) == (users is None):
        raise ValueError("coturn needs exactly one of secret= or users=")
    lines = [*(f"listening-ip={ip}" for ip in listen)]
    lines += [
        f"relay-ip={listen[0]}",
        f"listening-port={port}",
        f"realm={REALM}",
        "fingerprint",
        "no-cli",
        "no-dtls",
        "no-multicast-peers",
        "no-software-attribute",
        "log-file=stdout",
        "simple-log",
        "verbose",
        f"pidfile={directory / 'turnserver.pid'}",
        f"userdb={directory / 'turndb.sqlite'}",
    ]
    if ipaddress.ip_address(listen[0]).is_loopback:
        lines.append("allow-loopback-peers")  # every peer of a loopback test is on 127.0.0.1
    if secret is not None:
        lines += ["use-auth-secret", f"static-auth-secret={secret}"]
    else:
        assert users is not None
        lines += ["lt-cred-mech", *(f"user={name}:{password}" for name, password in users.items())]
    if tls_port is not None and certificate is not None:
        cert, key = certificate
        lines += [f"tls-listening-port={tls_port}", f"cert={cert}", f"pkey={key}"]
    else:
        lines.append("no-tls")
    path = directory / "turnserver.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_coturn(
    directory: Path,
    *,
    listen: Sequence[str] = ("127.0.0.1",),
    port: int | None = None,
    secret: str | None = None,
    users: dict[str, str] | None = None,
    tls: bool = False,
    prefix: Sequence[str] = (),
) -> Coturn:
    """Start turnserver; ``prefix`` runs it elsewhere, e.g. ``ip netns exec NS``."""
    if shutil.which(TURNSERVER) is None:
        raise AssertionError(f"{TURNSERVER} is missing: run scripts/setup.sh --test (coturn)")
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    tls_port = free_port() if tls else None
    certificate = make_certificate(directory) if tls else None
    config = coturn_config(
        directory,
        listen,
        port,
        secret=secret,
        users=users,
        tls_port=tls_port,
        certificate=certificate,
    )
    process = Process([*prefix, TURNSERVER, "-c", str(config)])
    process.wait_for(r"UDP listener opened on:? ?" + listen[0].replace(".", r"\."))
    process.wait_for(r"Total General servers")
    if tls:
        process.wait_for(r"TLS/TCP listener opened on|TLS listener opened on")
    return Coturn(process, listen[0], port, tls_port, config)
