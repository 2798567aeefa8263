/**
 * `@thingcall/client`: call methods on IoT devices through a thingcall
 * gateway from TypeScript, in a browser or in Node (gRPC-web over fetch).
 *
 * ```ts
 * const tc = createClient({ baseUrl: "http://127.0.0.1:8080" });
 * const r = await tc.invoke("demo-1", "echo", "hi", { timeoutMs: 5000 });
 * for await (const ev of tc.invokeMany({ pattern: "demo-*", method: "echo", rate: 10 })) {
 *   if (ev.kind === "result") console.log(ev.device, ev.outcome);
 *   else console.log(`${ev.succeeded}/${ev.targets} OK, ${ev.ended}`);
 * }
 * ```
 */
export { createClient } from "./client.js";
export type {
  Client,
  ClientOptions,
  ContractName,
  DeviceInfo,
  InvokeOptions,
  InvokeResult,
  ListOptions,
  WatchEvent,
  WatchOptions,
} from "./client.js";
export type {
  AbortOptions,
  DeviceResultEvent,
  InvokeManyEvent,
  InvokeManyOptions,
  InvokeManySummaryEvent,
  NotAttemptedDevice,
  OfflineName,
  RampOptions,
} from "./invoke-many.js";
export { DOMAIN, ThingcallError, toThingcallError } from "./errors.js";
