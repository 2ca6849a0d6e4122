//! Invocations: admit, journal, publish, and wait for blocking results.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gust_bus::{Delivery, HEALTH_SUBJECT, Handler, completion_subject, invoke_subject};
use gust_model::limits::{MAX_JSON_DEPTH, json_depth};
use gust_model::message::InvocationHeader;
use gust_model::time::now_ms;
use gust_model::{Activation, CompletionMessage, InvocationMessage, InvokerHealth, names};
use gust_store::{Admission, PendingInvocation};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::actions::{Resolved, SEQUENCE};
use crate::sequence::{CONDUCTOR, Cause};
use crate::{Controller, ControllerError, Identity, lock, throttle};

/// Longest a blocking invocation waits for its result (OpenWhisk's 60 s).
pub const MAX_BLOCKING_WAIT: Duration = Duration::from_secs(60);
/// A clustered controller waiting for a blocking result reads the store this often once its
/// completion is late (completions are fire-and-forget: one can be lost).
const STORE_FALLBACK: Duration = Duration::from_secs(1);
/// A journal entry still without a record this long after it was accepted is sent to an
/// invoker again by a clustered controller (longer than the longest action timeout plus the
/// time to take an invoker's queue over, so a live invocation is not doubled).
const STALE_AFTER: Duration = Duration::from_secs(600);
/// How often a clustered controller looks for stale journal entries.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What an invocation returns to the gateway.
#[derive(Debug)]
pub enum InvokeOutcome {
    /// Non-blocking: journaled and queued.
    Accepted(String),
    /// Blocking: the stored record (an `Activation`), as JSON.
    Completed(Box<RawValue>),
    /// Blocking, but the wait ran out: journaled; the record lands later.
    Waiting(String),
}

/// OpenWhisk's refusal of request parameters that a `final` action defines already.
const FINAL_OVERRIDE: &str =
    "Request defines parameters that are not allowed (e.g., reserved properties).";

/// Environment variables of a function (its `init` parameters).
type Environment = Vec<(String, String)>;

/// The function's input and environment: inherited and own parameters, then the request's
/// (which may not redefine a parameter of a `final` action, unless the input is a sequence's
/// step: OpenWhisk checks only what a request sends).
pub(crate) fn prepare_input(
    resolved: &Resolved,
    params: Map<String, Value>,
    check_final: bool,
) -> Result<(Map<String, Value>, Environment), ControllerError> {
    if params.values().any(|v| json_depth(v) >= MAX_JSON_DEPTH) {
        return Err(ControllerError::BadRequest(format!(
            "The request content was malformed:\nthe parameters nest arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    let action = &resolved.action;
    let merged;
    let defined = if resolved.inherited.is_empty() {
        &action.parameters
    } else {
        merged = resolved.parameters();
        &merged
    };
    if check_final
        && !params.is_empty()
        && action.annotation_is_truthy("final")
        && defined.iter().any(|p| params.contains_key(&p.key))
    {
        return Err(ControllerError::BadRequest(FINAL_OVERRIDE.into()));
    }
    let mut input = Map::new();
    let mut env = Vec::new();
    for p in defined {
        if p.init {
            let v = match &p.value {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            env.push((p.key.clone(), v));
        } else {
            input.insert(p.key.clone(), p.value.clone());
        }
    }
    input.extend(params);
    Ok((input, env))
}

/// Removes a waiter when its request is dropped (client gone, wait over).
struct WaiterGuard<'a> {
    controller: &'a Controller,
    id: String,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        lock(&self.controller.waiters).remove(&self.id);
    }
}

/// A future polled on its caller's task that, if the caller drops it before it finishes,
/// finishes on a task of its own (its output is then dropped).
struct Detachable<F: Future + Send + 'static>
where
    F::Output: Send + 'static,
{
    running: Option<std::pin::Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> Detachable<F>
where
    F::Output: Send + 'static,
{
    fn new(f: F) -> Self {
        Detachable {
            running: Some(Box::pin(f)),
        }
    }
}

impl<F: Future + Send + 'static> Future for Detachable<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let Some(running) = self.running.as_mut() else {
            return std::task::Poll::Pending;
        };
        let out = running.as_mut().poll(cx);
        if out.is_ready() {
            self.running = None;
        }
        out
    }
}

impl<F: Future + Send + 'static> Drop for Detachable<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            tokio::spawn(running);
        }
    }
}

/// An invocation message as it travels on the bus and sits in the journal.
pub(crate) fn encode(msg: &InvocationMessage) -> Result<Bytes, ControllerError> {
    serde_json::to_vec(msg)
        .map(Bytes::from)
        .map_err(|e| ControllerError::Internal(e.to_string()))
}

/// Frees an admitted invocation's throttle slot when dropped.
struct SlotGuard<'a> {
    controller: &'a Controller,
    namespace: &'a str,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.controller.throttles.release(self.namespace);
    }
}

pub(crate) async fn start_completions(c: &Arc<Controller>) -> Result<(), ControllerError> {
    let controller = c.clone();
    let handler: Handler = Arc::new(move |delivery: Delivery| {
        match serde_json::from_slice::<CompletionMessage>(&delivery.payload) {
            Ok(done) => {
                // A clustered controller's slots are freed by the record itself.
                if !controller.clustered {
                    controller.throttles.release(&done.namespace);
                }
                let waiter = lock(&controller.waiters).remove(&done.activation_id);
                if let Some(tx) = waiter {
                    let _ = tx.send(done.record);
                }
            }
            Err(e) => tracing::error!(error = %e, "undecodable completion"),
        }
        if delivery.has_ack() {
            tokio::spawn(delivery.ack());
        }
        Ok(())
    });
    c.bus
        .consume(&completion_subject(&c.id), handler)
        .await
        .map_err(|e| ControllerError::Internal(e.to_string()))
}

/// Follows the invokers' heartbeats (clustered controllers).
pub(crate) async fn follow_invokers(c: &Arc<Controller>) -> Result<(), ControllerError> {
    let controller = c.clone();
    let handler: Handler = Arc::new(move |delivery: Delivery| {
        match serde_json::from_slice::<InvokerHealth>(&delivery.payload) {
            Ok(health) => controller.scheduler.heard(&health),
            Err(e) => tracing::warn!(error = %e, "undecodable heartbeat"),
        }
        Ok(())
    });
    c.bus
        .consume(HEALTH_SUBJECT, handler)
        .await
        .map_err(|e| ControllerError::Internal(e.to_string()))
}

/// Sends journal entries that stayed without a record too long to an invoker again
/// (clustered controllers; every controller sweeps, each entry is claimed by one).
pub(crate) async fn sweep_stale(c: Arc<Controller>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        let now = now_ms();
        let before = now.saturating_sub(STALE_AFTER.as_millis() as u64);
        match c.store.claim_stale_pending(before, now).await {
            Ok(stale) => {
                for p in stale {
                    tracing::warn!(id = %p.activation_id, "sending a stale invocation again");
                    c.resubmit(p).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot sweep the journal"),
        }
    }
}

impl Controller {
    /// Invokes the action a request names (`ns` as in the path, `path` is `a` or `pkg/a`)
    /// for `who` with the request's parameters.
    pub async fn invoke(
        self: &Arc<Self>,
        who: &Identity,
        ns: &str,
        path: &str,
        params: Map<String, Value>,
        blocking: bool,
        wait: Duration,
    ) -> Result<InvokeOutcome, ControllerError> {
        let resolved = self.resolve(who, ns, path).await?;
        self.invoke_resolved(who, &resolved, params, blocking, wait, None)
            .await
    }

    /// Invokes a resolved action for `who`; `cause` is the sequence this runs a step of.
    pub async fn invoke_resolved(
        self: &Arc<Self>,
        who: &Identity,
        resolved: &Resolved,
        params: Map<String, Value>,
        blocking: bool,
        wait: Duration,
        cause: Option<Cause>,
    ) -> Result<InvokeOutcome, ControllerError> {
        self.invoke_step(who, resolved, params, blocking, wait, cause, false)
            .await
    }

    /// A new invocation of `action` by `who`, accepted now, with a new activation id.
    pub(crate) fn new_message(
        &self,
        who: &Identity,
        action: &gust_model::Action,
        input: &Map<String, Value>,
        env: Environment,
        blocking: bool,
        cause: Option<String>,
    ) -> Result<InvocationMessage, ControllerError> {
        let params = serde_json::value::to_raw_value(input)
            .map_err(|e| ControllerError::Internal(e.to_string()))?;
        // A request's input as it travels (base64 bodies, headers and query of web requests
        // included) must fit the payload limit; steps of a sequence (with a cause) carry the
        // previous step's result instead.
        let size = params.get().len() as u64;
        if cause.is_none() && size > self.system.max_payload {
            return Err(ControllerError::TooLarge(format!(
                "Request larger than allowed: {size} > {} bytes.",
                self.system.max_payload
            )));
        }
        Ok(InvocationMessage {
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
            limits: action.limits,
            blocking,
            reply_to: completion_subject(&self.id),
            accepted_at: now_ms(),
            cause,
            resent: false,
        })
    }

    /// Invokes a resolved action; `atomic` runs a conductor action's code itself (one of its
    /// secondary activations) instead of the composition it conducts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn invoke_step(
        self: &Arc<Self>,
        who: &Identity,
        resolved: &Resolved,
        params: Map<String, Value>,
        blocking: bool,
        wait: Duration,
        cause: Option<Cause>,
        atomic: bool,
    ) -> Result<InvokeOutcome, ControllerError> {
        let action = &resolved.action;
        let (input, env) = prepare_input(resolved, params, cause.is_none())?;
        if action.exec.kind == SEQUENCE || (!atomic && action.annotation_is_truthy(CONDUCTOR)) {
            return self
                .invoke_sequence(who, resolved, input, blocking, wait, cause)
                .await;
        }
        let msg = self.new_message(
            who,
            action,
            &input,
            env,
            blocking,
            cause.map(|c| c.activation_id),
        )?;
        let (id, now) = (msg.activation_id.clone(), msg.accepted_at);
        if self.clustered {
            let payload = encode(&msg)?;
            return self.invoke_clustered(who, msg, payload, wait).await;
        }
        self.throttles.admit(&who.namespace, &who.limits, now)?;

        if !blocking {
            // Journaling and queueing run on their own task: a client that goes away while
            // they run must not leave an invocation journaled but not queued until the next
            // start, nor a slot never freed.
            let payload = encode(&msg)?;
            let this = self.clone();
            return tokio::spawn(async move {
                let queued = this.enqueue(&msg, payload).await;
                if queued.is_err() {
                    this.throttles.release(&msg.subject);
                }
                queued.map(|()| InvokeOutcome::Accepted(id))
            })
            .await
            .map_err(|e| ControllerError::Internal(format!("the invocation task failed: {e}")))?;
        }

        // Shared with a direct run, which may finish on a task of its own.
        let msg = Arc::new(msg);
        let finished = match self.local.get() {
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

    /// Sends a blocking invocation through the bus and waits up to `wait` for its completion:
    /// `Some(record)` if it finished in time (the record if it came with the completion).
    async fn run_through_bus(
        self: &Arc<Self>,
        msg: &InvocationMessage,
        payload: Bytes,
        wait: Duration,
    ) -> Result<Option<Option<Box<RawValue>>>, ControllerError> {
        // A blocking caller listens before the invoker can possibly answer.
        let (tx, rx) = oneshot::channel();
        let id = &msg.activation_id;
        lock(&self.waiters).insert(id.clone(), tx);
        let _waiter = WaiterGuard {
            controller: self,
            id: id.clone(),
        };
        // Until the invocation is on the bus, its slot is this request's to free (on an error,
        // or if the client goes away); from then on its completion frees it.
        let slot = SlotGuard {
            controller: self,
            namespace: &msg.subject,
        };
        self.enqueue(msg, payload).await?;
        std::mem::forget(slot);
        Ok(tokio::time::timeout(wait, rx)
            .await
            .ok()
            .and_then(Result::ok))
    }

    /// Runs a blocking invocation on this task through the invoker of this process (no bus
    /// message, no completion), waiting up to `wait`: past it, or if the caller goes away,
    /// the activation goes on running on a task of its own and still stores its record and
    /// frees its slot.
    async fn run_direct(
        self: &Arc<Self>,
        invoker: &Arc<gust_invoker::Invoker>,
        msg: &Arc<InvocationMessage>,
        wait: Duration,
    ) -> Result<Option<Option<Box<RawValue>>>, ControllerError> {
        let slot = SlotGuard {
            controller: self,
            namespace: &msg.subject,
        };
        let Some(run) = invoker.direct(Arc::clone(msg)) else {
            return Err(ControllerError::Unavailable(
                "Cannot reach an invoker: the invoker is stopping".into(),
            ));
        };
        std::mem::forget(slot);
        let this = self.clone();
        let namespace = msg.subject.clone();
        let run = Detachable::new(async move {
            let record = run.await;
            this.throttles.release(&namespace);
            record
        });
        Ok(tokio::time::timeout(wait, run).await.ok())
    }

    /// A clustered controller's invocation: counted against the namespace's limits and
    /// journaled in the shared store (one statement), then published; a blocking caller waits
    /// for the completion and reads the store when it is late.
    async fn invoke_clustered(
        self: &Arc<Self>,
        who: &Identity,
        msg: InvocationMessage,
        payload: Bytes,
        wait: Duration,
    ) -> Result<InvokeOutcome, ControllerError> {
        let id = msg.activation_id.clone();
        let (subject, blocking) = (msg.subject.clone(), msg.blocking);
        // A blocking caller listens before the invoker can possibly answer.
        let rx = blocking.then(|| {
            let (tx, rx) = oneshot::channel();
            lock(&self.waiters).insert(id.clone(), tx);
            rx
        });
        let _waiter = WaiterGuard {
            controller: self,
            id: id.clone(),
        };
        // Admission and publication run on their own task: a client that goes away between
        // them must not leave an entry journaled but never published.
        let this = self.clone();
        let (namespace, limits) = (who.namespace.clone(), who.limits);
        tokio::spawn(async move {
            let pending = PendingInvocation {
                activation_id: msg.activation_id.clone(),
                accepted_at: msg.accepted_at,
                message: payload.to_vec(),
            };
            match this
                .store
                .admit(&namespace, &limits, msg.accepted_at, pending)
                .await?
            {
                Admission::Admitted => {}
                Admission::PerMinute { count } => {
                    return Err(throttle::too_many_per_minute(count, &limits));
                }
                Admission::Concurrent { count } => {
                    return Err(throttle::too_many_in_flight(count, &limits));
                }
            }
            let published = match this.scheduler.pick(&msg.namespace, &msg.action) {
                None => Err(ControllerError::Unavailable(
                    "No invoker is available.".into(),
                )),
                Some(invoker) => this
                    .bus
                    .publish_with_id(&invoke_subject(&invoker), &msg.activation_id, payload)
                    .await
                    .map_err(|e| {
                        ControllerError::Unavailable(format!("Cannot reach an invoker: {e}"))
                    }),
            };
            if published.is_err() {
                // Not handed over: as if it had not been accepted (no id was returned).
                if let Err(e) = this.store.forget_pending(&msg.activation_id).await {
                    tracing::error!(id = %msg.activation_id, error = %e, "cannot drop a journal entry; it runs when swept");
                }
            }
            published
        })
        .await
        .map_err(|e| ControllerError::Internal(format!("the invocation task failed: {e}")))??;
        let Some(mut rx) = rx else {
            return Ok(InvokeOutcome::Accepted(id));
        };
        // The completion usually comes first; the store answers when it is late or lost.
        let deadline = tokio::time::Instant::now() + wait;
        let mut listening = true;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(InvokeOutcome::Waiting(id));
            }
            let step = STORE_FALLBACK.min(left);
            if listening {
                match tokio::time::timeout(step, &mut rx).await {
                    Ok(Ok(Some(record))) => return Ok(InvokeOutcome::Completed(record)),
                    Ok(_) => listening = false,
                    Err(_) => {}
                }
            } else {
                tokio::time::sleep(step).await;
            }
            if let Some(record) = self.stored_record(&subject, &id).await? {
                return Ok(InvokeOutcome::Completed(record));
            }
        }
    }

    /// The stored record of `ns`'s activation `id`, as raw JSON.
    async fn stored_record(
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

    /// Hands an invocation to an invoker; a non-blocking one is journaled first, so its 202
    /// promises a record.
    async fn enqueue(
        &self,
        msg: &InvocationMessage,
        payload: Bytes,
    ) -> Result<(), ControllerError> {
        let Some(invoker) = self.scheduler.pick(&msg.namespace, &msg.action) else {
            return Err(ControllerError::Unavailable(
                "No invoker is available.".into(),
            ));
        };
        let subject = invoke_subject(&invoker);
        if msg.blocking {
            return self
                .bus
                .publish_with_id(&subject, &msg.activation_id, payload)
                .await
                .map_err(|e| {
                    ControllerError::Unavailable(format!("Cannot reach an invoker: {e}"))
                });
        }
        self.store
            .put_pending(PendingInvocation {
                activation_id: msg.activation_id.clone(),
                accepted_at: msg.accepted_at,
                message: payload.to_vec(),
            })
            .await?;
        if let Err(e) = self
            .bus
            .publish_with_id(&subject, &msg.activation_id, payload)
            .await
        {
            // Journaled: it runs at the next start.
            tracing::error!(id = %msg.activation_id, error = %e, "invocation journaled but not queued");
        }
        Ok(())
    }

    /// Sends a journaled invocation to an invoker again (recovery). Published without its id:
    /// a copy still held unacknowledged by a consumer would otherwise swallow it as a
    /// duplicate until its ack wait runs out; if both copies run, the store keeps one record
    /// and the later delivery sees it and runs nothing.
    pub(crate) async fn resubmit(&self, p: PendingInvocation) {
        let mut msg: InvocationMessage = match serde_json::from_slice(&p.message) {
            Ok(m) => m,
            Err(e) => {
                // The invoker records why it cannot run it, if it can tell whose it is.
                let Ok(header) = serde_json::from_slice::<InvocationHeader>(&p.message) else {
                    tracing::error!(id = %p.activation_id, error = %e, "unreadable journal entry");
                    return;
                };
                if !self.clustered {
                    self.throttles.force(&header.subject);
                }
                if let Some(invoker) = self.scheduler.pick(&header.namespace, &header.action)
                    && let Err(e) = self
                        .bus
                        .publish(&invoke_subject(&invoker), Bytes::from(p.message))
                        .await
                {
                    tracing::error!(id = %header.activation_id, error = %e, "cannot requeue");
                }
                return;
            }
        };
        msg.blocking = false;
        msg.resent = true;
        msg.reply_to = completion_subject(&self.id);
        if !self.clustered {
            self.throttles.force(&msg.subject);
        }
        let Some(invoker) = self.scheduler.pick(&msg.namespace, &msg.action) else {
            return;
        };
        match encode(&msg) {
            Ok(bytes) => {
                if let Err(e) = self.bus.publish(&invoke_subject(&invoker), bytes).await {
                    tracing::error!(id = %msg.activation_id, error = %e, "cannot requeue");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode"),
        }
    }

    pub async fn activation(&self, ns: &str, id: &str) -> Result<Activation, ControllerError> {
        if !names::is_activation_id(id) {
            return Err(ControllerError::BadRequest(
                "The activation id is not valid.".into(),
            ));
        }
        self.store
            .activation(ns, id)
            .await?
            .ok_or(ControllerError::NotFound)
    }

    /// Stored records (raw `Activation` JSON), newest first.
    pub async fn list_activations(
        &self,
        q: &gust_store::ActivationQuery,
    ) -> Result<Vec<Box<RawValue>>, ControllerError> {
        Ok(self.store.list_activations(q).await?)
    }

    pub async fn count_activations(
        &self,
        q: &gust_store::ActivationQuery,
    ) -> Result<u64, ControllerError> {
        Ok(self.store.count_activations(q).await?)
    }
}
