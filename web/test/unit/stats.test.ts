// The `stats` report: its fields, the busiest topics only, and the bridge's size limit.
import { describe, expect, it } from "vitest";
import { ClientMetrics } from "../../src/metrics.js";
import { buildStatsReport, pythonJsonLength, STATS_MAX_CHARS, STATS_MAX_TOPICS } from "../../src/stats.js";

describe("pythonJsonLength", () => {
  it("is the length of Python's json.dumps (', ' and ': ', non-ASCII as \\uXXXX)", () => {
    // Expected lengths printed by Python's json.dumps for the same values.
    expect(pythonJsonLength({ a: 1, b: [1, 2, { c: "x, y: z" }], "é": 'ü"\\n' })).toBe(64);
    expect(pythonJsonLength({
      topics: { "/ça/va": { rate_hz: 12.5, latency_p95_ms: null, drops: 0 } },
      ua: "Mozilla/5.0 (X11; Linux x86_64) 😀",
    })).toBe(136);
    expect(pythonJsonLength([])).toBe(2);
    expect(pythonJsonLength({})).toBe(2);
    expect(pythonJsonLength("plain")).toBe(7);
  });
});

describe("buildStatsReport", () => {
  function metricsWith(topics: number, nameLength: number): ClientMetrics {
    const m = new ClientMetrics(50);
    const now = 1_700_000_000_000;
    for (let t = 0; t < topics; t++) {
      const name = `/t${String(t).padStart(2, "0")}`.padEnd(nameLength, "x");
      // Topic t gets t + 1 messages in the last second: /t29 is the busiest.
      for (let i = 0; i <= t; i++) m.record(name, i * 2, 10, 5 + t, now - 1000 + i);
    }
    return m;
  }

  it("gives the figures and the 20 busiest topics' rate, latency p95 and drops", () => {
    const m = metricsWith(30, 4);
    m.reconnects = 2;
    m.frameReceived(1234, 1_700_000_000_000 - 500);
    m.frameDecoded("lz4", 0.25);
    const report = buildStatsReport(m.snapshot(1_700_000_000_000, 12.3456, 0.5), 5000, "Mozilla/5.0 test");
    expect(report).toMatchObject({
      client: "rover-ws-bridge-client", interval_ms: 5000, user_agent: "Mozilla/5.0 test",
      messages: 465, frames: 1, bytes_received: 1234, reconnects: 2, clock_offset_ms: 12.346, rtt_ms: 0.5,
      decode_time_ms: { mean: 0.25, p95: 0.25 }, topic_count: 30, drops: 435,
    });
    expect(report.latency_ms).toMatchObject({ p50: 26, samples: 465 });
    expect(Object.keys(report.topics)).toHaveLength(STATS_MAX_TOPICS);
    expect(report.topics["/t29"]).toEqual({ rate_hz: 15, latency_p95_ms: 34, drops: 29 }) // 30 messages in the 2 s window;
    expect(report.topics["/t10"]).toBeDefined();
    expect(report.topics["/t09"]).toBeUndefined();
    expect(pythonJsonLength(report)).toBeLessThan(STATS_MAX_CHARS);
  });

  it("null where there is no sample yet, and no user agent unless given", () => {
    const report = buildStatsReport(new ClientMetrics().snapshot(0, 0, NaN), 1000, undefined);
    expect(report.latency_ms).toEqual({ p50: null, p95: null, p99: null, samples: 0 });
    expect(report.decode_time_ms).toEqual({ mean: null, p95: null });
    expect(report.rtt_ms).toBeNull();
    expect("user_agent" in report).toBe(false);
    expect(report.topics).toEqual({});
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });

  it("drops the least busy topics when long names would take it over the bridge's limit", () => {
    const report = buildStatsReport(metricsWith(30, 250).snapshot(1_700_000_000_000, 0, 1), 5000, "é".repeat(400));
    const names = Object.keys(report.topics);
    expect(names.length).toBeGreaterThan(5);
    expect(names.length).toBeLessThan(STATS_MAX_TOPICS);
    expect(names.map((n) => n.slice(0, 4))).toContain("/t29");
    expect(report.user_agent).toHaveLength(256);
    expect(pythonJsonLength(report)).toBeLessThanOrEqual(STATS_MAX_CHARS);
  });
});
