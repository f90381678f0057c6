/**
 * Client-side metrics: latency percentiles, rates, decode time, bytes, sequence gaps.
 *
 * Pure and bounded: every window is a fixed-size ring or a fixed set of time buckets, so a
 * client that runs for days at full rate holds the same few kilobytes.
 */

/** The last `capacity` samples of a value; percentiles computed on demand (a sorted copy). */
export class SampleWindow {
  private readonly samples: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(readonly capacity = 2048) {
    this.samples = new Float64Array(capacity);
  }

  add(value: number): void {
    this.samples[this.next] = value;
    this.next = (this.next + 1) % this.capacity;
    if (this.filled < this.capacity) this.filled++;
  }

  get count(): number {
    return this.filled;
  }

  clear(): void {
    this.next = 0;
    this.filled = 0;
  }

  /** Nearest-rank percentiles (p in 0..100) of the samples held; NaN when empty. */
  percentiles(ps: readonly number[]): number[] {
    if (this.filled === 0) return ps.map(() => NaN);
    const sorted = this.samples.slice(0, this.filled).sort();
    return ps.map((p) => {
      const rank = Math.ceil((p / 100) * sorted.length);
      return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
    });
  }

  mean(): number {
    if (this.filled === 0) return NaN;
    let sum = 0;
    for (let i = 0; i < this.filled; i++) sum += this.samples[i];
    return sum / this.filled;
  }
}

/** Events per second over a sliding window, counted in fixed time buckets. */
export class RateMeter {
  private readonly counts: Float64Array;
  private readonly stamps: Float64Array;
  private total = 0;

  /** `windowMs` split into `buckets` buckets: the rate moves in steps of windowMs / buckets. */
  constructor(readonly windowMs = 2000, readonly buckets = 20) {
    this.counts = new Float64Array(buckets);
    this.stamps = new Float64Array(buckets).fill(-Infinity);
  }

  private get bucketMs(): number {
    return this.windowMs / this.buckets;
  }

  add(amount: number, nowMs: number): void {
    const slot = Math.floor(nowMs / this.bucketMs);
    const index = slot % this.buckets;
    if (this.stamps[index] !== slot) {
      this.stamps[index] = slot;
      this.counts[index] = 0;
    }
    this.counts[index] += amount;
    this.total += amount;
  }

  /** Total added since creation. */
  get sum(): number {
    return this.total;
  }

  /** Per second, over the last full window (the current, partial bucket excluded). */
  rate(nowMs: number): number {
    const current = Math.floor(nowMs / this.bucketMs);
    let sum = 0;
    for (let i = 0; i < this.buckets; i++) {
      const age = current - this.stamps[i];
      if (age >= 1 && age <= this.buckets) sum += this.counts[i];
    }
    return sum / (this.windowMs / 1000);
  }
}

/**
 * Per-topic sequence tracking. The bridge numbers every message of a topic it receives
 * (u32, wrapping); a gap between two records a client gets means messages it did not get
 * (throttling, backpressure, or the bridge's input queue): counted as drops.
 */
export class SequenceTracker {
  private last: number | null = null;
  drops = 0;

  /** Returns how many messages were missed just before this one. */
  observe(sequence: number): number {
    const last = this.last;
    this.last = sequence;
    if (last === null) return 0;
    const gap = (sequence - last - 1) >>> 0;
    // A step back (or a huge jump) is a restart of the bridge or a reordering, not a loss.
    if (gap === 0 || gap >= 0x80000000) return 0;
    this.drops += gap;
    return gap;
  }

  /** Forget the last sequence (after a reconnection: the gap there is the outage, not drops). */
  reset(): void {
    this.last = null;
  }
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  /** How many samples the percentiles are computed from. */
  samples: number;
}

export interface TopicMetrics {
  topic: string;
  messages: number;
  /** msgs/s over the last ~2 s. */
  rate: number;
  bytes: number;
  latencyMs: Percentiles;
  drops: number;
  /** Client clock (ms since Unix epoch) of the last message, or null. */
  lastReceivedAtMs: number | null;
}

export interface ClientMetricsSnapshot {
  atMs: number;
  latencyMs: Percentiles;
  /** Records over the latency budget (`maxLatency`). */
  late: number;
  messages: number;
  messagesPerSecond: number;
  frames: number;
  /** Binary frames by the compression their body came with. */
  framesByCompression: { none: number; lz4: number; zlib: number };
  bytesReceived: number;
  bytesPerSecond: number;
  /** Time to decode a binary frame (header, decompression, records, data), in ms. */
  decodeTimeMs: { mean: number; p95: number; total: number };
  drops: number;
  frameErrors: number;
  clockOffsetMs: number;
  roundTripMs: number;
  reconnects: number;
  topics: Record<string, TopicMetrics>;
}

function percentiles(window: SampleWindow): Percentiles {
  const [p50, p95, p99] = window.percentiles([50, 95, 99]);
  return { p50, p95, p99, samples: window.count };
}

class TopicCounters {
  messages = 0;
  bytes = 0;
  readonly rate = new RateMeter();
  readonly latency = new SampleWindow(512);
  readonly sequence = new SequenceTracker();
  lastReceivedAtMs: number | null = null;
}

/** Everything the client counts; `snapshot()` gives a plain object for display or reporting. */
export class ClientMetrics {
  readonly latency = new SampleWindow(4096);
  readonly decodeTime = new SampleWindow(512);
  readonly messageRate = new RateMeter();
  readonly byteRate = new RateMeter();
  private readonly topics = new Map<string, TopicCounters>();
  frames = 0;
  framesByCompression = { none: 0, lz4: 0, zlib: 0 };
  frameErrors = 0;
  late = 0;
  reconnects = 0;
  decodeTimeTotalMs = 0;

  constructor(public maxLatencyMs = Infinity) {}

  frameReceived(bytes: number, nowMs: number): void {
    this.frames++;
    this.byteRate.add(bytes, nowMs);
  }

  frameDecoded(compression: "none" | "lz4" | "zlib", decodeMs: number): void {
    this.framesByCompression[compression]++;
    this.decodeTime.add(decodeMs);
    this.decodeTimeTotalMs += decodeMs;
  }

  private topic(name: string): TopicCounters {
    let counters = this.topics.get(name);
    if (counters === undefined) {
      counters = new TopicCounters();
      this.topics.set(name, counters);
    }
    return counters;
  }

  /** One record; returns the number of messages missed before it on its topic. */
  record(topic: string, sequence: number, bytes: number, latencyMs: number, nowMs: number): number {
    const counters = this.topic(topic);
    counters.messages++;
    counters.bytes += bytes;
    counters.rate.add(1, nowMs);
    counters.latency.add(latencyMs);
    counters.lastReceivedAtMs = nowMs;
    this.messageRate.add(1, nowMs);
    this.latency.add(latencyMs);
    if (latencyMs > this.maxLatencyMs) this.late++;
    return counters.sequence.observe(sequence);
  }

  /** After a reconnection: sequence gaps across the outage are not drops. */
  connectionRestarted(): void {
    for (const counters of this.topics.values()) counters.sequence.reset();
  }

  snapshot(nowMs: number, clockOffsetMs: number, roundTripMs: number): ClientMetricsSnapshot {
    const topics: Record<string, TopicMetrics> = {};
    let drops = 0;
    for (const [name, c] of this.topics) {
      drops += c.sequence.drops;
      topics[name] = {
        topic: name,
        messages: c.messages,
        rate: c.rate.rate(nowMs),
        bytes: c.bytes,
        latencyMs: percentiles(c.latency),
        drops: c.sequence.drops,
        lastReceivedAtMs: c.lastReceivedAtMs,
      };
    }
    const [decodeP95] = this.decodeTime.percentiles([95]);
    return {
      atMs: nowMs,
      latencyMs: percentiles(this.latency),
      late: this.late,
      messages: this.messageRate.sum,
      messagesPerSecond: this.messageRate.rate(nowMs),
      frames: this.frames,
      framesByCompression: { ...this.framesByCompression },
      bytesReceived: this.byteRate.sum,
      bytesPerSecond: this.byteRate.rate(nowMs),
      decodeTimeMs: { mean: this.decodeTime.mean(), p95: decodeP95, total: this.decodeTimeTotalMs },
      drops,
      frameErrors: this.frameErrors,
      clockOffsetMs,
      roundTripMs,
      reconnects: this.reconnects,
      topics,
    };
  }
}
