"""Reading and writing the few RTP/RTCP fields the congestion shell needs, on raw bytes.

The shell stamps the transport-wide sequence number on each packet as it leaves, after
aiortc serialized it, so that every SSRC on the bundle (RTX included) shares one counter
in the order packets really go out. Working on the bytes keeps aiortc's packet objects
untouched. Pure functions: bytes in, bytes or numbers out; malformed input raises
``ValueError``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

RTP_HEADER_SIZE: Final = 12
ONE_BYTE_PROFILE: Final = 0xBEDE
TWO_BYTE_PROFILE_MASK: Final = 0xFFF0
TWO_BYTE_PROFILE: Final = 0x1000
MAX_ONE_BYTE_ID: Final = 14

RTCP_RTPFB: Final = 205
RTCP_PSFB: Final = 206
FMT_NACK: Final = 1
FMT_TRANSPORT_CC: Final = 15
FMT_PLI: Final = 1
FMT_FIR: Final = 4
FMT_REMB: Final = 15


@dataclass(frozen=True)
class RtpHeader:
    ssrc: int
    sequence: int
    payload_type: int


def rtp_header(packet: bytes) -> RtpHeader:
    if len(packet) < RTP_HEADER_SIZE or packet[0] >> 6 != 2:
        raise ValueError("not an RTP packet")
    sequence, _, ssrc = struct.unpack_from("!HLL", packet, 2)
    return RtpHeader(ssrc=ssrc, sequence=sequence, payload_type=packet[1] & 0x7F)


MAX_PADDING: Final = 255  # the padding count is one byte


def padding_packet(*, payload_type: int, sequence: int, timestamp: int, ssrc: int) -> bytes:
    """An RTP packet that carries nothing but ``MAX_PADDING`` bytes of padding (RFC 3550
    5.1: the padding bit set, the last byte counting the padding), as GCC probes with."""
    header = struct.pack(
        "!BBHLL", 0xA0, payload_type & 0x7F, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
    )
    return header + b"\x00" * (MAX_PADDING - 1) + bytes([MAX_PADDING])


def is_padding_only(packet: bytes) -> bool:
    """Whether an RTP packet's payload is all padding (nothing for a decoder)."""
    if len(packet) < RTP_HEADER_SIZE or not packet[0] & 0x20:
        return False
    _, _, end = _extension_block(packet)
    return end + packet[-1] == len(packet)


def with_sequence(packet: bytes, sequence: int) -> bytes:
    """``packet`` with its RTP sequence number replaced."""
    rtp_header(packet)  # validates
    return packet[:2] + struct.pack("!H", sequence & 0xFFFF) + packet[4:]


def _extension_block(packet: bytes) -> tuple[int, int, int]:
    """(start of the extension header, or -1 when there is none; its profile; body end)."""
    header = rtp_header(packet)  # validates
    del header
    csrc_end = RTP_HEADER_SIZE + 4 * (packet[0] & 0x0F)
    if not packet[0] & 0x10:
        if len(packet) < csrc_end:
            raise ValueError("RTP packet shorter than its CSRC list")
        return -1, 0, csrc_end
    if len(packet) < csrc_end + 4:
        raise ValueError("RTP header extension truncated")
    profile, words = struct.unpack_from("!HH", packet, csrc_end)
    end = csrc_end + 4 + 4 * words
    if len(packet) < end:
        raise ValueError("RTP header extension longer than the packet")
    return csrc_end, profile, end


def _elements(profile: int, body: bytes) -> Iterator[tuple[int, bytes]]:
    position = 0
    two_byte = profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE
    while position < len(body):
        first = body[position]
        if first == 0:  # padding between or after elements
            position += 1
            continue
        if two_byte:
            if position + 2 > len(body):
                raise ValueError("two-byte header extension element truncated")
            element_id, length = first, body[position + 1]
            position += 2
        else:
            element_id, length = first >> 4, (first & 0x0F) + 1
            if element_id == 15:  # reserved: stop reading, per RFC 8285
                return
            position += 1
        if position + length > len(body):
            raise ValueError("header extension element longer than its block")
        yield element_id, body[position : position + length]
        position += length


def read_transport_sequence(packet: bytes, extension_id: int) -> int | None:
    """The transport-wide sequence number in ``packet``, or None when it carries none."""
    start, profile, end = _extension_block(packet)
    if start < 0:
        return None
    for element_id, value in _elements(profile, packet[start + 4 : end]):
        if element_id == extension_id and len(value) == 2:
            return int(struct.unpack("!H", value)[0])
    return None


def stamp_transport_sequence(packet: bytes, extension_id: int, sequence: int) -> bytes:
    """``packet`` with its transport-wide sequence number set to ``sequence``.

    Keeps every other extension element; adds the extension block when the packet has
    none. A block with a profile other than RFC 8285's is left alone (returned as is).
    """
    start, profile, end = _extension_block(packet)
    value = struct.pack("!H", sequence & 0xFFFF)
    if start < 0:
        elements: list[tuple[int, bytes]] = []
        profile = ONE_BYTE_PROFILE
        before, after = packet[:end], packet[end:]
        first_byte = packet[0] | 0x10
    else:
        if profile != ONE_BYTE_PROFILE and profile & TWO_BYTE_PROFILE_MASK != TWO_BYTE_PROFILE:
            return packet
        elements = [e for e in _elements(profile, packet[start + 4 : end]) if e[0] != extension_id]
        before, after = packet[:start], packet[end:]
        first_byte = packet[0]
    elements.append((extension_id, value))
    if profile == ONE_BYTE_PROFILE and extension_id > MAX_ONE_BYTE_ID:
        profile = TWO_BYTE_PROFILE
    body = _pack_elements(profile, elements)
    block = struct.pack("!HH", profile, len(body) // 4) + body
    return bytes([first_byte]) + before[1:] + block + after


def _pack_elements(profile: int, elements: list[tuple[int, bytes]]) -> bytes:
    if profile == ONE_BYTE_PROFILE:
        body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements)
    else:
        body = b"".join(bytes([i, len(v)]) + v for i, v in elements)
    return body + b"\x00" * (-len(body) % 4)


# ---- RTCP -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RtcpPacket:
    packet_type: int
    fmt: int  # the report count / feedback message type in the first byte
    data: bytes  # the whole packet, header included


def split_compound(data: bytes) -> list[RtcpPacket]:
    """The packets of a compound RTCP datagram (decrypted)."""
    packets = []
    position = 0
    while position < len(data):
        if len(data) - position < 4:
            raise ValueError("RTCP packet header truncated")
        first, packet_type, words = struct.unpack_from("!BBH", data, position)
        if first >> 6 != 2:
            raise ValueError("RTCP packet of a version other than 2")
        end = position + 4 * (words + 1)
        if end > len(data):
            raise ValueError("RTCP packet longer than its datagram")
        packets.append(RtcpPacket(packet_type, first & 0x1F, data[position:end]))
        position = end
    return packets


def nack_count(packet: RtcpPacket) -> int:
    """How many RTP packets a generic NACK asks for again."""
    count = 0
    for position in range(12, len(packet.data) - 3, 4):
        _, bitmask = struct.unpack_from("!HH", packet.data, position)
        count += 1 + bin(bitmask).count("1")
    return count


def is_transport_feedback(packet: RtcpPacket) -> bool:
    return packet.packet_type == RTCP_RTPFB and packet.fmt == FMT_TRANSPORT_CC


def is_nack(packet: RtcpPacket) -> bool:
    return packet.packet_type == RTCP_RTPFB and packet.fmt == FMT_NACK


def is_keyframe_request(packet: RtcpPacket) -> bool:
    return packet.packet_type == RTCP_PSFB and packet.fmt in (FMT_PLI, FMT_FIR)


def is_remb(packet: RtcpPacket) -> bool:
    return (
        packet.packet_type == RTCP_PSFB and packet.fmt == FMT_REMB and packet.data[12:16] == b"REMB"
    )
