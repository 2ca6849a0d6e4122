//! A clustered controller's invocations: counted against the namespace's limits and
//! journaled in the shared store in one statement, published, and swept when stale.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gust_bus::{Delivery, HEALTH_SUBJECT, Handler, invoke_subject};
use gust_model::time::now_ms;
use gust_model::{InvocationMessage, InvokerHealth};
use gust_store::{Admission, PendingInvocation};
use tokio::sync::oneshot;

use super::InvokeOutcome;
use super::bus::WaiterGuard;
use crate::{Controller, ControllerError, Identity, lock, throttle};

/// A clustered controller waiting for a blocking result reads the store this often once its
/// completion is late (completions are fire-and-forget: one can be lost).
const STORE_FALLBACK: Duration = Duration::from_secs(1);
/// A journal entry still without a record this long after it was accepted is sent to an
/// invoker again by a clustered controller (longer than the longest action timeout plus the
/// time to take an invoker's queue over, so a live invocation is not doubled).
const STALE_AFTER: Duration = Duration::from_secs(600);
/// How often a clustered controller looks for stale journal entries.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

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
    /// A clustered controller's invocation: counted against the namespace's limits and
    /// journaled in the shared store (one statement), then published; a blocking caller waits
    /// for the completion and reads the store when it is late.
    pub(super) async fn invoke_clustered(
        self: &Arc<Self>,
        who: &Identity,
        msg: InvocationMessage,
        payload: Bytes,
        wait: Duration,
        delivery: Option<gust_model::Delivery>,
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
            let m = gust_telemetry::metrics::get();
            // The delivery row first: an invocation journaled without it would never be
            // retried nor delivered.
            if let Some(d) = &delivery {
                this.store.put_delivery(d).await?;
            }
            // Admission and the journal write are one statement on the shared store.
            let admitted = this
                .store
                .admit(&namespace, &limits, msg.accepted_at, pending);
            let refused = match m.timed_store("admit", admitted).await {
                Ok(Admission::Admitted) => None,
                Ok(Admission::PerMinute { count }) => {
                    m.throttled(&namespace, throttle::PER_MINUTE);
                    Some(throttle::too_many_per_minute(count, &limits))
                }
                Ok(Admission::Concurrent { count }) => {
                    m.throttled(&namespace, throttle::CONCURRENT);
                    Some(throttle::too_many_in_flight(count, &limits))
                }
                Err(e) => Some(e.into()),
            };
            if let Some(e) = refused {
                if let Some(d) = &delivery {
                    this.drop_delivery(d).await;
                }
                return Err(e);
            }
            let published = match this.scheduler.pick(&msg.namespace, &msg.action) {
                None => Err(ControllerError::NoInvoker),
                Some(invoker) => {
                    let subject = invoke_subject(&invoker);
                    let sent = this
                        .bus
                        .publish_with_id(&subject, &msg.activation_id, payload);
                    m.timed_bus("publish", sent)
                        .await
                        .map_err(|e| ControllerError::Unreachable(e.to_string()))
                }
            };
            if published.is_err() {
                // Not handed over: as if it had not been accepted (no id was returned).
                match this.store.forget_pending(&msg.activation_id).await {
                    Ok(()) => {
                        if let Some(d) = &delivery {
                            this.drop_delivery(d).await;
                        }
                    }
                    Err(e) => {
                        tracing::error!(id = %msg.activation_id, error = %e, "cannot drop a journal entry; it runs when swept");
                    }
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
}
