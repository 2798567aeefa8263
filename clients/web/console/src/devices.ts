/**
 * The live device list: one `WatchDevice` stream for the filter, its
 * snapshot swapped in whole at `synced` (so a reconnect never shows a
 * half list), presence changes applied as they come, and the stream
 * reopened with backoff when it ends or fails. A watch may cover a million
 * devices: the page shows the first {@link SHOWN} by id and how many more
 * there are, and redraws at most once per animation frame.
 */
import type { Client, DeviceInfo } from "../../src/index.js";
import { toThingcallError } from "../../src/index.js";
import { byTestId, el, notice } from "./dom.js";
import { FrameScheduler } from "./frame.js";
import { Roster } from "./roster.js";

/** Reconnect delays: doubling from half a second, at most ten. */
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10_000;

/**
 * Rows the list shows at most. Enough to scroll through a site's devices;
 * past that a person filters, and the page stays quick with a million.
 */
export const SHOWN = 500;

export interface DeviceListEvents {
  /** A device was clicked. */
  onSelect(id: string): void;
  /** The selected device's state changed (or it left the list). */
  onChange(device: DeviceInfo | undefined): void;
  /** The stream failed for want of credentials. */
  onUnauthenticated(): void;
}

export class DeviceList {
  private readonly list = byTestId<HTMLUListElement>("device-list");
  private readonly status = byTestId("stream-status");
  private readonly error = byTestId("watch-error");
  private devices = new Roster();
  private readonly frame = new FrameScheduler(() => this.render());
  private selected: string | undefined;
  private pattern = "";
  private run: AbortController | undefined;

  constructor(
    private readonly client: Client,
    private readonly events: DeviceListEvents,
  ) {}

  /** The device the user picked, as last seen. */
  get current(): DeviceInfo | undefined {
    return this.selected === undefined ? undefined : this.devices.get(this.selected);
  }

  select(id: string): void {
    this.selected = id;
    this.frame.request();
    this.events.onChange(this.current);
  }

  /** (Re)starts the stream for `pattern`, ending the previous one. */
  restart(pattern: string): void {
    this.pattern = pattern;
    this.run?.abort();
    const run = new AbortController();
    this.run = run;
    void this.loop(run.signal);
  }

  private async loop(signal: AbortSignal): Promise<void> {
    let backoff = FIRST_BACKOFF_MS;
    while (!signal.aborted) {
      this.setStatus("connecting", "connecting…");
      let snapshot: Roster | undefined = new Roster();
      try {
        for await (const ev of this.client.watch(this.pattern, { signal })) {
          if (ev.kind === "presence") {
            if (snapshot) apply(snapshot, ev.device);
            else this.update(ev.device);
          } else if (ev.kind === "synced" && snapshot) {
            this.devices = snapshot;
            snapshot = undefined;
            backoff = FIRST_BACKOFF_MS;
            this.list.dataset["synced"] = "true";
            notice(this.error, "");
            this.setStatus("live", "live");
            this.frame.request();
            this.events.onChange(this.current);
          } else if (ev.kind === "closing") {
            notice(this.error, `the gateway is closing the stream (${ev.reason})`);
          }
        }
      } catch (err) {
        const e = toThingcallError(err);
        if (e.reason === "UNAUTHENTICATED" || e.reason === "PERMISSION_DENIED") {
          notice(this.error, `${e.reason}: ${e.message}. Enter an API token that may watch devices in the field at the top.`);
          this.events.onUnauthenticated();
        } else {
          notice(this.error, `${e.reason}: ${e.message}`);
        }
      }
      if (signal.aborted) return;
      this.setStatus("reconnecting", `reconnecting in ${(backoff / 1000).toFixed(1)} s`);
      await delay(backoff, signal);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  /** A change after `synced`: redrawn only when it shows (a row of the first {@link SHOWN}, or the count). */
  private update(d: DeviceInfo): void {
    const counted = apply(this.devices, d);
    if (counted || (d.since !== undefined && this.devices.rank(d.id) < SHOWN)) this.frame.request();
    if (d.id === this.selected) this.events.onChange(this.current);
  }

  private setStatus(state: string, text: string): void {
    this.status.dataset["state"] = state;
    this.status.textContent = text;
  }

  private render(): void {
    const total = this.devices.size;
    if (total === 0) {
      const synced = this.list.dataset["synced"] === "true";
      this.list.replaceChildren(el("li", "empty", synced ? "no devices match" : "loading…"));
      return;
    }
    const rows: HTMLLIElement[] = this.devices.first(SHOWN).map((d) => this.item(d));
    if (total > SHOWN) rows.push(more(total - SHOWN));
    this.list.replaceChildren(...rows);
  }

  private item(d: DeviceInfo): HTMLLIElement {
    const li = el("li", d.id === this.selected ? "device selected" : "device");
    li.dataset["testid"] = "device";
    li.dataset["device"] = d.id;
    li.dataset["online"] = String(d.online);
    const button = el("button", "pick");
    button.type = "button";
    button.append(el("span", d.online ? "dot on" : "dot off"), el("span", "id", d.id));
    const state = el("span", "state", d.online ? "online" : "offline");
    const since = d.since ? el("span", "since muted", `since ${d.since.toLocaleTimeString()}`) : "";
    button.append(state, since);
    button.addEventListener("click", () => this.events.onSelect(d.id));
    li.append(button);
    return li;
  }
}

/**
 * Applies a presence event to `roster`; true when the count changed. A
 * device the gateway forgot (its retained presence was cleared) comes as a
 * state with no `since`, which every known device has: it leaves the list.
 */
function apply(roster: Roster, d: DeviceInfo): boolean {
  return d.since === undefined ? roster.delete(d.id) : roster.set(d);
}

/** The last row when the list is cut at {@link SHOWN}: how many are not shown, and what to do. */
function more(remaining: number): HTMLLIElement {
  const li = el("li", "more muted", `… and ${remaining.toLocaleString("en-US")} more: type a filter to narrow the list`);
  li.dataset["testid"] = "device-more";
  li.dataset["remaining"] = String(remaining);
  return li;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
