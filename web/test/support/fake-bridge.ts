// A scripted stand-in for the bridge (a `ws` server speaking just enough rover-ws-bridge.v1)
// for unit tests of the client's protocol logic: set-up order, replies, reconnection; and the
// two-way ops (advertise, publish in text and binary frames, services, parameters) with
// permissions in `hello` as the demo grants them to loopback clients.
import { decode, encode } from "@msgpack/msgpack";
import { WebSocketServer, type WebSocket } from "ws";
import type { AddressInfo } from "node:net";
import { pythonJsonLength } from "../../src/stats.js";
import { globAny } from "../../src/glob.js";
import type { Permissions } from "../../src/protocol.js";

export const TOPICS = [
  { id: 1, name: "/imu", type: "sensor_msgs/msg/Imu", priority: "NORMAL", transient_local: false },
  { id: 2, name: "/odom", type: "nav_msgs/msg/Odometry", priority: "HIGH", transient_local: false },
  { id: 3, name: "/estop", type: "std_msgs/msg/Bool", priority: "CRITICAL", transient_local: true },
];

/** What the demo allows a loopback client (docs/PROTOCOL.md's example). */
export const DEMO_PERMISSIONS: Permissions = {
  publish: ["/cmd_vel"], call_service: ["/rover_sim/*"], set_parameters: ["/rover_sim:*"], get_parameters: true,
};

export type ServiceHandler = (args: Record<string, unknown>) =>
  { values: Record<string, unknown> } | { error: { code: string; message: string } };

export interface Published {
  connection: number;
  topic: string;
  msg: unknown;
}

export interface BinaryPublished {
  connection: number;
  channelId: number;
  /** 0 CDR, 1 msgpack */
  encoding: number;
  payload: Uint8Array;
  /** msgpack payloads, decoded */
  decoded?: unknown;
}

export interface RecordSpec {
  timestampNs: bigint;
  topicId: number;
  sequence: number;
  priority: number;
  data: unknown;
}

/** An uncompressed frame (docs/PROTOCOL.md), msgpack-encoded records. */
export function encodeFrame(records: RecordSpec[]): Uint8Array {
  const datas = records.map((r) => encode(r.data));
  const bodySize = datas.reduce((n, d) => n + 22 + d.length, 0);
  const out = new Uint8Array(16 + bodySize);
  const v = new DataView(out.buffer);
  v.setUint32(0, records.length, true);
  v.setUint32(4, out.length, true);
  v.setUint8(8, 1);
  v.setUint32(12, bodySize, true);
  let at = 16;
  records.forEach((r, i) => {
    v.setBigUint64(at, r.timestampNs, true);
    v.setUint32(at + 8, r.topicId, true);
    v.setUint32(at + 12, r.sequence, true);
    v.setUint8(at + 16, r.priority);
    v.setUint8(at + 17, 1);
    v.setUint32(at + 18, datas[i].length, true);
    out.set(datas[i], at + 22);
    at += 22 + datas[i].length;
  });
  return out;
}

export class FakeBridge {
  readonly server: WebSocketServer;
  readonly requests: Record<string, unknown>[] = [];
  /** The connection (1, 2, ...) each of `requests` came on (tests may empty `requests`). */
  private readonly connectionOf = new WeakMap<object, number>();
  readonly sockets = new Set<WebSocket>();
  connections = 0;
  topics = [...TOPICS];
  /** Server clock minus real time, ms: lets a test check the client's clock-offset estimate. */
  clockSkewMs = 0;
  /** Delay of the `subscribed` replies, ms (to open the window for races). */
  subscribeReplyDelayMs = 0;
  /** false: answer `stats` with unknown_op, as a bridge from before the op does. */
  statsSupported = true;
  /** The bridge's limit on a `stats` report (length of Python's json.dumps of it). */
  statsMaxChars = 4096;
  /** `hello.capabilities.chunks`: offer large records in pieces (frame version 2). */
  chunks = false;
  /** `hello.permissions`; undefined: a bridge from before the two-way ops (no field). */
  permissions: Permissions | undefined = DEMO_PERMISSIONS;
  /** Refuse every `publish` with this error (`status` with the publish's id). */
  publishError: { code: string; message: string } | null = null;
  readonly published: Published[] = [];
  readonly binaryPublished: BinaryPublished[] = [];
  /** The binary frames that did not parse, or named an unknown channel (answered by a status). */
  badBinaryFrames = 0;
  estop = false;
  readonly services = new Map<string, ServiceHandler>([
    ["/rover_sim/set_estop", (args) => {
      if (typeof args.data !== "boolean") return { error: { code: "bad_message", message: "data: expected a bool" } };
      this.estop = args.data;
      return { values: { success: true, message: args.data ? "e-stop engaged" : "e-stop released" } };
    }],
    ["/rover_sim/reset_odometry", () => ({ values: { success: true, message: "" } })],
    ["/rover_sim/slow", () => ({ error: { code: "timeout", message: "no answer within 1 s" } })],
  ]);
  /** Parameters per node: name -> {value, type}. */
  readonly parameters = new Map<string, Map<string, { value: unknown; type: string }>>([
    ["/rover_sim", new Map([
      ["max_speed_mps", { value: 2.0, type: "double" }],
      ["speed_mps", { value: 1.0, type: "double" }],
      ["use_sim_time", { value: false, type: "bool" }],
    ])],
  ]);
  /** Channels advertised, per connection: topic -> channel_id. */
  private readonly channels = new WeakMap<WebSocket, Map<string, number>>();

  private constructor(server: WebSocketServer) {
    this.server = server;
    server.on("connection", (ws) => this.onConnection(ws));
  }

  static async start(port = 0): Promise<FakeBridge> {
    const server = new WebSocketServer({ host: "127.0.0.1", port, handleProtocols: (p) => (p.has("rover-ws-bridge.v1") ? "rover-ws-bridge.v1" : false) });
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    return new FakeBridge(server);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  private serverTimeNs(): number {
    return (Date.now() + this.clockSkewMs) * 1e6;
  }

  private onConnection(ws: WebSocket): void {
    const connection = ++this.connections;
    this.sockets.add(ws);
    ws.on("close", () => this.sockets.delete(ws));
    this.send(ws, {
      op: "hello", server: "fake", version: "0", protocol: "rover-ws-bridge.v1", frame_version: 1, session_id: this.connections,
      server_time_ns: this.serverTimeNs(),
      capabilities: { encodings: ["msgpack", "json", "cdr"], compressions: ["lz4", "zlib", "none"], batching: true, max_rate: true, priorities: [], ...(this.chunks ? { chunks: true } : {}) },
      defaults: { compression: "lz4", max_batch_messages: 50, compression_threshold_bytes: 512, outbox_max_bytes: 4194304 },
      ...(this.permissions !== undefined ? { permissions: this.permissions } : {}),
    });
    this.send(ws, { op: "topics", topics: this.topics });
    const channels = new Map<string, number>();
    this.channels.set(ws, channels);
    ws.on("message", (raw, isBinary) => {
      if (isBinary) {
        this.onBinary(ws, connection, channels, new Uint8Array(raw as Buffer));
        return;
      }
      const m = JSON.parse(raw.toString()) as Record<string, unknown>;
      this.requests.push(m);
      this.connectionOf.set(m, connection);
      const id = m.id;
      switch (m.op) {
        case "configure":
          this.send(ws, { op: "configured", id, compression: m.compression ?? "lz4", batching: m.batching ?? true });
          break;
        case "subscribe": {
          const names = m.topics as string[];
          const unknown = names.filter((n) => !this.topics.some((t) => t.name === n));
          if (unknown.length > 0) {
            this.send(ws, { op: "status", level: "error", code: "unknown_topic", message: `unknown topic(s): ${unknown.join(", ")}`, id });
          } else {
            const reply = { op: "subscribed", id, subscriptions: names.map((n) => ({ topic: n, topic_id: this.topics.find((t) => t.name === n)!.id, encoding: m.encoding, max_rate_hz: m.max_rate_hz ?? null })) };
            setTimeout(() => this.send(ws, reply), this.subscribeReplyDelayMs);
          }
          break;
        }
        case "unsubscribe":
          this.send(ws, { op: "unsubscribed", id, topics: m.topics });
          break;
        case "ping":
          this.send(ws, { op: "pong", id, client_time_ns: m.client_time_ns, server_time_ns: this.serverTimeNs() });
          break;
        case "list_topics":
          this.send(ws, { op: "topics", id, topics: this.topics });
          break;
        case "stats": {
          const report = m.report;
          if (!this.statsSupported) {
            this.send(ws, { op: "status", level: "error", code: "unknown_op", message: "unknown op 'stats'", id });
          } else if (typeof report !== "object" || report === null || Array.isArray(report)) {
            this.send(ws, { op: "status", level: "error", code: "bad_request", message: "stats needs a 'report' object", id });
          } else if (pythonJsonLength(report) > this.statsMaxChars) {
            this.send(ws, { op: "status", level: "error", code: "bad_request", message: `stats report over ${this.statsMaxChars} bytes`, id });
          } else {
            this.send(ws, { op: "stats_ack", id });
          }
          break;
        }
        case "advertise": {
          const topic = m.topic as string;
          if (!globAny(this.permissions?.publish, topic)) {
            this.send(ws, { op: "status", level: "error", code: "not_allowed", message: `may not publish ${topic}`, id });
            break;
          }
          // Ids differ from one connection to the next, as a restarted bridge's would.
          const channelId = channels.get(topic) ?? connection * 100 + channels.size + 1;
          channels.set(topic, channelId);
          const qos = { reliability: "reliable", durability: "volatile", depth: 10, ...(m.qos as object | undefined) };
          this.send(ws, { op: "advertised", id, topic, type: m.type, channel_id: channelId, qos });
          break;
        }
        case "unadvertise":
          channels.delete(m.topic as string);
          this.send(ws, { op: "unadvertised", id, topic: m.topic });
          break;
        case "publish": {
          const topic = m.topic as string;
          if (!channels.has(topic)) {
            this.send(ws, { op: "status", level: "error", code: "not_advertised", message: `${topic} is not advertised`, id });
          } else if (this.publishError !== null) {
            this.send(ws, { op: "status", level: "error", ...this.publishError, id });
          } else {
            this.published.push({ connection, topic, msg: m.msg });
          }
          break;
        }
        case "call_service": {
          const service = m.service as string;
          const handler = this.services.get(service);
          if (!globAny(this.permissions?.call_service, service)) {
            // A refusal by the policy comes as a status; a failure of the call itself as a service_response.
            this.send(ws, { op: "status", level: "error", code: "not_allowed", message: `may not call ${service}`, id });
          } else if (handler === undefined) {
            this.send(ws, { op: "service_response", id, service, result: false, error: { code: "no_such_service", message: `no service ${service}` } });
          } else {
            const outcome = handler((m.args ?? {}) as Record<string, unknown>);
            this.send(ws, "values" in outcome
              ? { op: "service_response", id, service, result: true, values: outcome.values }
              : { op: "service_response", id, service, result: false, error: outcome.error });
          }
          break;
        }
        case "list_parameters":
        case "get_parameters":
        case "set_parameters": {
          const node = m.node as string;
          const params = this.parameters.get(node);
          if (params === undefined) {
            this.send(ws, { op: "status", level: "error", code: "no_such_node", message: `no node ${node}`, id });
          } else if (m.op === "list_parameters") {
            this.send(ws, { op: "parameter_names", id, node, names: [...params.keys()] });
          } else if (m.op === "get_parameters") {
            const names = (m.names as string[] | undefined)?.length ? (m.names as string[]) : [...params.keys()];
            this.send(ws, { op: "parameters", id, node, parameters: names.filter((n) => params.has(n)).map((n) => ({ name: n, ...params.get(n)! })) });
          } else {
            const wanted = m.parameters as { name: string; value: unknown }[];
            const refused = wanted.find((p) => !globAny(this.permissions?.set_parameters, `${node}:${p.name}`));
            if (refused !== undefined) {
              this.send(ws, { op: "status", level: "error", code: "not_allowed", message: `may not set ${node}:${refused.name}`, id });
              break;
            }
            const results = wanted.map((p) => {
              const current = params.get(p.name);
              if (current === undefined) return { name: p.name, successful: false, reason: "no such parameter" };
              if (typeof p.value !== typeof current.value) return { name: p.name, successful: false, reason: `expected ${current.type}` };
              current.value = p.value;
              return { name: p.name, successful: true, reason: "" };
            });
            this.send(ws, { op: "parameters_set", id, node, results });
          }
          break;
        }
        default:
          this.send(ws, { op: "status", level: "error", code: "unknown_op", message: "?", id });
      }
    });
  }

  /** A binary publish frame: opcode u8 (1) | encoding u8 (0 CDR, 1 msgpack) | channel_id u32 LE | message. */
  private onBinary(ws: WebSocket, connection: number, channels: Map<string, number>, frame: Uint8Array): void {
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    if (frame.length < 6 || view.getUint8(0) !== 1 || view.getUint8(1) > 1) {
      this.badBinaryFrames++;
      this.send(ws, { op: "status", level: "error", code: "bad_request", message: "bad binary frame", id: null });
      return;
    }
    const channelId = view.getUint32(2, true);
    if (![...channels.values()].includes(channelId)) {
      this.badBinaryFrames++;
      this.send(ws, { op: "status", level: "error", code: "not_advertised", message: `channel ${channelId} is not advertised`, id: null });
      return;
    }
    const encoding = view.getUint8(1);
    const payload = frame.slice(6);
    this.binaryPublished.push({ connection, channelId, encoding, payload, decoded: encoding === 1 ? decode(payload) : undefined });
  }

  send(ws: WebSocket, message: unknown): void {
    ws.send(JSON.stringify(message));
  }

  broadcast(message: unknown): void {
    for (const ws of this.sockets) this.send(ws, message);
  }

  sendFrame(records: RecordSpec[]): void {
    this.sendBytes(encodeFrame(records));
  }

  /** A binary frame as given (e.g. a golden one) to every connection. */
  sendBytes(frame: Uint8Array): void {
    for (const ws of this.sockets) ws.send(frame);
  }

  /** Cut every connection abruptly (as a lost Wi-Fi link would). */
  dropConnections(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  /** The requests of one op; of one connection (1, 2, ...) if given. */
  ops(op: string, connection?: number): Record<string, unknown>[] {
    return this.requests.filter((r) => r.op === op && (connection === undefined || this.connectionOf.get(r) === connection));
  }

  async stop(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Poll until `check` (possibly async) is truthy (generous deadline: tests never assert timings). */
export async function waitFor<T>(check: () => T | undefined | null | false | Promise<T | undefined | null | false>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
