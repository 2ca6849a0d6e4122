//! Spans of invocations and their export over OTLP (issue 28, point 2; decision 0026).
//!
//! Gust makes its spans itself, with the ids of its [`TraceParent`]s, so the `traceId` of a
//! record and the ids that travel on the bus are those of the exported spans. A finished
//! [`Span`] becomes the SDK's `SpanData` and is handed to the OTLP/HTTP exporter (protobuf,
//! `POST <endpoint>/v1/traces`) by one task of its own, in batches as OpenTelemetry's batch
//! span processor sends them: 512 spans, or fewer once the oldest has waited the schedule
//! delay (1 s, `OTEL_BSP_SCHEDULE_DELAY` in ms). (The SDK's tracer would pick span ids of its own for spans it
//! starts; the exporter takes `SpanData` with any ids, so the tracer is not used.)
//!
//! Until [`start`] is called (no `--otlp-endpoint`), [`enabled`] is false and [`export`] and
//! [`begin`] return at once: one atomic load, nothing built, nothing sent. The queue is
//! bounded: a span that does not fit (a slow or unreachable collector) is dropped and
//! counted ([`dropped`]); nothing on the invoke path waits for the collector. A span of an
//! unsampled trace (flag `sampled` 0) is not exported. [`Exporting::shutdown`] sends what is
//! queued, within 5 s for all of it.
//!
//! The spans of one invocation (names are SPECIFICATION.md's "Tracing"):
//! `invoke <ns>/<action>` is the controller's side (accepted to answered or queued), parent
//! the caller's span; `run <ns>/<action>` the invoker's run, its child; a composition's
//! `sequence`/`conductor` span and a trigger's `fire` span are the parents of their steps' and
//! rules' `invoke` spans.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gust_model::{
    Activation, ActivationStatus, InvocationMessage, TraceParent, annotations, entity,
};
use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub use opentelemetry::KeyValue;

/// Spans waiting for the exporter at most; more are dropped (and counted).
pub const QUEUE: usize = 4096;
/// Spans sent in one request at most; a batch this full is sent at once.
const MAX_BATCH: usize = 512;
/// How long the oldest queued span waits at most before its batch is sent, unless
/// `OTEL_BSP_SCHEDULE_DELAY` says otherwise (OpenTelemetry's default).
const SCHEDULE_DELAY: Duration = Duration::from_secs(1);
/// How long a shutdown spends sending the queued spans at most, all batches together.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
/// Longest one export request may take (connect, send, answer).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The exporter's queue, once [`start`]ed.
static QUEUE_TX: OnceLock<mpsc::Sender<SpanData>> = OnceLock::new();
/// Spans dropped because the queue was full.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Spans the collector accepted.
static SENT: AtomicU64 = AtomicU64::new(0);

/// Why span export could not start. Caused by the operator's configuration.
#[derive(Debug, thiserror::Error)]
pub enum SpanError {
    /// the OTLP endpoint is not an `http://` or `https://` URL
    #[error("the OTLP endpoint '{0}' is not an http:// or https:// URL")]
    Endpoint(String),
    /// the exporter could not be built
    #[error("cannot export spans to '{endpoint}': {reason}")]
    Exporter { endpoint: String, reason: String },
    /// export was started already in this process
    #[error("span export is already started in this process")]
    Started,
}

/// What a span is to its trace (OpenTelemetry's span kinds that Gust uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Handles a client's request (an invocation, a fire).
    Server,
    /// Takes work from the bus (an invoker's run).
    Consumer,
    /// Work inside the platform (a step's invocation, a composition).
    Internal,
}

/// One finished span, with Gust's ids.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    pub kind: Kind,
    /// Its trace id, its own span id (`context.span_id()`) and flags.
    pub context: TraceParent,
    /// Its parent's span id, if it has a parent.
    pub parent: Option<u64>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    /// Why it failed, if it did (the span's status is then `Error`).
    pub error: Option<String>,
}

/// Whether spans are exported in this process (an endpoint is configured).
pub fn enabled() -> bool {
    QUEUE_TX.get().is_some()
}

/// Queues `span` for export; dropped (and counted) if the queue is full, ignored when export
/// is off or its trace is not sampled. Never waits.
pub fn export(span: Span) {
    let Some(tx) = QUEUE_TX.get() else {
        return;
    };
    if !span.context.sampled() {
        return;
    }
    if tx.try_send(span_data(span)).is_err() {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        crate::metrics::get().span_dropped();
    }
}

/// Spans dropped since start because the export queue was full.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Spans the collector accepted since start.
pub fn sent() -> u64 {
    SENT.load(Ordering::Relaxed)
}

/// The time `ms` milliseconds after the epoch (a record's `start` and `end`).
pub fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// A span that is exported when dropped, ending then: for work whose end is wherever its
/// function returns.
#[derive(Debug)]
pub struct Open(Option<Span>);

impl Open {
    /// Adds an attribute.
    pub fn set(&mut self, kv: KeyValue) {
        if let Some(span) = &mut self.0 {
            span.attributes.push(kv);
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(mut span) = self.0.take() {
            span.end = SystemTime::now();
            export(span);
        }
    }
}

/// Starts a span now (`None` when export is off or the trace is not sampled, so the caller
/// builds nothing): `context` is the span's own, `parent` its parent's span id.
pub fn begin(
    name: impl FnOnce() -> String,
    kind: Kind,
    context: TraceParent,
    parent: Option<u64>,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> Option<Open> {
    if !enabled() || !context.sampled() {
        return None;
    }
    let now = SystemTime::now();
    Some(Open(Some(Span {
        name: name(),
        kind,
        context,
        parent,
        start: now,
        end: now,
        attributes: attributes(),
        error: None,
    })))
}

/// Starts the controller's side of `msg`'s invocation, its `invoke <ns>/<action>` span (its
/// own context is `msg.traceparent`; `caller` is the incoming context, its parent): a server
/// span for a client's request, internal for a step's or a rule's invocation.
pub fn begin_invoke(msg: &InvocationMessage, caller: Option<TraceParent>) -> Option<Open> {
    begin(
        || format!("invoke {}/{}", msg.namespace, msg.action),
        if msg.cause.is_none() {
            Kind::Server
        } else {
            Kind::Internal
        },
        msg.traceparent?,
        caller.map(|t| t.span_id()),
        || invocation_attributes(msg),
    )
}

/// The attributes every span of an invocation of `msg` has: its activation id, namespace,
/// action and kind.
pub fn invocation_attributes(msg: &InvocationMessage) -> Vec<KeyValue> {
    vec![
        KeyValue::new("faas.invocation_id", msg.activation_id.clone()),
        KeyValue::new("faas.name", format!("{}/{}", msg.namespace, msg.action)),
        KeyValue::new("gust.namespace", msg.subject.clone()),
        KeyValue::new("gust.kind", msg.kind.clone()),
    ]
}

/// The span of `msg`'s activation as its `record` tells it (`verb` names it: `run`,
/// `sequence`, `conductor`): from the record's start to its end, with its timings (`waitTime`,
/// `initTime`, duration, in ms) and status code as attributes, failed unless it succeeded.
pub fn of_record(
    verb: &str,
    kind: Kind,
    context: TraceParent,
    parent: Option<u64>,
    msg: &InvocationMessage,
    record: &Activation,
) -> Span {
    let mut attributes = invocation_attributes(msg);
    let number = |key: &str| entity::annotation(&record.annotations, key).and_then(|v| v.as_i64());
    let wait = number(annotations::WAIT_TIME).unwrap_or(0);
    let init = number(annotations::INIT_TIME).unwrap_or(0);
    let duration = i64::try_from(record.duration).unwrap_or(i64::MAX);
    attributes.extend([
        KeyValue::new("gust.wait_ms", wait),
        KeyValue::new("gust.init_ms", init),
        KeyValue::new("gust.run_ms", duration.saturating_sub(init)),
        KeyValue::new("gust.duration_ms", duration),
        KeyValue::new("gust.status_code", i64::from(record.status_code)),
        KeyValue::new("faas.coldstart", init > 0),
    ]);
    if let Some(start) =
        entity::annotation(&record.annotations, annotations::START).and_then(|v| v.as_str())
    {
        attributes.push(KeyValue::new("gust.start", start.to_string()));
    }
    Span {
        name: format!("{verb} {}/{}", msg.namespace, msg.action),
        kind,
        context,
        parent,
        start: at_ms(record.start),
        end: at_ms(record.end.max(record.start)),
        attributes,
        error: match &record.response.status {
            ActivationStatus::Success => None,
            status => Some(format!("{status:?}")),
        },
    }
}

/// The SDK's form of `span`.
fn span_data(span: Span) -> SpanData {
    let flags = TraceFlags::new(span.context.flags());
    let trace_id = TraceId::from_bytes(span.context.trace_id().to_be_bytes());
    SpanData {
        span_context: SpanContext::new(
            trace_id,
            SpanId::from_bytes(span.context.span_id().to_be_bytes()),
            flags,
            false,
            TraceState::NONE,
        ),
        parent_span_id: span
            .parent
            .map_or(SpanId::INVALID, |p| SpanId::from_bytes(p.to_be_bytes())),
        parent_span_is_remote: false,
        span_kind: match span.kind {
            Kind::Server => SpanKind::Server,
            Kind::Consumer => SpanKind::Consumer,
            Kind::Internal => SpanKind::Internal,
        },
        name: Cow::Owned(span.name),
        start_time: span.start,
        end_time: span.end,
        attributes: span.attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match span.error {
            Some(e) => Status::error(e),
            None => Status::Unset,
        },
        instrumentation_scope: scope().clone(),
    }
}

fn scope() -> &'static InstrumentationScope {
    static SCOPE: OnceLock<InstrumentationScope> = OnceLock::new();
    SCOPE.get_or_init(|| {
        InstrumentationScope::builder("gust")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build()
    })
}

/// Span export, running: [`Exporting::shutdown`] sends what is queued and stops it.
#[derive(Debug)]
pub struct Exporting {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Exporting {
    /// Sends the spans queued so far (within [`SHUTDOWN_FLUSH`] in all, stopping at the
    /// first batch the collector does not take) and stops.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        let dropped = dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                sent = sent(),
                "spans were dropped: the export queue was full"
            );
        }
    }
}

/// Starts exporting spans to the OTLP/HTTP collector at `endpoint` (its base URL, as
/// `OTEL_EXPORTER_OTLP_ENDPOINT` gives it: spans go to `<endpoint>/v1/traces`), as service
/// `gust` in role `role` (`serve`, `controller`, `invoker`). Runs on the current tokio
/// runtime.
pub fn start(endpoint: &str, role: &str) -> Result<Exporting, SpanError> {
    let exporter = exporter(endpoint, role)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    QUEUE_TX.set(tx).map_err(|_| SpanError::Started)?;
    let (stop, stopped) = oneshot::channel();
    let delay = schedule_delay(std::env::var("OTEL_BSP_SCHEDULE_DELAY").ok().as_deref());
    let task = tokio::spawn(send_batches(exporter, rx, stopped, delay));
    Ok(Exporting {
        stop: Some(stop),
        task,
    })
}

/// The OTLP/HTTP exporter to `endpoint`, its spans those of service `gust` in role `role`.
fn exporter(endpoint: &str, role: &str) -> Result<opentelemetry_otlp::SpanExporter, SpanError> {
    let url = traces_url(endpoint)?;
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| SpanError::Exporter {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        })?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(Client(client))
        .build()
        .map_err(|e| SpanError::Exporter {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        })?;
    exporter.set_resource(
        &Resource::builder_empty()
            .with_service_name("gust")
            .with_attributes([
                KeyValue::new("gust.role", role.to_string()),
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            ])
            .build(),
    );
    Ok(exporter)
}

/// `<endpoint>/v1/traces`, for an http(s) base URL.
fn traces_url(endpoint: &str) -> Result<String, SpanError> {
    let base = endpoint.trim().trim_end_matches('/');
    let scheme_ok = base.starts_with("http://") || base.starts_with("https://");
    if !scheme_ok || reqwest::Url::parse(base).is_err() {
        return Err(SpanError::Endpoint(endpoint.to_string()));
    }
    Ok(format!("{base}/v1/traces"))
}

/// The export task, batching as OpenTelemetry's batch span processor does: a batch is sent
/// when [`MAX_BATCH`] spans are queued or when its oldest span has waited `delay`, so a busy
/// process sends a few requests a second, not one per few spans. Told to stop, it sends
/// the rest within [`SHUTDOWN_FLUSH`], giving up at the first batch that fails.
async fn send_batches(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::Receiver<SpanData>,
    mut stopped: oneshot::Receiver<()>,
    delay: Duration,
) {
    let mut failing = false;
    let mut batch: Vec<SpanData> = Vec::with_capacity(MAX_BATCH);
    // When the batch's oldest span has waited `delay` (none while the batch is empty).
    let mut due: Option<Instant> = None;
    loop {
        let room = MAX_BATCH - batch.len();
        tokio::select! {
            // A stop is seen before more spans are taken: what is queued then is the rest.
            biased;
            _ = &mut stopped => break,
            n = rx.recv_many(&mut batch, room) => {
                if n == 0 {
                    break;
                }
                let due_at = *due.get_or_insert_with(|| Instant::now() + delay);
                if batch.len() >= MAX_BATCH || Instant::now() >= due_at {
                    send(&exporter, std::mem::take(&mut batch), &mut failing).await;
                    due = None;
                }
            }
            () = sleep_until(due), if due.is_some() => {
                send(&exporter, std::mem::take(&mut batch), &mut failing).await;
                due = None;
            }
        }
    }
    // The rest: what is batched and what is still queued, within one deadline for all, so a
    // collector that drops packets cannot hold the shutdown for a timeout per batch.
    let flush = async {
        loop {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            if !send(&exporter, std::mem::take(&mut batch), &mut failing).await {
                return;
            }
        }
    };
    if tokio::time::timeout(SHUTDOWN_FLUSH, flush).await.is_err() {
        tracing::warn!(
            "the OTLP collector did not take the last spans within {SHUTDOWN_FLUSH:?}; they are dropped"
        );
    }
    let _ = exporter.shutdown();
}

/// Sleeps until `due` (forever if `None`; the caller's guard keeps that branch off then).
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Sends one batch: whether the collector took it. Logs the first failure of a run of
/// failures and the recovery after it, not every batch.
async fn send(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: Vec<SpanData>,
    failing: &mut bool,
) -> bool {
    let n = batch.len() as u64;
    match exporter.export(batch).await {
        Ok(()) => {
            SENT.fetch_add(n, Ordering::Relaxed);
            if std::mem::take(failing) {
                tracing::info!("spans reach the OTLP collector again");
            }
            true
        }
        Err(e) => {
            if !std::mem::replace(failing, true) {
                tracing::warn!(error = %e, spans = n, "cannot export spans; dropping them until the collector answers");
            }
            false
        }
    }
}

/// How long the oldest queued span waits at most before its batch is sent:
/// `OTEL_BSP_SCHEDULE_DELAY` (milliseconds) if it is set to a number, else [`SCHEDULE_DELAY`].
fn schedule_delay(var: Option<&str>) -> Duration {
    var.and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(SCHEDULE_DELAY, Duration::from_millis)
}

/// The OTLP exporter's HTTP client: the workspace's reqwest (rustls with ring).
#[derive(Debug)]
struct Client(reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut req = self
            .0
            .request(parts.method, parts.uri.to_string())
            .body(body);
        for (name, value) in &parts.headers {
            req = req.header(name, value);
        }
        let res = req.send().await?;
        let mut out = Response::builder().status(res.status());
        for (name, value) in res.headers() {
            out = out.header(name, value);
        }
        // The collector's answer is small (a partial-success message at most).
        let body = res.bytes().await?;
        Ok(out.body(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_base_url() {
        assert_eq!(
            traces_url("http://collector:4318").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://c.example/otlp/").unwrap(),
            "https://c.example/otlp/v1/traces"
        );
        for bad in ["collector:4318", "ftp://c", "", "http://bad host"] {
            assert!(traces_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_span_keeps_gusts_ids() {
        let parent: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap();
        let own = parent.child();
        let data = span_data(Span {
            name: "run guest/a".into(),
            kind: Kind::Consumer,
            context: own,
            parent: Some(parent.span_id()),
            start: at_ms(1),
            end: at_ms(2),
            attributes: Vec::new(),
            error: None,
        });
        assert_eq!(
            data.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(data.span_context.span_id().to_string(), own.span_id_hex());
        assert_eq!(data.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert!(data.span_context.is_sampled());
    }

    #[test]
    fn the_schedule_delay_is_otel_bsp_schedule_delay_in_ms_or_one_second() {
        assert_eq!(schedule_delay(None), Duration::from_secs(1));
        assert_eq!(schedule_delay(Some("250")), Duration::from_millis(250));
        assert_eq!(schedule_delay(Some(" 0 ")), Duration::ZERO);
        for bad in ["", "-5", "1s", "1.5", "99999999999999999999999"] {
            assert_eq!(schedule_delay(Some(bad)), Duration::from_secs(1), "{bad}");
        }
    }

    /// A collector on a local port answering every export with `status`: its URL and the
    /// number of export requests it has received so far.
    async fn collector(status: u16) -> (String, tokio::sync::watch::Receiver<usize>) {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (count, requests) = tokio::sync::watch::channel(0);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut conn = BufReader::new(conn);
                    loop {
                        let mut length = 0;
                        let mut line = String::new();
                        if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            line.clear();
                            if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line.trim().is_empty() {
                                break;
                            }
                            if let Some((name, value)) = line.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if conn.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        count.send_modify(|n| *n += 1);
                        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                        if conn.get_mut().write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, requests)
    }

    /// A queue holding `n` spans.
    fn queued(n: usize) -> mpsc::Receiver<SpanData> {
        let (tx, rx) = mpsc::channel(QUEUE);
        for _ in 0..n {
            let own = TraceParent::new_root();
            tx.try_send(span_data(Span {
                name: "run guest/a".into(),
                kind: Kind::Consumer,
                context: own,
                parent: None,
                start: at_ms(1),
                end: at_ms(2),
                attributes: Vec::new(),
                error: None,
            }))
            .unwrap();
        }
        rx
    }

    /// A schedule delay no test waits for.
    const NEVER: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn a_full_batch_goes_at_once_the_rest_waits_for_the_delay_or_the_stop() {
        let (url, mut requests) = collector(200).await;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(send_batches(
            exporter(&url, "test").unwrap(),
            queued(1000),
            stopped,
            NEVER,
        ));
        // 512 of the 1000 in one request, without waiting for the delay.
        requests.wait_for(|n| *n >= 1).await.unwrap();
        assert_eq!(*requests.borrow(), 1, "the 488 left wait for the delay");
        stop.send(()).unwrap();
        task.await.unwrap();
        assert_eq!(
            *requests.borrow(),
            2,
            "the stop sends the 488 in one request"
        );
    }

    #[tokio::test]
    async fn the_stop_gives_up_at_the_first_batch_the_collector_refuses() {
        let (url, requests) = collector(400).await;
        let (stop, stopped) = oneshot::channel();
        stop.send(()).unwrap();
        send_batches(
            exporter(&url, "test").unwrap(),
            queued(1500),
            stopped,
            NEVER,
        )
        .await;
        assert_eq!(
            *requests.borrow(),
            1,
            "one refused batch of the three ends the flush"
        );
    }

    #[test]
    fn nothing_is_queued_before_start() {
        assert!(!enabled());
        let own = TraceParent::new_root();
        assert!(begin(|| "x".into(), Kind::Server, own, None, Vec::new).is_none());
        export(Span {
            name: "x".into(),
            kind: Kind::Server,
            context: own,
            parent: None,
            start: at_ms(0),
            end: at_ms(0),
            attributes: Vec::new(),
            error: None,
        });
        assert_eq!(dropped(), 0);
    }
}
