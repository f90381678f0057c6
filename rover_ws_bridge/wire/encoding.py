"""Encoders of a decoded message (a plain dict of its fields) into record data.

msgpack: uint8[] fields (images, blobs) stay bytes (msgpack bin), floats stay float64.
json: uint8[] fields become base64 strings (as rosbridge does); NaN and infinities, which JSON
cannot carry, become null.
"""
from __future__ import annotations

import base64
import json
import math
from typing import Any

import msgpack

from .frame import Encoding


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def to_json_text(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), default=_json_default, allow_nan=False)
    except ValueError:  # a NaN or infinity somewhere: rare, so the cleaning pass is paid only then
        return json.dumps(_finite(value), separators=(",", ":"), default=_json_default)


def encode_plain(plain: dict[str, Any], encoding: Encoding) -> bytes:
    if encoding is Encoding.MSGPACK:
        return msgpack.packb(plain, use_bin_type=True)
    if encoding is Encoding.JSON:
        return to_json_text(plain).encode("utf-8")
    raise ValueError(f"{encoding.name} is not an encoding of decoded messages")


def decode_data(data: bytes, encoding: int) -> Any:
    """Client side: record data -> Python value (CDR stays bytes)."""
    if encoding == Encoding.MSGPACK:
        return msgpack.unpackb(data, raw=False)
    if encoding == Encoding.JSON:
        return json.loads(data)
    return data
