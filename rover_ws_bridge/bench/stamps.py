"""header.stamp out of a received record, in whatever encoding it came; latency arrays on the wire.

The bench measures latency from the publisher's header.stamp (wall clock, read right before
publish) to the client's receive time, so it has to find the stamp in msgpack maps, JSON
objects and raw CDR alike.
"""
from __future__ import annotations

import base64
import struct
from typing import Any

import msgpack
import numpy as np

_STAMP_LE = struct.Struct("<iI")
_STAMP_BE = struct.Struct(">iI")


def cdr_header_stamp_ns(cdr: bytes) -> int:
    """Stamp of a message whose first field is a std_msgs/Header, from its CDR bytes.

    Layout: a 4-byte encapsulation header (byte 1: 1 = little endian), then header.stamp as
    sec int32, nanosec uint32.
    """
    sec, nanosec = (_STAMP_LE if cdr[1] & 1 else _STAMP_BE).unpack_from(cdr, 4)
    return sec * 1_000_000_000 + nanosec


def plain_header_stamp_ns(message: dict[str, Any]) -> int:
    stamp = message["header"]["stamp"]
    return stamp["sec"] * 1_000_000_000 + stamp["nanosec"]


def record_stamp_ns(data: Any, encoding: str) -> int:
    """Stamp of one received record: `data` as BridgeClient(decode=False) hands it over."""
    if isinstance(data, dict):  # JSON subscriptions arrive decoded (text frames)
        return plain_header_stamp_ns(data)
    if encoding == "msgpack":
        return plain_header_stamp_ns(msgpack.unpackb(data, raw=False))
    if encoding == "cdr":
        return cdr_header_stamp_ns(data)
    if encoding == "json":
        import json

        return plain_header_stamp_ns(json.loads(data))
    raise ValueError(f"unknown encoding {encoding!r}")


def encode_ns_array(values: np.ndarray) -> str:
    """int64 nanoseconds -> base64 text (8 bytes per value; exact, and compact in JSON)."""
    return base64.b64encode(np.ascontiguousarray(values, dtype="<i8").tobytes()).decode("ascii")


def decode_ns_array(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<i8").astype(np.int64)
