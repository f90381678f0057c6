/**
 * Binary data frames of the native protocol, frame versions 1 and 2 (docs/PROTOCOL.md, byte for
 * byte).
 *
 *     frame   := header(16) body
 *     header  := message_count u32 | total_size u32 | version u8 | flags u8 | reserved u16
 *                | body_size u32
 *     body    := record*                      (compressed as a whole when flags say so)
 *     record  := timestamp_ns u64 | topic_id u32 | sequence u32 | priority u8 | encoding u8
 *                | data_size u32 | data
 *
 * Version 2, a chunk frame (only to a client that sent `configure` `chunks: true`): one piece
 * of a record too large for a slow link; its body := record header (data_size: the whole
 * record's) | chunk_offset u32 | the piece. `ChunkAssembler` puts the pieces back together.
 *
 * All integers little-endian. Mirrors rover_ws_bridge/wire/frame.py: the same checks, the same
 * errors, and the golden frames under test/golden/ decode to the same records.
 */
import { Compression, decompress, DecompressionError } from "./compression.js";

export const FRAME_VERSION = 1;
export const CHUNK_FRAME_VERSION = 2;
export const HEADER_SIZE = 16;
export const RECORD_HEADER_SIZE = 22;
/** A chunk frame's body starts with the record header and the piece's offset. */
export const CHUNK_HEADER_SIZE = RECORD_HEADER_SIZE + 4;
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

/** A piece of a record: `record.data` is this piece only. */
export interface Chunk {
  record: FrameRecord;
  /** The whole record's data size. */
  dataSize: number;
  /** Where this piece starts in the record's data. */
  offset: number;
}

export interface Frame {
  /** Empty in a chunk frame. */
  records: FrameRecord[];
  compression: Compression;
  totalSize: number;
  bodySize: number;
  /** Version 2 frames only. */
  chunk?: Chunk;
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
  if (version !== FRAME_VERSION && version !== CHUNK_FRAME_VERSION) {
    throw new FrameError(
      `frame version ${version} is not supported (expected ${FRAME_VERSION} or ${CHUNK_FRAME_VERSION})`);
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
  if (version === CHUNK_FRAME_VERSION) {
    return { records: [], compression, totalSize, bodySize, chunk: decodeChunk(body, view, count) };
  }
  const records: FrameRecord[] = new Array(count);
  let offset = 0;
  for (let index = 0; index < count; index++) {
    if (offset + RECORD_HEADER_SIZE > bodySize) {
      throw new FrameError(`record ${index} header runs past the end of the body`);
    }
    const { record, size } = readRecordHeader(view, offset);
    offset += RECORD_HEADER_SIZE;
    if (offset + size > bodySize) {
      throw new FrameError(`record ${index} data (${size} bytes) runs past the end of the body`);
    }
    record.data = body.subarray(offset, offset + size);
    records[index] = record;
    offset += size;
  }
  if (offset !== bodySize) {
    throw new FrameError(`${bodySize - offset} bytes left after ${count} records`);
  }
  return { records, compression, totalSize, bodySize };
}

/** A record header at `offset`: the record (data still empty) and its data_size. */
function readRecordHeader(view: DataView, offset: number): { record: FrameRecord; size: number } {
  return {
    record: {
      timestampNs: view.getBigUint64(offset, true),
      topicId: view.getUint32(offset + 8, true),
      sequence: view.getUint32(offset + 12, true),
      priority: view.getUint8(offset + 16),
      encoding: view.getUint8(offset + 17),
      data: new Uint8Array(0),
    },
    size: view.getUint32(offset + 18, true),
  };
}

function decodeChunk(body: Uint8Array, view: DataView, count: number): Chunk {
  if (count !== 1) throw new FrameError(`a chunk frame holds a piece of 1 record, header says ${count}`);
  if (body.length < CHUNK_HEADER_SIZE) {
    throw new FrameError(`chunk body of ${body.length} bytes is shorter than its header (${CHUNK_HEADER_SIZE} bytes)`);
  }
  const { record, size: dataSize } = readRecordHeader(view, 0);
  const offset = view.getUint32(RECORD_HEADER_SIZE, true);
  record.data = body.subarray(CHUNK_HEADER_SIZE);
  if (offset + record.data.length > dataSize) {
    throw new FrameError(`chunk of ${record.data.length} bytes at ${offset} runs past the record's ${dataSize} bytes`);
  }
  return { record, dataSize, offset };
}

/**
 * Puts chunked records back together (as wire/frame.py's ChunkAssembler): the pieces of a
 * record come in order from offset 0, with other frames possibly between them. Memory: one
 * unfinished record per topic at most, each at most `maxRecordBytes`.
 */
export class ChunkAssembler {
  private readonly partial = new Map<number, { record: FrameRecord; data: Uint8Array; filled: number }>();

  constructor(readonly maxRecordBytes: number = DEFAULT_MAX_BODY_BYTES) {}

  /** The whole record once its last piece is in; undefined before. */
  add(chunk: Chunk): FrameRecord | undefined {
    const { record, dataSize, offset } = chunk;
    let entry = this.partial.get(record.topicId);
    if (offset === 0) {
      if (dataSize > this.maxRecordBytes) {
        throw new FrameError(`chunked record of ${dataSize} bytes exceeds the limit of ${this.maxRecordBytes}`);
      }
      // A new record of this topic replaces an unfinished one (none with this bridge).
      entry = { record, data: new Uint8Array(dataSize), filled: 0 };
      this.partial.set(record.topicId, entry);
    } else if (entry === undefined || entry.record.sequence !== record.sequence || entry.filled !== offset) {
      throw new FrameError(
        `chunk at ${offset} of topic ${record.topicId} sequence ${record.sequence} does not continue a record`);
    }
    entry.data.set(record.data, offset);
    entry.filled += record.data.length;
    if (entry.filled < dataSize) return undefined;
    this.partial.delete(record.topicId);
    return { ...entry.record, data: entry.data };
  }

  /**
   * The bridge abandoned this record (status `chunk_abandoned`: the rest of it grew stale on
   * the way): drop its pieces. Returns the bytes dropped (0: none held).
   */
  discard(topicId: number, sequence: number): number {
    const entry = this.partial.get(topicId);
    if (entry === undefined || entry.record.sequence !== sequence) return 0;
    this.partial.delete(topicId);
    return entry.filled;
  }

  /** Bytes of unfinished records held. */
  get pendingBytes(): number {
    let total = 0;
    for (const entry of this.partial.values()) total += entry.filled;
    return total;
  }
}
