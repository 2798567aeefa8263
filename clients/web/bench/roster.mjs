// The console's device roster at a million devices, in Node: what a
// snapshot, updates, new ids and removals cost, against the old render's
// sort of the whole map. Figures go to BENCHMARKS.md, never into a test.
//
//   node bench/roster.mjs [devices]
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const bundled = await build({
  entryPoints: [join(here, "..", "console", "src", "roster.ts")],
  bundle: true,
  format: "esm",
  write: false,
  logLevel: "warning",
});
const { Roster } = await import(`data:text/javascript,${encodeURIComponent(bundled.outputFiles[0].text)}`);

const N = Number(process.argv[2] ?? 1_000_000);
const ids = Array.from({ length: N }, (_, i) => `dev-${String(i).padStart(7, "0")}`);
const since = new Date();
const dev = (id, online = true) => ({ id, online, methods: [], since, session: "s" });
const devs = ids.map((id) => dev(id));
const ms = (f) => { const t = performance.now(); f(); return performance.now() - t; };
const r = new Roster();
console.log(`snapshot of ${N} devices in id order, set(): ${ms(() => { for (const d of devs) r.set(d); }).toFixed(0)} ms`);
console.log(`first(500) after it: ${ms(() => r.first(500)).toFixed(1)} ms`);
const upd = ids.filter((_, i) => i % 997 === 0).slice(0, 1000).map((id) => dev(id, false));
console.log(`1000 updates of known devices (set + rank): ${ms(() => { for (const d of upd) { r.set(d); r.rank(d.id); } }).toFixed(1)} ms`);
const fresh = Array.from({ length: 1000 }, (_, i) => dev(`dev-${String(i * 1000).padStart(7, "0")}x`));
console.log(`1000 new ids out of order: set() ${ms(() => { for (const d of fresh) r.set(d); }).toFixed(1)} ms, then the frame's first(500) ${ms(() => r.first(500)).toFixed(1)} ms`);
console.log(`1000 removals: delete() ${ms(() => { for (const d of fresh) r.delete(d.id); }).toFixed(1)} ms, then the frame's first(500) ${ms(() => r.first(500)).toFixed(1)} ms`);
let t = 0; for (let k = 0; k < 100; k++) t += ms(() => r.first(500));
console.log(`first(500) with nothing pending: ${(t / 100 * 1000).toFixed(0)} µs`);
const m = new Map(devs.map((d) => [d.id, d]));
let s = 0; for (let k = 0; k < 3; k++) s += ms(() => [...m.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
console.log(`the old render's copy + sort of ${N} (already in order): ${(s / 3).toFixed(0)} ms`);
