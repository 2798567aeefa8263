/**
 * The API token, kept in `sessionStorage`: it survives a reload of the tab
 * but not the tab itself, is never written to `localStorage` (which would
 * keep a credential on disk indefinitely) and never into the URL (which
 * would leak it into history and logs).
 */
const KEY = "thingcall.token";

/** The stored token, or `undefined` when none is set. */
export function readToken(): string | undefined {
  try {
    return sessionStorage.getItem(KEY) || undefined;
  } catch {
    return undefined; // storage disabled: the field still works for this page
  }
}

/** Stores `token` for this tab; an empty one removes it. */
export function writeToken(token: string): void {
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage disabled: the token lives only in the field.
  }
}
