// The client package in Node (fetch + gRPC-web, as in a browser) against a
// real demo gateway: calls, listing, the watch stream, and errors decoded
// from the gateway's ErrorInfo. The package is bundled from src/ with the
// pinned esbuild first, so this tests the TypeScript that ships.
//
//   node test/client.test.mjs
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { build } from "esbuild";

import { check, root, runTest, SOON, startGateway } from "./gateway.mjs";

/** Fails with `message` unless `ok`. */
function expect(ok, message) {
  if (!ok) throw new Error(message);
}

/** The error `f` rejects with; fails if it resolves. */
async function rejection(f) {
  try {
    await f();
  } catch (e) {
    return e;
  }
  throw new Error("succeeded, expected an error");
}

/**
 * Watches until every device of `ids` is online; resolves with the states
 * seen and whether the `synced` marker came. Bounded by SOON.
 */
async function waitOnline(client, ids) {
  const seen = new Map();
  let synced = false;
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), SOON);
  try {
    for await (const ev of client.watch("demo-*", { signal: stop.signal })) {
      if (ev.kind === "presence") seen.set(ev.device.id, ev.device.online);
      if (ev.kind === "synced") synced = true;
      // Right after start the demo devices may still be announcing.
      if (synced && ids.every((id) => seen.get(id) === true)) return { seen, synced };
    }
  } finally {
    clearTimeout(timer);
  }
  throw new Error(`not all of ${ids} online within ${SOON} ms: ${[...seen]}`);
}

/** The value of the /metrics line `series` (name and labels) of the gateway at `base`; 0 when absent. */
async function metric(base, series) {
  const page = await (await fetch(`${base}/metrics`)).text();
  const line = page.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Calls of `method` the gateway at `base` finished, whatever their outcome. */
async function calls(base, method) {
  const page = await (await fetch(`${base}/metrics`)).text();
  const prefix = `thingcall_invocations_total{method="${method}",`;
  return page
    .split("\n")
    .filter((l) => l.startsWith(prefix))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

/** Polls `f` every 20 ms until it resolves true; fails after SOON with `what`. */
async function until(what, f) {
  const deadline = Date.now() + SOON;
  while (!(await f())) {
    expect(Date.now() < deadline, `${what}: not within ${SOON} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A whole fan-out: its results, and its summary, checked to be the one last event. */
async function fanOut(client, options) {
  const events = [];
  for await (const ev of client.invokeMany(options)) events.push(ev);
  const summaries = events.filter((e) => e.kind === "summary");
  expect(summaries.length === 1 && events.at(-1) === summaries[0], `events ${events.map((e) => e.kind)}`);
  const results = events.filter((e) => e.kind === "result");
  return { results, summary: summaries[0] };
}

/** `o` as sorted `key=value` pairs, for comparing maps in one message. */
function pairs(o) {
  return Object.entries(o)
    .map(([k, v]) => `${k}=${v}`)
    .sort()
    .join(",");
}

const dir = mkdtempSync(join(tmpdir(), "thingcall-client-"));
await runTest(async () => {
  try {
    const out = join(dir, "client.mjs");
    await build({
      entryPoints: [join(root, "clients", "web", "src", "index.ts")],
      outfile: out,
      bundle: true,
      format: "esm",
      platform: "node",
      logLevel: "warning",
    });
    const { createClient, ThingcallError } = await import(pathToFileURL(out).href);
    const { base } = await startGateway();
    const tc = createClient({ baseUrl: base });

    await check("watch: presence of the demo devices, a synced marker, all online", async () => {
      const { seen, synced } = await waitOnline(tc, ["demo-1", "demo-2", "demo-3"]);
      expect(synced, "no synced event before the devices were all online");
      expect(seen.size >= 3, `saw ${[...seen]}`);
    });

    await check("invoke: echo returns the payload, status and timings", async () => {
      const r = await tc.invoke("demo-1", "echo", "hi from node", { timeoutMs: 5000 });
      expect(r.status === 200, `status ${r.status}`);
      expect(new TextDecoder().decode(r.payload) === "hi from node", "payload differs");
      expect(/^[0-9a-f-]{36}$/.test(r.requestId), `request id ${r.requestId}`);
      expect(r.elapsedMs >= 0, `elapsed ${r.elapsedMs}`);
      const bytes = new Uint8Array([0, 255, 1, 254]);
      const b = await tc.invoke("demo-1", "echo", bytes, { contentType: "application/octet-stream" });
      expect(b.payload.join() === bytes.join(), `bytes came back as ${b.payload}`);
      expect(b.contentType === "application/octet-stream", `content type ${b.contentType}`);
    });

    await check("devices and device: listing pages through every device", async () => {
      const ids = [];
      for await (const d of tc.devices("demo-*", { pageSize: 1 })) ids.push(d.id);
      expect(ids.join() === "demo-1,demo-2,demo-3", `listed ${ids}`);
      const d = await tc.device("demo-2");
      expect(d.id === "demo-2" && d.methods.includes("echo"), `device ${JSON.stringify(d)}`);
    });

    await check("errors carry the gateway's reason and metadata", async () => {
      const nf = await rejection(() => tc.device("no-such-device"));
      expect(nf instanceof ThingcallError, `not a ThingcallError: ${nf}`);
      expect(nf.reason === "DEVICE_NOT_FOUND" && nf.domain === "thingcall", `reason ${nf.reason} domain ${nf.domain}`);
      const to = await rejection(() => tc.invoke("demo-3", "sleep", "3000", { timeoutMs: 300 }));
      expect(to.reason === "DEVICE_TIMEOUT", `reason ${to.reason}: ${to.message}`);
      expect(typeof to.requestId === "string" && to.requestId.length > 0, "no requestId");
      expect(typeof to.accepted === "boolean", `accepted ${to.accepted}`);
      const bad = await rejection(() => tc.invoke("demo-1", "echo", "x", { timeoutMs: Number.NaN }));
      expect(bad.reason === "INVALID_ARGUMENT", `NaN timeout: ${bad.reason}`);
      // A lone surrogate has no UTF-8 form: refused here, never sent as U+FFFD.
      for (const [what, f] of [
        ["target", () => tc.invoke("demo-\uD800", "echo", "x")],
        ["payload", () => tc.invoke("demo-1", "echo", "\uDC00")],
        ["metadata", () => tc.invoke("demo-1", "echo", "x", { metadata: { k: "\uD800" } })],
        ["device id", () => tc.device("demo-\uD800")],
      ]) {
        const e = await rejection(f);
        expect(e.reason === "INVALID_ARGUMENT" && e.requestId === undefined, `${what}: ${e.reason}`);
      }
    });

    await check("the token goes as a Bearer header", async () => {
      const key = "tc_client_test_0123456789abcdef";
      const keys = join(dir, "keys");
      writeFileSync(keys, `client sha256:${createHash("sha256").update(key).digest("hex")}\n`);
      const authed = await startGateway(["--api-keys", keys]);
      const none = await rejection(() => createClient({ baseUrl: authed.base }).device("demo-1"));
      expect(none.reason === "UNAUTHENTICATED", `without a token: ${none.reason}`);
      const ok = createClient({ baseUrl: authed.base, token: () => key });
      await waitOnline(ok, ["demo-1"]); // the watch stream is authenticated too
      const r = await ok.invoke("demo-1", "echo", "k");
      expect(r.status === 200, `with the token: status ${r.status}`);
    });
    await check("OVERLOADED says when to try again (the gateway's RetryInfo)", async () => {
      const tight = await startGateway(["--max-in-flight", "1"]);
      const c = createClient({ baseUrl: tight.base });
      await waitOnline(c, ["demo-1"]);
      const slow = c.invoke("demo-1", "sleep", "1500", { timeoutMs: 10_000 });
      // The slow call holds the one slot once the gateway counts it in flight.
      await until("the slow call shows in flight", async () => (await metric(tight.base, "thingcall_invocations_in_flight")) === 1);
      const busy = await rejection(() => c.invoke("demo-1", "echo", "me too"));
      expect(busy.reason === "OVERLOADED", `reason ${busy.reason}: ${busy.message}`);
      expect(busy.retryAfter === 1, `retryAfter ${busy.retryAfter}`);
      expect((await slow).status === 200, "the slow call failed");
    });

    await check("invokeMany: a result per device as its call ends, then one summary", async () => {
      const { results, summary } = await fanOut(tc, {
        targets: ["demo-1", "demo-2", "demo-3", "no-such-device"],
        method: "echo",
        payload: "fan",
        timeoutMs: 5000,
      });
      expect(results.map((r) => r.device).sort().join() === "demo-1,demo-2,demo-3,no-such-device", `results for ${results.map((r) => r.device)}`);
      for (const r of results) {
        if (r.device === "no-such-device") {
          expect(r.outcome === "DEVICE_NOT_FOUND" && r.result === undefined && r.message !== "", `unknown device: ${JSON.stringify(r)}`);
          continue;
        }
        expect(r.outcome === "OK" && r.result?.status === 200, `${r.device}: ${r.outcome} ${r.message}`);
        expect(new TextDecoder().decode(r.result.payload) === "fan", `${r.device} answered ${r.result.payload}`);
        expect(/^[0-9a-f-]{36}$/.test(r.requestId) && r.requestId === r.result.requestId, `${r.device} request id ${r.requestId}`);
        expect(r.elapsedMs >= 0 && r.elapsedMs === r.result.elapsedMs, `${r.device} elapsed ${r.elapsedMs}`);
      }
      const s = summary;
      expect([s.targets, s.attempted, s.succeeded, s.failed].join() === "4,4,3,1", `counts ${JSON.stringify(s)}`);
      expect(pairs(s.outcomes) === "DEVICE_NOT_FOUND=1,OK=3", `outcomes ${pairs(s.outcomes)}`);
      expect(s.p50Ms >= 0 && s.p99Ms >= s.p50Ms && s.elapsedMs >= s.p99Ms, `p50 ${s.p50Ms} p99 ${s.p99Ms} elapsed ${s.elapsedMs}`);
      expect(s.ended === "COMPLETED" && pairs(s.notAttempted) === "" && s.notAttemptedDevices.length === 0, `ended ${s.ended}`);
    });

    await check("invokeMany: a glob, device failures by status, the abort threshold, skipped offline devices", async () => {
      // `fail` answers 500; one call at a time, so the threshold (over half
      // of at least 2 failed) stops the glob's id order after demo-2.
      const aborted = await fanOut(tc, {
        pattern: "demo-*",
        method: "fail",
        maxConcurrency: 1,
        abort: { failureRatio: 0.5, minResults: 2 },
      });
      const outcomes = aborted.results.map((r) => `${r.device}:${r.outcome}:${r.result?.status}`);
      expect(outcomes.join() === "demo-1:DEVICE_STATUS_500:500,demo-2:DEVICE_STATUS_500:500", `results ${outcomes}`);
      const a = aborted.summary;
      expect(a.ended === "ABORTED" && [a.targets, a.attempted, a.failed].join() === "3,2,2", `summary ${JSON.stringify(a)}`);
      expect(pairs(a.notAttempted) === "ABORTED=1", `not attempted ${pairs(a.notAttempted)}`);
      expect(JSON.stringify(a.notAttemptedDevices) === '[{"device":"demo-3","reason":"ABORTED"}]', `${JSON.stringify(a.notAttemptedDevices)}`);
      // A device the gateway never saw is not online: with `skip` it is not called.
      const skipped = await fanOut(tc, { targets: ["demo-1", "nobody-here"], method: "echo", offline: "skip" });
      expect(skipped.results.map((r) => `${r.device}:${r.outcome}`).join() === "demo-1:OK", "results");
      const k = skipped.summary;
      expect(k.ended === "COMPLETED" && pairs(k.notAttempted) === "OFFLINE=1", `skipped ${JSON.stringify(k)}`);
      expect(JSON.stringify(k.notAttemptedDevices) === '[{"device":"nobody-here","reason":"OFFLINE"}]', "not attempted devices");
    });

    await check("invokeMany: a bad request is refused whole with INVALID_ARGUMENT, nothing called", async () => {
      const started = await metric(base, 'thingcall_fanouts_total{event="started"}');
      const echoes = await calls(base, "echo");
      const one = { targets: ["demo-1", "demo-2"], method: "echo" };
      // Refused by the gateway (its ErrorInfo, domain thingcall) ...
      for (const [what, options] of [
        ["a target listed twice", { ...one, targets: ["demo-1", "demo-1"] }],
        ["targets and a pattern", { ...one, pattern: "demo-*" }],
        ["connectTimeoutMs without offline wait", { ...one, connectTimeoutMs: 100 }],
        ["a ramp without a rate", { ...one, ramp: { startRate: 1, factor: 2, stepSuccesses: 1 } }],
        ["a negative rate", { ...one, rate: -1 }],
        ["a bad method name", { ...one, method: "ec#ho" }],
      ]) {
        const e = await rejection(() => fanOut(tc, options));
        expect(e instanceof ThingcallError, `${what}: not a ThingcallError: ${e}`);
        expect(e.reason === "INVALID_ARGUMENT" && e.domain === "thingcall", `${what}: ${e.reason} (${e.domain}) ${e.message}`);
      }
      // ... or here, what has no wire form.
      for (const [what, options] of [
        ["an unknown offline policy", { ...one, offline: "sometimes" }],
        ["a fractional maxConcurrency", { ...one, maxConcurrency: 1.5 }],
        ["a negative abort.minResults", { ...one, abort: { failureRatio: 0.5, minResults: -1 } }],
        ["a lone surrogate in a target", { ...one, targets: ["demo-\uD800"] }],
      ]) {
        const e = await rejection(() => fanOut(tc, options));
        expect(e.reason === "INVALID_ARGUMENT" && e.domain === "", `${what}: ${e.reason} (${e.domain})`);
      }
      expect((await metric(base, 'thingcall_fanouts_total{event="started"}')) === started, "a refused fan-out started");
      expect((await calls(base, "echo")) === echoes, "a refused fan-out called a device");
    });

    await check("invokeMany: aborting the signal, or leaving the loop, cancels the fan-out", async () => {
      const wide = await startGateway([], { demo: 20 });
      const c = createClient({ baseUrl: wide.base });
      await waitOnline(c, Array.from({ length: 20 }, (_, i) => `demo-${i + 1}`));
      // One call a second over 20 devices: the whole fan-out would take
      // 19 s, so a stop after the first result leaves most devices uncalled.
      const slow = { pattern: "demo-*", method: "echo", rate: 1, maxConcurrency: 1 };
      const cancelled = async (n) =>
        (await metric(wide.base, 'thingcall_fanouts_total{event="cancelled"}')) === n;

      const stop = new AbortController();
      const seen = [];
      for await (const ev of c.invokeMany({ ...slow, signal: stop.signal })) {
        seen.push(ev);
        stop.abort();
      }
      expect(seen.length === 1 && seen[0].kind === "result" && seen[0].outcome === "OK", `saw ${seen.map((e) => `${e.kind}:${e.device ?? e.ended}`)}`);
      await until("the gateway counts the fan-out cancelled", () => cancelled(1));
      // A cancelled fan-out's driver is done: what it called is final.
      const made = await calls(wide.base, "echo");
      expect(made >= 1 && made <= 4, `${made} of 20 devices called after a cancel at the first result`);

      for await (const ev of c.invokeMany(slow)) {
        expect(ev.kind === "result", `first event ${ev.kind}`);
        break;
      }
      await until("the gateway counts the second fan-out cancelled", () => cancelled(2));
      const more = (await calls(wide.base, "echo")) - made;
      expect(more >= 1 && more <= 4, `${more} of 20 devices called after leaving the loop at the first result`);
      expect((await metric(wide.base, "thingcall_fanouts_active")) === 0, "a fan-out still active");
      expect((await metric(wide.base, "thingcall_invocations_in_flight")) === 0, "calls still in flight");
    });
    console.log("all client checks passed");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
