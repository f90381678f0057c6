"""The frame layout, compression and encoders: pure, no ROS, no sockets."""
from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import msgpack
import pytest

from rover_ws_bridge.wire import compression as compression_module
from rover_ws_bridge.wire.compression import Compression, compress
from rover_ws_bridge.wire.encoding import decode_data, encode_plain, to_json_text
from rover_ws_bridge.wire.frame import (
    HEADER_SIZE,
    RECORD_HEADER_SIZE,
    ChunkAssembler,
    Encoding,
    FrameError,
    Record,
    decode_frame,
    encode_chunk,
    encode_frame,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"


def test_worked_example_in_protocol_doc_matches_encoder():
    doc = (ROOT / "docs" / "PROTOCOL.md").read_text()
    block = doc.split("### Worked example", 1)[1].split("```", 2)[1]
    # Each line starts with hex byte pairs, then a description.
    hex_bytes = []
    for line in block.strip().splitlines():
        hex_bytes += re.match(r"((?:[0-9a-f]{2} )+)", line + " ").group(1).split()
    frame = encode_frame([Record(1700000000006000000, 3, 2, 3, int(Encoding.MSGPACK),
                                 msgpack.packb({"data": True}))])
    assert bytes.fromhex("".join(hex_bytes)) == frame
    assert len(frame) == 45


@pytest.mark.parametrize("name", ["frame_none.bin", "frame_lz4.bin", "frame_zlib.bin"])
def test_golden_frames_decode_to_their_records(name):
    manifest = json.loads((GOLDEN / "frames.json").read_text())[name]
    frame = decode_frame((GOLDEN / name).read_bytes())
    assert frame.compression.name.lower() == manifest["compression"]
    got = [{"timestamp_ns": r.timestamp_ns, "topic_id": r.topic_id, "sequence": r.sequence,
            "priority": r.priority, "encoding": r.encoding, "data_hex": r.data.hex()}
           for r in frame.records]
    assert got == manifest["records"]
    imu = decode_data(frame.records[0].data, frame.records[0].encoding)
    assert imu["linear_acceleration"]["z"] == 9.81


def test_uncompressed_golden_frame_is_what_the_encoder_writes_today():
    import importlib.util
    spec = importlib.util.spec_from_file_location("golden_generate", GOLDEN / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    records, compression, threshold = generate.CASES["frame_none.bin"]
    assert encode_frame(records, compression, threshold) == (GOLDEN / "frame_none.bin").read_bytes()


def _records(n, size=100, topic=1):
    return [Record(1_000 + i, topic, i, 1, 1, bytes([i % 7]) * size) for i in range(n)]


@pytest.mark.parametrize("wanted", [Compression.LZ4, Compression.ZLIB])
def test_compressible_frame_is_compressed_and_round_trips(wanted):
    records = _records(50)
    frame = encode_frame(records, wanted, 512)
    decoded = decode_frame(frame)
    assert decoded.compression is wanted
    assert decoded.records == records
    assert len(frame) < HEADER_SIZE + decoded.body_size


def test_small_frame_is_not_compressed():
    records = _records(1, size=10)
    decoded = decode_frame(encode_frame(records, Compression.LZ4, 512))
    assert decoded.compression is Compression.NONE
    assert decoded.records == records


def test_incompressible_frame_is_sent_uncompressed():
    import os
    records = [Record(1, 1, 1, 0, 0, os.urandom(4000))]
    decoded = decode_frame(encode_frame(records, Compression.ZLIB, 512))
    assert decoded.compression is Compression.NONE
    assert decoded.records == records


def test_compressor_failure_falls_back_to_uncompressed(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("compressor exploded")

    monkeypatch.setattr(compression_module.lz4.frame, "compress", broken)
    body = b"a" * 5000
    assert compress(body, Compression.LZ4, 512) == (body, Compression.NONE)
    records = _records(30)
    assert decode_frame(encode_frame(records, Compression.LZ4, 512)).records == records


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f[:10], "shorter than"),
    (lambda f: f + b"x", "header says"),
    (lambda f: f[:8] + b"\x03" + f[9:], "version 3"),
    (lambda f: f[:8] + b"\x02" + f[9:], "a piece of 1 record"),
    (lambda f: f[:9] + b"\x03" + f[10:], "unknown compression"),
    (lambda f: struct.pack("<I", 5) + f[4:], "runs past"),
    (lambda f: struct.pack("<I", 0) + f[4:], "left after"),
])
def test_malformed_frames_raise_frame_error(mutate, message):
    frame = encode_frame(_records(2))
    with pytest.raises(FrameError, match=message):
        decode_frame(mutate(frame))


def test_zlib_bomb_is_cut_at_announced_size():
    body = b"\0" * 1_000_000
    packed = zlib.compress(body)
    header = struct.pack("<IIBBHI", 0, HEADER_SIZE + len(packed), 1, 2, 0, 100)
    with pytest.raises(FrameError):
        decode_frame(header + packed)


def test_record_wire_size():
    assert Record(0, 0, 0, 0, 0, b"abc").wire_size == RECORD_HEADER_SIZE + 3


def test_encoders_keep_bytes_and_clean_non_finite_json():
    plain = {"data": b"\x00\xff", "x": float("nan"), "y": [1.5, float("inf")], "s": "é"}
    assert msgpack.unpackb(encode_plain(plain, Encoding.MSGPACK))["data"] == b"\x00\xff"
    as_json = json.loads(encode_plain(plain, Encoding.JSON))
    assert as_json == {"data": "AP8=", "x": None, "y": [1.5, None], "s": "é"}
    assert to_json_text({"a": 1.0}) == '{"a":1.0}'
    with pytest.raises(ValueError):
        encode_plain(plain, Encoding.CDR)


# -- chunk frames (frame version 2) ---------------------------------------------------------


def _chunk_manifest() -> dict:
    return json.loads((GOLDEN / "chunks.json").read_text())


def _record_of(expected: dict) -> Record:
    return Record(expected["timestamp_ns"], expected["topic_id"], expected["sequence"],
                  expected["priority"], expected["encoding"], bytes.fromhex(expected["data_hex"]))


def test_golden_chunks_are_what_the_encoder_writes_and_reassemble_around_a_whole_frame():
    manifest = _chunk_manifest()
    record = _record_of(manifest["record"])
    assembler = ChunkAssembler()
    got = []
    for index, piece in enumerate(manifest["frames"]):
        raw = (GOLDEN / piece["name"]).read_bytes()
        assert raw == encode_chunk(record, piece["offset"], piece["size"])
        frame = decode_frame(raw)
        assert frame.records == [] and frame.chunk.offset == piece["offset"]
        assert frame.chunk.data_size == len(record.data)
        whole = assembler.add(frame.chunk)
        got.append(whole)
        if index == 0:  # a whole frame between two pieces is read as usual
            between = decode_frame((GOLDEN / manifest["between"]).read_bytes())
            assert len(between.records) == 3
    assert got[:-1] == [None] * (len(got) - 1)
    assert got[-1] == record
    assert assembler.pending_bytes == 0


@pytest.mark.parametrize("compression", [Compression.NONE, Compression.LZ4, Compression.ZLIB])
def test_a_record_cut_into_pieces_of_any_size_comes_back_whole(compression):
    record = Record(5, 2, 9, 0, 1, b"camera" * 5000)
    for size in (1000, 7777, len(record.data)):
        assembler = ChunkAssembler()
        results = [assembler.add(decode_frame(encode_chunk(record, offset, size, compression))
                                 .chunk)
                   for offset in range(0, len(record.data), size)]
        assert results[-1] == record and all(r is None for r in results[:-1])


def test_pieces_of_two_topics_interleave():
    a = Record(1, 1, 1, 0, 0, b"a" * 300)
    b = Record(2, 2, 7, 1, 0, b"b" * 300)
    assembler = ChunkAssembler()
    chunk = lambda r, o: decode_frame(encode_chunk(r, o, 200)).chunk  # noqa: E731
    assert assembler.add(chunk(a, 0)) is None
    assert assembler.add(chunk(b, 0)) is None
    assert assembler.add(chunk(b, 200)) == b
    assert assembler.add(chunk(a, 200)) == a


def test_a_piece_that_does_not_continue_its_record_is_refused():
    record = Record(1, 1, 1, 0, 0, b"x" * 300)
    other = Record(1, 1, 2, 0, 0, b"y" * 300)
    assembler = ChunkAssembler()
    with pytest.raises(FrameError, match="does not continue"):
        assembler.add(decode_frame(encode_chunk(record, 100, 100)).chunk)  # no start
    assembler.add(decode_frame(encode_chunk(record, 0, 100)).chunk)
    with pytest.raises(FrameError, match="does not continue"):
        assembler.add(decode_frame(encode_chunk(record, 200, 100)).chunk)  # a gap
    with pytest.raises(FrameError, match="does not continue"):
        assembler.add(decode_frame(encode_chunk(other, 100, 100)).chunk)  # another record


def test_malformed_chunk_frames_raise_frame_error():
    record = Record(1, 1, 1, 0, 0, b"x" * 300)
    raw = bytearray(encode_chunk(record, 0, 100))
    raw[0] = 2  # message_count
    with pytest.raises(FrameError, match="a piece of 1 record"):
        decode_frame(bytes(raw))
    raw = bytearray(encode_chunk(record, 250, 100))  # 50 bytes left: a 50-byte piece
    struct.pack_into("<I", raw, HEADER_SIZE + 22, 260)  # now it would run past the end
    with pytest.raises(FrameError, match="runs past"):
        decode_frame(bytes(raw))
    with pytest.raises(FrameError, match="exceeds the limit"):
        ChunkAssembler(max_record_bytes=299).add(decode_frame(encode_chunk(record, 0, 10)).chunk)


def test_the_python_client_delivers_a_chunked_record_once_whole_and_frames_between_at_once():
    from rover_ws_bridge.client import BridgeClient

    manifest = _chunk_manifest()
    client = BridgeClient("ws://unused", decode=False)  # fed frames directly, no socket
    names = [piece["name"] for piece in manifest["frames"]]
    client._on_binary((GOLDEN / names[0]).read_bytes(), 1)
    assert client.drain() == []  # a piece alone is not a message
    client._on_binary((GOLDEN / manifest["between"]).read_bytes(), 2)
    assert [m.sequence for m in client.drain()] == [41, 2, 3]
    for name in names[1:]:
        client._on_binary((GOLDEN / name).read_bytes(), 3)
    [whole] = client.drain()
    assert whole.data == bytes.fromhex(manifest["record"]["data_hex"])
    assert (whole.topic_id, whole.sequence) == (9, 5)


def test_an_abandoned_record_is_dropped_and_the_next_one_of_its_topic_starts_clean():
    from rover_ws_bridge.client import BridgeClient

    client = BridgeClient("ws://unused", decode=False)  # fed frames directly, no socket
    camera = Record(1, 4, 7, 0, int(Encoding.CDR), bytes(range(256)) * 40)
    client._on_binary(encode_chunk(camera, 0, 4000, Compression.NONE, 512), 1)
    assert client._assembler.pending_bytes == 4000
    # Another record's abandonment, or one already gone, changes nothing.
    assert client._assembler.discard(4, 8) == 0 and client._assembler.discard(5, 7) == 0
    client._on_text(json.dumps({"op": "status", "level": "info", "code": "chunk_abandoned",
                                "id": None, "message": "...", "topic_id": 4, "sequence": 7,
                                "sent_bytes": 4000, "data_size": len(camera.data)}), 2)
    assert client._assembler.pending_bytes == 0 and client.chunks_abandoned == 1
    # The rest of it would no longer continue anything: refused, not glued to a stale start.
    with pytest.raises(FrameError):
        client._on_binary(encode_chunk(camera, 4000, 4000, Compression.NONE, 512), 3)
    nxt = Record(2, 4, 8, 0, int(Encoding.CDR), b"next" * 10)
    for offset in (0, 20):
        client._on_binary(encode_chunk(nxt, offset, 20, Compression.NONE, 512), 4)
    [whole] = client.drain()
    assert (whole.sequence, whole.data) == (8, nxt.data)
