//! Invocations: one [`Invocation`] value, admitted, journaled, handed to an invoker, and
//! waited for when its caller blocks. Every producer of invocations (REST, web actions, API
//! routes, compositions, and the coming rules, sources and workflows) calls
//! [`Controller::invoke`]; a composition's steps call [`Controller::invoke_code`].
//!
//! Paths: a direct run on the request's task (`local`, blocking on the in-process bus),
//! through the bus (`bus`), or counted and journaled in a shared store (`cluster`, one of a
//! cluster's controllers); `recover` sends journaled invocations again.

mod bus;
mod cluster;
mod delivery;
mod idempotency;
mod input;
mod local;
mod recover;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gust_bus::completion_subject;
use gust_model::time::now_ms;
use gust_model::{Cause, InvocationMessage, SealedParam, TraceParent, names};
use gust_store::PendingInvocation;
use gust_telemetry::spans;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub(crate) use bus::start_completions;
pub(crate) use cluster::{follow_invokers, sweep_stale};
pub use delivery::FIRST_LOOK as DELIVERY_FIRST_LOOK;
pub use idempotency::{
    IDEMPOTENCY_TTL, Idempotent, TAKE_OVER_AFTER, check_idempotency_key, params_digest,
};
pub use input::{Prepared, prepare_input};

use delivery::{Request, Tracking, new_delivery};

use crate::tokens::API_HOST_ENV;
use crate::{Controller, ControllerError, Identity, Resolved};

pub use gust_model::limits::MAX_BLOCKING_WAIT;

/// Whether the caller waits for the record, and for how long at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Non-blocking: the caller gets the activation id once the invocation is journaled.
    No,
    /// Blocking: the caller gets the record if it is stored within this time, else the id.
    UpTo(Duration),
}

/// One invocation of a resolved action.
#[derive(Debug)]
pub struct Invocation<'a> {
    /// Whose invocation it is (the record's `subject`; its throttles apply).
    pub caller: &'a Identity,
    pub action: &'a Resolved,
    /// The request's parameters; the action's own and inherited ones are added beneath.
    pub params: Map<String, Value>,
    pub wait: Wait,
    /// What caused it, when no client did directly (a composition, a trigger, a workflow);
    /// an invocation with a cause is not checked against `final` parameters nor the payload
    /// limit (it carries what the platform produced).
    pub cause: Option<Cause>,
    /// Secret parameters (sealed) the producer adds over the action's own and under the
    /// request's: a trigger's secrets. Empty for a client's request.
    pub secrets: Vec<SealedParam>,
    /// The activation id to give it; a new one when `None`. A producer that may make the
    /// same invocation again (a timer's tick fired again after a crash) gives the same id
    /// each time, so it can tell whether the first was accepted.
    pub activation_id: Option<String>,
    /// The trace context it comes with (a client's `traceparent`, or its composition's or
    /// trigger's span); `None` starts a new trace. The controller's side of the invocation
    /// is a child span of it.
    pub trace: Option<TraceParent>,
}

/// What an invocation returns to its producer.
#[derive(Debug)]
pub enum InvokeOutcome {
    /// Non-blocking: journaled and queued.
    Accepted(String),
    /// Blocking: the stored record (an `Activation`), as JSON.
    Completed(Box<RawValue>),
    /// Blocking, but the wait ran out: journaled; the record lands later.
    Waiting(String),
}

/// An invocation message as it travels on the bus and sits in the journal.
pub fn encode(msg: &InvocationMessage) -> Result<Bytes, ControllerError> {
    serde_json::to_vec(msg)
        .map(Bytes::from)
        .map_err(|e| ControllerError::Internal(e.to_string()))
}

/// Frees an admitted invocation's throttle slot when dropped.
pub(super) struct SlotGuard<'a> {
    pub(super) controller: &'a Controller,
    pub(super) namespace: &'a str,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.controller.throttles.release(self.namespace);
    }
}

impl Controller {
    /// Invokes an action: a composition (as the [`crate::Composer`] tells) is handed to the
    /// composer, any other action's code runs ([`Controller::invoke_code`]).
    pub async fn invoke(
        self: &Arc<Self>,
        inv: Invocation<'_>,
    ) -> Result<InvokeOutcome, ControllerError> {
        match self.composer_of(&inv.action.action) {
            Some(composer) => composer.compose(self, inv).await,
            None => self.invoke_code(inv).await,
        }
    }

    /// The composer that runs `action` instead of its code, if one claims it.
    fn composer_of(&self, action: &gust_model::Action) -> Option<&Arc<dyn crate::Composer>> {
        self.composers.iter().find(|c| c.composes(action))
    }

    /// A new invocation of `action` by `who`, accepted now, with a new activation id.
    pub fn new_message(
        &self,
        who: &Identity,
        action: &gust_model::Action,
        input: &Map<String, Value>,
        env: Vec<(String, String)>,
        blocking: bool,
        cause: Option<Cause>,
    ) -> Result<InvocationMessage, ControllerError> {
        let params = serde_json::value::to_raw_value(input)
            .map_err(|e| ControllerError::Internal(e.to_string()))?;
        // A request's input as it travels (base64 bodies, headers and query of web requests
        // included) must fit the payload limit; steps of a sequence (with a cause) carry the
        // previous step's result instead.
        let size = params.get().len() as u64;
        if cause.is_none() && size > self.system.max_payload {
            return Err(ControllerError::RequestTooLarge {
                size,
                max: self.system.max_payload,
            });
        }
        let mut msg = InvocationMessage {
            activation_id: names::new_activation_id(),
            namespace: action.namespace.clone(),
            action: action.name.clone(),
            version: action.version.clone(),
            kind: action.exec.kind.clone(),
            code_hash: action.code_hash.clone(),
            main: action.exec.main.clone(),
            subject: who.namespace.clone(),
            params,
            env,
            secrets: Vec::new(),
            limits: action.limits,
            blocking,
            reply_to: completion_subject(&self.id),
            accepted_at: now_ms(),
            cause: None,
            cause_kind: None,
            resent: false,
            traceparent: None,
        };
        msg.set_cause(cause);
        Ok(msg)
    }

    /// Runs the action's own code, never a composition: what a request for an atomic action
    /// does, a composition's step, and a conductor action's own code.
    pub async fn invoke_code(
        self: &Arc<Self>,
        inv: Invocation<'_>,
    ) -> Result<InvokeOutcome, ControllerError> {
        self.run_code(inv, Tracking::ByConfig).await
    }

    /// [`Controller::invoke_code`], a non-blocking invocation tracked by a delivery row
    /// when `tracking` allows and its action has a delivery config.
    async fn run_code(
        self: &Arc<Self>,
        inv: Invocation<'_>,
        tracking: Tracking,
    ) -> Result<InvokeOutcome, ControllerError> {
        // A built-in action has no code: its composer runs it, also as a step.
        if let Some(builtin) = self
            .composers
            .iter()
            .find(|c| c.replaces_code(&inv.action.action))
        {
            return builtin.compose(self, inv).await;
        }
        let config = self.tracked_by(tracking, &inv).await?;
        // What a delivery replays, kept only for a tracked invocation.
        let request = config.as_ref().map(|_| Request {
            params: inv.params.clone(),
            secrets: inv.secrets.clone(),
        });
        let Invocation {
            caller: who,
            action: resolved,
            params,
            wait,
            cause,
            secrets: added,
            activation_id,
            trace,
        } = inv;
        let (blocking, wait) = match wait {
            Wait::No => (false, Duration::ZERO),
            Wait::UpTo(d) => (true, d),
        };
        let action = &resolved.action;
        let Prepared {
            mut input,
            env,
            mut secrets,
        } = prepare_input(resolved, params, cause.is_none())?;
        for s in added {
            input.remove(&s.key);
            secrets.retain(|t| t.key != s.key);
            secrets.push(s);
        }
        let mut msg = self.new_message(who, action, &input, env, blocking, cause)?;
        msg.secrets = secrets;
        // A producer-given id (a sequence's step, a rule's invocation) before the span's
        // attributes name it.
        if let Some(id) = activation_id {
            msg.activation_id = id;
        }
        msg.traceparent = Some(TraceParent::continuing(trace.as_ref()));
        // The controller's side of the invocation, exported when this function returns.
        let _span = spans::begin_invoke(&msg, trace);
        if let Some(token) = self.action_token(who, action).await? {
            msg.secrets.push(token);
            if let Some(host) = &self.api_host {
                msg.env.push((API_HOST_ENV.to_string(), host.clone()));
            }
        }
        let (id, now) = (msg.activation_id.clone(), msg.accepted_at);
        let delivery = config
            .zip(request)
            .map(|(config, request)| new_delivery(who, resolved, &msg, &config, request));
        if self.clustered {
            let payload = encode(&msg)?;
            return self
                .invoke_clustered(who, msg, payload, wait, delivery)
                .await;
        }
        self.throttles.admit(&who.namespace, &who.limits, now)?;

        if !blocking {
            // Journaling and queueing run on their own task: a client that goes away while
            // they run must not leave an invocation journaled but not queued until the next
            // start, nor a slot never freed.
            let payload = encode(&msg)?;
            let this = self.clone();
            return tokio::spawn(async move {
                // The delivery row first: an invocation journaled without it would never be
                // retried nor delivered.
                if let Some(d) = &delivery
                    && let Err(e) = this.store.put_delivery(d).await
                {
                    this.throttles.release(&msg.subject);
                    return Err(e.into());
                }
                let queued = this.enqueue(&msg, payload).await;
                if queued.is_err() {
                    this.throttles.release(&msg.subject);
                    if let Some(d) = &delivery {
                        this.drop_delivery(d).await;
                    }
                }
                queued.map(|()| InvokeOutcome::Accepted(id))
            })
            .await
            .map_err(|e| ControllerError::Internal(format!("the invocation task failed: {e}")))?;
        }

        // Shared with a direct run, which may finish on a task of its own.
        let msg = Arc::new(msg);
        let finished = match &self.local {
            Some(invoker) => self.run_direct(invoker, &msg, wait).await?,
            None => self.run_through_bus(&msg, encode(&msg)?, wait).await?,
        };
        match finished {
            Some(Some(record)) => return Ok(InvokeOutcome::Completed(record)),
            // Finished, but the record was too large to travel with the completion (or was
            // not stored): read it from the store.
            Some(None) => {
                if let Some(record) = self.stored_record(&msg.subject, &id).await? {
                    return Ok(InvokeOutcome::Completed(record));
                }
            }
            None => {}
        }
        // Journal it before handing out the bare id, unless it finished meanwhile. From here
        // the invocation is in flight: its completion frees its slot, whatever happens here.
        // (Encoded only now: a direct run needs no message.)
        let pending = PendingInvocation {
            activation_id: id.clone(),
            accepted_at: msg.accepted_at,
            message: encode(&msg)?.to_vec(),
        };
        if self.store.put_pending_unless_recorded(pending).await? {
            return Ok(InvokeOutcome::Waiting(id));
        }
        match self.stored_record(&msg.subject, &id).await? {
            Some(record) => Ok(InvokeOutcome::Completed(record)),
            None => Ok(InvokeOutcome::Waiting(id)),
        }
    }

    /// Counts an invocation that runs at once in this process (a built-in action) against
    /// `who`'s invocations per minute and in flight, as this process counts them: 429 past
    /// either. (A clustered controller counts it in this process only, not in the store.)
    pub fn admit_here(&self, who: &Identity) -> Result<(), ControllerError> {
        self.throttles
            .admit(&who.namespace, &who.limits, now_ms())?;
        self.throttles.release(&who.namespace);
        Ok(())
    }

    /// The stored record of `ns`'s activation `id`, as raw JSON.
    pub(crate) async fn stored_record(
        &self,
        ns: &str,
        id: &str,
    ) -> Result<Option<Box<RawValue>>, ControllerError> {
        self.store
            .activation(ns, id)
            .await?
            .map(|r| {
                serde_json::value::to_raw_value(&r)
                    .map_err(|e| ControllerError::Internal(e.to_string()))
            })
            .transpose()
    }
}
