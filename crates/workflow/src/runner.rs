//! The runner: drives the runs this process owns (decision 0028). Each owned run is one
//! task (an actor) holding its snapshot: it moves the engine, commits what it produced
//! (history and snapshot in one compare-and-swap), then starts the steps the engine left
//! waiting and sleeps on their results, its signals and its earliest timer. Runs are leased:
//! a run whose owner died is claimed by the next process that polls.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gust_controller::{Controller, ControllerError, Invocation, InvokeOutcome, Wait};
use gust_model::entity::bump_version;
use gust_model::time::now_ms;
use gust_model::{
    Activation, ActivationStatus, Cause, CauseKind, EntityPath, Execution, ExecutionStatus,
    HistoryEvent, Identity, RunState, Workflow, names,
};
use gust_store::{PutMode, RunCommit, Store};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::WorkflowError;
use crate::asl::{self, Definition, StateError};
use crate::engine::{
    Engine, ExecutionContext, Finish, Resource, Snapshot, StepResult, TaskStep,
    reads_execution_input, record_error, token_execution,
};
use crate::service::Started;

/// How long a run's lease lasts without renewal.
const LEASE_MS: u64 = 5_000;
/// How often leases are renewed and unowned runs looked for.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How often a clustered process looks for signals other processes posted to its runs.
const SIGNAL_POLL: Duration = Duration::from_millis(250);
/// The longest name an execution may have (Step Functions').
const MAX_EXECUTION_NAME: usize = 80;

/// A callback step's end, as a client sends it.
#[derive(Debug, Clone)]
pub enum TaskSignal {
    Success(Value),
    Failure {
        error: Option<String>,
        cause: Option<String>,
    },
    Heartbeat,
}

/// What wakes an actor.
#[derive(Debug)]
enum Msg {
    /// Its inbox has signals.
    Signals,
    /// A step ended.
    Step {
        frame: u64,
        key: String,
        result: StepResult,
    },
}

type RunKey = (String, String);

/// The actor of a run this process drives.
struct Actor {
    tx: mpsc::UnboundedSender<Msg>,
    /// Its supervising task (aborting it ends the actor).
    task: Option<tokio::task::AbortHandle>,
}

/// Aborts a task when dropped (an actor's run task goes with its supervisor).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct Runner {
    pub(crate) store: Arc<dyn Store>,
    controller: Arc<Controller>,
    /// This process, as runs' owner.
    owner: String,
    /// The runs this process drives, by (namespace, id).
    actors: Mutex<HashMap<RunKey, Actor>>,
    /// Parsed definitions by the SHA-256 of their text.
    definitions: Mutex<HashMap<[u8; 32], Arc<Definition>>>,
    /// Bumped when any run this process drives finishes (for `wait`).
    finished: tokio::sync::watch::Sender<u64>,
}

impl Runner {
    pub fn new(controller: Arc<Controller>, store: Arc<dyn Store>, owner: String) -> Arc<Runner> {
        Arc::new(Runner {
            store,
            controller,
            owner,
            actors: Mutex::new(HashMap::new()),
            definitions: Mutex::new(HashMap::new()),
            finished: tokio::sync::watch::channel(0).0,
        })
    }

    /// Starts the background loops: lease renewal, claiming runs nobody live owns, and (in a
    /// cluster) looking for signals. An embedded store first drops every owner: this process
    /// is its only one.
    pub async fn start_loops(self: &Arc<Self>, embedded: bool) -> Result<(), WorkflowError> {
        if embedded {
            self.store.release_runs().await?;
        }
        self.claim().await;
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut renew = tokio::time::interval(RENEW_EVERY);
            let mut signals = tokio::time::interval(SIGNAL_POLL);
            loop {
                tokio::select! {
                    _ = renew.tick() => {
                        let Some(this) = this.upgrade() else { return };
                        if let Err(e) = this.store.renew_runs(&this.owner, now_ms() + LEASE_MS).await {
                            tracing::warn!(error = %e, "renewing workflow runs' leases failed");
                        }
                        if !embedded {
                            this.claim().await;
                        }
                    }
                    _ = signals.tick(), if !embedded => {
                        let Some(this) = this.upgrade() else { return };
                        match this.store.signalled_runs(&this.owner).await {
                            Ok(runs) => {
                                for (ns, id) in runs {
                                    this.wake(&ns, &id);
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "reading workflow signals failed"),
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Claims the runs nobody live owns and starts their actors.
    async fn claim(self: &Arc<Self>) {
        let now = now_ms();
        let runs = match self.store.claimable_runs(&self.owner, now, 1000).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "looking for workflow runs failed");
                return;
            }
        };
        for (ns, id) in runs {
            // A run this process still drives but no longer owns (its lease ran out during a
            // pause, and another process may have had it since): that actor is stale.
            if self.is_local(&ns, &id) {
                self.drop_actor(&ns, &id);
            }
            match self
                .store
                .claim_run(&ns, &id, &self.owner, now, now + LEASE_MS)
                .await
            {
                Ok(true) => self.spawn_actor(ns, id, true),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "claiming a workflow run failed"),
            }
        }
    }

    fn is_local(&self, ns: &str, id: &str) -> bool {
        self.actors
            .lock()
            .map(|a| a.contains_key(&(ns.to_string(), id.to_string())))
            .unwrap_or(false)
    }

    fn wake(&self, ns: &str, id: &str) {
        if let Ok(actors) = self.actors.lock()
            && let Some(actor) = actors.get(&(ns.to_string(), id.to_string()))
        {
            let _ = actor.tx.send(Msg::Signals);
        }
    }

    fn spawn_actor(self: &Arc<Self>, ns: String, id: String, resumed: bool) {
        let (tx, rx) = mpsc::unbounded_channel();
        let key = (ns.clone(), id.clone());
        {
            let Ok(mut actors) = self.actors.lock() else {
                return;
            };
            if actors.contains_key(&key) {
                return;
            }
            actors.insert(
                key.clone(),
                Actor {
                    tx: tx.clone(),
                    task: None,
                },
            );
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            let (mut tx, mut rx, mut resumed) = (tx, rx, resumed);
            let mut delay = Duration::from_millis(100);
            loop {
                // On a task of its own, so a panic ends in an error here, not in a run
                // owned and never moved again.
                let inner = {
                    let (this, ns, id, tx) = (this.clone(), ns.clone(), id.clone(), tx.clone());
                    tokio::spawn(async move { this.drive(&ns, &id, tx, rx, resumed).await })
                };
                let _abort = AbortOnDrop(inner.abort_handle());
                let result = match inner.await {
                    Ok(r) => r,
                    Err(e) => Err(internal(format!("the run's task failed: {e}"))),
                };
                let Err(e) = result else { break };
                // A failure (the store unreachable, say) is retried: the run is still this
                // process's, and nobody else takes it while its lease is renewed.
                tracing::warn!(namespace = %ns, execution = %id, error = %e, "a workflow run failed here; resuming it");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
                let (new_tx, new_rx) = mpsc::unbounded_channel();
                match this.actors.lock() {
                    Ok(mut actors) => match actors.get_mut(&(ns.clone(), id.clone())) {
                        Some(actor) if actor.tx.same_channel(&tx) => actor.tx = new_tx.clone(),
                        // Replaced meanwhile (the run was claimed again).
                        _ => return,
                    },
                    Err(_) => return,
                }
                (tx, rx, resumed) = (new_tx, new_rx, true);
            }
            if let Ok(mut actors) = this.actors.lock() {
                let key = (ns, id);
                if actors.get(&key).is_some_and(|a| a.tx.same_channel(&tx)) {
                    actors.remove(&key);
                }
            }
            this.finished.send_modify(|n| *n += 1);
        });
        if let Ok(mut actors) = self.actors.lock()
            && let Some(actor) = actors.get_mut(&key)
        {
            actor.task = Some(task.abort_handle());
        }
    }

    /// Ends this process's actor of a run, if it has one (the run was taken from it).
    fn drop_actor(&self, ns: &str, id: &str) {
        let actor = self
            .actors
            .lock()
            .ok()
            .and_then(|mut a| a.remove(&(ns.to_string(), id.to_string())));
        if let Some(task) = actor.and_then(|a| a.task) {
            task.abort();
        }
    }

    /// A definition, parsed (cached by its text's SHA-256: a workflow deleted and created
    /// again starts at the same version with another definition).
    fn definition(&self, doc: &Value) -> Result<Arc<Definition>, WorkflowError> {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::digest(doc.to_string().as_bytes()).into();
        if let Ok(defs) = self.definitions.lock()
            && let Some(d) = defs.get(&key)
        {
            return Ok(d.clone());
        }
        let def = Arc::new(asl::parse(doc).map_err(|e| WorkflowError::Invalid(e.to_string()))?);
        if let Ok(mut defs) = self.definitions.lock() {
            if defs.len() > 10_000 {
                defs.clear();
            }
            defs.insert(key, def.clone());
        }
        Ok(def)
    }

    // ----- the service's calls -----

    pub(crate) async fn put_workflow(
        &self,
        who: &Identity,
        name: &str,
        definition: Value,
        overwrite: bool,
    ) -> Result<Workflow, WorkflowError> {
        names::check_entity(name)
            .map_err(|e| WorkflowError::Invalid(format!("The workflow name is not valid: {e}")))?;
        let definition = match definition {
            // Step Functions sends the definition as a string.
            Value::String(s) => serde_json::from_str(&s)
                .map_err(|e| WorkflowError::Invalid(format!("The definition is not JSON: {e}")))?,
            v => v,
        };
        asl::parse(&definition).map_err(|e| WorkflowError::Invalid(e.to_string()))?;
        let existing = self.store.workflow(&who.namespace, name).await?;
        let (version, mode) = match &existing {
            Some(_) if !overwrite => {
                return Err(WorkflowError::WorkflowAlreadyExists(name.to_string()));
            }
            Some(w) => (
                bump_version(&w.version),
                PutMode::Replace {
                    expected_version: w.version.clone(),
                },
            ),
            None => ("0.0.1".to_string(), PutMode::Create),
        };
        let wf = Workflow {
            namespace: who.namespace.clone(),
            name: name.to_string(),
            version,
            definition,
            updated: now_ms(),
        };
        self.store.put_workflow(&wf, mode).await?;
        Ok(wf)
    }

    pub(crate) async fn workflow(
        &self,
        who: &Identity,
        name: &str,
    ) -> Result<Workflow, WorkflowError> {
        self.store
            .workflow(&who.namespace, name)
            .await?
            .ok_or_else(|| WorkflowError::WorkflowDoesNotExist(name.to_string()))
    }

    /// Starts an execution (see `Workflows::start`); `parent` for a nested one.
    pub(crate) async fn start(
        self: &Arc<Self>,
        who: &Identity,
        workflow: &str,
        name: Option<&str>,
        input: Value,
        parent: Option<String>,
    ) -> Result<Started, WorkflowError> {
        let wf = self.workflow(who, workflow).await?;
        if let Some(n) = name {
            check_execution_name(n)?;
        }
        let def = self.definition(&wf.definition)?;
        let id = names::new_activation_id();
        let now = now_ms();
        let execution = Execution {
            namespace: who.namespace.clone(),
            id: id.clone(),
            name: name.map_or_else(|| id.clone(), str::to_string),
            workflow: wf.name.clone(),
            status: ExecutionStatus::Running,
            input: input.clone(),
            output: None,
            error: None,
            cause: None,
            start: now,
            stop: None,
            parent,
        };
        let ctx = context_of(&execution, &wf.definition);
        let mut snap = Snapshot::default();
        let (mut ids, mut random) = sources();
        let mut engine = Engine {
            def: &def,
            ctx: &ctx,
            snap: &mut snap,
            events: Vec::new(),
            finish: None,
            dirty: false,
            more: false,
            ids: &mut ids,
            random: &mut random,
        };
        engine.begin(now);
        let mut events = history(0, now, std::mem::take(&mut engine.events));
        // The definition the run follows, whatever later updates of the workflow say.
        if let Some(first) = events.first_mut() {
            first.details["definition"] = wf.definition.clone();
            first.details["version"] = json!(wf.version);
        }
        let run = RunState {
            seq: events.len() as u64,
            snapshot: serde_json::to_value(&snap).map_err(internal)?,
            wake_ms: Engine::wake_ms(&snap),
            owner: Some(self.owner.clone()),
            lease_ms: now + LEASE_MS,
        };
        if !self
            .store
            .create_execution(&execution, &run, &events)
            .await?
        {
            let existing = self
                .store
                .execution_named(&who.namespace, &wf.name, &execution.name)
                .await?
                .ok_or(WorkflowError::Conflict)?;
            // Step Functions: the same name and input while it runs is the same start.
            if existing.status.is_running() && existing.input == execution.input {
                return Ok(Started {
                    execution: existing,
                    created: false,
                });
            }
            return Err(WorkflowError::ExecutionAlreadyExists(execution.name));
        }
        self.spawn_actor(execution.namespace.clone(), id, false);
        Ok(Started {
            execution,
            created: true,
        })
    }

    pub(crate) async fn stop(
        &self,
        who: &Identity,
        id: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<Execution, WorkflowError> {
        let signal = json!({"type": "stop", "error": error.unwrap_or_default(), "cause": cause.unwrap_or_default()});
        self.post(who, id, &signal).await?;
        self.wait(who, id, Duration::from_secs(5)).await
    }

    pub(crate) async fn raise_event(
        &self,
        who: &Identity,
        id: &str,
        event: &str,
        body: Value,
    ) -> Result<(), WorkflowError> {
        if event.is_empty() || event.len() > 256 {
            return Err(WorkflowError::Invalid(
                "An event name must have 1 to 256 characters.".into(),
            ));
        }
        self.post(
            who,
            id,
            &json!({"type": "event", "name": event, "body": body}),
        )
        .await
    }

    /// Posts a signal to a running execution of the caller's and wakes its actor.
    async fn post(&self, who: &Identity, id: &str, signal: &Value) -> Result<(), WorkflowError> {
        let exec = self
            .store
            .execution(&who.namespace, id)
            .await?
            .ok_or_else(|| WorkflowError::ExecutionDoesNotExist(id.to_string()))?;
        if !exec.status.is_running() || !self.store.post_signal(&who.namespace, id, signal).await? {
            return Err(WorkflowError::NotRunning(id.to_string()));
        }
        self.wake(&who.namespace, id);
        Ok(())
    }

    pub(crate) async fn task_signal(
        &self,
        who: &Identity,
        token: &str,
        signal: TaskSignal,
    ) -> Result<(), WorkflowError> {
        if token.is_empty() || token.len() > 2048 {
            return Err(WorkflowError::Invalid(
                "Invalid Token: its length must be 1 to 2048.".into(),
            ));
        }
        let id = token_execution(token).ok_or_else(|| {
            WorkflowError::Invalid("Invalid Token: it is not a task token.".into())
        })?;
        let ns = &who.namespace;
        // The step must be waiting for this token now.
        let waiting = match self.store.run_state(ns, &id).await? {
            Some(run) => serde_json::from_value::<Snapshot>(run.snapshot)
                .map(|s| Engine::tasks(&s).any(|(_, t)| t.token.as_deref() == Some(token)))
                .unwrap_or(false),
            None => false,
        };
        if !waiting {
            return Err(WorkflowError::TaskDoesNotExist);
        }
        let doc = match signal {
            TaskSignal::Success(output) => {
                json!({"type": "success", "token": token, "output": output})
            }
            TaskSignal::Failure { error, cause } => {
                json!({"type": "failure", "token": token, "error": error, "cause": cause})
            }
            TaskSignal::Heartbeat => json!({"type": "heartbeat", "token": token}),
        };
        if !self.store.post_signal(ns, &id, &doc).await? {
            return Err(WorkflowError::TaskDoesNotExist);
        }
        self.wake(ns, &id);
        Ok(())
    }

    pub(crate) async fn wait(
        &self,
        who: &Identity,
        id: &str,
        timeout: Duration,
    ) -> Result<Execution, WorkflowError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut finished = self.finished.subscribe();
        loop {
            let exec = self
                .store
                .execution(&who.namespace, id)
                .await?
                .ok_or_else(|| WorkflowError::ExecutionDoesNotExist(id.to_string()))?;
            if !exec.status.is_running() || tokio::time::Instant::now() >= deadline {
                return Ok(exec);
            }
            // Woken by a run finishing here; a run elsewhere is polled.
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(200)),
                finished.changed(),
            )
            .await;
        }
    }

    // ----- the actor -----

    /// Drives one run until it finishes or another process takes it.
    async fn drive(
        self: Arc<Self>,
        ns: &str,
        id: &str,
        tx: mpsc::UnboundedSender<Msg>,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        resumed: bool,
    ) -> Result<(), WorkflowError> {
        let Some(execution) = self.store.execution(ns, id).await? else {
            return Ok(());
        };
        let Some(run) = self.store.run_state(ns, id).await? else {
            return Ok(());
        };
        let first = self.store.history(ns, id, 0, 1, false).await?;
        let doc = first
            .first()
            .map(|e| e.details["definition"].clone())
            .ok_or_else(|| internal("the run has no ExecutionStarted event"))?;
        let def = self.definition(&doc)?;
        let who = self
            .controller
            .owner(ns)
            .await?
            .ok_or_else(|| internal("the run's namespace is gone"))?;
        let ctx = context_of(&execution, &doc);
        let mut snap: Snapshot = serde_json::from_value(run.snapshot).map_err(internal)?;
        let mut seq = run.seq;
        let mut execution = execution;
        let (mut ids, mut random) = sources();
        // Steps started by this actor (their keys); after a resume, the ones in the snapshot
        // are checked for a record before anything is invoked again.
        let mut started: HashSet<String> = HashSet::new();
        let mut unchecked: HashSet<String> = if resumed {
            Engine::tasks(&snap).map(|(_, t)| t.key.clone()).collect()
        } else {
            HashSet::new()
        };
        let mut consumed: Vec<u64> = Vec::new();
        let mut pending: Vec<Msg> = vec![Msg::Signals];
        // Nested executions started by steps in flight: key -> (workflow, execution name).
        let mut children: HashMap<String, (String, String)> = Engine::tasks(&snap)
            .filter_map(|(_, t)| match &t.resource {
                Resource::Workflow { name } => {
                    Some((t.key.clone(), (name.clone(), t.activation_id.clone())))
                }
                _ => None,
            })
            .collect();
        loop {
            // Read the inbox first: the engine moves without waiting on anything.
            let signals = if pending.iter().any(|m| matches!(m, Msg::Signals)) {
                retried("reading a run's signals", || self.store.signals(ns, id)).await
            } else {
                Vec::new()
            };
            let now = now_ms();
            let mut engine = Engine {
                def: &def,
                ctx: &ctx,
                snap: &mut snap,
                events: Vec::new(),
                finish: None,
                dirty: false,
                more: false,
                ids: &mut ids,
                random: &mut random,
            };
            for msg in pending.drain(..) {
                if let Msg::Step { frame, key, result } = msg {
                    started.remove(&key);
                    children.remove(&key);
                    engine.step_result(frame, &key, result, now);
                }
            }
            for (sid, signal) in signals {
                engine.signal(&signal, now);
                consumed.push(sid);
            }
            engine.run(now);
            let events = std::mem::take(&mut engine.events);
            let finish = engine.finish.take();
            let (dirty, more) = (engine.dirty, engine.more);
            if !events.is_empty() || !consumed.is_empty() || finish.is_some() || dirty {
                let events = history(seq, now, events);
                if let Some(f) = &finish {
                    finish_execution(&mut execution, f, now);
                }
                let state = RunState {
                    seq: seq + events.len() as u64,
                    snapshot: serde_json::to_value(&snap).map_err(internal)?,
                    wake_ms: Engine::wake_ms(&snap),
                    owner: Some(self.owner.clone()),
                    lease_ms: 0,
                };
                let commit = RunCommit {
                    namespace: ns,
                    id,
                    expected_seq: seq,
                    owner: &self.owner,
                    events: &events,
                    run: &state,
                    execution: finish.is_some().then_some(&execution),
                    consumed: &consumed,
                };
                if !self.commit(&commit).await {
                    // Another process has the run now.
                    return Ok(());
                }
                seq = state.seq;
                consumed.clear();
            }
            // Nested executions whose steps are gone (timed out, caught, stopped, finished)
            // are stopped too.
            let live: HashSet<String> = Engine::tasks(&snap).map(|(_, t)| t.key.clone()).collect();
            let orphans: Vec<String> = children
                .keys()
                .filter(|k| finish.is_some() || !live.contains(*k))
                .cloned()
                .collect();
            for key in orphans {
                if let Some((workflow, name)) = children.remove(&key) {
                    self.stop_child(ns, &workflow, &name).await;
                }
            }
            if finish.is_some() {
                return Ok(());
            }
            if more {
                // A long run of Pass or Choice states: let other tasks run, then go on.
                tokio::task::yield_now().await;
                while let Ok(m) = rx.try_recv() {
                    pending.push(m);
                }
                continue;
            }
            // Start the steps the engine left waiting that nothing runs yet.
            started.retain(|k| live.contains(k));
            for (frame, step) in Engine::tasks(&snap) {
                if started.contains(&step.key) || step.invoked {
                    continue;
                }
                if matches!(step.resource, Resource::Event { .. }) {
                    continue;
                }
                started.insert(step.key.clone());
                if let Resource::Workflow { name } = &step.resource {
                    children.insert(step.key.clone(), (name.clone(), step.activation_id.clone()));
                }
                let fresh = !unchecked.remove(&step.key);
                let (this, who, tx, step, exec_id) = (
                    self.clone(),
                    who.clone(),
                    tx.clone(),
                    step.clone(),
                    id.to_string(),
                );
                tokio::spawn(async move {
                    let key = step.key.clone();
                    let result = this.run_step(&who, &exec_id, &step, fresh).await;
                    let _ = tx.send(Msg::Step { frame, key, result });
                });
            }
            // Sleep until something happens or the earliest timer is due.
            let wake = Engine::wake_ms(&snap);
            let msg = match wake {
                Some(at) => {
                    let delay = Duration::from_millis(at.saturating_sub(now_ms()));
                    match tokio::time::timeout(delay, rx.recv()).await {
                        Ok(m) => m,
                        Err(_) => {
                            continue;
                        }
                    }
                }
                None => rx.recv().await,
            };
            let Some(msg) = msg else { return Ok(()) };
            pending.push(msg);
            while let Ok(more) = rx.try_recv() {
                pending.push(more);
            }
        }
    }

    /// Writes a commit; true once it is written (also when a lost answer hid that it was),
    /// false when another process has the run. Store failures are retried.
    async fn commit(&self, commit: &RunCommit<'_>) -> bool {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.store.commit_run(commit).await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "committing a workflow run failed; retrying"),
            }
            // Was it written after all, or is the run another's now?
            match self.store.run_state(commit.namespace, commit.id).await {
                Ok(Some(run)) => {
                    let mine = run.owner.as_deref() == Some(commit.owner);
                    if mine && run.seq == commit.run.seq && run.seq != commit.expected_seq {
                        return true;
                    }
                    if !mine || run.seq != commit.expected_seq {
                        return false;
                    }
                }
                // No run state: the execution finished (by this commit, if it was finishing).
                Ok(None) => return commit.execution.is_some_and(|e| !e.status.is_running()),
                Err(e) => tracing::warn!(error = %e, "reading a workflow run failed; retrying"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Stops the nested execution `name` of `workflow`, if it still runs.
    async fn stop_child(&self, ns: &str, workflow: &str, name: &str) {
        let Ok(Some(child)) = self.store.execution_named(ns, workflow, name).await else {
            return;
        };
        if !child.status.is_running() {
            return;
        }
        let signal =
            json!({"type": "stop", "error": "States.Aborted", "cause": "Its parent's step ended."});
        match self.store.post_signal(ns, &child.id, &signal).await {
            Ok(_) => self.wake(ns, &child.id),
            Err(e) => tracing::warn!(error = %e, "stopping a nested execution failed"),
        }
    }

    /// Runs one task step to its end: an action's invocation, a nested execution.
    async fn run_step(
        self: &Arc<Self>,
        who: &Identity,
        exec_id: &str,
        step: &TaskStep,
        fresh: bool,
    ) -> StepResult {
        match &step.resource {
            Resource::Action { name, lambda } => {
                match self.run_action(who, exec_id, step, name, fresh).await {
                    Ok(value) if *lambda => StepResult::Done(
                        json!({"Payload": value, "StatusCode": 200, "ExecutedVersion": "$LATEST"}),
                    ),
                    Ok(value) => StepResult::Done(value),
                    Err(e) => StepResult::Failed(e),
                }
            }
            Resource::Workflow { name } => self.run_child(who, exec_id, step, name).await,
            Resource::Event { .. } => StepResult::Failed(StateError {
                error: "States.Runtime".into(),
                cause: "an event step runs nothing".into(),
            }),
        }
    }

    async fn run_action(
        self: &Arc<Self>,
        who: &Identity,
        exec_id: &str,
        step: &TaskStep,
        name: &str,
        fresh: bool,
    ) -> Result<Value, StateError> {
        let ns = who.namespace.clone();
        let id = &step.activation_id;
        if !fresh {
            // After a crash: the step's record may exist, or its invocation be journaled. A
            // failed read is not a "no": it is read again.
            if let Some(record) =
                retried("reading a step's record", || self.store.activation(&ns, id)).await
            {
                return outcome_of(&record);
            }
            if retried("reading the journal", || self.store.is_accepted(&ns, id)).await {
                return self.record_of(&ns, id).await;
            }
        }
        let Value::Object(params) = step.input.clone() else {
            return Err(StateError {
                error: "States.Runtime".into(),
                cause: "a task's input must be a JSON object (an action takes one)".into(),
            });
        };
        let target = EntityPath::parse(name, &ns)
            .ok_or_else(|| task_failed(format!("\"{name}\" is not an action's name")))?;
        let resolved = self
            .controller
            .resolve(who, target.namespace(), &target.inner())
            .await
            .map_err(|e| task_failed(format!("the action \"{name}\" cannot run: {e}")))?;
        let mut backoff = Duration::from_millis(100);
        loop {
            let inv = Invocation {
                caller: who,
                action: &resolved,
                params: params.clone(),
                wait: Wait::UpTo(gust_controller::MAX_BLOCKING_WAIT),
                cause: Some(Cause {
                    kind: CauseKind::Workflow,
                    activation_id: exec_id.to_string(),
                }),
                secrets: Vec::new(),
                activation_id: Some(id.clone()),
                trace: None,
            };
            match self.controller.invoke(inv).await {
                Ok(InvokeOutcome::Completed(raw)) => {
                    let record: Activation = serde_json::from_str(raw.get()).map_err(|e| {
                        task_failed(format!("the step's record is unreadable: {e}"))
                    })?;
                    return outcome_of(&record);
                }
                Ok(InvokeOutcome::Waiting(_) | InvokeOutcome::Accepted(_)) => {
                    return self.record_of(&ns, id).await;
                }
                // The platform could not take it now: the step waits, it has not failed.
                Err(e) if e.is_throttled() || e.is_host_failure() => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(task_failed(e.to_string())),
            }
        }
    }

    /// Waits for the record of activation `id`.
    async fn record_of(&self, ns: &str, id: &str) -> Result<Value, StateError> {
        let mut delay = Duration::from_millis(50);
        loop {
            match self.store.activation(ns, id).await {
                Ok(Some(record)) => return outcome_of(&record),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reading a step's record failed"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// A nested workflow's execution, named by the step's id so a resumed step finds it.
    async fn run_child(
        self: &Arc<Self>,
        who: &Identity,
        exec_id: &str,
        step: &TaskStep,
        workflow: &str,
    ) -> StepResult {
        let started = Box::pin(self.start(
            who,
            workflow,
            Some(&step.activation_id),
            step.input.clone(),
            Some(exec_id.to_string()),
        ))
        .await;
        let child = match started {
            Ok(s) => s.execution,
            Err(WorkflowError::ExecutionAlreadyExists(_)) => {
                match self
                    .store
                    .execution_named(&who.namespace, workflow, &step.activation_id)
                    .await
                {
                    Ok(Some(e)) => e,
                    _ => {
                        return StepResult::Failed(task_failed(
                            "the nested execution is gone".into(),
                        ));
                    }
                }
            }
            Err(e) => return StepResult::Failed(task_failed(e.to_string())),
        };
        let mut delay = Duration::from_millis(20);
        loop {
            match self.store.execution(&who.namespace, &child.id).await {
                Ok(Some(e)) if !e.status.is_running() => {
                    return match e.status {
                        ExecutionStatus::Succeeded => {
                            StepResult::Done(e.output.unwrap_or(Value::Null))
                        }
                        _ => StepResult::Failed(StateError {
                            error: e.error.unwrap_or_else(|| "States.TaskFailed".into()),
                            cause: e.cause.unwrap_or_default(),
                        }),
                    };
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading a nested execution failed"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

/// `read`'s value, read again (with backoff) until the store answers.
async fn retried<T, F, Fut>(what: &str, read: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = gust_store::Result<T>>,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match read().await {
            Ok(v) => return v,
            Err(e) => tracing::warn!(error = %e, "{what} failed; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// What a step's record says: its result, or the error (decision 0028).
fn outcome_of(record: &Activation) -> Result<Value, StateError> {
    if record.response.status == ActivationStatus::Success {
        return Ok(record.response.result.clone());
    }
    let timed_out = record
        .annotations
        .iter()
        .any(|kv| kv.key == "timeout" && kv.value == Value::Bool(true));
    Err(record_error(&record.response.result, timed_out))
}

fn task_failed(cause: String) -> StateError {
    StateError {
        error: "States.TaskFailed".into(),
        cause,
    }
}

fn internal(e: impl std::fmt::Display) -> WorkflowError {
    WorkflowError::Controller(ControllerError::Internal(e.to_string()))
}

/// The context an execution of `definition` gives its states (`$$.Execution`,
/// `$$.StateMachine`).
fn context_of(e: &Execution, definition: &Value) -> ExecutionContext {
    ExecutionContext {
        id: e.id.clone(),
        name: e.name.clone(),
        workflow: e.workflow.clone(),
        input: e.input.clone(),
        start_ms: e.start,
        with_input: reads_execution_input(definition),
    }
}

/// The engine's events as history rows after `seq`.
fn history(seq: u64, now: u64, events: Vec<(String, Value)>) -> Vec<HistoryEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, (kind, details))| HistoryEvent {
            seq: seq + 1 + i as u64,
            ts: now,
            kind,
            details,
        })
        .collect()
}

fn finish_execution(e: &mut Execution, f: &Finish, now: u64) {
    e.stop = Some(now);
    match f {
        Finish::Succeeded(out) => {
            e.status = ExecutionStatus::Succeeded;
            e.output = Some(out.clone());
        }
        Finish::Failed { error, cause } => {
            e.status = ExecutionStatus::Failed;
            e.error = Some(error.clone());
            e.cause = Some(cause.clone());
        }
        Finish::Aborted { error, cause } => {
            // A stop names neither unless its client did.
            e.status = ExecutionStatus::Aborted;
            e.error = Some(error.clone()).filter(|s| !s.is_empty());
            e.cause = Some(cause.clone()).filter(|s| !s.is_empty());
        }
        Finish::TimedOut => {
            e.status = ExecutionStatus::TimedOut;
            e.error = Some("States.Timeout".into());
        }
    }
}

/// Ids (activation-id-shaped) and jitter for the engine.
fn sources() -> (
    impl FnMut() -> String + Send + 'static,
    impl FnMut() -> f64 + Send + 'static,
) {
    (names::new_activation_id, || {
        // The low bits of a fresh UUIDv4: random enough for jitter.
        let n = uuid::Uuid::new_v4().as_u128() as u64;
        (n >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// Step Functions' rules for an execution's name: 1..80 characters, none of whitespace,
/// `< > { } [ ] ? * " # % \ ^ | ~ \` $ & , ; : /` or control characters.
fn check_execution_name(name: &str) -> Result<(), WorkflowError> {
    let bad = name.is_empty()
        || name.chars().count() > MAX_EXECUTION_NAME
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c));
    if bad {
        return Err(WorkflowError::Invalid(format!(
            "Invalid Name: '{name}' (1 to {MAX_EXECUTION_NAME} characters, no whitespace nor any of <>{{}}[]?*\"#%\\^|~`$&,;:/)"
        )));
    }
    Ok(())
}
