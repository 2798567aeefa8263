/**
 * The outcome of the last call: the device's answer or the gateway's
 * reason, and where the time went. The browser measures the total; the
 * gateway reports its own part (`elapsed`) and the device's
 * (`device_time`), so the rest splits without clock agreement:
 * network = total - elapsed, gateway + broker = elapsed - device_time.
 */
import type { InvokeResult, ThingcallError } from "../../src/index.js";
import { byTestId, formatMs } from "./dom.js";
import { renderPayload, type Mode } from "./payload.js";

export class ResultView {
  private readonly root = byTestId("result");
  private readonly t = (id: string) => byTestId(id, this.root);

  /** A device's answer, its payload shown in `mode`. */
  showOk(r: InvokeResult, mode: Mode, totalMs: number): void {
    this.root.dataset["outcome"] = r.status >= 200 && r.status < 300 ? "ok" : "device-error";
    this.t("result-status").textContent = String(r.status);
    this.t("result-request-id").textContent = r.requestId;
    this.t("result-content-type").textContent = r.contentType;
    const { text, note } = renderPayload(mode, r.payload);
    this.t("result-payload").textContent = note ? `${note}\n${text}` : text;
    this.latency(totalMs, r.elapsedMs, r.deviceTimeMs);
    this.root.hidden = false;
  }

  /** A failed call: its reason first, a pointer at the token field when that is the fix. */
  showError(e: ThingcallError, totalMs: number): void {
    this.root.dataset["outcome"] = "error";
    this.t("error-reason").textContent = e.reason;
    this.t("error-message").textContent = e.message;
    this.t("error-request-id").textContent = e.requestId ?? "none (not sent to a device)";
    this.t("auth-hint").hidden = e.reason !== "UNAUTHENTICATED";
    this.latency(totalMs, undefined, undefined);
    this.root.hidden = false;
  }

  private latency(total: number, elapsed: number | undefined, device: number | undefined): void {
    const dash = "—";
    this.t("latency-total").textContent = formatMs(total);
    this.t("latency-network").textContent = elapsed === undefined ? dash : formatMs(Math.max(0, total - elapsed));
    this.t("latency-gateway").textContent =
      elapsed === undefined ? dash : formatMs(Math.max(0, elapsed - (device ?? 0)));
    this.t("latency-device").textContent =
      device === undefined ? (elapsed === undefined ? dash : "not reported") : formatMs(device);
  }
}
