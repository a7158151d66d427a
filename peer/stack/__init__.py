"""Everything that reaches into aiortc, aioice or asyncio internals, behind one seam check.

Two entry points, each returning what undoes it:

- :func:`install_process` once per process, before any connection: checks every seam
  the options select (a changed library is refused in one line naming the flag that
  keeps its own code), then patches what is process-wide in aioice: the host
  addresses it gathers (``--ice-host``), triggered checks (``--ice-checks``), consent
  (``--consent``).
- :func:`install_connection` per RTCPeerConnection, before it connects (idempotent,
  so a renegotiation calls it again): the receive path (``--receive-path``), the
  NACK scheduler (``--nack``) and the SCTP association (``--sctp``).

Send-side congestion control hooks its connection from ``peer/congestion/shell.py``
through ``peer/stack/rtp_hooks.py``; its seam is checked here with the others.

The seams (module: what it patches or reads; what keeps the library's own code):

- host_addresses.py: ``aioice.ice.get_host_addresses``; no ``--ice-host``
- ice_checks.py: ``aioice.ice.Connection.check_incoming``; ``--ice-checks stock``
- consent.py: aioice's consent interval and failures, ``Connection.query_consent``,
  ``TurnClientMixin.delete``; ``--consent stock`` (loop) or ``--consent aioice`` (all)
- receive_path.py: an ``RTCRtpReceiver``'s jitter buffer and decoder queue;
  ``--receive-path stock``
- nack_requests.py: an ``RTCRtpReceiver``'s NACK generator; ``--nack stock``
- sctp_speed.py: an ``RTCSctpTransport``'s class (three methods forked, checked line
  for line), asyncio's UDP reader; ``--sctp stock``
- rtp_hooks.py: an ``RTCDtlsTransport``'s RTP/RTCP methods, an ``RTCRtpSender``'s
  encoder, the negotiated codecs; ``--congestion-control stock``
- internals.py: reads only, the nominated ICE pair; the stats leave it out
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection

from peer.stack import consent, ice_checks, nack_requests, receive_path, rtp_hooks, sctp_speed
from peer.stack.host_addresses import restrict_host_addresses
from peer.stack.ice_checks import ICE_CHECK_MODES
from peer.stack.nack_requests import NackScheduler, install_nack_scheduler
from peer.stack.receive_path import FrameCompletionBuffer, install_receive_path
from peer.stack.sctp_speed import install_sctp
from peer.stack.seam import StackChanged, Undo

__all__ = [
    "ICE_CHECK_MODES",
    "ConnectionOptions",
    "ConnectionStack",
    "ProcessOptions",
    "StackChanged",
    "Undo",
    "install_connection",
    "install_process",
]


@dataclass(frozen=True)
class ProcessOptions:
    consent: str = "tolerant"  # consent.CONSENT_MODES
    ice_checks: str = "triggered"  # ICE_CHECK_MODES
    ice_hosts: Sequence[str] = ()  # addresses to gather on; empty: aioice's own choice
    receive_path: str = "fast"  # checked here, installed per connection
    nack: str = "scheduled"  # likewise
    sctp: str = "fast"
    congestion_control: str = "gcc"


@dataclass(frozen=True)
class ConnectionOptions:
    receive_path: str = "fast"  # receive_path.RECEIVE_PATHS
    nack: str = "scheduled"  # nack_requests.NACK_MODES
    sctp: str = "fast"  # sctp_speed.SCTP_MODES


@dataclass
class ConnectionStack:
    """What :func:`install_connection` put into one connection."""

    receive_buffers: list[FrameCompletionBuffer] = field(default_factory=list)
    nack_schedulers: list[NackScheduler] = field(default_factory=list)
    undo: Undo = field(default_factory=Undo)


def install_process(options: ProcessOptions) -> Undo:
    """Check the selected seams and patch aioice for the whole process. Raises
    :class:`StackChanged` (one line, naming the way out) with nothing left patched."""
    if options.ice_checks not in ICE_CHECK_MODES:
        raise ValueError(f"ICE checks must be one of {', '.join(ICE_CHECK_MODES)}")
    per_connection = (
        (options.receive_path == "fast", receive_path.SEAM),
        (options.nack == "scheduled", nack_requests.SEAM),
        (options.sctp == "fast", sctp_speed.SEAM),
        (options.congestion_control == "gcc", rtp_hooks.SEAM),
    )
    for selected, seam in per_connection:
        if selected:
            seam.check()
    undo = Undo()
    try:
        if options.ice_hosts:
            restrict_host_addresses(options.ice_hosts, undo)
        if options.ice_checks == "triggered":
            ice_checks.install(undo)
        consent.install(undo, options.consent)
    except BaseException:
        undo()
        raise
    return undo


def install_connection(
    pc: RTCPeerConnection, options: ConnectionOptions, installed: ConnectionStack | None = None
) -> ConnectionStack:
    """Give ``pc`` the chosen receive path, NACK scheduler and SCTP association, before
    it connects.
    Pass the previous result again after a renegotiation: new receivers get the
    receive path, and one undo puts everything back."""
    stack = ConnectionStack() if installed is None else installed
    stack.receive_buffers = install_receive_path(pc, options.receive_path, stack.undo)
    stack.nack_schedulers = install_nack_scheduler(pc, options.nack, stack.undo)
    install_sctp(pc, options.sctp, stack.undo)
    return stack
