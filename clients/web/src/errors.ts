/**
 * thingcall's errors as one class. The gateway puts a `google.rpc.ErrorInfo`
 * into every gRPC error, and its `reason` (not the message text, not the
 * gRPC code) is the contract callers branch on, so the client surfaces it
 * first.
 */
import { Code, ConnectError } from "@connectrpc/connect";

import { ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** The `ErrorInfo.domain` of the gateway's own errors. */
export const DOMAIN = "thingcall";

/** A failed call or query, with the gateway's reason when it gave one. */
export class ThingcallError extends Error {
  /**
   * `DEVICE_OFFLINE`, `DEVICE_TIMEOUT`, `UNAUTHENTICATED`, ... (README,
   * "Errors"). When the gateway sent no ErrorInfo (a proxy answered, the
   * network failed) it is the gRPC code in the same style, e.g. `UNAVAILABLE`.
   */
  readonly reason: string;
  /** `thingcall` for the gateway's reasons; empty when no ErrorInfo came. */
  readonly domain: string;
  /** The gRPC status code, for callers that need it. */
  readonly code: Code;
  /** The failed Invoke's request id, the one its log lines and trace carry. */
  readonly requestId: string | undefined;
  /** The ErrorInfo metadata: `device`, `method`, `limit`, ... */
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * For `DEVICE_TIMEOUT`: whether the device had acknowledged the call (it
   * may have run it), so a caller knows if a blind retry is safe.
   */
  readonly accepted: boolean | undefined;
  /** Seconds to wait before a retry, when the gateway said so. */
  readonly retryAfter: number | undefined;

  constructor(
    reason: string,
    message: string,
    init: {
      code?: Code;
      domain?: string;
      metadata?: Record<string, string>;
      retryAfter?: number;
      cause?: unknown;
    } = {},
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "ThingcallError";
    this.reason = reason;
    this.domain = init.domain ?? "";
    this.code = init.code ?? Code.Unknown;
    this.metadata = Object.freeze({ ...(init.metadata ?? {}) });
    this.requestId = this.metadata["requestId"];
    const accepted = this.metadata["accepted"];
    this.accepted = accepted === undefined ? undefined : accepted === "true";
    this.retryAfter = init.retryAfter;
  }

  /** Bad input found before anything was sent. */
  static invalidArgument(message: string): ThingcallError {
    return new ThingcallError("INVALID_ARGUMENT", message, {
      code: Code.InvalidArgument,
    });
  }
}

/** `Code.DeadlineExceeded` -> `DEADLINE_EXCEEDED`, the ErrorInfo style. */
function codeName(code: Code): string {
  return (Code[code] ?? "Unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Seconds from a `retry-after` header or metadata value, if it is one. */
function seconds(value: string | null | undefined): number | undefined {
  if (value == null || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

/**
 * Any error a call raised, as a {@link ThingcallError}: the ErrorInfo when
 * the gateway sent one, the gRPC code otherwise. Already-converted errors
 * pass through, so every layer may call this.
 */
export function toThingcallError(err: unknown): ThingcallError {
  if (err instanceof ThingcallError) return err;
  const ce = ConnectError.from(err);
  const info = ce.findDetails(ErrorInfoSchema)[0];
  const delay = ce.findDetails(RetryInfoSchema)[0]?.retryDelay;
  const retryAfter =
    (delay ? Number(delay.seconds) + delay.nanos / 1e9 : undefined) ??
    seconds(ce.metadata.get("retry-after"));
  const init = {
    code: ce.code,
    retryAfter,
    cause: err,
    ...(info ? { domain: info.domain, metadata: { ...info.metadata } } : {}),
  };
  const reason = info?.reason || codeName(ce.code);
  return new ThingcallError(reason, ce.rawMessage, init);
}
