/**
 * The call form: method picker from the device's announced methods (a free
 * text field when it announced none), payload editor, timeouts. Input is
 * checked before anything is sent; a bad field shows why and sends nothing.
 */
import type { Client, DeviceInfo } from "../../src/index.js";
import { toThingcallError } from "../../src/index.js";
import { byTestId, el, notice } from "./dom.js";
import type { History } from "./history.js";
import { encodePayload, isMode, PayloadError, type Mode } from "./payload.js";
import type { ResultView } from "./result.js";

/** What the form asks the rest of the page for. */
export interface CallDeps {
  client: Client;
  result: ResultView;
  history: History;
  /** Called when a call failed for want of credentials. */
  onUnauthenticated(): void;
}

/** A field's value as whole milliseconds, or an explanation of why not. */
function millis(input: HTMLInputElement, name: string, min: number): number {
  const v = input.value.trim();
  if (!/^\d+$/.test(v) || Number(v) < min) {
    throw new PayloadError(`${name} must be a whole number of milliseconds, at least ${min}`);
  }
  return Number(v);
}

export class CallForm {
  private readonly form = byTestId<HTMLFormElement>("call-form");
  private readonly title = byTestId("selected-device");
  private readonly methodSelect = byTestId<HTMLSelectElement>("method");
  private readonly methodText = byTestId<HTMLInputElement>("method-text");
  private readonly mode = byTestId<HTMLSelectElement>("payload-mode");
  private readonly payload = byTestId<HTMLTextAreaElement>("payload");
  private readonly timeout = byTestId<HTMLInputElement>("timeout");
  private readonly connectTimeout = byTestId<HTMLInputElement>("connect-timeout");
  private readonly error = byTestId("input-error");
  private readonly send = byTestId<HTMLButtonElement>("send");
  private device: DeviceInfo | undefined;
  private methods: string[] = [];

  constructor(private readonly deps: CallDeps) {
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.submit();
    });
    // An edit clears the previous complaint about the input.
    for (const f of [this.payload, this.timeout, this.connectTimeout, this.mode]) {
      f.addEventListener("input", () => notice(this.error, ""));
    }
  }

  /** Shows `d` (or nothing) as the call's target; keeps the method when it still exists. */
  setDevice(d: DeviceInfo | undefined): void {
    this.device = d;
    this.send.disabled = d === undefined;
    if (!d) {
      this.title.textContent = "no device selected";
      return;
    }
    this.title.textContent = `${d.id} · ${d.online ? "online" : "offline"}`;
    this.title.dataset["online"] = String(d.online);
    const same = d.methods.length === this.methods.length && d.methods.every((m, i) => m === this.methods[i]);
    if (same) return;
    this.methods = [...d.methods];
    const keep = this.methodSelect.value;
    this.methodSelect.replaceChildren(...this.methods.map((m) => el("option", "", m)));
    if (this.methods.includes(keep)) this.methodSelect.value = keep;
    const announced = this.methods.length > 0;
    this.methodSelect.hidden = !announced;
    this.methodText.hidden = announced;
  }

  private method(): string {
    return (this.methods.length > 0 ? this.methodSelect.value : this.methodText.value).trim();
  }

  private async submit(): Promise<void> {
    const d = this.device;
    if (!d) return;
    let request;
    try {
      const method = this.method();
      if (!method) throw new PayloadError("choose a method");
      const mode: Mode = isMode(this.mode.value) ? this.mode.value : "text";
      const body = encodePayload(mode, this.payload.value);
      request = {
        method,
        mode,
        body,
        timeoutMs: millis(this.timeout, "timeout", 1),
        connectTimeoutMs: millis(this.connectTimeout, "connect timeout", 0),
      };
    } catch (e) {
      if (!(e instanceof PayloadError)) throw e;
      notice(this.error, e.message);
      return;
    }
    notice(this.error, "");
    this.send.disabled = true;
    const at = new Date();
    const start = performance.now();
    try {
      const r = await this.deps.client.invoke(d.id, request.method, request.body.bytes, {
        timeoutMs: request.timeoutMs,
        connectTimeoutMs: request.connectTimeoutMs,
        ...(request.body.contentType ? { contentType: request.body.contentType } : {}),
      });
      const total = performance.now() - start;
      this.deps.result.showOk(r, request.mode, total);
      const ok = r.status >= 200 && r.status < 300;
      this.deps.history.add({ at, device: d.id, method: request.method, outcome: String(r.status), ok, totalMs: total });
    } catch (err) {
      const total = performance.now() - start;
      const e = toThingcallError(err);
      this.deps.result.showError(e, total);
      this.deps.history.add({ at, device: d.id, method: request.method, outcome: e.reason, ok: false, totalMs: total });
      if (e.reason === "UNAUTHENTICATED") this.deps.onUnauthenticated();
    } finally {
      this.send.disabled = this.device === undefined;
    }
  }
}
