/**
 * Record data -> value, per the record's encoding (docs/PROTOCOL.md "Encodings").
 *
 * msgpack: @msgpack/msgpack; maps become plain objects, `bin` (uint8[] fields such as image
 * data) becomes a Uint8Array view, integers become numbers (a uint64 above 2^53 loses
 * precision, as in any JS number). json: UTF-8 JSON text. cdr: the bytes as received.
 */
import { Decoder } from "@msgpack/msgpack";
import { RecordEncoding } from "./frame.js";

export type EncodingName = "msgpack" | "json" | "cdr";

export const ENCODING_CODES: Record<EncodingName, RecordEncoding> = {
  cdr: RecordEncoding.CDR,
  msgpack: RecordEncoding.MSGPACK,
  json: RecordEncoding.JSON,
};

export const ENCODING_NAMES: Record<number, EncodingName> = {
  [RecordEncoding.CDR]: "cdr",
  [RecordEncoding.MSGPACK]: "msgpack",
  [RecordEncoding.JSON]: "json",
};

// One decoder, reused: it caches short map keys (field names repeat in every message).
const msgpack = new Decoder();
const utf8 = new TextDecoder();

export function decodeData(data: Uint8Array, encoding: number): unknown {
  if (encoding === RecordEncoding.MSGPACK) return msgpack.decode(data);
  if (encoding === RecordEncoding.JSON) return JSON.parse(utf8.decode(data));
  return data;
}
