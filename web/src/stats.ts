/**
 * The report of the `stats` op (docs/PROTOCOL.md): the client's metrics, sent to the bridge every
 * `statsIntervalMs` and shown in its `GET /api/performance/connections` (`client_report`).
 *
 * Kept small: the bridge refuses a report whose JSON (as Python's `json.dumps` writes it) is over
 * 4096 characters, so per-topic figures are given for the busiest topics only, and fewer when
 * their names are long.
 */
import type { ClientMetricsSnapshot } from "./metrics.js";
import type { StatsReport, StatsTopicReport } from "./protocol.js";

/** The bridge's limit on a report (`MAX_STATS_BYTES`). */
export const STATS_MAX_CHARS = 4096;
/** What we aim under, leaving room for number formats that Python writes longer (1e-07). */
const STATS_BUDGET_CHARS = 3900;
/** Per-topic figures for at most this many topics (the highest message rates). */
export const STATS_MAX_TOPICS = 20;
const MAX_USER_AGENT = 256;

/** ms and rates to 3 decimals; NaN and infinities as null (JSON has neither). */
function num(value: number): number | null {
  return Number.isFinite(value) ? Math.round(value * 1000) / 1000 : null;
}

/** navigator.userAgent in a browser (or a worker); undefined on Node.js, which has one too (22+). */
export function browserUserAgent(): string | undefined {
  const g = globalThis as { navigator?: { userAgent?: unknown }; process?: { versions?: { node?: string } } };
  if (g.process?.versions?.node !== undefined) return undefined;
  const ua = g.navigator?.userAgent;
  return typeof ua === "string" && ua !== "" ? ua.slice(0, MAX_USER_AGENT) : undefined;
}

/**
 * The length of `json.dumps(value)` in Python, which is how the bridge measures a report: its
 * default separators are ", " and ": ", and it writes every non-ASCII character as \uXXXX.
 */
export function pythonJsonLength(value: unknown): number {
  const text = JSON.stringify(value) ?? "null";
  let length = text.length;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escape: the next character is part of it
      else if (c === 0x22) inString = false;
      else if (c > 0x7f) length += 5; // one UTF-16 unit -> \uXXXX
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x2c || c === 0x3a) {
      length++; // ", " and ": "
    }
  }
  return length;
}

/** The `stats` report of a metrics snapshot; at most STATS_MAX_TOPICS topics, under the size limit. */
export function buildStatsReport(m: ClientMetricsSnapshot, intervalMs: number, userAgent = browserUserAgent()): StatsReport {
  const busiest = Object.values(m.topics)
    .sort((a, b) => b.rate - a.rate || b.messages - a.messages || (a.topic < b.topic ? -1 : 1))
    .slice(0, STATS_MAX_TOPICS);
  const report: StatsReport = {
    client: "rover-ws-bridge-client",
    interval_ms: intervalMs,
    latency_ms: { p50: num(m.latencyMs.p50), p95: num(m.latencyMs.p95), p99: num(m.latencyMs.p99), samples: m.latencyMs.samples },
    messages: m.messages,
    messages_per_second: num(m.messagesPerSecond) ?? 0,
    frames: m.frames,
    bytes_received: m.bytesReceived,
    bytes_per_second: num(m.bytesPerSecond) ?? 0,
    decode_time_ms: { mean: num(m.decodeTimeMs.mean), p95: num(m.decodeTimeMs.p95) },
    drops: m.drops,
    late: m.late,
    frame_errors: m.frameErrors,
    reconnects: m.reconnects,
    clock_offset_ms: num(m.clockOffsetMs) ?? 0,
    rtt_ms: num(m.roundTripMs),
    ...(userAgent !== undefined ? { user_agent: userAgent.slice(0, MAX_USER_AGENT) } : {}),
    topic_count: Object.keys(m.topics).length,
    topics: {},
  };
  for (const t of busiest) {
    const entry: StatsTopicReport = { rate_hz: num(t.rate) ?? 0, latency_p95_ms: num(t.latencyMs.p95), drops: t.drops };
    report.topics[t.topic] = entry;
  }
  // Long topic names: give up the least busy ones until the report fits.
  let size = pythonJsonLength(report);
  for (let i = busiest.length - 1; i >= 0 && size > STATS_BUDGET_CHARS; i--) {
    delete report.topics[busiest[i].topic];
    size = pythonJsonLength(report);
  }
  return report;
}
