/**
 * Whether the bridge lets this dashboard in, and the token of a kiosk's URL (no DOM here, so
 * the rules are unit-tested in test/unit/access.test.ts).
 *
 * A browser does not tell a page why a WebSocket handshake failed (an HTTP 401 and a bridge
 * that is down both look like close code 1006). The dashboard therefore asks the bridge's HTTP
 * API, which answers with the same policy as the handshake: `GET /api/performance/metrics`
 * gives 401 without a valid token, 403 for a refused Origin or Host, 200 otherwise. The login
 * cookie (HttpOnly, so the page never sees it) goes along with `credentials: "same-origin"`; a
 * token from the page's own `?token=` goes as `Authorization: Bearer`.
 *
 * The token of `?token=` is only kept in memory: it is added to the WebSocket URL (the bridge
 * reads `?token=` at the handshake) and never written to storage, the DOM or the log.
 */

export const TOKEN_PARAM = "token";
export const PROBE_PATH = "/api/performance/metrics";
export const LOGIN_PATH = "/login";

export type Access =
  /** The HTTP API answered: whatever stops the WebSocket, it is not the token. */
  | { kind: "ok" }
  /** 401 and no token was given (neither a cookie nor `?token=`). */
  | { kind: "needs-token"; reason: string }
  /** 401 for a token that was given: unknown or revoked. */
  | { kind: "bad-token"; reason: string }
  /** 403: Origin or Host refused; a token does not help. */
  | { kind: "forbidden"; reason: string }
  /** No answer (bridge down, network) or an unexpected one: nothing known. */
  | { kind: "unknown" };

/** `url` with `?token=` set (kept as given when there is no token). */
export function withToken(url: string, token: string | null): string {
  if (token === null || token === "") return url;
  const u = new URL(url);
  u.searchParams.set(TOKEN_PARAM, token);
  return u.href;
}

/** `url` without its token, for showing it. */
export function redactToken(url: string): string {
  return url.replace(/([?&])token=[^&#]*&?/g, "$1").replace(/[?&](?=#|$)/, "");
}

/** The bridge's HTTP address for its WebSocket URL (ws → http, wss → https), path "/". */
export function bridgeHttpOrigin(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  return u.origin;
}

/** Where the page links to log in: same-origin paths stay relative. */
export function loginHref(wsUrl: string, pageOrigin: string): string {
  const origin = bridgeHttpOrigin(wsUrl);
  return origin === pageOrigin ? LOGIN_PATH : `${origin}${LOGIN_PATH}`;
}

/** The reading of the probe's answer. `hadToken`: a token was sent (the page's `?token=`). */
export function classify(status: number, body: string, hadToken: boolean): Access {
  const reason = body.trim().split("\n", 1)[0]?.slice(0, 300) ?? "";
  if (status === 401) {
    // Without ?token=, a revoked or stale login cookie is the only token the bridge can have
    // seen: its answer then says "not valid" rather than "needs a token".
    return hadToken || /not valid/i.test(reason) ? { kind: "bad-token", reason } : { kind: "needs-token", reason };
  }
  if (status === 403) return { kind: "forbidden", reason };
  if (status >= 200 && status < 300) return { kind: "ok" };
  return { kind: "unknown" };
}

export type FetchLike = (url: string, init: RequestInit) => Promise<{ status: number; text: () => Promise<string> }>;

/** Ask the bridge whether this page may connect (never rejects). */
export async function probeAccess(fetchImpl: FetchLike, wsUrl: string, token: string | null, timeoutMs = 5000): Promise<Access> {
  const controller = typeof AbortController !== "undefined" ? new AbortController() : undefined;
  const timer = controller !== undefined ? setTimeout(() => controller.abort(), timeoutMs) : undefined;
  try {
    const headers: Record<string, string> = {};
    if (token !== null && token !== "") headers.Authorization = `Bearer ${token}`;
    const response = await fetchImpl(`${bridgeHttpOrigin(wsUrl)}${PROBE_PATH}`, {
      credentials: "same-origin", cache: "no-store", headers, signal: controller?.signal,
    });
    const body = response.status === 401 || response.status === 403 ? await response.text() : "";
    return classify(response.status, body, token !== null && token !== "");
  } catch {
    return { kind: "unknown" };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}
