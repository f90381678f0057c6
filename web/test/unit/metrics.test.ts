import { describe, expect, it } from "vitest";
import { ClockSync, RateMeter, SampleWindow, SequenceTracker } from "../../src/index.js";

describe("SampleWindow", () => {
  it("gives nearest-rank percentiles of the last samples", () => {
    const w = new SampleWindow(100);
    for (let i = 1; i <= 100; i++) w.add(i);
    expect(w.percentiles([50, 95, 99, 100])).toEqual([50, 95, 99, 100]);
    for (let i = 0; i < 100; i++) w.add(1000); // the old samples age out
    expect(w.percentiles([50])).toEqual([1000]);
    expect(new SampleWindow().percentiles([50])[0]).toBeNaN();
  });
});

describe("RateMeter", () => {
  it("counts per second over its window, the current bucket excluded", () => {
    const r = new RateMeter(1000, 10);
    for (let t = 0; t < 1000; t += 10) r.add(1, t); // 100 events in 1 s
    expect(r.rate(1000)).toBe(100);
    expect(r.rate(5000)).toBe(0); // nothing recent
    expect(r.sum).toBe(100);
  });
});

describe("SequenceTracker", () => {
  it("counts gaps, across the u32 wrap, and not steps back", () => {
    const s = new SequenceTracker();
    expect(s.observe(0xfffffffe)).toBe(0);
    expect(s.observe(1)).toBe(2); // 0xffffffff and 0 missed
    expect(s.observe(1)).toBe(0); // a duplicate
    expect(s.observe(0)).toBe(0); // a step back: restart, not a loss
    s.reset();
    expect(s.observe(50)).toBe(0);
    expect(s.drops).toBe(2);
  });
});

describe("ClockSync", () => {
  it("keeps the offset of the fastest round trip", () => {
    const c = new ClockSync();
    expect(c.offsetMs).toBe(0);
    c.addHint(1000, 1500);
    expect(c.offsetMs).toBe(500);
    c.addRoundTrip(1000, 1100, 1250); // rtt 100: offset 200
    c.addRoundTrip(2000, 2010, 2105); // rtt 10: offset 100
    c.addRoundTrip(3000, 3200, 3500); // rtt 200
    expect(c.offsetMs).toBe(100);
    expect(c.roundTripMs).toBe(10);
  });
});
