// Building the DOM without HTML strings: every value that comes from the API (names, logs,
// results) becomes a text node, so nothing it holds is ever parsed as markup or script.

/** Attributes `h` sets; anything else is refused, so no `on*` handler comes from data. */
const ATTRIBUTES = new Set([
  "id", "class", "type", "value", "placeholder", "for", "name", "rows", "title",
  "checked", "selected", "disabled", "hidden", "min", "step", "data-id", "data-name",
  "data-test", "spellcheck", "autocomplete", "role", "colspan", "viewBox", "target", "rel",
]);

/**
 * An element `tag` with `props` (attributes from ATTRIBUTES; `href` only to this page's
 * fragments or a same-origin path; `on` = {event: handler}) and `children` (strings become
 * text nodes; null and false are skipped; arrays are flattened).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === "href") {
      el.setAttribute("href", safeHref(String(v)));
    } else if (k === "value") {
      el.value = String(v);
    } else if (k === "checked") {
      el.checked = !!v;
    } else if (ATTRIBUTES.has(k)) {
      el.setAttribute(k, v === true ? "" : String(v));
    } else {
      throw new Error(`attribute ${k} is not allowed`);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** `href` if it is a fragment or a path on this origin, else a harmless "#". */
export function safeHref(href) {
  if (href.startsWith("#")) return href;
  if (href.startsWith("/") && !href.startsWith("//") && !href.startsWith("/\\")) return href;
  return "#";
}

/** Replaces the children of `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** JSON as indented text, for a <pre>. */
export function pretty(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** Milliseconds since the epoch as local time. */
export function time(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  return isNaN(d) ? String(ms) : d.toLocaleString();
}

/** OpenWhisk's status codes of a record. */
export const STATUS = ["success", "application error", "developer error", "system error"];

/** A record's status as text, from its `statusCode` or `response.status`. */
export function statusText(record) {
  if (record?.response?.status) return record.response.status;
  return STATUS[record?.statusCode] ?? "unknown";
}

/**
 * A textarea that must hold a JSON object (or be empty): marked invalid with its message
 * under it as the user types. `read()` returns the object or throws with the message.
 */
export function jsonEditor(id, initial, { code = false } = {}) {
  const area = h("textarea", { id, class: code ? "code" : null, spellcheck: "false" });
  area.value = initial;
  const message = h("p", { class: "error", id: `${id}-error`, role: "alert" });
  const check = () => {
    try {
      parseObject(area.value);
      area.classList.remove("invalid");
      message.textContent = "";
      return true;
    } catch (e) {
      area.classList.add("invalid");
      message.textContent = e.message;
      return false;
    }
  };
  area.addEventListener("input", check);
  return {
    area,
    message,
    nodes: [area, message],
    valid: check,
    read() {
      if (!check()) throw new Error(message.textContent);
      return parseObject(area.value);
    },
  };
}

/** The JSON object `text` holds ({} when blank); throws with a readable message otherwise. */
export function parseObject(text) {
  if (text.trim() === "") return {};
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`Not valid JSON: ${e.message}`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new Error("Must be a JSON object: {...}");
  }
  return v;
}
