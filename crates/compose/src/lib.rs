//! Compositions, run as the controller's [`Composer`]. Sequences: an action of kind
//! `sequence` names other actions; the output of each is the input of the next, and the
//! chain stops at the first that does not succeed.
//! Conductor actions (annotation `conductor`): the action's own code decides, step by step,
//! which action runs next (OpenWhisk's `{action, params, state}` continuations).
//!
//! **Invariant:** a sequence's invocation is journaled before its id is handed out, and its
//! record (written by the controller running it) clears that entry; a sequence whose
//! controller stops mid-way is recorded from the journal as interrupted (see the invoker).
//! Components are checked at create time (they exist, the creator may use them, no cycle, at
//! most `max_sequence_actions` atomic actions with nested sequences expanded) and again as
//! they run.
//!
//! **May not:** reach the bus, the invoker or a runtime: every step is an
//! [`Invocation`] through [`Controller::invoke_code`], and a nested composition runs here.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use gust_controller::{
    Composer, Controller, ControllerError, ExecPut, Invocation, InvokeOutcome, Prepared, Resolved,
    Wait, encode, prepare_input,
};
use gust_model::annotations::{CONDUCTOR, TOPMOST};
use gust_model::record::{annotation, record};
use gust_model::time::now_ms;
use gust_model::{
    Action, Activation, ActivationResponse, ActivationStatus, Cause, CauseKind, EncodedActivation,
    Exec, Identity, InvocationMessage, SealedParam, TraceParent,
};
use gust_store::PendingInvocation;
use gust_telemetry::spans;

mod conductor;
mod sequence;

use conductor::run_conductor;
use sequence::{check_sequence, run_components};
use serde_json::{Map, Value, json};

/// What a step knows of the composition that runs it.
#[derive(Debug, Clone)]
struct Parent {
    /// The composition's activation id and kind (the step record's `cause`).
    cause: Cause,
    /// Steps run so far by the outermost composition, nested ones included.
    steps: Arc<StepCounts>,
    /// The composition's span: the parent of each step's.
    span: TraceParent,
}

/// Where a composition starts: from a producer (a request, a trigger; its own cause, if
/// any), or as a step of another composition.
enum Origin {
    /// Its cause, the activation id its producer gave it (if any), and the trace context it
    /// came with (if any).
    Top(Option<Cause>, Option<String>, Option<TraceParent>),
    Nested(Parent),
}

/// What a composition has run, nested ones included, against OpenWhisk's caps: `n` atomic
/// actions, `2n + 1` runs of conductors' own code, and (Gust's, so a cycle made after the
/// create-time check ends) `n` nested compositions.
#[derive(Debug, Default)]
struct StepCounts {
    atomic: AtomicU64,
    conductor_runs: AtomicU64,
    compositions: AtomicU64,
}

/// What [`start`] returns.
type SequenceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<InvokeOutcome, ControllerError>> + Send + 'a>>;

/// How often a running sequence refreshes its journal entry (well within the clustered
/// sweep's 10 minutes).
const JOURNAL_REFRESH: Duration = Duration::from_secs(60);

/// Longest a sequence waits for one component's record beyond the component's own timeout.
const COMPONENT_GRACE: Duration = Duration::from_secs(60);

fn bad(msg: impl Into<String>) -> ControllerError {
    ControllerError::BadRequest(msg.into())
}

/// Whether invoking `action` runs a composition: a sequence, or a conductor action.
fn composes(action: &Action) -> bool {
    action.exec.is_sequence() || action.annotation_is_truthy(CONDUCTOR)
}

/// Sequences and conductor actions, as the controller's [`Composer`].
#[derive(Debug, Default)]
pub struct Compositions;

#[async_trait]
impl Composer for Compositions {
    fn kinds(&self) -> &'static [&'static str] {
        &[Exec::SEQUENCE]
    }

    fn composes(&self, action: &Action) -> bool {
        composes(action)
    }

    async fn check(
        &self,
        core: &Controller,
        who: &Identity,
        name: &str,
        exec: ExecPut,
    ) -> Result<Exec, ControllerError> {
        let components =
            check_sequence(core, who, name, exec.components.unwrap_or_default()).await?;
        Ok(Exec {
            kind: Exec::SEQUENCE.to_string(),
            code: None,
            binary: false,
            main: None,
            components: Some(components),
            http: false,
        })
    }

    async fn compose(
        &self,
        core: &Arc<Controller>,
        inv: Invocation<'_>,
    ) -> Result<InvokeOutcome, ControllerError> {
        let Prepared {
            mut input,
            mut secrets,
            ..
        } = prepare_input(inv.action, inv.params, inv.cause.is_none())?;
        add_secrets(&mut input, &mut secrets, inv.secrets);
        start(
            core,
            inv.caller,
            inv.action,
            Input { input, secrets },
            inv.wait,
            Origin::Top(inv.cause, inv.activation_id, inv.trace),
        )
        .await
    }
}

/// A composition's input: its parameters, and its secrets still sealed (a sequence's own and
/// a trigger's), which go to its first step (decision 0022).
struct Input {
    input: Map<String, Value>,
    secrets: Vec<SealedParam>,
}

/// Adds `added` (a producer's secrets) to `secrets`, over any parameter of the same name.
fn add_secrets(
    input: &mut Map<String, Value>,
    secrets: &mut Vec<SealedParam>,
    added: Vec<SealedParam>,
) {
    for s in added {
        input.remove(&s.key);
        secrets.retain(|t| t.key != s.key);
        secrets.push(s);
    }
}

/// Starts a sequence: journals it, runs it on its own task, and waits for its record
/// when the caller blocks.
///
/// A boxed `dyn Send` future, not an `async fn`: a component may be a sequence, so the
/// invocation future would otherwise contain itself.
fn start<'a>(
    core: &'a Arc<Controller>,
    who: &'a Identity,
    resolved: &'a Resolved,
    input: Input,
    wait: Wait,
    origin: Origin,
) -> SequenceFuture<'a> {
    Box::pin(async move {
        let action = resolved.action.clone();
        let (cause, trace) = match &origin {
            Origin::Top(cause, _, trace) => (cause.clone(), *trace),
            Origin::Nested(parent) => (Some(parent.cause.clone()), Some(parent.span)),
        };
        let Input { input, secrets } = input;
        let mut msg = core.new_message(who, &action, &input, Vec::new(), false, cause)?;
        msg.secrets = secrets.clone();
        msg.traceparent = Some(TraceParent::continuing(trace.as_ref()));
        if let Origin::Top(_, Some(id), _) = &origin {
            msg.activation_id = id.clone();
        }
        // Recovery must see a sequence (never run its code again), also for a conductor.
        msg.kind = Exec::SEQUENCE.to_string();
        msg.code_hash = String::new();
        let id = msg.activation_id.clone();
        let pending = PendingInvocation {
            activation_id: id.clone(),
            accepted_at: msg.accepted_at,
            message: encode(&msg)?.to_vec(),
        };
        let plan = match action.exec.components.clone() {
            Some(components) if action.exec.is_sequence() => Plan::Sequence(components),
            _ => Plan::Conductor(resolved.clone()),
        };
        let this = core.clone();
        let who = who.clone();
        // Journaling and running happen on one task: a client that goes away once the
        // entry is written cannot leave it without its run.
        let (journaled_tx, journaled) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let id = pending.activation_id.clone();
            let written = this.store().put_pending(pending).await;
            let failed = written.is_err();
            let _ = journaled_tx.send(written);
            if failed {
                return Err(ControllerError::Internal("not journaled".into()));
            }
            let run = run_sequence(&this, &who, &msg, plan, Input { input, secrets }, origin);
            tokio::pin!(run);
            // A long sequence keeps its journal entry fresh, so a clustered controller's
            // sweep does not take it for one whose controller died.
            // (Its first tick a period from now: an interval's immediate first tick still
            // waits for the timer's next millisecond.)
            let mut refresh = tokio::time::interval_at(
                tokio::time::Instant::now() + JOURNAL_REFRESH,
                JOURNAL_REFRESH,
            );
            loop {
                tokio::select! {
                    done = &mut run => return done,
                    _ = refresh.tick() => {
                        if let Err(e) = this.store().refresh_pending(&id, now_ms()).await {
                            tracing::warn!(%id, error = %e, "cannot refresh a sequence's journal entry");
                        }
                    }
                }
            }
        });
        match journaled.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(ControllerError::Internal(
                    "the sequence task stopped before journaling".into(),
                ));
            }
        }
        let Wait::UpTo(wait) = wait else {
            return Ok(InvokeOutcome::Accepted(id));
        };
        match tokio::time::timeout(wait, task).await {
            Ok(Ok(Ok(record))) => Ok(InvokeOutcome::Completed(record)),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(e)) => Err(ControllerError::Internal(format!(
                "the sequence task failed: {e}"
            ))),
            Err(_) => Ok(InvokeOutcome::Waiting(id)),
        }
    })
}

/// Runs the components in order and stores the sequence's record; returns it as JSON.
async fn run_sequence(
    core: &Arc<Controller>,
    who: &Identity,
    msg: &InvocationMessage,
    plan: Plan,
    input: Input,
    origin: Origin,
) -> Result<Box<serde_json::value::RawValue>, ControllerError> {
    let Input { input, secrets } = input;
    let start = now_ms();
    // The span this composition's is a child of: its producer's, or its composition's.
    let parent_span = match &origin {
        Origin::Top(_, _, trace) => trace.map(|t| t.span_id()),
        Origin::Nested(parent) => Some(parent.span.span_id()),
    };
    let (topmost, steps) = match origin {
        Origin::Top(..) => (true, Arc::default()),
        Origin::Nested(parent) => (false, parent.steps),
    };
    let conductor = matches!(plan, Plan::Conductor(_));
    let me = Parent {
        cause: Cause {
            kind: if conductor {
                CauseKind::Conductor
            } else {
                CauseKind::Sequence
            },
            activation_id: msg.activation_id.clone(),
        },
        steps,
        span: msg.traceparent.unwrap_or_else(TraceParent::new_root),
    };
    let mut run = Run::default();
    match plan {
        Plan::Sequence(components) => {
            run_components(core, who, &components, input, secrets, &me, &mut run).await
        }
        Plan::Conductor(resolved) => {
            run_conductor(core, who, &resolved, input, &me, &mut run).await
        }
    }
    let Run {
        ids,
        duration,
        response,
    } = run;
    let mut record = record(msg, start, now_ms(), response);
    record.duration = duration;
    record.logs = ids;
    if topmost {
        record.annotations.push(annotation(TOPMOST, json!(true)));
    }
    if conductor {
        record.annotations.push(annotation(CONDUCTOR, json!(true)));
    }
    if let Some(own) = msg.traceparent
        && spans::enabled()
    {
        let (verb, kind) = match (conductor, msg.cause.is_none()) {
            (false, true) => ("sequence", spans::Kind::Server),
            (false, false) => ("sequence", spans::Kind::Internal),
            (true, true) => ("conductor", spans::Kind::Server),
            (true, false) => ("conductor", spans::Kind::Internal),
        };
        spans::export(spans::of_record(verb, kind, own, parent_span, msg, &record));
    }
    let encoded =
        EncodedActivation::new(&record).map_err(|e| ControllerError::Internal(e.to_string()))?;
    let encoded = EncodedActivation {
        name: msg.action.clone(),
        ..encoded
    };
    // Only a clustered controller's sweep can store a record for this id meanwhile; here
    // it is a first run's record, which the embedded store logs without a commit.
    let written = if core.is_clustered() {
        core.store().put_activation(&encoded).await?
    } else {
        core.store().put_new_activation(&encoded).await?;
        true
    };
    if written {
        // Counted once per record written (a sweep's record is counted by its writer).
        gust_telemetry::metrics::get().activation(&record, &msg.action, msg.accepted_at);
    }
    if !written {
        // Another record was stored first (a sweep took this sequence for an orphan):
        // that one is the answer every reader gets.
        tracing::warn!(id = %msg.activation_id, "a sequence's record was already stored");
        if let Some(stored) = core
            .store()
            .activation(&who.namespace, &msg.activation_id)
            .await?
        {
            return serde_json::value::to_raw_value(&stored)
                .map_err(|e| ControllerError::Internal(e.to_string()));
        }
    }
    Ok(encoded.json)
}

/// Runs one step (blocking) with `input` and returns its record; `atomic` runs a
/// conductor's own code.
async fn run_step(
    core: &Arc<Controller>,
    who: &Identity,
    resolved: &Resolved,
    input: Map<String, Value>,
    secrets: Vec<SealedParam>,
    parent: &Parent,
    atomic: bool,
) -> Result<Activation, ControllerError> {
    let nested = !atomic && composes(&resolved.action);
    let max = core.system_limits().max_sequence_actions;
    let (counter, cap) = if atomic {
        (&parent.steps.conductor_runs, 2 * max + 1)
    } else if nested {
        (&parent.steps.compositions, max)
    } else {
        (&parent.steps.atomic, max)
    };
    if counter.fetch_add(1, Ordering::Relaxed) >= cap {
        return Err(ControllerError::TooManySteps);
    }
    let outcome = if nested {
        // A nested composition finishes when its steps do, each within its own timeout.
        let Prepared {
            mut input,
            secrets: mut own,
            ..
        } = prepare_input(resolved, input, false)?;
        add_secrets(&mut input, &mut own, secrets);
        let wait = Wait::UpTo(Duration::from_secs(24 * 3600));
        start(
            core,
            who,
            resolved,
            Input {
                input,
                secrets: own,
            },
            wait,
            Origin::Nested(parent.clone()),
        )
        .await?
    } else {
        let wait = Duration::from_millis(resolved.action.limits.timeout) + COMPONENT_GRACE;
        core.invoke_code(Invocation {
            caller: who,
            action: resolved,
            params: input,
            wait: Wait::UpTo(wait),
            cause: Some(parent.cause.clone()),
            secrets,
            activation_id: None,
            trace: Some(parent.span),
        })
        .await?
    };
    match outcome {
        InvokeOutcome::Completed(raw) => {
            serde_json::from_str(raw.get()).map_err(|e| ControllerError::Internal(e.to_string()))
        }
        InvokeOutcome::Accepted(id) | InvokeOutcome::Waiting(id) => {
            // Its record lands later (the wait ran out on a slow system): read the store.
            for _ in 0..600 {
                if let Some(r) = core.store().activation(&who.namespace, &id).await? {
                    return Ok(r);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(ControllerError::Internal(format!(
                "the component's activation {id} did not finish in time"
            )))
        }
    }
}

/// What a composition runs.
enum Plan {
    /// A sequence's components, fully qualified.
    Sequence(Vec<String>),
    /// A conductor action, which picks each next component as it runs.
    Conductor(Resolved),
}

/// A composition's progress: the steps' ids and durations, and the latest response.
struct Run {
    ids: Vec<String>,
    duration: u64,
    response: ActivationResponse,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            ids: Vec::new(),
            duration: 0,
            response: ActivationResponse::new(ActivationStatus::Success, json!({})),
        }
    }
}

impl Run {
    /// Counts a finished step; returns its result as the next input (a result that is not
    /// an object gives an empty one).
    fn add(&mut self, record: Activation) -> Map<String, Value> {
        self.ids.push(record.activation_id);
        self.duration += record.duration;
        self.response = record.response;
        match &self.response.result {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        }
    }
}

/// The status a composition ends with when a step could not be invoked: throttling is the
/// caller's to retry, the host's failures are internal, the rest is `default`.
fn failure_status(e: &ControllerError, default: ActivationStatus) -> ActivationStatus {
    match e {
        // Throttled: a namespace limit, or a composition's step cap.
        e if e.is_throttled() => ActivationStatus::ApplicationError,
        e if e.is_host_failure() => ActivationStatus::InternalError,
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conductor::boxed;
    use crate::sequence::split_component;
    use gust_model::NamespaceLimits;

    fn who() -> Identity {
        Identity {
            namespace: "me".into(),
            uuid: "u".into(),
            limits: NamespaceLimits::default(),
        }
    }

    #[test]
    fn components_name_a_namespace_and_a_path_in_it() {
        let who = who();
        for (c, want) in [
            ("/ns/a", ("ns", "a")),
            ("ns/pkg/a", ("ns", "pkg/a")),
            ("/_/a", ("me", "a")),
        ] {
            assert_eq!(split_component(&who, c).unwrap(), want, "{c}");
        }
        for bad in ["a", "/a"] {
            assert!(split_component(&who, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn continuation_fields_that_are_not_objects_are_boxed() {
        assert_eq!(boxed(None, "value"), None);
        let obj = boxed(Some(json!({"a": 1})), "value").unwrap();
        assert_eq!(Value::Object(obj), json!({"a": 1}));
        let scalar = boxed(Some(json!(3)), "value").unwrap();
        assert_eq!(Value::Object(scalar), json!({"value": 3}));
    }

    #[test]
    fn a_step_that_could_not_run_ends_the_composition_by_who_caused_it() {
        let dev = ActivationStatus::DeveloperError;
        assert_eq!(
            failure_status(&ControllerError::TooManySteps, dev),
            ActivationStatus::ApplicationError
        );
        assert_eq!(
            failure_status(&ControllerError::NoInvoker, dev),
            ActivationStatus::InternalError
        );
        assert_eq!(failure_status(&ControllerError::NotFound, dev), dev);
    }
}
