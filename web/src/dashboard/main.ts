/**
 * The live dashboard the bridge serves at `/`: it connects back to the host and port it was
 * loaded from (`?url=ws://host:port` overrides, e.g. under `npm run dev`).
 *
 * Messages only update state (latest message per topic, chart arrays, the camera's latest
 * frame); drawing happens in one requestAnimationFrame loop, so the page costs the same at
 * 10 or 1000 messages/s. Tables and figures refresh 4 times a second.
 *
 * Controls (a teleop pad for /cmd_vel, e-stop buttons) show only when the bridge's `hello`
 * allows this connection to publish or call them.
 *
 * A bridge with a token file refuses the handshake without a token: when the link cannot be
 * made, the page asks the HTTP API why (access.ts) and, for a 401, shows a notice with a link to
 * the bridge's /login, while the client keeps retrying (a login in another tab then lets it
 * in). `?token=` in the page's URL (kiosks) goes on to the WebSocket URL, in memory only.
 */
import { OptimizedTelemetryClient, type ConnectionState, type StateDetail, type TelemetryMessage, type TopicInfo } from "../index.js";
import type { BackpressureInfo } from "../protocol.js";
import { CameraView } from "./camera.js";
import { TopicChart } from "./chart.js";
import { loginHref, probeAccess, redactToken, TOKEN_PARAM, withToken, type Access } from "./access.js";
import { EstopControl, ESTOP_SERVICE, ESTOP_TOPIC } from "./estop.js";
import { numericPaths } from "./fields.js";
import { LinkWatch, linkView } from "./link.js";
import { bytes, el, fixed, setText, value } from "./format.js";
import { CMD_VEL_TOPIC, TeleopDrive, TeleopPad, TWIST_TYPE } from "./teleop.js";
import "./style.css";

const TEXT_REFRESH_MS = 250;
const STORAGE_KEY = "rover_ws_bridge.dashboard.plots";
const DEFAULT_PLOTS: Record<string, string[]> = {
  "/imu": ["linear_acceleration.x", "linear_acceleration.y", "linear_acceleration.z"],
  "/odom": ["twist.twist.linear.x", "twist.twist.angular.z"],
};
const IMAGE_TYPE = "sensor_msgs/msg/CompressedImage";
const PRIORITY_ORDER = { CRITICAL: 0, HIGH: 1, NORMAL: 2, LOW: 3 } as const;
/** The node whose max_speed_mps parameter bounds the teleop pad (the simulated rover). */
const ROVER_NODE = "/rover_sim";
const MAX_SPEED_PARAMETER = "max_speed_mps";
const MAX_SPEED_RETRY_MS = 3000;
const MAX_SPEED_ATTEMPTS = 20;

const params = new URLSearchParams(location.search);
const url = params.get("url") ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
/** A kiosk's token (`?token=`): only in memory, and in the WebSocket URL. */
const pageToken = params.get(TOKEN_PARAM);
/** What the page shows of the bridge's address: never a token. */
const shownUrl = redactToken(url);

// -- state ---------------------------------------------------------------------------------------

const client = new OptimizedTelemetryClient({
  url: withToken(url, pageToken), topics: ["*"], enableCompression: true, enableBatching: true, maxLatency: 100,
});
const latest = new Map<string, TelemetryMessage>();
const charts = new Map<string, TopicChart>();
const camera = new CameraView();
const drive = new TeleopDrive({
  advertise: () => client.advertise(CMD_VEL_TOPIC, TWIST_TYPE),
  publish: (message) => client.publish(CMD_VEL_TOPIC, message),
});
const teleop = new TeleopPad(drive);
const estop = new EstopControl((data) => client.callService(ESTOP_SERVICE, { data }, { type: "std_srvs/srv/SetBool" }));
let selectedTopic = "/imu";
let connection: { state: ConnectionState; detail: StateDetail; since: number; retryAt: number | null } = {
  state: "connecting", detail: {}, since: Date.now(), retryAt: null,
};
let backpressure: BackpressureInfo | null = null;
/** This connection's link figures, asked from the bridge over the WebSocket (link.ts). */
const link = new LinkWatch(() => client.request({ op: "link" }));

function loadPlots(): Record<string, string[]> {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null") as Record<string, string[]> | null;
    if (saved !== null && typeof saved === "object") return saved;
  } catch {
    // private mode or a corrupt entry: defaults
  }
  return DEFAULT_PLOTS;
}

function savePlots(): void {
  const plots: Record<string, string[]> = {};
  for (const [topic, chart] of charts) plots[topic] = chart.paths;
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(plots));
  } catch {
    // not persisted: fine
  }
}

// -- layout ----------------------------------------------------------------------------------------

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

document.querySelector("#app")!.innerHTML = `
<header class="top">
  <div class="brand"><span class="logo">◢◤</span> rover telemetry <span class="server" id="server"></span></div>
  <div class="pill" id="conn" data-testid="connection-state">connecting</div>
  <div class="pill estop" id="estop" data-testid="estop" hidden></div>
  <div class="pill" id="backpressure" data-testid="backpressure" title="the bridge's outbox for this dashboard">backpressure ok</div>
  <div class="pill" id="link-state" data-testid="link-state" title="whether the link carries every topic: delivered at least half of the published rate">link –</div>
  <dl class="figures">
    <div><dt>latency p50 / p95 / p99</dt><dd><span id="p50" data-testid="latency-p50">–</span> / <span id="p95" data-testid="latency-p95">–</span> / <span id="p99" data-testid="latency-p99">–</span> ms</dd></div>
    <div><dt>messages</dt><dd><span id="rate" data-testid="message-rate">–</span>/s</dd></div>
    <div><dt>received</dt><dd><span id="bytes">–</span> · <span id="bps">–</span>/s</dd></div>
    <div><dt>decode</dt><dd><span id="decode">–</span> ms/frame</dd></div>
    <div><dt>clock offset · rtt</dt><dd><span id="offset">–</span> · <span id="rtt">–</span> ms</dd></div>
    <div><dt>drops</dt><dd id="drops" data-testid="drops">0</dd></div>
    <div title="the bridge's view of this dashboard's link: estimated bandwidth (≥: the link has not been the bottleneck, so only a lower bound is known), TCP round trip, bytes waiting for it in the bridge's outbox and the kernel"><dt>link · rtt · queued</dt><dd><span id="link-bandwidth" data-testid="link-bandwidth">–</span> · <span id="link-rtt" data-testid="link-rtt">–</span> ms · <span id="link-queued" data-testid="link-queued">–</span></dd></div>
  </dl>
</header>
<div class="notice" id="auth" data-testid="auth-notice" role="alert" hidden><span id="auth-text"></span> <a id="login-link" data-testid="login-link" href="#">Log in</a></div>
<div class="banner" id="banner" data-testid="banner" role="alert" hidden></div>
<main>
  <div class="column left">
    <section class="card topics">
      <h3>Topics <span class="hint">click a topic to pick fields to plot</span></h3>
      <table data-testid="topics">
        <colgroup><col class="c-sub"><col><col class="c-prio"><col class="c-rate"><col class="c-lat"><col class="c-drops"></colgroup>
        <thead><tr><th></th><th>topic</th><th>priority</th><th class="num">Hz</th><th class="num">latency ms<br>p50 / p95</th><th class="num">drops</th></tr></thead>
        <tbody id="topic-rows"></tbody>
      </table>
    </section>
    <section class="card rover" id="rover"><h3>Rover</h3><dl id="rover-figures"></dl></section>
  </div>
  <div class="column center" id="charts"></div>
  <div class="column right">
    <section class="card control" id="control" data-testid="control" hidden>
      <h3>Control <span class="hint">this dashboard may drive the rover</span></h3>
    </section>
    <div id="camera-slot"></div>
    <section class="card fields">
      <h3>Fields of <span class="topic-name" id="fields-topic"></span></h3>
      <div id="field-list" class="field-list" data-testid="fields"></div>
    </section>
  </div>
</main>`;

$("camera-slot").append(camera.root);
$("control").append(estop.root, teleop.root);

// -- control -----------------------------------------------------------------------------------

/** Show the controls this connection may use (from `hello.permissions`). */
function renderControls(): void {
  const canDrive = client.mayPublish(CMD_VEL_TOPIC);
  const canEstop = client.mayCall(ESTOP_SERVICE);
  teleop.root.hidden = !canDrive;
  estop.root.hidden = !canEstop;
  $("control").hidden = !canDrive && !canEstop;
}

/**
 * The pad's range: the rover's own max speed, when it can be read. The node may not be up yet
 * (or not discovered by the bridge) when the page connects: try again every few seconds while
 * this connection lasts.
 */
let maxSpeedTimer: ReturnType<typeof setTimeout> | null = null;
function loadMaxSpeed(attempt = 1): void {
  if (maxSpeedTimer !== null) clearTimeout(maxSpeedTimer);
  maxSpeedTimer = null;
  if (client.state !== "open" || !client.mayPublish(CMD_VEL_TOPIC) || !client.permissions.get_parameters) return;
  client.getParameters(ROVER_NODE, [MAX_SPEED_PARAMETER]).then((parameters) => {
    const value = parameters.find((p) => p.name === MAX_SPEED_PARAMETER)?.value;
    if (typeof value === "number") drive.setMaxSpeed(value);
    else throw new Error("no such parameter");
  }).catch((error: Error) => {
    if (attempt === 1) console.info(`teleop: ${ROVER_NODE} ${MAX_SPEED_PARAMETER} not read yet (${error.message}); retrying`);
    if (attempt < MAX_SPEED_ATTEMPTS && client.state === "open") {
      maxSpeedTimer = setTimeout(() => loadMaxSpeed(attempt + 1), MAX_SPEED_RETRY_MS);
    }
  });
}

// Let go when the page loses focus or is hidden: a held key's keyup would never come.
window.addEventListener("blur", () => drive.stop());
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") drive.stop();
});

// -- charts ------------------------------------------------------------------------------------

function chartFor(topic: string): TopicChart {
  let chart = charts.get(topic);
  if (chart === undefined) {
    chart = new TopicChart(topic, [], (path) => togglePlot(topic, path, false));
    charts.set(topic, chart);
    $("charts").append(chart.root);
  }
  return chart;
}

function togglePlot(topic: string, path: string, on: boolean): void {
  if (on) {
    chartFor(topic).addPath(path);
  } else {
    const chart = charts.get(topic);
    chart?.removePath(path);
    if (chart !== undefined && chart.paths.length === 0) {
      chart.destroy();
      charts.delete(topic);
    }
  }
  savePlots();
  fieldsShownFor = "";
}

for (const [topic, paths] of Object.entries(loadPlots())) for (const path of paths) chartFor(topic).addPath(path);

// -- data --------------------------------------------------------------------------------------------

client.onTelemetry((messages) => {
  for (const m of messages) {
    latest.set(m.topic, m);
    const chart = charts.get(m.topic);
    if (chart !== undefined) chart.push(m.timestampMs / 1000, m.data);
    if (m.topic === camera.topic) camera.offer(m);
  }
});

client.on("topics", (topics) => {
  if (camera.topic === null || !topics.some((t) => t.name === camera.topic)) {
    camera.setTopic(topics.find((t) => t.type === IMAGE_TYPE)?.name ?? null);
  }
  topicsChanged = true;
});

client.on("hello", (hello) => {
  setText($("server"), `${hello.server} ${hello.version} · ${shownUrl.replace(/^wss?:\/\//, "")}`);
  backpressure = null;
  renderControls();
});

client.on("backpressure", (info) => {
  backpressure = info;
});

client.on("state", (state, detail) => {
  const now = Date.now();
  const lostNow = state === "reconnecting" && connection.state === "open";
  connection = {
    state, detail,
    since: lostNow || state !== connection.state ? now : connection.since,
    retryAt: detail.retryInMs !== undefined ? now + detail.retryInMs : null,
  };
  if (lostNow) lostAt = now;
  if (state === "open") lostAt = null;
  // A lost link stops the drive; after the reconnection it waits for a new press.
  drive.setLinkUp(state === "open");
  estop.setEnabled(state === "open");
  if (state === "open") loadMaxSpeed();
  // Each connection has its own link: figures from the one before do not carry over.
  if (state === "open" && client.hello?.capabilities.link === true) link.start();
  else link.stop();
  if (state === "open") setAccess({ kind: "ok" });
  else if (state === "reconnecting" || state === "closed") void checkAccess();
  renderConnection();
});

client.on("error", (error) => console.warn("rover_ws_bridge client:", error.message));

let lostAt: number | null = null;

// -- access (token) ------------------------------------------------------------------------------

let access: Access = { kind: "unknown" };
let probing = false;

/** After a failed attempt: ask the HTTP API whether it is the token (one question at a time). */
async function checkAccess(): Promise<void> {
  if (probing) return;
  probing = true;
  try {
    const answer = await probeAccess((u, init) => fetch(u, init), url, pageToken);
    // The link may have come up meanwhile: an open connection is the better answer.
    if (client.state !== "open") setAccess(answer);
  } finally {
    probing = false;
  }
}

function setAccess(next: Access): void {
  access = next;
  const notice = $("auth");
  const refused = next.kind === "needs-token" || next.kind === "bad-token" || next.kind === "forbidden";
  notice.hidden = !refused;
  notice.dataset.kind = next.kind;
  if (!refused) return;
  const link = $<HTMLAnchorElement>("login-link");
  link.href = loginHref(url, location.origin);
  link.hidden = next.kind === "forbidden";
  setText($("auth-text"), next.kind === "needs-token"
    ? "This bridge needs a token —"
    : next.kind === "bad-token"
      ? pageToken !== null
        ? "The token in this page's address is not valid (unknown or revoked) —"
        : "Your login is no longer valid (the token is unknown or revoked) —"
      : `The bridge refuses this page (403: ${next.reason}).`);
  renderConnection();
}

// -- rendering -----------------------------------------------------------------------------------------

function renderConnection(): void {
  const { state, detail, retryAt } = connection;
  const pill = $("conn");
  const labels: Record<ConnectionState, string> = {
    idle: "idle", connecting: "connecting", open: "live", reconnecting: "reconnecting", closed: "offline",
  };
  setText(pill, labels[state]);
  pill.className = `pill conn-${state}`;
  document.body.classList.toggle("stale", state !== "open");
  const banner = $("banner");
  if (state === "open") {
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  banner.className = `banner banner-${state}`;
  if (state === "connecting") {
    setText(banner, `Connecting to the rover at ${shownUrl}…`);
    return;
  }
  if (state === "closed") {
    setText(banner, "Disconnected from the rover.");
    return;
  }
  const now = Date.now();
  const lost = lostAt !== null ? ` ${Math.round((now - lostAt) / 1000)} s ago` : "";
  const refused = access.kind === "needs-token" || access.kind === "bad-token" || access.kind === "forbidden";
  const why = refused
    ? ` (refused: ${access.kind === "forbidden" ? "403" : "401, no valid token"})`
    : detail.code !== undefined ? ` (close code ${detail.code}${detail.reason ? `: ${detail.reason}` : ""})` : "";
  const next = retryAt !== null && retryAt > now
    ? `next attempt in ${((retryAt - now) / 1000).toFixed(1)} s`
    : "connecting…";
  const what = refused ? "Not connected to the rover" : "Link to the rover lost";
  setText(banner, `${what}${lost}${why}. Reconnecting: attempt ${detail.attempt ?? 1}, ${next}. Figures below are frozen.`);
}

let topicsChanged = true;
let fieldsShownFor = "";
const rows = new Map<string, Record<"rate" | "latency" | "drops", HTMLElement>>();

function sortedTopics(): TopicInfo[] {
  return client.topics.sort((a, b) => PRIORITY_ORDER[a.priority] - PRIORITY_ORDER[b.priority] || a.name.localeCompare(b.name));
}

function buildTopicRows(): void {
  const body = $("topic-rows");
  body.replaceChildren();
  rows.clear();
  for (const topic of sortedTopics()) {
    const check = el("input", { type: "checkbox", title: "subscribed" });
    check.checked = client.wants(topic.name);
    check.addEventListener("click", (event) => event.stopPropagation());
    check.addEventListener("change", () => {
      const action = check.checked ? client.subscribe(topic.name) : client.unsubscribe(topic.name);
      action.catch((error: Error) => console.warn(error.message));
    });
    const cells = {
      rate: el("td", { class: "num", "data-testid": `rate:${topic.name}` }, "–"),
      latency: el("td", { class: "num" }, "–"),
      drops: el("td", { class: "num" }, "0"),
    };
    const row = el("tr", { "data-topic": topic.name, title: `${topic.name}  (${topic.type})` },
      el("td", {}, check),
      el("td", { class: "name" }, el("div", { class: "topic-name" }, topic.name), el("div", { class: "type" }, topic.type)),
      el("td", {}, el("span", { class: `prio prio-${topic.priority}` }, topic.priority)),
      cells.rate, cells.latency, cells.drops);
    row.classList.toggle("selected", topic.name === selectedTopic);
    row.addEventListener("click", () => {
      selectedTopic = topic.name;
      fieldsShownFor = "";
      for (const r of body.children) r.classList.toggle("selected", (r as HTMLElement).dataset.topic === selectedTopic);
    });
    body.append(row);
    rows.set(topic.name, cells);
  }
}

function renderTopics(): void {
  if (topicsChanged) {
    topicsChanged = false;
    buildTopicRows();
  }
  const metrics = client.metrics();
  cameraRate = camera.topic !== null ? metrics.topics[camera.topic]?.rate ?? 0 : 0;
  const now = metrics.atMs;
  for (const [name, cells] of rows) {
    const m = metrics.topics[name];
    const fresh = m !== undefined && m.lastReceivedAtMs !== null && now - m.lastReceivedAtMs < 5000;
    setText(cells.rate, m ? fixed(m.rate) : "–");
    setText(cells.latency, m ? `${fixed(m.latencyMs.p50)} / ${fixed(m.latencyMs.p95)}` : "–");
    setText(cells.drops, m ? String(m.drops) : "0");
    cells.rate.parentElement!.classList.toggle("quiet", !fresh);
  }

  setText($("p50"), fixed(metrics.latencyMs.p50));
  setText($("p95"), fixed(metrics.latencyMs.p95));
  setText($("p99"), fixed(metrics.latencyMs.p99));
  $("p99").parentElement!.classList.toggle("over-budget", metrics.latencyMs.p95 > 100);
  setText($("rate"), fixed(metrics.messagesPerSecond, 0));
  setText($("bytes"), bytes(metrics.bytesReceived));
  setText($("bps"), bytes(metrics.bytesPerSecond));
  setText($("decode"), fixed(metrics.decodeTimeMs.mean, 3));
  setText($("offset"), fixed(metrics.clockOffsetMs, 1));
  setText($("rtt"), fixed(metrics.roundTripMs, 1));
  setText($("drops"), String(metrics.drops));

  const bp = $("backpressure");
  const state = backpressure?.state ?? "ok";
  bp.className = `pill bp-${state}`;
  setText(bp, backpressure === null || state === "ok"
    ? "backpressure ok"
    : `backpressure ${state} · ${Math.round(backpressure.utilization * 100)} % · dropped ${backpressure.dropped} · conflated ${backpressure.conflated}`);

  const shown = linkView(link.latest);
  setText($("link-bandwidth"), shown.bandwidthText);
  $("link-bandwidth").dataset.value = String(shown.bandwidth ?? "");
  setText($("link-rtt"), fixed(shown.rttMs, 1));
  setText($("link-queued"), shown.queuedText);
  $("link-queued").dataset.value = String(shown.queuedBytes ?? "");
  const linkState = $("link-state");
  linkState.className = `pill link-${shown.state}`;
  linkState.dataset.state = shown.state;
  setText(linkState, shown.stateText);

  renderRover();
  renderFields();
  if (connection.state !== "open") renderConnection(); // the countdown
}

function renderRover(): void {
  const figures: [string, string][] = [];
  const estopState = latest.get(ESTOP_TOPIC)?.data as { data?: boolean } | undefined;
  const estopPill = $("estop");
  if (estopState !== undefined && typeof estopState.data === "boolean") {
    estopPill.hidden = false;
    estopPill.className = `pill estop ${estopState.data ? "engaged" : "released"}`;
    setText(estopPill, estopState.data ? "E-STOP ENGAGED" : "e-stop released");
  }
  estop.setState(typeof estopState?.data === "boolean" ? estopState.data : undefined);
  const battery = latest.get("/battery_state")?.data as { percentage?: number; voltage?: number; current?: number } | undefined;
  if (battery !== undefined) {
    figures.push(["battery", `${fixed((battery.percentage ?? NaN) * 100, 0)} % · ${fixed(battery.voltage, 2)} V · ${fixed(battery.current, 1)} A`]);
  }
  const gps = latest.get("/gps/fix")?.data as { latitude?: number; longitude?: number; altitude?: number } | undefined;
  if (gps !== undefined) figures.push(["gps", `${fixed(gps.latitude, 6)}, ${fixed(gps.longitude, 6)} · ${fixed(gps.altitude, 1)} m`]);
  const odom = latest.get("/odom")?.data as { twist?: { twist?: { linear?: { x?: number }; angular?: { z?: number } } } } | undefined;
  if (odom?.twist?.twist !== undefined) {
    figures.push(["speed", `${fixed(odom.twist.twist.linear?.x, 2)} m/s · yaw rate ${fixed(odom.twist.twist.angular?.z, 3)} rad/s`]);
  }
  const list = $("rover-figures");
  const text = figures.map(([k, v]) => `${k}\u0000${v}`).join("\n");
  if (list.dataset.text !== text) {
    list.dataset.text = text;
    list.replaceChildren(...figures.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }
  $("rover").hidden = figures.length === 0;
}

const fieldValues = new Map<string, HTMLElement>();

function renderFields(): void {
  setText($("fields-topic"), selectedTopic);
  const message = latest.get(selectedTopic);
  const list = $("field-list");
  if (message === undefined) {
    if (fieldsShownFor !== `${selectedTopic}:none`) {
      fieldsShownFor = `${selectedTopic}:none`;
      list.replaceChildren(el("div", { class: "hint" }, "no message yet (is it subscribed?)"));
      fieldValues.clear();
    }
    return;
  }
  const paths = numericPaths(message.data);
  const key = `${selectedTopic}:${paths.map(([p]) => p).join(",")}`;
  if (key !== fieldsShownFor) {
    fieldsShownFor = key;
    fieldValues.clear();
    const plotted = new Set(charts.get(selectedTopic)?.paths ?? []);
    const topic = selectedTopic;
    list.replaceChildren(...(paths.length === 0 ? [el("div", { class: "hint" }, "no numeric fields")] : paths.map(([path]) => {
      const box = el("input", { type: "checkbox" });
      box.checked = plotted.has(path);
      box.addEventListener("change", () => togglePlot(topic, path, box.checked));
      const v = el("span", { class: "value" }, "–");
      fieldValues.set(path, v);
      return el("label", { class: "field" }, box, el("span", { class: "path" }, path), v);
    })));
  }
  for (const [path, v] of paths) {
    const node = fieldValues.get(path);
    if (node !== undefined) setText(node, value(v));
  }
}

let lastText = 0;
let cameraRate = 0;

function frame(time: number): void {
  for (const chart of charts.values()) chart.render();
  camera.render(cameraRate);
  if (time - lastText >= TEXT_REFRESH_MS) {
    lastText = time;
    renderTopics();
  }
  requestAnimationFrame(frame);
}

renderConnection();
renderControls();
requestAnimationFrame(frame);

// For debugging from the console, and for the browser test.
(window as unknown as { roverClient: OptimizedTelemetryClient }).roverClient = client;
