// The dashboard in a real browser: headless Chromium (Debian's package, /usr/bin/chromium or
// $CHROMIUM) driven by playwright-core loads the page the bridge serves, with the simulated
// rover running. Checks that values update and the plots draw, that the link-lost banner shows
// while the bridge is away and goes when it is back, and saves screenshots to test-output/.
import { existsSync, mkdirSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, startBridge, type RunningBridge } from "../support/bridge.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const OUTPUT = `${REPO_ROOT}test-output/`;
// What this machine's Chromium needs headless as root, without reaching out to the network.
const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
];
const LONG = 60_000;

let bridge: RunningBridge;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: run scripts/install_web_test_deps.sh (as root it installs Debian's chromium), or set CHROMIUM`);
  }
  mkdirSync(OUTPUT, { recursive: true });
  bridge = await startBridge();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1440, height: 960 } });
  page.on("pageerror", (error) => pageErrors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") console.log(`browser ${message.type()}: ${message.text()}`);
  });
});

afterEach(async (context) => {
  // A failed test leaves a picture of what the page showed.
  if (context.task.result?.state === "fail" && page !== undefined) {
    await page.screenshot({ path: `${OUTPUT}dashboard-failure-${context.task.name.slice(0, 20).replace(/\W+/g, "-")}.png` }).catch(() => undefined);
  }
});

afterAll(async () => {
  await browser?.close();
  await bridge?.stop();
});

/** Pixels of a chart's canvas that are not background: a plot with lines has many. */
async function chartSignature(topic: string): Promise<{ inked: number; sum: number }> {
  return page.evaluate((t) => {
    const canvas = document.querySelector<HTMLCanvasElement>(`[data-chart="${t}"] canvas`);
    if (canvas === null) return { inked: 0, sum: 0 };
    const { data } = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height);
    let inked = 0;
    let sum = 0;
    for (let i = 0; i < data.length; i += 4) {
      // Series colours are bright and saturated; axes and grid are grey.
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      if (Math.max(r, g, b) - Math.min(r, g, b) > 60) {
        inked++;
        sum = (sum + (i / 4) * 31 + r) % 1_000_000_007;
      }
    }
    return { inked, sum };
  }, topic);
}

const legendValue = (topic: string, path: string) =>
  page.locator(`[data-chart="${topic}"] [data-series="${path}"]`).textContent();

const number = (text: string | null) => Number.parseFloat(text ?? "");

describe("dashboard served by the bridge", () => {
  it("shows live values, plots that draw, topics and the camera", async () => {
    await page.goto(bridge.httpUrl);
    await expect(page.title()).resolves.toContain("Rover telemetry");
    await page.locator('[data-testid="connection-state"]', { hasText: "live" }).waitFor({ timeout: LONG });

    // The topic table fills in as the bridge discovers the simulator's topics.
    for (const topic of ["/imu", "/odom", "/joint_states", "/camera/image/compressed", "/estop"]) {
      await page.locator(`tr[data-topic="${topic}"]`).waitFor({ timeout: LONG });
    }
    await page.waitForFunction(() => Number.parseFloat(document.querySelector('[data-testid="rate:/imu"]')?.textContent ?? "") > 0, null, { timeout: LONG });
    await expect(page.locator('tr[data-topic="/estop"] .prio').textContent()).resolves.toBe("CRITICAL");
    await expect(page.locator('tr[data-topic="/camera/image/compressed"] .prio').textContent()).resolves.toBe("LOW");

    // IMU acceleration: gravity on z, and the value moves (sensor noise).
    await page.waitForFunction(() => Number.isFinite(Number.parseFloat(document.querySelector('[data-chart="/imu"] [data-series="linear_acceleration.z"]')?.textContent ?? "")), null, { timeout: LONG });
    const first = await legendValue("/imu", "linear_acceleration.z");
    expect(number(first)).toBeGreaterThan(9);
    expect(number(first)).toBeLessThan(10.6);
    await page.waitForFunction((before) => document.querySelector('[data-chart="/imu"] [data-series="linear_acceleration.z"]')?.textContent !== before, first, { timeout: LONG });

    // The plots draw, and keep drawing (the time axis scrolls, new samples come in).
    await page.waitForFunction(() => document.querySelector('[data-chart="/odom"] [data-series="twist.twist.linear.x"]')?.textContent !== "–", null, { timeout: LONG });
    let before = await chartSignature("/imu");
    const deadline = Date.now() + LONG;
    while (before.inked < 200 && Date.now() < deadline) {
      await page.waitForTimeout(200);
      before = await chartSignature("/imu");
    }
    expect(before.inked).toBeGreaterThan(200);
    await page.waitForFunction(async () => true); // let a frame pass
    let after = before;
    while (after.sum === before.sum && Date.now() < deadline) {
      await page.waitForTimeout(200);
      after = await chartSignature("/imu");
    }
    expect(after.sum).not.toBe(before.sum);
    expect((await chartSignature("/odom")).inked).toBeGreaterThan(50);

    // Figures in the header and the camera panel.
    await page.waitForFunction(() => Number.isFinite(Number.parseFloat(document.querySelector('[data-testid="latency-p95"]')?.textContent ?? "")), null, { timeout: LONG });
    expect(number(await page.locator('[data-testid="message-rate"]').textContent())).toBeGreaterThan(0);
    await page.locator('[data-testid="camera-caption"]', { hasText: "jpeg" }).waitFor({ timeout: LONG });
    const cameraShown = await page.evaluate(() =>
      !(document.querySelector('[data-testid="camera-image"]') as HTMLElement).hidden
      || (document.querySelector('[data-testid="camera-fallback"]')?.textContent ?? "").includes("KB"));
    expect(cameraShown).toBe(true);
    await expect(page.locator('[data-testid="backpressure"]').textContent()).resolves.toMatch(/backpressure/);

    // A few seconds of data in the plots for the screenshot.
    await page.waitForFunction(() => {
      const c = (window as unknown as { roverClient: { metrics(): { topics: Record<string, { messages: number }> } } }).roverClient;
      return (c.metrics().topics["/imu"]?.messages ?? 0) > 1200;
    }, null, { timeout: LONG });
    await page.screenshot({ path: `${OUTPUT}dashboard.png`, fullPage: true });
    expect(pageErrors).toEqual([]);

    // The page reports its figures to the bridge (`stats`, every 5 s), with the browser's user agent.
    const userAgent = await page.evaluate(() => navigator.userAgent);
    const deadline2 = Date.now() + LONG;
    let report: { user_agent?: string; messages?: number } | null = null;
    while (report === null && Date.now() < deadline2) {
      const { connections } = (await (await fetch(`${bridge.httpUrl}api/performance/connections`)).json()) as
        { connections: { client_report: { user_agent?: string; messages?: number } | null }[] };
      report = connections.find((c) => c.client_report?.user_agent !== undefined)?.client_report ?? null;
      if (report === null) await page.waitForTimeout(250);
    }
    expect(report?.user_agent).toBe(userAgent);
    expect(report?.messages).toBeGreaterThan(0);

    // Reported, not asserted (no test asserts a time): how smooth the page is at full rate.
    const smooth = await page.evaluate(() => new Promise<string>((resolve) => {
      const client = (window as unknown as { roverClient: { metrics(): { messages: number } } }).roverClient;
      const start = performance.now();
      const messages = client.metrics().messages;
      let frames = 0;
      let worst = 0;
      let last = start;
      const tick = (now: number) => {
        frames++;
        worst = Math.max(worst, now - last);
        last = now;
        if (now - start < 2000) requestAnimationFrame(tick);
        else resolve(`${(frames / ((now - start) / 1000)).toFixed(0)} frames/s (longest frame ${worst.toFixed(0)} ms) `
          + `while receiving ${((client.metrics().messages - messages) / ((now - start) / 1000)).toFixed(0)} msgs/s`);
      };
      requestAnimationFrame(tick);
    }));
    console.log(`dashboard rendering: ${smooth}`);
  });

  it("shows a banner while the link is down, and recovers when the bridge is back", async () => {
    const banner = page.locator('[data-testid="banner"]');
    await expect(banner.isHidden()).resolves.toBe(true);
    const port = bridge.port;
    await bridge.stop();
    await banner.filter({ hasText: "Link to the rover lost" }).waitFor({ state: "visible", timeout: LONG });
    await page.locator('[data-testid="connection-state"]', { hasText: "reconnecting" }).waitFor({ timeout: LONG });
    await expect(banner.textContent()).resolves.toMatch(/Reconnecting: attempt \d+/);
    await page.screenshot({ path: `${OUTPUT}dashboard-reconnecting.png` });

    const messagesBefore = await page.evaluate(() => (window as unknown as { roverClient: { metrics(): { messages: number } } }).roverClient.metrics().messages);
    bridge = await startBridge(port);
    await page.locator('[data-testid="connection-state"]', { hasText: "live" }).waitFor({ timeout: LONG });
    await banner.waitFor({ state: "hidden", timeout: LONG });
    // Subscribed again: data flows anew.
    await page.waitForFunction((n) => (window as unknown as { roverClient: { metrics(): { messages: number } } }).roverClient.metrics().messages > n + 200, messagesBefore, { timeout: LONG });
    expect(pageErrors).toEqual([]);
  });
});
