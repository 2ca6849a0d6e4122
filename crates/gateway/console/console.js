// The console's pages: log-in, the namespace's entities, invoking, activations with their
// chain of causes, the live tail and the charts. One view at a time in #view, chosen by the
// URL's fragment (#/actions, #/activation/<id>, ...). Everything from the API reaches the
// page through dom.js's `h` (text nodes), never as HTML.

import * as api from "./api.js";
import { h, replace, pretty, time, statusText, jsonEditor, STATUS } from "./dom.js";
import * as metrics from "./metrics.js";

const $ = (id) => document.getElementById(id);

/** Undoes what the current view started (a stream, a timer) when another one is shown. */
let leave = () => {};

function showStatus(message) {
  $("status").textContent = message ? String(message) : "";
}

/** Runs `f`, showing its error in the status line rather than failing silently. */
async function guarded(f) {
  try {
    showStatus("");
    return await f();
  } catch (e) {
    showStatus(e.message || e);
    return undefined;
  }
}

// ---- log-in ----

function showLogin(message = "") {
  leave();
  leave = () => {};
  $("login").hidden = false;
  $("view").hidden = true;
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login-error").textContent = message;
  replace($("view"));
  showStatus("");
}

function showApp(namespace) {
  $("login").hidden = true;
  $("view").hidden = false;
  $("nav").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = namespace ? `namespace ${namespace}` : "";
  if (!location.hash || location.hash === "#" || location.hash === "#/") location.hash = "#/actions";
  else route();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("login-key");
  $("login-error").textContent = "";
  try {
    const ns = await api.login(input.value);
    input.value = "";
    sessionStorage.setItem("gust.namespace", ns);
    showApp(ns);
  } catch (e) {
    api.forget();
    $("login-error").textContent = e.message;
  }
});

$("logout").addEventListener("click", () => {
  api.forget();
  sessionStorage.removeItem("gust.namespace");
  location.hash = "";
  showLogin();
});

api.setOnRefused(() => {
  api.forget();
  showLogin("The server refused the key or token: log in again.");
});

// ---- routing ----

const VIEWS = {
  actions: actionsView,
  action: actionEditView,
  invoke: invokeView,
  packages: packagesView,
  triggers: triggersView,
  rules: rulesView,
  apis: apisView,
  sites: sitesView,
  activations: activationsView,
  activation: activationView,
  live: liveView,
  metrics: metricsView,
};

function route() {
  if (!api.credentials()) return showLogin();
  leave();
  leave = () => {};
  showStatus("");
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const name = parts[0] || "actions";
  const arg = parts.slice(1).map(decodeURIComponent).join("/");
  for (const a of $("nav").querySelectorAll("a")) {
    a.classList.toggle("current", a.getAttribute("href") === `#/${name}`);
  }
  const view = VIEWS[name] ?? actionsView;
  guarded(() => view($("view"), arg));
}

window.addEventListener("hashchange", route);

/** A link to a view with an argument (encoded as one fragment part per path part). */
function link(view, arg, text, props = {}) {
  const target = arg === undefined ? `#/${view}` : `#/${view}/${arg.split("/").map(encodeURIComponent).join("/")}`;
  return h("a", { href: target, ...props }, text ?? arg);
}

function table(headers, rows, empty = "None.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))), h("tbody", {}, rows));
}

function annotation(entity, key) {
  return (entity?.annotations ?? []).find((a) => a.key === key)?.value;
}

function confirmDelete(what, f) {
  return h("button", {
    class: "danger",
    type: "button",
    "data-test": "delete",
    on: {
      click: () => {
        if (confirm(`Delete ${what}?`)) guarded(f).then(route);
      },
    },
  }, "Delete");
}

// ---- actions ----

function qualified(entity) {
  // A package's action is listed with namespace "ns/pkg".
  const slash = entity.namespace.indexOf("/");
  return slash < 0 ? entity.name : `${entity.namespace.slice(slash + 1)}/${entity.name}`;
}

async function actionsView(view) {
  const { data } = await api.call("GET", api.nsPath("actions?limit=200"));
  const rows = data.map((a) => {
    const name = qualified(a);
    return h("tr", { "data-name": name },
      h("td", {}, link("action", name, name)),
      h("td", {}, a.exec?.kind ?? annotation(a, "exec") ?? ""),
      h("td", {}, annotation(a, "web-export") ? "web" : ""),
      h("td", {}, a.version),
      h("td", {},
        link("invoke", name, "Invoke", { class: "invoke" }), " ",
        link("activations", name, "Activations"), " ",
        confirmDelete(`action ${name}`, () => api.call("DELETE", api.nsPath(`actions/${api.namePath(name)}`)))));
  });
  replace(view,
    h("h2", {}, "Actions"),
    h("p", {}, h("a", { href: "#/action", id: "new-action" }, "New action")),
    table(["name", "kind", "", "version", ""], rows, "No actions yet."));
}

/** Kinds the server runs (`GET /api/v1`), for the editor's list. */
async function kinds() {
  try {
    const res = await fetch("/api/v1");
    const info = await res.json();
    return Object.values(info.runtimes ?? {}).flat().map((r) => r.kind).filter((k) => typeof k === "string");
  } catch {
    return [];
  }
}

function pairsToObject(list) {
  const o = {};
  for (const p of list ?? []) o[p.key] = p.value;
  return o;
}

function objectToPairs(o) {
  return Object.entries(o).map(([key, value]) => ({ key, value }));
}

/** Creates (no argument) or edits the action `name`. */
async function actionEditView(view, name) {
  let action = null;
  if (name) action = (await api.call("GET", api.nsPath(`actions/${api.namePath(name)}`))).data;
  const exec = action?.exec ?? {};
  const known = await kinds();
  const nameInput = h("input", { id: "action-name", type: "text", value: name || "", disabled: !!name });
  const kindInput = h("input", { id: "action-kind", type: "text", value: exec.kind ?? known.find((k) => k.startsWith("nodejs")) ?? "", name: "kind" });
  const kindList = h("select", { id: "action-kind-list", on: { change: (e) => { kindInput.value = e.target.value; } } },
    h("option", { value: "" }, "choose a kind…"), known.map((k) => h("option", { value: k }, k)));
  const binary = !!exec.binary;
  const code = h("textarea", { id: "action-code", class: "code", spellcheck: "false" });
  code.value = binary ? "" : exec.code ?? "";
  if (exec.kind === "sequence") code.value = (exec.components ?? []).join("\n");
  const params = jsonEditor("action-params", pretty(pairsToObject(action?.parameters)));
  const notes = pairsToObject(action?.annotations);
  const web = h("input", { id: "action-web", type: "checkbox", checked: notes["web-export"] === true });
  delete notes["web-export"];
  delete notes.exec;
  const annotations = jsonEditor("action-annotations", pretty(notes));
  const save = async () => {
    const n = nameInput.value.trim();
    if (!n) throw new Error("The action needs a name.");
    const kind = kindInput.value.trim();
    if (!kind) throw new Error("Choose a kind.");
    const newExec = { kind };
    if (kind === "sequence") {
      newExec.components = code.value.split("\n").map((s) => s.trim()).filter(Boolean);
    } else if (binary && code.value === "" && exec.kind === kind) {
      newExec.code = exec.code;
      newExec.binary = true;
    } else {
      newExec.code = code.value;
    }
    if (exec.main) newExec.main = exec.main;
    const a = annotations.read();
    if (web.checked) a["web-export"] = true;
    const body = { exec: newExec, parameters: objectToPairs(params.read()), annotations: objectToPairs(a) };
    if (action?.limits) body.limits = action.limits;
    await api.call("PUT", api.nsPath(`actions/${api.namePath(n)}?overwrite=true`), body);
    location.hash = `#/invoke/${n.split("/").map(encodeURIComponent).join("/")}`;
  };
  replace(view,
    h("h2", {}, name ? `Action ${name}` : "New action"),
    h("label", { for: "action-name" }, "Name (package/name for a package's action)"), nameInput,
    h("label", { for: "action-kind" }, "Kind"), h("div", { class: "row" }, kindInput, kindList),
    h("label", { for: "action-code" }, kindInputHint(exec, binary)), code,
    h("label", { for: "action-params" }, "Parameters (JSON object)"), params.nodes,
    h("label", { for: "action-annotations" }, "Annotations (JSON object)"), annotations.nodes,
    h("div", { class: "row" }, web, h("label", { for: "action-web" }, "Web action (web-export)")),
    h("div", { class: "row" },
      h("button", { id: "action-save", type: "button", on: { click: () => guarded(save) } }, "Save"),
      name ? link("invoke", name, "Invoke") : null));
}

function kindInputHint(exec, binary) {
  if (exec.kind === "sequence") return "Components, one fully qualified action a line";
  if (binary) return "Code (binary, not shown: leave empty to keep it)";
  return "Code";
}

// ---- invoking ----

/** The record of an activation: status, duration, result, logs, with links to its causes. */
function recordView(record) {
  const ok = record.response?.success;
  const logs = Array.isArray(record.logs) ? record.logs : [];
  return h("div", { id: "record", "data-id": record.activationId },
    h("table", {}, h("tbody", {},
      h("tr", {}, h("th", {}, "activation"), h("td", {}, link("activation", record.activationId, record.activationId, { class: "activation-id" }))),
      h("tr", {}, h("th", {}, "action"), h("td", {}, `${record.namespace}/${record.name}`)),
      h("tr", {}, h("th", {}, "status"), h("td", { id: "record-status", class: ok ? "ok" : "bad" }, statusText(record))),
      h("tr", {}, h("th", {}, "duration"), h("td", { id: "record-duration" }, `${record.duration} ms`)),
      h("tr", {}, h("th", {}, "start"), h("td", {}, time(record.start))),
      annotation(record, "initTime") !== undefined
        ? h("tr", {}, h("th", {}, "init"), h("td", {}, `${annotation(record, "initTime")} ms (cold start)`))
        : null)),
    h("h3", {}, "Result"),
    h("pre", { id: "record-result" }, pretty(record.response?.result)),
    h("h3", {}, "Logs"),
    h("pre", { id: "record-logs" }, logs.join("\n")));
}

async function invokeView(view, name) {
  if (!name) {
    location.hash = "#/actions";
    return;
  }
  const editor = jsonEditor("invoke-params", "{}");
  const out = h("div", { id: "invoke-out" });
  const button = h("button", { id: "invoke-submit", type: "button" }, "Invoke");
  button.addEventListener("click", () => guarded(async () => {
    const params = editor.read();
    button.disabled = true;
    replace(out, h("p", { class: "muted" }, "Running…"));
    try {
      // A failed run is answered 502, 500 or 503 with its record: shown like a success.
      const { status, data } = await api.call("POST", api.nsPath(`actions/${api.namePath(name)}?blocking=true`), params, { accept: [202, 500, 502, 503] });
      if (status === 202) {
        replace(out, h("p", {}, "Still running: ", link("activation", data.activationId, data.activationId)));
      } else if (data && typeof data === "object" && data.response) {
        replace(out, recordView(data));
      } else {
        throw new api.ApiError(status, (data && data.error) || `The server answered ${status}.`);
      }
    } catch (e) {
      replace(out);
      throw e;
    } finally {
      button.disabled = false;
    }
  }));
  replace(view,
    h("h2", {}, `Invoke ${name}`),
    h("label", { for: "invoke-params" }, "Parameters (JSON object)"), editor.nodes,
    h("div", { class: "row" }, button, link("action", name, "Edit"), link("activations", name, "Activations")),
    out);
}

// ---- activations ----

function toMs(input) {
  if (!input.value) return undefined;
  const t = new Date(input.value).getTime();
  return Number.isFinite(t) ? t : undefined;
}

async function activationsView(view, name) {
  const nameInput = h("input", { id: "filter-name", type: "text", value: name || "", placeholder: "action or package/action" });
  const since = h("input", { id: "filter-since", type: "datetime-local", step: "1" });
  const upto = h("input", { id: "filter-upto", type: "datetime-local", step: "1" });
  const status = h("select", { id: "filter-status" }, h("option", { value: "" }, "any status"),
    STATUS.map((s, i) => h("option", { value: String(i) }, s)));
  const list = h("div", { id: "activations-list" });
  const load = async () => {
    const q = new URLSearchParams({ limit: "100" });
    if (nameInput.value.trim()) q.set("name", nameInput.value.trim());
    const s = toMs(since);
    const u = toMs(upto);
    if (s !== undefined) q.set("since", String(s));
    if (u !== undefined) q.set("upto", String(u));
    const { data } = await api.call("GET", api.nsPath(`activations?${q}`));
    const wanted = status.value === "" ? data : data.filter((a) => String(a.statusCode) === status.value);
    replace(list, table(["activation", "action", "status", "start", "duration", "cause"], wanted.map((a) =>
      h("tr", { "data-id": a.activationId },
        h("td", {}, link("activation", a.activationId, a.activationId)),
        h("td", {}, a.name),
        h("td", { class: a.statusCode ? "bad" : "ok" }, STATUS[a.statusCode] ?? String(a.statusCode)),
        h("td", {}, time(a.start)),
        h("td", {}, `${a.duration} ms`),
        h("td", {}, annotation(a, "causedBy") ?? ""))), "No activations match."));
  };
  replace(view,
    h("h2", {}, "Activations"),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "filter-name" }, "Action"), nameInput),
      h("div", {}, h("label", { for: "filter-since" }, "Since"), since),
      h("div", {}, h("label", { for: "filter-upto" }, "Up to"), upto),
      h("div", {}, h("label", { for: "filter-status" }, "Status"), status),
      h("button", { id: "filter-apply", type: "button", on: { click: () => guarded(load) } }, "Apply")),
    list);
  await load();
}

const ACTIVATION_ID = /^[0-9a-f]{32}$/;

/** One record, its ancestors (`cause`, followed up) and, for a composition, its components. */
async function activationView(view, id) {
  const { data: record } = await api.call("GET", api.nsPath(`activations/${encodeURIComponent(id)}`));
  const chain = [];
  let cause = record.cause;
  for (let i = 0; cause && i < 10; i++) {
    let parent = null;
    try {
      parent = (await api.call("GET", api.nsPath(`activations/${encodeURIComponent(cause)}`))).data;
    } catch {
      // Another namespace's or expired: shown by its id.
    }
    chain.unshift({ id: cause, name: parent?.name, causedBy: annotation(parent, "causedBy") });
    cause = parent?.cause;
  }
  const kind = annotation(record, "kind");
  const composite = kind === "sequence" || annotation(record, "conductor") !== undefined || annotation(record, "topmost") !== undefined;
  const components = composite ? (record.logs ?? []).filter((l) => ACTIVATION_ID.test(l)) : [];
  const causedBy = annotation(record, "causedBy");
  replace(view,
    h("h2", {}, `Activation of ${record.name}`),
    h("div", { class: "chain", id: "cause-chain" },
      h("span", {}, "Chain: "),
      chain.map((c) => [link("activation", c.id, c.name ? `${c.name} (${c.id.slice(0, 8)})` : c.id), h("span", { class: "sep" }, "→")]),
      h("strong", {}, record.name),
      causedBy ? h("span", { class: "muted" }, ` (caused by ${causedBy})`) : null),
    recordView(record),
    components.length ? [h("h3", {}, "Components"), h("ol", { id: "components" }, components.map((c) => h("li", {}, link("activation", c, c))))] : null,
    h("h3", {}, "Annotations"),
    h("pre", { id: "record-annotations" }, pretty(pairsToObject(record.annotations))));
}

// ---- live tail ----

async function liveView(view) {
  const name = h("input", { id: "live-name", type: "text", placeholder: "all actions" });
  const list = h("ul", { id: "live-list" });
  const state = h("span", { id: "live-state", class: "muted" }, "stopped");
  let controller = null;
  let lastId = null;
  const stop = () => {
    controller?.abort();
    controller = null;
    state.textContent = "stopped";
    button.textContent = "Start";
  };
  const start = async () => {
    controller = new AbortController();
    button.textContent = "Stop";
    state.textContent = "connecting…";
    const q = new URLSearchParams();
    if (name.value.trim()) q.set("name", name.value.trim());
    const path = api.nsPath(`activations/stream${q.size ? `?${q}` : ""}`);
    const mine = controller;
    try {
      await api.stream(path, {
        signal: mine.signal,
        onOpen: () => {
          state.textContent = "live";
        },
        lastEventId: lastId,
        onEvent: (ev) => {
          if (ev.event !== "activation") return;
          lastId = ev.id;
          let record;
          try {
            record = JSON.parse(ev.data);
          } catch {
            return;
          }
          list.prepend(liveItem(record));
          while (list.childElementCount > 200) list.lastElementChild.remove();
        },
      });
      // The server ended the stream (a restart, a proxy's timeout): resume after the last
      // record seen, so none is missed or shown twice.
      if (controller === mine) {
        state.textContent = "reconnecting…";
        setTimeout(() => {
          if (controller === mine) {
            controller = null;
            start();
          }
        }, 1000);
      }
    } catch (e) {
      if (controller === mine) {
        stop();
        if (e.name !== "AbortError") showStatus(e.status === 404 ? "This server has no live activations stream." : e.message);
      }
    }
  };
  const button = h("button", { id: "live-toggle", type: "button", on: { click: () => (controller ? stop() : start()) } }, "Start");
  leave = stop;
  replace(view,
    h("h2", {}, "Live activations"),
    h("div", { class: "row" }, h("div", {}, h("label", { for: "live-name" }, "Action"), name), button, state),
    list);
  start();
}

function liveItem(record) {
  const logs = Array.isArray(record.logs) ? record.logs : [];
  return h("li", { "data-id": record.activationId },
    h("div", {},
      h("strong", { class: "live-name" }, record.name), " ",
      h("span", { class: record.response?.success ? "ok" : "bad" }, statusText(record)), " ",
      h("span", { class: "muted" }, `${record.duration} ms · ${time(record.end)} · `),
      link("activation", record.activationId, record.activationId)),
    logs.length ? h("pre", { class: "live-logs" }, logs.join("\n")) : null);
}

// ---- metrics ----

const POINTS = 60;

async function metricsView(view) {
  const charts = {
    rate: h("div", { class: "chart" }, h("h3", {}, "Invocations per second"), svgEl("chart-rate")),
    latency: h("div", { class: "chart" }, h("h3", { id: "chart-latency-title" }, "Latency p50 / p95"), svgEl("chart-latency")),
    cold: h("div", { class: "chart" }, h("h3", {}, "Cold starts per second"), svgEl("chart-cold")),
  };
  const note = h("p", { id: "metrics-note", class: "muted" }, "Polling the namespace's metrics every 2 s.");
  const totals = h("p", { id: "metrics-totals" });
  replace(view, h("h2", {}, "Metrics"), note, totals, h("div", { class: "charts" }, Object.values(charts)));
  const series = { rate: [], p50: [], p95: [], cold: [] };
  let previous = null;
  const push = (k, v) => {
    series[k].push(v);
    if (series[k].length > POINTS) series[k].shift();
  };
  const poll = async () => {
    let text;
    try {
      text = (await api.call("GET", api.nsPath("metrics"))).data;
    } catch (e) {
      note.textContent = e.status === 404 ? "This server does not serve metrics." : `Metrics: ${e.message}`;
      return;
    }
    const now = { at: performance.now(), ...metrics.reduce(metrics.parse(typeof text === "string" ? text : "")) };
    if (previous) {
      const dt = (now.at - previous.at) / 1000;
      push("rate", Math.max(0, now.invocations - previous.invocations) / dt);
      push("cold", Math.max(0, now.cold - previous.cold) / dt);
      const p50 = metrics.quantile(previous.buckets, now.buckets, 0.5);
      const p95 = metrics.quantile(previous.buckets, now.buckets, 0.95);
      push("p50", p50 === null ? null : p50 * 1000);
      push("p95", p95 === null ? null : p95 * 1000);
    }
    previous = now;
    totals.textContent = `Since this server started: ${now.invocations} invocations, ${now.cold} cold starts.`;
    $("chart-latency-title").textContent = now.latencyName ? `Latency p50 / p95 (${now.latencyName})` : "Latency p50 / p95 (no histogram yet)";
    metrics.draw($("chart-rate"), [series.rate], "/s");
    metrics.draw($("chart-latency"), [series.p50, series.p95], "ms");
    metrics.draw($("chart-cold"), [series.cold], "/s");
  };
  await poll();
  const timer = setInterval(poll, 2000);
  leave = () => clearInterval(timer);
}

function svgEl(id) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  el.setAttribute("id", id);
  return el;
}

// ---- packages, triggers, rules, APIs, sites ----

function details(entity) {
  return h("details", {}, h("summary", {}, "JSON"), h("pre", {}, pretty(entity)));
}

async function packagesView(view) {
  const { data } = await api.call("GET", api.nsPath("packages?limit=200"));
  replace(view, h("h2", {}, "Packages"), table(["name", "binding", "", ""], data.map((p) =>
    h("tr", { "data-name": p.name },
      h("td", {}, p.name),
      h("td", {}, p.binding && p.binding.name ? `${p.binding.namespace}/${p.binding.name}` : ""),
      h("td", {}, details(p)),
      h("td", {}, confirmDelete(`package ${p.name}`, () => api.call("DELETE", api.nsPath(`packages/${encodeURIComponent(p.name)}`)))))),
  "No packages."));
}

async function triggersView(view) {
  const { data } = await api.call("GET", api.nsPath("triggers?limit=200"));
  const out = h("p", { id: "trigger-out", class: "muted" });
  replace(view, h("h2", {}, "Triggers"), out, table(["name", "fire with (JSON)", "", ""], data.map((t) => {
    const payload = jsonEditor(`fire-${t.name}`, "{}");
    const fire = async () => {
      const { data: r } = await api.call("POST", api.nsPath(`triggers/${encodeURIComponent(t.name)}`), payload.read(), { accept: [202, 204] });
      out.textContent = r && r.activationId ? `Fired ${t.name}: activation ${r.activationId}` : `Fired ${t.name}: no active rule.`;
    };
    return h("tr", { "data-name": t.name },
      h("td", {}, t.name),
      h("td", {}, payload.nodes, h("button", { type: "button", on: { click: () => guarded(fire) } }, "Fire")),
      h("td", {}, details(t)),
      h("td", {}, confirmDelete(`trigger ${t.name}`, () => api.call("DELETE", api.nsPath(`triggers/${encodeURIComponent(t.name)}`)))));
  }), "No triggers."));
}

async function rulesView(view) {
  const { data } = await api.call("GET", api.nsPath("rules?limit=200"));
  const rows = await Promise.all(data.map(async (r) => {
    // The list has no status: each rule is read for it.
    let rule = r;
    try {
      rule = (await api.call("GET", api.nsPath(`rules/${encodeURIComponent(r.name)}`))).data;
    } catch {
      // Shown without its status.
    }
    const active = rule.status === "active";
    const toggle = () => api.call("POST", api.nsPath(`rules/${encodeURIComponent(r.name)}`), { status: active ? "inactive" : "active" }).then(route);
    return h("tr", { "data-name": r.name },
      h("td", {}, r.name),
      h("td", {}, rule.trigger?.name ?? ""),
      h("td", {}, rule.action?.name ?? ""),
      h("td", { class: active ? "ok" : "muted" }, rule.status ?? ""),
      h("td", {}, h("button", { type: "button", class: "secondary", on: { click: () => guarded(toggle) } }, active ? "Disable" : "Enable")),
      h("td", {}, confirmDelete(`rule ${r.name}`, () => api.call("DELETE", api.nsPath(`rules/${encodeURIComponent(r.name)}`)))));
  }));
  replace(view, h("h2", {}, "Rules"), table(["name", "trigger", "action", "status", "", ""], rows, "No rules."));
}

async function apisView(view) {
  const { data } = await api.call("GET", api.nsPath("apis"));
  const rows = [];
  for (const a of data.apis ?? []) {
    const base = String(a.basePath ?? "").replace(/^\//, "");
    for (const r of a.routes ?? []) {
      const q = new URLSearchParams({ path: r.path, method: r.method });
      rows.push(h("tr", {},
        h("td", {}, r.method),
        h("td", {}, h("a", { href: `${a.url ?? ""}${r.path}` }, `${a.basePath}${r.path}`)),
        h("td", {}, r.action),
        h("td", {}, confirmDelete(`route ${r.method} ${a.basePath}${r.path}`, () => api.call("DELETE", api.nsPath(`apis/${encodeURIComponent(base)}?${q}`))))));
    }
  }
  replace(view, h("h2", {}, "API routes"), table(["method", "path", "action", ""], rows, "No API routes."));
}

async function sitesView(view) {
  const { data } = await api.call("GET", api.nsPath("sites"));
  replace(view, h("h2", {}, "Sites"), table(["name", "files", "size", ""], data.map((s) =>
    h("tr", { "data-name": s.name },
      h("td", {}, h("a", { href: s.url, target: "_blank", rel: "noopener" }, s.name)),
      h("td", {}, String(s.files)),
      h("td", {}, `${s.size} bytes`),
      h("td", {}, confirmDelete(`site ${s.name}`, () => api.call("DELETE", api.nsPath(`sites/${encodeURIComponent(s.name)}`)))))),
  "No sites."));
}

// ---- start ----

if (api.credentials()) showApp(sessionStorage.getItem("gust.namespace"));
else showLogin();
