//! Direct runs: a blocking invocation handed to the invoker of this process on the request's
//! own task (in-process bus only), with no bus message and no completion.

use std::sync::Arc;
use std::time::Duration;

use gust_model::InvocationMessage;
use serde_json::value::RawValue;

use super::SlotGuard;
use crate::{Controller, ControllerError};

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

impl Controller {
    /// Runs a blocking invocation on this task through the invoker of this process (no bus
    /// message, no completion), waiting up to `wait`: past it, or if the caller goes away,
    /// the activation goes on running on a task of its own and still stores its record and
    /// frees its slot.
    pub(super) async fn run_direct(
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
            return Err(ControllerError::Unreachable(
                "the invoker is stopping".into(),
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
}
