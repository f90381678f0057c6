"""Binary data frames of the native protocol, versions 1 and 2 (docs/PROTOCOL.md, byte for
byte).

Sans-I/O: bytes in, bytes out. All integers little-endian.

    frame   := header(16) body
    header  := message_count u32 | total_size u32 | version u8 | flags u8 | reserved u16
               | body_size u32
    body    := record*                      (compressed as a whole when flags say so)
    record  := timestamp_ns u64 | topic_id u32 | sequence u32 | priority u8 | encoding u8
               | data_size u32 | data

`total_size` is the size of the frame as sent (header included); `body_size` the size of the
body once decompressed, so a client can allocate once and refuse a decompression bomb.

Version 2, a chunk frame: a piece of one record too large for a slow link, sent only to a
client that asked for chunks (`configure` `chunks`), so that other records (CRITICAL first)
can go between two pieces of it. Same header (message_count 1); its body:

    body    := record_header | chunk_offset u32 | chunk_data
               (record_header's data_size: the whole record's; chunk_data: the rest of the body)

`ChunkAssembler` puts the pieces back together.
"""
from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass
from typing import Iterable, Sequence

from .compression import Compression, compress, decompress

VERSION = 1
CHUNK_VERSION = 2
CHUNK_OFFSET = struct.Struct("<I")
HEADER = struct.Struct("<IIBBHI")
RECORD_HEADER = struct.Struct("<QIIBBI")
HEADER_SIZE = HEADER.size  # 16
RECORD_HEADER_SIZE = RECORD_HEADER.size  # 22
CHUNK_HEADER_SIZE = RECORD_HEADER_SIZE + CHUNK_OFFSET.size  # 26, the body's own header
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


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a record: `record` with its data cut to this piece, `data_size` the whole
    record's data size, `offset` where this piece starts in it."""

    record: Record
    data_size: int
    offset: int


@dataclass(frozen=True)
class Frame:
    records: list[Record]  # empty in a chunk frame
    compression: Compression
    total_size: int
    body_size: int
    chunk: Chunk | None = None  # version 2 frames only


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


def encode_chunk(record: Record, offset: int, size: int,
                 compression: Compression = Compression.NONE, threshold_bytes: int = 512) -> bytes:
    """A version 2 frame: `size` bytes of `record`'s data from `offset`."""
    body = b"".join((RECORD_HEADER.pack(record.timestamp_ns, record.topic_id, record.sequence,
                                        record.priority, record.encoding, len(record.data)),
                     CHUNK_OFFSET.pack(offset), record.data[offset:offset + size]))
    sent_body, used = compress(body, compression, threshold_bytes)
    header = HEADER.pack(1, HEADER_SIZE + len(sent_body), CHUNK_VERSION,
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
    if version not in (VERSION, CHUNK_VERSION):
        raise FrameError(f"frame version {version} is not supported (expected {VERSION} or "
                         f"{CHUNK_VERSION})")
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
    if version == CHUNK_VERSION:
        return Frame([], compression, total_size, body_size, _decode_chunk(body, count))
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


def _decode_chunk(body: bytes, count: int) -> Chunk:
    if count != 1:
        raise FrameError(f"a chunk frame holds a piece of 1 record, header says {count}")
    if len(body) < CHUNK_HEADER_SIZE:
        raise FrameError(f"chunk body of {len(body)} bytes is shorter than its header "
                         f"({CHUNK_HEADER_SIZE} bytes)")
    ts, topic_id, seq, prio, enc, data_size = RECORD_HEADER.unpack_from(body, 0)
    offset = CHUNK_OFFSET.unpack_from(body, RECORD_HEADER_SIZE)[0]
    piece = bytes(body[CHUNK_HEADER_SIZE:])
    if offset + len(piece) > data_size:
        raise FrameError(f"chunk of {len(piece)} bytes at {offset} runs past the record's "
                         f"{data_size} bytes")
    return Chunk(Record(ts, topic_id, seq, prio, enc, piece), data_size, offset)


class ChunkAssembler:
    """Puts chunked records back together: the pieces of a record come in order, from offset
    0, with whole records and pieces of records of other topics possibly between them.

    Memory: one partial record per topic at most, each at most `max_record_bytes` (the
    bridge sends one record in pieces per priority at a time, so about one camera frame)."""

    def __init__(self, max_record_bytes: int = 256 << 20) -> None:
        self.max_record_bytes = max_record_bytes
        self._partial: dict[int, tuple[Chunk, bytearray]] = {}

    def add(self, chunk: Chunk) -> Record | None:
        """The whole record once its last piece is in; None before."""
        topic_id = chunk.record.topic_id
        if chunk.offset == 0:
            if chunk.data_size > self.max_record_bytes:
                raise FrameError(f"chunked record of {chunk.data_size} bytes exceeds the limit "
                                 f"of {self.max_record_bytes}")
            # A new record of this topic replaces an unfinished one (none with this bridge).
            buffer = bytearray(chunk.record.data)
            self._partial[topic_id] = (chunk, buffer)
        else:
            partial = self._partial.get(topic_id)
            if partial is None or partial[0].record.sequence != chunk.record.sequence \
                    or len(partial[1]) != chunk.offset:
                raise FrameError(f"chunk at {chunk.offset} of topic {topic_id} sequence "
                                 f"{chunk.record.sequence} does not continue a record")
            buffer = partial[1]
            buffer += chunk.record.data
        if len(buffer) < chunk.data_size:
            return None
        first = self._partial.pop(topic_id)[0].record
        return Record(first.timestamp_ns, first.topic_id, first.sequence, first.priority,
                      first.encoding, bytes(buffer))

    def discard(self, topic_id: int, sequence: int) -> int:
        """The bridge abandoned this record (status `chunk_abandoned`): drop its pieces.
        Returns the bytes dropped (0: none held, e.g. already replaced by a newer record)."""
        partial = self._partial.get(topic_id)
        if partial is None or partial[0].record.sequence != sequence:
            return 0
        del self._partial[topic_id]
        return len(partial[1])

    @property
    def pending_bytes(self) -> int:
        return sum(len(buffer) for _chunk, buffer in self._partial.values())
