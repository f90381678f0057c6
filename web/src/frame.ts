/**
 * Binary data frames of the native protocol, frame version 1 (docs/PROTOCOL.md, byte for byte).
 *
 *     frame   := header(16) body
 *     header  := message_count u32 | total_size u32 | version u8 | flags u8 | reserved u16
 *                | body_size u32
 *     body    := record*                      (compressed as a whole when flags say so)
 *     record  := timestamp_ns u64 | topic_id u32 | sequence u32 | priority u8 | encoding u8
 *                | data_size u32 | data
 *
 * All integers little-endian. Mirrors rover_ws_bridge/wire/frame.py: the same checks, the same
 * errors, and the golden frames under test/golden/ decode to the same records.
 */
import { Compression, decompress, DecompressionError } from "./compression.js";

export const FRAME_VERSION = 1;
export const HEADER_SIZE = 16;
export const RECORD_HEADER_SIZE = 22;
export const COMPRESSION_MASK = 0x03;
/** Default refusal threshold for a frame's announced body size (as the Python client). */
export const DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024;

/** The record's `encoding` byte. */
export enum RecordEncoding {
  CDR = 0,
  MSGPACK = 1,
  JSON = 2,
}

/** The record's `priority` byte. */
export enum Priority {
  LOW = 0,
  NORMAL = 1,
  HIGH = 2,
  CRITICAL = 3,
}

export const PRIORITY_NAMES = ["LOW", "NORMAL", "HIGH", "CRITICAL"] as const;
export type PriorityName = (typeof PRIORITY_NAMES)[number];

export class FrameError extends Error {
  override name = "FrameError";
}

export interface FrameRecord {
  /** When the bridge received the message from ROS: Unix time in ns (exact, hence bigint). */
  timestampNs: bigint;
  topicId: number;
  sequence: number;
  priority: number;
  encoding: number;
  /** The message in its encoding; a view into the (decompressed) body, not a copy. */
  data: Uint8Array;
}

export interface Frame {
  records: FrameRecord[];
  compression: Compression;
  totalSize: number;
  bodySize: number;
}

function asBytes(frame: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (frame instanceof Uint8Array) return frame;
  if (ArrayBuffer.isView(frame)) return new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength);
  return new Uint8Array(frame);
}

/** Parse a frame; throw FrameError on anything that does not add up. */
export function decodeFrame(
  input: ArrayBuffer | ArrayBufferView,
  maxBodyBytes: number = DEFAULT_MAX_BODY_BYTES,
): Frame {
  const bytes = asBytes(input);
  if (bytes.length < HEADER_SIZE) {
    throw new FrameError(`frame of ${bytes.length} bytes is shorter than its header (${HEADER_SIZE} bytes)`);
  }
  const header = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  const count = header.getUint32(0, true);
  const totalSize = header.getUint32(4, true);
  const version = header.getUint8(8);
  const flags = header.getUint8(9);
  const bodySize = header.getUint32(12, true);
  if (version !== FRAME_VERSION) {
    throw new FrameError(`frame version ${version} is not supported (expected ${FRAME_VERSION})`);
  }
  if (totalSize !== bytes.length) {
    throw new FrameError(`header says ${totalSize} bytes, frame has ${bytes.length}`);
  }
  if (bodySize > maxBodyBytes) {
    throw new FrameError(`body of ${bodySize} bytes exceeds the limit of ${maxBodyBytes}`);
  }
  const code = flags & COMPRESSION_MASK;
  if (!(code in Compression)) throw new FrameError(`unknown compression code ${code}`);
  const compression = code as Compression;
  let body: Uint8Array;
  try {
    body = decompress(bytes.subarray(HEADER_SIZE), compression, bodySize);
  } catch (error) {
    if (error instanceof DecompressionError) throw new FrameError(error.message);
    throw error;
  }
  if (body.length !== bodySize) {
    throw new FrameError(`body is ${body.length} bytes, header says ${bodySize}`);
  }
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const records: FrameRecord[] = new Array(count);
  let offset = 0;
  for (let index = 0; index < count; index++) {
    if (offset + RECORD_HEADER_SIZE > bodySize) {
      throw new FrameError(`record ${index} header runs past the end of the body`);
    }
    const timestampNs = view.getBigUint64(offset, true);
    const topicId = view.getUint32(offset + 8, true);
    const sequence = view.getUint32(offset + 12, true);
    const priority = view.getUint8(offset + 16);
    const encoding = view.getUint8(offset + 17);
    const size = view.getUint32(offset + 18, true);
    offset += RECORD_HEADER_SIZE;
    if (offset + size > bodySize) {
      throw new FrameError(`record ${index} data (${size} bytes) runs past the end of the body`);
    }
    records[index] = { timestampNs, topicId, sequence, priority, encoding, data: body.subarray(offset, offset + size) };
    offset += size;
  }
  if (offset !== bodySize) {
    throw new FrameError(`${bodySize - offset} bytes left after ${count} records`);
  }
  return { records, compression, totalSize, bodySize };
}
