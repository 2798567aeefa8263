// A real thingcall-server process for the tests: the README's demo gateway
// on free ports, its address read from its own "listening" log line.
import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
/** Generous bound for "should happen soon" on a loaded 2-core machine. */
export const SOON = 30_000;

/** A failed check: its message says what was expected and not seen. */
export class CheckFailed extends Error {}

/** Runs one named check, printing `ok - name`; a failure names the check. */
export async function check(name, f) {
  try {
    await f();
    console.log(`ok - ${name}`);
  } catch (e) {
    if (e instanceof CheckFailed && e.message.startsWith(name)) throw e;
    throw new CheckFailed(`${name}: ${String(e?.message ?? e).split("\n")[0]}`);
  }
}

const running = new Set();
/** Kills every gateway still running: on exit, on a signal, after a failure. */
export function stopAll() {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  running.clear();
}
process.on("exit", stopAll);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    stopAll();
    process.exit(130);
  });
}

/**
 * Starts `thingcall-server --demo 3` (plus `extra` arguments; `demo` other
 * than 3 for a fan-out wide enough to stop halfway, or a list longer
 * than the console shows) on free ports; resolves with `{ base, mqtt,
 * child }` (`mqtt`: the embedded broker's `host:port`) once it logs that
 * it listens.
 */
export function startGateway(extra = [], { demo = 3 } = {}) {
  const bin = process.env.THINGCALL_SERVER_BIN ?? join(root, "target", "debug", "thingcall-server");
  const args = ["--demo", String(demo), "--listen", "127.0.0.1:0", "--embedded-broker-listen", "127.0.0.1:0"];
  const child = spawn(bin, [...args, "--log-format", "json", ...extra], {
    env: { ...process.env, RUST_LOG: "warn,thingcall_server=info" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  running.add(child);
  return new Promise((ok, fail) => {
    const timer = setTimeout(
      () => fail(new CheckFailed(`${bin} did not log "thingcall-server listening" within ${SOON} ms`)),
      SOON,
    );
    child.on("error", (e) => fail(new CheckFailed(`cannot start ${bin}: ${e.message}`)));
    child.on("exit", (code) => fail(new CheckFailed(`${bin} exited (${code}) before listening`)));
    createInterface({ input: child.stderr }).on("line", (line) => {
      let v;
      try {
        v = JSON.parse(line);
      } catch {
        return;
      }
      if (v?.fields?.message === "thingcall-server listening" && v.fields.grpc) {
        clearTimeout(timer);
        ok({ base: `http://${v.fields.grpc}`, mqtt: v.fields.mqtt, child });
      }
    });
  });
}

/** Runs `main`, exiting non-zero with a clear message on any failed check; gateways are killed either way. */
export async function runTest(main) {
  try {
    await main();
  } catch (e) {
    console.error(`FAILED: ${e instanceof CheckFailed ? e.message : e?.stack ?? e}`);
    process.exitCode = 1;
  } finally {
    stopAll();
  }
}
