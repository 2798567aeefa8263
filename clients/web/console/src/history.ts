/** The list of recent calls, newest first, kept short. */
import { el, byTestId, formatMs } from "./dom.js";

const KEEP = 15;

export interface CallRecord {
  at: Date;
  device: string;
  method: string;
  /** The device's status (e.g. `200`) or the error reason. */
  outcome: string;
  ok: boolean;
  totalMs: number;
}

export class History {
  private readonly body = byTestId<HTMLTableSectionElement>("history");

  add(r: CallRecord): void {
    const row = el("tr", r.ok ? "ok" : "failed");
    row.dataset["testid"] = "history-row";
    row.append(
      el("td", "muted", r.at.toLocaleTimeString()),
      el("td", "", r.device),
      el("td", "", r.method),
      el("td", "outcome", r.outcome),
      el("td", "num", formatMs(r.totalMs)),
    );
    this.body.prepend(row);
    while (this.body.rows.length > KEEP) this.body.deleteRow(-1);
  }
}
