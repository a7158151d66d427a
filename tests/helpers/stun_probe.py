"""Ask STUN servers what address they see us at, all from one UDP socket.

The same local socket asking two server addresses tells the NAT's mapping
behaviour (RFC 4787, RFC 5780 section 4.3): one mapped address for both is an
endpoint-independent ("cone") mapping, two different ones an address-dependent
("symmetric") one. The NAT tests run this inside a peer's network namespace:

    python -m tests.helpers.stun_probe 203.0.113.1:3478 203.0.113.2:3478

prints a JSON list of the mapped addresses, one ``[host, port]`` per server.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Sequence

from aioice import stun

Address = tuple[str, int]


class StunNoAnswer(TimeoutError):
    pass


def _binding_request() -> stun.Message:
    return stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)


def mapped_addresses(
    servers: Sequence[Address], timeout: float = 1.0, attempts: int = 3
) -> list[Address]:
    """The address each of ``servers`` sees this one socket's requests come from."""
    mapped = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        for server in servers:
            mapped.append(_ask(sock, server, timeout, attempts))
    return mapped


def _ask(sock: socket.socket, server: Address, timeout: float, attempts: int) -> Address:
    for _ in range(attempts):
        request = _binding_request()
        sock.sendto(bytes(request), server)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                data, _ = sock.recvfrom(2048)
            except TimeoutError:
                break
            try:
                response = stun.parse_message(data)
            except ValueError:
                continue
            if response.transaction_id == request.transaction_id:
                host, port = response.attributes["XOR-MAPPED-ADDRESS"]
                return str(host), int(port)
    raise StunNoAnswer(f"no STUN answer from {server[0]}:{server[1]}")


def wait_until_answering(server: Address, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            mapped_addresses([server], timeout=0.3, attempts=1)
            return
        except (StunNoAnswer, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: Sequence[str]) -> int:
    if not argv:
        print("usage: python -m tests.helpers.stun_probe HOST:PORT [HOST:PORT...]", file=sys.stderr)
        return 2
    try:
        print(json.dumps(mapped_addresses([_address(a) for a in argv])))
    except StunNoAnswer as exc:
        print(f"stun_probe: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
