// Headless Chromium for the browser tests: Debian's package (/usr/bin/chromium, or $CHROMIUM),
// driven by playwright-core, with what this machine's Chromium needs as root without reaching
// out to the network. Screenshots go to test-output/.
import { REPO_ROOT } from "./bridge.js";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const OUTPUT = `${REPO_ROOT}test-output/`;
export const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
];
