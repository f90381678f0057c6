/** Control messages of the native protocol `rover-ws-bridge.v1` (docs/PROTOCOL.md). */
import type { PriorityName } from "./frame.js";
import type { EncodingName } from "./encoding.js";

export const PROTOCOL_NAME = "rover-ws-bridge.v1";

export type CompressionName = "lz4" | "zlib" | "none";

export interface TopicInfo {
  id: number;
  name: string;
  /** "pkg/msg/Type" */
  type: string;
  priority: PriorityName;
  transient_local: boolean;
}

export interface HelloMessage {
  op: "hello";
  server: string;
  version: string;
  protocol: string;
  frame_version: number;
  session_id: number;
  server_time_ns: number;
  capabilities: {
    encodings: EncodingName[];
    compressions: CompressionName[];
    batching: boolean;
    max_rate: boolean;
    /** The bridge can send large records in pieces (frame version 2; absent from older bridges). */
    chunks?: boolean;
    priorities: PriorityName[];
    [other: string]: unknown;
  };
  defaults: {
    compression: CompressionName;
    max_batch_messages: number;
    compression_threshold_bytes: number;
    outbox_max_bytes: number;
  };
  /** What this connection may do (absent from bridges before the two-way ops: nothing). */
  permissions?: Permissions;
}

/**
 * `hello.permissions`: fnmatch-style globs (`*` any run of characters, `/` included; `?` one
 * character; `[seq]`, `[!seq]`) of the topics this connection may publish, the services it may
 * call and the parameters (`/node:name`) it may set; and whether it may read parameters.
 */
export interface Permissions {
  publish: string[];
  call_service: string[];
  set_parameters: string[];
  get_parameters: boolean;
}

/** QoS of an `advertise` (all optional; the bridge answers with the effective QoS). */
export interface QosSpec {
  reliability?: "reliable" | "best_effort";
  durability?: "volatile" | "transient_local";
  depth?: number;
}

/** Answer to `advertise`. */
export interface AdvertisedMessage {
  op: "advertised";
  id: unknown;
  topic: string;
  type: string;
  /** For binary publish frames; valid on this connection only (it changes on reconnection). */
  channel_id: number;
  qos: QosSpec;
}

export interface UnadvertisedMessage {
  op: "unadvertised";
  id: unknown;
  topic: string;
}

export type ServiceResponseMessage =
  | { op: "service_response"; id: unknown; service: string; result: true; values: Record<string, unknown> }
  | { op: "service_response"; id: unknown; service: string; result: false; error: { code: string; message: string } };

export interface ParameterNamesMessage {
  op: "parameter_names";
  id: unknown;
  node: string;
  names: string[];
}

/** A parameter's value as read; `type` is the ROS parameter type's name (e.g. "double"). */
export interface ParameterValue {
  name: string;
  value: unknown;
  type: string;
}

export interface ParametersMessage {
  op: "parameters";
  id: unknown;
  node: string;
  parameters: ParameterValue[];
}

export interface SetParameterResult {
  name: string;
  successful: boolean;
  reason: string;
}

export interface ParametersSetMessage {
  op: "parameters_set";
  id: unknown;
  node: string;
  results: SetParameterResult[];
}

export interface TopicsMessage {
  op: "topics";
  id?: unknown;
  topics: TopicInfo[];
}

export interface TopicsUpdateMessage {
  op: "topics_update";
  added: TopicInfo[];
  changed: TopicInfo[];
  removed: { id: number; name: string }[];
}

export interface SubscribedMessage {
  op: "subscribed";
  id: unknown;
  subscriptions: { topic: string; topic_id: number; encoding: EncodingName; max_rate_hz: number | null }[];
}

export interface BackpressureInfo {
  state: "ok" | "warning" | "dropping";
  utilization: number;
  dropped: number;
  conflated: number;
}

export interface StatusMessage {
  op: "status";
  level: "error" | "warning" | "info";
  code: string;
  message: string;
  id: unknown;
  backpressure?: BackpressureInfo;
  /** code `chunk_abandoned`: the record whose remaining pieces will not come. */
  topic_id?: number;
  sequence?: number;
  sent_bytes?: number;
  data_size?: number;
}

export interface PongMessage {
  op: "pong";
  id: unknown;
  client_time_ns: number | null;
  server_time_ns: number;
}

export interface JsonDataMessage {
  topic: string;
  topic_id: number;
  timestamp_ns: number;
  sequence: number;
  priority: PriorityName | number;
  data: unknown;
}

export interface MessagesMessage {
  op: "messages";
  messages: JsonDataMessage[];
}

/** Answer to `stats`. */
export interface StatsAckMessage {
  op: "stats_ack";
  id: unknown;
}

/** Per topic in a `stats` report: the busiest topics only (see `STATS_MAX_TOPICS`). */
export interface StatsTopicReport {
  /** msgs/s received over the last ~2 s. */
  rate_hz: number;
  latency_p95_ms: number | null;
  /** Sequence gaps on this topic since the client started. */
  drops: number;
}

/**
 * What `OptimizedTelemetryClient` reports with the `stats` op (docs/PROTOCOL.md), the bridge's
 * `client_report` in `GET /api/performance/connections`. Times in ms; `null` where there is no
 * sample yet. Counters are totals since the client was created (over reconnections).
 */
export interface StatsReport {
  /** "rover-ws-bridge-client" (this TypeScript client). */
  client: string;
  /** How often the client reports, ms. */
  interval_ms: number;
  /** End-to-end: client receive time corrected to the server clock, minus the record's timestamp_ns; last 4096 records. */
  latency_ms: { p50: number | null; p95: number | null; p99: number | null; samples: number };
  messages: number;
  messages_per_second: number;
  frames: number;
  bytes_received: number;
  bytes_per_second: number;
  /** Decode time per binary frame (header, decompression, records, data), last 512 frames. */
  decode_time_ms: { mean: number | null; p95: number | null };
  /** Sequence gaps, all topics. */
  drops: number;
  /** Records over the client's latency budget (`maxLatency`). */
  late: number;
  frame_errors: number;
  reconnects: number;
  /** Server clock minus client clock. */
  clock_offset_ms: number;
  /** Round trip of the ping the offset comes from (null before the first pong). */
  rtt_ms: number | null;
  /** In a browser: navigator.userAgent (at most 256 characters). */
  user_agent?: string;
  /** Topics with data; `topics` holds the busiest of them. */
  topic_count: number;
  topics: Record<string, StatsTopicReport>;
}

export type ServerMessage =
  | HelloMessage
  | TopicsMessage
  | TopicsUpdateMessage
  | SubscribedMessage
  | StatusMessage
  | PongMessage
  | MessagesMessage
  | StatsAckMessage
  | AdvertisedMessage
  | UnadvertisedMessage
  | ServiceResponseMessage
  | ParameterNamesMessage
  | ParametersMessage
  | ParametersSetMessage
  | { op: "unsubscribed"; id: unknown; topics: string[] }
  | { op: "configured"; id: unknown; compression: CompressionName; batching: boolean; chunks?: boolean };
