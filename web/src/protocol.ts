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
    priorities: PriorityName[];
    [other: string]: unknown;
  };
  defaults: {
    compression: CompressionName;
    max_batch_messages: number;
    compression_threshold_bytes: number;
    outbox_max_bytes: number;
  };
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

export type ServerMessage =
  | HelloMessage
  | TopicsMessage
  | TopicsUpdateMessage
  | SubscribedMessage
  | StatusMessage
  | PongMessage
  | MessagesMessage
  | { op: "unsubscribed"; id: unknown; topics: string[] }
  | { op: "configured"; id: unknown; compression: CompressionName; batching: boolean };
