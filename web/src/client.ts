/**
 * `OptimizedTelemetryClient`: the TypeScript client of the native protocol `rover-ws-bridge.v1`
 * (docs/PROTOCOL.md), for browsers and Node.js. Behaves like the Python client
 * (rover_ws_bridge/client.py), plus what a live dashboard needs: reconnection with backoff and
 * resubscription, clock sync, and client-side metrics, which it reports to the bridge (`stats`).
 * Two ways, where the bridge allows it (`permissions`): advertise and publish, call services,
 * list, read and set parameters.
 *
 *     const client = new OptimizedTelemetryClient({
 *       url: "ws://rover.local:8000", topics: ["/imu", "/odom"],
 *       targetFrequency: 200, maxLatency: 50, enableCompression: true, enableBatching: true,
 *     });
 *     client.onTelemetry((messages, timestamp, latency) => updateUI(messages));
 *
 * On Node.js before 22 there is no global WebSocket: pass one, e.g. `WebSocket` from "ws".
 */
import { encode as encodeMsgpack } from "@msgpack/msgpack";
import { ClockSync, nowMs } from "./clock.js";
import { COMPRESSION_NAMES } from "./compression.js";
import { decodeData, ENCODING_NAMES, type EncodingName } from "./encoding.js";
import {
  ChunkAssembler,
  decodeFrame,
  DEFAULT_MAX_BODY_BYTES,
  FrameError,
  PRIORITY_NAMES,
  type FrameRecord,
} from "./frame.js";
import { globAny } from "./glob.js";
import { ClientMetrics, type ClientMetricsSnapshot } from "./metrics.js";
import { buildStatsReport } from "./stats.js";
import {
  PROTOCOL_NAME,
  type AdvertisedMessage,
  type BackpressureInfo,
  type CompressionName,
  type HelloMessage,
  type MessagesMessage,
  type ParameterNamesMessage,
  type ParametersMessage,
  type ParametersSetMessage,
  type ParameterValue,
  type Permissions,
  type PongMessage,
  type QosSpec,
  type ServerMessage,
  type ServiceResponseMessage,
  type SetParameterResult,
  type StatsReport,
  type StatusMessage,
  type TopicInfo,
} from "./protocol.js";

// -- the WebSocket we need (the browser's, or the `ws` package's on Node.js) ------------------

export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

const WS_OPEN = 1;

// -- public types -----------------------------------------------------------------------------

export interface TelemetryMessage<T = unknown> {
  topic: string;
  topicId: number;
  /** Decoded data: an object (msgpack/json), or the raw bytes (cdr, or `decode: false`). */
  data: T;
  /** When the bridge received it from ROS, Unix ns (exact; from JSON frames: to ~256 ns). */
  timestampNs: bigint;
  /** The same in ms since the Unix epoch (a float), handy for plots. */
  timestampMs: number;
  /** Per-topic counter of messages the bridge received (u32, wraps). */
  sequence: number;
  /** 3 CRITICAL, 2 HIGH, 1 NORMAL, 0 LOW */
  priority: number;
  encoding: EncodingName;
  /** Size of the record's data on the wire (before decoding), bytes. */
  size: number;
  /** Client clock (ms since the Unix epoch) when the frame carrying it arrived. */
  receivedAtMs: number;
  /** Age on arrival: client receive time, corrected to the server clock, minus timestampMs. */
  latencyMs: number;
}

/**
 * Called once per data frame with its messages (a batch: possibly several topics).
 * `timestamp`: bridge receive time of the oldest message in the batch (ms since the Unix epoch);
 * `latency`: that message's age on arrival in ms, i.e. the batch's worst latency.
 */
export type TelemetryListener = (messages: TelemetryMessage[], timestamp: number, latency: number) => void;

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface StateDetail {
  /** Reconnection attempt number (1 = first retry). */
  attempt?: number;
  /** When reconnecting: delay before the next attempt, ms. */
  retryInMs?: number;
  /** Close code and reason of the connection that was lost. */
  code?: number;
  reason?: string;
}

export interface BackoffOptions {
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  /** Fraction of the delay taken off at random, so that many clients do not retry in step. */
  jitter: number;
}

export interface SubscriptionOptions {
  encoding?: EncodingName;
  /** Server-side throttle (max_rate_hz). */
  maxRateHz?: number;
}

export interface TelemetryClientOptions {
  url: string;
  /** Topics to subscribe (kept across reconnections); "*" = every topic offered, now or later. */
  topics?: string[];
  /** Max rate per topic in Hz, enforced by the bridge (`max_rate_hz`). Default: full rate. */
  targetFrequency?: number;
  /** Latency budget in ms: records that arrive older than this are counted in metrics.late. */
  maxLatency?: number;
  /** true -> configure compression "lz4", false -> "none"; or a name. Default: the server's. */
  enableCompression?: boolean | CompressionName;
  /** configure batching on/off. Default: the server's (on). */
  enableBatching?: boolean;
  /** Encoding of the subscriptions made from `topics`. Default msgpack. */
  encoding?: EncodingName;
  /** WebSocket implementation; default globalThis.WebSocket (browsers, Node.js >= 22). */
  WebSocket?: WebSocketConstructor;
  /** Connect from the constructor (on the next microtask). Default true. */
  autoConnect?: boolean;
  /** Reconnection backoff, or false to stay closed once the connection is lost. */
  reconnect?: Partial<BackoffOptions> | false;
  /** Interval of clock-sync pings once synced, ms. Default 2000. */
  pingIntervalMs?: number;
  /**
   * Report the client's metrics to the bridge (`stats` op, `statsReport()`) this often while
   * connected, ms; shown in the bridge's /api/performance/connections. Default 5000; 0 = never.
   */
  statsIntervalMs?: number;
  /** How long a request waits for its reply, ms. Default 10000. */
  requestTimeoutMs?: number;
  /** Refuse frames announcing a bigger body (decompression bomb guard). Default 256 MiB. */
  maxBodyBytes?: number;
  /** Decode record data (msgpack/json). Default true; false hands the raw bytes. */
  decode?: boolean;
  /**
   * Ask a bridge that offers it (`hello.capabilities.chunks`) to send large records in pieces
   * over a slow link, so that an e-stop is not held behind a camera frame; they are put back
   * together here (whole records only are delivered). Default true.
   */
  enableChunks?: boolean;
}

export class BridgeError extends Error {
  override name = "BridgeError";
  /** The bridge's message, without the code. */
  readonly detail: string;
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
    this.detail = message;
  }
}

/** A `publish` the bridge refused (`status` error with its id): comes out as an `error` event. */
export class PublishError extends BridgeError {
  override name = "PublishError";
  constructor(code: string, message: string, readonly topic: string) {
    super(code, message);
  }
}

/** A service call that failed (`service_response` with `result: false`, or a `status` error). */
export class ServiceCallError extends BridgeError {
  override name = "ServiceCallError";
  constructor(code: string, message: string, readonly service: string) {
    super(code, message);
  }
}

export interface CallServiceOptions {
  /** `pkg/srv/Type`; default: the type the bridge finds in the ROS graph. */
  type?: string;
  /** How long the bridge waits for the service, s; default the bridge's `service_timeout_s`. */
  timeoutS?: number;
}

/** Encoding of a binary publish frame (docs/PROTOCOL.md): 0 CDR, 1 msgpack. */
export type PublishEncoding = "msgpack" | "cdr";

/** What a connection may do before (or without) a `hello` that says: nothing. */
export const NO_PERMISSIONS: Readonly<Permissions> = Object.freeze({
  publish: [], call_service: [], set_parameters: [], get_parameters: false,
});

export interface ClientEvents {
  state: (state: ConnectionState, detail: StateDetail) => void;
  hello: (hello: HelloMessage) => void;
  topics: (topics: TopicInfo[]) => void;
  status: (status: StatusMessage) => void;
  backpressure: (info: BackpressureInfo, status: StatusMessage) => void;
  error: (error: Error) => void;
}

const DEFAULT_BACKOFF: BackoffOptions = { initialDelayMs: 250, maxDelayMs: 10_000, factor: 2, jitter: 0.2 };
// Pings right after connecting come quickly, so the clock offset is good within a second.
const FAST_PINGS = 4;
const FAST_PING_INTERVAL_MS = 200;
const MAX_STATUSES = 100;
const DEFAULT_STATS_INTERVAL_MS = 5000;
const ALL_TOPICS = "*";
/** Publish ids remembered to name the topic of a refused publish (10 Hz for ~100 s). */
const MAX_PUBLISH_IDS = 1024;
/** Beyond a call's own timeout_s: the bridge's answer may take this much longer to arrive. */
const SERVICE_REPLY_MARGIN_MS = 5000;
const PUBLISH_OPCODE = 1;
const PUBLISH_ENCODINGS: Record<PublishEncoding, number> = { cdr: 0, msgpack: 1 };
const PUBLISH_HEADER_SIZE = 6;

interface Pending {
  resolve: (message: ServerMessage) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  sentAtMs: number;
}

interface Wanted {
  encoding: EncodingName;
  maxRateHz?: number;
}

interface Advertisement {
  type: string;
  qos?: QosSpec;
}

function sameWanted(a: Wanted | undefined, b: Wanted): boolean {
  return a !== undefined && a.encoding === b.encoding && a.maxRateHz === b.maxRateHz;
}

export class OptimizedTelemetryClient {
  readonly url: string;
  private readonly options: TelemetryClientOptions;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly backoff: BackoffOptions | null;

  private ws: WebSocketLike | null = null;
  private generation = 0;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setTimeout> | null = null;
  private statsTimer: ReturnType<typeof setTimeout> | null = null;
  private pingsSent = 0;
  private attempt = 0;
  private userClosed = false;
  private everOpened = false;
  /** The connection (generation) whose session set-up has started. */
  private setUpFor = -1;
  /** Records arriving in pieces on this connection (made anew with each one). */
  private assembler = new ChunkAssembler();

  /** Bytes held of records arriving in pieces (at most one unfinished record per topic). */
  get pendingChunkBytes(): number {
    return this.assembler.pendingBytes;
  }
  private syncing: Promise<void> = Promise.resolve();

  private readonly telemetryListeners = new Set<TelemetryListener>();
  private readonly listeners: { [K in keyof ClientEvents]: Set<ClientEvents[K]> } = {
    state: new Set(), hello: new Set(), topics: new Set(), status: new Set(), backpressure: new Set(), error: new Set(),
  };
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  /** Subscriptions the user wants (topic name or "*"), replayed on every connection. */
  private readonly wanted = new Map<string, Wanted>();
  /** Topics excluded from "*" by an explicit unsubscribe. */
  private readonly excluded = new Set<string>();
  /** What the server confirmed on the current connection. */
  private active = new Map<string, Wanted>();
  private topicsByName = new Map<string, TopicInfo>();
  private namesById = new Map<number, string>();
  /** Topics the user advertised (the bridge accepted them), advertised again on every connection. */
  private readonly advertisements = new Map<string, Advertisement>();
  /** The bridge's `advertised` answers on the current connection. */
  private channels = new Map<string, AdvertisedMessage>();
  /** Ids of recent publishes -> topic, oldest first (bounded by MAX_PUBLISH_IDS). */
  private readonly publishIds = new Map<number, string>();

  state: ConnectionState = "idle";
  hello: HelloMessage | null = null;
  backpressure: BackpressureInfo | null = null;
  /** The last status messages (backpressure, warnings, errors), oldest first. */
  readonly statuses: StatusMessage[] = [];
  readonly clock = new ClockSync();
  readonly counters: ClientMetrics;

  constructor(options: TelemetryClientOptions) {
    this.options = options;
    this.url = options.url;
    const impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (impl === undefined) {
      throw new Error("no WebSocket implementation: pass options.WebSocket "
        + "(on Node.js before 22: `import WebSocket from \"ws\"`)");
    }
    this.WebSocketImpl = impl;
    this.backoff = options.reconnect === false ? null : { ...DEFAULT_BACKOFF, ...(options.reconnect ?? {}) };
    this.counters = new ClientMetrics(options.maxLatency ?? Infinity);
    const encoding = options.encoding ?? "msgpack";
    for (const topic of options.topics ?? []) {
      this.wanted.set(topic, { encoding, maxRateHz: options.targetFrequency });
    }
    // The outcome shows in the `state` and `error` events; nobody awaits this promise.
    if (options.autoConnect !== false) queueMicrotask(() => void this.connect().catch(() => undefined));
  }

  // -- events -----------------------------------------------------------------------------------

  /** Data, one call per frame. Returns a function that removes the listener. */
  onTelemetry(listener: TelemetryListener): () => void {
    this.telemetryListeners.add(listener);
    return () => this.telemetryListeners.delete(listener);
  }

  on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void {
    (this.listeners[event] as Set<ClientEvents[K]>).add(listener);
    return () => (this.listeners[event] as Set<ClientEvents[K]>).delete(listener);
  }

  private emit<K extends keyof ClientEvents>(event: K, ...args: Parameters<ClientEvents[K]>): void {
    for (const listener of this.listeners[event]) {
      try {
        (listener as (...a: Parameters<ClientEvents[K]>) => void)(...args);
      } catch (error) {
        if (event !== "error") this.emit("error", error as Error);
        else console.error(error);
      }
    }
  }

  // -- connection -------------------------------------------------------------------------------

  /** Start connecting (idempotent); resolves once connected and subscribed. */
  connect(): Promise<void> {
    if (this.state === "idle" || this.state === "closed") {
      this.userClosed = false;
      this.open();
    }
    return this.ready();
  }

  /** Resolves when the client is (or next becomes) open; rejects on close() or timeout. */
  ready(timeoutMs?: number): Promise<void> {
    if (this.state === "open") return Promise.resolve();
    if (this.state === "closed") return Promise.reject(new Error(`client of ${this.url} is closed`));
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waiter = {
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (e: Error) => { clearTimeout(timer); reject(e); },
      };
      this.readyWaiters.push(waiter);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.readyWaiters = this.readyWaiters.filter((w) => w !== waiter);
          reject(new Error(`not connected to ${this.url} within ${timeoutMs} ms (state: ${this.state})`));
        }, timeoutMs);
      }
    });
  }

  /** Close for good (no reconnection). */
  close(code = 1000, reason = "client closed"): void {
    this.userClosed = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    this.generation++;
    if (ws !== null) {
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    }
    this.failPending(new Error("client closed"));
    this.setState("closed", { code, reason });
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.reject(new Error("client closed"));
  }

  private open(): void {
    const generation = ++this.generation;
    this.setState(this.everOpened || this.attempt > 0 ? "reconnecting" : "connecting",
      { attempt: this.attempt || undefined });
    let ws: WebSocketLike;
    try {
      ws = new this.WebSocketImpl(this.url, [PROTOCOL_NAME]);
    } catch (error) {
      this.emit("error", error as Error);
      this.scheduleReconnect({ code: 1006, reason: (error as Error).message });
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.clock.reset();
    this.assembler = new ChunkAssembler(this.options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
    ws.onmessage = (event) => {
      if (generation === this.generation) this.onFrame(event.data);
    };
    ws.onclose = (event) => {
      if (generation === this.generation) this.onClose(event.code, event.reason);
    };
    ws.onerror = () => {
      // Always followed by a close event, which is where the state changes.
    };
  }

  private onClose(code: number, reason: string): void {
    this.ws = null;
    this.generation++;
    this.clearTimers(false);
    this.failPending(new Error(`connection closed (${code}${reason ? ` ${reason}` : ""})`));
    this.active = new Map();
    this.channels = new Map();
    this.publishIds.clear();
    this.counters.connectionRestarted();
    if (this.userClosed) return;
    this.scheduleReconnect({ code, reason });
  }

  private scheduleReconnect(detail: StateDetail): void {
    if (this.backoff === null) {
      this.setState("closed", detail);
      for (const w of this.readyWaiters.splice(0)) w.reject(new Error(`connection to ${this.url} closed`));
      return;
    }
    const { initialDelayMs, maxDelayMs, factor, jitter } = this.backoff;
    const base = Math.min(maxDelayMs, initialDelayMs * factor ** this.attempt);
    const delay = Math.round(base * (1 - jitter * Math.random()));
    this.attempt++;
    this.setState("reconnecting", { ...detail, attempt: this.attempt, retryInMs: delay });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.userClosed) {
        this.counters.reconnects++;
        this.open();
      }
    }, delay);
  }

  private setState(state: ConnectionState, detail: StateDetail = {}): void {
    this.state = state;
    this.emit("state", state, detail);
  }

  /** The ping and stats timers of the connection, and (by default) the reconnection timer. */
  private clearTimers(reconnect = true): void {
    if (reconnect && this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    if (this.pingTimer !== null) clearTimeout(this.pingTimer);
    if (this.statsTimer !== null) clearTimeout(this.statsTimer);
    if (reconnect) this.reconnectTimer = null;
    this.pingTimer = null;
    this.statsTimer = null;
  }

  private failPending(error: Error): void {
    const pending = this.pending;
    this.pending = new Map();
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(error);
    }
  }

  /** After `hello` and `topics`: configure, subscribe, advertise again, start the clock sync; then open. */
  private async setUp(generation: number): Promise<void> {
    const { enableCompression, enableBatching } = this.options;
    const chunks = this.options.enableChunks !== false && this.hello?.capabilities.chunks === true;
    try {
      if (enableCompression !== undefined || enableBatching !== undefined || chunks) {
        const request: Record<string, unknown> = { op: "configure" };
        if (enableCompression !== undefined) {
          request.compression = typeof enableCompression === "string" ? enableCompression
            : enableCompression ? "lz4" : "none";
        }
        if (enableBatching !== undefined) request.batching = enableBatching;
        if (chunks) request.chunks = true;
        await this.request(request);
      }
      await this.queueSync();
    } catch (error) {
      if (generation !== this.generation) return;
      this.emit("error", error as Error);
    }
    if (generation !== this.generation) return;
    await this.advertiseAgain(generation);
    if (generation !== this.generation) return;
    this.attempt = 0;
    this.everOpened = true;
    this.setState("open");
    for (const w of this.readyWaiters.splice(0)) w.resolve();
    this.scheduleStats(generation);
  }

  // -- requests -----------------------------------------------------------------------------------

  /** Send a control message and wait for its reply; a status error rejects with BridgeError. */
  request(message: Record<string, unknown>, timeoutMs = this.options.requestTimeoutMs ?? 10_000): Promise<ServerMessage> {
    const ws = this.ws;
    if (ws === null || ws.readyState !== WS_OPEN) return Promise.reject(new Error("not connected"));
    const id = this.nextId++;
    return new Promise<ServerMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${String(message.op)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, sentAtMs: nowMs() });
      ws.send(JSON.stringify({ ...message, id }));
    });
  }

  /** Add topics to the subscriptions (kept across reconnections); "*" = every topic. */
  async subscribe(topics: string | string[], options: SubscriptionOptions = {}): Promise<void> {
    const wanted: Wanted = { encoding: options.encoding ?? this.options.encoding ?? "msgpack", maxRateHz: options.maxRateHz };
    for (const topic of typeof topics === "string" ? [topics] : topics) {
      this.wanted.set(topic, wanted);
      this.excluded.delete(topic);
    }
    if (this.ws !== null && this.setUpFor === this.generation) await this.queueSync();
  }

  async unsubscribe(topics: string | string[]): Promise<void> {
    const names = typeof topics === "string" ? [topics] : topics;
    for (const topic of names) {
      this.wanted.delete(topic);
      if (this.wanted.has(ALL_TOPICS) && topic !== ALL_TOPICS) this.excluded.add(topic);
    }
    const drop = [...this.active.keys()].filter((name) => this.desired(name) === undefined);
    if (drop.length > 0 && this.ws !== null) {
      for (const name of drop) this.active.delete(name);
      await this.request({ op: "unsubscribe", topics: drop });
    }
  }

  /** Whether the client subscribes `topic` when it is offered (explicitly or through "*"). */
  wants(topic: string): boolean {
    return this.desired(topic) !== undefined;
  }

  /** The subscription a topic should have, if any. */
  private desired(name: string): Wanted | undefined {
    const explicit = this.wanted.get(name);
    if (explicit !== undefined) return explicit;
    if (this.excluded.has(name)) return undefined;
    return this.wanted.get(ALL_TOPICS);
  }

  /** Run syncSubscriptions after any still running: one at a time, in order. */
  private queueSync(): Promise<void> {
    const run = this.syncing.then(() => this.syncSubscriptions());
    this.syncing = run.catch(() => undefined);
    return run;
  }

  /** Subscribe what is wanted and offered but not yet subscribed as wanted on this connection. */
  private async syncSubscriptions(): Promise<void> {
    const groups = new Map<string, { wanted: Wanted; topics: string[] }>();
    for (const name of this.topicsByName.keys()) {
      const wanted = this.desired(name);
      if (wanted === undefined || sameWanted(this.active.get(name), wanted)) continue;
      const key = `${wanted.encoding}|${wanted.maxRateHz ?? ""}`;
      const group = groups.get(key) ?? { wanted, topics: [] };
      group.topics.push(name);
      groups.set(key, group);
    }
    for (const { wanted, topics } of groups.values()) {
      const request: Record<string, unknown> = { op: "subscribe", topics, encoding: wanted.encoding };
      if (wanted.maxRateHz !== undefined) request.max_rate_hz = wanted.maxRateHz;
      for (const topic of topics) this.active.set(topic, wanted);
      try {
        await this.request(request);
      } catch (error) {
        for (const topic of topics) this.active.delete(topic);
        throw error;
      }
    }
  }

  /** Ask for the topic list again (answered by `topics`). */
  async listTopics(): Promise<TopicInfo[]> {
    await this.request({ op: "list_topics" });
    return this.topics;
  }

  /** One clock-sync round trip; returns the RTT in ms. */
  async ping(): Promise<number> {
    const t0 = nowMs();
    const reply = (await this.request({ op: "ping", client_time_ns: Math.round(t0 * 1e6) })) as PongMessage;
    const t1 = nowMs();
    this.clock.addRoundTrip(t0, t1, Number(reply.server_time_ns) / 1e6);
    return t1 - t0;
  }

  private schedulePing(generation: number): void {
    const interval = this.pingsSent < FAST_PINGS ? FAST_PING_INTERVAL_MS : (this.options.pingIntervalMs ?? 2000);
    this.pingTimer = setTimeout(() => {
      this.pingTimer = null;
      if (generation !== this.generation) return;
      this.pingsSent++;
      this.ping().catch(() => undefined).finally(() => {
        if (generation === this.generation) this.schedulePing(generation);
      });
    }, this.pingsSent === 0 ? 0 : interval);
  }

  // -- two ways: publishing, service calls, parameters ---------------------------------------------

  /** What this connection may do, from `hello` (nothing before it, or from an older bridge). */
  get permissions(): Readonly<Permissions> {
    return this.hello?.permissions ?? NO_PERMISSIONS;
  }

  /** Whether `permissions.publish` allows advertising and publishing `topic`. */
  mayPublish(topic: string): boolean {
    return globAny(this.permissions.publish, topic);
  }

  /** Whether `permissions.call_service` allows calling `service`. */
  mayCall(service: string): boolean {
    return globAny(this.permissions.call_service, service);
  }

  /** Whether `permissions.set_parameters` allows setting `name` of `node` (glob on "/node:name"). */
  maySetParameter(node: string, name: string): boolean {
    return globAny(this.permissions.set_parameters, `${node}:${name}`);
  }

  /**
   * Advertise `topic` (answered by `advertised`: its `channel_id` for `publishBinary` and the
   * effective QoS). Once the bridge accepted it, it is advertised again after every
   * reconnection (before the state is `open` again); `channelId(topic)` gives the current id.
   */
  async advertise(topic: string, type: string, qos?: QosSpec): Promise<AdvertisedMessage> {
    const advertisement: Advertisement = qos === undefined ? { type } : { type, qos };
    const reply = await this.sendAdvertise(topic, advertisement);
    this.advertisements.set(topic, advertisement);
    return reply;
  }

  private async sendAdvertise(topic: string, advertisement: Advertisement): Promise<AdvertisedMessage> {
    const generation = this.generation;
    const request: Record<string, unknown> = { op: "advertise", topic, type: advertisement.type };
    if (advertisement.qos !== undefined) request.qos = advertisement.qos;
    const reply = (await this.request(request)) as AdvertisedMessage;
    if (generation === this.generation) this.channels.set(topic, reply);
    return reply;
  }

  /** On a new connection: advertise again what was advertised; a refusal is an `error` event. */
  private async advertiseAgain(generation: number): Promise<void> {
    const results = await Promise.allSettled(
      [...this.advertisements].map(([topic, advertisement]) => this.sendAdvertise(topic, advertisement)));
    if (generation !== this.generation) return;
    for (const result of results) {
      if (result.status === "rejected") this.emit("error", result.reason as Error);
    }
  }

  /** Withdraw an advertisement (no more re-advertising); answered by `unadvertised`. */
  async unadvertise(topic: string): Promise<void> {
    this.advertisements.delete(topic);
    const advertised = this.channels.delete(topic);
    if (advertised && this.ws !== null) await this.request({ op: "unadvertise", topic });
  }

  /** Topics advertised on the current connection. */
  get advertised(): string[] {
    return [...this.channels.keys()];
  }

  /** `channel_id` of an advertised topic on the current connection (it changes on reconnection). */
  channelId(topic: string): number | undefined {
    return this.channels.get(topic)?.channel_id;
  }

  /**
   * Publish `msg` (the message's fields as JSON) on an advertised topic. Fire and forget: the
   * bridge answers only when it refuses, with a `status` error, which comes out as a `status`
   * and an `error` event (a `PublishError` naming the topic). Returns false, sending nothing,
   * when the client is not open.
   */
  publish(topic: string, msg: object): boolean {
    const ws = this.openSocket();
    if (ws === null) return false;
    const id = this.nextId++;
    this.publishIds.set(id, topic);
    if (this.publishIds.size > MAX_PUBLISH_IDS) this.publishIds.delete(this.publishIds.keys().next().value!);
    ws.send(JSON.stringify({ op: "publish", id, topic, msg }));
    return true;
  }

  /**
   * Publish in a binary frame (docs/PROTOCOL.md): opcode 1, encoding (0 CDR, 1 msgpack), the
   * `channel_id` u32 (little-endian) from `advertised`, then the message: CDR bytes with their
   * encapsulation header, or msgpack (bytes, or an object to encode). Fire and forget; false
   * when the client is not open. A refusal comes as a `status` (the frame has no id).
   */
  publishBinary(channelId: number, encoding: PublishEncoding, payload: Uint8Array | Record<string, unknown>): boolean {
    if (!Number.isInteger(channelId) || channelId < 0 || channelId > 0xffff_ffff) {
      throw new RangeError(`channel_id must be a u32, not ${channelId}`);
    }
    const code = PUBLISH_ENCODINGS[encoding];
    if (code === undefined) throw new RangeError(`unknown publish encoding ${String(encoding)} (msgpack or cdr)`);
    let body: Uint8Array;
    if (payload instanceof Uint8Array) body = payload;
    else if (encoding === "msgpack") body = encodeMsgpack(payload);
    else throw new TypeError("a CDR publish takes the serialized message as a Uint8Array");
    const ws = this.openSocket();
    if (ws === null) return false;
    const frame = new Uint8Array(PUBLISH_HEADER_SIZE + body.length);
    const view = new DataView(frame.buffer);
    view.setUint8(0, PUBLISH_OPCODE);
    view.setUint8(1, code);
    view.setUint32(2, channelId, true);
    frame.set(body, PUBLISH_HEADER_SIZE);
    ws.send(frame);
    return true;
  }

  private openSocket(): WebSocketLike | null {
    const ws = this.ws;
    return ws !== null && ws.readyState === WS_OPEN && this.state === "open" ? ws : null;
  }

  /**
   * Call a ROS service; resolves with the response's fields (`values`). A failed call rejects
   * with a `ServiceCallError` whose `code` is the protocol's (`not_allowed`, `no_such_service`,
   * `timeout`, ...).
   */
  async callService<T = Record<string, unknown>>(service: string, args: Record<string, unknown> = {},
    options: CallServiceOptions = {}): Promise<T> {
    const request: Record<string, unknown> = { op: "call_service", service, args };
    if (options.type !== undefined) request.type = options.type;
    if (options.timeoutS !== undefined) request.timeout_s = options.timeoutS;
    const requestTimeoutMs = this.options.requestTimeoutMs ?? 10_000;
    const waitMs = options.timeoutS !== undefined
      ? Math.max(requestTimeoutMs, options.timeoutS * 1000 + SERVICE_REPLY_MARGIN_MS)
      : requestTimeoutMs + SERVICE_REPLY_MARGIN_MS;
    let reply: ServiceResponseMessage;
    try {
      reply = (await this.request(request, waitMs)) as ServiceResponseMessage;
    } catch (error) {
      if (error instanceof BridgeError) throw new ServiceCallError(error.code, error.detail, service);
      throw error;
    }
    if (reply.result === true) return reply.values as T;
    throw new ServiceCallError(reply.error?.code ?? "failed", reply.error?.message ?? "service call failed", service);
  }

  /** Names of a node's parameters (`node`: "/name" or "/ns/name"). */
  async listParameters(node: string): Promise<string[]> {
    return ((await this.request({ op: "list_parameters", node })) as ParameterNamesMessage).names;
  }

  /** Values (and ROS types) of a node's parameters; all of them when `names` is empty or absent. */
  async getParameters(node: string, names?: string[]): Promise<ParameterValue[]> {
    const request: Record<string, unknown> = { op: "get_parameters", node };
    if (names !== undefined) request.names = names;
    return ((await this.request(request)) as ParametersMessage).parameters;
  }

  /**
   * Set parameters of a node; resolves with one result per parameter ({name, successful,
   * reason}): a parameter the node refused does not reject, check `successful`.
   */
  async setParameters(node: string, parameters: { name: string; value: unknown }[]): Promise<SetParameterResult[]> {
    return ((await this.request({ op: "set_parameters", node, parameters })) as ParametersSetMessage).results;
  }

  // -- state --------------------------------------------------------------------------------------

  /** Topics the server offers now. */
  get topics(): TopicInfo[] {
    return [...this.topicsByName.values()];
  }

  /** Topics subscribed on the current connection. */
  get subscriptions(): string[] {
    return [...this.active.keys()];
  }

  /** A snapshot of the client-side metrics. */
  metrics(): ClientMetricsSnapshot {
    return this.counters.snapshot(nowMs(), this.clock.offsetMs, this.clock.roundTripMs);
  }

  /**
   * The report the `stats` op sends (docs/PROTOCOL.md): latency p50/p95/p99, rates, bytes,
   * decode time, drops, reconnections, clock offset and RTT, the browser's user agent, and the
   * busiest topics' rate, latency p95 and drops; under the bridge's 4096-character limit.
   */
  statsReport(): StatsReport {
    return buildStatsReport(this.metrics(), this.statsIntervalMs);
  }

  /** Send `statsReport()` now (`stats`; answered by `stats_ack`). The timer does this by itself. */
  async sendStats(): Promise<void> {
    await this.request({ op: "stats", report: this.statsReport() });
  }

  private get statsIntervalMs(): number {
    return this.options.statsIntervalMs ?? DEFAULT_STATS_INTERVAL_MS;
  }

  /**
   * Report every statsIntervalMs while this connection is open (the next report is timed from
   * the previous one's answer, so they never pile up). A bridge that does not know the op
   * (`unknown_op`) gets no more reports on this connection.
   */
  private scheduleStats(generation: number): void {
    const interval = this.statsIntervalMs;
    if (!(interval > 0) || !Number.isFinite(interval)) return;
    this.statsTimer = setTimeout(() => {
      this.statsTimer = null;
      if (generation !== this.generation || this.state !== "open") return;
      this.sendStats().then(() => true, (error: Error) => {
        if (generation !== this.generation) return false; // the connection went: not an error
        if (!(error instanceof BridgeError)) return true; // a timeout: like a lost ping, try later
        if (error.code === "unknown_op") return false; // an older bridge
        this.emit("error", error);
        return true;
      }).then((again) => {
        if (again && generation === this.generation && this.statsTimer === null) this.scheduleStats(generation);
      }, () => undefined);
    }, interval);
  }

  // -- receiving ----------------------------------------------------------------------------------

  private onFrame(data: unknown): void {
    const now = nowMs();
    if (typeof data === "string") {
      this.counters.frameReceived(data.length, now);
      this.onText(data, now);
    } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data)
        : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      this.counters.frameReceived(bytes.length, now);
      this.onBinary(bytes, now);
    } else {
      this.emit("error", new Error(`unexpected frame type ${Object.prototype.toString.call(data)}`));
    }
  }

  private onBinary(bytes: Uint8Array, now: number): void {
    const started = performance.now();
    let messages: TelemetryMessage[];
    let compression: "none" | "lz4" | "zlib";
    try {
      const frame = decodeFrame(bytes, this.options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
      compression = COMPRESSION_NAMES[frame.compression];
      const decode = this.options.decode !== false;
      let records: FrameRecord[] = frame.records;
      if (frame.chunk !== undefined) {
        const whole = this.assembler.add(frame.chunk);
        records = whole === undefined ? [] : [whole];
      }
      messages = records.map((r) => ({
        topic: this.namesById.get(r.topicId) ?? "?",
        topicId: r.topicId,
        data: decode ? decodeData(r.data, r.encoding) : r.data,
        timestampNs: r.timestampNs,
        timestampMs: Number(r.timestampNs) / 1e6,
        sequence: r.sequence,
        priority: r.priority,
        encoding: ENCODING_NAMES[r.encoding] ?? "cdr",
        size: r.data.length,
        receivedAtMs: now,
        latencyMs: 0,
      }));
    } catch (error) {
      this.counters.frameErrors++;
      this.emit("error", error instanceof FrameError ? error : new FrameError(`undecodable frame: ${(error as Error).message}`));
      return;
    }
    this.counters.frameDecoded(compression, performance.now() - started);
    this.deliver(messages, now);
  }

  private onText(text: string, now: number): void {
    let message: ServerMessage;
    try {
      message = JSON.parse(text) as ServerMessage;
    } catch {
      this.emit("error", new Error(`server sent text that is not JSON: ${text.slice(0, 80)}`));
      return;
    }
    switch (message.op) {
      case "messages":
        this.onJsonMessages(message, now);
        return;
      case "hello":
        this.hello = message;
        this.clock.addHint(now, message.server_time_ns / 1e6);
        this.emit("hello", message);
        break;
      case "topics":
        this.setTopics(message.topics);
        if (this.setUpFor !== this.generation) {
          // The second frame of a connection: set the session up.
          this.setUpFor = this.generation;
          this.syncing = Promise.resolve();
          this.pingsSent = 0;
          this.schedulePing(this.generation);
          void this.setUp(this.generation);
        }
        break;
      case "topics_update":
        for (const t of message.removed) this.topicsByName.delete(t.name);
        for (const t of [...message.added, ...message.changed]) this.topicsByName.set(t.name, t);
        this.setTopics([...this.topicsByName.values()]);
        // Also while the session is being set up: a topic can appear between our subscribe
        // request and its reply.
        if (this.setUpFor === this.generation) {
          this.queueSync().catch((error: Error) => this.emit("error", error));
        }
        break;
      case "status":
        this.statuses.push(message);
        if (this.statuses.length > MAX_STATUSES) this.statuses.shift();
        if (message.code === "chunk_abandoned" && message.topic_id !== undefined && message.sequence !== undefined) {
          // The rest of a record in pieces will not come: its pieces go.
          this.assembler.discard(message.topic_id, message.sequence);
        }
        if (message.code === "backpressure" && message.backpressure !== undefined) {
          this.backpressure = message.backpressure;
          this.emit("backpressure", message.backpressure, message);
        }
        this.emit("status", message);
        if (typeof message.id === "number" && this.publishIds.has(message.id)) {
          const topic = this.publishIds.get(message.id)!;
          this.publishIds.delete(message.id);
          if (message.level === "error") {
            this.emit("error", new PublishError(message.code, `publish on ${topic}: ${message.message}`, topic));
          }
        }
        break;
      default:
        break;
    }
    const id = (message as { id?: unknown }).id;
    if (typeof id !== "number") return;
    const pending = this.pending.get(id);
    if (pending === undefined) return;
    if (message.op === "status") {
      if (message.level !== "error") return; // a warning accompanies the real reply
      this.pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(new BridgeError(message.code, message.message));
    } else {
      this.pending.delete(id);
      clearTimeout(pending.timer);
      pending.resolve(message);
    }
  }

  private setTopics(topics: TopicInfo[]): void {
    this.topicsByName = new Map(topics.map((t) => [t.name, t]));
    // A topic keeps its id for the server's lifetime: old ids stay resolvable.
    for (const t of topics) this.namesById.set(t.id, t.name);
    this.emit("topics", topics);
  }

  private onJsonMessages(message: MessagesMessage, now: number): void {
    const messages: TelemetryMessage[] = message.messages.map((m) => ({
      topic: m.topic,
      topicId: m.topic_id,
      data: m.data,
      // JSON numbers are doubles: exact to ~256 ns at today's Unix times.
      timestampNs: BigInt(m.timestamp_ns),
      timestampMs: m.timestamp_ns / 1e6,
      sequence: m.sequence,
      priority: typeof m.priority === "number" ? m.priority : PRIORITY_NAMES.indexOf(m.priority),
      encoding: "json",
      size: 0,
      receivedAtMs: now,
      latencyMs: 0,
    }));
    this.deliver(messages, now);
  }

  private deliver(messages: TelemetryMessage[], now: number): void {
    if (messages.length === 0) return;
    const serverNow = now + this.clock.offsetMs;
    let oldest = Infinity;
    for (const m of messages) {
      m.latencyMs = serverNow - m.timestampMs;
      if (m.timestampMs < oldest) oldest = m.timestampMs;
      this.counters.record(m.topic, m.sequence, m.size, m.latencyMs, now);
    }
    const latency = serverNow - oldest;
    for (const listener of this.telemetryListeners) {
      try {
        listener(messages, oldest, latency);
      } catch (error) {
        this.emit("error", error as Error);
      }
    }
  }
}
