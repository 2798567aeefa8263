/**
 * The devices a watch knows, by id and in id order. The list shows only
 * the first few hundred of a fleet that may be a million strong, so the
 * order is kept as it changes instead of sorting everything for every
 * frame: the snapshot, which the gateway sends sorted by id, is appended;
 * ids that arrive out of order, and removals, wait in a batch that is
 * merged in once, when the list is next read (one pass over the ids per
 * frame however many changed, not one per change).
 */
import type { DeviceInfo } from "../../src/index.js";

export class Roster {
  private readonly byId = new Map<string, DeviceInfo>();
  /** Ids ascending (JavaScript string order) as of the last merge; may still hold `gone` ones. */
  private ids: string[] = [];
  /** New ids not yet merged into `ids`, in arrival order. */
  private added: string[] = [];
  /** Ids deleted but still in `ids`. */
  private readonly gone = new Set<string>();

  /** How many devices there are. */
  get size(): number {
    return this.byId.size;
  }

  get(id: string): DeviceInfo | undefined {
    return this.byId.get(id);
  }

  /** Adds `d` or replaces its earlier state; true when it is a new device (the count changed). */
  set(d: DeviceInfo): boolean {
    const known = this.byId.has(d.id);
    this.byId.set(d.id, d);
    if (known) return false;
    if (this.gone.delete(d.id)) return true; // Deleted and back before a merge: still in `ids`.
    const last = this.ids[this.ids.length - 1];
    if (this.added.length === 0 && (last === undefined || last < d.id)) this.ids.push(d.id);
    else this.added.push(d.id);
    return true;
  }

  /** Forgets `id`; true when it was here. */
  delete(id: string): boolean {
    if (!this.byId.delete(id)) return false;
    const pending = this.added.indexOf(id);
    if (pending >= 0) this.added.splice(pending, 1);
    else this.gone.add(id);
    return true;
  }

  /**
   * Where a known device stands in id order as of the last read of
   * {@link first}: changes since then can move it, but they changed the
   * count, so whoever watches the count redraws anyway.
   */
  rank(id: string): number {
    let lo = 0;
    let hi = this.ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.ids[mid] as string) < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The first `n` devices in id order. */
  first(n: number): DeviceInfo[] {
    this.merge();
    const out: DeviceInfo[] = [];
    for (const id of this.ids.slice(0, n)) {
      const d = this.byId.get(id);
      if (d) out.push(d);
    }
    return out;
  }

  /** Folds the pending additions and removals into `ids`, in one pass. */
  private merge(): void {
    if (this.gone.size > 0) {
      this.ids = this.ids.filter((id) => !this.gone.has(id));
      this.gone.clear();
    }
    if (this.added.length === 0) return;
    const added = this.added.sort();
    this.added = [];
    const merged: string[] = new Array<string>(this.ids.length + added.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < this.ids.length && j < added.length) {
      const a = this.ids[i] as string;
      const b = added[j] as string;
      if (a < b) {
        merged[k++] = a;
        i++;
      } else {
        merged[k++] = b;
        j++;
      }
    }
    while (i < this.ids.length) merged[k++] = this.ids[i++] as string;
    while (j < added.length) merged[k++] = added[j++] as string;
    this.ids = merged;
  }
}
