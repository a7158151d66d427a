"""``--ice-host``: gather host candidates only on the addresses the user chose.

aioice offers every interface but 127.0.0.1 as a host candidate, and looks
``get_host_addresses`` up through its module at gathering time, so the choice is
put there. Without ``--ice-host`` nothing is replaced.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from typing import Final

import aioice.ice

from peer.stack.seam import Lines, Seam, Undo, replace

logger = logging.getLogger(__name__)

_ORIGINAL: Final = "_webcam_peer_original"
SEAM: Final = Seam(
    "--ice-host",
    "run without --ice-host to gather on every interface",
    "peer/stack/host_addresses.py",
    libraries=("aioice",),
    lines=(
        Lines(
            aioice.ice.Connection,
            "gather_candidates",
            {"asks get_host_addresses when it gathers": "get_host_addresses("},
        ),
    ),
    present=((aioice.ice, "get_host_addresses"),),
)


def restrict_host_addresses(addresses: Sequence[str], undo: Undo | None = None) -> None:
    """Gather host candidates only on ``addresses`` (valid IP addresses). An empty
    list puts aioice's own back; so does ``undo``, when given."""
    original: Callable[[bool, bool], list[str]] = getattr(
        aioice.ice, _ORIGINAL, aioice.ice.get_host_addresses
    )
    if not addresses:
        if hasattr(aioice.ice, _ORIGINAL):
            setattr(aioice.ice, "get_host_addresses", original)  # noqa: B010
            delattr(aioice.ice, _ORIGINAL)
        return
    SEAM.check()
    chosen = [str(ipaddress.ip_address(a)) for a in addresses]

    def chosen_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            a
            for a in chosen
            if (use_ipv4 and ipaddress.ip_address(a).version == 4)
            or (use_ipv6 and ipaddress.ip_address(a).version == 6)
        ]

    steps = Undo() if undo is None else undo
    if not hasattr(aioice.ice, _ORIGINAL):
        replace(aioice.ice, _ORIGINAL, original, steps)
    replace(aioice.ice, "get_host_addresses", chosen_addresses, steps)
    logger.info("ICE host candidates limited to %s", ", ".join(chosen))
