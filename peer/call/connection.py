"""One call: an RTCPeerConnection, its state as a table, and early-candidate buffering."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from peer.congestion.sdp import adopt_remote_transport_cc, offer_with_transport_cc
from peer.congestion.shell import CONGESTION_MODES, DEFAULT_MAX_BPS, CongestionShell
from peer.congestion.track import AdaptedVideoTrack
from peer.ice.candidates import CandidateError, candidate_from_json
from peer.stack import ConnectionOptions, ConnectionStack, install_connection
from peer.stack.nack_requests import NackScheduler
from peer.stack.receive_path import FrameCompletionBuffer
from signaling.statetable import IllegalMove, from_each, step

logger = logging.getLogger(__name__)

JSONObject = dict[str, Any]
Send = Callable[[JSONObject], Awaitable[None]]
ICE_CONNECT_TIMEOUT: Final = 20.0


class CallState(Enum):
    NEW = "new"
    OFFERING = "offering"  # our offer is out, waiting for the answer
    ANSWERING = "answering"  # an offer came in, our answer is being made
    CONNECTING = "connecting"  # descriptions exchanged, ICE/DTLS under way
    CONNECTED = "connected"
    ENDED = "ended"
    FAILED = "failed"


class CallEvent(Enum):
    DIAL = "dial"
    OFFER_RECEIVED = "offer-received"
    ANSWER_SENT = "answer-sent"
    ANSWER_RECEIVED = "answer-received"
    MEDIA_CONNECTED = "media-connected"
    MEDIA_FAILED = "media-failed"
    HANG_UP = "hang-up"
    REMOTE_CLOSE = "remote-close"


class IllegalTransition(IllegalMove):
    @staticmethod
    def describe(state: object, event: object) -> str:
        assert isinstance(state, CallState) and isinstance(event, CallEvent)
        return f"{event.value} is not possible while the call is {state.value}"


_LIVE: Final = frozenset(CallState) - {CallState.ENDED, CallState.FAILED}

TRANSITIONS: Final[dict[tuple[CallState, CallEvent], CallState]] = {
    (CallState.NEW, CallEvent.DIAL): CallState.OFFERING,
    (CallState.NEW, CallEvent.OFFER_RECEIVED): CallState.ANSWERING,
    (CallState.OFFERING, CallEvent.ANSWER_RECEIVED): CallState.CONNECTING,
    (CallState.ANSWERING, CallEvent.ANSWER_SENT): CallState.CONNECTING,
    (CallState.ANSWERING, CallEvent.MEDIA_CONNECTED): CallState.CONNECTED,
    (CallState.CONNECTING, CallEvent.MEDIA_CONNECTED): CallState.CONNECTED,
    (CallState.CONNECTING, CallEvent.MEDIA_FAILED): CallState.FAILED,
    (CallState.CONNECTED, CallEvent.MEDIA_FAILED): CallState.FAILED,
    # The other side may renegotiate (an ICE restart, say) once connected.
    (CallState.CONNECTED, CallEvent.OFFER_RECEIVED): CallState.CONNECTED,
    (CallState.CONNECTED, CallEvent.ANSWER_SENT): CallState.CONNECTED,
    (CallState.CONNECTED, CallEvent.MEDIA_CONNECTED): CallState.CONNECTED,
    **from_each(
        _LIVE, {CallEvent.HANG_UP: CallState.ENDED, CallEvent.REMOTE_CLOSE: CallState.ENDED}
    ),
}


class CandidateBuffer:
    """Remote candidates that arrive before the remote description wait here."""

    def __init__(self) -> None:
        self._pending: list[JSONObject | None] = []
        self.ready = False

    def hold(self, candidate: JSONObject | None) -> bool:
        """Keep ``candidate`` if it is too early; True when it was kept."""
        if self.ready:
            return False
        self._pending.append(candidate)
        return True

    def release(self) -> list[JSONObject | None]:
        self.ready = True
        pending, self._pending = self._pending, []
        return pending


@dataclass
class CallTimings:
    """Monotonic timestamps of a call's milestones, for stats and benchmarks."""

    started: float = field(default_factory=time.monotonic)
    ice_connected: float | None = None  # a candidate pair works; DTLS still to come
    connected: float | None = None
    first_frame: float | None = None

    def since_start(self, moment: float | None) -> float | None:
        return None if moment is None else moment - self.started


class Call:
    """One RTCPeerConnection with ``other``; ``send`` delivers signaling messages."""

    def __init__(
        self,
        other: str,
        *,
        configuration: RTCConfiguration,
        send: Send,
        local_tracks: list[MediaStreamTrack],
        on_remote_track: Callable[[MediaStreamTrack], None],
        video_codec: str | None = None,
        receive_path: str = "fast",
        nack_mode: str = "scheduled",
        sctp_mode: str = "fast",
        receive_video: bool = True,
        receive_audio: bool = True,
        on_data_channel: Callable[[RTCDataChannel], None] | None = None,
        congestion_control: str = "gcc",
        max_bitrate_bps: int = DEFAULT_MAX_BPS,
    ) -> None:
        if congestion_control not in CONGESTION_MODES:
            raise ValueError(
                f"congestion control must be one of {', '.join(CONGESTION_MODES)}, "
                f"not {congestion_control!r}"
            )
        self.other = other
        self._on_data_channel = on_data_channel
        self._send = send
        self._on_remote_track = on_remote_track
        self._video_codec = video_codec
        self._receive_path = receive_path
        self._nack_mode = nack_mode
        self._sctp_mode = sctp_mode
        self.receive_buffers: list[FrameCompletionBuffer] = []
        self.nack_schedulers: list[NackScheduler] = []
        self.stack: ConnectionStack | None = None  # what peer/stack put into self.pc
        self._local_tracks = local_tracks
        self._receive = {"video": receive_video, "audio": receive_audio}
        self._tracks_attached = False
        self.state = CallState.NEW
        self.dialled = False  # we sent the first offer (the side that re-offers: recovery.py)
        self.end_reason: str | None = None
        self.ended = asyncio.Event()
        self.described = asyncio.Event()  # both descriptions set: remote tracks are known
        self.connected = asyncio.Event()
        self.timings = CallTimings()
        self._candidates = CandidateBuffer()
        self._lock = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None
        self.pc = RTCPeerConnection(configuration)
        self.congestion: CongestionShell | None = None
        if congestion_control == "gcc":
            self.congestion = CongestionShell(self.pc, max_bps=max_bitrate_bps)
            # Scaled and thinned before the encoder when the link is tight.
            self._local_tracks = [
                AdaptedVideoTrack(t) if t.kind == "video" else t for t in local_tracks
            ]
        self.pc.on("connectionstatechange", self._connection_state_changed)
        self.pc.on("iceconnectionstatechange", self._ice_state_changed)
        self.pc.on("track", self._track_arrived)
        if on_data_channel is not None:
            self.pc.on("datachannel", on_data_channel)

    def _install_stack(self) -> None:
        options = ConnectionOptions(
            receive_path=self._receive_path, nack=self._nack_mode, sctp=self._sctp_mode
        )
        self.stack = install_connection(self.pc, options, self.stack)
        self.receive_buffers = self.stack.receive_buffers
        self.nack_schedulers = self.stack.nack_schedulers

    # ---- the state table ---------------------------------------------------------
    def _fire(self, event: CallEvent) -> CallState:
        next_state = step(TRANSITIONS, self.state, event, IllegalTransition)
        if next_state is not self.state:
            logger.info("call with %s: %s -> %s", self.other, self.state.value, next_state.value)
        self.state = next_state
        if next_state is CallState.CONNECTED:
            self.connected.set()
        return next_state

    @property
    def live(self) -> bool:
        return self.state in _LIVE

    # ---- outgoing ----------------------------------------------------------------
    async def dial(self) -> None:
        """Make and send our offer."""
        self._fire(CallEvent.DIAL)
        self.dialled = True
        self._add_transceivers()
        self._tracks_attached = True
        if self._on_data_channel is not None:
            # Before createOffer, so the offer carries the SCTP m-line every later
            # channel (the callee's file transfers too) rides on.
            self._on_data_channel(self.pc.createDataChannel("chat", ordered=True))
        self._install_stack()  # the transceivers and the chat channel's transport exist
        offer = await self.pc.createOffer()
        if self.congestion is not None:
            offer = RTCSessionDescription(sdp=offer_with_transport_cc(offer.sdp), type="offer")
        await self.pc.setLocalDescription(offer)
        await self._send(
            {
                "type": "offer",
                "offer": _description_json(self.pc.localDescription),
                "otherUsername": self.other,
            }
        )
        self._start_watchdog()

    async def answer_received(self, answer: JSONObject) -> None:
        async with self._lock:
            if self.state is CallState.CONNECTED:
                logger.debug("ignoring a renegotiation answer from %s", self.other)
                return
            self._fire(CallEvent.ANSWER_RECEIVED)
            await self.pc.setRemoteDescription(_description(answer))
            self._negotiate_congestion_control()
            self.described.set()
            await self._apply_held_candidates()

    # ---- incoming ----------------------------------------------------------------
    async def offer_received(self, offer: JSONObject) -> None:
        """Answer ``offer`` (first call or a renegotiation)."""
        async with self._lock:
            self._fire(CallEvent.OFFER_RECEIVED)
            await self.pc.setRemoteDescription(_description(offer))
            self._install_stack()  # on the transceivers and SCTP transport the offer made
            if not self._tracks_attached:
                # aiortc made a transceiver per offered m-line; ours go onto those.
                self._attach_to_offered_transceivers()
                self._tracks_attached = True
            self._negotiate_congestion_control()
            await self._apply_held_candidates()
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
            await self._send(
                {
                    "type": "answer",
                    "answer": _description_json(self.pc.localDescription),
                    "otherUsername": self.other,
                }
            )
            self._fire(CallEvent.ANSWER_SENT)
            self.described.set()
            self._start_watchdog()

    async def candidate_received(self, candidate: JSONObject | None) -> None:
        if not self.live or self._candidates.hold(candidate):
            return
        await self._add_candidate(candidate)

    # ---- ending ------------------------------------------------------------------
    async def hang_up(self, reason: str | None = None, *, notify: bool = True) -> None:
        """End the call from our side; tells the other user unless ``notify`` is False."""
        if not self.live:
            return
        self._fire(CallEvent.HANG_UP)
        if notify:
            message: JSONObject = {"type": "close", "otherUsername": self.other}
            if reason:
                message["reason"] = reason
            try:
                await self._send(message)
            except Exception as exc:  # the server may be gone; the call still ends
                logger.info("could not send close to %s: %s", self.other, exc)
        await self._finish(reason or "hung up")

    async def remote_closed(self, reason: str | None) -> None:
        if not self.live:
            return
        self._fire(CallEvent.REMOTE_CLOSE)
        await self._finish(f"{self.other} hung up" + (f" ({reason})" if reason else ""))

    async def _fail(self, why: str) -> None:
        # No close to the partner here: the call may yet be re-established
        # (peer/call/recovery.py); whoever gives up on it tells the partner.
        if self.state not in (CallState.CONNECTING, CallState.CONNECTED):
            return
        self._fire(CallEvent.MEDIA_FAILED)
        await self._finish(why)

    @property
    def remote_sdp(self) -> str | None:
        description = self.pc.remoteDescription
        return description.sdp if description is not None else None

    async def _finish(self, reason: str) -> None:
        self.end_reason = reason
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        if self.congestion is not None:
            await self.congestion.close()  # first: aiortc's senders may wait on its pacer
        await self.pc.close()
        self.ended.set()

    # ---- internals ---------------------------------------------------------------
    def _negotiate_congestion_control(self) -> None:
        """After a remote description: keep transport-cc where both sides have it, and
        hook the congestion controller into the (now bundled) transports and senders."""
        if self.congestion is None:
            return
        self.congestion.negotiated(adopt_remote_transport_cc(self.pc))
        self.congestion.receive_buffers = self.receive_buffers
        self.congestion.nack_schedulers = self.nack_schedulers
        self.congestion.attach()

    def _add_transceivers(self) -> None:
        for kind in ("audio", "video"):
            track = next((t for t in self._local_tracks if t.kind == kind), None)
            if track is None and not self._receive[kind]:
                continue
            direction = _direction(track is not None, self._receive[kind])
            transceiver = self.pc.addTransceiver(track or kind, direction=direction)
            if kind == "video":
                self._prefer_codec(transceiver)

    def _attach_to_offered_transceivers(self) -> None:
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            track = next((t for t in self._local_tracks if t.kind == kind), None)
            if track is not None:
                transceiver.sender.replaceTrack(track)
            transceiver.direction = _direction(track is not None, self._receive[kind])
            if kind == "video":
                self._prefer_codec(transceiver)

    def _prefer_codec(self, transceiver: Any) -> None:
        if self._video_codec is None:
            return
        wanted = f"video/{self._video_codec}".lower()
        codecs = RTCRtpSender.getCapabilities("video").codecs
        preferred = [c for c in codecs if c.mimeType.lower() == wanted]
        if not preferred:
            raise ValueError(f"codec {self._video_codec!r} is not available in aiortc")
        rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
        transceiver.setCodecPreferences(preferred + rtx)

    async def _apply_held_candidates(self) -> None:
        for candidate in self._candidates.release():
            await self._add_candidate(candidate)

    async def _add_candidate(self, data: JSONObject | None) -> None:
        try:
            candidate = candidate_from_json(data)
        except CandidateError as exc:
            logger.warning("ignoring a candidate from %s: %s", self.other, exc)
            return
        try:
            await self.pc.addIceCandidate(candidate)
        except ValueError as exc:
            logger.warning("ignoring a candidate from %s: %s", self.other, exc)

    def _track_arrived(self, track: MediaStreamTrack) -> None:
        logger.info("receiving %s from %s", track.kind, self.other)
        self._on_remote_track(track)

    async def _connection_state_changed(self) -> None:
        state = self.pc.connectionState
        logger.debug("call with %s: connection %s", self.other, state)
        if state == "connected" and self.live:
            if self.timings.connected is None:
                self.timings.connected = time.monotonic()
            self._fire(CallEvent.MEDIA_CONNECTED)
        elif state == "failed" or (state == "closed" and self.live):
            # aiortc reports a connection whose ICE consent expired as "closed", not
            # "failed"; a close of our own comes after the call left its live states.
            await self._fail(f"the media connection with {self.other} failed (ICE)")

    def _ice_state_changed(self) -> None:
        if self.pc.iceConnectionState == "completed" and self.timings.ice_connected is None:
            self.timings.ice_connected = time.monotonic()

    def _start_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._connect_watchdog())

    async def _connect_watchdog(self) -> None:
        await asyncio.sleep(ICE_CONNECT_TIMEOUT)
        if self.state in (CallState.OFFERING, CallState.ANSWERING, CallState.CONNECTING):
            logger.warning(
                "no media connection with %s after %.0f s", self.other, ICE_CONNECT_TIMEOUT
            )
            if self.state is CallState.CONNECTING:
                await self._fail(
                    f"could not connect media with {self.other} within {ICE_CONNECT_TIMEOUT:.0f} s"
                )


def _direction(send: bool, receive: bool) -> str:
    return {
        (True, True): "sendrecv",
        (True, False): "sendonly",
        (False, True): "recvonly",
        (False, False): "inactive",
    }[(send, receive)]


def _description(data: JSONObject) -> RTCSessionDescription:
    return RTCSessionDescription(sdp=str(data["sdp"]), type=str(data["type"]))


def _description_json(description: RTCSessionDescription | None) -> JSONObject:
    assert description is not None
    return {"type": description.type, "sdp": description.sdp}
