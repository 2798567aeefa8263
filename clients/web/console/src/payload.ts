/**
 * The payload editor's modes: what the user typed becomes bytes (validated
 * first, so bad input is refused before anything is sent), and a reply's
 * bytes become text in the same mode.
 */
export type Mode = "json" | "text" | "base64";

export function isMode(v: string): v is Mode {
  return v === "json" || v === "text" || v === "base64";
}

/** Bytes to send and the content type that says what they are. */
export interface Encoded {
  bytes: Uint8Array;
  contentType: string;
}

/** Input the chosen mode cannot encode; its message is shown to the user. */
export class PayloadError extends Error {}

const CONTENT_TYPES: Record<Mode, string> = {
  json: "application/json",
  text: "text/plain; charset=utf-8",
  base64: "application/octet-stream",
};

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes strict base64 (whitespace allowed), or throws {@link PayloadError}. */
export function fromBase64(input: string): Uint8Array {
  const s = input.replace(/\s+/g, "");
  if (s.length % 4 !== 0 || !BASE64.test(s)) {
    throw new PayloadError("not valid base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4)");
  }
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** `input` as bytes in `mode`; an empty input sends an empty payload. */
export function encodePayload(mode: Mode, input: string): Encoded {
  const contentType = CONTENT_TYPES[mode];
  // Nothing to describe: methods such as `random` take no payload.
  if (input.trim() === "") return { bytes: new Uint8Array(), contentType: "" };
  switch (mode) {
    case "json":
      try {
        JSON.parse(input);
      } catch (e) {
        throw new PayloadError(`not valid JSON: ${(e as Error).message}`);
      }
      return { bytes: new TextEncoder().encode(input), contentType };
    case "text":
      return { bytes: new TextEncoder().encode(input), contentType };
    case "base64":
      return { bytes: fromBase64(input), contentType };
  }
}

/**
 * A reply's bytes for display in `mode`: JSON pretty-printed when it is
 * JSON, base64 in base64 mode, UTF-8 text otherwise, with a note when the
 * reply did not fit the mode.
 */
export function renderPayload(mode: Mode, bytes: Uint8Array): { text: string; note: string } {
  if (mode === "base64") return { text: toBase64(bytes), note: "" };
  if (bytes.length === 0) return { text: "", note: "(empty payload)" };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { text: toBase64(bytes), note: "(not UTF-8; shown as base64)" };
  }
  if (mode === "json") {
    try {
      return { text: JSON.stringify(JSON.parse(text), null, 2), note: "" };
    } catch {
      return { text, note: "(not JSON; shown as text)" };
    }
  }
  return { text, note: "" };
}
