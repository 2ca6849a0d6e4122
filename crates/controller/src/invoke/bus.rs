//! Invocations through the bus: published to the invoker the scheduler picks (a non-blocking
//! one journaled first), and completions taken from this controller's completion subject.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gust_bus::{Delivery, Handler, completion_subject, invoke_subject};
use gust_model::{CompletionMessage, InvocationMessage};
use gust_store::PendingInvocation;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::SlotGuard;
use crate::{Controller, ControllerError, lock};

/// Removes a waiter when its request is dropped (client gone, wait over).
pub(super) struct WaiterGuard<'a> {
    pub(super) controller: &'a Controller,
    pub(super) id: String,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        lock(&self.controller.waiters).remove(&self.id);
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

impl Controller {
    /// Sends a blocking invocation through the bus and waits up to `wait` for its completion:
    /// `Some(record)` if it finished in time (the record if it came with the completion).
    pub(super) async fn run_through_bus(
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

    /// Hands an invocation to an invoker; a non-blocking one is journaled first, so its 202
    /// promises a record.
    pub(super) async fn enqueue(
        &self,
        msg: &InvocationMessage,
        payload: Bytes,
    ) -> Result<(), ControllerError> {
        let Some(invoker) = self.scheduler.pick(&msg.namespace, &msg.action) else {
            return Err(ControllerError::NoInvoker);
        };
        let subject = invoke_subject(&invoker);
        let m = gust_telemetry::metrics::get();
        let publish = || {
            m.timed_bus(
                "publish",
                self.bus
                    .publish_with_id(&subject, &msg.activation_id, payload.clone()),
            )
        };
        if msg.blocking {
            return publish()
                .await
                .map_err(|e| ControllerError::Unreachable(e.to_string()));
        }
        let pending = PendingInvocation {
            activation_id: msg.activation_id.clone(),
            accepted_at: msg.accepted_at,
            message: payload.to_vec(),
        };
        m.timed_store("put_pending", self.store.put_pending(pending))
            .await?;
        if let Err(e) = publish().await {
            // Journaled: it runs at the next start.
            tracing::error!(id = %msg.activation_id, error = %e, "invocation journaled but not queued");
        }
        Ok(())
    }
}
