"""Data-channel throughput: a faster SCTP association for aiortc, installed per call.

aiortc runs SCTP in Python, one 1,189-byte packet at a time. Profiling a 64 KiB
message loop between two processes on loopback showed where the CPU goes: the
receiver acknowledges every packet, so the sender runs its whole SACK handler (and
a receive through ICE, DTLS and the SCTP parser) once per packet it sends; each
transmit re-scans every outstanding chunk for retransmissions; the receiver retries
reassembly of the whole message after every fragment; and asyncio reads one UDP
datagram per event-loop turn. :class:`FastSctpTransport` changes those, and only
those:

- **Delayed acknowledgement** (RFC 9260 section 6.2 allows the delay): one SACK per
  :data:`SACK_EVERY` DATA packets, or as soon as the datagrams already received are
  processed, never later than one event-loop turn. Anything out of the ordinary
  (a gap, a duplicate) is acknowledged at once, so loss recovery is not slowed.
- **Byte counting in slow start** (RFC 3465): with fewer SACKs, each SACK grows
  the congestion window by the bytes it acknowledges (at most :data:`SACK_EVERY`
  packets' worth), instead of by one packet per SACK, and the burst a SACK may
  release is what it acknowledged plus aiortc's own ``Max.Burst``. Loss still
  halves the window and a T3 timeout still collapses it to one packet.
- **No needless scans**: the retransmission scan runs only when a chunk was marked
  for it; reassembly runs only when a fragment can complete a message; the
  in-order received-TSN bookkeeping takes the common step without sorting.
- **Several datagrams per event-loop turn** on the ICE sockets, with a larger
  socket receive buffer so a burst is not dropped by the kernel.

Wire format and behaviour stay RFC 9260: the peer sees ordinary DATA and SACK
chunks (Chromium and stock aiortc interoperate, tests/browser/test_sctp_speed.py). The
seams are aiortc internals, so :data:`SEAM` verifies the aiortc version, the source
lines they rely on and, line for line, the two aiortc methods this module carries
changed copies of (``_receive_sack_chunk``, ``_transmit``),
and refuses naming ``--sctp stock`` when any of them changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import time
from asyncio import selector_events
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from aioice.ice import Connection
from aiortc import RTCPeerConnection
from aiortc.rtcsctptransport import (
    SCTP_DATA_LAST_FRAG,
    SCTP_MAX_BURST,
    SCTP_TSN_MODULO,
    USERDATA_MAX_LENGTH,
    DataChunk,
    InboundStream,
    RTCSctpCapabilities,
    RTCSctpTransport,
    SackChunk,
)
from aiortc.utils import uint32_gt, uint32_gte
from OpenSSL import SSL

from peer.stack.internals import ice_connection
from peer.stack.seam import Fork, Lines, Seam, StackChanged, Undo

logger = logging.getLogger(__name__)

SCTP_MODES: Final = ("fast", "stock")

SACK_EVERY: Final = 16  # DATA packets per SACK while nothing is missing
DATAGRAMS_PER_TURN: Final = 64  # read at most this many before other callbacks run
# Room for a whole 1 MiB window of packets (the kernel counts ~2x per datagram); much
# more would only queue a burst for longer than the peer's retransmission timer.
SOCKET_RECEIVE_BUFFER: Final = 2 * 1024 * 1024
# What we advertise: aiortc's own 1 MiB. Measured between two processes here: 2 MiB
# is no faster, and 4 MiB lets slow start outrun the socket buffer and lose bursts.
RECEIVE_WINDOW: Final = 1024 * 1024
_HALF_TSN: Final = SCTP_TSN_MODULO // 2


def tsn_distance(start: int, end: int) -> int:
    """Steps forward from ``start`` to ``end`` (mod 2^32); huge when ``end`` is behind."""
    return (end - start) % SCTP_TSN_MODULO


@dataclass
class DelayedAck:
    """When a receiver acknowledges DATA (RFC 9260 section 6.2), counted in packets.

    Sans-I/O: the transport reports each DATA packet and the end of each event-loop
    turn; this says when a SACK goes out. Anything unusual is acknowledged at once,
    because the sender's loss recovery waits on it; in-order data every ``every``
    packets, and whatever is left when the datagrams read in one turn are handled.
    """

    every: int = SACK_EVERY
    owed: int = 0  # in-order packets not acknowledged yet

    def data_arrived(self, *, duplicate: bool, gap: bool) -> bool:
        """True: acknowledge now. False: at the end of the turn (:meth:`turn_ended`)."""
        if duplicate or gap:
            self.owed = 0
            return True
        self.owed += 1
        if self.owed >= self.every:
            self.owed = 0
            return True
        return False

    def turn_ended(self) -> bool:
        """Whether a SACK is still owed for what arrived in this turn."""
        owed, self.owed = self.owed, 0
        return owed > 0


def slow_start_increase(acked_bytes: int) -> int:
    """cwnd growth for one SACK in slow start: the bytes it newly acknowledges, up to
    SACK_EVERY packets (RFC 3465 byte counting; aiortc grows one packet per SACK,
    which with one SACK per SACK_EVERY packets would make slow start that much slower)."""
    return min(acked_bytes, SACK_EVERY * USERDATA_MAX_LENGTH)


def burst_credit(acked_bytes: int) -> int:
    """What one SACK may release beyond aiortc's Max.Burst: the packets it acknowledged
    (up to SACK_EVERY), so a delayed SACK refills the window it drained."""
    packets = -(-acked_bytes // USERDATA_MAX_LENGTH)
    return min(packets, SACK_EVERY) * USERDATA_MAX_LENGTH


@dataclass
class SctpCounters:
    """What the fast path did, for the stats line and the benchmark."""

    sacks_sent: int = 0
    sacks_received: int = 0
    retransmissions: int = 0
    timeouts: int = 0  # T3 expiries: the window collapsed to one packet


class FastInboundStream(InboundStream):
    """aiortc's reassembly, which skips the scan that cannot complete a message.

    aiortc looks for complete messages in the whole reassembly list after every
    fragment. A fragment that lands after every other one of its stream and is not a
    last fragment cannot complete one (its own message still lacks its end), so the
    scan that follows its ``add_chunk`` is skipped; any other call scans as aiortc does.
    """

    _skip_next_scan = False

    def add_chunk(self, chunk: DataChunk) -> None:
        appended = not self.reassembly or uint32_gt(chunk.tsn, self.reassembly[-1].tsn)
        self._skip_next_scan = appended and not chunk.flags & SCTP_DATA_LAST_FRAG
        super().add_chunk(chunk)

    def pop_messages(self) -> Iterator[tuple[int, int, bytes]]:
        if self._skip_next_scan:
            self._skip_next_scan = False
            return iter(())
        return super().pop_messages()


class FastSctpTransport(RTCSctpTransport):
    """aiortc's SCTP association with the changes the module docstring lists.

    Never constructed directly: :func:`install_sctp` turns the transport an
    RTCPeerConnection made into one (same state, another class), so everything
    aiortc does with it keeps working.
    """

    _fast_ack: DelayedAck
    _fast_sack_scheduled: bool
    _fast_retransmit_marked: bool
    _fast_burst_credit: int
    _fast_batched_sockets: set[int]
    _fast_sack_task: asyncio.Future[None] | None
    _fast_duplicate: bool  # what _mark_received said of the last DATA chunk
    counters: SctpCounters

    def _fast_setup(self) -> None:
        self.counters = SctpCounters()
        self._fast_ack = DelayedAck()
        self._fast_sack_scheduled = False
        self._fast_retransmit_marked = False
        self._fast_burst_credit = 0
        self._fast_batched_sockets = set()
        self._fast_sack_task = None
        self._fast_duplicate = False
        self._advertised_rwnd = RECEIVE_WINDOW
        for stream in self._inbound_streams.values():
            if type(stream) is InboundStream:
                stream.__class__ = FastInboundStream

    async def start(self, remoteCaps: RTCSctpCapabilities | None, remotePort: int) -> None:
        # ICE and DTLS are connected by now, so the ICE sockets exist.
        self._fast_batch_ice_reads()
        await super().start(remoteCaps, remotePort)

    def _fast_batch_ice_reads(self) -> None:
        connection = ice_connection(self.transport.transport)
        for protocol in getattr(connection, "_protocols", []):
            transport = getattr(protocol, "transport", None)
            if (
                transport is not None
                and id(transport) not in self._fast_batched_sockets
                and read_datagrams_in_batches(transport)
            ):
                self._fast_batched_sockets.add(id(transport))

    # ---- receiving DATA: fewer SACKs, less bookkeeping ---------------------------------
    async def _send_sack(self) -> None:
        self.counters.sacks_sent += 1
        await super()._send_sack()

    async def _handle_data(self, data: bytes) -> None:
        self._sack_needed = False
        await super()._handle_data(data)  # sends a SACK itself only if we left it needed

    async def _receive_data_chunk(self, chunk: DataChunk) -> None:
        # aiortc's own handler, which asks for a SACK after every chunk; whether to
        # acknowledge now or later is decided here, once the chunk is marked.
        sack_needed = self._sack_needed
        await super()._receive_data_chunk(chunk)
        now = self._fast_ack.data_arrived(
            duplicate=self._fast_duplicate, gap=bool(self._sack_misordered)
        )
        self._sack_needed = sack_needed or now
        if not now:
            self._fast_schedule_sack()

    def _get_inbound_stream(self, stream_id: int) -> InboundStream:
        stream = super()._get_inbound_stream(stream_id)
        if type(stream) is InboundStream:
            stream.__class__ = FastInboundStream
        return stream

    def _fast_schedule_sack(self) -> None:
        if not self._fast_sack_scheduled:
            self._fast_sack_scheduled = True
            # Runs once the datagrams read in this loop turn are handled.
            asyncio.get_running_loop().call_soon(self._fast_send_owed_sack)

    def _fast_send_owed_sack(self) -> None:
        self._fast_sack_scheduled = False
        owed = self._fast_ack.turn_ended()
        if owed and self._association_state == self.State.ESTABLISHED:
            self._fast_sack_task = asyncio.ensure_future(self._fast_send_sack_quietly())

    async def _fast_send_sack_quietly(self) -> None:
        # The call may end between scheduling and sending: DTLS then reports either a
        # closed connection or, if its shutdown got there first, an SSL error.
        with contextlib.suppress(ConnectionError, SSL.Error):
            await self._send_sack()

    def _mark_received(self, tsn: int) -> bool:
        self._fast_duplicate = self._mark(tsn)
        return self._fast_duplicate

    def _mark(self, tsn: int) -> bool:
        last = self._last_received_tsn
        if last is not None and not self._sack_misordered and tsn == (last + 1) % SCTP_TSN_MODULO:
            # In order with nothing held: the cumulative TSN simply moves on.
            self._last_received_tsn = tsn
            if self._sack_duplicates:
                self._sack_duplicates = [
                    d for d in self._sack_duplicates if 0 < tsn_distance(tsn, d) < _HALF_TSN
                ]
            return False
        return super()._mark_received(tsn)

    # ---- receiving SACKs: byte counting, burst credit --------------------------------
    async def _receive_sack_chunk(self, chunk: SackChunk) -> None:
        self.counters.sacks_received += 1
        if uint32_gt(self._last_sacked_tsn, chunk.cumulative_tsn):
            return

        received_time = time.time()
        self._last_sacked_tsn = chunk.cumulative_tsn
        cwnd_fully_utilized = self._flight_size >= self._cwnd
        done = 0
        done_bytes = 0
        sent_queue = self._sent_queue
        cumulative = chunk.cumulative_tsn

        while sent_queue and tsn_distance(sent_queue[0].tsn, cumulative) < _HALF_TSN:
            schunk = sent_queue.popleft()
            done += 1
            if not schunk._acked:
                done_bytes += schunk._book_size
            self._flight_size_decrease(schunk)
            if done == 1 and schunk._sent_count == 1:
                self._update_rto(received_time - schunk._sent_time)  # type: ignore[operator]

        loss = False
        if chunk.gaps:
            seen = set()
            highest_seen_tsn = cumulative
            for gap in chunk.gaps:
                for pos in range(gap[0], gap[1] + 1):
                    highest_seen_tsn = (cumulative + pos) % SCTP_TSN_MODULO
                    seen.add(highest_seen_tsn)

            highest_newly_acked = cumulative
            for schunk in sent_queue:
                if uint32_gt(schunk.tsn, highest_seen_tsn):
                    break
                if schunk.tsn in seen:
                    if not schunk._acked:
                        done_bytes += schunk._book_size
                        schunk._acked = True
                        highest_newly_acked = schunk.tsn
                    self._flight_size_decrease(schunk)

            for schunk in sent_queue:
                if uint32_gt(schunk.tsn, highest_newly_acked):
                    break
                if schunk.tsn not in seen:
                    schunk._misses += 1
                    if schunk._misses == 3:
                        schunk._misses = 0
                        if not self._maybe_abandon(schunk):
                            schunk._retransmit = True
                            self._fast_retransmit_marked = True
                        schunk._acked = False
                        self._flight_size_decrease(schunk)
                        loss = True

        if self._fast_recovery_exit is None:
            if done and cwnd_fully_utilized:
                if self._cwnd <= self._ssthresh:
                    self._cwnd += slow_start_increase(done_bytes)
                else:
                    self._partial_bytes_acked += done_bytes
                    if self._partial_bytes_acked >= self._cwnd:
                        self._partial_bytes_acked -= self._cwnd
                        self._cwnd += USERDATA_MAX_LENGTH
            if loss:
                self._ssthresh = max(self._cwnd // 2, 4 * USERDATA_MAX_LENGTH)
                self._cwnd = self._ssthresh
                self._partial_bytes_acked = 0
                self._fast_recovery_exit = sent_queue[-1].tsn
                self._fast_recovery_transmit = True
        elif uint32_gte(cumulative, self._fast_recovery_exit):
            self._fast_recovery_exit = None

        if not sent_queue:
            self._t3_cancel()
        elif done:
            self._t3_restart()

        self._fast_burst_credit = burst_credit(done_bytes)
        self._update_advanced_peer_ack_point()
        await self._data_channel_flush()
        await self._transmit()

    def _t3_expired(self) -> None:
        self.counters.timeouts += 1
        self._fast_retransmit_marked = True
        super()._t3_expired()

    # ---- transmitting ----------------------------------------------------------------
    async def _transmit(self) -> None:
        if self._forward_tsn_chunk is not None:
            await self._send_chunk(self._forward_tsn_chunk)
            self._forward_tsn_chunk = None
            if not self._t3_handle:
                self._t3_start()

        max_burst = (2 if self._fast_recovery_exit is not None else SCTP_MAX_BURST) * (
            USERDATA_MAX_LENGTH
        )
        burst = max_burst + self._fast_burst_credit
        self._fast_burst_credit = 0
        cwnd = min(self._flight_size + burst, self._cwnd)

        if self._fast_retransmit_marked:
            retransmit_earliest = True
            for chunk in self._sent_queue:
                if chunk._retransmit:
                    if self._fast_recovery_transmit:
                        self._fast_recovery_transmit = False
                    elif self._flight_size >= cwnd:
                        return  # still marked: the next SACK or T3 resumes the scan
                    self._flight_size_increase(chunk)
                    chunk._misses = 0
                    chunk._retransmit = False
                    chunk._sent_count += 1
                    self.counters.retransmissions += 1
                    await self._send_chunk(chunk)
                    if retransmit_earliest:
                        self._t3_restart()
                retransmit_earliest = False
            self._fast_retransmit_marked = False

        outbound = self._outbound_queue
        while outbound and self._flight_size < cwnd:
            chunk = outbound.popleft()
            self._sent_queue.append(chunk)
            self._flight_size_increase(chunk)
            chunk._sent_count += 1
            chunk._sent_time = time.time()
            await self._send_chunk(chunk)
            if not self._t3_handle:
                self._t3_start()


# ---- reading several datagrams per event-loop turn -------------------------------------
def read_datagrams_in_batches(transport: asyncio.BaseTransport) -> bool:
    """Make a selector-loop UDP transport read up to DATAGRAMS_PER_TURN datagrams per
    readiness event instead of one, so a burst is handled in one loop turn (and the
    SACK for it goes out once). False if the transport is not one that allows it."""
    sock: socket.socket | None = getattr(transport, "_sock", None)
    loop = getattr(transport, "_loop", None)
    protocol = getattr(transport, "_protocol", None)
    add_reader: Callable[..., Any] | None = getattr(loop, "_add_reader", None)
    if sock is None or protocol is None or add_reader is None or transport.is_closing():
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_RECEIVE_BUFFER)
    except OSError as exc:
        logger.debug("could not enlarge the UDP receive buffer: %s", exc)
    max_size: int = getattr(transport, "max_size", 256 * 1024)

    def read_ready() -> None:
        for _ in range(DATAGRAMS_PER_TURN):
            if getattr(transport, "_conn_lost", 0):
                return
            try:
                data, address = sock.recvfrom(max_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            protocol.datagram_received(data, address)

    add_reader(sock.fileno(), read_ready)
    return True


# ---- the seam into aiortc -------------------------------------------------------------
def _lines(name: str, lines: dict[str, str]) -> Lines:
    return Lines(RTCSctpTransport, name, lines)


def _attributes_set_in_init() -> list[str]:
    init = inspect.getsource(RTCSctpTransport.__init__)
    return [f"__init__ no longer sets {n}" for n in _EXPECTED_ATTRIBUTES if f"self.{n}" not in init]


_EXPECTED_ATTRIBUTES: Final = (
    "_sack_needed",
    "_sack_misordered",
    "_sack_duplicates",
    "_last_received_tsn",
    "_sent_queue",
    "_outbound_queue",
    "_cwnd",
    "_flight_size",
    "_fast_recovery_exit",
    "_fast_recovery_transmit",
    "_partial_bytes_acked",
    "_forward_tsn_chunk",
    "_t3_handle",
    "_advertised_rwnd",
    "_reconfig_deferred",
)
SEAM: Final = Seam(
    "the fast SCTP path",
    "run with --sctp stock to keep aiortc's own",
    "peer/stack/sctp_speed.py",
    libraries=("aiortc", "aioice"),
    lines=(
        _lines(
            "_handle_data",
            {
                "handles every chunk of a packet": "await self._receive_chunk(chunk)",
                "sends one SACK per packet when needed": (
                    "if self._sack_needed:\n            await self._send_sack()"
                ),
            },
        ),
        _lines(
            "_receive_chunk",
            {
                "dispatches DATA chunks": "await self._receive_data_chunk(chunk)",
                "dispatches SACK chunks": "await self._receive_sack_chunk(chunk)",
            },
        ),
        _lines(
            "_receive_data_chunk",
            {
                "asks for a SACK before marking the chunk": "self._sack_needed = True",
                "marks TSNs received": "if self._mark_received(chunk.tsn):",
                "scans for messages right after adding a chunk": (
                    "inbound_stream.add_chunk(chunk)\n"
                    "        self._advertised_rwnd -= len(chunk.user_data)\n"
                    "        for message in inbound_stream.pop_messages():"
                ),
            },
        ),
        _lines(
            "_get_inbound_stream",
            {"makes aiortc's InboundStream": "self._inbound_streams[stream_id] = InboundStream()"},
        ),
        Lines(
            InboundStream,
            "add_chunk",
            {"appends a chunk newer than the last": "self.reassembly.append(chunk)"},
        ),
        Lines(
            InboundStream,
            "pop_messages",
            {"ends a message only at a last fragment": "if chunk.flags & SCTP_DATA_LAST_FRAG:"},
        ),
        _lines(
            "_mark_received", {"keeps out-of-order TSNs in a set": "self._sack_misordered.add(tsn)"}
        ),
        _lines("_t3_expired", {"marks chunks for retransmission": "chunk._retransmit = True"}),
        _lines("_flight_size_increase", {"counts chunks in flight": "self._flight_size +="}),
        _lines(
            "_send_sack", {"reports the misordered TSNs as gaps": "sorted(self._sack_misordered)"}
        ),
        _lines("start", {"starts the association": "await self._init()"}),
        Lines(
            Connection,
            "__init__",
            {"keeps its sockets' protocols": "self._protocols: list[StunProtocol] = []"},
        ),
        Lines(
            selector_events._SelectorDatagramTransport,  # type: ignore[attr-defined]
            "_read_ready",
            {
                "reads one datagram": "data, addr = self._sock.recvfrom(self.max_size)",
                "hands it to the protocol": "self._protocol.datagram_received(data, addr)",
            },
        ),
    ),
    present=((selector_events.BaseSelectorEventLoop, "_add_reader"),),
    # The two methods FastSctpTransport carries changed copies of: aiortc's fixes to
    # them would not reach the copies, so a changed original is refused.
    forks=(
        Fork(RTCSctpTransport, "_receive_sack_chunk", "8433bff6eb4aa555"),
        Fork(RTCSctpTransport, "_transmit", "f85fec4d830361b0"),
    ),
    extra=(_attributes_set_in_init,),
)


def check_aiortc() -> None:
    """Raise :class:`StackChanged` unless aiortc's SCTP transport (and asyncio's UDP
    transport) still look the way :class:`FastSctpTransport` relies on."""
    SEAM.check()


def sctp_counters(mode: str, pc: RTCPeerConnection) -> dict[str, int | str]:
    """The stats line's view: the mode, and what the fast path counted so far."""
    transport = pc.sctp
    counters: dict[str, int | str] = {"mode": mode}
    if isinstance(transport, FastSctpTransport):
        counters.update(vars(transport.counters))
    return counters


def install_sctp(
    pc: RTCPeerConnection, mode: str, undo: Undo | None = None
) -> RTCSctpTransport | None:
    """Give ``pc``'s SCTP transport the chosen mode; returns the transport, or None if
    ``pc`` has none yet (call after createDataChannel or setRemoteDescription, before
    the connection comes up: the association must start fast). ``undo`` makes it
    aiortc's own transport again (before it starts)."""
    if mode not in SCTP_MODES:
        raise ValueError(f"SCTP mode must be one of {', '.join(SCTP_MODES)}, not {mode!r}")
    transport = pc.sctp
    if mode == "stock" or transport is None:
        return transport
    if isinstance(transport, FastSctpTransport):
        return transport
    if type(transport) is not RTCSctpTransport:
        raise StackChanged(f"the SCTP transport is a {type(transport).__name__}, not aiortc's")
    if transport.state != "new":
        raise RuntimeError("the SCTP transport already started; install the fast path earlier")
    rwnd = transport._advertised_rwnd
    transport.__class__ = FastSctpTransport
    assert isinstance(transport, FastSctpTransport)
    transport._fast_setup()

    def back_to_stock() -> None:
        transport.__class__ = RTCSctpTransport  # type: ignore[assignment]
        transport._advertised_rwnd = rwnd

    if undo is not None:
        undo.add(back_to_stock)
    return transport
