// The client's protocol logic against a scripted server: set-up, data, errors, reconnection.
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  BridgeError,
  OptimizedTelemetryClient,
  type StatsReport,
  type ConnectionState,
  type TelemetryClientOptions,
  type TelemetryMessage,
  type WebSocketConstructor,
} from "../../src/index.js";
import { FakeBridge, waitFor } from "../support/fake-bridge.js";

const golden = (name: string) => new Uint8Array(readFileSync(new URL(`../../../test/golden/${name}`, import.meta.url)));

let bridge: FakeBridge;
const clients: OptimizedTelemetryClient[] = [];

function client(options: Partial<TelemetryClientOptions> = {}): OptimizedTelemetryClient {
  const c = new OptimizedTelemetryClient({
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, ...options, url: options.url ?? bridge.url,
  });
  clients.push(c);
  return c;
}

beforeEach(async () => {
  bridge = await FakeBridge.start();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await bridge.stop();
});

const nowNs = () => BigInt(Date.now()) * 1_000_000n;

describe("OptimizedTelemetryClient", () => {
  it("configures, then subscribes the wanted topics that are offered, with the options mapped", async () => {
    const c = client({ topics: ["/imu", "/odom", "/not_there"], targetFrequency: 50, enableCompression: true, enableBatching: false });
    await c.ready(10_000);
    expect(bridge.ops("configure")).toEqual([expect.objectContaining({ compression: "lz4", batching: false })]);
    const [subscribe] = bridge.ops("subscribe");
    expect(subscribe).toMatchObject({ topics: ["/imu", "/odom"], encoding: "msgpack", max_rate_hz: 50 });
    expect(bridge.requests.indexOf(subscribe)).toBeGreaterThan(bridge.requests.indexOf(bridge.ops("configure")[0]));
    expect(c.subscriptions.sort()).toEqual(["/imu", "/odom"]);
    expect(c.hello?.server).toBe("fake");
    expect(c.topics.map((t) => t.name)).toEqual(["/imu", "/odom", "/estop"]);
  });

  it("enableCompression false asks for none; no option sends no configure", async () => {
    const a = client({ topics: ["/imu"], enableCompression: false });
    await a.ready(10_000);
    expect(bridge.ops("configure")).toEqual([expect.objectContaining({ compression: "none" })]);
    a.close();
    bridge.requests.length = 0;
    const b = client({ topics: ["/imu"] });
    await b.ready(10_000);
    expect(bridge.ops("configure")).toEqual([]);
  });

  it("delivers a frame's records to onTelemetry, with names, latency and the batch's oldest time", async () => {
    const c = client({ topics: ["*"] });
    const batches: { messages: TelemetryMessage[]; timestamp: number; latency: number }[] = [];
    c.onTelemetry((messages, timestamp, latency) => batches.push({ messages, timestamp, latency }));
    await c.ready(10_000);
    const t = nowNs();
    bridge.sendFrame([
      { timestampNs: t - 5_000_000n, topicId: 1, sequence: 1, priority: 1, data: { linear_acceleration: { x: 1, y: 2, z: 9.8 } } },
      { timestampNs: t, topicId: 3, sequence: 7, priority: 3, data: { data: true } },
    ]);
    const [batch] = await waitFor(() => batches.length > 0 && batches, "a batch");
    expect(batch.messages.map((m) => [m.topic, m.sequence, m.priority, m.encoding])).toEqual([
      ["/imu", 1, 1, "msgpack"], ["/estop", 7, 3, "msgpack"],
    ]);
    expect(batch.messages[0].data).toEqual({ linear_acceleration: { x: 1, y: 2, z: 9.8 } });
    expect(batch.messages[0].timestampNs).toBe(t - 5_000_000n);
    expect(batch.timestamp).toBe(Number(t - 5_000_000n) / 1e6);
    expect(batch.latency).toBeGreaterThanOrEqual(batch.messages[1].latencyMs);
    const metrics = c.metrics();
    expect(metrics.messages).toBe(2);
    expect(metrics.topics["/imu"].messages).toBe(1);
    expect(metrics.framesByCompression.none).toBe(1);
    expect(metrics.bytesReceived).toBeGreaterThan(0);
  });

  it("asks a bridge that offers chunks for them, and delivers a chunked record once, whole", async () => {
    bridge.chunks = true;
    const c = client({ topics: ["*"] });
    const messages: TelemetryMessage[] = [];
    c.onTelemetry((batch) => messages.push(...batch));
    await c.ready(10_000);
    expect(bridge.ops("configure")).toEqual([expect.objectContaining({ chunks: true })]);
    // A piece, a whole frame between (it goes at once), then the other pieces.
    for (const name of ["chunk_0.bin", "frame_none.bin", "chunk_1.bin", "chunk_2.bin"]) bridge.sendBytes(golden(name));
    await waitFor(() => messages.length >= 4, "four records");
    expect(messages.map((m) => [m.topicId, m.sequence])).toEqual([[7, 41], [3, 2], [3, 3], [9, 5]]);
    expect(messages[3].data).toEqual(new Uint8Array(Array.from({ length: 100 }, (_, i) => i)));
    expect(c.metrics().messages).toBe(4);

    bridge.requests.length = 0;
    const whole = client({ topics: ["*"], enableChunks: false });
    await whole.ready(10_000);
    expect(bridge.ops("configure")).toEqual([]);
  });

  it("drops the pieces of a record the bridge abandons (status chunk_abandoned)", async () => {
    bridge.chunks = true;
    const c = client({ topics: ["*"] });
    const messages: TelemetryMessage[] = [];
    c.onTelemetry((batch) => messages.push(...batch));
    await c.ready(10_000);
    bridge.sendBytes(golden("chunk_0.bin")); // the first 40 bytes of topic 9, sequence 5
    await waitFor(() => c.pendingChunkBytes === 40, "the first piece held");
    bridge.broadcast({ op: "status", level: "info", code: "chunk_abandoned", message: "stale", id: null,
      topic_id: 9, sequence: 5, sent_bytes: 40, data_size: 100 });
    await waitFor(() => c.statuses.some((s) => s.code === "chunk_abandoned"), "the status");
    expect(c.pendingChunkBytes).toBe(0);
    // The same record starts again from its first piece and comes whole: nothing stale was kept.
    for (const name of ["chunk_0.bin", "chunk_1.bin", "chunk_2.bin"]) bridge.sendBytes(golden(name));
    await waitFor(() => messages.length >= 1, "the record");
    expect(messages.map((m) => [m.topicId, m.sequence, (m.data as Uint8Array).length])).toEqual([[9, 5, 100]]);
  });

  it("counts sequence gaps per topic as drops", async () => {
    const c = client({ topics: ["/imu"] });
    await c.ready(10_000);
    const t = nowNs();
    for (const sequence of [10, 11, 14, 15, 20]) {
      bridge.sendFrame([{ timestampNs: t, topicId: 1, sequence, priority: 1, data: {} }]);
    }
    await waitFor(() => c.metrics().topics["/imu"]?.messages === 5, "5 messages");
    expect(c.metrics().topics["/imu"].drops).toBe(2 + 4);
    expect(c.metrics().drops).toBe(6);
  });

  it("decodes JSON `messages` frames", async () => {
    const c = client({ topics: ["/imu"], encoding: "json" });
    const got: TelemetryMessage[] = [];
    c.onTelemetry((m) => got.push(...m));
    await c.ready(10_000);
    expect(bridge.ops("subscribe")[0].encoding).toBe("json");
    bridge.broadcast({ op: "messages", messages: [{ topic: "/imu", topic_id: 1, timestamp_ns: 1700000000005000000, sequence: 3, priority: "NORMAL", data: { a: 1 } }] });
    await waitFor(() => got.length === 1, "a JSON message");
    expect(got[0]).toMatchObject({ topic: "/imu", sequence: 3, priority: 1, encoding: "json", data: { a: 1 } });
  });

  it("keeps backpressure status and reports it", async () => {
    const c = client({ topics: ["/imu"] });
    const seen: string[] = [];
    c.on("backpressure", (info) => seen.push(info.state));
    await c.ready(10_000);
    bridge.broadcast({ op: "status", level: "warning", code: "backpressure", message: "ok -> warning", id: null,
      backpressure: { state: "warning", utilization: 0.8, dropped: 0, conflated: 12 } });
    await waitFor(() => seen.length === 1, "a backpressure event");
    expect(c.backpressure).toEqual({ state: "warning", utilization: 0.8, dropped: 0, conflated: 12 });
    expect(c.statuses.at(-1)?.code).toBe("backpressure");
  });

  it("rejects a failed request with the server's code", async () => {
    const c = client();
    await c.ready(10_000);
    await expect(c.request({ op: "subscribe", topics: ["/nope"] })).rejects.toThrow(BridgeError);
    await expect(c.request({ op: "subscribe", topics: ["/nope"] })).rejects.toMatchObject({ code: "unknown_topic" });
  });

  it("estimates the server's clock offset from ping round trips", async () => {
    bridge.clockSkewMs = 5_000;
    const c = client();
    await c.ready(10_000);
    await waitFor(() => c.clock.synced && bridge.ops("ping").length >= 2, "clock sync");
    expect(Math.abs(c.clock.offsetMs - 5_000)).toBeLessThan(500);
    expect(c.clock.roundTripMs).toBeGreaterThanOrEqual(0);
  });

  it("subscribes a wanted topic when it appears, and '*' picks up new topics", async () => {
    const c = client({ topics: ["*"] });
    await c.ready(10_000);
    bridge.topics.push({ id: 9, name: "/gps/fix", type: "sensor_msgs/msg/NavSatFix", priority: "NORMAL", transient_local: false });
    bridge.broadcast({ op: "topics_update", added: [bridge.topics.at(-1)], changed: [], removed: [] });
    await waitFor(() => bridge.ops("subscribe").some((s) => (s.topics as string[]).includes("/gps/fix")), "subscribe /gps/fix");
    expect(c.subscriptions).toContain("/gps/fix");
    await c.unsubscribe("/imu");
    expect(bridge.ops("unsubscribe")).toEqual([expect.objectContaining({ topics: ["/imu"] })]);
    expect(c.subscriptions).not.toContain("/imu");
  });

  it("subscribes a topic that appears while the first subscribe is still unanswered", async () => {
    bridge.subscribeReplyDelayMs = 300;
    const c = client({ topics: ["*"] });
    await waitFor(() => bridge.ops("subscribe").length === 1, "the first subscribe");
    bridge.topics.push({ id: 9, name: "/gps/fix", type: "sensor_msgs/msg/NavSatFix", priority: "NORMAL", transient_local: false });
    bridge.broadcast({ op: "topics_update", added: [bridge.topics.at(-1)], changed: [], removed: [] });
    await c.ready(10_000);
    await waitFor(() => bridge.ops("subscribe").some((s) => (s.topics as string[]).includes("/gps/fix")), "subscribe /gps/fix");
    expect(c.wants("/gps/fix")).toBe(true);
    expect(bridge.ops("subscribe").flatMap((s) => s.topics as string[]).sort()).toEqual(["/estop", "/gps/fix", "/imu", "/odom"]);
  });

  it("reconnects with backoff after the link drops, and subscribes again", async () => {
    const c = client({ topics: ["/imu", "/odom"], enableCompression: "zlib" });
    const states: ConnectionState[] = [];
    c.on("state", (s) => states.push(s));
    await c.ready(10_000);
    bridge.requests.length = 0;
    bridge.dropConnections();
    await waitFor(() => states.includes("reconnecting"), "reconnecting");
    await waitFor(() => c.state === "open" && bridge.connections === 2, "open again");
    expect(bridge.ops("configure")).toEqual([expect.objectContaining({ compression: "zlib" })]);
    expect(bridge.ops("subscribe")[0].topics).toEqual(["/imu", "/odom"]);
    expect(c.metrics().reconnects).toBe(1);
  });

  it("keeps retrying while the server is down, then connects", async () => {
    const port = bridge.port;
    await bridge.stop();
    const c = client({ url: `ws://127.0.0.1:${port}`, topics: ["/imu"] });
    const retries: number[] = [];
    c.on("state", (s, d) => { if (s === "reconnecting" && d.retryInMs !== undefined) retries.push(d.retryInMs); });
    await waitFor(() => retries.length >= 3, "three retries");
    expect(retries[2]).toBeGreaterThan(retries[0]); // exponential (jitter takes at most 20 %)
    bridge = await FakeBridge.start(port);
    await c.ready(20_000);
    expect(bridge.ops("subscribe")[0].topics).toEqual(["/imu"]);
  });

  it("close() stops for good", async () => {
    const c = client({ topics: ["/imu"] });
    await c.ready(10_000);
    c.close();
    expect(c.state).toBe("closed");
    await new Promise((r) => setTimeout(r, 200));
    expect(bridge.connections).toBe(1);
    await expect(c.ready()).rejects.toThrow(/closed/);
  });

  it("reports its metrics with `stats` every statsIntervalMs while connected", async () => {
    bridge.clockSkewMs = 2_000;
    const c = client({ topics: ["/imu", "/odom"], statsIntervalMs: 100, maxLatency: 1 });
    await c.ready(10_000);
    const t = nowNs() + 2_000_000_000n - 3_000_000n; // 3 ms old on the server's clock
    for (const sequence of [1, 2, 5]) {
      bridge.sendFrame([
        { timestampNs: t, topicId: 1, sequence, priority: 1, data: { a: sequence } },
        { timestampNs: t, topicId: 2, sequence, priority: 2, data: {} },
      ]);
    }
    await waitFor(() => c.metrics().messages === 6 && c.clock.synced, "6 messages and a pong");
    const sentAfter = bridge.ops("stats").length;
    await waitFor(() => bridge.ops("stats").length >= sentAfter + 2, "two more reports");
    const report = bridge.ops("stats").at(-1)!.report as StatsReport;
    expect(typeof bridge.ops("stats").at(-1)!.id).toBe("number");
    expect(report).toMatchObject({
      client: "rover-ws-bridge-client", interval_ms: 100, messages: 6, frames: expect.any(Number),
      drops: 4, reconnects: 0, frame_errors: 0, topic_count: 2,
    });
    expect(report.user_agent).toBeUndefined(); // Node.js, not a browser
    expect(report.latency_ms.samples).toBe(6);
    // The offset is applied: ~3 ms, not ~2 s.
    expect(report.latency_ms.p50).toBeGreaterThan(0);
    expect(report.latency_ms.p50).toBeLessThan(1_000);
    expect(report.latency_ms.p95).toBeGreaterThanOrEqual(report.latency_ms.p50!);
    expect(report.latency_ms.p99).toBeGreaterThanOrEqual(report.latency_ms.p95!);
    expect(report.late).toBe(6);
    expect(report.bytes_received).toBeLessThanOrEqual(c.metrics().bytesReceived); // pongs and acks since
    expect(report.bytes_received).toBeGreaterThan(0);
    expect(report.decode_time_ms.mean).toBeGreaterThanOrEqual(0);
    expect(Math.abs(report.clock_offset_ms - 2_000)).toBeLessThan(500);
    expect(report.rtt_ms).toBeGreaterThanOrEqual(0);
    expect(Object.keys(report.topics).sort()).toEqual(["/imu", "/odom"]);
    expect(report.topics["/imu"]).toEqual({ rate_hz: expect.any(Number), latency_p95_ms: expect.any(Number), drops: 2 });
    // Every report was acknowledged: no errors came back.
    expect(c.statuses.filter((s) => s.level === "error")).toEqual([]);
  });

  it("sends no report while disconnected, and reports again once reconnected", async () => {
    const c = client({ topics: ["/imu"], statsIntervalMs: 50, reconnect: { initialDelayMs: 400, maxDelayMs: 400, jitter: 0 } });
    await c.ready(10_000);
    await waitFor(() => bridge.ops("stats", 1).length >= 2, "reports on the first connection");
    const calls: string[] = [];
    const request = c.request.bind(c);
    vi.spyOn(c, "request").mockImplementation((message, timeoutMs) => {
      if (message.op === "stats") calls.push(c.state);
      return request(message, timeoutMs);
    });
    bridge.dropConnections();
    await waitFor(() => c.state === "reconnecting", "reconnecting");
    await new Promise((r) => setTimeout(r, 250)); // five intervals without a connection
    expect(calls.filter((s) => s !== "open")).toEqual([]);
    await waitFor(() => bridge.ops("stats", 2).length >= 1, "a report on the second connection");
    expect(calls.every((s) => s === "open")).toBe(true);
    expect((bridge.ops("stats", 2).at(-1)!.report as StatsReport).reconnects).toBe(1);
    c.close();
    const count = bridge.ops("stats").length;
    await new Promise((r) => setTimeout(r, 200));
    expect(bridge.ops("stats").length).toBe(count);
  });

  it("statsIntervalMs 0 sends no report; a bridge without the op gets one per connection", async () => {
    const quiet = client({ topics: ["/imu"], statsIntervalMs: 0 });
    await quiet.ready(10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(bridge.ops("stats")).toEqual([]);
    quiet.close();

    bridge.statsSupported = false;
    const errors: Error[] = [];
    const c = client({ topics: ["/imu"], statsIntervalMs: 50 });
    c.on("error", (e) => errors.push(e));
    await c.ready(10_000);
    await waitFor(() => bridge.ops("stats").length === 1, "one report");
    await new Promise((r) => setTimeout(r, 300));
    expect(bridge.ops("stats")).toHaveLength(1);
    expect(errors).toEqual([]);
    expect(c.state).toBe("open");
  });

  it("a refused report comes out as an error event, and reporting goes on", async () => {
    bridge.statsMaxChars = 10;
    const errors: Error[] = [];
    const c = client({ topics: ["/imu"], statsIntervalMs: 50 });
    c.on("error", (e) => errors.push(e));
    await c.ready(10_000);
    await waitFor(() => errors.length >= 2, "two refusals");
    expect(errors[0]).toBeInstanceOf(BridgeError);
    expect(errors[0]).toMatchObject({ code: "bad_request" });
    await expect(c.sendStats()).rejects.toMatchObject({ code: "bad_request" });
    bridge.statsMaxChars = 4096;
    await c.sendStats();
  });
});
