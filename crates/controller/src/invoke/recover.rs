//! Recovery: journaled invocations without a record are sent to an invoker again.

use bytes::Bytes;
use gust_bus::{completion_subject, invoke_subject};
use gust_model::InvocationMessage;
use gust_model::message::InvocationHeader;
use gust_store::PendingInvocation;

use super::encode;
use crate::{Controller, ControllerError};

impl Controller {
    /// Recovery at start: every invocation journaled but not recorded (the process stopped
    /// before it finished) is sent to an invoker again. Returns how many.
    pub async fn recover(&self) -> Result<usize, ControllerError> {
        let pending = self.store.pending().await?;
        let n = pending.len();
        for p in pending {
            self.resubmit(p).await;
        }
        Ok(n)
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
}
