/**
 * Clock synchronisation from ping/pong round trips (NTP's estimate, min-RTT filtered).
 *
 * For a ping sent at client time t0 and answered at t1 by a pong carrying the server's time s:
 * offset = s - (t0 + t1) / 2, assuming symmetric paths. The error of one sample is at most
 * RTT / 2, so the sample with the smallest RTT among the recent ones is kept: on a Wi-Fi link
 * RTTs vary a lot and the fastest round trip is the most trustworthy.
 */

/** The client's clock in ms since the Unix epoch, with sub-ms resolution where available. */
export function nowMs(): number {
  const perf = (globalThis as { performance?: { timeOrigin?: number; now(): number } }).performance;
  if (perf !== undefined && typeof perf.timeOrigin === "number") return perf.timeOrigin + perf.now();
  return Date.now();
}

interface Sample {
  offsetMs: number;
  rttMs: number;
}

export class ClockSync {
  private samples: Sample[] = [];
  private coarse: number | null = null;

  constructor(readonly keep = 8) {}

  /** A pong: t0/t1 on the client's clock (ms), serverMs the server's time (ms). */
  addRoundTrip(t0: number, t1: number, serverMs: number): void {
    if (!(t1 >= t0)) return;
    this.samples.push({ offsetMs: serverMs - (t0 + t1) / 2, rttMs: t1 - t0 });
    if (this.samples.length > this.keep) this.samples.shift();
  }

  /** A one-way hint (e.g. the server time in `hello`), used only until a round trip is known. */
  addHint(receivedAtMs: number, serverMs: number): void {
    this.coarse = serverMs - receivedAtMs;
  }

  private best(): Sample | null {
    let best: Sample | null = null;
    for (const s of this.samples) if (best === null || s.rttMs < best.rttMs) best = s;
    return best;
  }

  /** Server clock minus client clock, in ms (0 until anything is known). */
  get offsetMs(): number {
    return this.best()?.offsetMs ?? this.coarse ?? 0;
  }

  /** RTT of the sample in use, NaN if none. */
  get roundTripMs(): number {
    return this.best()?.rttMs ?? NaN;
  }

  get synced(): boolean {
    return this.samples.length > 0;
  }

  reset(): void {
    this.samples = [];
    this.coarse = null;
  }
}
