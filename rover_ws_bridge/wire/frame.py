"""Binary data frames of the native protocol, version 1 (docs/PROTOCOL.md, byte for byte).

Sans-I/O: bytes in, bytes out. All integers little-endian.

    frame   := header(16) body
    header  := message_count u32 | total_size u32 | version u8 | flags u8 | reserved u16
               | body_size u32
    body    := record*                      (compressed as a whole when flags say so)
    record  := timestamp_ns u64 | topic_id u32 | sequence u32 | priority u8 | encoding u8
               | data_size u32 | data

`total_size` is the size of the frame as sent (header included); `body_size` the size of the
body once decompressed, so a client can allocate once and refuse a decompression bomb.
"""
from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass
from typing import Iterable, Sequence

from .compression import Compression, compress, decompress

VERSION = 1
HEADER = struct.Struct("<IIBBHI")
RECORD_HEADER = struct.Struct("<QIIBBI")
HEADER_SIZE = HEADER.size  # 16
RECORD_HEADER_SIZE = RECORD_HEADER.size  # 22
COMPRESSION_MASK = 0x03  # flags bits 0-1; bits 2-7 are reserved and sent as 0


class Encoding(enum.IntEnum):
    """How a record's data is encoded (the record's `encoding` byte)."""

    CDR = 0  # the ROS message's serialized bytes as received (CDR), passed through
    MSGPACK = 1  # the message as a msgpack map of its fields
    JSON = 2  # the message as UTF-8 JSON text of its fields
    # The message as CBOR, numeric arrays as RFC 8746 typed arrays (rosbridge's `cbor`
    # compression). Not offered to native clients (config.ENCODINGS) so far.
    CBOR = 3

    @classmethod
    def from_name(cls, name: str) -> "Encoding":
        return cls[name.upper()]


class FrameError(ValueError):
    """A frame that does not follow the layout (truncated, sizes that disagree, bad version)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One message in a frame. `timestamp_ns`: when the bridge received it from ROS (Unix ns)."""

    timestamp_ns: int
    topic_id: int
    sequence: int
    priority: int
    encoding: int
    data: bytes

    @property
    def wire_size(self) -> int:
        return RECORD_HEADER_SIZE + len(self.data)


@dataclass(frozen=True)
class Frame:
    records: list[Record]
    compression: Compression
    total_size: int
    body_size: int


def encode_body(records: Iterable[Record]) -> bytes:
    parts: list[bytes] = []
    pack = RECORD_HEADER.pack
    for r in records:
        parts.append(pack(r.timestamp_ns, r.topic_id, r.sequence, r.priority, r.encoding,
                          len(r.data)))
        parts.append(r.data)
    return b"".join(parts)


def encode_frame(
    records: Sequence[Record],
    compression: Compression = Compression.NONE,
    threshold_bytes: int = 512,
) -> bytes:
    """Build one frame. Compression is applied only when it pays (see compression.compress)."""
    body = encode_body(records)
    sent_body, used = compress(body, compression, threshold_bytes)
    header = HEADER.pack(len(records), HEADER_SIZE + len(sent_body), VERSION,
                         int(used) & COMPRESSION_MASK, 0, len(body))
    return header + sent_body


def frame_compression(frame: bytes) -> int:
    """The compression code in an encoded frame's flags."""
    return frame[9] & COMPRESSION_MASK


def decode_frame(frame: bytes | bytearray | memoryview, max_body_bytes: int = 256 << 20) -> Frame:
    """Parse a frame; raise FrameError on anything that does not add up."""
    view = memoryview(frame)
    if len(view) < HEADER_SIZE:
        raise FrameError(f"frame of {len(view)} bytes is shorter than its header "
                         f"({HEADER_SIZE} bytes)")
    count, total_size, version, flags, _reserved, body_size = HEADER.unpack_from(view, 0)
    if version != VERSION:
        raise FrameError(f"frame version {version} is not supported (expected {VERSION})")
    if total_size != len(view):
        raise FrameError(f"header says {total_size} bytes, frame has {len(view)}")
    if body_size > max_body_bytes:
        raise FrameError(f"body of {body_size} bytes exceeds the limit of {max_body_bytes}")
    try:
        compression = Compression(flags & COMPRESSION_MASK)
    except ValueError:
        raise FrameError(f"unknown compression code {flags & COMPRESSION_MASK}") from None
    try:
        body = decompress(bytes(view[HEADER_SIZE:]), compression, body_size)
    except (zlib.error, RuntimeError, ValueError) as exc:  # what zlib and lz4 raise on junk
        raise FrameError(f"the {compression.name.lower()} body does not decompress: "
                         f"{str(exc)[:200]}") from None
    if len(body) != body_size:
        raise FrameError(f"body is {len(body)} bytes, header says {body_size}")
    records: list[Record] = []
    offset = 0
    for index in range(count):
        if offset + RECORD_HEADER_SIZE > body_size:
            raise FrameError(f"record {index} header runs past the end of the body")
        ts, topic_id, seq, prio, enc, size = RECORD_HEADER.unpack_from(body, offset)
        offset += RECORD_HEADER_SIZE
        if offset + size > body_size:
            raise FrameError(f"record {index} data ({size} bytes) runs past the end of the body")
        records.append(Record(ts, topic_id, seq, prio, enc, bytes(body[offset:offset + size])))
        offset += size
    if offset != body_size:
        raise FrameError(f"{body_size - offset} bytes left after {count} records")
    return Frame(records, compression, total_size, body_size)
