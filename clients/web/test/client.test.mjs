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
      const until = Date.now() + SOON;
      for (;;) {
        const page = await (await fetch(`${tight.base}/metrics`)).text();
        if (/^thingcall_invocations_in_flight 1$/m.test(page)) break;
        expect(Date.now() < until, "the slow call never showed in flight");
        await new Promise((r) => setTimeout(r, 20));
      }
      const busy = await rejection(() => c.invoke("demo-1", "echo", "me too"));
      expect(busy.reason === "OVERLOADED", `reason ${busy.reason}: ${busy.message}`);
      expect(busy.retryAfter === 1, `retryAfter ${busy.retryAfter}`);
      expect((await slow).status === 200, "the slow call failed");
    });
    console.log("all client checks passed");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
