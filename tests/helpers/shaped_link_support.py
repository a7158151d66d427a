"""Two peers joined by one shaped link, each also reaching a signaling server.

::

    peer-a 10.77.0.1 ==wplv-link (shaped)== 10.77.0.2 peer-b
       | 10.78.1.1                        10.78.2.1 |
       +--wplv-sig-- srv 10.78.1.2 / 10.78.2.2 --wplv-sig--+

The media link is a veth pair with a token bucket on both ends (``tc qdisc ...
tbf rate R burst B latency L``: a bottleneck that queues up to ``L`` of traffic
and drops the rest) and, in each peer's namespace, random loss of outgoing UDP
(iptables' ``statistic`` match: this kernel has no ``sch_netem``). The signaling
server sits in a third namespace on unshaped links of its own, so cutting the
media link (:meth:`ShapedLink.cut`) leaves signaling alone, as when a Wi-Fi's
UDP dies but a TCP connection through another route lives on. The peers offer
only their media-link address (``--ice-host``), so media and ICE take the
shaped link.

Everything lives in namespaces named ``wplv-<pid>-<n>-<role>`` and goes with
them; :func:`remove_stale_links` deletes those a crashed run left behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar

from tests.helpers.namespace_lab import NamespaceLab, ip, remove_stale
from tests.helpers.support import BIN, Process

logger = logging.getLogger(__name__)

PREFIX = "wplv-"
LINK = "wplv-link"  # the media link's interface in each peer namespace
SIGNALING = "wplv-sig"
SIGNALING_PORT = 8080


@dataclass(frozen=True)
class Shape:
    """The media link, the same on both ends."""

    rate: str = "300kbit"
    burst: str = "16kbit"
    latency: str = "400ms"
    loss: float = 0.02  # outgoing UDP dropped at random in each peer namespace


@dataclass(frozen=True)
class End:
    role: str  # "a" or "b"
    link_ip: str
    signaling_ip: str
    server_ip: str


ENDS = (
    End("a", "10.77.0.1", "10.78.1.1", "10.78.1.2"),
    End("b", "10.77.0.2", "10.78.2.1", "10.78.2.2"),
)


def remove_stale_links() -> list[str]:
    return remove_stale(PREFIX)


@dataclass
class ShapedLink(NamespaceLab):
    PREFIX: ClassVar[str] = PREFIX
    shape: Shape = field(default_factory=Shape)

    def _build(self) -> None:
        srv = self._add_namespace("srv")
        a, b = (self._add_namespace(end.role) for end in ENDS)
        ip("link", "add", LINK, "netns", a, "type", "veth", "peer", LINK, "netns", b)
        for end in ENDS:
            name = self.ns(end.role)
            ip("-n", name, "addr", "add", f"{end.link_ip}/30", "dev", LINK)
            ip("-n", name, "link", "set", LINK, "up")
            ip(
                "link",
                "add",
                SIGNALING,
                "netns",
                name,
                "type",
                "veth",
                "peer",
                f"{SIGNALING}-{end.role}",
                "netns",
                srv,
            )
            ip("-n", name, "addr", "add", f"{end.signaling_ip}/30", "dev", SIGNALING)
            ip("-n", name, "link", "set", SIGNALING, "up")
            ip("-n", srv, "addr", "add", f"{end.server_ip}/30", "dev", f"{SIGNALING}-{end.role}")
            ip("-n", srv, "link", "set", f"{SIGNALING}-{end.role}", "up")
            self._shape(end.role)

    def _shape(self, role: str) -> None:
        shape = self.shape
        self.sh(
            role,
            *("tc", "qdisc", "add", "dev", LINK, "root", "tbf"),
            *("rate", shape.rate, "burst", shape.burst, "latency", shape.latency),
        )
        if shape.loss > 0:
            self.sh(
                role,
                *("iptables", "-A", "OUTPUT", "-o", LINK, "-p", "udp"),
                *("-m", "statistic", "--mode", "random", "--probability", str(shape.loss)),
                *("-j", "DROP"),
            )

    def cut(self, cut: bool = True) -> None:
        """Drop (or stop dropping) everything either peer sends over the media link."""
        for end in ENDS:
            self.sh(end.role, "iptables", "-I" if cut else "-D", "OUTPUT", "-o", LINK, "-j", "DROP")

    def start_server(self) -> Process:
        server = self.start(
            "srv",
            [str(BIN / "signaling-server"), "--host", "0.0.0.0", "--port", str(SIGNALING_PORT)],
        )
        server.wait_for("listening on")
        return server

    def peer_argv(self, end: End, *args: str) -> list[str]:
        """webcam-peer in ``end``'s namespace: signaling on its own link, media shaped."""
        return [
            str(BIN / "webcam-peer"),
            *("--server", f"ws://{end.server_ip}:{SIGNALING_PORT}/ws"),
            *("--ice-host", end.link_ip, "--no-window", "--no-speaker", "--auto-answer"),
            *args,
        ]

    def start_peer(self, end: End, *args: str) -> Process:
        return self.start(end.role, self.peer_argv(end, *args))
