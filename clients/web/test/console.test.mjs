// The browser console end to end: a real demo gateway process, the page it
// serves, Debian's Chromium driven by playwright-core. Every wait is on the
// page's state (auto-waiting locators with deadlines), never a fixed sleep.
//
//   node test/console.test.mjs
//
// Env: THINGCALL_SERVER_BIN (default target/debug/thingcall-server),
// THINGCALL_CONSOLE_URL (drive an already running demo gateway instead of
// starting one), CONSOLE_SCREENSHOT (default docs/console.png),
// CHROMIUM (default /usr/bin/chromium).
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { chromium } from "playwright-core";

import { check, CheckFailed, root, runTest, SOON, startGateway } from "./gateway.mjs";

const screenshot = process.env.CONSOLE_SCREENSHOT ?? join(root, "docs", "console.png");

const device = (page, id, online) =>
  page.locator(`[data-testid="device"][data-device="${id}"]${online === undefined ? "" : `[data-online="${online}"]`}`);
const tid = (page, id) => page.getByTestId(id);

/** Selects `id`, picks `method` once the device's methods are listed, and sends `payload` in `mode`. */
async function call(page, id, method, payload, { mode = "json", connectTimeoutMs = "0" } = {}) {
  await device(page, id).locator("button").click();
  await tid(page, "selected-device").filter({ hasText: id }).waitFor({ timeout: SOON });
  await tid(page, "method").locator(`option[value="${method}"], option:text-is("${method}")`).first().waitFor({ state: "attached", timeout: SOON });
  await tid(page, "method").selectOption(method);
  await tid(page, "payload-mode").selectOption(mode);
  await tid(page, "payload").fill(payload);
  await tid(page, "connect-timeout").fill(connectTimeoutMs);
  await tid(page, "send").click();
}

const launch = () =>
  chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-default-apps",
      "--disable-sync",
      "--metrics-recording-only",
      "--no-first-run",
      "--disable-features=Translate,OptimizationHints,MediaRouter",
    ],
  });

/** The demo's checks: listing, calls, bad input, a reboot seen live, the screenshot. */
async function run(browser, base) {
  {
    const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
    const problems = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy|Refused to/.test(m.text())) problems.push(`CSP: ${m.text()}`);
    });
    let loads = 0;
    page.on("load", () => loads++);

    await check("the page loads and lists demo-1, demo-2, demo-3 online", async () => {
      await page.goto(`${base}/`, { timeout: SOON });
      for (const id of ["demo-1", "demo-2", "demo-3"]) await device(page, id, true).waitFor({ timeout: SOON });
      await page.locator('[data-testid="device-list"][data-synced="true"]').waitFor({ timeout: SOON });
      await page.locator('[data-testid="stream-status"][data-state="live"]').waitFor({ timeout: SOON });
    });

    await check("an echo call shows its payload and the latency breakdown", async () => {
      await call(page, "demo-1", "echo", '{"hello":"console"}');
      await page.locator('[data-testid="result"][data-outcome="ok"]').waitFor({ timeout: SOON });
      await tid(page, "result-payload").filter({ hasText: '"hello": "console"' }).waitFor({ timeout: SOON });
      await tid(page, "result-status").filter({ hasText: "200" }).waitFor({ timeout: SOON });
      for (const part of ["latency-total", "latency-network", "latency-gateway", "latency-device"]) {
        await tid(page, part).filter({ hasText: /\d/ }).waitFor({ timeout: SOON });
      }
      await tid(page, "history-row").filter({ hasText: "echo" }).first().waitFor({ timeout: SOON });
    });

    await check("bad JSON is refused before sending", async () => {
      const before = await tid(page, "history-row").count();
      await tid(page, "payload").fill("{not json");
      await tid(page, "send").click();
      await tid(page, "input-error").filter({ hasText: "not valid JSON" }).waitFor({ timeout: SOON });
      const after = await tid(page, "history-row").count();
      if (after !== before) throw new Error(`a call was sent anyway (${before} -> ${after} history rows)`);
    });

    await check("reboot turns demo-2 offline on the page, with no reload", async () => {
      await call(page, "demo-2", "reboot", "6000");
      await tid(page, "result-payload").filter({ hasText: "rebooting" }).waitFor({ timeout: SOON });
      await device(page, "demo-2", false).waitFor({ timeout: SOON });
    });

    await check("a call to offline demo-2 shows DEVICE_OFFLINE", async () => {
      await tid(page, "method").selectOption("echo");
      await tid(page, "payload").fill('"are you there?"');
      await tid(page, "send").click();
      await tid(page, "error-reason").filter({ hasText: "DEVICE_OFFLINE" }).waitFor({ timeout: SOON });
      await tid(page, "history-row").first().filter({ hasText: "DEVICE_OFFLINE" }).waitFor({ timeout: SOON });
    });

    await check("demo-2 comes back online on the page, with no reload", async () => {
      await device(page, "demo-2", true).waitFor({ timeout: SOON });
      if (loads !== 1) throw new Error(`the page loaded ${loads} times`);
    });

    await check("a screenshot of devices and a result is saved", async () => {
      await call(page, "demo-1", "echo", '{"valve": "open", "position": 42}');
      await tid(page, "result-payload").filter({ hasText: '"position": 42' }).waitFor({ timeout: SOON });
      await page.locator("#token").blur();
      mkdirSync(dirname(screenshot), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
      console.log(`   screenshot: ${screenshot}`);
    });

    if (problems.length) throw new CheckFailed(`the page reported problems:\n  ${problems.join("\n  ")}`);
    await page.close();
  }
}

const KEY = "tc_console_test_0123456789abcdef";

/** A gateway with API keys: the page points at the token field, and the token goes where it should. */
async function runAuth(browser) {
  const dir = mkdtempSync(join(tmpdir(), "thingcall-console-"));
  try {
    const keys = join(dir, "keys");
    writeFileSync(keys, `console sha256:${createHash("sha256").update(KEY).digest("hex")}\n`);
    const { base } = await startGateway(["--api-keys", keys]);
    const page = await browser.newPage();

    await check("without a token the page loads and points at the token field", async () => {
      await page.goto(`${base}/`, { timeout: SOON });
      await tid(page, "watch-error").filter({ hasText: "UNAUTHENTICATED" }).filter({ hasText: "API token" }).waitFor({ timeout: SOON });
      await page.locator('[data-testid="token"].attention').waitFor({ timeout: SOON });
    });

    await check("with the token the devices are listed and calls succeed", async () => {
      await tid(page, "token").fill(KEY);
      await tid(page, "token").press("Tab");
      await device(page, "demo-1", true).waitFor({ timeout: SOON });
      await call(page, "demo-1", "echo", '"with a key"');
      await page.locator('[data-testid="result"][data-outcome="ok"]').waitFor({ timeout: SOON });
      await tid(page, "result-payload").filter({ hasText: "with a key" }).waitFor({ timeout: SOON });
    });

    await check("the token is kept in sessionStorage only, never in the URL", async () => {
      const stored = await page.evaluate(() => ({
        session: sessionStorage.getItem("thingcall.token"),
        local: localStorage.length,
        url: location.href,
      }));
      if (stored.session !== KEY) throw new Error(`sessionStorage holds ${JSON.stringify(stored.session)}`);
      if (stored.local !== 0) throw new Error(`localStorage holds ${stored.local} items`);
      if (stored.url.includes(KEY)) throw new Error(`the URL carries the token: ${stored.url}`);
    });

    await check("a call without the token shows UNAUTHENTICATED and the hint", async () => {
      await tid(page, "token").fill("");
      await tid(page, "token").press("Tab");
      await tid(page, "send").click();
      await tid(page, "error-reason").filter({ hasText: "UNAUTHENTICATED" }).waitFor({ timeout: SOON });
      await tid(page, "auth-hint").waitFor({ state: "visible", timeout: SOON });
    });
    await page.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await runTest(async () => {
  let base = process.env.THINGCALL_CONSOLE_URL?.replace(/\/+$/, "");
  if (!base) base = (await startGateway()).base;
  console.log(`console at ${base}/`);
  const browser = await launch();
  try {
    await run(browser, base);
    // Needs its own gateway; skipped when driving one started by hand.
    if (!process.env.THINGCALL_CONSOLE_URL) await runAuth(browser);
  } finally {
    await browser.close();
  }
  console.log("all console checks passed");
});
