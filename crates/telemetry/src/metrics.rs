//! The process's metrics registry (issue 28, point 1; decision 0026).
//!
//! One [`Metrics`] per process, reached through [`get`]: typed families of counters, gauges
//! and histograms from the `prometheus-client` crate, which the controller, invoker,
//! compositions, events and gateway record into. [`Metrics::encode`] writes every series in
//! Prometheus' text format (version 0.0.4, which `GET /metrics` serves);
//! [`Metrics::encode_namespace`] only the series whose `namespace` label is one namespace's
//! (`GET /api/v1/namespaces/{ns}/metrics`). The names, labels and meanings are listed in
//! SPECIFICATION.md ("Metrics"); dashboards depend on them.
//!
//! Recording is a hash lookup of the series under a read lock and atomic operations on it:
//! no I/O, no lock held across an `.await`. Label sets are small structs; the string labels
//! (namespace, action, kind) are copied into the one set a call builds, which is the only
//! allocation of a recording call (none at all for the label sets of static strings).
//!
//! Two bounds keep a tenant from growing the cost of everyone's metrics: a namespace has at
//! most [`MAX_ACTION_SERIES`] distinct `action` labels (later actions are counted under
//! [`OTHER_ACTION`]), and [`Metrics::encode_namespace`] serves a snapshot of the registry,
//! encoded and split by namespace at most once per [`NAMESPACE_SNAPSHOT_MAX_AGE`] for all
//! callers, so a console polling it costs a hash lookup and a copy of its own text.
//!
//! Gauges of state that another part owns (process instances, invocations in flight) are not
//! pushed on every change: that part registers a [`Metrics::probe`], which reads its counts
//! when the metrics are encoded.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use gust_model::entity::{annotation, truthy};
use gust_model::{Activation, ActivationStatus, annotations};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text: Prometheus' text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histograms' buckets, in seconds: 100 µs to 60 s, about three
/// per decade, so a Wasm run (under a millisecond) and a cold process start (seconds) both
/// fall in buckets of their own.
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// The most distinct `action` labels of `gust_invocations_total` one namespace gets: each new
/// action name (created, deleted, created again under another name) would otherwise add
/// series for the life of the process.
pub const MAX_ACTION_SERIES: usize = 1_000;

/// The `action` label an invocation is counted under once its namespace has
/// [`MAX_ACTION_SERIES`] other actions with series.
pub const OTHER_ACTION: &str = "_other";

/// How old the snapshot [`Metrics::encode_namespace`] serves may be: the registry is encoded
/// for namespaces at most this often, whatever the number of callers.
pub const NAMESPACE_SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(1);

/// The process-wide metrics, created on first use.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// How an activation ended, as its record's `response.status` says.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    Success,
    ApplicationError,
    DeveloperError,
    InternalError,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ApplicationError => "application_error",
            Outcome::DeveloperError => "developer_error",
            Outcome::InternalError => "internal_error",
        }
    }
}

impl From<ActivationStatus> for Outcome {
    fn from(s: ActivationStatus) -> Self {
        match s {
            ActivationStatus::Success => Outcome::Success,
            ActivationStatus::ApplicationError => Outcome::ApplicationError,
            ActivationStatus::DeveloperError => Outcome::DeveloperError,
            ActivationStatus::InternalError => Outcome::InternalError,
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// How the sandbox an activation ran in was found.
///
/// Process kinds: `Cold` is a new sandbox started for the action, `Prewarmed` a stem cell of
/// its kind given the code, `Warm` an idle instance of the action reused. Wasm starts every
/// activation in a fresh instance (microseconds), so what differs is the code: `Cold` when
/// the module had to be compiled or loaded from the disk cache into this process, `Warm` when
/// its compiled code was already in memory.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Start {
    Cold,
    Prewarmed,
    Warm,
}

impl Start {
    pub fn as_str(self) -> &'static str {
        match self {
            Start::Cold => "cold",
            Start::Prewarmed => "prewarmed",
            Start::Warm => "warm",
        }
    }

    /// The start named as a record's `start` annotation names it.
    pub fn from_name(name: &str) -> Option<Start> {
        match name {
            "cold" => Some(Start::Cold),
            "prewarmed" => Some(Start::Prewarmed),
            "warm" => Some(Start::Warm),
            _ => None,
        }
    }
}

impl EncodeLabelValue for Start {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// `gust_invocations_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvocationLabels {
    namespace: String,
    action: String,
    kind: String,
    outcome: Outcome,
}

/// The labels of the latency histograms: per namespace and kind, not per action, to bound
/// the number of series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceKind {
    namespace: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StartLabels {
    namespace: String,
    kind: String,
    start: Start,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    runtime: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThrottleLabels {
    namespace: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    op: &'static str,
    backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabel {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    namespace: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusClass {
    class: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A reader of state another part owns, run when the metrics are encoded; it returns false
/// once that state is gone (the probe is then dropped).
type Probe = Box<dyn Fn(&Metrics) -> bool + Send + Sync>;

/// Every metric Gust records (the names are in SPECIFICATION.md, "Metrics").
pub struct Metrics {
    registry: Registry,
    invocations: Family<InvocationLabels, Counter>,
    wait: Histograms<NamespaceKind>,
    init: Histograms<NamespaceKind>,
    run: Histograms<NamespaceKind>,
    total: Histograms<NamespaceKind>,
    starts: Family<StartLabels, Counter>,
    instances: Family<InstanceLabels, Gauge>,
    queued: Family<QueueLabels, Gauge>,
    in_flight: Gauge,
    throttles: Family<ThrottleLabels, Counter>,
    store: Histograms<OperationLabels>,
    bus: Histograms<OperationLabels>,
    trigger_fires: Family<NamespaceLabel, Counter>,
    rule_invocations: Family<NamespaceLabel, Counter>,
    source_deliveries: Family<SourceLabels, Counter>,
    http_responses: Family<StatusClass, Counter>,
    spans_dropped: Counter,
    probes: Mutex<Vec<Probe>>,
    backends: OnceLock<Backends>,
    /// The actions of each namespace that have `gust_invocations_total` series (at most
    /// [`MAX_ACTION_SERIES`] each); taken only when a series is not there yet.
    actions: Mutex<HashMap<String, HashSet<String>>>,
    /// The last split of the registry by namespace, shared by [`Metrics::encode_namespace`]'s
    /// callers; its lock is held while it is rebuilt, so concurrent callers wait for that one
    /// encoding instead of each making their own.
    by_namespace: Mutex<Option<Snapshot>>,
    /// [`NAMESPACE_SNAPSHOT_MAX_AGE`]; a field so that tests can hold a snapshot longer.
    snapshot_max_age: Duration,
}

/// The registry's text per namespace ([`split_by_namespace`]) and when it was taken.
struct Snapshot {
    taken: Instant,
    texts: HashMap<String, String>,
}

/// The store's and the bus's backends, the `backend` label of their latencies.
#[derive(Clone, Copy, Debug)]
struct Backends {
    store: &'static str,
    bus: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered and no series yet. The process uses [`get`]'s;
    /// a fresh one is for tests and benchmarks.
    pub fn new() -> Metrics {
        let histograms = || -> Histograms<_> { Family::new_with_constructor(latency_histogram) };
        let op_histograms = || -> Histograms<_> { Family::new_with_constructor(latency_histogram) };
        let mut m = Metrics {
            registry: Registry::default(),
            invocations: Family::default(),
            wait: histograms(),
            init: histograms(),
            run: histograms(),
            total: histograms(),
            starts: Family::default(),
            instances: Family::default(),
            queued: Family::default(),
            in_flight: Gauge::default(),
            throttles: Family::default(),
            store: op_histograms(),
            bus: op_histograms(),
            trigger_fires: Family::default(),
            rule_invocations: Family::default(),
            source_deliveries: Family::default(),
            http_responses: Family::default(),
            spans_dropped: Counter::default(),
            probes: Mutex::new(Vec::new()),
            backends: OnceLock::new(),
            actions: Mutex::new(HashMap::new()),
            by_namespace: Mutex::new(None),
            snapshot_max_age: NAMESPACE_SNAPSHOT_MAX_AGE,
        };
        // Counters are registered without `_total`: the encoder appends it to the samples,
        // and `to_text` to their HELP and TYPE lines.
        let r = &mut m.registry;
        r.register(
            "gust_invocations",
            "Activation records written, by namespace, action, kind and outcome.",
            m.invocations.clone(),
        );
        r.register(
            "gust_activation_wait_seconds",
            "Time from acceptance to the start of the run (the record's waitTime).",
            m.wait.clone(),
        );
        r.register(
            "gust_activation_init_seconds",
            "Time to make the sandbox ready, for activations that had one (initTime).",
            m.init.clone(),
        );
        r.register(
            "gust_activation_run_seconds",
            "Time the action ran (the record's duration).",
            m.run.clone(),
        );
        r.register(
            "gust_activation_total_seconds",
            "Time from acceptance to the end of the run.",
            m.total.clone(),
        );
        r.register(
            "gust_starts",
            "Sandboxes found for activations, by how: cold, prewarmed or warm.",
            m.starts.clone(),
        );
        r.register(
            "gust_instances",
            "Sandbox instances of this process, by runtime and state.",
            m.instances.clone(),
        );
        r.register(
            "gust_queue_depth",
            "Invocations waiting in this process, by queue.",
            m.queued.clone(),
        );
        r.register(
            "gust_invocations_in_flight",
            "Invocations this process's invoker has taken and not yet recorded.",
            m.in_flight.clone(),
        );
        r.register(
            "gust_throttles",
            "Invocations and fires refused with 429, by namespace and reason.",
            m.throttles.clone(),
        );
        r.register(
            "gust_store_operation_seconds",
            "Time of store writes on the invoke path, by operation and backend.",
            m.store.clone(),
        );
        r.register(
            "gust_bus_operation_seconds",
            "Time of bus publishes, by operation and backend.",
            m.bus.clone(),
        );
        r.register(
            "gust_trigger_fires",
            "Trigger fires accepted, by namespace.",
            m.trigger_fires.clone(),
        );
        r.register(
            "gust_rule_invocations",
            "Invocations started by rules of fired triggers, by namespace.",
            m.rule_invocations.clone(),
        );
        r.register(
            "gust_source_deliveries",
            "Events an event source delivered to a trigger, by namespace and source kind.",
            m.source_deliveries.clone(),
        );
        r.register(
            "gust_http_responses",
            "Responses of the API listener, by status class.",
            m.http_responses.clone(),
        );
        r.register(
            "gust_spans_dropped",
            "Spans not exported because the export queue was full (a slow or unreachable collector).",
            m.spans_dropped.clone(),
        );
        m
    }

    /// Counts one written activation record and observes its latencies: `action` is the
    /// action's path in its namespace (`pkg/a`), `accepted_at` when its invocation was
    /// accepted (ms since the epoch). Call it once per record actually written, so a record
    /// that was already there (a redelivery, a sweep) is not counted twice. Beyond
    /// [`MAX_ACTION_SERIES`] actions in the namespace, it is counted as [`OTHER_ACTION`]'s.
    pub fn activation(&self, record: &Activation, action: &str, accepted_at: u64) {
        let kind = if truthy(annotation(&record.annotations, annotations::CONDUCTOR)) {
            "conductor"
        } else {
            annotation(&record.annotations, annotations::KIND)
                .and_then(|v| v.as_str())
                .unwrap_or("unknown")
        };
        let mut labels = InvocationLabels {
            namespace: record.namespace.clone(),
            action: action.to_owned(),
            kind: kind.to_owned(),
            outcome: record.response.status.into(),
        };
        // The series is usually there: a read lock, no cap lock. (The guard is a temporary
        // of this statement, so it is released before the cap is taken.)
        let counted = self.invocations.get(&labels).map(|c| c.inc()).is_some();
        if !counted {
            if !self.admit_action(&labels.namespace, &labels.action) {
                labels.action = OTHER_ACTION.to_owned();
            }
            self.invocations.get_or_create(&labels).inc();
        }
        let InvocationLabels {
            namespace, kind, ..
        } = labels;
        let series = NamespaceKind { namespace, kind };
        let ms = |key| annotation(&record.annotations, key).and_then(|v| v.as_u64());
        if let Some(wait) = ms(annotations::WAIT_TIME) {
            self.wait.get_or_create(&series).observe(seconds(wait));
        }
        if let Some(init) = ms(annotations::INIT_TIME) {
            self.init.get_or_create(&series).observe(seconds(init));
        }
        self.run
            .get_or_create(&series)
            .observe(seconds(record.duration));
        self.total
            .get_or_create(&series)
            .observe(seconds(record.end.saturating_sub(accepted_at)));
    }

    /// Whether `action` of `namespace` may have series of its own: it already has, or the
    /// namespace has fewer than [`MAX_ACTION_SERIES`] actions with series (it is then taken
    /// in).
    fn admit_action(&self, namespace: &str, action: &str) -> bool {
        let mut actions = self.actions.lock().unwrap_or_else(|e| e.into_inner());
        let known = actions.entry(namespace.to_owned()).or_default();
        if known.contains(action) {
            return true;
        }
        if known.len() >= MAX_ACTION_SERIES {
            return false;
        }
        known.insert(action.to_owned());
        true
    }

    /// Counts one sandbox found for an activation of `kind` in `namespace`.
    pub fn start(&self, namespace: &str, kind: &str, start: Start) {
        self.starts
            .get_or_create(&StartLabels {
                namespace: namespace.to_owned(),
                kind: kind.to_owned(),
                start,
            })
            .inc();
    }

    /// Sets the number of `runtime`'s instances in `state` (from a [`probe`](Self::probe)).
    pub fn set_instances(&self, runtime: &'static str, state: &'static str, n: u64) {
        self.instances
            .get_or_create(&InstanceLabels { runtime, state })
            .set(gauge(n));
    }

    /// Sets the number of invocations waiting in `queue` (from a [`probe`](Self::probe)).
    pub fn set_queue_depth(&self, queue: &'static str, n: u64) {
        self.queued
            .get_or_create(&QueueLabels { queue })
            .set(gauge(n));
    }

    /// Sets the number of invocations the invoker has taken and not recorded.
    pub fn set_in_flight(&self, n: u64) {
        self.in_flight.set(gauge(n));
    }

    /// Counts one invocation or fire of `namespace` refused for `reason` (a fixed word:
    /// `concurrent`, `per_minute`, `fires_per_minute`, `capacity`).
    pub fn throttled(&self, namespace: &str, reason: &'static str) {
        self.throttles
            .get_or_create(&ThrottleLabels {
                namespace: namespace.to_owned(),
                reason,
            })
            .inc();
    }

    /// Names the process's store and bus backends (`sqlite` or `postgres`, `memory` or
    /// `nats`), the `backend` label of their latencies; the first call wins (one process has
    /// one of each), before it the label is `unknown`.
    pub fn set_backends(&self, store: &'static str, bus: &'static str) {
        let _ = self.backends.set(Backends { store, bus });
    }

    fn backends(&self) -> Backends {
        self.backends.get().copied().unwrap_or(Backends {
            store: "unknown",
            bus: "unknown",
        })
    }

    /// Observes one store operation (`put_pending`, `put_activation`, ...) that took `took`.
    pub fn store_op(&self, op: &'static str, took: Duration) {
        let backend = self.backends().store;
        self.store
            .get_or_create(&OperationLabels { op, backend })
            .observe(took.as_secs_f64());
    }

    /// Observes one bus operation (`publish`) that took `took`.
    pub fn bus_op(&self, op: &'static str, took: Duration) {
        let backend = self.backends().bus;
        self.bus
            .get_or_create(&OperationLabels { op, backend })
            .observe(took.as_secs_f64());
    }

    /// Awaits `call`, a store operation named `op`, and observes how long it took.
    pub async fn timed_store<T>(&self, op: &'static str, call: impl Future<Output = T>) -> T {
        let began = Instant::now();
        let out = call.await;
        self.store_op(op, began.elapsed());
        out
    }

    /// Awaits `call`, a bus operation named `op`, and observes how long it took.
    pub async fn timed_bus<T>(&self, op: &'static str, call: impl Future<Output = T>) -> T {
        let began = Instant::now();
        let out = call.await;
        self.bus_op(op, began.elapsed());
        out
    }

    /// Counts one accepted fire of a trigger of `namespace`.
    pub fn trigger_fired(&self, namespace: &str) {
        self.trigger_fires
            .get_or_create(&NamespaceLabel {
                namespace: namespace.to_owned(),
            })
            .inc();
    }

    /// Counts one invocation started by a rule of `namespace`.
    pub fn rule_invoked(&self, namespace: &str) {
        self.rule_invocations
            .get_or_create(&NamespaceLabel {
                namespace: namespace.to_owned(),
            })
            .inc();
    }

    /// Counts one event that a source of kind `source` delivered to a trigger of `namespace`.
    pub fn source_delivered(&self, namespace: &str, source: &str) {
        self.source_deliveries
            .get_or_create(&SourceLabels {
                namespace: namespace.to_owned(),
                source: source.to_owned(),
            })
            .inc();
    }

    /// Counts one span dropped before export (the exporter's queue was full).
    pub fn span_dropped(&self) {
        self.spans_dropped.inc();
    }

    /// Counts one response of the API listener with HTTP status `status`.
    pub fn http_response(&self, status: u16) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http_responses
            .get_or_create(&StatusClass { class })
            .inc();
    }

    /// Registers `probe`, run before every encoding to set gauges of state another part owns
    /// (it returns false when that state is gone, and is then dropped). Keep it cheap: it
    /// runs under the probes' lock, on the scraper's request.
    pub fn probe(&self, probe: impl Fn(&Metrics) -> bool + Send + Sync + 'static) {
        self.probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(probe));
    }

    fn run_probes(&self) {
        self.probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| p(self));
    }

    /// Every series, in Prometheus' text format 0.0.4 ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        self.run_probes();
        to_text(&self.open_metrics())
    }

    /// The series whose `namespace` label is `namespace`, with their families' HELP and TYPE
    /// lines; a family with no such series is left out. They are read from a snapshot at
    /// most [`NAMESPACE_SNAPSHOT_MAX_AGE`] old, taken for every namespace at once, so a
    /// request costs a lookup however many tenants poll and however many series the others
    /// have.
    pub fn encode_namespace(&self, namespace: &str) -> String {
        let mut snapshot = self.by_namespace.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = snapshot
            .as_ref()
            .is_some_and(|s| s.taken.elapsed() < self.snapshot_max_age);
        if !fresh {
            *snapshot = Some(Snapshot {
                taken: Instant::now(),
                texts: split_by_namespace(&self.open_metrics()),
            });
        }
        snapshot
            .as_ref()
            .and_then(|s| s.texts.get(namespace))
            .cloned()
            .unwrap_or_default()
    }

    fn open_metrics(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; an encoder error would be a bug in a label's
        // encoding, and leaves what was written so far.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        out
    }
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Rewrites the OpenMetrics text `prometheus-client` writes as Prometheus text 0.0.4: a
/// counter's HELP and TYPE lines name it with `_total` as its samples do, `# UNIT` and
/// `# EOF` lines are dropped.
fn to_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    for_each_line(open_metrics, |line| match line {
        Line::Family(header) => out.push_str(header),
        Line::Sample(sample) => {
            out.push_str(sample);
            out.push('\n');
        }
    });
    out
}

/// [`to_text`] per namespace: for each `namespace` label value, the samples labelled with it,
/// each family's HELP and TYPE lines before its first such sample; a family with none is
/// left out, and a sample without the label is in no namespace's text.
fn split_by_namespace(open_metrics: &str) -> HashMap<String, String> {
    // Per namespace: the number of the last family whose header its text has, and the text.
    let mut texts: HashMap<String, (usize, String)> = HashMap::new();
    let mut header = String::new();
    let mut family = 0;
    for_each_line(open_metrics, |line| match line {
        Line::Family(h) => {
            header.clear();
            header.push_str(h);
            family += 1;
        }
        Line::Sample(sample) => {
            let Some(namespace) = label(sample, "namespace") else {
                return;
            };
            let (headed, text) = texts.entry(namespace).or_default();
            if *headed != family {
                text.push_str(&header);
                *headed = family;
            }
            text.push_str(sample);
            text.push('\n');
        }
    });
    texts
        .into_iter()
        .map(|(ns, (_, text))| (ns, text))
        .collect()
}

/// A line of the 0.0.4 text, as [`for_each_line`] hands it on.
enum Line<'a> {
    /// A family's HELP and TYPE lines, each ending in a newline.
    Family(&'a str),
    /// A sample, without its newline.
    Sample(&'a str),
}

/// Calls `f` with each family header and sample of the OpenMetrics text, in order, rewritten
/// as [`to_text`] says.
fn for_each_line(open_metrics: &str, mut f: impl FnMut(Line<'_>)) {
    let mut help = "";
    for line in open_metrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            let suffix = if kind == "counter" { "_total" } else { "" };
            let text = help.split_once(' ').map_or("", |(_, h)| h.trim_end());
            let header = format!("# HELP {name}{suffix} {text}\n# TYPE {name}{suffix} {kind}\n");
            f(Line::Family(&header));
        } else if line.starts_with('#') || line.is_empty() {
            // `# UNIT`, `# EOF`: not in the 0.0.4 format.
        } else {
            f(Line::Sample(line));
        }
    }
}

/// The (unescaped) value of label `key` of the sample `line`, if it has that label.
fn label(line: &str, key: &str) -> Option<String> {
    let open = line.find('{')?;
    let mut rest = &line[open + 1..];
    loop {
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        if name.trim_start_matches(',') == key {
            return Some(value);
        }
        rest = &after[end + 1..];
        if !rest.starts_with(',') {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gust_model::ActivationResponse;
    use gust_model::record::annotation as kv;
    use serde_json::json;

    fn record(namespace: &str, status: ActivationStatus, extra: &[(&str, u64)]) -> Activation {
        let mut annotations = vec![kv("kind", json!("wasm"))];
        annotations.extend(extra.iter().map(|(k, v)| kv(k, json!(v))));
        Activation {
            namespace: namespace.into(),
            name: "a".into(),
            version: "0.0.1".into(),
            subject: namespace.into(),
            activation_id: "id".into(),
            start: 1_000,
            end: 1_020,
            duration: 20,
            status_code: 0,
            response: ActivationResponse::new(status, json!({})),
            logs: Vec::new(),
            annotations,
            publish: false,
            cause: None,
        }
    }

    #[test]
    fn counters_are_named_with_total_in_every_line_and_no_openmetrics_lines_remain() {
        let m = Metrics::new();
        m.activation(&record("ns", ActivationStatus::Success, &[]), "a", 990);
        let text = m.encode();
        assert!(text.contains("# HELP gust_invocations_total "), "{text}");
        assert!(text.contains("# TYPE gust_invocations_total counter\n"));
        assert!(text.contains(
            "gust_invocations_total{namespace=\"ns\",action=\"a\",kind=\"wasm\",outcome=\"success\"} 1\n"
        ));
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
        assert!(
            text.contains(
                "gust_activation_total_seconds_count{namespace=\"ns\",kind=\"wasm\"} 1\n"
            )
        );
        assert!(
            text.contains(
                "gust_activation_total_seconds_sum{namespace=\"ns\",kind=\"wasm\"} 0.03\n"
            )
        );
    }

    #[test]
    fn a_namespace_sees_only_its_series_and_the_families_it_has_series_in() {
        let m = Metrics::new();
        m.activation(
            &record("mine", ActivationStatus::Success, &[("waitTime", 3)]),
            "a",
            990,
        );
        m.activation(
            &record("other", ActivationStatus::DeveloperError, &[]),
            "b",
            990,
        );
        m.throttled("other", "concurrent");
        m.http_response(200);
        let text = m.encode_namespace("mine");
        assert!(text.contains("namespace=\"mine\""));
        assert!(!text.contains("other"), "{text}");
        assert!(!text.contains("gust_throttles_total"), "{text}");
        assert!(!text.contains("gust_http_responses_total"), "{text}");
        assert!(text.contains("# TYPE gust_activation_wait_seconds histogram\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(label(line, "namespace").as_deref(), Some("mine"), "{line}");
        }
    }

    #[test]
    fn a_label_value_that_imitates_another_label_does_not_pass_the_filter() {
        let m = Metrics::new();
        m.activation(
            &record("other", ActivationStatus::Success, &[]),
            "x\",namespace=\"mine",
            0,
        );
        assert_eq!(m.encode_namespace("mine"), "");
        assert!(
            m.encode_namespace("other")
                .contains("gust_invocations_total")
        );
    }

    #[test]
    fn labels_are_read_with_their_escapes() {
        let cases = [
            (r#"m{a="1",namespace="n"} 1"#, Some("n")),
            (r#"m{namespace="a\"b",x="y"} 1"#, Some("a\"b")),
            (r#"m{x="namespace=\"n\""} 1"#, None),
            (r#"m 1"#, None),
            (r#"m{x="unterminated} 1"#, None),
        ];
        for (line, want) in cases {
            assert_eq!(label(line, "namespace").as_deref(), want, "{line}");
        }
    }

    #[test]
    fn outcomes_and_kinds_come_from_the_record() {
        let m = Metrics::new();
        let mut r = record("ns", ActivationStatus::ApplicationError, &[("initTime", 5)]);
        r.annotations.push(kv("conductor", json!(true)));
        m.activation(&r, "c", 1_000);
        let text = m.encode();
        assert!(text.contains("kind=\"conductor\",outcome=\"application_error\"} 1"));
        assert!(
            text.contains(
                "gust_activation_init_seconds_count{namespace=\"ns\",kind=\"conductor\"} 1"
            )
        );
        assert!(!text.contains("gust_activation_wait_seconds_count"));
    }

    #[test]
    fn probes_set_gauges_when_encoding_and_are_dropped_when_their_state_is_gone() {
        let m = Metrics::new();
        let alive = std::sync::Arc::new(());
        let weak = std::sync::Arc::downgrade(&alive);
        m.probe(move |m| {
            let Some(_) = weak.upgrade() else {
                return false;
            };
            m.set_instances("process", "idle", 3);
            true
        });
        assert!(
            m.encode()
                .contains("gust_instances{runtime=\"process\",state=\"idle\"} 3\n")
        );
        drop(alive);
        m.encode();
        assert!(m.probes.lock().unwrap().is_empty());
    }

    /// The distinct `action` labels of `namespace`'s `gust_invocations_total` series, and the
    /// sum of those labelled `action`.
    fn actions_of(m: &Metrics, namespace: &str, action: &str) -> (HashSet<String>, f64) {
        let text = m.encode_namespace(namespace);
        let mut labels = HashSet::new();
        let mut count = 0.0;
        for line in text
            .lines()
            .filter(|l| l.starts_with("gust_invocations_total{"))
        {
            let a = label(line, "action").unwrap();
            if a == action {
                count += line.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap();
            }
            labels.insert(a);
        }
        (labels, count)
    }

    #[test]
    fn dropped_spans_are_counted_for_the_whole_process_and_no_namespace() {
        let m = Metrics::new();
        m.span_dropped();
        m.span_dropped();
        let text = m.encode();
        assert!(
            text.contains("# TYPE gust_spans_dropped_total counter"),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l == "gust_spans_dropped_total 2"),
            "{text}"
        );
        assert!(!m.encode_namespace("ns").contains("gust_spans_dropped"));
    }

    #[test]
    fn a_namespace_beyond_the_action_cap_is_counted_under_other() {
        let mut m = Metrics::new();
        m.snapshot_max_age = Duration::ZERO;
        let ok = record("big", ActivationStatus::Success, &[]);
        for i in 0..MAX_ACTION_SERIES {
            m.activation(&ok, &format!("a{i}"), 0);
        }
        let (labels, _) = actions_of(&m, "big", "a0");
        assert_eq!(labels.len(), MAX_ACTION_SERIES);
        assert!(!labels.contains(OTHER_ACTION));
        // Two new names, twice each: both counted under `_other`, and no series of their own.
        for name in ["new1", "new2", "new1", "new2"] {
            m.activation(&ok, name, 0);
        }
        let (labels, other) = actions_of(&m, "big", OTHER_ACTION);
        assert_eq!(other, 4.0);
        assert_eq!(labels.len(), MAX_ACTION_SERIES + 1);
        assert!(!labels.contains("new1") && !labels.contains("new2"));
        // An action that has series keeps them, for a new outcome too.
        m.activation(
            &record("big", ActivationStatus::DeveloperError, &[]),
            "a7",
            0,
        );
        m.activation(&ok, "a7", 0);
        assert_eq!(actions_of(&m, "big", "a7").1, 3.0);
        // The cap is per namespace, and the histograms (not per action) still see every run.
        m.activation(&record("small", ActivationStatus::Success, &[]), "new1", 0);
        let (labels, count) = actions_of(&m, "small", "new1");
        assert_eq!((labels.len(), count), (1, 1.0));
        let text = m.encode_namespace("big");
        let runs = format!(
            "gust_activation_run_seconds_count{{namespace=\"big\",kind=\"wasm\"}} {}\n",
            MAX_ACTION_SERIES + 6
        );
        assert!(text.contains(&runs), "{runs}");
    }

    #[test]
    fn namespaces_read_one_shared_snapshot_until_it_is_too_old() {
        let mut m = Metrics::new();
        m.snapshot_max_age = Duration::from_secs(3600);
        m.activation(&record("ns", ActivationStatus::Success, &[]), "a", 0);
        let first = m.encode_namespace("ns");
        assert!(first.contains("action=\"a\""), "{first}");
        m.activation(&record("ns", ActivationStatus::Success, &[]), "b", 0);
        m.activation(&record("late", ActivationStatus::Success, &[]), "a", 0);
        assert_eq!(m.encode_namespace("ns"), first);
        assert_eq!(m.encode_namespace("late"), "");
        // The whole registry is always read fresh.
        assert!(m.encode().contains("namespace=\"late\""));
        m.snapshot_max_age = Duration::ZERO;
        assert!(m.encode_namespace("ns").contains("action=\"b\""));
        assert!(m.encode_namespace("late").contains("action=\"a\""));
    }

    #[test]
    fn the_split_keeps_every_namespaced_line_of_the_whole_text_in_order() {
        let mut m = Metrics::new();
        m.snapshot_max_age = Duration::ZERO;
        for ns in ["a", "b", "c"] {
            m.activation(
                &record(ns, ActivationStatus::Success, &[("initTime", 2)]),
                "x",
                0,
            );
            m.throttled(ns, "concurrent");
        }
        m.http_response(500);
        let whole = m.encode();
        for ns in ["a", "b", "c"] {
            let samples: Vec<&str> = whole
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| label(l, "namespace").as_deref() == Some(ns))
                .collect();
            let text = m.encode_namespace(ns);
            let mine: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
            assert_eq!(mine, samples);
            // Each header once, right before its family's first sample, as in the whole text.
            for line in text.lines().filter(|l| l.starts_with('#')) {
                assert_eq!(text.matches(&format!("{line}\n")).count(), 1, "{line}");
                assert!(whole.contains(line), "{line}");
            }
        }
    }
}
