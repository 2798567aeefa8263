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
import { execFileSync } from "node:child_process";
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

/** Demo devices for the long-list checks: more than the console shows. */
const FLEET = 600;
/** Rows the console shows at most (`SHOWN` in console/src/devices.ts). */
const SHOWN = 500;

/** The ids of the device rows, top to bottom. */
const rowIds = (page) => page.locator('[data-testid="device"]').evaluateAll((rows) => rows.map((r) => r.dataset.device));

/** Waits until the list shows exactly `rows` device rows and a device-more row only when `remaining` is a number, saying so. */
const listShows = (page, rows, remaining) =>
  page.waitForFunction(
    ([rows, remaining]) => {
      const more = document.querySelector('[data-testid="device-more"]');
      const shown = document.querySelectorAll('[data-testid="device"]').length;
      return shown === rows && (remaining === null ? more === null : more?.dataset.remaining === String(remaining));
    },
    [rows, remaining ?? null],
    { timeout: SOON },
  );

function sameIds(got, want) {
  if (got.length !== want.length || got.some((id, i) => id !== want[i])) {
    const i = got.findIndex((id, i) => id !== want[i]);
    throw new Error(`${got.length} rows, expected ${want.length}; first difference at row ${i}: ${got[i]} instead of ${want[i]}`);
  }
}

/** Clears `id`'s retained presence on the gateway's broker (`host:port`): the gateway forgets the device. */
function forget(mqtt, id) {
  const at = mqtt.lastIndexOf(":");
  const [host, port] = [mqtt.slice(0, at), mqtt.slice(at + 1)];
  execFileSync("mosquitto_pub", ["-h", host, "-p", port, "-V", "5", "-q", "1", "-r", "-n", "-t", `thingcall/devices/${id}/presence`], {
    timeout: SOON,
  });
}

/** A list longer than the page shows: cut at SHOWN with the rest counted, narrowed by a filter, redrawn once a frame. */
async function runFleet(browser) {
  const { base, mqtt } = await startGateway([], { demo: FLEET });
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // Before the page's own script: numbers animation frames, and notes each
  // redraw of the list (a replacement of its rows) with the frame it fell in.
  await page.addInitScript(() => {
    const seen = { frame: 0, redraws: 0, sameFrame: 0, last: -1 };
    window.__redraws = seen;
    const tick = () => {
      seen.frame++;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.target.dataset?.testid !== "device-list" || r.removedNodes.length === 0) continue;
        seen.redraws++;
        if (seen.last === seen.frame) seen.sameFrame++;
        seen.last = seen.frame;
      }
    }).observe(document, { childList: true, subtree: true });
  });
  const all = Array.from({ length: FLEET }, (_, i) => `demo-${i + 1}`).sort();

  await check(`${FLEET} devices: the first ${SHOWN} by id are listed, and a last row counts the other ${FLEET - SHOWN}`, async () => {
    await page.goto(`${base}/`, { timeout: SOON });
    await listShows(page, SHOWN, FLEET - SHOWN);
    sameIds(await rowIds(page), all.slice(0, SHOWN));
    const text = await tid(page, "device-more").textContent();
    const want = `… and ${FLEET - SHOWN} more: type a filter to narrow the list`;
    if (text !== want) throw new Error(`the last row says ${JSON.stringify(text)}, expected ${JSON.stringify(want)}`);
  });

  await check("the list was redrawn at most once per animation frame", async () => {
    const seen = await page.evaluate(() => window.__redraws);
    if (seen.redraws === 0) throw new Error("no redraw of the list was seen");
    if (seen.sameFrame !== 0) throw new Error(`${seen.sameFrame} of ${seen.redraws} redraws shared a frame with another`);
  });

  const ones = all.filter((id) => id.startsWith("demo-1"));
  await check(`a filter matching ${ones.length} of them lists them all, with no device-more row`, async () => {
    await tid(page, "filter").fill("demo-1*");
    await tid(page, "filter").press("Tab");
    await listShows(page, ones.length, null);
    sameIds(await rowIds(page), ones);
  });

  await check("a selected device whose retained presence is cleared leaves the list and the call form", async () => {
    await device(page, "demo-150").locator("button").click();
    await tid(page, "selected-device").filter({ hasText: "demo-150" }).waitFor({ timeout: SOON });
    forget(mqtt, "demo-150");
    await device(page, "demo-150").waitFor({ state: "detached", timeout: SOON });
    await tid(page, "selected-device").filter({ hasText: "no device selected" }).waitFor({ timeout: SOON });
    sameIds(await rowIds(page), ones.filter((id) => id !== "demo-150"));
  });

  await check(`clearing the filter counts the forgotten device out: ${SHOWN} rows and ${FLEET - 1 - SHOWN} more`, async () => {
    await tid(page, "filter").fill("");
    await tid(page, "filter").press("Tab");
    await listShows(page, SHOWN, FLEET - 1 - SHOWN);
    sameIds(await rowIds(page), all.filter((id) => id !== "demo-150").slice(0, SHOWN));
  });

  if (problems.length) throw new CheckFailed(`the page reported problems:\n  ${problems.join("\n  ")}`);
  await page.close();
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
    // These need their own gateways; skipped when driving one started by hand.
    if (!process.env.THINGCALL_CONSOLE_URL) {
      await runAuth(browser);
      await runFleet(browser);
    }
  } finally {
    await browser.close();
  }
  console.log("all console checks passed");
});
