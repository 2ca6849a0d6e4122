//! Invocations: admit, journal, publish, and wait for blocking results.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gust_bus::{Delivery, Handler, completion_subject, invoke_subject};
use gust_model::limits::{MAX_JSON_DEPTH, json_depth};
use gust_model::message::InvocationHeader;
use gust_model::time::now_ms;
use gust_model::{Activation, CompletionMessage, InvocationMessage, names};
use gust_store::PendingInvocation;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::{Controller, ControllerError, Identity, lock};

/// Longest a blocking invocation waits for its result (OpenWhisk's 60 s).
pub const MAX_BLOCKING_WAIT: Duration = Duration::from_secs(60);

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
                controller.throttles.release(&done.namespace);
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

impl Controller {
    /// Invokes `ns/name` for `who` with the request's parameters.
    pub async fn invoke(
        self: &Arc<Self>,
        who: &Identity,
        ns: &str,
        name: &str,
        params: Map<String, Value>,
        blocking: bool,
        wait: Duration,
    ) -> Result<InvokeOutcome, ControllerError> {
        names::check_entity(name).map_err(|e| ControllerError::BadRequest(e.to_string()))?;
        let action = self.cached_action(ns, name).await?;
        if params.values().any(|v| json_depth(v) >= MAX_JSON_DEPTH) {
            return Err(ControllerError::BadRequest(format!(
                "The request content was malformed:\nthe parameters nest arrays and objects deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        let now = now_ms();

        let mut input = Map::new();
        let mut env = Vec::new();
        for p in &action.parameters {
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

        let id = names::new_activation_id();
        let msg = InvocationMessage {
            activation_id: id.clone(),
            namespace: action.namespace.clone(),
            action: action.name.clone(),
            version: action.version.clone(),
            kind: action.exec.kind.clone(),
            code_hash: action.code_hash.clone(),
            subject: who.namespace.clone(),
            params: serde_json::value::to_raw_value(&input)
                .map_err(|e| ControllerError::Internal(e.to_string()))?,
            env,
            limits: action.limits,
            blocking,
            reply_to: completion_subject(&self.id),
            accepted_at: now,
            cause: None,
        };
        let payload = Bytes::from(
            serde_json::to_vec(&msg).map_err(|e| ControllerError::Internal(e.to_string()))?,
        );
        self.throttles.admit(&who.namespace, &who.limits, now)?;

        if !blocking {
            // Journaling and queueing run on their own task: a client that goes away while
            // they run must not leave an invocation journaled but not queued until the next
            // start, nor a slot never freed.
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

        // A blocking caller listens before the invoker can possibly answer.
        let (tx, rx) = oneshot::channel();
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
        self.enqueue(&msg, payload.clone()).await?;
        std::mem::forget(slot);
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(Some(record))) => return Ok(InvokeOutcome::Completed(record)),
            // Finished, but the record was too large to travel with the completion (or was
            // not stored): read it from the store.
            Ok(Ok(None)) => {
                if let Some(record) = self.stored_record(&msg.subject, &id).await? {
                    return Ok(InvokeOutcome::Completed(record));
                }
            }
            _ => {}
        }
        // Journal it before handing out the bare id, unless it finished meanwhile. From here
        // the invocation is in flight: its completion frees its slot, whatever happens here.
        let pending = PendingInvocation {
            activation_id: id.clone(),
            accepted_at: msg.accepted_at,
            message: payload.to_vec(),
        };
        if self.store.put_pending_unless_recorded(pending).await? {
            return Ok(InvokeOutcome::Waiting(id));
        }
        match self.stored_record(&msg.subject, &id).await? {
            Some(record) => Ok(InvokeOutcome::Completed(record)),
            None => Ok(InvokeOutcome::Waiting(id)),
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
        let subject = invoke_subject(invoker);
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
                self.throttles.force(&header.subject);
                if let Some(invoker) = self.scheduler.pick(&header.namespace, &header.action)
                    && let Err(e) = self
                        .bus
                        .publish(&invoke_subject(invoker), Bytes::from(p.message))
                        .await
                {
                    tracing::error!(id = %header.activation_id, error = %e, "cannot requeue");
                }
                return;
            }
        };
        msg.blocking = false;
        msg.reply_to = completion_subject(&self.id);
        self.throttles.force(&msg.subject);
        let Some(invoker) = self.scheduler.pick(&msg.namespace, &msg.action) else {
            return;
        };
        match serde_json::to_vec(&msg) {
            Ok(bytes) => {
                if let Err(e) = self
                    .bus
                    .publish(&invoke_subject(invoker), Bytes::from(bytes))
                    .await
                {
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
