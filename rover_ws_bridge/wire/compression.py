"""Frame body compression: LZ4 (frame format) for speed, zlib for ratio on slow links.

Adaptive: a body is compressed only when it is at least `threshold_bytes` long, and sent
as is when compression does not pay (compressed size above `MAX_USEFUL_RATIO` of the original:
already-compressed JPEG payloads, random data) or when the compressor fails. The frame flag
says which was done, so the receiver never guesses.
"""
from __future__ import annotations

import enum
import zlib

import lz4.frame

# Compressed / original above this -> not worth the receiver's decompression time.
MAX_USEFUL_RATIO = 0.9
ZLIB_LEVEL = 6


class Compression(enum.IntEnum):
    NONE = 0
    LZ4 = 1
    ZLIB = 2

    @classmethod
    def from_name(cls, name: str) -> "Compression":
        return cls[name.upper()]


def compress(body: bytes, wanted: Compression, threshold_bytes: int) -> tuple[bytes, Compression]:
    """Return (bytes to send, compression actually applied)."""
    if wanted is Compression.NONE or len(body) < threshold_bytes or not body:
        return body, Compression.NONE
    try:
        if wanted is Compression.LZ4:
            packed = lz4.frame.compress(body, store_size=True)
        else:
            packed = zlib.compress(body, ZLIB_LEVEL)
    except Exception:  # noqa: BLE001 - any compressor failure: send the data uncompressed
        return body, Compression.NONE
    if len(packed) > MAX_USEFUL_RATIO * len(body):
        return body, Compression.NONE
    return packed, wanted


def decompress(data: bytes, used: Compression, expected_size: int) -> bytes:
    if used is Compression.NONE:
        return data
    # Output capped just past the announced size, so a lying header cannot blow up memory
    # (the caller then sees the size mismatch).
    if used is Compression.LZ4:
        return lz4.frame.LZ4FrameDecompressor().decompress(data, max_length=expected_size + 1)
    return zlib.decompressobj().decompress(data, expected_size + 1)
