/**
 * Element lookup by `data-testid`: the same handles the browser test uses,
 * so markup and code cannot drift apart silently (a missing one fails at
 * start, not on first use).
 */
export function byTestId<T extends HTMLElement = HTMLElement>(id: string, root: ParentNode = document): T {
  const el = root.querySelector<T>(`[data-testid="${id}"]`);
  if (!el) throw new Error(`console markup has no [data-testid="${id}"]`);
  return el;
}

/** A new element with a class and text; never HTML, so device data cannot inject markup. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = "",
  text = "",
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

/** Shows `message` in a notice element, or hides it when empty. */
export function notice(target: HTMLElement, message: string): void {
  target.textContent = message;
  target.hidden = message === "";
}

/** Milliseconds for people: µs below 1 ms (device times often are), then ms, then s. */
export function formatMs(ms: number): string {
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}
