/**
 * The TypeScript client of the thingcall gateway: gRPC-web over `fetch`, so
 * the same code runs in a browser (the console the gateway serves) and in
 * Node 18+. Results and events are plain objects with numbers in
 * milliseconds, so callers never touch protobuf types; every failure is a
 * {@link ThingcallError}.
 */
import { create } from "@bufbuild/protobuf";
import { createClient as createConnectClient } from "@connectrpc/connect";
import type { Client as ConnectClient, Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { contract, date, duration, metadata, ms, payload as body, utf8, type ContractName } from "./convert.js";
import { toThingcallError } from "./errors.js";
import { DeviceGateway, InvokeRequestSchema, type Device, type DeviceEvent } from "./gen/thingcall/v1/gateway_pb.js";
import {
  invokeManyEvent,
  invokeManyRequest,
  type InvokeManyEvent,
  type InvokeManyOptions,
} from "./invoke-many.js";
import { invokeResult, type InvokeResult } from "./result.js";

export type { ContractName } from "./convert.js";
export type { InvokeResult } from "./result.js";

/** Where the gateway is and who the caller is. */
export interface ClientOptions {
  /** The gateway's one port, e.g. `http://127.0.0.1:8080` (or the page's origin). */
  baseUrl: string;
  /**
   * API key or JWT, sent as `authorization: Bearer ...` on every call. A
   * function is asked before each call, so a console can change the token
   * without building a new client.
   */
  token?: string | (() => string | undefined);
  /** Extra Connect interceptors (tracing, logging), run after the auth one. */
  interceptors?: Interceptor[];
  /** A `fetch` to use instead of the global one (tests, proxies). */
  fetch?: typeof globalThis.fetch;
}

/** Options of one call; all optional, so new ones can join without breaking callers. */
export interface InvokeOptions {
  /** Reply deadline in ms; the gateway's default (10 s) when absent. */
  timeoutMs?: number;
  /** How long to wait for an offline device to come online, in ms; default 0. */
  connectTimeoutMs?: number;
  /** Runs the call at most once per key and target (README, "Retries and idempotency keys"). */
  idempotencyKey?: string;
  /** Forwarded to the device as MQTT user properties. */
  metadata?: Record<string, string>;
  /** MIME type of the payload; `text/plain; charset=utf-8` for a string payload when absent. */
  contentType?: string;
  /** The device's MQTT contract; the gateway's default when absent. */
  contract?: ContractName;
  /** Cancels the call (the gateway stops waiting for it; keyed calls still run). */
  signal?: AbortSignal;
}

/** A device as the gateway last saw it. */
export interface DeviceInfo {
  id: string;
  online: boolean;
  /** As announced; empty = unknown, any method may be tried. */
  methods: string[];
  /** Last presence change seen by the gateway. */
  since: Date | undefined;
  /** Session id the device announced with its presence. */
  session: string;
}

/** Options of a {@link Client.watch} stream. */
export interface WatchOptions {
  /** Also relay device events (`thingcall/devices/{id}/events/{name}`). */
  includeEvents?: boolean;
  /** Ends the stream; the iteration then finishes without an error. */
  signal?: AbortSignal;
}

/** Options of a {@link Client.devices} listing. */
export interface ListOptions {
  /** Devices per page asked of the gateway; its default (1000) when absent. */
  pageSize?: number;
  signal?: AbortSignal;
}

/** One event of a watch stream: the proto's `oneof kind`, flattened. */
export type WatchEvent =
  | { kind: "presence"; time: Date | undefined; device: DeviceInfo }
  /** The initial snapshot is complete; what follows are changes. */
  | { kind: "synced"; time: Date | undefined; devices: number }
  | {
      kind: "invocation";
      time: Date | undefined;
      device: string;
      method: string;
      requestId: string;
      /** `OK` or the error reason. */
      outcome: string;
      status: number;
      elapsedMs: number;
    }
  /** This watcher was too slow and lost `dropped` events. */
  | { kind: "lagged"; time: Date | undefined; dropped: number }
  | {
      kind: "event";
      time: Date | undefined;
      device: string;
      name: string;
      payload: Uint8Array;
      contentType: string;
    }
  /** The gateway is shutting down: the last event of the stream. */
  | { kind: "closing"; time: Date | undefined; reason: string };

/** The calls of one gateway. */
export interface Client {
  /** Runs `method` on device `target` and returns its answer. */
  invoke(
    target: string,
    method: string,
    payload?: Uint8Array | string,
    options?: InvokeOptions,
  ): Promise<InvokeResult>;
  /**
   * Runs `options.method` on many devices (a list, or a glob over the
   * devices the gateway knows): a `result` event per device as its call
   * ends, then one `summary`, the last event. A bad request is refused
   * whole (INVALID_ARGUMENT) before any device is called.
   */
  invokeMany(options: InvokeManyOptions): AsyncIterable<InvokeManyEvent>;
  /** Presence of every device matching `pattern` (id or glob), then changes. */
  watch(pattern?: string, options?: WatchOptions): AsyncIterable<WatchEvent>;
  /** Every device matching `pattern`, in id order, fetched page by page. */
  devices(pattern?: string, options?: ListOptions): AsyncIterable<DeviceInfo>;
  /** One device's presence; `DEVICE_NOT_FOUND` if the gateway never saw it. */
  device(id: string, options?: { signal?: AbortSignal }): Promise<DeviceInfo>;
}

/** A client of the gateway at `options.baseUrl`. */
export function createClient(options: ClientOptions): Client {
  const transport = createGrpcWebTransport({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    interceptors: [bearer(options.token), ...(options.interceptors ?? [])],
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  return new GatewayClient(createConnectClient(DeviceGateway, transport));
}

/**
 * Sends the token as a header, never in the URL, so it stays out of access
 * logs and browser history.
 */
function bearer(token: ClientOptions["token"]): Interceptor {
  return (next) => async (req) => {
    const t = typeof token === "function" ? token() : token;
    if (t) req.header.set("authorization", `Bearer ${t}`);
    return next(req);
  };
}

function deviceInfo(d: Device): DeviceInfo {
  return {
    id: d.id,
    online: d.online,
    methods: [...d.methods],
    since: date(d.since),
    session: d.session,
  };
}

/** The flat form of one stream message; `undefined` for a kind this client does not know. */
function watchEvent(e: DeviceEvent): WatchEvent | undefined {
  const time = date(e.time);
  const k = e.kind;
  switch (k.case) {
    case "presence":
      return { kind: "presence", time, device: deviceInfo(k.value) };
    case "synced":
      return { kind: "synced", time, devices: k.value.devices };
    case "invocation":
      return {
        kind: "invocation",
        time,
        device: e.device,
        method: k.value.method,
        requestId: k.value.requestId,
        outcome: k.value.outcome,
        status: k.value.status,
        elapsedMs: ms(k.value.elapsed) ?? 0,
      };
    case "lagged":
      return { kind: "lagged", time, dropped: Number(k.value.dropped) };
    case "event":
      return {
        kind: "event",
        time,
        device: e.device,
        name: k.value.name,
        payload: k.value.payload,
        contentType: k.value.contentType,
      };
    case "closing":
      return { kind: "closing", time, reason: k.value.reason };
    default:
      return undefined;
  }
}

/** True when `signal` ended the stream, which is a normal end, not a failure. */
function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

class GatewayClient implements Client {
  constructor(private readonly rpc: ConnectClient<typeof DeviceGateway>) {}

  async invoke(
    target: string,
    method: string,
    payload: Uint8Array | string = new Uint8Array(),
    options: InvokeOptions = {},
  ): Promise<InvokeResult> {
    const req = create(InvokeRequestSchema, {
      target: utf8("target", target),
      method: utf8("method", method),
      ...body(payload, options.contentType),
      timeout: duration("timeoutMs", options.timeoutMs),
      connectTimeout: duration("connectTimeoutMs", options.connectTimeoutMs),
      idempotencyKey: utf8("idempotencyKey", options.idempotencyKey ?? ""),
      metadata: metadata(options.metadata),
      contract: contract(options.contract),
    });
    try {
      return invokeResult(await this.rpc.invoke(req, { signal: options.signal }));
    } catch (err) {
      throw toThingcallError(err);
    }
  }

  async *invokeMany(options: InvokeManyOptions): AsyncIterable<InvokeManyEvent> {
    const { signal } = options;
    // Our own controller, aborted however the loop ends, so leaving it
    // early cancels the request (and with it the fan-out) as the caller's
    // signal does, whatever the transport does with an unread body.
    const stop = new AbortController();
    const relay = () => stop.abort(signal?.reason);
    signal?.addEventListener("abort", relay, { once: true });
    try {
      const req = invokeManyRequest(options);
      if (signal?.aborted) return;
      const stream = this.rpc.invokeMany(req, { signal: stop.signal });
      for await (const e of stream) {
        const ev = invokeManyEvent(e);
        if (ev) yield ev;
      }
    } catch (err) {
      if (aborted(signal)) return;
      throw toThingcallError(err);
    } finally {
      signal?.removeEventListener("abort", relay);
      stop.abort();
    }
  }

  async *watch(pattern = "", options: WatchOptions = {}): AsyncIterable<WatchEvent> {
    const { signal } = options;
    try {
      const stream = this.rpc.watchDevice(
        { target: utf8("pattern", pattern), includeEvents: options.includeEvents ?? false },
        { signal },
      );
      for await (const e of stream) {
        const ev = watchEvent(e);
        if (ev) yield ev;
      }
    } catch (err) {
      if (aborted(signal)) return;
      throw toThingcallError(err);
    }
  }

  async *devices(pattern = "", options: ListOptions = {}): AsyncIterable<DeviceInfo> {
    let pageToken = "";
    try {
      do {
        const page = await this.rpc.listDevices(
          { target: utf8("pattern", pattern), pageSize: options.pageSize ?? 0, pageToken },
          { signal: options.signal },
        );
        for (const d of page.devices) yield deviceInfo(d);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
    } catch (err) {
      throw toThingcallError(err);
    }
  }

  async device(id: string, options: { signal?: AbortSignal } = {}): Promise<DeviceInfo> {
    try {
      return deviceInfo(await this.rpc.getDevice({ target: utf8("id", id) }, { signal: options.signal }));
    } catch (err) {
      throw toThingcallError(err);
    }
  }
}
