"""Real camera pictures for the simulated rover: a synthetic view and a baseline JPEG encoder.

The rover is installed from apt, where numpy is the only imaging library we can count on, so
the encoder is written here from ITU T.81 (baseline sequential DCT, Huffman coded) and JFIF:
YCbCr with 4:2:0 chroma, the example quantization and Huffman tables of Annex K. Everything
is vectorised over whole frames, Huffman coding and bit packing included, because a loop of
frames is encoded at sim start-up and that must stay well under a second.

No ROS here: the sim wraps these frames in CompressedImage messages.
"""
from __future__ import annotations

import math

import numpy as np

# --------------------------------------------------------------------------------------------
# Tables of ITU T.81.

# Annex K.1, tables K.1 and K.2, in natural (row-major) order.
LUMINANCE_QUANTIZATION = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
]).reshape(8, 8)
CHROMINANCE_QUANTIZATION = np.array([
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32).reshape(8, 8)


def _run(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


# Annex K.3, tables K.3 to K.6: BITS (how many codes of each length 1..16), then HUFFVAL.
DC_LUMINANCE_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
DC_LUMINANCE_VALUES = tuple(range(12))
DC_CHROMINANCE_BITS = (0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0)
DC_CHROMINANCE_VALUES = tuple(range(12))
AC_LUMINANCE_BITS = (0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D)
AC_LUMINANCE_VALUES = tuple([
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
    0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52,
    0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25,
    0x26, 0x27, 0x28, 0x29, 0x2A,
] + _run(0x34, 0x3A) + _run(0x43, 0x4A) + _run(0x53, 0x5A) + _run(0x63, 0x6A)
  + _run(0x73, 0x7A) + _run(0x83, 0x8A) + _run(0x92, 0x9A) + _run(0xA2, 0xAA)
  + _run(0xB2, 0xBA) + _run(0xC2, 0xCA) + _run(0xD2, 0xDA) + _run(0xE1, 0xEA)
  + _run(0xF1, 0xFA))
AC_CHROMINANCE_BITS = (0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77)
AC_CHROMINANCE_VALUES = tuple([
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
    0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33,
    0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18,
    0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A,
] + _run(0x43, 0x4A) + _run(0x53, 0x5A) + _run(0x63, 0x6A) + _run(0x73, 0x7A)
  + _run(0x82, 0x8A) + _run(0x92, 0x9A) + _run(0xA2, 0xAA) + _run(0xB2, 0xBA)
  + _run(0xC2, 0xCA) + _run(0xD2, 0xDA) + _run(0xE2, 0xEA) + _run(0xF2, 0xFA))

# Figure A.6: coefficients are sent along anti-diagonals, alternating direction, so that the
# high frequencies (mostly zero after quantization) come last and end in a single EOB.
ZIGZAG = np.array(sorted(range(64), key=lambda n: (
    n // 8 + n % 8, n // 8 if (n // 8 + n % 8) % 2 else n % 8)))

# The orthonormal DCT-II basis is exactly the FDCT of A.3.3 (its 1/4 C(u) C(v) factor).
_DCT = np.array([[(math.sqrt(0.125) if u == 0 else 0.5) * math.cos((2 * x + 1) * u * math.pi / 16)
                  for x in range(8)] for u in range(8)])

SOI, EOI = b"\xff\xd8", b"\xff\xd9"
COM_MAX_PAYLOAD = 65533  # a segment's 16-bit length counts itself
JFIF_APP0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


class HuffmanTable:
    """One table of the DHT segment, with the code of each symbol for the encoder's lookups."""

    def __init__(self, table_class: int, table_id: int, bits: tuple[int, ...],
                 values: tuple[int, ...]) -> None:
        if len(bits) != 16 or sum(bits) != len(values):
            raise ValueError("BITS must count the HUFFVAL entries for each code length")
        self.table_class, self.table_id = table_class, table_id
        self.bits, self.values = bits, values
        # Annex C: canonical codes, consecutive within a length, doubled at each longer length.
        self.codes = np.zeros(256, dtype=np.int64)
        self.lengths = np.zeros(256, dtype=np.int64)
        code, symbols = 0, iter(values)
        for length, count in enumerate(bits, start=1):
            for _ in range(count):
                symbol = next(symbols)
                self.codes[symbol], self.lengths[symbol] = code, length
                code += 1
            if code > 1 << length:
                raise ValueError("BITS describe more codes than their lengths allow")
            code <<= 1

    def segment_body(self) -> bytes:
        return bytes([self.table_class << 4 | self.table_id, *self.bits, *self.values])


DC_TABLES = (HuffmanTable(0, 0, DC_LUMINANCE_BITS, DC_LUMINANCE_VALUES),
             HuffmanTable(0, 1, DC_CHROMINANCE_BITS, DC_CHROMINANCE_VALUES))
AC_TABLES = (HuffmanTable(1, 0, AC_LUMINANCE_BITS, AC_LUMINANCE_VALUES),
             HuffmanTable(1, 1, AC_CHROMINANCE_BITS, AC_CHROMINANCE_VALUES))

# A typo in the AC value lists above would silently leave some run/size without a code.
_AC_SYMBOLS = {0x00, 0xF0} | {run << 4 | size for run in range(16) for size in range(1, 11)}
assert all(sorted(t.values) == sorted(_AC_SYMBOLS) for t in AC_TABLES)

# Stacked so that one fancy index picks each block's table: row 0 luminance, row 1 chroma.
_DC_CODES = np.stack([t.codes for t in DC_TABLES])
_DC_LENGTHS = np.stack([t.lengths for t in DC_TABLES])
_AC_CODES = np.stack([t.codes for t in AC_TABLES])
_AC_LENGTHS = np.stack([t.lengths for t in AC_TABLES])


def quantization_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """Annex K's tables scaled for a quality of 1..100 (50 = as printed, higher = finer).

    T.81 leaves the tables to the application; this is the scaling most encoders use, so a
    given quality gives about the file size people expect.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    percent = 5000 / quality if quality < 50 else 200 - 2 * quality
    return tuple(  # type: ignore[return-value]
        np.clip((table * percent + 50) // 100, 1, 255).astype(np.int64)
        for table in (LUMINANCE_QUANTIZATION, CHROMINANCE_QUANTIZATION))


# --------------------------------------------------------------------------------------------
# The encoder.


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


def _blocks(plane: np.ndarray, blocks_per_mcu: int) -> np.ndarray:
    """A plane cut into flattened 8x8 blocks, (MCU, block, 64), in scan order: per MCU (one
    per 16x16 pixels), its 1 or 2x2 blocks row by row (A.2.3)."""
    rows, cols = plane.shape
    side = 8 * blocks_per_mcu
    tiles = plane.reshape(rows // side, blocks_per_mcu, 8, cols // side, blocks_per_mcu, 8)
    return tiles.transpose(0, 3, 1, 4, 2, 5).reshape(
        (rows // side) * (cols // side), blocks_per_mcu * blocks_per_mcu, 64)


def _bit_length(values: np.ndarray) -> np.ndarray:
    # frexp's exponent of an integer is exactly its bit length (0 for 0), with no float rounding
    # at these magnitudes (|v| < 2**11).
    return np.frexp(np.abs(values).astype(np.float64))[1].astype(np.int64)


def _amplitude_bits(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    # F.1.2.1: negative values are sent as their ones' complement in `size` bits.
    return np.where(values < 0, values + (np.int64(1) << sizes) - 1, values)


def _entropy_coded_segment(zigzagged: np.ndarray) -> bytes:
    """Huffman-code quantized 4:2:0 blocks (scan order, zigzag order) as one scan, stuffed.

    Every symbol of the scan becomes one (value, bit length) pair, the Huffman code followed
    by its appended bits; the pairs are put in stream order by a sort on (block, position),
    then packed into bits all at once.
    """
    block_count = len(zigzagged)
    block_index = np.arange(block_count)
    # Each MCU holds 4 Y blocks, then Cb, then Cr. Cb and Cr share their tables but are
    # predicted separately (F.1.2.1), hence components apart from tables.
    components = np.tile(np.array([0, 0, 0, 0, 1, 2]), block_count // 6)
    tables = np.minimum(components, 1)

    # DC: the difference to the previous block of the same component, the first from 0.
    dc = zigzagged[:, 0]
    difference = np.empty_like(dc)
    for component in range(3):
        mask = components == component
        difference[mask] = np.diff(dc[mask], prepend=0)
    dc_size = _bit_length(difference)
    dc_value = (_DC_CODES[tables, dc_size] << dc_size) | _amplitude_bits(difference, dc_size)
    dc_length = _DC_LENGTHS[tables, dc_size] + dc_size

    # AC: each nonzero coefficient, coded with the run of zeros before it (F.1.2.2); runs of
    # 16 and more need one ZRL (0xF0) per 16 zeros first.
    block, position = np.nonzero(zigzagged[:, 1:])
    position = position + 1
    coefficient = zigzagged[block, position]
    first_in_block = np.ones(len(block), dtype=bool)
    first_in_block[1:] = block[1:] != block[:-1]
    previous = np.where(first_in_block, 0, np.roll(position, 1))
    run = position - previous - 1
    ac_size = _bit_length(coefficient)
    ac_table = tables[block]
    symbol = (run & 15) << 4 | ac_size
    ac_value = (_AC_CODES[ac_table, symbol] << ac_size) | _amplitude_bits(coefficient, ac_size)
    ac_length = _AC_LENGTHS[ac_table, symbol] + ac_size

    zrl_of = np.repeat(np.arange(len(block)), run >> 4)
    zrl_table = ac_table[zrl_of]

    # EOB after the last nonzero coefficient, unless that is the 63rd.
    last_position = np.zeros(block_count, dtype=np.int64)
    last_in_block = np.ones(len(block), dtype=bool)
    last_in_block[:-1] = block[1:] != block[:-1]
    last_position[block[last_in_block]] = position[last_in_block]
    eob_block = block_index[last_position < 63]
    eob_table = tables[eob_block]

    # Sort key (block, position, ZRLs before their coefficient); the EOB sits at position 64.
    keys = np.concatenate([
        block_index * 130 + 1,
        (block[zrl_of] * 65 + position[zrl_of]) * 2,
        (block * 65 + position) * 2 + 1,
        eob_block * 130 + 129,
    ])
    values = np.concatenate([dc_value, _AC_CODES[zrl_table, 0xF0], ac_value,
                             _AC_CODES[eob_table, 0x00]])
    lengths = np.concatenate([dc_length, _AC_LENGTHS[zrl_table, 0xF0], ac_length,
                              _AC_LENGTHS[eob_table, 0x00]])
    order = np.argsort(keys, kind="stable")
    values, lengths = values[order], lengths[order]

    ends = np.cumsum(lengths)
    total_bits = int(ends[-1])
    owner = np.repeat(np.arange(len(lengths)), lengths)
    shift = ends[owner] - 1 - np.arange(total_bits)
    bits = ((values[owner] >> shift) & 1).astype(np.uint8)
    # F.1.2.3: the last byte is padded with 1-bits.
    bits = np.concatenate([bits, np.ones(-total_bits % 8, dtype=np.uint8)])
    data = np.packbits(bits)
    # B.1.1.5: a 0xFF byte in the data is followed by a stuffed 0x00 so it is not a marker.
    data = np.insert(data, np.flatnonzero(data == 0xFF) + 1, 0)
    return data.tobytes()


# JFIF's full-range RGB to YCbCr, with T.81's level shift (A.3.1) folded into Y's offset:
# Cb and Cr are centred on 128 already, so all three come out signed around 0.
_YCBCR = np.array([[0.299, 0.587, 0.114],
                   [-0.168736, -0.331264, 0.5],
                   [0.5, -0.418688, -0.081312]], dtype=np.float32)
_LEVEL_SHIFT = np.array([-128.0, 0.0, 0.0], dtype=np.float32)


def _transform(quantizer: np.ndarray) -> np.ndarray:
    """DCT, quantizer division and zigzag reordering of a flattened block, as one matrix.

    For a row-major flattened block, vec(C B C^T) = (C kron C) vec(B); scaling each row by
    1/Q and taking the rows in zigzag order leaves only a rounding after one matrix product.
    """
    basis = np.kron(_DCT, _DCT) / quantizer.reshape(64, 1)
    return basis[ZIGZAG].T.astype(np.float32)


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """A baseline JFIF file of an (height, width, 3) uint8 RGB image, 4:2:0 chroma."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (height, width, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    if not (1 <= height <= 65535 and 1 <= width <= 65535):
        raise ValueError(f"JPEG cannot hold a {width}x{height} image")
    luma_q, chroma_q = quantization_tables(quality)

    # Edges are repeated out to whole 16x16 MCUs; decoders crop to the size in SOF.
    padded = np.pad(rgb, ((0, -height % 16), (0, -width % 16), (0, 0)), mode="edge")
    ycbcr = padded.astype(np.float32) @ _YCBCR.T + _LEVEL_SHIFT
    # JFIF sites chroma samples centred between luma samples: a 2x2 mean is right.
    chroma = ycbcr[..., 1:]
    chroma = (chroma[0::2, 0::2] + chroma[1::2, 0::2] + chroma[0::2, 1::2]
              + chroma[1::2, 1::2]) * 0.25

    luma = _blocks(ycbcr[..., 0], 2) @ _transform(luma_q)
    chroma_transform = _transform(chroma_q)
    cb = _blocks(chroma[..., 0], 1) @ chroma_transform
    cr = _blocks(chroma[..., 1], 1) @ chroma_transform
    zigzagged = np.rint(np.concatenate([luma, cb, cr], axis=1)).astype(np.int64).reshape(-1, 64)

    frame_header = bytes([8]) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + bytes(
        [3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1])
    scan_header = bytes([3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0])
    return b"".join([
        SOI,
        JFIF_APP0,
        _segment(0xDB, b"".join(bytes([table_id]) + bytes(q.reshape(64)[ZIGZAG].tolist())
                                for table_id, q in enumerate((luma_q, chroma_q)))),
        _segment(0xC0, frame_header),
        _segment(0xC4, b"".join(t.segment_body() for t in DC_TABLES + AC_TABLES)),
        _segment(0xDA, scan_header),
        _entropy_coded_segment(zigzagged),
        EOI,
    ])


def comment_segments(payload: bytes) -> bytes:
    """COM segments carrying `payload`, split as their 16-bit lengths require."""
    return b"".join(_segment(0xFE, payload[start:start + COM_MAX_PAYLOAD])
                    for start in range(0, len(payload), COM_MAX_PAYLOAD))


def split_after_app0(jpeg: bytes) -> tuple[bytes, bytes]:
    """The file cut where COM segments may go: JFIF wants APP0 right after SOI."""
    head = len(SOI) + len(JFIF_APP0)
    if jpeg[:head] != SOI + JFIF_APP0:
        raise ValueError("not a JFIF file from encode_jpeg")
    return jpeg[:head], jpeg[head:]


# --------------------------------------------------------------------------------------------
# The synthetic view: a rover driving a left-hand curve over sandy ground, hills far away.
#
# The loop of frames must join up seamlessly, so everything moves by a whole period of its
# pattern over one loop: the ground turns by exactly one lattice period about the centre of
# the turn, and the skyline pans by exactly one of its periods. It does not follow the sim's
# pose: a loop of a few seconds cannot, and a dashboard only needs a live-looking picture.

CAMERA_HEIGHT_M = 0.9
HORIZONTAL_FIELD_OF_VIEW_RAD = math.radians(90.0)
TURN_RADIUS_M = 4.0
LOOP_TURN_RAD = 1.0  # how far the rover turns over one loop of frames
GROUND_BAND_RAD = LOOP_TURN_RAD / 6
SKY_TOP, SKY_HORIZON = np.array([70, 118, 190]), np.array([196, 212, 228])
SOIL_FAR, SOIL_NEAR = np.array([190, 168, 136]), np.array([150, 112, 78])
ROCK = np.array([112, 98, 86])
HUD = (235, 235, 235)
# (colour, height above the horizon as a fraction of the image, harmonic amplitudes in px,
# harmonic phases)
HILLS = ((np.array([128, 140, 160]), 0.10, (7.0, 4.0, 2.5, 1.2), (0.3, 1.9, 4.0, 0.7)),
         (np.array([132, 116, 92]), 0.035, (4.0, 2.5, 1.5, 0.8), (2.1, 0.4, 5.2, 3.3)))
# (distance from the turn's centre in m, angle as a fraction of the loop's turn, radius in m)
ROCKS = ((2.2, 0.15, 0.25), (3.0, 0.55, 0.18), (4.9, 0.3, 0.22), (5.6, 0.8, 0.35),
         (6.8, 0.05, 0.3), (8.5, 0.5, 0.45), (11.0, 0.7, 0.6), (14.0, 0.25, 0.8),
         (3.6, 0.95, 0.12), (7.5, 0.4, 0.2))

# 3x5 glyphs for the overlay, row by row.
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001010010010", "8": "111101111101111",
    "9": "111101111001111", "/": "001001010100100", " ": "000000000000000",
    "A": "010101111101101", "C": "111100100100111", "E": "111100110100111",
    "I": "111010010010111", "M": "101111111101101", "R": "110101110101101",
    "S": "111100111001111",
}


def _draw_text(image: np.ndarray, text: str, x: int, y: int, scale: int = 2) -> None:
    for index, char in enumerate(text.upper()):
        glyph = np.array([bit == "1" for bit in _GLYPHS[char]]).reshape(5, 3)
        glyph = glyph.repeat(scale, axis=0).repeat(scale, axis=1)
        left = x + index * 4 * scale
        region = image[y:y + 5 * scale, left:left + 3 * scale]
        region[glyph[:region.shape[0], :region.shape[1]]] = HUD


class CameraScene:
    """Renders the view at any phase of the loop; what no frame changes is computed once.

    Start-up encodes a whole loop, so per-frame work is kept to what moves: the skyline's
    pan, the ground's rotation about the turn's centre, the rocks and the overlay.
    """

    def __init__(self, width: int = 320, height: int = 240, noise_seed: int = 0) -> None:
        if width < 64 or height < 48:
            raise ValueError(f"a {width}x{height} view is too small to draw")
        self.width, self.height = width, height
        self.focal_px = (width / 2) / math.tan(HORIZONTAL_FIELD_OF_VIEW_RAD / 2)
        self.horizon = 0.42 * height
        self.columns = np.arange(width, dtype=np.float64)
        rows = np.arange(height, dtype=np.float64)[:, None]

        sky_t = np.clip(rows / self.horizon, 0.0, 1.0) ** 1.5
        # float32 throughout: half the memory traffic of float64, plenty for 8-bit pixels.
        self.sky = np.broadcast_to(SKY_TOP + (SKY_HORIZON - SKY_TOP) * sky_t[..., None],
                                   (height, width, 3)).astype(np.float32)

        # Each pixel below the horizon is a point on flat ground, seen from the camera
        # (x right, z forward), then placed about the turn's centre, which lies to the left.
        self.ground_top = int(math.floor(self.horizon)) + 1
        ground_rows = rows[self.ground_top:]
        depth = CAMERA_HEIGHT_M * self.focal_px / (ground_rows - self.horizon)
        lateral = (self.columns - width / 2) * depth / self.focal_px
        self.ground_radius = np.hypot(lateral + TURN_RADIUS_M, depth).astype(np.float32)
        self.ground_angle = np.arctan2(depth, lateral + TURN_RADIUS_M).astype(np.float32)
        nearness = np.clip(1.0 - depth / 25.0, 0.0, 1.0)
        # Contrast fades with distance, before the patterns get finer than a pixel.
        self.ground_detail = (np.clip(self.focal_px / depth / 8.0, 0.0, 1.0) * nearness
                              ).astype(np.float32)
        self.soil = (SOIL_FAR + (SOIL_NEAR - SOIL_FAR) * nearness[..., None] ** 0.7
                     ).astype(np.float32)
        # Tyre ruts of earlier laps, on the rover's own circle: they turn onto themselves.
        pixel_m = depth / self.focal_px
        self.ruts = np.zeros_like(self.ground_radius)
        for rut in (TURN_RADIUS_M - 0.3, TURN_RADIUS_M + 0.3):
            self.ruts += np.clip(1.0 - (np.abs(self.ground_radius - rut) - 0.06) / pixel_m,
                                 0.0, 1.0)
        self.ruts = (self.ruts * 0.22 * np.clip(self.ground_detail * 2, 0.0, 1.0)
                     ).astype(np.float32)

        centre_distance = np.hypot((self.columns - width / 2) / width,
                                   (rows - height / 2) / height)
        self.vignette = (1.0 - 0.45 * centre_distance ** 2)[..., None].astype(np.float32)
        # Frames take shifted windows of one noise field: fresh-looking grain at no cost.
        self._noise = np.random.default_rng(noise_seed).normal(
            0.0, 1.6, (height + 64, width + 64)).astype(np.float32)

    def render(self, phase: float, frame_label: str = "") -> np.ndarray:
        """The picture at `phase` in [0, 1) of the loop, as (height, width, 3) uint8 RGB."""
        width, height, horizon, focal_px = self.width, self.height, self.horizon, self.focal_px
        turned = phase * LOOP_TURN_RAD
        image = self.sky.copy()

        # Hills at infinity move with the heading only; the harmonics of their skyline repeat
        # after exactly the pan of one loop.
        period_px = focal_px * LOOP_TURN_RAD
        pan_x = 2 * math.pi * (self.columns - turned * focal_px) / period_px
        for colour, base, amplitudes, phases in HILLS:
            ridge = horizon - base * height - sum(
                a * np.sin((k + 1) * pan_x + p)
                for k, (a, p) in enumerate(zip(amplitudes, phases)))
            top = max(int(ridge.min()) - 1, 0)
            rows = np.arange(top, self.ground_top, dtype=np.float32)[:, None]
            cover = np.clip(rows - ridge + 0.5, 0.0, 1.0)[..., None]  # anti-aliased edge
            shade = colour * (1.0 - 0.12 * np.clip((rows - ridge) / 20.0, 0.0, 1.0))[..., None]
            band = image[top:self.ground_top]
            band += (shade - band) * cover

        # Python floats leave float32 arrays float32, under old and new numpy casting rules.
        angle = self.ground_angle + turned  # the world turns past the rover
        bands = np.cos(angle * (2 * math.pi / GROUND_BAND_RAD))
        ripples = np.cos(self.ground_radius * (2 * math.pi / 0.9)
                         + 3.0 * np.sin(angle * (6 / LOOP_TURN_RAD)))
        brightness = 1.0 - self.ruts + self.ground_detail * (
            0.035 * bands + 0.035 + 0.04 * ripples)
        image[self.ground_top:] = self.soil * brightness[..., None]

        for ring_m, offset, size_m in ROCKS:
            # A lattice one loop-turn apart, so the loop joins up; ahead is 0 to pi.
            for lap in range(int(math.pi / LOOP_TURN_RAD) + 2):
                rock_angle = (offset + lap) * LOOP_TURN_RAD - turned
                self._draw_rock(image, ring_m * math.cos(rock_angle) - TURN_RADIUS_M,
                                ring_m * math.sin(rock_angle), size_m)

        image *= self.vignette
        shift = int(phase * 997) % 64
        image += self._noise[shift:shift + height, shift:shift + width, None]
        image = np.clip(image, 0, 255).astype(np.uint8)
        self._draw_overlay(image, phase, frame_label)
        return image

    def _draw_rock(self, image: np.ndarray, x_m: float, z_m: float, size_m: float) -> None:
        if not 0.8 < z_m < 40.0:
            return
        focal_px = self.focal_px
        cx = self.width / 2 + focal_px * x_m / z_m
        base_y = self.horizon + focal_px * CAMERA_HEIGHT_M / z_m
        r = focal_px * size_m / z_m
        left, right = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, self.width)
        top, bottom = max(int(base_y - 0.8 * r) - 1, 0), min(int(base_y + 0.25 * r) + 2,
                                                              self.height)
        if r < 0.7 or left >= right or top >= bottom:
            return
        yy = np.arange(top, bottom, dtype=np.float32)[:, None]
        xx = np.arange(left, right, dtype=np.float32)
        # A squat dome lit from the upper left, its shadow cast to the lower right.
        u, v = (xx - cx) / r, (yy - base_y) / (0.8 * r)
        shadow = np.clip(1.0 - np.hypot(u - 0.35, (yy - base_y) / (0.25 * r)), 0.0, 1.0)
        inside = np.clip((1.0 - np.hypot(u, np.where(v < 0, v, 4 * v))) * r, 0.0, 1.0)[..., None]
        light = np.clip(0.55 - 0.35 * u - 0.3 * v, 0.2, 1.0)
        rock = ROCK * (0.6 + 0.7 * light)[..., None]
        patch = image[top:bottom, left:right]
        patch *= (1.0 - 0.35 * shadow)[..., None]
        patch += (rock - patch) * inside

    def _draw_overlay(self, image: np.ndarray, phase: float, frame_label: str) -> None:
        """A crosshair, a status bar and a recording light, as an operator's feed has."""
        width, height = self.width, self.height
        mid_x, mid_y = width // 2, height // 2
        for near, far in ((-10, -3), (4, 11)):
            image[mid_y, mid_x + near:mid_x + far] = HUD
            image[mid_y + near:mid_y + far, mid_x] = HUD
        bar_top = height - 16
        image[bar_top:] //= 3
        _draw_text(image, "CAM0 SIM", 6, bar_top + 3)
        label_left = width - 4 - 8 * len(frame_label)
        _draw_text(image, frame_label, label_left, bar_top + 3)
        bar_end = label_left - 12
        image[bar_top + 6:bar_top + 10, 76:76 + int(round(phase * (bar_end - 76)))] = (
            90, 200, 120)
        if phase < 0.5:  # blinks once per loop
            image[6:14, 8:16] = (220, 40, 40)
            _draw_text(image, "REC", 20, 5)


def encode_camera_loop(frame_count: int = 48, width: int = 320, height: int = 240,
                       quality: int = 85) -> list[bytes]:
    """The loop of frames the sim plays, each a complete JFIF file without padding."""
    if frame_count < 1:
        raise ValueError(f"a loop needs at least one frame, got {frame_count}")
    scene = CameraScene(width, height)
    digits = len(str(frame_count))
    return [encode_jpeg(scene.render(index / frame_count,
                                     f"{index + 1:0{digits}d}/{frame_count}"), quality)
            for index in range(frame_count)]
