"""A small internet in network namespaces: two peers, each behind its own NAT router.

::

    peer-a 10.0.1.2 --lan-- router-a 203.0.113.10 --+
                                                    +-- br0 in "pub": 203.0.113.1 (+ .2)
    peer-b 10.0.2.2 --lan-- router-b 203.0.113.20 --+   signaling server, coturn

The "pub" namespace is the public internet: a bridge, the servers on its
addresses (a second address, 203.0.113.2, lets a STUN probe ask two servers),
and a default route into a dummy interface where private addresses vanish.
Each router is a namespace forwarding between its LAN and the bridge:

- ``NatType.CONE``: ``MASQUERADE`` keeps a flow's source port whenever it can, so
  one local socket gets one public address:port for every destination, an
  endpoint-independent mapping (RFC 4787). Hole punching then works: srflx.
- ``NatType.SYMMETRIC``: ``MASQUERADE --random-fully`` picks a random port for
  every new destination, an address-dependent mapping; the srflx address coturn
  saw is useless to the other peer, so only a relay works.
- ``NatType.NONE``: plain routing between the two LANs, for host-pair figures.

Both NAT routers drop unsolicited UDP arriving on their public side. That is
what home routers do, and it matters on Linux: a packet that reaches the
router's INPUT and is accepted leaves a conntrack entry, and a later outgoing
flow whose mapping would collide with that entry gets another port, which
would make a cone NAT look symmetric for that one flow.

Everything lives inside namespaces named ``wpnat-<pid>-<n>-<role>``: deleting
them removes every interface and iptables rule with them, and nothing is
touched in the machine's own namespace. :func:`remove_stale_labs` deletes those
left by a test process that no longer exists (a crashed run).
"""

from __future__ import annotations

import enum
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

from tests.helpers.namespace_lab import NamespaceLab, ip, remove_stale
from tests.helpers.support import ROOT

logger = logging.getLogger(__name__)

PREFIX = "wpnat-"
SERVER_IP = "203.0.113.1"
SECOND_SERVER_IP = "203.0.113.2"  # only for the mapping probe
PUBLIC_PREFIX = 24


class NatType(enum.Enum):
    NONE = "none"
    CONE = "cone"
    SYMMETRIC = "symmetric"


@dataclass(frozen=True)
class Site:
    """One side: a peer's namespace behind its router."""

    name: str  # "a" or "b"
    public_ip: str  # the router's address on the public bridge
    lan: str  # e.g. "10.0.1"

    @property
    def peer_ip(self) -> str:
        return f"{self.lan}.2"

    @property
    def gateway_ip(self) -> str:
        return f"{self.lan}.1"


SITES = (Site("a", "203.0.113.10", "10.0.1"), Site("b", "203.0.113.20", "10.0.2"))


def remove_stale_labs() -> list[str]:
    return remove_stale(PREFIX)


@dataclass
class NatLab(NamespaceLab):
    PREFIX: ClassVar[str] = PREFIX
    nat: NatType

    def _build(self) -> None:
        pub = self._add_namespace("pub")
        ip("-n", pub, "link", "add", "br0", "type", "bridge")
        ip("-n", pub, "link", "set", "br0", "up")
        for address in (SERVER_IP, SECOND_SERVER_IP):
            ip("-n", pub, "addr", "add", f"{address}/{PUBLIC_PREFIX}", "dev", "br0")
        # The rest of the internet: a default route into nowhere. Without one coturn's
        # relay gets ENETUNREACH sending to a peer's private address, and coturn then
        # drops the whole allocation; a real server's packets to 10.x just vanish.
        # (A veth whose gateway has a made-up MAC: frames leave and are dropped, and
        # the sender never hears of it. No dummy interfaces: not every kernel has them.)
        ip("-n", pub, "link", "add", "internet", "type", "veth", "peer", "name", "void")
        ip("-n", pub, "link", "set", "void", "up")
        ip("-n", pub, "link", "set", "internet", "up")
        ip("-n", pub, "addr", "add", "198.51.100.2/30", "dev", "internet")
        ip(
            "-n",
            pub,
            "neigh",
            "add",
            "198.51.100.1",
            "lladdr",
            "02:00:00:00:00:01",
            "dev",
            "internet",
            "nud",
            "permanent",
        )
        ip("-n", pub, "route", "add", "default", "via", "198.51.100.1")
        for site in SITES:
            self._build_site(site, pub)
        if self.nat is NatType.NONE:
            # Plain routing: every LAN reachable through its router.
            for site in SITES:
                ip("-n", pub, "route", "add", f"{site.lan}.0/24", "via", site.public_ip)
                for other in SITES:
                    if other is not site:
                        router = self.ns(f"router-{site.name}")
                        ip(
                            "-n",
                            router,
                            "route",
                            "add",
                            f"{other.lan}.0/24",
                            "via",
                            other.public_ip,
                        )

    def _build_site(self, site: Site, pub: str) -> None:
        router = self._add_namespace(f"router-{site.name}")
        peer = self._add_namespace(f"peer-{site.name}")
        # Interface names only need to be unique inside each namespace.
        ip(
            "link",
            "add",
            "wan",
            "netns",
            router,
            "type",
            "veth",
            "peer",
            f"to-{site.name}",
            "netns",
            pub,
        )
        ip("-n", pub, "link", "set", f"to-{site.name}", "master", "br0", "up")
        ip("-n", router, "addr", "add", f"{site.public_ip}/{PUBLIC_PREFIX}", "dev", "wan")
        ip("-n", router, "link", "set", "wan", "up")
        ip("-n", router, "route", "add", "default", "via", SERVER_IP)
        ip("link", "add", "lan", "netns", router, "type", "veth", "peer", "eth0", "netns", peer)
        ip("-n", router, "addr", "add", f"{site.gateway_ip}/24", "dev", "lan")
        ip("-n", router, "link", "set", "lan", "up")
        ip("-n", peer, "addr", "add", f"{site.peer_ip}/24", "dev", "eth0")
        ip("-n", peer, "link", "set", "eth0", "up")
        ip("-n", peer, "route", "add", "default", "via", site.gateway_ip)
        self.sh(f"router-{site.name}", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        if self.nat is NatType.NONE:
            return
        masquerade = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]
        if self.nat is NatType.SYMMETRIC:
            masquerade.append("--random-fully")
        role = f"router-{site.name}"
        self.sh(role, *masquerade)
        self.sh(role, "iptables", "-A", "INPUT", "-i", "wan", "-p", "udp", "-j", "DROP")
        self.sh(
            role,
            *("iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack"),
            *("--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"),
        )
        self.sh(role, "iptables", "-A", "FORWARD", "-i", "wan", "-j", "DROP")

    def mapped_addresses(self, site: Site, port: int) -> list[tuple[str, int]]:
        """What two STUN servers on the public side see one socket of ``site``'s peer as."""
        result = subprocess.run(
            self.argv(
                f"peer-{site.name}",
                [
                    sys.executable,
                    "-m",
                    "tests.helpers.stun_probe",
                    f"{SERVER_IP}:{port}",
                    f"{SECOND_SERVER_IP}:{port}",
                ],
            ),
            capture_output=True,
            text=True,
            timeout=20,
            cwd=ROOT,
        )
        if result.returncode != 0:
            raise AssertionError(f"STUN probe from peer-{site.name} failed: {result.stderr}")
        return [(str(host), int(p)) for host, p in json.loads(result.stdout)]
