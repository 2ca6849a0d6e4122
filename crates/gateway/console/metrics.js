// The namespace's metrics (Prometheus' text format, decision 0026) turned into three series
// the console charts: invocations per second, latency (p50 and p95 from a histogram's
// buckets) and cold starts per second. Names it does not find are charted as empty.

/**
 * Samples of Prometheus' text exposition format: [{name, labels, value}]. Comments (# HELP,
 * # TYPE) and malformed lines are skipped.
 */
export function parse(text) {
  const out = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\S+)?$/.exec(line);
    if (!m) continue;
    const value = parseValue(m[3]);
    if (Number.isNaN(value)) continue;
    out.push({ name: m[1], labels: m[2] ? parseLabels(m[2].slice(1, -1)) : {}, value });
  }
  return out;
}

function parseValue(s) {
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  return Number(s);
}

/** `a="x",b="y\"z"` as {a: "x", b: "y\"z"}. */
function parseLabels(s) {
  const labels = {};
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/gy;
  let m;
  while ((m = re.exec(s))) {
    labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
  }
  return labels;
}

/** Histograms tried for latency, best first; then any `gust_..._seconds` histogram. */
const LATENCY = ["gust_activation_total_seconds", "gust_activation_run_seconds"];

/** The counter of starts by how (`start` = cold, prewarmed or warm), tried first. */
const STARTS = "gust_starts_total";

/** What one scrape says, reduced to what the charts need. */
export function reduce(samples) {
  const invocations = sum(samples, (s) => s.name === "gust_invocations_total");
  const names = new Set(samples.filter((s) => s.name.endsWith("_seconds_bucket")).map((s) => s.name.slice(0, -7)));
  const latencyName = LATENCY.find((n) => names.has(n)) ?? [...names].sort().find((n) => n.startsWith("gust_"));
  let buckets = new Map();
  if (latencyName) {
    // A histogram labelled by phase is read at its total (or run) phase; other labels summed.
    const phases = new Set(samples.filter((s) => s.name === `${latencyName}_bucket`).map((s) => s.labels.phase));
    const phase = phases.has("total") ? "total" : phases.has("run") ? "run" : undefined;
    for (const s of samples) {
      if (s.name !== `${latencyName}_bucket`) continue;
      if (phase && s.labels.phase !== phase) continue;
      const le = parseValue(s.labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + s.value);
    }
  }
  // Cold starts: the counter with a `start` label (a starts counter first), its "cold" series.
  const withStart = [...new Set(samples.filter((s) => s.labels.start !== undefined && s.name.endsWith("_total")).map((s) => s.name))];
  withStart.sort((a, b) => (b.includes("start") ? 1 : 0) - (a.includes("start") ? 1 : 0));
  const coldName = withStart.includes(STARTS) ? STARTS : withStart[0];
  const cold = coldName ? sum(samples, (s) => s.name === coldName && s.labels.start === "cold") : 0;
  return { invocations, latencyName, buckets, coldName, cold };
}

function sum(samples, pred) {
  return samples.filter(pred).reduce((a, s) => a + s.value, 0);
}

/** The `q` quantile (0..1) of the observations between two scrapes' buckets, in seconds. */
export function quantile(before, after, q) {
  const les = [...after.keys()].sort((a, b) => a - b);
  const counts = les.map((le) => Math.max(0, (after.get(le) ?? 0) - (before?.get(le) ?? 0)));
  const total = counts[counts.length - 1] ?? 0;
  if (!total) return null;
  const rank = q * total;
  let lower = 0;
  for (let i = 0; i < les.length; i++) {
    if (counts[i] >= rank) {
      const upper = les[i];
      if (!Number.isFinite(upper)) return lower;
      const below = i ? counts[i - 1] : 0;
      const inBucket = counts[i] - below;
      return inBucket ? lower + ((upper - lower) * (rank - below)) / inBucket : upper;
    }
    lower = les[i];
  }
  return lower;
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * Draws `series` (arrays of numbers or null, one point per scrape, same length) in `el` (an
 * <svg>) as lines, with the largest value as the scale; `unit` labels the top.
 */
export function draw(el, series, unit) {
  const W = 400;
  const H = 160;
  const P = 24;
  el.setAttribute("viewBox", `0 0 ${W} ${H}`);
  el.replaceChildren();
  const values = series.flat().filter((v) => v !== null && Number.isFinite(v));
  const max = values.length ? Math.max(...values) || 1 : 1;
  el.appendChild(svg("line", { class: "axis", x1: P, y1: H - P, x2: W - 4, y2: H - P }));
  el.appendChild(svg("line", { class: "axis", x1: P, y1: 4, x2: P, y2: H - P }));
  const top = svg("text", { x: P + 4, y: 12 });
  top.textContent = `${format(max)} ${unit}`;
  el.appendChild(top);
  const n = Math.max(2, ...series.map((s) => s.length));
  series.forEach((points, i) => {
    const d = [];
    points.forEach((v, j) => {
      if (v === null || !Number.isFinite(v)) return;
      const x = P + ((W - 4 - P) * j) / (n - 1);
      const y = H - P - ((H - P - 16) * v) / max;
      d.push(`${d.length ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`);
    });
    if (d.length) el.appendChild(svg("path", { class: i ? "line second" : "line", d: d.join(" ") }));
    // The newest point as a dot: a series of one point is seen too.
    const last = d[d.length - 1];
    if (last) {
      const [x, y] = last.slice(1).split(",");
      el.appendChild(svg("circle", { class: i ? "dot second" : "dot", cx: x, cy: y, r: 2.5 }));
    }
  });
}

function format(v) {
  if (v >= 100) return v.toFixed(0);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}
