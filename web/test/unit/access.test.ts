// The dashboard's access rules (src/dashboard/access.ts): the kiosk token in the WebSocket URL,
// never in what is shown, and the reading of the HTTP probe that tells a 401 from a bridge
// that is down.
import { describe, expect, it } from "vitest";
import { bridgeHttpOrigin, classify, loginHref, probeAccess, redactToken, withToken, type FetchLike } from "../../src/dashboard/access.js";

describe("dashboard access", () => {
  it("adds the page's token to the WebSocket URL, and only then", () => {
    expect(withToken("ws://127.0.0.1:8000", null)).toBe("ws://127.0.0.1:8000");
    expect(withToken("ws://127.0.0.1:8000", "")).toBe("ws://127.0.0.1:8000");
    expect(withToken("ws://127.0.0.1:8000", "rwb_a-b_c")).toBe("ws://127.0.0.1:8000/?token=rwb_a-b_c");
    expect(withToken("wss://rover/x?a=1&token=old", "rwb_new")).toBe("wss://rover/x?a=1&token=rwb_new");
  });

  it("never shows a token", () => {
    expect(redactToken("ws://rover:8000")).toBe("ws://rover:8000");
    expect(redactToken("ws://rover:8000/?token=rwb_secret")).toBe("ws://rover:8000/");
    expect(redactToken("ws://rover:8000/?a=1&token=rwb_secret&b=2")).toBe("ws://rover:8000/?a=1&b=2");
    expect(redactToken("ws://rover:8000/?a=1&token=rwb_secret")).toBe("ws://rover:8000/?a=1");
  });

  it("finds the bridge's HTTP side and its login page", () => {
    expect(bridgeHttpOrigin("ws://127.0.0.1:8000/?token=x")).toBe("http://127.0.0.1:8000");
    expect(bridgeHttpOrigin("wss://rover.lan")).toBe("https://rover.lan");
    expect(loginHref("ws://127.0.0.1:8000", "http://127.0.0.1:8000")).toBe("/login");
    expect(loginHref("ws://rover:8000", "http://localhost:5173")).toBe("http://rover:8000/login");
  });

  it("reads the probe's answer", () => {
    const needs = "this bridge needs a token: send 'Authorization: Bearer <token>', add ?token=<token> to the URL, or log in at /login\n";
    const wrong = "the token is not valid (unknown or revoked)\n";
    expect(classify(401, needs, false)).toEqual({ kind: "needs-token", reason: needs.trim() });
    expect(classify(401, wrong, false).kind).toBe("bad-token"); // a stale login cookie
    expect(classify(401, needs, true).kind).toBe("bad-token"); // the page's ?token= was refused
    expect(classify(403, "Origin http://evil.example is not allowed\n", false)).toEqual({ kind: "forbidden", reason: "Origin http://evil.example is not allowed" });
    expect(classify(200, "", false)).toEqual({ kind: "ok" });
    expect(classify(404, "", false)).toEqual({ kind: "unknown" });
    expect(classify(500, "", false)).toEqual({ kind: "unknown" });
  });

  it("probes /api/performance/metrics with the cookie, and the page's token as a Bearer header", async () => {
    const calls: { url: string; init: RequestInit }[] = [];
    const answer = (status: number, body = ""): FetchLike => async (url, init) => {
      calls.push({ url, init });
      return { status, text: async () => body };
    };
    await expect(probeAccess(answer(401, "this bridge needs a token"), "ws://127.0.0.1:9/", null)).resolves.toMatchObject({ kind: "needs-token" });
    expect(calls[0].url).toBe("http://127.0.0.1:9/api/performance/metrics");
    expect(calls[0].init.credentials).toBe("same-origin");
    expect(calls[0].init.headers).toEqual({});
    await expect(probeAccess(answer(200), "ws://127.0.0.1:9/?token=rwb_t", "rwb_t")).resolves.toEqual({ kind: "ok" });
    expect(calls[1].init.headers).toEqual({ Authorization: "Bearer rwb_t" });
    const down: FetchLike = async () => { throw new TypeError("Failed to fetch"); };
    await expect(probeAccess(down, "ws://127.0.0.1:9/", null)).resolves.toEqual({ kind: "unknown" });
  });
});
