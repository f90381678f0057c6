// The Node.js client against the real bridge and the simulated rover (both started here).
// No timing is asserted: every wait has a generous deadline and checks what arrived.
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  OptimizedTelemetryClient,
  type ConnectionState,
  type TelemetryClientOptions,
  type TelemetryMessage,
  type WebSocketConstructor,
} from "../../src/index.js";
import { waitFor } from "../support/fake-bridge.js";
import { startBridge, type RunningBridge } from "../support/bridge.js";

let bridge: RunningBridge;
const clients: OptimizedTelemetryClient[] = [];

function connect(options: Partial<TelemetryClientOptions>): OptimizedTelemetryClient {
  const client = new OptimizedTelemetryClient({
    url: bridge.url, WebSocket: WebSocket as unknown as WebSocketConstructor, ...options,
  });
  clients.push(client);
  return client;
}

/** Collects what a client receives, per topic. */
function collect(client: OptimizedTelemetryClient): Map<string, TelemetryMessage[]> {
  const byTopic = new Map<string, TelemetryMessage[]>();
  client.onTelemetry((messages) => {
    for (const m of messages) {
      const list = byTopic.get(m.topic) ?? [];
      list.push(m);
      if (list.length > 2000) list.shift();
      byTopic.set(m.topic, list);
    }
  });
  return byTopic;
}

interface Vector3 { x: number; y: number; z: number }
interface Imu { header: { frame_id: string }; orientation: Vector3 & { w: number }; linear_acceleration: Vector3 }

beforeAll(async () => {
  bridge = await startBridge();
});

afterAll(async () => {
  for (const c of clients) c.close();
  if (bridge) await bridge.stop();
});

describe("Node.js client against the real bridge + simulated rover", () => {
  it("receives /imu with plausible values, in LZ4-compressed batches", async () => {
    const client = connect({
      topics: ["/imu", "/odom", "/joint_states"], enableCompression: true, enableBatching: true, maxLatency: 50,
    });
    const got = collect(client);
    await client.ready(30_000);
    // The simulator's topics show up once the bridge's graph scan finds them.
    await waitFor(() => (got.get("/imu")?.length ?? 0) >= 200 && got.has("/odom") && got.has("/joint_states"), "/imu, /odom and /joint_states data", 60_000);
    await waitFor(() => client.metrics().framesByCompression.lz4 > 0, "an LZ4-compressed frame", 60_000);

    const imu = got.get("/imu")!;
    for (const m of imu.slice(-50)) {
      const data = m.data as Imu;
      expect(data.header.frame_id).toBe("imu_link");
      expect(data.linear_acceleration.z).toBeGreaterThan(9.0); // gravity, plus noise
      expect(data.linear_acceleration.z).toBeLessThan(10.6);
      const q = data.orientation;
      expect(Math.hypot(q.x, q.y, q.z, q.w)).toBeCloseTo(1, 2);
      expect(m.priority).toBe(1); // NORMAL: best effort, small
      expect(m.encoding).toBe("msgpack");
      expect(Number.isFinite(m.latencyMs)).toBe(true);
    }
    // Sequence numbers only go up on a topic (gaps would be drops).
    const sequences = imu.map((m) => m.sequence);
    expect(sequences.every((s, i) => i === 0 || s > sequences[i - 1])).toBe(true);

    const metrics = client.metrics();
    expect(metrics.messages).toBeGreaterThan(200);
    expect(metrics.bytesReceived).toBeGreaterThan(0);
    expect(metrics.decodeTimeMs.mean).toBeGreaterThanOrEqual(0);
    expect(metrics.latencyMs.samples).toBeGreaterThan(0);
    expect(metrics.latencyMs.p50).toBeLessThanOrEqual(metrics.latencyMs.p99);
    expect(metrics.frameErrors).toBe(0);
    expect(metrics.topics["/imu"].messages).toBeGreaterThan(0);
    expect(client.clock.synced).toBe(true);
    // Both ends are on this machine: the estimated offset between their clocks is small.
    expect(Math.abs(metrics.clockOffsetMs)).toBeLessThan(1000);
  });

  it("decodes zlib frames, JSON text frames, CDR pass-through, latched CRITICAL data and camera bytes", async () => {
    const client = connect({ topics: ["/joint_states", "/odom"], enableCompression: "zlib" });
    const got = collect(client);
    await client.ready(30_000);
    await client.subscribe(["/gps/fix"], { encoding: "json" });
    await client.subscribe(["/estop"], { encoding: "cdr" });
    await client.subscribe(["/camera/image/compressed"], { maxRateHz: 5 });
    await waitFor(() => client.metrics().framesByCompression.zlib > 0, "a zlib-compressed frame", 60_000);
    await waitFor(() => got.has("/gps/fix") && got.has("/estop") && got.has("/camera/image/compressed"), "gps, estop and camera", 60_000);

    const gps = got.get("/gps/fix")![0];
    expect(gps.encoding).toBe("json");
    const fix = gps.data as { latitude: number; longitude: number };
    expect(Math.abs(fix.latitude)).toBeLessThanOrEqual(90);
    expect(Math.abs(fix.longitude)).toBeLessThanOrEqual(180);

    const estop = got.get("/estop")![0];
    expect(estop.encoding).toBe("cdr");
    expect(estop.priority).toBe(3); // CRITICAL: reliable + transient_local
    const cdr = estop.data as Uint8Array;
    expect(cdr).toBeInstanceOf(Uint8Array);
    expect(cdr.length).toBeGreaterThanOrEqual(5); // 4-byte encapsulation header, one bool (+ padding)
    expect([0, 1]).toContain(cdr[1]); // CDR_BE or CDR_LE
    expect([0, 1]).toContain(cdr[4]);

    const frame = got.get("/camera/image/compressed")![0].data as { format: string; data: Uint8Array };
    expect(frame.format).toBe("jpeg");
    expect(frame.data).toBeInstanceOf(Uint8Array);
    expect(frame.data.length).toBeGreaterThan(10_000);
    expect([frame.data[0], frame.data[1]]).toEqual([0xff, 0xd8]); // a JPEG start-of-image
  });

  it("reports its metrics with `stats`: the bridge shows them in /api/performance/connections", async () => {
    const client = connect({ topics: ["/imu", "/odom"], statsIntervalMs: 300 });
    const got = collect(client);
    await client.ready(30_000);
    await waitFor(() => (got.get("/imu")?.length ?? 0) >= 20 && client.clock.synced, "/imu data and a pong", 60_000);
    const sessionId = client.hello!.session_id;
    interface Connection { id: number; client_report: Record<string, unknown> | null }
    const report = async () => {
      const response = await fetch(`${bridge.httpUrl}api/performance/connections`);
      expect(response.status).toBe(200);
      const { connections } = (await response.json()) as { connections: Connection[] };
      const mine = connections.find((c) => c.id === sessionId);
      expect(mine).toBeDefined();
      return mine!.client_report;
    };
    // One interval after data arrived, the bridge holds a report that counts it.
    let shown: Record<string, unknown> | null = null;
    await waitFor(async () => {
      shown = await report();
      return shown !== null && (shown.messages as number) > 0;
    }, "the client's report in /api/performance/connections", 30_000);
    const r = shown! as Record<string, any>;
    expect(r.client).toBe("rover-ws-bridge-client");
    expect(r.interval_ms).toBe(300);
    expect(r.latency_ms.samples).toBeGreaterThan(0);
    expect(r.latency_ms.p50).toBeLessThanOrEqual(r.latency_ms.p99);
    expect(Math.abs(r.latency_ms.p50)).toBeLessThan(1000); // same machine: offset-corrected
    expect(r.messages_per_second).toBeGreaterThanOrEqual(0);
    expect(r.bytes_received).toBeGreaterThan(0);
    expect(r.decode_time_ms.mean).toBeGreaterThanOrEqual(0);
    expect(r.reconnects).toBe(0);
    expect(Math.abs(r.clock_offset_ms)).toBeLessThan(1000);
    expect(r.rtt_ms).toBeGreaterThanOrEqual(0);
    expect(r.user_agent).toBeUndefined();
    expect(r.topics["/imu"]).toMatchObject({ rate_hz: expect.any(Number), drops: expect.any(Number) });
    expect(typeof r.received_ns).toBe("number"); // stamped by the bridge
    // Reports keep coming: a later one replaces it.
    await waitFor(async () => ((await report())?.received_ns as number) > r.received_ns, "a newer report", 30_000);
  });

  it("reconnects when the bridge goes away and comes back, and subscribes again", async () => {
    const client = connect({ topics: ["/imu"], reconnect: { initialDelayMs: 100, maxDelayMs: 1000 } });
    const got = collect(client);
    const states: ConnectionState[] = [];
    client.on("state", (s) => states.push(s));
    await client.ready(30_000);
    await waitFor(() => got.get("/imu")?.length, "/imu data", 60_000);

    const port = bridge.port;
    await bridge.stop();
    await waitFor(() => client.state === "reconnecting", "the client to notice the outage");
    got.clear();
    bridge = await startBridge(port);
    await client.ready(60_000);
    await waitFor(() => got.get("/imu")?.length, "/imu data after the restart", 60_000);
    expect(states).toContain("reconnecting");
    expect(client.metrics().reconnects).toBeGreaterThan(0);
  });
});
