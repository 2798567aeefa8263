/**
 * InvokeMany's options and events in the client's plain style: one method
 * on many devices, one `result` event per device as its call ends, then
 * exactly one `summary`. The request is built and checked here; the
 * gateway checks the rest and refuses a bad fan-out whole, before it
 * calls any device.
 */
import { create } from "@bufbuild/protobuf";

import { contract, duration, metadata, ms, payload, uint32, utf8, type ContractName } from "./convert.js";
import { ThingcallError } from "./errors.js";
import {
  AbortPolicySchema,
  InvokeManyRequestSchema,
  OfflinePolicy,
  RampSchema,
  type DeviceResult,
  type InvokeManyEvent as InvokeManyEventPb,
  type InvokeManyRequest,
  type InvokeManySummary,
} from "./gen/thingcall/v1/gateway_pb.js";
import { invokeResult, type InvokeResult } from "./result.js";

/**
 * What a device that is offline (or unknown) when its turn comes gets:
 * `report` (the default) a DEVICE_OFFLINE or DEVICE_NOT_FOUND result at
 * once, `skip` no call (counted in the summary's `notAttempted` as
 * OFFLINE), `wait` a call that waits up to `connectTimeoutMs` for it.
 */
export type OfflineName = "report" | "skip" | "wait";

/**
 * Start at `startRate` calls/s and multiply the rate by `factor` after
 * every `stepSuccesses` successful calls, up to the fan-out's `rate`
 * (AWS IoT Jobs' exponential rollout).
 */
export interface RampOptions {
  startRate: number;
  factor: number;
  stepSuccesses: number;
}

/**
 * Stop starting calls once, after at least `minResults` results, more than
 * `failureRatio` of them failed (any outcome but OK). Calls in flight then
 * finish and are reported.
 */
export interface AbortOptions {
  failureRatio: number;
  minResults: number;
}

/** One fan-out: which devices, what to call, how fast, and when to stop. */
export interface InvokeManyOptions {
  /** The method to run on every device. */
  method: string;
  /** Device ids, each at most once; or else `pattern`. */
  targets?: string[];
  /** A glob over the devices the gateway knows (`*`, `?`), taken in id order. */
  pattern?: string;
  /** Sent to every device; a string goes as UTF-8 text. */
  payload?: Uint8Array | string;
  /** Each call's reply deadline in ms; the gateway's default (10 s) when absent. */
  timeoutMs?: number;
  /** With `offline: "wait"`: how long each call waits for its device, in ms. */
  connectTimeoutMs?: number;
  /** `report` when absent; see {@link OfflineName}. */
  offline?: OfflineName;
  /** This fan-out's calls in flight at once; the gateway's default (16) when absent. */
  maxConcurrency?: number;
  /** Calls started per second; as fast as `maxConcurrency` allows when absent. */
  rate?: number;
  /** Start slower and speed up to `rate` (needs `rate`). */
  ramp?: RampOptions;
  /** Stop starting calls when too many fail. */
  abort?: AbortOptions;
  /**
   * Each device's call gets the key `{key}:{device}`, so a retried fan-out
   * with the same key runs each device at most once within the gateway's
   * idempotency window. At most 127 bytes.
   */
  idempotencyKey?: string;
  /** MIME type of the payload; `text/plain; charset=utf-8` for a string payload when absent. */
  contentType?: string;
  /** Forwarded to every device as MQTT user properties. */
  metadata?: Record<string, string>;
  /** The devices' MQTT contract; the gateway's default when absent. */
  contract?: ContractName;
  /**
   * Cancels the fan-out: the gateway starts no more calls, and the
   * iteration ends without a summary and without an error. Leaving the
   * loop early (`break`) cancels it too.
   */
  signal?: AbortSignal;
}

/** How one device's call ended. */
export interface DeviceResultEvent {
  kind: "result";
  device: string;
  /**
   * `OK` (answered with a status below 400), `DEVICE_STATUS_{status}`
   * (answered with 400 or more), or the error reason a single invoke would
   * have failed with (`DEVICE_TIMEOUT`, `DEVICE_OFFLINE`, ...).
   */
  outcome: string;
  /** The device's answer, when it answered. */
  result: InvokeResult | undefined;
  /** Why, when it did not answer; empty otherwise. */
  message: string;
  requestId: string;
  /** Gateway receipt of the call to its end, in ms. */
  elapsedMs: number;
}

/** A device that was not called, and why: OFFLINE (skipped), ABORTED, SHUTTING_DOWN. */
export interface NotAttemptedDevice {
  device: string;
  reason: string;
}

/** The last event of a fan-out. */
export interface InvokeManySummaryEvent {
  kind: "summary";
  /** Devices selected. */
  targets: number;
  /** Calls made, a result each. */
  attempted: number;
  /** Results with outcome OK. */
  succeeded: number;
  /** The other results. */
  failed: number;
  /** Results per outcome. */
  outcomes: Record<string, number>;
  /** Of the results' elapsed times, in ms; absent when there were no results. */
  p50Ms: number | undefined;
  p99Ms: number | undefined;
  /** Devices not called, per reason. */
  notAttempted: Record<string, number>;
  /** The first 1000 devices not called, with their reasons. */
  notAttemptedDevices: NotAttemptedDevice[];
  /** `COMPLETED`, `ABORTED` or `SHUTTING_DOWN`. */
  ended: string;
  /** The whole fan-out, in ms. */
  elapsedMs: number;
}

/** One event of an InvokeMany stream: the proto's `oneof kind`, flattened. */
export type InvokeManyEvent = DeviceResultEvent | InvokeManySummaryEvent;

const OFFLINE: Record<OfflineName, OfflinePolicy> = {
  report: OfflinePolicy.REPORT,
  skip: OfflinePolicy.SKIP,
  wait: OfflinePolicy.WAIT,
};

function offline(name: OfflineName | undefined): OfflinePolicy {
  if (name === undefined) return OfflinePolicy.UNSPECIFIED;
  const p = Object.hasOwn(OFFLINE, name) ? OFFLINE[name] : undefined;
  if (p === undefined) throw ThingcallError.invalidArgument(`unknown offline policy ${String(name)}`);
  return p;
}

/** The request of `options`; throws INVALID_ARGUMENT for what has no wire form. */
export function invokeManyRequest(options: InvokeManyOptions): InvokeManyRequest {
  const body = payload(options.payload ?? new Uint8Array(), options.contentType);
  const { ramp, abort } = options;
  return create(InvokeManyRequestSchema, {
    targets: (options.targets ?? []).map((t) => utf8("target", t)),
    pattern: utf8("pattern", options.pattern ?? ""),
    method: utf8("method", options.method),
    payload: body.payload,
    contentType: body.contentType,
    timeout: duration("timeoutMs", options.timeoutMs),
    connectTimeout: duration("connectTimeoutMs", options.connectTimeoutMs),
    metadata: metadata(options.metadata),
    contract: contract(options.contract),
    offline: offline(options.offline),
    maxConcurrency: uint32("maxConcurrency", options.maxConcurrency),
    rate: options.rate ?? 0,
    ramp: ramp
      ? create(RampSchema, {
          startRate: ramp.startRate,
          factor: ramp.factor,
          stepSuccesses: uint32("ramp.stepSuccesses", ramp.stepSuccesses),
        })
      : undefined,
    abort: abort
      ? create(AbortPolicySchema, {
          failureRatio: abort.failureRatio,
          minResults: uint32("abort.minResults", abort.minResults),
        })
      : undefined,
    idempotencyKey: utf8("idempotencyKey", options.idempotencyKey ?? ""),
  });
}

function deviceResult(r: DeviceResult): DeviceResultEvent {
  return {
    kind: "result",
    device: r.device,
    outcome: r.outcome,
    result: r.response ? invokeResult(r.response) : undefined,
    message: r.message,
    requestId: r.requestId,
    elapsedMs: ms(r.elapsed) ?? 0,
  };
}

function summary(s: InvokeManySummary): InvokeManySummaryEvent {
  return {
    kind: "summary",
    targets: s.targets,
    attempted: s.attempted,
    succeeded: s.succeeded,
    failed: s.failed,
    outcomes: { ...s.outcomes },
    p50Ms: ms(s.p50),
    p99Ms: ms(s.p99),
    notAttempted: { ...s.notAttempted },
    notAttemptedDevices: s.notAttemptedDevices.map((n) => ({ device: n.device, reason: n.reason })),
    ended: s.ended,
    elapsedMs: ms(s.elapsed) ?? 0,
  };
}

/** The flat form of one stream message; `undefined` for a kind this client does not know. */
export function invokeManyEvent(e: InvokeManyEventPb): InvokeManyEvent | undefined {
  switch (e.kind.case) {
    case "result":
      return deviceResult(e.kind.value);
    case "summary":
      return summary(e.kind.value);
    default:
      return undefined;
  }
}
