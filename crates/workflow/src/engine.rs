//! The interpreter: a run's state as a snapshot of frames (the top level, each Parallel
//! branch, each Map iteration), moved forward by what happens to it (a step's result, a
//! signal, the clock), emitting Step Functions' history events. Pure: no I/O, no clock of
//! its own; the runner commits what it produced and starts the steps it left waiting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::asl::{self, Definition, Next, State, StateError};

/// Where a frame's definition is inside the workflow's: the top level, or a branch or item
/// processor of a state of its parent's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Seg {
    Branch(String, usize),
    Processor(String),
}

/// What a frame is doing in its current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step")]
pub enum Step {
    /// About to enter the state (or to run it again after a retry's delay).
    Enter { retry: bool },
    /// A task step in flight.
    Task(TaskStep),
    /// A Wait state until then.
    Wait { until_ms: u64 },
    /// A retry's delay, then the state runs again.
    Retry { until_ms: u64 },
    /// A Parallel state waiting for its branches.
    Parallel {
        children: Vec<Option<u64>>,
        results: Vec<Option<Value>>,
    },
    /// A Map state running its iterations.
    Map {
        items: Vec<Value>,
        next: usize,
        concurrency: u32,
        /// The iterations running: (item index, frame).
        running: Vec<(usize, u64)>,
        results: Vec<Option<Value>>,
        failed: u64,
        effective: Value,
    },
}

/// A task step in flight: what the runner starts and waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStep {
    /// `f<frame>/<state>/<entry>/<attempt>`: unique in the run.
    pub key: String,
    /// The activation id of the step's invocation (or the nested execution's name).
    pub activation_id: String,
    pub resource: Resource,
    /// The task's effective input (after InputPath and Parameters).
    pub input: Value,
    /// `.waitForTaskToken`: the token that ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When the step times out (TimeoutSeconds), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// HeartbeatSeconds, and when the next heartbeat is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_due_ms: Option<u64>,
    /// A callback step whose invocation finished well: only its token ends it now.
    #[serde(default)]
    pub invoked: bool,
}

/// What a Task state runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Resource {
    /// An action by name (`name`, `pkg/name` or `/ns/pkg/name`); `lambda` wraps the result
    /// as `lambda:invoke` does.
    Action { name: String, lambda: bool },
    /// A nested workflow's execution.
    Workflow { name: String },
    /// An external event raised on the execution.
    Event { name: String },
}

/// One frame: the top level, a branch or an iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// The frame and index (branch or item) it reports to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<(u64, usize)>,
    pub def: Vec<Seg>,
    pub state: String,
    /// The current state's raw input.
    pub input: Value,
    /// States entered in this frame so far.
    pub entries: u64,
    /// Retries made of the current state, per retrier.
    #[serde(default)]
    pub retries: Vec<u32>,
    /// When the current state was entered, ms since the epoch.
    pub entered_ms: u64,
    pub step: Step,
}

/// A run's whole state: what the store keeps beside the history.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub frames: BTreeMap<u64, Frame>,
    pub next_frame: u64,
    /// External events raised and not yet taken, by name, oldest first.
    #[serde(default)]
    pub events: BTreeMap<String, Vec<Value>>,
    /// The execution's deadline (TimeoutSeconds), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

/// The execution a snapshot belongs to, for the context object (`$$`).
#[derive(Debug, Clone)]
pub struct ExecutionContext {
    pub id: String,
    pub name: String,
    pub workflow: String,
    pub input: Value,
    pub start_ms: u64,
    /// Whether the context object carries `Execution.Input` (see [`reads_execution_input`]).
    pub with_input: bool,
}

/// Whether a definition may read the execution's input from the context object: any `$$`
/// that is not `$$.Map`, `$$.Task` or `$$.State...` (the text is searched, so a mention in a
/// string counts too: the safe side).
pub fn reads_execution_input(definition: &Value) -> bool {
    let text = definition.to_string();
    text.match_indices("$$").any(|(i, _)| {
        let rest = &text[i + 2..];
        !(rest.starts_with(".Map") || rest.starts_with(".Task") || rest.starts_with(".State"))
    })
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Succeeded(Value),
    Failed {
        error: String,
        cause: String,
    },
    /// Stopped by a client.
    Aborted {
        error: String,
        cause: String,
    },
    TimedOut,
}

/// A history event the engine produced: its kind and details.
pub type Event = (String, Value);

/// What happened to a task step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepResult {
    /// The invocation finished well with this result (for a callback step: its invocation
    /// did; the token still has to come).
    Done(Value),
    Failed(StateError),
}

/// The interpreter of one run, over its snapshot.
pub struct Engine<'a> {
    pub def: &'a Definition,
    pub ctx: &'a ExecutionContext,
    pub snap: &'a mut Snapshot,
    /// Events produced since the runner last took them.
    pub events: Vec<Event>,
    /// Set once the run ended.
    pub finish: Option<Finish>,
    /// The snapshot changed without an event (a callback's invocation ended): commit it.
    pub dirty: bool,
    /// [`Engine::run`] stopped after [`QUANTUM`] state entries with more to do: commit, let
    /// others run, and call it again.
    pub more: bool,
    /// Makes ids and tokens (the runner's; a test's deterministic one).
    pub ids: &'a mut (dyn FnMut() -> String + Send),
    /// A number in [0, 1) for retry jitter.
    pub random: &'a mut (dyn FnMut() -> f64 + Send),
}

/// The most states [`Engine::run`] enters before it hands control back (a loop of Pass or
/// Choice states never waits on anything).
pub const QUANTUM: u32 = 1000;

/// The most items one Map state iterates: its items and results live in the run's
/// snapshot, which is written at every commit.
pub const MAX_MAP_ITEMS: usize = 10_000;

/// A frame's definition, from the top one.
pub fn definition_of<'d>(top: &'d Definition, path: &[Seg]) -> Option<&'d Definition> {
    let mut def = top;
    for seg in path {
        def = match seg {
            Seg::Branch(state, i) => match def.state(state)? {
                State::Parallel(p) => p.branches.get(*i)?,
                _ => return None,
            },
            Seg::Processor(state) => match def.state(state)? {
                State::Map(m) => &m.processor,
                _ => return None,
            },
        };
    }
    Some(def)
}

fn runtime(cause: impl Into<String>) -> StateError {
    StateError {
        error: "States.Runtime".into(),
        cause: cause.into(),
    }
}

impl Engine<'_> {
    /// Begins a run: `ExecutionStarted`, and the top frame about to enter `StartAt` with the
    /// execution's input (the runner's first [`Engine::run`] moves it).
    pub fn begin(&mut self, now_ms: u64) {
        self.events.push((
            "ExecutionStarted".into(),
            json!({"input": text(&self.ctx.input), "roleArn": ""}),
        ));
        if let Some(t) = self.def.timeout_seconds {
            self.snap.deadline_ms = Some(now_ms.saturating_add(t.saturating_mul(1000)));
        }
        self.new_frame(
            None,
            Vec::new(),
            self.def.start_at.clone(),
            self.ctx.input.clone(),
            now_ms,
        );
    }

    fn new_frame(
        &mut self,
        parent: Option<(u64, usize)>,
        def: Vec<Seg>,
        state: String,
        input: Value,
        now_ms: u64,
    ) -> u64 {
        let id = self.snap.next_frame;
        self.snap.next_frame += 1;
        self.snap.frames.insert(
            id,
            Frame {
                parent,
                def,
                state,
                input,
                entries: 0,
                retries: Vec::new(),
                entered_ms: now_ms,
                step: Step::Enter { retry: false },
            },
        );
        id
    }

    /// The earliest time something is due: a Wait, a retry, a timeout, a heartbeat, the
    /// execution's deadline.
    pub fn wake_ms(snap: &Snapshot) -> Option<u64> {
        let mut due = snap.deadline_ms;
        let mut at = |t: Option<u64>| {
            if let Some(t) = t {
                due = Some(due.map_or(t, |d| d.min(t)));
            }
        };
        for f in snap.frames.values() {
            match &f.step {
                Step::Wait { until_ms } | Step::Retry { until_ms } => at(Some(*until_ms)),
                Step::Task(t) => {
                    at(t.deadline_ms);
                    at(t.heartbeat_due_ms);
                }
                _ => {}
            }
        }
        due
    }

    /// The task steps in flight, by frame.
    pub fn tasks(snap: &Snapshot) -> impl Iterator<Item = (u64, &TaskStep)> {
        snap.frames.iter().filter_map(|(id, f)| match &f.step {
            Step::Task(t) => Some((*id, t)),
            _ => None,
        })
    }

    /// Moves every frame that can move, until each waits for something.
    pub fn run(&mut self, now_ms: u64) {
        if self.finish.is_some() {
            return;
        }
        if self.snap.deadline_ms.is_some_and(|d| d <= now_ms) {
            self.events.push((
                "ExecutionTimedOut".into(),
                json!({"error": "States.Timeout", "cause": "The execution ran past its TimeoutSeconds."}),
            ));
            self.snap.frames.clear();
            self.finish = Some(Finish::TimedOut);
            return;
        }
        // Timers first: due waits, retries, timeouts and heartbeats.
        let due: Vec<u64> = self
            .snap
            .frames
            .iter()
            .filter(|(_, f)| match &f.step {
                Step::Wait { until_ms } | Step::Retry { until_ms } => *until_ms <= now_ms,
                Step::Task(t) => {
                    t.deadline_ms.is_some_and(|d| d <= now_ms)
                        || t.heartbeat_due_ms.is_some_and(|d| d <= now_ms)
                }
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(frame) = self.snap.frames.get(&id) else {
                continue;
            };
            match frame.step.clone() {
                Step::Wait { .. } => {
                    let (state, input) = (frame.state.clone(), frame.input.clone());
                    let Some(State::Wait(w)) = self.state_of(id) else {
                        continue;
                    };
                    let result = self.effective_input(&w.io, &input, id, now_ms, None);
                    let next = w.next.clone();
                    let io = w.io.clone();
                    match result
                        .and_then(|eff| io.output(&input, eff, &self.context(id, now_ms, None)))
                    {
                        Ok(out) => self.exit(id, &state, "Wait", out, &next, now_ms),
                        Err(e) => self.fail_state(id, e, now_ms),
                    }
                }
                Step::Retry { .. } => {
                    if let Some(f) = self.snap.frames.get_mut(&id) {
                        f.step = Step::Enter { retry: true };
                    }
                }
                Step::Task(t) => {
                    let (error, cause) = if t.deadline_ms.is_some_and(|d| d <= now_ms) {
                        ("States.Timeout", "The task ran past its TimeoutSeconds.")
                    } else {
                        (
                            "States.HeartbeatTimeout",
                            "No heartbeat came within HeartbeatSeconds.",
                        )
                    };
                    self.events.push((
                        "TaskTimedOut".into(),
                        json!({"resourceType": resource_type(&t.resource), "resource": resource_name(&t.resource), "error": error, "cause": cause, "path": self.path_of(id)}),
                    ));
                    self.fail_state(
                        id,
                        StateError {
                            error: error.into(),
                            cause: cause.into(),
                        },
                        now_ms,
                    );
                }
                _ => {}
            }
            if self.finish.is_some() {
                return;
            }
        }
        // Then every frame about to enter a state, until none is (or a quantum is spent).
        self.more = false;
        let mut entered = 0u32;
        loop {
            if entered >= QUANTUM {
                self.more = true;
                break;
            }
            let ready: Vec<(u64, bool)> = self
                .snap
                .frames
                .iter()
                .filter_map(|(id, f)| match f.step {
                    Step::Enter { retry } => Some((*id, retry)),
                    _ => None,
                })
                .collect();
            if ready.is_empty() {
                break;
            }
            for (id, retry) in ready {
                if self.snap.frames.contains_key(&id) {
                    self.enter(id, retry, now_ms);
                    entered += 1;
                }
                if self.finish.is_some() {
                    return;
                }
            }
        }
    }

    fn state_of(&self, frame: u64) -> Option<&State> {
        let f = self.snap.frames.get(&frame)?;
        definition_of(self.def, &f.def)?.state(&f.state)
    }

    /// The context object (`$$`) of a frame's current state.
    fn context(&self, frame: u64, now_ms: u64, token: Option<&str>) -> Value {
        let (state, entered, retries) = self
            .snap
            .frames
            .get(&frame)
            .map(|f| (f.state.clone(), f.entered_ms, f.retries.iter().sum::<u32>()))
            .unwrap_or_default();
        let mut ctx = json!({
            "Execution": {
                "Id": self.ctx.id,
                // Copied only for a definition that may read it: it can be large.
                "Input": if self.ctx.with_input { self.ctx.input.clone() } else { Value::Null },
                "Name": self.ctx.name,
                "StartTime": iso(self.ctx.start_ms),
            },
            "State": {"EnteredTime": iso(entered.max(1).min(now_ms.max(entered))), "Name": state, "RetryCount": retries},
            "StateMachine": {"Id": self.ctx.workflow, "Name": self.ctx.workflow},
        });
        if let Some(t) = token {
            ctx["Task"] = json!({"Token": t});
        }
        ctx
    }

    fn effective_input(
        &self,
        io: &asl::Io,
        input: &Value,
        frame: u64,
        now_ms: u64,
        token: Option<&str>,
    ) -> Result<Value, StateError> {
        io.effective_input(input, &self.context(frame, now_ms, token))
    }

    /// Runs the frame's current state from its start (or again, after a retry's delay).
    fn enter(&mut self, id: u64, retry: bool, now_ms: u64) {
        let Some(frame) = self.snap.frames.get_mut(&id) else {
            return;
        };
        let (name, input) = (frame.state.clone(), frame.input.clone());
        if !retry {
            frame.entries += 1;
            frame.retries.clear();
            frame.entered_ms = now_ms;
        }
        let entries = frame.entries;
        let attempt: u32 = frame.retries.iter().sum::<u32>() + 1;
        let Some(state) = self.state_of(id).cloned() else {
            self.fail_state(id, runtime(format!("no state named \"{name}\"")), now_ms);
            return;
        };
        let kind = state.kind();
        if !retry {
            self.events.push((
                format!("{kind}StateEntered"),
                json!({"name": name, "input": text(&input), "path": self.path_of(id)}),
            ));
        }
        match &state {
            State::Pass(p) => {
                let out = self
                    .effective_input(&p.io, &input, id, now_ms, None)
                    .and_then(|eff| {
                        let result = p.result.clone().unwrap_or(eff);
                        p.io.output(&input, result, &self.context(id, now_ms, None))
                    });
                match out {
                    Ok(out) => self.exit(id, &name, kind, out, &p.next, now_ms),
                    Err(e) => self.fail_state(id, e, now_ms),
                }
            }
            State::Succeed(s) => {
                let out = self
                    .effective_input(&s.io, &input, id, now_ms, None)
                    .and_then(|eff| s.io.output(&input, eff, &self.context(id, now_ms, None)));
                match out {
                    Ok(out) => self.exit(id, &name, kind, out, &Next::End, now_ms),
                    Err(e) => self.fail_state(id, e, now_ms),
                }
            }
            State::Fail(f) => {
                let (error, cause) = f.error_and_cause(&input);
                self.frame_failed(id, StateError { error, cause }, now_ms);
            }
            State::Choice(c) => {
                let out = self
                    .effective_input(&c.io, &input, id, now_ms, None)
                    .and_then(|eff| {
                        let next = c.next(&eff)?.to_string();
                        let out = c.io.output(&input, eff, &self.context(id, now_ms, None))?;
                        Ok((next, out))
                    });
                match out {
                    Ok((next, out)) => self.exit(id, &name, kind, out, &Next::Next(next), now_ms),
                    Err(e) => self.fail_state(id, e, now_ms),
                }
            }
            State::Wait(w) => {
                match self
                    .effective_input(&w.io, &input, id, now_ms, None)
                    .and_then(|eff| w.until_ms(&eff, now_ms))
                {
                    Ok(until_ms) => {
                        if let Some(f) = self.snap.frames.get_mut(&id) {
                            f.step = Step::Wait { until_ms };
                        }
                    }
                    Err(e) => self.fail_state(id, e, now_ms),
                }
            }
            State::Task(t) => {
                let key = format!("f{id}/{name}/{entries}/{attempt}");
                let (resource, callback) = match parse_resource(&t.resource) {
                    Ok(r) => r,
                    Err(e) => return self.fail_state(id, e, now_ms),
                };
                let token = callback.then(|| {
                    let nonce = (self.ids)();
                    encode_token(&self.ctx.id, &key, &nonce)
                });
                let prepared = self
                    .effective_input(&t.io, &input, id, now_ms, token.as_deref())
                    .and_then(|eff| {
                        let timeout = t.timeout(&input)?;
                        let heartbeat = t.heartbeat(&input)?;
                        let (resource, eff) = resolve_lambda_invoke(resource, eff)?;
                        Ok((resource, eff, timeout, heartbeat))
                    });
                let (resource, eff, timeout, heartbeat) = match prepared {
                    Ok(p) => p,
                    Err(e) => return self.fail_state(id, e, now_ms),
                };
                if let Resource::Event { name: event } = &resource
                    && let Some(queue) = self.snap.events.get_mut(event)
                    && !queue.is_empty()
                {
                    // An event raised before the step waited for it.
                    let body = queue.remove(0);
                    if queue.is_empty() {
                        self.snap.events.remove(event);
                    }
                    self.events.push((
                        "TaskScheduled".into(),
                        json!({"resourceType": "event", "resource": event, "parameters": text(&eff), "path": self.path_of(id)}),
                    ));
                    return self.task_succeeded(id, &t.clone(), &resource, body, now_ms);
                }
                let activation_id = (self.ids)();
                self.events.push((
                    "TaskScheduled".into(),
                    json!({"resourceType": resource_type(&resource), "resource": resource_name(&resource), "parameters": text(&eff), "timeoutInSeconds": timeout, "heartbeatInSeconds": heartbeat, "activationId": activation_id, "path": self.path_of(id)}),
                ));
                let step = TaskStep {
                    key,
                    activation_id,
                    resource,
                    input: eff,
                    token,
                    deadline_ms: timeout.map(|s| now_ms.saturating_add(s.saturating_mul(1000))),
                    heartbeat_s: heartbeat,
                    heartbeat_due_ms: heartbeat
                        .map(|s| now_ms.saturating_add(s.saturating_mul(1000))),
                    invoked: false,
                };
                if let Some(f) = self.snap.frames.get_mut(&id) {
                    f.step = Step::Task(step);
                }
            }
            State::Parallel(p) => {
                let eff = match self.effective_input(&p.io, &input, id, now_ms, None) {
                    Ok(e) => e,
                    Err(e) => return self.fail_state(id, e, now_ms),
                };
                self.events.push((
                    "ParallelStateStarted".into(),
                    json!({"path": self.path_of(id)}),
                ));
                let parent_def = self.snap.frames[&id].def.clone();
                let mut children = Vec::new();
                for (i, branch) in p.branches.iter().enumerate() {
                    let mut def = parent_def.clone();
                    def.push(Seg::Branch(name.clone(), i));
                    let child = self.new_frame(
                        Some((id, i)),
                        def,
                        branch.start_at.clone(),
                        eff.clone(),
                        now_ms,
                    );
                    children.push(Some(child));
                }
                let n = children.len();
                if let Some(f) = self.snap.frames.get_mut(&id) {
                    f.step = Step::Parallel {
                        children,
                        results: vec![None; n],
                    };
                }
                if n == 0 {
                    self.parallel_done(id, now_ms);
                }
            }
            State::Map(m) => {
                let ctx = self.context(id, now_ms, None);
                // For a Map this is InputPath only: ItemSelector applies per item.
                let prepared =
                    m.io.effective_input(&input, &ctx)
                        .and_then(|eff| Ok((m.items(&eff, &ctx)?, m.concurrency(&eff)?, eff)));
                let (items, concurrency, eff) = match prepared {
                    Ok((items, _, _)) if items.len() > MAX_MAP_ITEMS => {
                        let cause = format!(
                            "a Map takes at most {MAX_MAP_ITEMS} items, not {}",
                            items.len()
                        );
                        return self.fail_state(id, runtime(cause), now_ms);
                    }
                    Ok(p) => p,
                    Err(e) => return self.fail_state(id, e, now_ms),
                };
                self.events.push((
                    "MapStateStarted".into(),
                    json!({"length": items.len(), "path": self.path_of(id)}),
                ));
                let n = items.len();
                if let Some(f) = self.snap.frames.get_mut(&id) {
                    f.step = Step::Map {
                        items,
                        next: 0,
                        concurrency,
                        running: Vec::new(),
                        results: vec![None; n],
                        failed: 0,
                        effective: eff,
                    };
                }
                self.map_fill(id, now_ms);
            }
        }
    }

    /// Starts Map iterations up to the concurrency limit; ends the Map when all are done.
    fn map_fill(&mut self, id: u64, now_ms: u64) {
        let name = match self.snap.frames.get(&id) {
            Some(f) => f.state.clone(),
            None => return,
        };
        let Some(State::Map(m)) = self.state_of(id).cloned() else {
            return;
        };
        let ctx = self.context(id, now_ms, None);
        loop {
            let Some(f) = self.snap.frames.get(&id) else {
                return;
            };
            let Step::Map {
                items,
                next,
                concurrency,
                running,
                results,
                effective,
                ..
            } = &f.step
            else {
                return;
            };
            let limit = if *concurrency == 0 {
                usize::MAX
            } else {
                *concurrency as usize
            };
            if *next >= items.len() || running.len() >= limit {
                if running.is_empty() && *next >= items.len() {
                    let results: Vec<Value> = results
                        .iter()
                        .map(|r| r.clone().unwrap_or(Value::Null))
                        .collect();
                    return self.compound_done(id, Value::Array(results), now_ms);
                }
                return;
            }
            let index = *next;
            let mut def = f.def.clone();
            def.push(Seg::Processor(name.clone()));
            let input = match m.item_input(effective, &items[index], index, &ctx) {
                Ok(i) => i,
                Err(e) => return self.fail_state(id, e, now_ms),
            };
            self.events.push((
                "MapIterationStarted".into(),
                json!({"name": name, "index": index}),
            ));
            let child = self.new_frame(
                Some((id, index)),
                def,
                m.processor.start_at.clone(),
                input,
                now_ms,
            );
            if let Some(Step::Map { next, running, .. }) =
                self.snap.frames.get_mut(&id).map(|f| &mut f.step)
            {
                *next += 1;
                running.push((index, child));
            }
        }
    }

    fn parallel_done(&mut self, id: u64, now_ms: u64) {
        let Some(Step::Parallel { results, .. }) = self.snap.frames.get(&id).map(|f| &f.step)
        else {
            return;
        };
        if results.iter().any(Option::is_none) {
            return;
        }
        let out: Vec<Value> = results
            .iter()
            .map(|r| r.clone().unwrap_or(Value::Null))
            .collect();
        self.events.push((
            "ParallelStateSucceeded".into(),
            json!({"path": self.path_of(id)}),
        ));
        self.compound_done(id, Value::Array(out), now_ms);
    }

    /// A Parallel or Map state's result is ready: ResultSelector, ResultPath, OutputPath.
    fn compound_done(&mut self, id: u64, result: Value, now_ms: u64) {
        let Some(f) = self.snap.frames.get(&id) else {
            return;
        };
        let (name, input) = (f.state.clone(), f.input.clone());
        if matches!(f.step, Step::Map { .. }) {
            self.events.push((
                "MapStateSucceeded".into(),
                json!({"path": self.path_of(id)}),
            ));
        }
        let Some(state) = self.state_of(id).cloned() else {
            return;
        };
        let next = state.next().cloned().unwrap_or(Next::End);
        match state
            .io()
            .output(&input, result, &self.context(id, now_ms, None))
        {
            Ok(out) => self.exit(id, &name, state.kind(), out, &next, now_ms),
            Err(e) => self.fail_state(id, e, now_ms),
        }
    }

    /// The frame leaves its state with `out` for `next`.
    fn exit(&mut self, id: u64, name: &str, kind: &str, out: Value, next: &Next, now_ms: u64) {
        self.events.push((
            format!("{kind}StateExited"),
            json!({"name": name, "output": text(&out), "path": self.path_of(id)}),
        ));
        match next {
            Next::Next(state) => {
                if let Some(f) = self.snap.frames.get_mut(&id) {
                    f.state = state.clone();
                    f.input = out;
                    f.step = Step::Enter { retry: false };
                }
            }
            Next::End => self.frame_done(id, out, now_ms),
        }
    }

    /// A frame reached its end: the run's, a branch's or an iteration's result.
    fn frame_done(&mut self, id: u64, out: Value, now_ms: u64) {
        let Some(frame) = self.snap.frames.remove(&id) else {
            return;
        };
        let Some((parent, index)) = frame.parent else {
            self.events
                .push(("ExecutionSucceeded".into(), json!({"output": text(&out)})));
            self.snap.frames.clear();
            self.finish = Some(Finish::Succeeded(out));
            return;
        };
        let Some(p) = self.snap.frames.get_mut(&parent) else {
            return;
        };
        match &mut p.step {
            Step::Parallel { children, results } => {
                children[index] = None;
                results[index] = Some(out);
                self.parallel_done(parent, now_ms);
            }
            Step::Map {
                running, results, ..
            } => {
                running.retain(|(i, _)| *i != index);
                results[index] = Some(out);
                let name = p.state.clone();
                self.events.push((
                    "MapIterationSucceeded".into(),
                    json!({"name": name, "index": index}),
                ));
                self.map_fill(parent, now_ms);
            }
            _ => {}
        }
    }

    /// The frame failed where nothing catches (a Fail state, or an error no catcher took):
    /// its parent's state fails with the same error; the top frame fails the run.
    fn frame_failed(&mut self, id: u64, err: StateError, now_ms: u64) {
        self.drop_children(id);
        let Some(frame) = self.snap.frames.remove(&id) else {
            return;
        };
        let Some((parent, index)) = frame.parent else {
            self.events.push((
                "ExecutionFailed".into(),
                json!({"error": err.error, "cause": err.cause}),
            ));
            self.snap.frames.clear();
            self.finish = Some(Finish::Failed {
                error: err.error,
                cause: err.cause,
            });
            return;
        };
        let tolerated = match self.snap.frames.get_mut(&parent).map(|p| &mut p.step) {
            Some(Step::Map {
                running,
                results,
                failed,
                items,
                ..
            }) => {
                running.retain(|(i, _)| *i != index);
                *failed += 1;
                results[index] = Some(json!({"Error": err.error, "Cause": err.cause}));
                let total = items.len() as u64;
                let failed = *failed;
                let effective = match self.snap.frames.get(&parent).map(|p| &p.step) {
                    Some(Step::Map { effective, .. }) => effective.clone(),
                    _ => Value::Null,
                };
                match self.state_of(parent) {
                    Some(State::Map(m)) => match m.tolerated_failures(&effective) {
                        Ok((count, percentage)) => {
                            count.is_some_and(|c| failed <= c)
                                || percentage
                                    .is_some_and(|p| (failed as f64) * 100.0 <= p * total as f64)
                        }
                        Err(_) => false,
                    },
                    _ => false,
                }
            }
            Some(Step::Parallel { children, .. }) => {
                children[index] = None;
                false
            }
            _ => false,
        };
        if tolerated {
            let name = self.snap.frames[&parent].state.clone();
            self.events.push((
                "MapIterationFailed".into(),
                json!({"name": name, "index": index}),
            ));
            self.map_fill(parent, now_ms);
            return;
        }
        let kind = match self.snap.frames.get(&parent).map(|p| &p.step) {
            Some(Step::Map { .. }) => "Map",
            _ => "Parallel",
        };
        self.events.push((
            format!("{kind}StateFailed"),
            json!({"path": self.path_of(parent)}),
        ));
        let err = if kind == "Map" && self.has_tolerance(parent) {
            StateError {
                error: "States.ExceedToleratedFailureThreshold".into(),
                cause: "The Map's failed iterations exceeded its tolerated failures.".into(),
            }
        } else {
            err
        };
        self.fail_state(parent, err, now_ms);
    }

    fn has_tolerance(&self, id: u64) -> bool {
        matches!(self.state_of(id), Some(State::Map(m)) if m.tolerated_failure_count.is_some()
            || m.tolerated_failure_percentage.is_some()
            || m.tolerated_failure_count_path.is_some()
            || m.tolerated_failure_percentage_path.is_some())
    }

    /// Removes the frames under a Parallel or Map (their steps' results are ignored).
    fn drop_children(&mut self, id: u64) {
        let kids: Vec<u64> = match self.snap.frames.get(&id).map(|f| &f.step) {
            Some(Step::Parallel { children, .. }) => children.iter().flatten().copied().collect(),
            Some(Step::Map { running, .. }) => running.iter().map(|(_, f)| *f).collect(),
            _ => Vec::new(),
        };
        for k in kids {
            self.drop_children(k);
            self.snap.frames.remove(&k);
        }
    }

    /// The frame's current state failed: retried, caught or passed up.
    fn fail_state(&mut self, id: u64, err: StateError, now_ms: u64) {
        self.drop_children(id);
        let Some(state) = self.state_of(id).cloned() else {
            return self.frame_failed(id, err, now_ms);
        };
        // States.Runtime and States.DataLimitExceeded are terminal: no retrier or catcher.
        let terminal = err.error == "States.Runtime" || err.error == "States.DataLimitExceeded";
        if !terminal && let Some((i, r)) = asl::retrier_for(state.retry(), &err.error) {
            let done = self
                .snap
                .frames
                .get(&id)
                .and_then(|f| f.retries.get(i).copied())
                .unwrap_or(0);
            if done < r.max_attempts {
                let delay = r.delay_ms(done + 1, (self.random)());
                if let Some(f) = self.snap.frames.get_mut(&id) {
                    if f.retries.len() <= i {
                        f.retries.resize(i + 1, 0);
                    }
                    f.retries[i] += 1;
                    f.step = Step::Retry {
                        until_ms: now_ms.saturating_add(delay),
                    };
                }
                return;
            }
        }
        if !terminal && let Some(c) = asl::catcher_for(state.catch(), &err.error) {
            let Some(f) = self.snap.frames.get(&id) else {
                return;
            };
            let (name, input) = (f.state.clone(), f.input.clone());
            match c.output(&input, &err) {
                Ok(out) => {
                    let next = Next::Next(c.next.clone());
                    return self.exit(id, &name, state.kind(), out, &next, now_ms);
                }
                Err(e) => return self.frame_failed(id, e, now_ms),
            }
        }
        self.frame_failed(id, err, now_ms)
    }

    /// A task step's invocation (or nested run, or event) ended. The caller then calls
    /// [`Engine::run`] (once for a whole batch of results and signals).
    pub fn step_result(&mut self, frame: u64, key: &str, result: StepResult, now_ms: u64) {
        let Some(Step::Task(t)) = self.snap.frames.get(&frame).map(|f| f.step.clone()) else {
            return;
        };
        if t.key != key {
            return;
        }
        let Some(State::Task(state)) = self.state_of(frame).cloned() else {
            return;
        };
        match result {
            StepResult::Done(_) if t.token.is_some() => {
                // A callback step's invocation is done; its token ends it.
                if let Some(Step::Task(t)) = self.snap.frames.get_mut(&frame).map(|f| &mut f.step) {
                    t.invoked = true;
                    self.dirty = true;
                }
            }
            StepResult::Done(value) => {
                self.task_succeeded(frame, &state, &t.resource, value, now_ms)
            }
            StepResult::Failed(e) => self.task_failed(frame, &t.resource, e, now_ms),
        }
    }

    fn task_succeeded(
        &mut self,
        frame: u64,
        state: &asl::Task,
        resource: &Resource,
        value: Value,
        now_ms: u64,
    ) {
        self.events.push((
            "TaskSucceeded".into(),
            json!({"resourceType": resource_type(resource), "resource": resource_name(resource), "output": text(&value), "path": self.path_of(frame)}),
        ));
        let Some(f) = self.snap.frames.get(&frame) else {
            return;
        };
        let (name, input) = (f.state.clone(), f.input.clone());
        match state
            .io
            .output(&input, value, &self.context(frame, now_ms, None))
        {
            Ok(out) => self.exit(frame, &name, "Task", out, &state.next, now_ms),
            Err(e) => self.fail_state(frame, e, now_ms),
        }
    }

    fn task_failed(&mut self, frame: u64, resource: &Resource, e: StateError, now_ms: u64) {
        self.events.push((
            "TaskFailed".into(),
            json!({"resourceType": resource_type(resource), "resource": resource_name(resource), "error": e.error, "cause": e.cause, "path": self.path_of(frame)}),
        ));
        self.fail_state(frame, e, now_ms);
    }

    /// A signal from the inbox; returns whether it matched anything. The caller then calls
    /// [`Engine::run`].
    pub fn signal(&mut self, signal: &Value, now_ms: u64) -> bool {
        let kind = signal
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let token = signal.get("token").and_then(Value::as_str);
        match kind {
            "success" | "failure" | "heartbeat" => {
                let Some(token) = token else { return false };
                let Some((frame, t)) = Engine::tasks(self.snap)
                    .find(|(_, t)| t.token.as_deref() == Some(token))
                    .map(|(f, t)| (f, t.clone()))
                else {
                    return false;
                };
                let Some(State::Task(state)) = self.state_of(frame).cloned() else {
                    return false;
                };
                match kind {
                    "success" => {
                        let output = signal.get("output").cloned().unwrap_or(Value::Null);
                        self.task_succeeded(frame, &state, &t.resource, output, now_ms);
                    }
                    "failure" => {
                        let err = StateError {
                            error: signal
                                .get("error")
                                .and_then(Value::as_str)
                                .unwrap_or("States.TaskFailed")
                                .to_string(),
                            cause: signal
                                .get("cause")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        };
                        self.task_failed(frame, &t.resource, err, now_ms);
                    }
                    _ => {
                        if let Some(Step::Task(t)) =
                            self.snap.frames.get_mut(&frame).map(|f| &mut f.step)
                        {
                            t.heartbeat_due_ms = t
                                .heartbeat_s
                                .map(|s| now_ms.saturating_add(s.saturating_mul(1000)));
                        }
                    }
                }
                true
            }
            "event" => {
                let name = signal
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let body = signal.get("body").cloned().unwrap_or(Value::Null);
                let waiting = Engine::tasks(self.snap)
                    .find(|(_, t)| matches!(&t.resource, Resource::Event { name: n } if n == name))
                    .map(|(f, t)| (f, t.clone()));
                match waiting {
                    Some((frame, t)) => {
                        if let Some(State::Task(state)) = self.state_of(frame).cloned() {
                            self.task_succeeded(frame, &state, &t.resource, body, now_ms);
                        }
                    }
                    None => self
                        .snap
                        .events
                        .entry(name.to_string())
                        .or_default()
                        .push(body),
                }
                true
            }
            "stop" => {
                let error = signal
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let cause = signal
                    .get("cause")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.events.push((
                    "ExecutionAborted".into(),
                    json!({"error": error, "cause": cause}),
                ));
                self.snap.frames.clear();
                self.finish = Some(Finish::Aborted {
                    error: error.to_string(),
                    cause: cause.to_string(),
                });
                true
            }
            _ => false,
        }
    }

    /// A frame's place for history readers: `""` at the top, else the states and indexes
    /// above it (`Fan[2]/Each[7]`).
    fn path_of(&self, id: u64) -> String {
        let mut parts = Vec::new();
        let mut up = self.snap.frames.get(&id).and_then(|f| f.parent);
        while let Some((p, i)) = up {
            let Some(pf) = self.snap.frames.get(&p) else {
                break;
            };
            parts.push(format!("{}[{i}]", pf.state));
            up = pf.parent;
        }
        parts.reverse();
        parts.join("/")
    }
}

/// A task's resource, and whether it waits for a token.
pub fn parse_resource(resource: &str) -> Result<(Resource, bool), StateError> {
    let (base, callback) = match resource.strip_suffix(".waitForTaskToken") {
        Some(b) => (b, true),
        None => (resource, false),
    };
    let r = if let Some(rest) = base.strip_prefix("arn:aws:states:::") {
        match rest {
            "lambda:invoke" => Resource::Action {
                name: String::new(),
                lambda: true,
            },
            "states:startExecution.sync" | "states:startExecution.sync:2" if !callback => {
                Resource::Workflow {
                    name: String::new(),
                }
            }
            _ => {
                return Err(runtime(format!(
                    "the resource \"{resource}\" is not supported"
                )));
            }
        }
    } else if base.starts_with("arn:aws:lambda:") {
        let name = base
            .split(':')
            .nth(6)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| runtime(format!("the resource \"{resource}\" names no function")))?;
        Resource::Action {
            name: name.to_string(),
            lambda: false,
        }
    } else if let Some(name) = base.strip_prefix("workflow:") {
        Resource::Workflow {
            name: name.to_string(),
        }
    } else if let Some(name) = base.strip_prefix("event:") {
        Resource::Event {
            name: name.to_string(),
        }
    } else if base.is_empty() || base.contains(':') {
        return Err(runtime(format!(
            "the resource \"{resource}\" is not supported"
        )));
    } else {
        Resource::Action {
            name: base.to_string(),
            lambda: false,
        }
    };
    if callback && !matches!(r, Resource::Action { .. }) {
        return Err(runtime(format!(
            "\"{resource}\": only an action can wait for a task token"
        )));
    }
    Ok((r, callback))
}

/// `lambda:invoke` and `startExecution.sync` take what they run from their parameters.
fn resolve_lambda_invoke(resource: Resource, eff: Value) -> Result<(Resource, Value), StateError> {
    match resource {
        Resource::Action { name, lambda: true } if name.is_empty() => {
            let function = eff
                .get("FunctionName")
                .and_then(Value::as_str)
                .ok_or_else(|| runtime("lambda:invoke needs Parameters.FunctionName"))?;
            let name = function
                .strip_prefix("arn:aws:lambda:")
                .and_then(|r| r.split(':').nth(3))
                .unwrap_or(function)
                .to_string();
            let payload = eff.get("Payload").cloned().unwrap_or_else(|| json!({}));
            Ok((Resource::Action { name, lambda: true }, payload))
        }
        Resource::Workflow { name } if name.is_empty() => {
            let arn = eff
                .get("StateMachineArn")
                .and_then(Value::as_str)
                .ok_or_else(|| runtime("startExecution needs Parameters.StateMachineArn"))?;
            let name = arn.rsplit(':').next().unwrap_or(arn).to_string();
            let input = match eff.get("Input") {
                Some(Value::String(s)) => {
                    serde_json::from_str(s).unwrap_or(Value::String(s.clone()))
                }
                Some(v) => v.clone(),
                None => json!({}),
            };
            Ok((Resource::Workflow { name }, input))
        }
        other => Ok((other, eff)),
    }
}

pub fn resource_type(r: &Resource) -> &'static str {
    match r {
        Resource::Action { lambda: true, .. } => "lambda",
        Resource::Action { .. } => "action",
        Resource::Workflow { .. } => "states",
        Resource::Event { .. } => "event",
    }
}

pub fn resource_name(r: &Resource) -> String {
    match r {
        Resource::Action { name, .. } | Resource::Workflow { name } | Resource::Event { name } => {
            name.clone()
        }
    }
}

/// A task token: the execution, the step and a nonce, base64url.
pub fn encode_token(execution: &str, key: &str, nonce: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{execution}.{key}.{nonce}"))
}

/// The execution id a token names, if it is one.
pub fn token_execution(token: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (exec, _) = text.split_once('.')?;
    (exec.len() == 32 && exec.bytes().all(|b| b.is_ascii_hexdigit())).then(|| exec.to_string())
}

/// A JSON value as the string Step Functions' history carries.
fn text(v: &Value) -> String {
    v.to_string()
}

/// Ms since the epoch as RFC 3339 (`2026-12-06T19:00:00.123Z`).
pub fn iso(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The error a failed record gives (decision 0028): Lambda's `errorType`, a `name`, or
/// `States.TaskFailed`; a timeout is `States.Timeout`.
pub fn record_error(result: &Value, timed_out: bool) -> StateError {
    if timed_out {
        return StateError {
            error: "States.Timeout".into(),
            cause: error_text(result),
        };
    }
    let err = result.get("error").unwrap_or(result);
    if let Value::Object(o) = err {
        let name = o
            .get("errorType")
            .or_else(|| o.get("name"))
            .and_then(Value::as_str);
        if let Some(name) = name {
            let cause = o
                .get("errorMessage")
                .or_else(|| o.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| err.to_string());
            return StateError {
                error: name.to_string(),
                cause,
            };
        }
    }
    StateError {
        error: "States.TaskFailed".into(),
        cause: error_text(result),
    }
}

fn error_text(result: &Value) -> String {
    match result.get("error") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => result.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of `definition` in a test: ids `id1`, `id2`, ..., no jitter.
    struct Run {
        def: Definition,
        ctx: ExecutionContext,
        snap: Snapshot,
        n: u64,
        events: Vec<Event>,
        finish: Option<Finish>,
    }

    impl Run {
        fn new(definition: Value, input: Value) -> Run {
            let def = asl::parse(&definition).unwrap();
            let ctx = ExecutionContext {
                id: "0123456789abcdef0123456789abcdef".into(),
                name: "run".into(),
                workflow: "wf".into(),
                input,
                start_ms: 1_000,
                with_input: true,
            };
            let mut run = Run {
                def,
                ctx,
                snap: Snapshot::default(),
                n: 0,
                events: Vec::new(),
                finish: None,
            };
            run.with(1_000, |e| {
                e.begin(1_000);
                e.run(1_000);
            });
            run
        }

        fn with(&mut self, now: u64, f: impl FnOnce(&mut Engine<'_>)) {
            let mut n = self.n;
            let mut ids = || {
                n += 1;
                format!("id{n}")
            };
            let mut random = || 0.5;
            let mut engine = Engine {
                def: &self.def,
                ctx: &self.ctx,
                snap: &mut self.snap,
                events: Vec::new(),
                finish: None,
                dirty: false,
                more: false,
                ids: &mut ids,
                random: &mut random,
            };
            f(&mut engine);
            engine.run(now);
            self.events.extend(engine.events);
            if engine.finish.is_some() {
                self.finish = engine.finish;
            }
            self.n = n;
        }

        fn tasks(&self) -> Vec<(u64, TaskStep)> {
            Engine::tasks(&self.snap)
                .map(|(f, t)| (f, t.clone()))
                .collect()
        }

        fn only_task(&self) -> (u64, TaskStep) {
            let tasks = self.tasks();
            assert_eq!(tasks.len(), 1, "{tasks:?}");
            tasks[0].clone()
        }

        fn finish_task(&mut self, now: u64, result: StepResult) {
            let (frame, t) = self.only_task();
            self.with(now, |e| e.step_result(frame, &t.key, result, now));
        }

        fn kinds(&self) -> Vec<&str> {
            self.events.iter().map(|(k, _)| k.as_str()).collect()
        }

        /// The snapshot through JSON and back, as a restarted runner reads it.
        fn reload(&mut self) {
            let json = serde_json::to_value(&self.snap).unwrap();
            self.snap = serde_json::from_value(json).unwrap();
        }
    }

    fn failed(error: &str) -> StepResult {
        StepResult::Failed(StateError {
            error: error.into(),
            cause: "boom".into(),
        })
    }

    #[test]
    fn a_chain_of_pass_states_runs_at_once() {
        let run = Run::new(
            json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Result": 1, "ResultPath": "$.a", "Next": "B"},
                "B": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.a, 2)"}, "ResultPath": "$.b", "Next": "C"},
                "C": {"Type": "Succeed", "OutputPath": "$.b"}
            }}),
            json!({"x": true}),
        );
        assert_eq!(run.finish, Some(Finish::Succeeded(json!({"sum": 3}))));
        assert_eq!(
            run.kinds(),
            [
                "ExecutionStarted",
                "PassStateEntered",
                "PassStateExited",
                "PassStateEntered",
                "PassStateExited",
                "SucceedStateEntered",
                "SucceedStateExited",
                "ExecutionSucceeded"
            ]
        );
        assert!(run.snap.frames.is_empty());
    }

    #[test]
    fn a_task_waits_for_its_step_then_applies_its_paths() {
        let mut run = Run::new(
            json!({"StartAt": "T", "States": {
                "T": {"Type": "Task", "Resource": "hello", "Parameters": {"name.$": "$.who"},
                      "ResultSelector": {"greeting.$": "$.msg"}, "ResultPath": "$.out", "End": true}
            }}),
            json!({"who": "ada"}),
        );
        let (_, t) = run.only_task();
        assert_eq!(t.input, json!({"name": "ada"}));
        assert_eq!(
            t.resource,
            Resource::Action {
                name: "hello".into(),
                lambda: false
            }
        );
        assert!(run.finish.is_none());
        run.reload();
        run.finish_task(2_000, StepResult::Done(json!({"msg": "hi ada"})));
        assert_eq!(
            run.finish,
            Some(Finish::Succeeded(
                json!({"who": "ada", "out": {"greeting": "hi ada"}})
            ))
        );
    }

    #[test]
    fn retries_wait_their_backoff_then_the_error_fails_the_run() {
        let mut run = Run::new(
            json!({"StartAt": "T", "States": {
                "T": {"Type": "Task", "Resource": "flaky", "End": true,
                      "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 3}]}
            }}),
            json!({}),
        );
        let first = run.only_task().1.key;
        run.finish_task(1_000, failed("States.TaskFailed"));
        assert!(run.tasks().is_empty());
        assert_eq!(Engine::wake_ms(&run.snap), Some(2_000));
        run.with(1_999, |e| e.run(1_999));
        assert!(run.tasks().is_empty());
        run.with(2_000, |e| e.run(2_000));
        let second = run.only_task().1.key;
        assert_ne!(first, second, "each attempt is its own step");
        run.finish_task(2_000, failed("States.TaskFailed"));
        assert_eq!(Engine::wake_ms(&run.snap), Some(5_000));
        run.with(5_000, |e| e.run(5_000));
        run.finish_task(5_000, failed("States.TaskFailed"));
        assert_eq!(
            run.finish,
            Some(Finish::Failed {
                error: "States.TaskFailed".into(),
                cause: "boom".into()
            })
        );
    }

    #[test]
    fn a_catcher_takes_the_error_to_its_state() {
        let mut run = Run::new(
            json!({"StartAt": "T", "States": {
                "T": {"Type": "Task", "Resource": "x", "Next": "Ok",
                      "Catch": [{"ErrorEquals": ["Custom"], "Next": "Oops", "ResultPath": "$.err"}]},
                "Ok": {"Type": "Succeed"},
                "Oops": {"Type": "Pass", "End": true}
            }}),
            json!({"a": 1}),
        );
        run.finish_task(1_000, failed("Custom"));
        assert_eq!(
            run.finish,
            Some(Finish::Succeeded(
                json!({"a": 1, "err": {"Error": "Custom", "Cause": "boom"}})
            ))
        );
    }

    #[test]
    fn a_choice_picks_its_rule_or_fails_without_default() {
        let def = json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}]},
            "Big": {"Type": "Succeed"}
        }});
        let run = Run::new(def.clone(), json!({"n": 11}));
        assert_eq!(run.finish, Some(Finish::Succeeded(json!({"n": 11}))));
        let run = Run::new(def, json!({"n": 1}));
        assert!(
            matches!(&run.finish, Some(Finish::Failed { error, .. }) if error == "States.NoChoiceMatched")
        );
    }

    #[test]
    fn a_parallel_state_collects_its_branches_in_order() {
        let mut run = Run::new(
            json!({"StartAt": "P", "States": {
                "P": {"Type": "Parallel", "End": true, "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "a", "End": true}}},
                    {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": "b", "End": true}}}
                ]}
            }}),
            json!({}),
        );
        assert!(
            run.events
                .iter()
                .any(|(k, d)| k == "PassStateEntered" && d["path"] == "P[1]")
        );
        run.finish_task(1_000, StepResult::Done(json!("a")));
        assert_eq!(run.finish, Some(Finish::Succeeded(json!(["a", "b"]))));
    }

    #[test]
    fn a_failed_branch_fails_the_parallel_state_and_drops_the_others() {
        let mut run = Run::new(
            json!({"StartAt": "P", "States": {
                "P": {"Type": "Parallel", "End": true, "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "a", "End": true}}},
                    {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "b", "End": true}}}
                ]}
            }}),
            json!({}),
        );
        let tasks = run.tasks();
        assert_eq!(tasks.len(), 2);
        let (frame, t) = tasks[0].clone();
        run.with(1_000, |e| {
            e.step_result(frame, &t.key, failed("Bad"), 1_000)
        });
        assert!(matches!(&run.finish, Some(Finish::Failed { error, .. }) if error == "Bad"));
        assert!(run.tasks().is_empty());
    }

    #[test]
    fn a_map_keeps_to_its_concurrency_and_orders_results() {
        let mut run = Run::new(
            json!({"StartAt": "M", "States": {
                "M": {"Type": "Map", "ItemsPath": "$.xs", "MaxConcurrency": 2, "End": true,
                      "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "double", "End": true}}},
                      "ItemSelector": {"x.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"}}
            }}),
            json!({"xs": [1, 2, 3, 4, 5]}),
        );
        let mut done = 0;
        while run.finish.is_none() {
            let tasks = run.tasks();
            assert!(tasks.len() <= 2, "{} in flight", tasks.len());
            // Finish the newest first, so results arrive out of order.
            let (frame, t) = tasks.last().unwrap().clone();
            let x = t.input["x"].as_i64().unwrap();
            run.with(1_000, |e| {
                e.step_result(frame, &t.key, StepResult::Done(json!(x * 2)), 1_000)
            });
            run.reload();
            done += 1;
        }
        assert_eq!(done, 5);
        assert_eq!(run.finish, Some(Finish::Succeeded(json!([2, 4, 6, 8, 10]))));
    }

    #[test]
    fn a_wait_state_sleeps_until_its_time() {
        let mut run = Run::new(
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "End": true}}}),
            json!({"k": 1}),
        );
        assert_eq!(Engine::wake_ms(&run.snap), Some(11_000));
        run.with(10_999, |e| e.run(10_999));
        assert!(run.finish.is_none());
        run.reload();
        run.with(11_000, |e| e.run(11_000));
        assert_eq!(run.finish, Some(Finish::Succeeded(json!({"k": 1}))));
    }

    #[test]
    fn a_callback_step_ends_only_with_its_token() {
        let mut run = Run::new(
            json!({"StartAt": "T", "States": {
                "T": {"Type": "Task", "Resource": "notify.waitForTaskToken",
                      "Parameters": {"token.$": "$$.Task.Token"}, "End": true}
            }}),
            json!({}),
        );
        let (_, t) = run.only_task();
        let token = t.token.clone().unwrap();
        assert_eq!(t.input["token"], json!(token));
        assert_eq!(
            token_execution(&token).as_deref(),
            Some(run.ctx.id.as_str())
        );
        run.finish_task(1_000, StepResult::Done(json!({"sent": true})));
        assert!(
            run.finish.is_none(),
            "the invocation ending does not end the step"
        );
        assert!(run.only_task().1.invoked);
        let matched = std::cell::Cell::new(false);
        run.with(2_000, |e| {
            matched.set(e.signal(
                &json!({"type": "success", "token": "other", "output": 1}),
                2_000,
            ));
        });
        assert!(!matched.get());
        run.with(2_000, |e| {
            e.signal(
                &json!({"type": "success", "token": token, "output": {"ok": 1}}),
                2_000,
            );
        });
        assert_eq!(run.finish, Some(Finish::Succeeded(json!({"ok": 1}))));
    }

    #[test]
    fn a_heartbeat_timeout_fails_a_silent_callback() {
        let mut run = Run::new(
            json!({"StartAt": "T", "States": {
                "T": {"Type": "Task", "Resource": "notify.waitForTaskToken", "HeartbeatSeconds": 5,
                      "TimeoutSeconds": 60, "End": true}
            }}),
            json!({}),
        );
        let token = run.only_task().1.token.unwrap();
        run.with(4_000, |e| {
            e.signal(&json!({"type": "heartbeat", "token": token}), 4_000);
        });
        assert_eq!(Engine::wake_ms(&run.snap), Some(9_000));
        run.with(9_000, |e| e.run(9_000));
        assert!(
            matches!(&run.finish, Some(Finish::Failed { error, .. }) if error == "States.HeartbeatTimeout")
        );
    }

    #[test]
    fn an_event_step_takes_an_event_raised_before_or_after() {
        let def = json!({"StartAt": "E", "States": {"E": {"Type": "Task", "Resource": "event:approve", "End": true}}});
        let mut run = Run::new(def.clone(), json!({}));
        run.with(1_000, |e| {
            e.signal(
                &json!({"type": "event", "name": "approve", "body": {"by": "bob"}}),
                1_000,
            );
        });
        assert_eq!(run.finish, Some(Finish::Succeeded(json!({"by": "bob"}))));

        let mut run = Run::new(
            json!({"StartAt": "W", "States": {
                "W": {"Type": "Wait", "Seconds": 1, "Next": "E"},
                "E": {"Type": "Task", "Resource": "event:approve", "End": true}
            }}),
            json!({}),
        );
        run.with(1_500, |e| {
            e.signal(
                &json!({"type": "event", "name": "approve", "body": 7}),
                1_500,
            );
        });
        assert!(run.finish.is_none());
        run.with(2_000, |e| e.run(2_000));
        assert_eq!(run.finish, Some(Finish::Succeeded(json!(7))));
    }

    #[test]
    fn a_stop_aborts_and_timeouts_end_runs() {
        let mut run = Run::new(
            json!({"StartAt": "T", "TimeoutSeconds": 30, "States": {"T": {"Type": "Task", "Resource": "x", "End": true}}}),
            json!({}),
        );
        run.with(2_000, |e| {
            e.signal(&json!({"type": "stop", "error": "E", "cause": "C"}), 2_000);
        });
        assert_eq!(
            run.finish,
            Some(Finish::Aborted {
                error: "E".into(),
                cause: "C".into()
            })
        );

        let mut run = Run::new(
            json!({"StartAt": "T", "TimeoutSeconds": 30, "States": {"T": {"Type": "Task", "Resource": "x", "End": true}}}),
            json!({}),
        );
        assert_eq!(Engine::wake_ms(&run.snap), Some(31_000));
        run.with(31_000, |e| e.run(31_000));
        assert_eq!(run.finish, Some(Finish::TimedOut));
    }

    #[test]
    fn a_task_timeout_is_caught_as_states_timeout() {
        let mut run = Run::new(
            json!({"StartAt": "T", "States": {
                "T": {"Type": "Task", "Resource": "slow", "TimeoutSeconds": 2, "Next": "Done",
                      "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "Late", "ResultPath": null}]},
                "Done": {"Type": "Succeed"},
                "Late": {"Type": "Pass", "Result": "late", "End": true}
            }}),
            json!({}),
        );
        run.with(3_000, |e| e.run(3_000));
        assert_eq!(run.finish, Some(Finish::Succeeded(json!("late"))));
        // The step's late result changes nothing.
        assert!(run.tasks().is_empty());
    }

    #[test]
    fn resources_name_what_a_task_runs() {
        assert_eq!(
            parse_resource("arn:aws:lambda:us-east-1:000000000000:function:f").unwrap(),
            (
                Resource::Action {
                    name: "f".into(),
                    lambda: false
                },
                false
            )
        );
        assert_eq!(
            parse_resource("pkg/a.waitForTaskToken").unwrap(),
            (
                Resource::Action {
                    name: "pkg/a".into(),
                    lambda: false
                },
                true
            )
        );
        assert_eq!(
            parse_resource("workflow:child").unwrap(),
            (
                Resource::Workflow {
                    name: "child".into()
                },
                false
            )
        );
        assert!(parse_resource("arn:aws:states:::sqs:sendMessage").is_err());
        assert!(parse_resource("event:x.waitForTaskToken").is_err());
        let (r, eff) = resolve_lambda_invoke(
            Resource::Action { name: String::new(), lambda: true },
            json!({"FunctionName": "arn:aws:lambda:us-east-1:000000000000:function:f", "Payload": {"a": 1}}),
        )
        .unwrap();
        assert_eq!(
            r,
            Resource::Action {
                name: "f".into(),
                lambda: true
            }
        );
        assert_eq!(eff, json!({"a": 1}));
    }

    #[test]
    fn a_record_error_is_named_as_step_functions_names_it() {
        let e = record_error(
            &json!({"error": {"errorType": "ValueError", "errorMessage": "bad"}}),
            false,
        );
        assert_eq!((e.error.as_str(), e.cause.as_str()), ("ValueError", "bad"));
        let e = record_error(&json!({"error": "plain"}), false);
        assert_eq!(
            (e.error.as_str(), e.cause.as_str()),
            ("States.TaskFailed", "plain")
        );
        let e = record_error(&json!({"error": "too slow"}), true);
        assert_eq!(e.error, "States.Timeout");
    }
}
