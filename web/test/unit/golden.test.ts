// The golden frames of docs/PROTOCOL.md (test/golden/, written by the Python encoder) decode to
// exactly the records in frames.json: the same test vectors the Python client is checked with.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  CHUNK_HEADER_SIZE,
  ChunkAssembler,
  Compression,
  decodeData,
  decodeFrame,
  FrameError,
  HEADER_SIZE,
} from "../../src/index.js";

const GOLDEN = new URL("../../../test/golden/", import.meta.url);
const FIXTURES = new URL("../fixtures/", import.meta.url);

interface ExpectedRecord {
  timestamp_ns: string; // kept as text: a u64 does not fit a JS number
  topic_id: number;
  sequence: number;
  priority: number;
  encoding: number;
  data_hex: string;
}

/** JSON.parse, with timestamp_ns kept exact (quoted before parsing). */
function parseExact(text: string): Record<string, { compression: string; records: ExpectedRecord[] }> {
  return JSON.parse(text.replace(/"timestamp_ns":\s*(\d+)/g, '"timestamp_ns": "$1"'));
}

const manifest = parseExact(readFileSync(new URL("frames.json", GOLDEN), "utf8"));
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const golden = (name: string) => new Uint8Array(readFileSync(new URL(name, GOLDEN)));

const COMPRESSION: Record<string, Compression> = {
  none: Compression.NONE, lz4: Compression.LZ4, zlib: Compression.ZLIB,
};

describe("golden frames", () => {
  it("covers the three files of PROTOCOL.md", () => {
    expect(Object.keys(manifest).sort()).toEqual(["frame_lz4.bin", "frame_none.bin", "frame_zlib.bin"]);
  });

  for (const [name, expected] of Object.entries(manifest)) {
    it(`${name} decodes to frames.json`, () => {
      const bytes = golden(name);
      const frame = decodeFrame(bytes);
      expect(frame.compression).toBe(COMPRESSION[expected.compression]);
      expect(frame.totalSize).toBe(bytes.length);
      const got = frame.records.map((r) => ({
        timestamp_ns: r.timestampNs.toString(),
        topic_id: r.topicId,
        sequence: r.sequence,
        priority: r.priority,
        encoding: r.encoding,
        data_hex: hex(r.data),
      }));
      expect(got).toEqual(expected.records);
    });
  }

  it("decodes the data of the worked example and the IMU record", () => {
    const [imu, estop, cdr] = decodeFrame(golden("frame_none.bin")).records;
    expect(decodeData(imu.data, imu.encoding)).toEqual({
      header: { stamp: { sec: 1700000000, nanosec: 5000000 }, frame_id: "imu_link" },
      linear_acceleration: { x: 0.1, y: -0.2, z: 9.81 },
    });
    expect(decodeData(estop.data, estop.encoding)).toEqual({ data: true });
    expect(estop.timestampNs).toBe(1700000000006000000n);
    expect(decodeData(cdr.data, cdr.encoding)).toEqual(new Uint8Array([0, 1, 0, 0, 1]));
  });

  it("the compressed frames really are compressed", () => {
    for (const name of ["frame_lz4.bin", "frame_zlib.bin"]) {
      const frame = decodeFrame(golden(name));
      expect(frame.totalSize - HEADER_SIZE).toBeLessThan(frame.bodySize);
    }
  });

  it("decodes an LZ4 body of several linked blocks (python-lz4, store_size=True)", () => {
    const expected = JSON.parse(readFileSync(new URL("lz4_multiblock.json", FIXTURES), "utf8"));
    const frame = decodeFrame(new Uint8Array(readFileSync(new URL("lz4_multiblock.bin", FIXTURES))));
    expect(frame.compression).toBe(Compression.LZ4);
    expect(frame.bodySize).toBe(expected.body_size);
    expect(frame.records.length).toBe(expected.records);
    frame.records.forEach((r, i) => expect(r.sequence).toBe(i + 1));
    const last = frame.records[frame.records.length - 1];
    expect(last.timestampNs.toString()).toBe(expected.last.timestamp_ns);
    expect(hex(last.data)).toBe(expected.last.data_hex);
    expect((decodeData(last.data, last.encoding) as { seq: number }).seq).toBe(2999);
  });
});

describe("malformed frames are refused like the Python decoder refuses them", () => {
  const base = () => golden("frame_none.bin").slice();
  const setU32 = (b: Uint8Array, at: number, v: number) => new DataView(b.buffer).setUint32(at, v, true);

  const cases: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ["shorter than a header", (b) => b.slice(0, 10), /shorter than its header/],
    ["another version", (b) => { b[8] = 3; return b; }, /version 3 is not supported/],
    ["a chunk frame of several records", (b) => { b[8] = 2; return b; }, /a piece of 1 record, header says 3/],
    ["total_size disagrees", (b) => b.slice(0, b.length - 1), /header says \d+ bytes, frame has/],
    ["unknown compression code", (b) => { b[9] = 3; return b; }, /unknown compression code 3/],
    ["body_size too big", (b) => { setU32(b, 12, 1 << 30); return b; }, /exceeds the limit/],
    ["body_size disagrees", (b) => { setU32(b, 12, 100); return b; }, /body is \d+ bytes, header says 100/],
    ["records do not fill the body", (b) => { setU32(b, 0, 2); return b; }, /bytes left after 2 records/],
    ["a record runs past the end", (b) => { setU32(b, 0, 4); return b; }, /record 3 header runs past/],
  ];
  for (const [what, mutate, message] of cases) {
    it(what, () => {
      expect(() => decodeFrame(mutate(base()), 1 << 20)).toThrow(FrameError);
      expect(() => decodeFrame(mutate(base()), 1 << 20)).toThrow(message);
    });
  }

  it("a compressed body that inflates past body_size (a lying header)", () => {
    for (const name of ["frame_lz4.bin", "frame_zlib.bin"]) {
      const b = golden(name).slice();
      setU32(b, 12, new DataView(b.buffer).getUint32(12, true) - 10);
      expect(() => decodeFrame(b)).toThrow(FrameError);
    }
  });

  it("a corrupt LZ4 magic", () => {
    const b = golden("frame_lz4.bin").slice();
    b[HEADER_SIZE] ^= 0xff;
    expect(() => decodeFrame(b)).toThrow(/not an LZ4 frame/);
  });
});

describe("chunk frames (frame version 2)", () => {
  interface ChunkManifest {
    frames: { name: string; offset: number; size: number }[];
    between: string;
    record: ExpectedRecord;
  }
  const manifest = JSON.parse(readFileSync(new URL("chunks.json", GOLDEN), "utf8")
    .replace(/"timestamp_ns":\s*(\d+)/g, '"timestamp_ns": "$1"')) as ChunkManifest;
  const chunkOf = (name: string) => {
    const chunk = decodeFrame(golden(name)).chunk;
    if (chunk === undefined) throw new Error(`${name} is not a chunk frame`);
    return chunk;
  };

  it("the golden pieces decode and reassemble around a whole frame", () => {
    const assembler = new ChunkAssembler();
    const got = manifest.frames.map((piece, index) => {
      const frame = decodeFrame(golden(piece.name));
      expect(frame.records).toEqual([]);
      expect(frame.chunk?.offset).toBe(piece.offset);
      expect(frame.chunk?.record.data.length).toBe(piece.size);
      const whole = assembler.add(chunkOf(piece.name));
      if (index === 0) expect(decodeFrame(golden(manifest.between)).records.length).toBe(3);
      return whole;
    });
    expect(got.slice(0, -1)).toEqual([undefined, undefined]);
    const record = got[got.length - 1]!;
    expect({
      timestamp_ns: record.timestampNs.toString(), topic_id: record.topicId, sequence: record.sequence,
      priority: record.priority, encoding: record.encoding, data_hex: hex(record.data),
    }).toEqual(manifest.record);
    expect(assembler.pendingBytes).toBe(0);
  });

  it("refuses a piece that does not continue its record, and a record over the limit", () => {
    const [first, second, third] = manifest.frames.map((f) => f.name);
    const assembler = new ChunkAssembler();
    expect(() => assembler.add(chunkOf(second))).toThrow(/does not continue a record/);
    assembler.add(chunkOf(first));
    expect(() => assembler.add(chunkOf(third))).toThrow(/does not continue a record/);
    expect(() => new ChunkAssembler(99).add(chunkOf(first))).toThrow(/exceeds the limit of 99/);
  });

  it("drops an abandoned record's pieces, and only that record's", () => {
    const [first, second] = manifest.frames.map((f) => f.name);
    const assembler = new ChunkAssembler();
    assembler.add(chunkOf(first));
    expect(assembler.discard(9, 6)).toBe(0); // another sequence: kept
    expect(assembler.discard(9, 5)).toBe(40);
    expect(assembler.pendingBytes).toBe(0);
    expect(() => assembler.add(chunkOf(second))).toThrow(/does not continue a record/);
  });

  it("refuses a piece that runs past its record", () => {
    const b = golden(manifest.frames[2].name).slice();
    new DataView(b.buffer).setUint32(HEADER_SIZE + CHUNK_HEADER_SIZE - 4, 90, true);
    expect(() => decodeFrame(b)).toThrow(/runs past the record's 100 bytes/);
  });
});
