/**
 * The devices a watch knows, by id and in id order. The list shows only
 * the first few hundred of a fleet that may be a million strong, so the
 * order is kept as it changes (an append for the snapshot, which the
 * gateway sends sorted by id; a binary search for the rest) instead of
 * sorting everything for every frame.
 */
import type { DeviceInfo } from "../../src/index.js";

export class Roster {
  private readonly byId = new Map<string, DeviceInfo>();
  /** Every id of `byId`, ascending (JavaScript string order). */
  private readonly ids: string[] = [];

  /** How many devices there are. */
  get size(): number {
    return this.ids.length;
  }

  get(id: string): DeviceInfo | undefined {
    return this.byId.get(id);
  }

  /** Adds `d` or replaces its earlier state; returns its position in id order. */
  set(d: DeviceInfo): number {
    const known = this.byId.has(d.id);
    this.byId.set(d.id, d);
    if (known) return this.position(d.id);
    const last = this.ids[this.ids.length - 1];
    if (last === undefined || last < d.id) {
      // The snapshot's case: ids arrive in order, so each one goes last.
      this.ids.push(d.id);
      return this.ids.length - 1;
    }
    const at = this.position(d.id);
    this.ids.splice(at, 0, d.id);
    return at;
  }

  /** Forgets `id`; returns the position it had, or `undefined` when it was not here. */
  delete(id: string): number | undefined {
    if (!this.byId.delete(id)) return undefined;
    const at = this.position(id);
    this.ids.splice(at, 1);
    return at;
  }

  /** The first `n` devices in id order. */
  first(n: number): DeviceInfo[] {
    const out: DeviceInfo[] = [];
    for (const id of this.ids.slice(0, n)) {
      const d = this.byId.get(id);
      if (d) out.push(d);
    }
    return out;
  }

  /** Where `id` is, or would go, in `ids` (the first index not below it). */
  private position(id: string): number {
    let lo = 0;
    let hi = this.ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.ids[mid] as string) < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
