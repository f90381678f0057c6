// The dashboard header's link figures (src/dashboard/link.ts): the `link` answer, the warning
// when a topic is not carried, and the asking (once at a time, every LINK_REFRESH_MS).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LINK_REFRESH_MS, LinkWatch, linkView, parseLinkAnswer, shortfalls } from "../../src/dashboard/link.js";

const link = {
  bandwidth_bytes_per_s: 250_000, delivery_rate_bytes_per_s: 900_000, min_rtt_ms: 42.5, rtt_ms: 50.25,
  budget_bytes: 23_125, kernel_queued_bytes: 9_216, outbox_bytes: 122_880, shed_for_link: 3,
};
const carried = { "/imu": { published_hz: 200, delivered_hz: 199.5 }, "/estop": { published_hz: 0, delivered_hz: 0 } };
const answer = (over: object = {}) => ({ op: "link", id: 4, link, topics: carried, ...over });

describe("link figures", () => {
  it("shows the estimate, the RTT and outbox + kernel bytes", () => {
    const view = linkView(parseLinkAnswer(answer()));
    expect(view).toMatchObject({
      bandwidth: 250_000, atLeast: false, bandwidthText: "244.1 KB/s", rttMs: 50.25,
      queuedBytes: 122_880 + 9_216, queuedText: "129.0 KB", state: "ok", stateText: "link ok",
    });
  });

  it("shows the kernel's delivery rate as a lower bound while nothing is measured (loopback)", () => {
    const view = linkView(parseLinkAnswer(answer({ link: { ...link, bandwidth_bytes_per_s: null } })));
    expect(view).toMatchObject({ bandwidth: 900_000, atLeast: true, bandwidthText: "≥ 878.9 KB/s" });
    const none = linkView(parseLinkAnswer(answer({ link: { ...link, bandwidth_bytes_per_s: null, delivery_rate_bytes_per_s: null } })));
    expect(none).toMatchObject({ bandwidth: null, bandwidthText: "measuring" });
  });

  it("warns when a topic gets under half its published rate, worst first", () => {
    const topics = {
      ...carried,
      "/odom": { published_hz: 100, delivered_hz: 40 },
      "/camera": { published_hz: 15, delivered_hz: 3 },
      "/gps": { published_hz: 0.5, delivered_hz: 0 }, // too slow to tell
      "/lidar": { published_hz: null, delivered_hz: 1 }, // no input rate yet
      "/joints": { published_hz: 100, delivered_hz: 50 }, // exactly half: carried
    };
    expect(shortfalls(topics).map((s) => s.topic)).toEqual(["/camera", "/odom"]);
    const view = linkView(parseLinkAnswer(answer({ topics })));
    expect(view.state).toBe("short");
    expect(view.stateText).toBe("link short · /camera 3.0 of 15.0 Hz (+1)");
  });

  it("has no figures without an estimate (not TCP), and takes no malformed answer", () => {
    expect(linkView(parseLinkAnswer(answer({ link: null })))).toMatchObject({ state: "none", bandwidthText: "–", queuedText: "–", rttMs: null });
    expect(parseLinkAnswer({ op: "stats_ack", id: 4 })).toBeNull();
    expect(linkView(null).state).toBe("none");
    const odd = parseLinkAnswer(answer({ link: { rtt_ms: "fast", outbox_bytes: 10 }, topics: { "/a": null, "/b": { delivered_hz: "x" } } }));
    expect(odd).toEqual({
      link: { bandwidth_bytes_per_s: null, delivery_rate_bytes_per_s: null, min_rtt_ms: null, rtt_ms: null, kernel_queued_bytes: null, outbox_bytes: 10 },
      topics: {},
    });
  });
});

describe("LinkWatch", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("asks at once, then once per interval after each answer; stopped, it forgets and asks no more", async () => {
    let asked = 0;
    let reply: (value: unknown) => void = () => undefined;
    const watch = new LinkWatch(() => {
      asked++;
      return new Promise((resolve) => { reply = resolve; });
    });
    watch.start();
    expect(asked).toBe(1);
    await vi.advanceTimersByTimeAsync(3 * LINK_REFRESH_MS);
    expect(asked).toBe(1); // the first answer has not come: no second request
    reply(answer());
    await vi.advanceTimersByTimeAsync(0);
    expect(watch.latest?.link?.rtt_ms).toBe(50.25);
    await vi.advanceTimersByTimeAsync(LINK_REFRESH_MS);
    expect(asked).toBe(2);
    watch.stop();
    reply(answer()); // the answer of the old connection comes late: ignored
    await vi.advanceTimersByTimeAsync(3 * LINK_REFRESH_MS);
    expect(watch.latest).toBeNull();
    expect(asked).toBe(2);
  });

  it("asks again after a failed request", async () => {
    let asked = 0;
    const watch = new LinkWatch(() => {
      asked++;
      return Promise.reject(new Error("timeout"));
    });
    watch.start();
    await vi.advanceTimersByTimeAsync(2 * LINK_REFRESH_MS);
    expect(asked).toBe(3);
    expect(watch.latest).toBeNull();
    watch.stop();
  });
});
