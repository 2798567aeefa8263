/** A device's answer as the client returns it, from Invoke and from each InvokeMany result. */
import { ms } from "./convert.js";
import type { InvokeResponse } from "./gen/thingcall/v1/gateway_pb.js";

/** A device's answer. A device-reported failure (e.g. status 500) is a result, not an error. */
export interface InvokeResult {
  /** The device's own status, HTTP-like; 200 when it reports none. */
  status: number;
  payload: Uint8Array;
  contentType: string;
  /** The call's id, the one its log lines and trace carry. */
  requestId: string;
  /** Gateway receipt to reply, in ms. */
  elapsedMs: number;
  /** The device's reported execution time in ms, when it reported one. */
  deviceTimeMs: number | undefined;
}

/** The plain form of the proto's answer, times in ms with their fraction. */
export function invokeResult(r: InvokeResponse): InvokeResult {
  return {
    status: r.status,
    payload: r.payload,
    contentType: r.contentType,
    requestId: r.requestId,
    elapsedMs: ms(r.elapsed) ?? 0,
    deviceTimeMs: ms(r.deviceTime),
  };
}
