// The dashboard header's link figures: this connection's entry of /api/performance/connections.
import { describe, expect, it } from "vitest";
import { fetchOwnLink, linkText, ownLink } from "../../src/dashboard/link.js";

const figures = {
  bandwidth_bytes_per_s: 250_000, min_rtt_ms: 42.5, rtt_ms: 50, budget_bytes: 23_125,
  kernel_queued_bytes: 9_216, outbox_bytes: 122_880, shed_for_link: 3,
};
const answer = { connections: [{ id: 3, link: null }, { id: 7, link: figures }] };

describe("dashboard link figures", () => {
  it("picks this connection's entry, by session id", () => {
    expect(ownLink(answer, 7)).toEqual(figures);
    expect(ownLink(answer, 3)).toBeNull(); // no estimate (not TCP)
    expect(ownLink(answer, 9)).toBeNull(); // not listed
  });

  it("says it on one line, and says when the bandwidth is not measured yet", () => {
    expect(linkText(figures)).toBe("244.1 KB/s · rtt 42.5 ms · queued 120.0 KB + 9.0 KB");
    expect(linkText({ ...figures, bandwidth_bytes_per_s: null })).toMatch(/^measuring · rtt 42.5 ms/);
    expect(linkText(null)).toBe("–");
  });

  it("asks the bridge's HTTP origin with the page's token, and never rejects", async () => {
    const asked: { url: string; auth?: string }[] = [];
    const fetchImpl = async (url: string, init: RequestInit) => {
      asked.push({ url, auth: (init.headers as Record<string, string>).Authorization });
      return { status: 200, text: async () => JSON.stringify(answer) };
    };
    expect(await fetchOwnLink(fetchImpl, "wss://rover:9090/", "t0k", 7)).toEqual(figures);
    expect(asked).toEqual([{ url: "https://rover:9090/api/performance/connections", auth: "Bearer t0k" }]);
    const refused = async () => ({ status: 401, text: async () => "no" });
    expect(await fetchOwnLink(refused, "ws://rover:9090/", null, 7)).toBeNull();
    const broken = async () => { throw new Error("network"); };
    expect(await fetchOwnLink(broken, "ws://rover:9090/", null, 7)).toBeNull();
  });
});
