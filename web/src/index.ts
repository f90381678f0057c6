export {
  OptimizedTelemetryClient,
  BridgeError,
  PublishError,
  ServiceCallError,
  NO_PERMISSIONS,
  type CallServiceOptions,
  type PublishEncoding,
  type TelemetryClientOptions,
  type TelemetryMessage,
  type TelemetryListener,
  type ConnectionState,
  type StateDetail,
  type BackoffOptions,
  type SubscriptionOptions,
  type ClientEvents,
  type WebSocketLike,
  type WebSocketConstructor,
} from "./client.js";
export {
  decodeFrame,
  ChunkAssembler,
  FrameError,
  RecordEncoding,
  Priority,
  PRIORITY_NAMES,
  FRAME_VERSION,
  CHUNK_FRAME_VERSION,
  HEADER_SIZE,
  RECORD_HEADER_SIZE,
  CHUNK_HEADER_SIZE,
  type Chunk,
  type Frame,
  type FrameRecord,
  type PriorityName,
} from "./frame.js";
export { Compression, decompress, DecompressionError } from "./compression.js";
export { decodeData, type EncodingName } from "./encoding.js";
export { ClockSync, nowMs } from "./clock.js";
export { globMatch, globAny } from "./glob.js";
export {
  ClientMetrics,
  SampleWindow,
  RateMeter,
  SequenceTracker,
  type ClientMetricsSnapshot,
  type TopicMetrics,
  type Percentiles,
} from "./metrics.js";
export { buildStatsReport, pythonJsonLength, browserUserAgent, STATS_MAX_CHARS, STATS_MAX_TOPICS } from "./stats.js";
export * from "./protocol.js";
