/**
 * Conversions between the client's plain values (strings, numbers in ms)
 * and protobuf fields, shared by every call. Each refuses input that has no
 * faithful wire form locally, as INVALID_ARGUMENT, before anything is sent:
 * protobuf-es would otherwise send something else (U+FFFD for a lone
 * surrogate) or fail with an error that carries no reason.
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";

import { ThingcallError } from "./errors.js";
import { Contract } from "./gen/thingcall/v1/gateway_pb.js";

/** How a device's answer comes back: the contract the device speaks. */
export type ContractName = "native" | "seed";

const encoder = new TextEncoder();

/** A lone UTF-16 surrogate: a string that has no UTF-8 form. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * `value` if it has a UTF-8 form. protobuf-es would encode a lone surrogate
 * as U+FFFD, silently naming another device or method; every other
 * surface refuses such input as INVALID_ARGUMENT, and so does this one,
 * before anything is sent.
 */
export function utf8(name: string, value: string): string {
  if (LONE_SURROGATE.test(value)) {
    throw ThingcallError.invalidArgument(`${name} is not valid Unicode (a lone surrogate)`);
  }
  return value;
}

/** A duration option in ms, refused locally when it cannot be one. */
export function duration(name: string, ms: number | undefined): Duration | undefined {
  if (ms === undefined) return undefined;
  if (!Number.isFinite(ms) || ms < 0) {
    throw ThingcallError.invalidArgument(`${name} must be a non-negative number of ms, got ${ms}`);
  }
  const seconds = Math.floor(ms / 1000);
  return create(DurationSchema, {
    seconds: BigInt(seconds),
    nanos: Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6)),
  });
}

/**
 * A count option as a protobuf `uint32`; 0 when absent. protobuf-es throws
 * a bare Error while encoding anything else, which would reach the caller
 * without a reason.
 */
export function uint32(name: string, n: number | undefined): number {
  if (n === undefined) return 0;
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) {
    throw ThingcallError.invalidArgument(`${name} must be a whole number from 0 to 4294967295, got ${n}`);
  }
  return n;
}

/**
 * A payload's bytes and content type: a string goes as UTF-8 text, labelled
 * `text/plain; charset=utf-8` unless the caller named a type.
 */
export function payload(
  value: Uint8Array | string,
  contentType: string | undefined,
): { payload: Uint8Array; contentType: string } {
  const text = typeof value === "string";
  return {
    payload: text ? encoder.encode(utf8("payload", value)) : value,
    contentType: utf8("contentType", contentType ?? (text ? "text/plain; charset=utf-8" : "")),
  };
}

/** MQTT user properties to forward, each key and value checked for a UTF-8 form. */
export function metadata(m: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m ?? {})) {
    out[utf8("metadata key", k)] = utf8(`metadata value of ${k}`, v);
  }
  return out;
}

const CONTRACTS: Record<ContractName, Contract> = {
  native: Contract.NATIVE,
  seed: Contract.SEED,
};

/** The proto's contract; refused locally when the name is not one. */
export function contract(name: ContractName | undefined): Contract {
  if (!name) return Contract.UNSPECIFIED;
  const c = Object.hasOwn(CONTRACTS, name) ? CONTRACTS[name] : undefined;
  if (c === undefined) throw ThingcallError.invalidArgument(`unknown contract ${String(name)}`);
  return c;
}

export function date(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

/**
 * Milliseconds with their fraction: protobuf-es's `durationMs` rounds to
 * whole ms, which would turn a 40 µs device time into 0 and hide the
 * latency breakdown of fast calls.
 */
export function ms(d: Duration | undefined): number | undefined {
  return d ? Number(d.seconds) * 1000 + d.nanos / 1e6 : undefined;
}
