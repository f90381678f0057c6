/**
 * This dashboard's own link as the bridge sees it, for the header: estimated bandwidth, RTT,
 * bytes queued (the bridge's outbox + the kernel's send queue), and whether the link carries
 * what the page asks for (each topic's delivered rate against its published rate).
 *
 * Asked over the page's own WebSocket with the native `link` op (docs/PROTOCOL.md), not from
 * the HTTP API: the answer is this connection's figures only (a few hundred bytes, no id to
 * match, no token to pass, no HTTP connection or per-address request budget), and it goes out
 * in the connection's control queue, inside the link budget, instead of on a second TCP flow
 * that no priority applies to, in front of the e-stop, over the slow links this is about.
 */
import { bytes, fixed } from "./format.js";

/** How often the page asks: the bridge's per-topic rates change once a period (1 s) anyway. */
export const LINK_REFRESH_MS = 2000;
/** A topic gets less than this share of its published rate: the link cannot carry it. */
export const SHORTFALL_RATIO = 0.5;
/** Below this published rate a late or missing record is noise, not a shortfall. */
export const MIN_PUBLISHED_HZ = 1;

export interface LinkFigures {
  bandwidth_bytes_per_s: number | null;
  delivery_rate_bytes_per_s: number | null;
  min_rtt_ms: number | null;
  rtt_ms: number | null;
  kernel_queued_bytes: number | null;
  outbox_bytes: number | null;
}

export interface TopicRates {
  published_hz: number | null;
  delivered_hz: number;
}

export interface LinkAnswer {
  link: LinkFigures | null;
  topics: Record<string, TopicRates>;
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** The `link` answer's figures, each checked (null: not a `link` answer). */
export function parseLinkAnswer(answer: unknown): LinkAnswer | null {
  if (typeof answer !== "object" || answer === null || (answer as { op?: unknown }).op !== "link") return null;
  const { link, topics } = answer as { link?: Record<string, unknown> | null; topics?: Record<string, unknown> };
  const figures = typeof link === "object" && link !== null ? {
    bandwidth_bytes_per_s: num(link.bandwidth_bytes_per_s),
    delivery_rate_bytes_per_s: num(link.delivery_rate_bytes_per_s),
    min_rtt_ms: num(link.min_rtt_ms),
    rtt_ms: num(link.rtt_ms),
    kernel_queued_bytes: num(link.kernel_queued_bytes),
    outbox_bytes: num(link.outbox_bytes),
  } : null;
  const rates: Record<string, TopicRates> = {};
  if (typeof topics === "object" && topics !== null) {
    for (const [name, r] of Object.entries(topics)) {
      const delivered = num((r as { delivered_hz?: unknown } | null)?.delivered_hz);
      if (delivered !== null) rates[name] = { published_hz: num((r as { published_hz?: unknown }).published_hz), delivered_hz: delivered };
    }
  }
  return { link: figures, topics: rates };
}

/** Topics the link does not carry: delivered under SHORTFALL_RATIO of published, worst first. */
export function shortfalls(topics: Record<string, TopicRates>): { topic: string; published_hz: number; delivered_hz: number }[] {
  const out = [];
  for (const [topic, r] of Object.entries(topics)) {
    const published = r.published_hz;
    if (published === null || published < MIN_PUBLISHED_HZ) continue;
    if (r.delivered_hz < SHORTFALL_RATIO * published) out.push({ topic, published_hz: published, delivered_hz: r.delivered_hz });
  }
  return out.sort((a, b) => a.delivered_hz / a.published_hz - b.delivered_hz / b.published_hz);
}

export interface LinkView {
  /** Bytes/s shown (null: none), and whether it is only a lower bound. */
  bandwidth: number | null;
  atLeast: boolean;
  bandwidthText: string;
  rttMs: number | null;
  queuedBytes: number | null;
  queuedText: string;
  /** "ok", "short" (some topic is not carried), or "none" (no figures: no answer, not TCP). */
  state: "ok" | "short" | "none";
  stateText: string;
}

/** What the header shows of an answer. */
export function linkView(answer: LinkAnswer | null): LinkView {
  const link = answer?.link ?? null;
  if (link === null) {
    return { bandwidth: null, atLeast: false, bandwidthText: "–", rttMs: null, queuedBytes: null, queuedText: "–", state: "none", stateText: "link –" };
  }
  // The estimate is measured only while data waits for the link; a link that never was the
  // bottleneck (loopback, a quiet Wi-Fi) has none, and the kernel's delivery rate of an
  // application-limited sender is a lower bound of what it could carry.
  const measured = link.bandwidth_bytes_per_s;
  const bandwidth = measured ?? link.delivery_rate_bytes_per_s;
  const atLeast = measured === null && bandwidth !== null;
  const queued = link.outbox_bytes === null && link.kernel_queued_bytes === null ? null
    : (link.outbox_bytes ?? 0) + (link.kernel_queued_bytes ?? 0);
  const short = shortfalls(answer!.topics);
  const worst = short[0];
  return {
    bandwidth, atLeast,
    bandwidthText: bandwidth === null ? "measuring" : `${atLeast ? "≥ " : ""}${bytes(bandwidth)}/s`,
    rttMs: link.rtt_ms ?? link.min_rtt_ms,
    queuedBytes: queued,
    queuedText: queued === null ? "–" : bytes(queued),
    state: worst === undefined ? "ok" : "short",
    stateText: worst === undefined ? "link ok"
      : `link short · ${worst.topic} ${fixed(worst.delivered_hz)} of ${fixed(worst.published_hz)} Hz${short.length > 1 ? ` (+${short.length - 1})` : ""}`,
  };
}

/**
 * Asks while the connection is open: at once, then LINK_REFRESH_MS after each answer (never
 * two requests out at a time). A failed request (a timeout, a refusal) is asked again later.
 */
export class LinkWatch {
  latest: LinkAnswer | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private generation = 0;

  constructor(private readonly ask: () => Promise<unknown>, private readonly intervalMs = LINK_REFRESH_MS) {}

  start(): void {
    this.stop();
    this.askNow(this.generation);
  }

  /** The connection is gone: no figures (they were its), no more requests. */
  stop(): void {
    this.generation++;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.latest = null;
  }

  private askNow(generation: number): void {
    this.ask().then((answer) => {
      if (generation === this.generation) this.latest = parseLinkAnswer(answer);
    }, () => undefined).then(() => {
      if (generation === this.generation) this.timer = setTimeout(() => this.askNow(generation), this.intervalMs);
    }, () => undefined);
  }
}
