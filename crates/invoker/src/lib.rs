//! The invoker: takes invocation messages from its bus subject, runs each in a fresh sandbox,
//! stores the activation record, then acknowledges the message and tells the controller.
//!
//! **Invariant:** the record is stored before the completion is published and before the
//! message is acknowledged, so a client that gets an id back can always read its record, and a
//! crash before the store write leaves the invocation journaled (or unacknowledged) to run
//! again; the store ignores a second record for the same id.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod cluster;
mod record;
mod secrets;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gust_bus::{Bus, BusError, Delivery, Handler, dead_letter_subject, invoke_subject};
use gust_keyring::Keyring;
use gust_model::limits::MB;
use gust_model::message::{InvocationHeader, MAX_INLINE_RECORD};
use gust_model::time::now_ms;
use gust_model::{
    Activation, CompletionMessage, EncodedActivation, InvocationMessage, SystemLimits,
};
use gust_runtime_process::ProcessRuntime;
use gust_runtime_process::kinds::Kinds;
use gust_runtime_wasm::{CompileError, RunRequest, WasmRuntime};
use gust_store::Store;
use gust_telemetry::metrics::{self, Start};
use gust_telemetry::spans;
use tokio::sync::{Notify, watch};

pub use record::build_record;
pub use secrets::{Opened, open as open_secrets};

/// Invoker failures that stop it from starting; all caused by the host.
#[derive(Debug, thiserror::Error)]
pub enum InvokerError {
    #[error("cannot subscribe to the bus: {0}")]
    Bus(#[from] gust_bus::BusError),
}

pub struct Invoker {
    id: String,
    runtime: Arc<WasmRuntime>,
    /// Node.js, Python and native actions, if this invoker runs them.
    processes: Option<Arc<ProcessRuntime>>,
    /// Opens secret parameters just before a run (decision 0022).
    keyring: Option<Arc<Keyring>>,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    system: SystemLimits,
    /// Activations it runs at once (announced in its heartbeat).
    capacity: u64,
    inflight: AtomicUsize,
    /// It announces itself to a cluster ([`Invoker::join_cluster`]).
    joined: AtomicBool,
    idle: Notify,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker").field("id", &self.id).finish()
    }
}

impl Invoker {
    pub fn new(
        id: impl Into<String>,
        runtime: Arc<WasmRuntime>,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        system: SystemLimits,
    ) -> Arc<Self> {
        Arc::new(Invoker {
            id: id.into(),
            runtime,
            processes: None,
            keyring: None,
            store,
            bus,
            system,
            capacity: u64::from(gust_runtime_wasm::MAX_CONCURRENT),
            inflight: AtomicUsize::new(0),
            joined: AtomicBool::new(false),
            idle: Notify::new(),
            stop: watch::channel(false).0,
        })
    }

    /// Runs process kinds too, in `processes`.
    pub fn with_processes(mut self: Arc<Self>, processes: Arc<ProcessRuntime>) -> Arc<Self> {
        if let Some(me) = Arc::get_mut(&mut self) {
            me.processes = Some(processes);
        }
        self
    }

    /// Opens secret parameters with `keyring` (without one, an invocation with secrets ends
    /// in a `whisk internal error`).
    pub fn with_keyring(mut self: Arc<Self>, keyring: Arc<Keyring>) -> Arc<Self> {
        if let Some(me) = Arc::get_mut(&mut self) {
            me.keyring = Some(keyring);
        }
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Takes this invoker's deliveries until [`Self::drain`]: each runs on its own task.
    pub async fn start(self: &Arc<Self>) -> Result<(), InvokerError> {
        self.probe_metrics();
        self.bus
            .consume(&invoke_subject(&self.id), self.handler())
            .await?;
        Ok(())
    }

    /// Lets the metrics read this invoker's gauges when they are encoded (until it is
    /// dropped): invocations in flight, and the process pool's instances and queue.
    fn probe_metrics(self: &Arc<Self>) {
        let this = Arc::downgrade(self);
        metrics::get().probe(move |m| {
            let Some(this) = this.upgrade() else {
                return false;
            };
            m.set_in_flight(this.inflight.load(Ordering::Relaxed) as u64);
            m.set_instances("wasm", "busy", this.runtime.running() as u64);
            if let Some(p) = &this.processes {
                let c = p.counts();
                for (state, n) in [
                    ("starting", c.starting),
                    ("busy", c.busy),
                    ("idle", c.idle),
                    ("paused", c.paused),
                    ("stem_cell", c.stem_cells),
                ] {
                    m.set_instances("process", state, n as u64);
                }
                m.set_queue_depth("process_pool", c.waiting as u64);
            }
            true
        });
    }

    /// Starts each delivery on its own task; once draining, hands deliveries back. The
    /// sandbox runs at most `MAX_CONCURRENT` at once (its own slots); the rest wait there in
    /// arrival order.
    fn handler(self: &Arc<Self>) -> Handler {
        let this = self.clone();
        Arc::new(move |delivery: Delivery| {
            if *this.stop.borrow() {
                if delivery.has_ack() {
                    tokio::spawn(delivery.nak());
                }
                return Err(BusError::Closed);
            }
            this.inflight.fetch_add(1, Ordering::SeqCst);
            let worker = this.clone();
            tokio::spawn(async move {
                worker.handle(delivery).await;
                if worker.inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
                    worker.idle.notify_waiters();
                }
            });
            Ok(())
        })
    }

    /// Stops taking new work and waits up to `grace` for running activations to be recorded.
    /// Returns how many were still running when the grace period ended; the journal keeps
    /// those for the next start.
    pub async fn drain(&self, grace: Duration) -> usize {
        let _ = self.stop.send(true);
        if self.joined.load(Ordering::SeqCst) {
            // Controllers stop sending it work now rather than after missed heartbeats.
            self.announce(true).await;
        }
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.inflight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(grace, wait).await;
        if let Some(p) = &self.processes {
            p.shutdown();
        }
        self.inflight.load(Ordering::SeqCst)
    }

    async fn handle(&self, delivery: Delivery) {
        let (msg, record) = match serde_json::from_slice::<InvocationMessage>(&delivery.payload) {
            // Delivered again (its invoker died, or the acknowledgement was lost), or sent
            // again from the journal: if it was recorded, it ran; acknowledge it and run
            // nothing.
            Ok(msg) if (delivery.attempt > 1 || msg.resent) && self.recorded(&msg).await => {
                tracing::info!(id = %msg.activation_id, attempt = delivery.attempt, "already recorded");
                let _ = delivery.ack().await;
                return;
            }
            // The bus gives up on it after this delivery: earlier ones never got as far as a
            // record (their invoker stopped each time). It ends as an error record, not
            // silence, and is not run again.
            Ok(msg) if delivery.last_attempt => {
                let bytes = delivery.payload.clone();
                if let Err(e) = self
                    .bus
                    .publish(&dead_letter_subject(&self.id), bytes)
                    .await
                {
                    tracing::debug!(id = %msg.activation_id, error = %e, "no dead-letter listener");
                }
                let reason = format!(
                    "The invocation was delivered {} times without finishing; it is not run again.",
                    delivery.attempt
                );
                let record = record::internal_error(&msg, now_ms(), reason);
                (msg, record)
            }
            Ok(msg) => {
                let record = self.process(&msg).await;
                (msg, record)
            }
            Err(e) => match serde_json::from_slice::<InvocationHeader>(&delivery.payload) {
                // Known by its id at least: it ends with a record saying why it did not run.
                Ok(header) => {
                    let msg = header.to_message();
                    let reason = format!("The invocation message could not be read: {e}");
                    let record = record::internal_error(&msg, now_ms(), reason);
                    (msg, record)
                }
                Err(_) => {
                    tracing::error!(error = %e, "dropping an unreadable invocation message");
                    let _ = delivery.ack().await;
                    return;
                }
            },
        };
        // A first run cannot find a record of its id: the store need not look for one.
        let first_run = delivery.attempt == 1 && !msg.resent;
        let (encoded, written) = self.store_record(&msg, &record, first_run).await;
        let stored = written.is_some();
        if stored && let Err(e) = delivery.ack().await {
            tracing::warn!(id = %msg.activation_id, error = %e, "cannot acknowledge an invocation");
        }
        // The completion goes out either way, so the controller releases the namespace's
        // in-flight slot; it carries the record only if this is the stored record (another
        // run of a redelivered invocation may have stored its own first).
        let completion = CompletionMessage {
            activation_id: msg.activation_id.clone(),
            namespace: msg.subject.clone(),
            record: encoded
                .filter(|e| {
                    msg.blocking && written == Some(true) && e.json.get().len() <= MAX_INLINE_RECORD
                })
                .map(|e| e.json),
        };
        match serde_json::to_vec(&completion) {
            Ok(bytes) => {
                let publish = self.bus.publish(&msg.reply_to, Bytes::from(bytes));
                if let Err(e) = metrics::get().timed_bus("publish", publish).await {
                    tracing::debug!(id = %msg.activation_id, error = %e, "completion not delivered");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a completion"),
        }
    }

    /// Whether the invocation's record is stored (a failing store counts as no: it runs).
    async fn recorded(&self, msg: &InvocationMessage) -> bool {
        matches!(
            self.store
                .activation(&msg.subject, &msg.activation_id)
                .await,
            Ok(Some(_))
        )
    }

    /// Runs a blocking invocation handed over by a controller in this process, without a bus
    /// message or a completion: the future returns the stored record, or `None` if it could
    /// not be stored (the invocation is then as if its completion came without a record).
    /// `None` at once if this invoker is stopping. The future does all its work itself, so
    /// it may be moved to a task of its own when its caller goes away.
    pub fn direct(
        self: &Arc<Self>,
        msg: Arc<InvocationMessage>,
    ) -> Option<impl Future<Output = Option<Box<serde_json::value::RawValue>>> + Send + 'static>
    {
        if *self.stop.borrow() {
            return None;
        }
        self.inflight.fetch_add(1, Ordering::SeqCst);
        let this = self.clone();
        Some(async move {
            let record = this.process(&msg).await;
            let (encoded, written) = this.store_record(&msg, &record, true).await;
            if this.inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
                this.idle.notify_waiters();
            }
            encoded.filter(|_| written.is_some()).map(|e| e.json)
        })
    }

    /// Encodes a record once (the same JSON is stored and sent to a blocking caller) and
    /// stores it: the encoded record, and `Some(written)` once stored (false if a record for
    /// its id was there first).
    async fn store_record(
        &self,
        msg: &InvocationMessage,
        record: &Activation,
        first_run: bool,
    ) -> (Option<EncodedActivation>, Option<bool>) {
        let encoded = match EncodedActivation::new(record) {
            // Indexed by the action's path in its namespace (`pkg/a`), like its message.
            Ok(e) => EncodedActivation {
                name: msg.action.clone(),
                ..e
            },
            Err(e) => {
                tracing::error!(id = %msg.activation_id, error = %e, "cannot encode an activation record");
                return (None, None);
            }
        };
        let written = self.put_record(&encoded, first_run).await;
        if written == Some(true) {
            // Counted once per record written: a redelivery whose record was there is not.
            metrics::get().activation(record, &msg.action, msg.accepted_at);
            // The run's span, likewise once: a child of the controller's side of the
            // invocation.
            if let Some(invoke) = msg.traceparent
                && spans::enabled()
            {
                spans::export(spans::of_record(
                    "run",
                    spans::Kind::Consumer,
                    invoke.child(),
                    Some(invoke.span_id()),
                    msg,
                    record,
                ));
            }
        }
        (Some(encoded), written)
    }

    /// Stores a record, retrying a failing store a few times: `Some(written)` once stored
    /// (false if a record for its id was there first), `None` on failure: the invocation
    /// stays journaled (or unacknowledged) and runs again after a restart.
    async fn put_record(&self, record: &EncodedActivation, first_run: bool) -> Option<bool> {
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=4 {
            let put = metrics::get().timed_store("put_activation", async {
                if first_run {
                    self.store.put_new_activation(record).await.map(|()| true)
                } else {
                    self.store.put_activation(record).await
                }
            });
            let put = put.await;
            match put {
                Ok(written) => return Some(written),
                Err(e) => {
                    tracing::error!(id = %record.activation_id, attempt, error = %e, "cannot store an activation record");
                    if attempt < 4 {
                        tokio::time::sleep(backoff).await;
                        backoff *= 4;
                    }
                }
            }
        }
        None
    }

    /// Makes sure the code is compiled, runs the activation and returns its record (not yet
    /// stored).
    pub async fn process(&self, msg: &InvocationMessage) -> Activation {
        let start = now_ms();
        if msg.kind == gust_model::Exec::SEQUENCE {
            // Sequences run in the controller that accepted them; one reaches an invoker only
            // from the journal, after that controller stopped before recording it.
            return record::internal_error(
                msg,
                start,
                "The sequence was interrupted before it finished (its controller stopped); \
                 the components that ran have their own records."
                    .to_string(),
            );
        }
        if Kinds::is_process_kind(&msg.kind) {
            return self.process_kind(msg, start).await;
        }
        match self.ensure_code(msg).await {
            Ok(how) => metrics::get().start(&msg.subject, &msg.kind, how),
            Err(reason) => return record::internal_error(msg, start, reason),
        }
        let opened = match secrets::open(self.keyring.as_deref(), msg, start) {
            Ok(opened) => opened,
            Err(reason) => return record::internal_error(msg, start, reason),
        };
        let req = RunRequest {
            input: opened.params.get().as_bytes().to_vec(),
            env: opened.env,
            program: msg.action.clone(),
            timeout: Duration::from_millis(msg.limits.timeout),
            memory_limit: msg.limits.memory * MB,
            log_limit: msg.limits.logs * MB,
            result_limit: self.system.max_result,
        };
        let out = self.runtime.run(&msg.code_hash, req).await;
        build_record(msg, start, now_ms(), out, self.system.max_result)
    }

    /// Runs a Node.js, Python or native activation in the process pool.
    async fn process_kind(&self, msg: &InvocationMessage, start: u64) -> Activation {
        let Some(processes) = &self.processes else {
            return record::internal_error(
                msg,
                start,
                format!("This invoker does not run kind '{}'.", msg.kind),
            );
        };
        if !processes.has_code(&msg.code_hash) {
            let code = match self.fetch_code(msg).await {
                Ok(code) => code,
                Err(why) => return record::internal_error(msg, start, why),
            };
            let (p, hash, kind) = (processes.clone(), msg.code_hash.clone(), msg.kind.clone());
            let added = tokio::task::spawn_blocking(move || p.add_code(&hash, &kind, &code)).await;
            match added {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return record::internal_error(msg, start, e),
                Err(e) => return record::internal_error(msg, start, e.to_string()),
            }
        }
        let opened = match secrets::open(self.keyring.as_deref(), msg, start) {
            Ok(opened) => opened,
            Err(reason) => return record::internal_error(msg, start, reason),
        };
        let run = gust_runtime_process::ProcessRun {
            subject: msg.subject.clone(),
            namespace: msg.namespace.clone(),
            action: msg.action.clone(),
            kind: msg.kind.clone(),
            code_hash: msg.code_hash.clone(),
            main: msg.main.clone(),
            params: opened.params.into_owned(),
            env: opened.env,
            timeout: Duration::from_millis(msg.limits.timeout),
            memory: msg.limits.memory,
            log_limit: msg.limits.logs * MB,
            result_limit: self.system.max_result,
            max_instances: msg.limits.instances,
            concurrency: msg.limits.concurrency,
        };
        let out = processes.run(run).await;
        if let Some(how) = out.start.and_then(Start::from_name) {
            metrics::get().start(&msg.subject, &msg.kind, how);
        }
        build_record(msg, start, now_ms(), out, self.system.max_result)
    }

    /// The action's code from the store, if it is still the version the message names.
    async fn fetch_code(&self, msg: &InvocationMessage) -> Result<Vec<u8>, String> {
        match self.store.action_code(&msg.namespace, &msg.action).await {
            Ok(Some(code)) if gust_runtime_wasm::code_hash(&code) == msg.code_hash => Ok(code),
            Ok(_) => Err("Action could not be found or may have been deleted.".to_string()),
            Err(e) => Err(format!("cannot read the action's code: {e}")),
        }
    }

    /// Makes sure the action's compiled code is in memory: [`Start::Warm`] if it was,
    /// [`Start::Cold`] if it had to be loaded from the disk cache or compiled.
    async fn ensure_code(&self, msg: &InvocationMessage) -> Result<Start, String> {
        if self.runtime.is_loaded(&msg.code_hash) {
            return Ok(Start::Warm);
        }
        // Reading an artifact from the disk cache blocks: not on the async workers.
        let (runtime, hash) = (self.runtime.clone(), msg.code_hash.clone());
        if tokio::task::spawn_blocking(move || runtime.load(&hash))
            .await
            .unwrap_or(false)
        {
            return Ok(Start::Cold);
        }
        let code = self.fetch_code(msg).await?;
        let runtime = self.runtime.clone();
        match tokio::task::spawn_blocking(move || runtime.compile(&code)).await {
            Ok(Ok(_)) => Ok(Start::Cold),
            Ok(Err(CompileError::Invalid(e))) => Err(format!("the action's code cannot run: {e}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("compilation failed: {e}")),
        }
    }
}
