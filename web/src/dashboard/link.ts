/**
 * This dashboard's own link, as the bridge estimates it (streaming/link.py): bandwidth, RTT
 * and what waits for it in the outbox and in the kernel, read from the bridge's
 * `GET /api/performance/connections` (the entry whose `id` is this connection's
 * `hello.session_id`), for the header.
 */
import { bridgeHttpOrigin, type FetchLike } from "./access.js";
import { bytes, fixed } from "./format.js";

export const CONNECTIONS_PATH = "/api/performance/connections";

export interface LinkFigures {
  bandwidth_bytes_per_s: number | null;
  min_rtt_ms: number | null;
  budget_bytes: number | null;
  kernel_queued_bytes: number | null;
  outbox_bytes: number;
  shed_for_link: number;
}

/** Our connection's link figures in an answer of /api/performance/connections; null: none. */
export function ownLink(answer: unknown, sessionId: number): LinkFigures | null {
  const connections = (answer as { connections?: { id: number; link?: LinkFigures | null }[] }).connections;
  return connections?.find((c) => c.id === sessionId)?.link ?? null;
}

/** One line: "250 kB/s · rtt 42.5 ms · queued 120 kB + 9.0 kB". */
export function linkText(link: LinkFigures | null): string {
  if (link === null) return "–";
  const bandwidth = link.bandwidth_bytes_per_s === null ? "measuring" : `${bytes(link.bandwidth_bytes_per_s)}/s`;
  const rtt = link.min_rtt_ms === null ? "–" : fixed(link.min_rtt_ms, 1);
  return `${bandwidth} · rtt ${rtt} ms · queued ${bytes(link.outbox_bytes)} + ${bytes(link.kernel_queued_bytes ?? 0)}`;
}

/** Ask the bridge (never rejects: null when it cannot say). */
export async function fetchOwnLink(fetchImpl: FetchLike, wsUrl: string, token: string | null,
  sessionId: number): Promise<LinkFigures | null> {
  try {
    const headers: Record<string, string> = {};
    if (token !== null && token !== "") headers.Authorization = `Bearer ${token}`;
    const response = await fetchImpl(`${bridgeHttpOrigin(wsUrl)}${CONNECTIONS_PATH}`, {
      credentials: "same-origin", cache: "no-store", headers,
    });
    if (response.status !== 200) return null;
    return ownLink(JSON.parse(await response.text()), sessionId);
  } catch {
    return null;
  }
}
