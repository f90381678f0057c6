// The client's protocol logic against a scripted server: set-up, data, errors, reconnection.
import WebSocket from "ws";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  BridgeError,
  OptimizedTelemetryClient,
  type ConnectionState,
  type TelemetryClientOptions,
  type TelemetryMessage,
  type WebSocketConstructor,
} from "../../src/index.js";
import { FakeBridge, waitFor } from "../support/fake-bridge.js";

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
});
