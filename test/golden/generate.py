"""Writes the golden frame files of docs/PROTOCOL.md (run from the repo root).

    python test/golden/generate.py

The files are committed: the Python client's tests and the TypeScript client's tests decode
them. Deterministic input; LZ4/zlib output may differ between library versions, so the tests
compare the uncompressed frame byte for byte and the compressed ones by what they decode to.
"""
from __future__ import annotations

import json
from pathlib import Path

import msgpack

from rover_ws_bridge.wire.compression import Compression
from rover_ws_bridge.wire.frame import Encoding, Record, encode_chunk, encode_frame

HERE = Path(__file__).parent

# Two topics, three records: an IMU sample (msgpack, NORMAL), the e-stop state (msgpack,
# CRITICAL), and raw CDR of a std_msgs/Bool (true).
IMU = {"header": {"stamp": {"sec": 1700000000, "nanosec": 5000000}, "frame_id": "imu_link"},
       "linear_acceleration": {"x": 0.1, "y": -0.2, "z": 9.81}}
ESTOP = {"data": True}
CDR_BOOL_TRUE = bytes([0x00, 0x01, 0x00, 0x00, 0x01])


def records(repeat: int) -> list[Record]:
    base = [
        Record(1700000000005000000, 7, 41, 1, int(Encoding.MSGPACK), msgpack.packb(IMU)),
        Record(1700000000006000000, 3, 2, 3, int(Encoding.MSGPACK), msgpack.packb(ESTOP)),
        Record(1700000000007000000, 3, 3, 3, int(Encoding.CDR), CDR_BOOL_TRUE),
    ]
    out = []
    for i in range(repeat):
        for r in base:
            out.append(Record(r.timestamp_ns + i * 5_000_000, r.topic_id, r.sequence + i,
                              r.priority, r.encoding, r.data))
    return out


CASES = {
    # name: (records, compression, threshold)
    "frame_none.bin": (records(1), Compression.NONE, 512),
    "frame_lz4.bin": (records(20), Compression.LZ4, 512),
    "frame_zlib.bin": (records(20), Compression.ZLIB, 512),
}


# A record sent in pieces (frame version 2): 100 bytes of CDR in three chunks of 40, 40, 20,
# the e-stop's whole frame between the first two (what a slow link gets).
CHUNKED = Record(1700000000008000000, 9, 5, 0, int(Encoding.CDR), bytes(range(100)))
CHUNKS = [("chunk_0.bin", 0, 40), ("chunk_1.bin", 40, 40), ("chunk_2.bin", 80, 20)]


def expected(recs: list[Record]) -> list[dict]:
    return [{"timestamp_ns": r.timestamp_ns, "topic_id": r.topic_id, "sequence": r.sequence,
             "priority": r.priority, "encoding": r.encoding, "data_hex": r.data.hex()}
            for r in recs]


def main() -> None:
    manifest = {}
    for name, (recs, compression, threshold) in CASES.items():
        frame = encode_frame(recs, compression, threshold)
        (HERE / name).write_bytes(frame)
        manifest[name] = {"compression": compression.name.lower(), "records": expected(recs)}
    (HERE / "frames.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for name, offset, size in CHUNKS:
        (HERE / name).write_bytes(encode_chunk(CHUNKED, offset, size))
    chunks = {"frames": [{"name": name, "offset": offset, "size": size}
                         for name, offset, size in CHUNKS],
              "between": "frame_none.bin",  # sent after the first chunk: decoded at once
              "record": expected([CHUNKED])[0]}
    (HERE / "chunks.json").write_text(json.dumps(chunks, indent=1) + "\n")


if __name__ == "__main__":
    main()
