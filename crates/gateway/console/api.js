// Gust's REST API from the browser: the caller's credentials (kept in this tab's
// sessionStorage only), JSON requests, and the live activations stream read with fetch()
// (EventSource cannot send an Authorization header).

const KEY = "gust.credentials";

/** The Authorization header value for a key (`uuid:secret`, Basic) or a token (Bearer). */
export function authorization(secret) {
  const s = secret.trim();
  if (s.includes(":")) {
    const bytes = new TextEncoder().encode(s);
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return `Basic ${btoa(bin)}`;
  }
  return `Bearer ${s}`;
}

/** The stored Authorization header value, or null when logged out. */
export function credentials() {
  return sessionStorage.getItem(KEY);
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

/** An error answer of the API, with its status and OpenWhisk's `error` text. */
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/**
 * Checks `secret` against the server (`GET /api/v1/namespaces`); on success keeps it and
 * returns the namespace it belongs to ("_" for a token that may not list it). Nothing is
 * kept when the server refuses it (401).
 */
export async function login(secret) {
  if (!secret.trim()) throw new Error("Enter a key or a token.");
  const auth = authorization(secret);
  const res = await fetch("/api/v1/namespaces", { headers: { Authorization: auth } });
  if (res.status === 401) throw new ApiError(res.status, "The key or token was refused.");
  if (res.status === 429) {
    throw new ApiError(res.status, "Too many failed log-ins from this address: wait a minute.");
  }
  // 403: a token whose scope does not cover `namespaces`; it is valid, and used for the rest.
  if (res.status === 403) {
    sessionStorage.setItem(KEY, auth);
    return "_";
  }
  if (!res.ok) throw new ApiError(res.status, `The server answered ${res.status}.`);
  const list = await res.json();
  sessionStorage.setItem(KEY, auth);
  return Array.isArray(list) && typeof list[0] === "string" ? list[0] : "_";
}

/** A path of the namespace's API: `/api/v1/namespaces/_/<rest>`. */
export function nsPath(rest) {
  return `/api/v1/namespaces/_/${rest}`;
}

/** An entity name in a path: each `/`-separated part encoded (a package's action keeps its `/`). */
export function namePath(name) {
  return name.split("/").map(encodeURIComponent).join("/");
}

/** Called when the server refuses the stored credentials (set by the app). */
export let onRefused = () => {};
export function setOnRefused(f) {
  onRefused = f;
}

/**
 * `method path` with a JSON `body`; answers the parsed JSON (or text), or throws ApiError
 * with the server's message. `accept` lists statuses answered without throwing (e.g. 202).
 */
export async function call(method, path, body, { accept = [] } = {}) {
  const headers = { Authorization: credentials() ?? "" };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = text;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (the metrics' text format): kept as text.
  }
  if (res.ok || accept.includes(res.status)) return { status: res.status, data };
  if (res.status === 401) onRefused();
  const message = (data && typeof data === "object" && data.error) || `${res.status} ${res.statusText}`;
  throw new ApiError(res.status, String(message), data);
}

/**
 * Reads Server-Sent Events from `path` until `signal` aborts: calls `onEvent({event, id,
 * data})` per event (comments are skipped) and `onOpen()` once the server has accepted it.
 * Resolves when the stream ends.
 */
export async function stream(path, { signal, onEvent, onOpen = () => {}, lastEventId }) {
  const headers = { Authorization: credentials() ?? "", Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const res = await fetch(path, { headers, signal });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      message = (await res.json()).error || message;
    } catch {
      // The message stays the status.
    }
    if (res.status === 401) onRefused();
    throw new ApiError(res.status, message);
  }
  onOpen();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = sseParser(onEvent);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser(value);
  }
}

/**
 * A parser of the text/event-stream format fed chunks of text: lines `event:`, `id:`,
 * `data:` (several joined by "\n"); an empty line ends an event; `:` lines are comments.
 */
export function sseParser(onEvent) {
  let buffer = "";
  let event = { event: "message", id: null, data: [] };
  return (chunk) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A CR that ends the chunk may be the first half of a CRLF: wait for the next one.
      if (nl === buffer.length - 1 && buffer[nl] === "\r") break;
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (event.data.length) onEvent({ event: event.event, id: event.id, data: event.data.join("\n") });
        event = { event: "message", id: event.id, data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event.event = value;
      else if (field === "id") event.id = value;
      else if (field === "data") event.data.push(value);
    }
  };
}
