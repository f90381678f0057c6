/**
 * Frame body decompression: LZ4 frame format (lz4.org) and zlib (RFC 1950).
 *
 * Both decoders write into a buffer sized from the frame header's `body_size`, plus one byte:
 * a body that decompresses to more than announced fills that extra byte and is refused, so a
 * lying header cannot make the client allocate more than it said (decompression bomb).
 */
import { decompressFrame } from "lz4js";
import { unzlibSync } from "fflate";

export enum Compression {
  NONE = 0,
  LZ4 = 1,
  ZLIB = 2,
}

export const COMPRESSION_NAMES: Record<Compression, "none" | "lz4" | "zlib"> = {
  [Compression.NONE]: "none",
  [Compression.LZ4]: "lz4",
  [Compression.ZLIB]: "zlib",
};

export class DecompressionError extends Error {}

const LZ4_MAGIC = 0x184d2204;

export function decompress(data: Uint8Array, used: Compression, expectedSize: number): Uint8Array {
  if (used === Compression.NONE) return data;
  if (used === Compression.LZ4) return lz4Decompress(data, expectedSize);
  if (used === Compression.ZLIB) return zlibDecompress(data, expectedSize);
  throw new DecompressionError(`unknown compression code ${used as number}`);
}

function lz4Decompress(data: Uint8Array, expectedSize: number): Uint8Array {
  if (data.length < 7) throw new DecompressionError("LZ4 frame shorter than its header");
  const magic = (data[0] | (data[1] << 8) | (data[2] << 16) | (data[3] << 24)) >>> 0;
  if (magic !== LZ4_MAGIC) {
    throw new DecompressionError(`not an LZ4 frame (magic 0x${magic.toString(16)})`);
  }
  const out = new Uint8Array(expectedSize + 1);
  let size: number;
  try {
    // lz4js writes past `out` silently (typed arrays drop such writes) and returns the size it
    // would have produced: comparing it with the announced size catches both directions.
    size = decompressFrame(data, out);
  } catch (error) {
    throw new DecompressionError(`bad LZ4 frame: ${(error as Error).message}`);
  }
  if (size !== expectedSize) {
    throw new DecompressionError(`LZ4 body is ${size} bytes, header says ${expectedSize}`);
  }
  return out.subarray(0, size);
}

function zlibDecompress(data: Uint8Array, expectedSize: number): Uint8Array {
  let out: Uint8Array;
  try {
    // fflate stops at the end of a caller-supplied buffer: one spare byte tells "too long".
    out = unzlibSync(data, { out: new Uint8Array(expectedSize + 1) });
  } catch (error) {
    throw new DecompressionError(`bad zlib stream: ${(error as Error).message}`);
  }
  if (out.length !== expectedSize) {
    throw new DecompressionError(`zlib body is ${out.length > expectedSize ? "over" : out.length} `
      + `bytes, header says ${expectedSize}`);
  }
  return out;
}
