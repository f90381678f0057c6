// The dashboard against a bridge with a token file (auth_tokens_file), in headless Chromium
// (playwright-core, /usr/bin/chromium or $CHROMIUM): without a token the page shows a "needs a
// token" notice linking to /login and keeps retrying; logging in (in another tab) lets the
// waiting page in; `?token=` in the page's URL connects too, and the token is shown nowhere.
// Screenshots go to test-output/.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PYTHON, REPO_ROOT, startBridge, type RunningBridge } from "../support/bridge.js";

import { CHROMIUM, CHROMIUM_ARGS, OUTPUT } from "../support/browser.js";

const LONG = 60_000;

let dir: string;
let token: string;
let bridge: RunningBridge;
let browser: Browser;
const contexts: BrowserContext[] = [];
const pages: Page[] = [];
const pageErrors: string[] = [];

/** `rover_ws_bridge.auth add` prints the token alone on stdout (the note goes to stderr). */
function addToken(file: string, name: string, role: string): string {
  const out = execFileSync(PYTHON, ["-m", "rover_ws_bridge.auth", "add", name, "--role", role, "--file", file], {
    cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"],
  });
  const lines = out.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^rwb_[A-Za-z0-9_-]{40,}$/);
  return lines[0];
}

/** A fresh browser profile (no cookie) and a page in it. */
async function freshPage(context?: BrowserContext): Promise<Page> {
  if (context === undefined) {
    context = await browser.newContext({ viewport: { width: 1440, height: 960 } });
    contexts.push(context);
  }
  const page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(error.message));
  pages.push(page);
  return page;
}

const live = (page: Page) => page.locator('[data-testid="connection-state"]', { hasText: "live" });
const notice = (page: Page) => page.locator('[data-testid="auth-notice"]');

/** The page is connected and the sim's topics stream in. */
async function expectLive(page: Page): Promise<void> {
  await live(page).waitFor({ timeout: LONG });
  await page.locator('[data-testid="topics"] tr[data-topic="/imu"]').waitFor({ timeout: LONG });
  await expect.poll(async () => Number.parseFloat((await page.locator('[data-testid="rate:/imu"]').textContent()) ?? ""),
    { timeout: LONG, interval: 250 }).toBeGreaterThan(10);
  await expect(notice(page).isHidden()).resolves.toBe(true);
  await expect(page.locator('[data-testid="banner"]').isHidden()).resolves.toBe(true);
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: run scripts/install_web_test_deps.sh (as root it installs Debian's chromium), or set CHROMIUM`);
  }
  mkdirSync(OUTPUT, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), "rover-auth-"));
  const tokens = join(dir, "tokens.yaml");
  token = addToken(tokens, "test", "operator");
  bridge = await startBridge(0, 60_000, { auth_tokens_file: tokens });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

afterEach(async (context) => {
  if (context.task.result?.state === "fail") {
    for (const [i, page] of pages.entries()) {
      await page.screenshot({ path: `${OUTPUT}dashboard-auth-failure-${context.task.name.slice(0, 20).replace(/\W+/g, "-")}-${i}.png` }).catch(() => undefined);
    }
  }
  for (const page of pages.splice(0)) await page.close().catch(() => undefined);
  for (const context of contexts.splice(0)) await context.close().catch(() => undefined);
});

afterAll(async () => {
  await browser?.close();
  await bridge?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe("dashboard on a bridge with a token file", () => {
  it("the bridge itself refuses the API and the WebSocket without a token", async () => {
    const api = await fetch(`${bridge.httpUrl}api/performance/metrics`);
    expect(api.status).toBe(401);
    const withToken = await fetch(`${bridge.httpUrl}api/performance/metrics`, { headers: { Authorization: `Bearer ${token}` } });
    expect(withToken.status).toBe(200);
    const page = await fetch(bridge.httpUrl);
    expect(page.status).toBe(200); // the dashboard's files are public
  });

  it("without a token: the notice links to /login; a login in another tab lets the waiting page in", async () => {
    const waiting = await freshPage();
    await waiting.goto(bridge.httpUrl);
    await notice(waiting).waitFor({ state: "visible", timeout: LONG });
    await expect(notice(waiting).textContent()).resolves.toContain("This bridge needs a token");
    const link = waiting.locator('[data-testid="login-link"]');
    await expect(link.isVisible()).resolves.toBe(true);
    await expect(link.textContent()).resolves.toBe("Log in");
    await expect(link.getAttribute("href")).resolves.toBe("/login");
    await expect(waiting.locator('[data-testid="banner"]').textContent()).resolves.toContain("401");
    await expect(live(waiting).count()).resolves.toBe(0);
    await waiting.screenshot({ path: `${OUTPUT}dashboard-needs-token.png` });

    // Log in in a second tab of the same browser: follow the link, submit the form
    // (GET /login?token=...), which sets the cookie and goes back to the dashboard.
    const tab = await freshPage(waiting.context());
    await tab.goto(bridge.httpUrl);
    await notice(tab).waitFor({ state: "visible", timeout: LONG });
    await tab.locator('[data-testid="login-link"]').click();
    await tab.waitForURL(/\/login$/);
    await tab.locator("input#token").fill(token);
    await tab.locator("input#token").press("Enter");
    await tab.waitForURL(bridge.httpUrl);
    await expectLive(tab);

    // The first tab never reloaded: its client kept retrying in the background.
    await expectLive(waiting);
    await waiting.screenshot({ path: `${OUTPUT}dashboard-after-login.png` });
  });

  it("after visiting /login?token=<token> the dashboard connects", async () => {
    const page = await freshPage();
    await page.goto(`${bridge.httpUrl}login?token=${encodeURIComponent(token)}`);
    await page.waitForURL(bridge.httpUrl);
    await expectLive(page);
    // The cookie is HttpOnly: the page's scripts cannot read it.
    await expect(page.evaluate(() => document.cookie)).resolves.not.toContain("rover_ws_bridge_token");
    const cookies = await page.context().cookies();
    expect(cookies.find((c) => c.name === "rover_ws_bridge_token")).toMatchObject({ httpOnly: true, sameSite: "Strict" });
  });

  it("with ?token= in the page's URL it connects, and the token is shown and stored nowhere", async () => {
    const page = await freshPage();
    await page.goto(`${bridge.httpUrl}?token=${encodeURIComponent(token)}`);
    await expectLive(page);
    await expect(page.locator("#server").textContent()).resolves.toContain("127.0.0.1");
    await expect(page.content()).resolves.not.toContain(token);
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    expect(stored).not.toContain(token);
    expect(await page.context().cookies()).toEqual([]);
    await page.screenshot({ path: `${OUTPUT}dashboard-url-token.png` });
  });

  it("with a wrong ?token= the notice says so", async () => {
    const page = await freshPage();
    await page.goto(`${bridge.httpUrl}?token=rwb_not-a-real-token`);
    await notice(page).waitFor({ state: "visible", timeout: LONG });
    await expect(notice(page).textContent()).resolves.toContain("not valid");
    await expect(page.locator('[data-testid="login-link"]').getAttribute("href")).resolves.toBe("/login");
    await expect(page.content()).resolves.not.toContain("rwb_not-a-real-token");
  });

  it("no page errors", () => {
    expect(pageErrors).toEqual([]);
  });
});
