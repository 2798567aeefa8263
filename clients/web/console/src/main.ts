/**
 * The console's entry: one client on the page's own origin (the gateway
 * serves the page, so no CORS is involved), its token read from the field
 * before every call, and the three parts wired together.
 */
import { createClient } from "../../src/index.js";
import { CallForm } from "./call.js";
import { DeviceList } from "./devices.js";
import { byTestId } from "./dom.js";
import { History } from "./history.js";
import { ResultView } from "./result.js";
import { readToken, writeToken } from "./token.js";

const tokenField = byTestId<HTMLInputElement>("token");
tokenField.value = readToken() ?? "";

const client = createClient({
  baseUrl: window.location.origin,
  token: () => tokenField.value.trim() || undefined,
});

/** Points the user at the token field: the fix for UNAUTHENTICATED. */
function askForToken(): void {
  tokenField.classList.add("attention");
  tokenField.focus();
}

const form = new CallForm({
  client,
  result: new ResultView(),
  history: new History(),
  onUnauthenticated: askForToken,
});
const list = new DeviceList(client, {
  onSelect: (id) => list.select(id),
  onChange: (d) => form.setDevice(d),
  onUnauthenticated: askForToken,
});

const filter = byTestId<HTMLInputElement>("filter");
filter.addEventListener("change", () => list.restart(filter.value.trim()));
tokenField.addEventListener("change", () => {
  writeToken(tokenField.value.trim());
  tokenField.classList.remove("attention");
  // The stream carries the token too: reopen it with the new one.
  list.restart(filter.value.trim());
});

list.restart("");
