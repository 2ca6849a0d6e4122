//! Event source mappings (decision 0027): every active rule of a stream trigger (a feed whose
//! source [`Source::streams`]) reads the stream by position with a checkpoint of its own and
//! invokes the rule's action, blocking, with batches of records (`{"Records": [...]}`):
//!
//! - the trigger's subscription runs in the one process holding its lease
//!   ([`crate::listeners`]); there [`supervise`] runs one mapping per active rule, started and
//!   stopped as rules come and go;
//! - a mapping reads ahead (a bounded number of records), spreads records over
//!   `parallelizationFactor` lanes by a hash of their partition key, and each lane runs one
//!   batch at a time, in order;
//! - a batch succeeds, or succeeds up to its lowest `batchItemFailures` entry, or fails; a
//!   failed batch is bisected or retried after a backoff, and once a record failed more than
//!   `maximumRetryAttempts` times (or is older than `maximumRecordAgeInSeconds` when it fails)
//!   its batch goes to the `onFailure` destination and counts as done;
//! - the checkpoint is the sequence up to which every record is done, stored after every
//!   batch: a restarted mapping reads again from it and skips nothing.
//!
//! **May not:** acknowledge anything at the source (the checkpoint is Gust's), or drop a
//! record without counting it.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gust_controller::{ControllerError, Invocation, InvokeOutcome, Wait};
use gust_model::time::now_ms;
use gust_model::{Mapping, Rule, RuleStatus, Subscription};
use gust_source::{Sink, Source, SourceError, StreamReader, StreamRecord, backoff};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::destinations::{self, Destination, Publisher, Undelivered, rfc3339};
use crate::{EventError, Events, lock};

/// The mapping's parameters among a stream feed's: the events crate checks them, the source
/// never sees them.
pub const PARAMETERS: [&str; 10] = [
    "batchSize",
    "maximumBatchingWindowInSeconds",
    "startingPosition",
    "startingPositionTimestamp",
    "maximumRetryAttempts",
    "maximumRecordAgeInSeconds",
    "bisectBatchOnFunctionError",
    "reportBatchItemFailures",
    "parallelizationFactor",
    "onFailure",
];

/// How long a read waits for a record before the mapping looks at its lanes again.
const READ_WAIT: Duration = Duration::from_millis(250);
/// How often the lag is measured and the state stored when nothing else changed.
const STATE_EVERY: Duration = Duration::from_secs(2);
/// How often the supervisor looks at the trigger's rules.
const RULES_EVERY: Duration = Duration::from_secs(1);
/// How long past its action's time limit a batch's record is waited for.
const RECORD_GRACE: Duration = Duration::from_secs(60);
/// How many times a destination is tried before the batch is dropped (counted).
const DESTINATION_TRIES: u32 = 5;
/// The most a retried batch waits.
const RETRY_AT_MOST: Duration = Duration::from_secs(30);

/// Where a new mapping starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The stream's first record.
    Oldest,
    /// Records stored after the rule was made.
    Latest,
    /// Records stored at or after this time (ms since the epoch).
    At(u64),
}

/// A mapping's parameters, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spec {
    pub batch_size: usize,
    pub window: Duration,
    pub start: Start,
    pub max_retries: u32,
    pub max_age_ms: u64,
    pub bisect: bool,
    pub report_failures: bool,
    pub parallel: usize,
    pub on_failure: Option<Destination>,
}

/// The key of a stream feed's stored configuration that says since when (ms since the
/// epoch) it reads the stream it names: set by the events crate when the subscription is
/// made or names another stream, never given by a user. A mapping whose stored row was
/// written for another value starts again ([`Start`]), and `latest` counts from it too.
pub(crate) const STREAM_SINCE: &str = "streamSince";

/// `params` split into the source's and the mapping's ([`PARAMETERS`]); [`STREAM_SINCE`] is
/// in neither.
pub(crate) fn split(params: &Map<String, Value>) -> (Map<String, Value>, Map<String, Value>) {
    params
        .iter()
        .filter(|(k, _)| k.as_str() != STREAM_SINCE)
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| !PARAMETERS.contains(&k.as_str()))
}

impl Spec {
    /// Checks the mapping's parameters (the keys of [`PARAMETERS`] only).
    pub fn read(params: &Map<String, Value>) -> Result<Spec, String> {
        use gust_source::{boolean, integer, string};
        let batch_size = integer(params, "batchSize", 1..=10_000, 100)? as usize;
        let window_s = integer(params, "maximumBatchingWindowInSeconds", 0..=300, 0)?;
        let at = match params.get("startingPositionTimestamp") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                "parameter 'startingPositionTimestamp' must be a time in ms since the epoch"
                    .to_string()
            })?),
        };
        let start = match (string(params, "startingPosition")?.as_deref(), at) {
            (None | Some("latest"), None) => Start::Latest,
            (Some("oldest"), None) => Start::Oldest,
            (Some("at"), Some(ms)) => Start::At(ms),
            (Some("at"), None) => {
                return Err("startingPosition 'at' needs 'startingPositionTimestamp'".into());
            }
            (Some("latest" | "oldest") | None, Some(_)) => {
                return Err(
                    "'startingPositionTimestamp' goes with startingPosition 'at' only".into(),
                );
            }
            (Some(other), _) => {
                return Err(format!(
                    "parameter 'startingPosition' must be oldest, latest or at, not '{other}'"
                ));
            }
        };
        let on_failure = string(params, "onFailure")?
            .map(|d| Destination::parse(&d, "onFailure"))
            .transpose()?;
        Ok(Spec {
            batch_size,
            window: Duration::from_secs(window_s),
            start,
            max_retries: integer(params, "maximumRetryAttempts", 0..=10_000, 3)? as u32,
            max_age_ms: integer(params, "maximumRecordAgeInSeconds", 60..=604_800, 86_400)? * 1000,
            bisect: boolean(params, "bisectBatchOnFunctionError", false)?,
            report_failures: boolean(params, "reportBatchItemFailures", true)?,
            parallel: integer(params, "parallelizationFactor", 1..=10, 1)? as usize,
            on_failure,
        })
    }

    /// The parameters to keep: every one, defaults filled in.
    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("batchSize".into(), json!(self.batch_size));
        out.insert(
            "maximumBatchingWindowInSeconds".into(),
            json!(self.window.as_secs()),
        );
        let start = match self.start {
            Start::Oldest => "oldest",
            Start::Latest => "latest",
            Start::At(ms) => {
                out.insert("startingPositionTimestamp".into(), json!(ms));
                "at"
            }
        };
        out.insert("startingPosition".into(), json!(start));
        out.insert("maximumRetryAttempts".into(), json!(self.max_retries));
        out.insert(
            "maximumRecordAgeInSeconds".into(),
            json!(self.max_age_ms / 1000),
        );
        out.insert("bisectBatchOnFunctionError".into(), json!(self.bisect));
        out.insert(
            "reportBatchItemFailures".into(),
            json!(self.report_failures),
        );
        out.insert("parallelizationFactor".into(), json!(self.parallel));
        if let Some(d) = &self.on_failure {
            out.insert("onFailure".into(), json!(d.text()));
        }
        out
    }
}

/// The parameters that say which stream a feed reads (the server and the stream): a change
/// of one of them starts the trigger's mappings again.
const STREAM_IDENTITY: [&str; 4] = ["url", "stream", "key", "subject"];

/// Whether `after` (a stream feed's parameters) reads another stream than `before`.
pub(crate) fn another_stream(before: &Map<String, Value>, after: &Map<String, Value>) -> bool {
    STREAM_IDENTITY
        .iter()
        .any(|k| before.get(*k) != after.get(*k))
}

/// The output configuration of an `onFailure` `subject:` destination on the connection of
/// the stream feed's `config`.
pub(crate) fn subject_output(
    source: &dyn Source,
    config: &Map<String, Value>,
    subject: &str,
) -> Result<Map<String, Value>, String> {
    destinations::subject_output(source, config, subject, "onFailure")
}

/// Runs the mappings of stream trigger `s` (its configuration opened) until aborted: one per
/// active rule, started and stopped as the rules change. Returns when the configuration
/// cannot work.
pub(crate) async fn supervise(
    events: Arc<Events>,
    source: Arc<dyn Source>,
    s: Subscription,
    sink: Arc<dyn Sink>,
    owner: String,
) -> Result<(), SourceError> {
    let (source_config, mapping_config) = split(&s.spec.config);
    let spec = Spec::read(&mapping_config).map_err(SourceError::Config)?;
    let since = s
        .spec
        .config
        .get(STREAM_SINCE)
        .and_then(Value::as_u64)
        .unwrap_or(0);
    // The stream is there and reachable before the rules are looked at.
    drop(source.open_stream(&s.spec.feed, &source_config).await?);
    let base = Arc::new(Base {
        events: events.clone(),
        source,
        feed: s.spec.feed.clone(),
        config: source_config,
        spec,
        namespace: s.namespace.clone(),
        trigger: s.trigger.clone(),
        owner,
        since,
    });
    // Dropped (the subscription stopped): every mapping stops.
    let mut tasks = JoinSet::new();
    let mut running: HashMap<String, (String, AbortHandle)> = HashMap::new();
    let mut shown = None;
    loop {
        while tasks.try_join_next().is_some() {}
        let rules = events
            .store
            .rules_of_trigger(&s.namespace, &format!("/{}/{}", s.namespace, s.trigger))
            .await
            .map_err(|e| SourceError::Connection(format!("cannot read the rules: {e}")))?;
        let wanted: HashMap<String, &Rule> = rules
            .iter()
            .filter(|r| r.status == RuleStatus::Active)
            .map(|r| (r.name.clone(), r))
            .collect();
        running.retain(|name, (version, task)| {
            let keep = wanted
                .get(name)
                .is_some_and(|r| &r.version == version && !task.is_finished());
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, rule) in &wanted {
            if running.contains_key(name) {
                continue;
            }
            let mapper = Arc::new(Mapper {
                base: base.clone(),
                rule: (*rule).clone(),
                state: Mutex::new(Map::new()),
            });
            let task = tasks.spawn(mapper.run());
            running.insert(name.clone(), (rule.version.clone(), task));
        }
        let detail = format!(
            "{} mapping(s) reading {} {}",
            running.len(),
            base.source.package(),
            base.stream_name()
        );
        if shown.as_ref() != Some(&detail) {
            sink.connected(&detail);
            shown = Some(detail);
        }
        tokio::time::sleep(RULES_EVERY).await;
    }
}

/// What every mapping of one stream trigger shares.
struct Base {
    events: Arc<Events>,
    source: Arc<dyn Source>,
    feed: String,
    /// The source's parameters (secrets opened).
    config: Map<String, Value>,
    spec: Spec,
    namespace: String,
    trigger: String,
    /// This process, as the mappings' `owner`.
    owner: String,
    /// Since when the feed reads its stream ([`STREAM_SINCE`]).
    since: u64,
}

impl Base {
    /// The stream's name, as records give it (`eventSourceARN`).
    fn stream_name(&self) -> String {
        ["stream", "key"]
            .iter()
            .find_map(|k| self.config.get(*k).and_then(Value::as_str))
            .unwrap_or(&self.trigger)
            .to_string()
    }
}

/// One rule's mapping.
struct Mapper {
    base: Arc<Base>,
    rule: Rule,
    /// What the mapping shows (stored with its checkpoint).
    state: Mutex<Map<String, Value>>,
}

/// A record as a batch holds it: its sequence, its JSON (`Records[i]`) and its size.
#[derive(Debug, Clone)]
struct Item {
    sequence: u64,
    time_ms: u64,
    json: Value,
    size: usize,
}

/// How a batch's invocation ended.
#[derive(Debug)]
enum Outcome {
    /// Every record is done.
    Done,
    /// Records before this index are done; the rest failed.
    Partial(usize, Failure),
    /// The whole batch failed.
    Failed(Failure),
}

/// Why a batch (or its rest) failed, for the destination record.
#[derive(Debug, Clone, Default)]
struct Failure {
    why: String,
    activation_id: Option<String>,
    /// The record's `statusCode`, where there is a record.
    status_code: Option<u64>,
    /// The record's `status` when it is an error (`application error`, ...).
    function_error: Option<String>,
}

/// Adds `by` to the state's counter `key`.
fn bump(state: &mut Map<String, Value>, key: &str, by: u64) {
    let n = state.get(key).and_then(Value::as_u64).unwrap_or(0);
    state.insert(key.into(), json!(n + by));
}

impl Mapper {
    fn update(&self, change: impl FnOnce(&mut Map<String, Value>)) {
        change(&mut lock(&self.state));
    }

    fn ns(&self) -> &str {
        &self.base.namespace
    }

    /// Runs until aborted: a failure (the stream unreachable, the store) is retried after a
    /// backoff, from the stored checkpoint.
    async fn run(self: Arc<Self>) {
        let mut attempt = 0;
        loop {
            let started = now_ms();
            let error = match self.read_stream().await {
                Ok(()) => "the stream ended".to_string(),
                Err(e) => e,
            };
            tracing::warn!(namespace = %self.ns(), rule = %self.rule.name, %error, "a stream mapping stopped");
            if now_ms().saturating_sub(started) > 60_000 {
                attempt = 0;
            }
            let wait = backoff(attempt);
            self.update(|s| {
                s.insert("state".into(), json!("error"));
                s.insert("lastError".into(), json!(error));
            });
            // Shown even though the checkpoint did not move.
            if let Ok(Some(m)) = self
                .base
                .events
                .store
                .mapping(self.ns(), &self.rule.name)
                .await
                && self.is_current(&m)
            {
                let _ = self.store(m.checkpoint).await;
            }
            tokio::time::sleep(wait).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// The stored checkpoint, or where a new mapping starts (stored at once, so that a
    /// restart does not move `latest`).
    async fn checkpoint(&self, reader: &mut dyn StreamReader) -> Result<u64, String> {
        let store = &self.base.events.store;
        let stored = store
            .mapping(self.ns(), &self.rule.name)
            .await
            .map_err(|e| format!("cannot read the checkpoint: {e}"))?;
        if let Some(m) = stored.filter(|m| self.is_current(m)) {
            *lock(&self.state) = m.state;
            return Ok(m.checkpoint);
        }
        *lock(&self.state) = Map::new();
        let at = match self.base.spec.start {
            Start::Oldest => Ok(0),
            // Records stored since the rule was made, or since the feed names this stream.
            Start::Latest => {
                reader
                    .sequence_before(self.rule.updated.max(self.base.since))
                    .await
            }
            Start::At(ms) => reader.sequence_before(ms).await,
        }
        .map_err(|e| e.to_string())?;
        self.store(at).await?;
        Ok(at)
    }

    /// Whether a stored row is this mapping's: its trigger's, written for the stream the feed
    /// names now.
    fn is_current(&self, m: &Mapping) -> bool {
        m.trigger == self.base.trigger
            && m.state
                .get(STREAM_SINCE)
                .and_then(Value::as_u64)
                .unwrap_or(0)
                == self.base.since
    }

    /// Stores the checkpoint with the state.
    async fn store(&self, checkpoint: u64) -> Result<(), String> {
        let mut state = lock(&self.state).clone();
        state.insert("action".into(), json!(self.rule.action.qualified()));
        state.insert("owner".into(), json!(self.base.owner));
        state.insert(STREAM_SINCE.into(), json!(self.base.since));
        let m = Mapping {
            namespace: self.ns().to_string(),
            rule: self.rule.name.clone(),
            trigger: self.base.trigger.clone(),
            checkpoint,
            state,
            updated_ms: now_ms(),
        };
        self.base
            .events
            .store
            .put_mapping(&m)
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot store the checkpoint: {e}"))
    }

    /// Reads the stream from the checkpoint into the lanes, and moves the checkpoint as
    /// records are done. Returns on a failure of the stream or the store.
    async fn read_stream(self: &Arc<Self>) -> Result<(), String> {
        let spec = &self.base.spec;
        let mut reader = self
            .base
            .source
            .open_stream(&self.base.feed, &self.base.config)
            .await
            .map_err(|e| e.to_string())?;
        let mut committed = self.checkpoint(reader.as_mut()).await?;
        self.update(|s| {
            s.insert("state".into(), json!("running"));
            s.remove("lastError");
        });
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Vec<u64>>();
        let mut lanes = JoinSet::new();
        let mut senders = Vec::with_capacity(spec.parallel);
        for _ in 0..spec.parallel {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            lanes.spawn(self.clone().lane(rx, done_tx.clone()));
        }
        drop(done_tx);
        // Records read and not yet done (with their sizes), and the newest read.
        let mut pending: BTreeMap<u64, usize> = BTreeMap::new();
        let mut pending_bytes = 0usize;
        let mut read_to = committed;
        // Read ahead at most two batches per lane, by count and by size.
        let ahead = spec.batch_size * spec.parallel * 2;
        let ahead_bytes = self.payload_limit().saturating_mul(2 * spec.parallel);
        let (mut stored_at, mut measured_at) = (Instant::now(), Instant::now());
        let mut failures = 0u32;
        let done = |pending: &mut BTreeMap<u64, usize>, bytes: &mut usize, seqs: Vec<u64>| {
            for s in seqs {
                *bytes = bytes.saturating_sub(pending.remove(&s).unwrap_or(0));
            }
        };
        // Once the lanes run, nothing but a lane's end stops them: a failure of the stream or
        // the store is waited out here, so that no batch is cut off and run a second time
        // beside its first run.
        loop {
            if let Some(ended) = lanes.try_join_next() {
                return Err(format!("a lane of the mapping stopped: {ended:?}"));
            }
            while let Ok(seqs) = done_rx.try_recv() {
                done(&mut pending, &mut pending_bytes, seqs);
            }
            // Every record up to the lowest one not done is done.
            let checkpoint = pending.keys().next().map_or(read_to, |s| s - 1);
            if measured_at.elapsed() >= STATE_EVERY {
                measured_at = Instant::now();
                // The lag is shown, not needed: a failure to measure it is not one.
                if let Ok(lag) = reader.pending(checkpoint).await {
                    self.update(|s| {
                        s.insert("lag".into(), json!(lag));
                    });
                }
            }
            if checkpoint != committed || stored_at.elapsed() >= STATE_EVERY {
                match self.store(checkpoint).await {
                    Ok(()) => {
                        committed = checkpoint;
                        stored_at = Instant::now();
                    }
                    Err(e) => {
                        self.wait_out(&mut failures, e).await;
                        continue;
                    }
                }
            }
            if pending.len() >= ahead || pending_bytes >= ahead_bytes {
                // Full: wait for a lane to finish a batch.
                if let Ok(Some(seqs)) = tokio::time::timeout(READ_WAIT, done_rx.recv()).await {
                    done(&mut pending, &mut pending_bytes, seqs);
                }
                continue;
            }
            // As many whole batches as there is room for, so that every lane gets work.
            let room = ahead - pending.len();
            let want = if room >= spec.batch_size {
                room - room % spec.batch_size
            } else {
                room
            };
            let records = match reader.read(read_to, want, READ_WAIT).await {
                Ok(records) => records,
                Err(e) => {
                    self.wait_out(&mut failures, e.to_string()).await;
                    // A reader whose connection broke is opened again; it reads on from
                    // `read_to` either way.
                    if let Ok(again) = self
                        .base
                        .source
                        .open_stream(&self.base.feed, &self.base.config)
                        .await
                    {
                        reader = again;
                    }
                    continue;
                }
            };
            if failures > 0 {
                failures = 0;
                self.update(|s| {
                    s.insert("state".into(), json!("running"));
                });
            }
            let mut by_lane: Vec<Vec<Item>> = vec![Vec::new(); senders.len()];
            for r in records {
                if r.sequence <= read_to {
                    continue;
                }
                read_to = r.sequence;
                let lane = lane_of(&r.partition_key, senders.len());
                let item = self.item(r);
                pending.insert(item.sequence, item.size);
                pending_bytes += item.size;
                by_lane[lane].push(item);
            }
            for (sender, items) in senders.iter().zip(by_lane) {
                if !items.is_empty() && sender.send(items).is_err() {
                    return Err("a lane of the mapping stopped".into());
                }
            }
        }
    }

    /// Says why the mapping cannot go on for now and waits (0.5 s doubling to 30 s).
    async fn wait_out(&self, failures: &mut u32, error: String) {
        tracing::warn!(namespace = %self.ns(), rule = %self.rule.name, %error, "a stream mapping waits");
        self.update(|s| {
            s.insert("state".into(), json!("error"));
            s.insert("lastError".into(), json!(error));
        });
        tokio::time::sleep(backoff(*failures)).await;
        *failures = failures.saturating_add(1);
    }

    /// A record as its batch carries it.
    fn item(&self, r: StreamRecord) -> Item {
        let stream = self.base.stream_name();
        let mut json = Map::new();
        json.insert(
            "eventSource".into(),
            json!(format!("gust:{}", self.base.source.package())),
        );
        json.insert("eventSourceARN".into(), json!(stream));
        json.insert("eventID".into(), json!(format!("{stream}:{}", r.sequence)));
        json.insert("eventName".into(), json!("gust:stream:record"));
        json.insert("partitionKey".into(), json!(r.partition_key));
        json.insert("sequenceNumber".into(), json!(r.sequence.to_string()));
        json.insert(
            "approximateArrivalTimestamp".into(),
            json!(r.time_ms as f64 / 1000.0),
        );
        json.extend(r.payload);
        let json = Value::Object(json);
        let size = json.to_string().len();
        Item {
            sequence: r.sequence,
            time_ms: r.time_ms,
            json,
            size,
        }
    }

    /// One lane: batches of the records it is given (the lane's records of each read), one
    /// at a time, in order; the sequences of each batch's records go to `done` once they are.
    async fn lane(
        self: Arc<Self>,
        mut records: mpsc::UnboundedReceiver<Vec<Item>>,
        done: mpsc::UnboundedSender<Vec<u64>>,
    ) {
        let spec = &self.base.spec;
        let limit = self.payload_limit();
        let mut buffer: VecDeque<Item> = VecDeque::new();
        loop {
            if buffer.is_empty() {
                match records.recv().await {
                    Some(items) => buffer.extend(items),
                    None => return,
                }
            }
            while let Ok(items) = records.try_recv() {
                buffer.extend(items);
            }
            let deadline = Instant::now() + spec.window;
            let mut batch: Vec<Item> = Vec::new();
            let mut size = 0;
            loop {
                let mut full = false;
                while batch.len() < spec.batch_size {
                    let Some(item) = buffer.front() else { break };
                    if !batch.is_empty() && size + item.size + 1 > limit {
                        full = true;
                        break;
                    }
                    size += item.size + 1;
                    batch.extend(buffer.pop_front());
                }
                if full || batch.len() >= spec.batch_size || spec.window.is_zero() {
                    break;
                }
                match tokio::time::timeout_at(deadline, records.recv()).await {
                    Ok(Some(items)) => buffer.extend(items),
                    _ => break,
                }
            }
            let sequences: Vec<u64> = batch.iter().map(|i| i.sequence).collect();
            self.process(batch, limit).await;
            if done.send(sequences).is_err() {
                return;
            }
        }
    }

    /// The most a batch's JSON may weigh: the namespace's payload limit, less room for the
    /// `{"Records": []}` around it.
    fn payload_limit(&self) -> usize {
        let max = self.base.events.core.system_limits().max_payload as usize;
        max.saturating_sub(64).max(1)
    }

    /// Runs one batch until every record of it is done: succeeded, or given up.
    async fn process(&self, batch: Vec<Item>, limit: usize) {
        let spec = &self.base.spec;
        let mut queue: VecDeque<Vec<Item>> = VecDeque::from([batch]);
        // Failed invocations per record.
        let mut failures: HashMap<u64, u32> = HashMap::new();
        let mut invoked: u32 = 0;
        while let Some(b) = queue.pop_front() {
            if b.len() == 1 && b[0].size > limit {
                let failure = Failure {
                    why: format!(
                        "the record weighs {} bytes, over the payload limit of {limit}",
                        b[0].size
                    ),
                    ..Failure::default()
                };
                self.give_up(&b, "PayloadTooLarge", &failure, 0).await;
                continue;
            }
            invoked += 1;
            let (failed, failure) = match self.invoke(&b).await {
                Outcome::Done => {
                    self.update(|s| bump(s, "records", b.len() as u64));
                    continue;
                }
                Outcome::Partial(at, failure) => {
                    let mut b = b;
                    let rest = b.split_off(at);
                    self.update(|s| bump(s, "records", b.len() as u64));
                    (rest, failure)
                }
                Outcome::Failed(failure) => {
                    if spec.bisect && b.len() > 1 {
                        // A split costs no retry.
                        let mut first = b;
                        let second = first.split_off(first.len() / 2);
                        self.update(|s| bump(s, "bisections", 1));
                        queue.push_front(second);
                        queue.push_front(first);
                        continue;
                    }
                    (b, failure)
                }
            };
            let mut most = 0;
            for item in &failed {
                let n = failures.entry(item.sequence).or_insert(0);
                *n += 1;
                most = most.max(*n);
            }
            let oldest = failed.iter().map(|i| i.time_ms).min().unwrap_or(0);
            let condition = if most > spec.max_retries {
                Some("RetryAttemptsExhausted")
            } else if now_ms().saturating_sub(oldest) > spec.max_age_ms {
                Some("RecordAgeExceeded")
            } else {
                None
            };
            self.update(|s| {
                s.insert("lastError".into(), json!(failure.why));
            });
            match condition {
                Some(condition) => self.give_up(&failed, condition, &failure, invoked).await,
                None => {
                    self.update(|s| {
                        bump(s, "retries", 1);
                        s.insert("state".into(), json!("retrying"));
                    });
                    tokio::time::sleep(backoff(most).min(RETRY_AT_MOST)).await;
                    queue.push_front(failed);
                }
            }
        }
        self.update(|s| {
            s.insert("state".into(), json!("running"));
        });
    }

    /// Invokes the rule's action with `batch`, blocking, until it ran: a throttled namespace
    /// or a platform that cannot take it is waited for, not counted.
    async fn invoke(&self, batch: &[Item]) -> Outcome {
        let mut waits = 0;
        loop {
            let failed = |why: String| {
                Outcome::Failed(Failure {
                    why,
                    ..Failure::default()
                })
            };
            let error = match self.invoke_once(batch).await {
                Ok(record) => return self.judge(batch, &record),
                Err(e) => e,
            };
            let wait = match &error {
                EventError::Core(e) if e.is_throttled() => Duration::from_secs(1),
                // The action is being deployed again (deleted, then created): wait for it
                // instead of giving its batches up within seconds.
                EventError::Core(ControllerError::NotFound) => Duration::from_secs(1),
                EventError::Core(e) if e.is_host_failure() => backoff(waits.min(6)),
                _ => {
                    self.update(|s| bump(s, "failedInvocations", 1));
                    return failed(error.to_string());
                }
            };
            waits += 1;
            self.update(|s| {
                s.insert("state".into(), json!("waiting"));
                s.insert("lastError".into(), json!(error.to_string()));
            });
            tracing::debug!(namespace = %self.ns(), rule = %self.rule.name, %error, "a batch waits");
            tokio::time::sleep(wait).await;
        }
    }

    /// One blocking invocation of the rule's action with `batch`: its record.
    async fn invoke_once(&self, batch: &[Item]) -> Result<Value, EventError> {
        let core = &self.base.events.core;
        let who = core
            .owner(self.ns())
            .await?
            .ok_or(EventError::Core(ControllerError::NotFound))?;
        let action = &self.rule.action;
        let resolved = core
            .resolve(&who, action.namespace(), &action.inner())
            .await?;
        let records: Vec<Value> = batch.iter().map(|i| i.json.clone()).collect();
        let mut params = Map::new();
        params.insert("Records".into(), Value::Array(records));
        let wait = Duration::from_millis(resolved.action.limits.timeout) + RECORD_GRACE;
        let outcome = core
            .invoke(Invocation {
                caller: &who,
                action: &resolved,
                params,
                wait: Wait::UpTo(wait.min(gust_controller::MAX_BLOCKING_WAIT)),
                cause: None,
                secrets: Vec::new(),
                activation_id: None,
                trace: None,
            })
            .await?;
        gust_telemetry::metrics::get().rule_invoked(self.ns());
        match outcome {
            InvokeOutcome::Completed(raw) => serde_json::from_str(raw.get())
                .map_err(|e| EventError::Core(ControllerError::Internal(e.to_string()))),
            InvokeOutcome::Accepted(id) | InvokeOutcome::Waiting(id) => {
                // Its record lands later: every journaled invocation ends with exactly one
                // record (decision 0003), so it is waited for rather than run a second time.
                let late = Instant::now() + wait;
                loop {
                    if let Some(r) = core.store().activation(&who.namespace, &id).await? {
                        return serde_json::to_value(&r).map_err(|e| {
                            EventError::Core(ControllerError::Internal(e.to_string()))
                        });
                    }
                    if Instant::now() > late {
                        self.update(|s| {
                            s.insert("state".into(), json!("waiting"));
                            s.insert(
                                "lastError".into(),
                                json!(format!("activation {id} has no record yet")),
                            );
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// What a batch's record says: done, done up to a failed record, or failed.
    fn judge(&self, batch: &[Item], record: &Value) -> Outcome {
        let id = record["activationId"].as_str().map(str::to_string);
        let response = &record["response"];
        let status_code = response["statusCode"].as_u64();
        self.update(|s| {
            bump(s, "batches", 1);
            s.insert(
                "lastBatch".into(),
                json!({
                    "first": batch.first().map(|i| i.sequence.to_string()),
                    "last": batch.last().map(|i| i.sequence.to_string()),
                    "size": batch.len(),
                    "activationId": id,
                    "at": now_ms(),
                }),
            );
        });
        let failure = |why: String, function_error: Option<String>| Failure {
            why,
            activation_id: id.clone(),
            status_code,
            function_error,
        };
        let sequences: Vec<u64> = batch.iter().map(|i| i.sequence).collect();
        match verdict(&sequences, record, self.base.spec.report_failures) {
            Verdict::Done => Outcome::Done,
            Verdict::Partial(at, why) => Outcome::Partial(at, failure(why, None)),
            Verdict::Failed { why, status } => {
                if status.is_some() {
                    self.update(|s| bump(s, "failedInvocations", 1));
                }
                Outcome::Failed(failure(why, status))
            }
        }
    }

    /// Sends `batch`'s description to the destination (or drops it, counted, without one):
    /// its records count as done.
    async fn give_up(&self, batch: &[Item], condition: &str, failure: &Failure, invoked: u32) {
        let spec = &self.base.spec;
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return;
        };
        let mut response = json!({ "statusCode": failure.status_code });
        if let Some(e) = &failure.function_error {
            response["functionError"] = json!(e);
        }
        let mut record = destinations::record(
            failure.activation_id.as_deref(),
            &self.rule.action.qualified(),
            condition,
            invoked,
        );
        record.insert("responseContext".into(), response);
        record.insert(
            "StreamBatchInfo".into(),
            json!({
                "stream": self.base.stream_name(),
                "startSequenceNumber": first.sequence.to_string(),
                "endSequenceNumber": last.sequence.to_string(),
                "approximateArrivalOfFirstRecord": rfc3339(first.time_ms),
                "approximateArrivalOfLastRecord": rfc3339(last.time_ms),
                "batchSize": batch.len(),
            }),
        );
        let record = Value::Object(record);
        let Some(destination) = &spec.on_failure else {
            self.dropped(
                batch.len(),
                format!("{condition}: {} (no onFailure destination)", failure.why),
            );
            return;
        };
        let key = format!(
            "mapping\0{}\0{}-{}\0{condition}",
            self.rule.name, first.sequence, last.sequence
        );
        let mut error = String::new();
        let (mut tries, mut waits) = (0, 0);
        while tries < DESTINATION_TRIES {
            match self.deliver(destination, &record, &key).await {
                Ok(()) => {
                    self.update(|s| bump(s, "destinationDeliveries", 1));
                    return;
                }
                // Throttled, or the platform or broker cannot take it now: wait, as a batch
                // does, instead of dropping the records.
                Err(Undelivered::Later(e)) => {
                    self.update(|s| {
                        s.insert("state".into(), json!("waiting"));
                        s.insert("lastError".into(), json!(e));
                    });
                    tokio::time::sleep(backoff(waits)).await;
                    waits = (waits + 1).min(6);
                }
                Err(Undelivered::Never(e)) => {
                    error = e;
                    tokio::time::sleep(backoff(tries)).await;
                    tries += 1;
                }
            }
        }
        self.dropped(
            batch.len(),
            format!(
                "{condition}: the destination {} failed {DESTINATION_TRIES} times: {error}",
                destination.text()
            ),
        );
    }

    fn dropped(&self, n: usize, why: String) {
        tracing::warn!(namespace = %self.ns(), rule = %self.rule.name, %why, "stream records dropped");
        self.update(|s| {
            bump(s, "dropped", n as u64);
            s.insert("lastError".into(), json!(why));
        });
    }

    /// Hands a destination record to `destination`: a `subject:` on the stream's own
    /// connection.
    async fn deliver(
        &self,
        destination: &Destination,
        record: &Value,
        key: &str,
    ) -> Result<(), Undelivered> {
        let publisher = Publisher {
            source: self.base.source.as_ref(),
            config: &self.base.config,
            root: None,
        };
        self.base
            .events
            .send_to(self.ns(), destination, record, key, None, Some(publisher))
            .await
    }
}

/// What a batch's record says.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Every record is done.
    Done,
    /// Records before this index are done; the rest failed (why).
    Partial(usize, String),
    /// The whole batch failed: why, and the record's status when the action failed.
    Failed { why: String, status: Option<String> },
}

/// What record `record` of a batch of the records `sequences` says (decision 0027): an error
/// fails the batch; a success is the whole batch done unless (`report_failures`) its result's
/// `batchItemFailures` names records of it, then the records before the lowest one named are
/// done; a list that is not one, or an entry whose `itemIdentifier` is missing or names no
/// record of the batch, fails the whole batch.
fn verdict(sequences: &[u64], record: &Value, report_failures: bool) -> Verdict {
    let id = record["activationId"].as_str().unwrap_or("?");
    let response = &record["response"];
    let result = &response["result"];
    if response["success"] != true {
        let status = response["status"].as_str().unwrap_or("error").to_string();
        let error = match &result["error"] {
            Value::String(e) => e.clone(),
            Value::Null => status.clone(),
            other => other.to_string(),
        };
        return Verdict::Failed {
            why: format!("activation {id}: {status}: {error}"),
            status: Some(status),
        };
    }
    if !report_failures {
        return Verdict::Done;
    }
    let whole = |why: String| Verdict::Failed { why, status: None };
    let list = match &result["batchItemFailures"] {
        Value::Null => return Verdict::Done,
        Value::Array(list) if list.is_empty() => return Verdict::Done,
        Value::Array(list) => list,
        _ => return whole("batchItemFailures is not a list: the whole batch failed".into()),
    };
    let mut lowest = usize::MAX;
    for entry in list {
        let named = match &entry["itemIdentifier"] {
            Value::String(s) => s.parse::<u64>().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        };
        match named.and_then(|seq| sequences.iter().position(|s| *s == seq)) {
            Some(at) => lowest = lowest.min(at),
            None => {
                return whole(format!(
                    "batchItemFailures names {} which is not a record of the batch: the whole batch failed",
                    entry["itemIdentifier"]
                ));
            }
        }
    }
    Verdict::Partial(
        lowest,
        format!(
            "record {} of the batch was reported failed",
            sequences[lowest]
        ),
    )
}

/// The lane of a partition key among `lanes`.
fn lane_of(key: &str, lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> Result<Spec, String> {
        Spec::read(v.as_object().unwrap())
    }

    #[test]
    fn defaults_are_finite_and_written_back() {
        let s = spec(json!({})).unwrap();
        assert_eq!(s.batch_size, 100);
        assert_eq!(s.max_retries, 3);
        assert_eq!(s.max_age_ms, 86_400_000);
        assert_eq!(s.start, Start::Latest);
        assert_eq!(spec(Value::Object(s.write())).unwrap(), s);
        let at = spec(json!({"startingPosition": "at", "startingPositionTimestamp": 5, "onFailure": "subject:dlq"})).unwrap();
        assert_eq!(spec(Value::Object(at.write())).unwrap(), at);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (bad, says) in [
            (json!({"batchSize": 0}), "batchSize"),
            (json!({"batchSize": 10_001}), "batchSize"),
            (
                json!({"parallelizationFactor": 11}),
                "parallelizationFactor",
            ),
            (
                json!({"maximumRecordAgeInSeconds": 10}),
                "maximumRecordAgeInSeconds",
            ),
            (
                json!({"startingPosition": "at"}),
                "startingPositionTimestamp",
            ),
            (json!({"startingPosition": "middle"}), "startingPosition"),
            (
                json!({"startingPositionTimestamp": 5}),
                "startingPositionTimestamp",
            ),
            (json!({"onFailure": "queue:x"}), "onFailure"),
            (json!({"onFailure": "action:"}), "onFailure"),
            (json!({"onFailure": "trigger:/a/b"}), "onFailure"),
            (
                json!({"bisectBatchOnFunctionError": "yes"}),
                "bisectBatchOnFunctionError",
            ),
        ] {
            let e = spec(bad.clone()).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn parameters_split_into_the_sources_and_the_mappings() {
        let p = json!({"url": "nats://x", "stream": "S", "batchSize": 5});
        let (source, mapping) = split(p.as_object().unwrap());
        assert_eq!(
            Value::Object(source),
            json!({"url": "nats://x", "stream": "S"})
        );
        assert_eq!(Value::Object(mapping), json!({"batchSize": 5}));
    }

    /// A record answering `result` (`success` as given).
    fn record(success: bool, result: Value) -> Value {
        let status = if success {
            "success"
        } else {
            "application error"
        };
        json!({"activationId": "a1", "response": {"success": success, "status": status, "result": result}})
    }

    #[test]
    fn an_answer_says_which_records_are_done() {
        let seqs = [10, 11, 12, 13];
        let v = |r: Value| verdict(&seqs, &r, true);
        assert_eq!(v(record(true, json!({"ok": 1}))), Verdict::Done);
        assert_eq!(
            v(record(true, json!({"batchItemFailures": []}))),
            Verdict::Done
        );
        assert_eq!(
            v(record(true, json!({"batchItemFailures": null}))),
            Verdict::Done
        );
        // The lowest one named, as a string or a number, whatever the order.
        let partial = v(record(
            true,
            json!({"batchItemFailures": [{"itemIdentifier": "13"}, {"itemIdentifier": 11}]}),
        ));
        assert!(matches!(partial, Verdict::Partial(1, _)), "{partial:?}");
        let partial = v(record(
            true,
            json!({"batchItemFailures": [{"itemIdentifier": "10"}]}),
        ));
        assert!(matches!(partial, Verdict::Partial(0, _)), "{partial:?}");
        // Whole-batch failures: an unknown, missing or empty identifier, not a list, an error.
        for bad in [
            json!({"batchItemFailures": [{"itemIdentifier": "99"}]}),
            json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            json!({"batchItemFailures": [{}]}),
            json!({"batchItemFailures": [{"itemIdentifier": "11"}, {"id": "12"}]}),
            json!({"batchItemFailures": "11"}),
        ] {
            let got = v(record(true, bad.clone()));
            assert!(
                matches!(got, Verdict::Failed { status: None, .. }),
                "{bad}: {got:?}"
            );
        }
        let failed = v(record(false, json!({"error": "boom"})));
        assert_eq!(
            failed,
            Verdict::Failed {
                why: "activation a1: application error: boom".into(),
                status: Some("application error".into())
            }
        );
        // Without reportBatchItemFailures a success is a success.
        let ignored = record(
            true,
            json!({"batchItemFailures": [{"itemIdentifier": "11"}]}),
        );
        assert_eq!(verdict(&seqs, &ignored, false), Verdict::Done);
    }

    #[test]
    fn a_key_always_goes_to_the_same_lane() {
        for key in ["a", "orders.1", ""] {
            let lane = lane_of(key, 4);
            assert!(lane < 4);
            assert_eq!(lane_of(key, 4), lane);
        }
        assert_eq!(lane_of("x", 1), 0);
    }
}
