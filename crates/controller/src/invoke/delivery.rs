//! Async delivery's side of an invocation (decision 0028): a non-blocking invocation of an
//! action that has a delivery config gets a delivery row, written before the invocation is
//! journaled or queued, which the events crate's delivery loop follows until the record is
//! delivered (or retried, or dead-lettered). Configs are read through a short-lived cache, so
//! an action without one costs a map look-up, not a store read, per invocation.
//!
//! Not tracked: blocking invocations, a workflow's steps (the workflow retries them), an
//! invocation through a binding or of another namespace's action (its config is not the
//! caller's), and a delivery's own attempts ([`Controller::invoke_attempt`]).

use std::sync::Arc;
use std::time::Duration;

use gust_model::{CauseKind, Delivery, DeliveryConfig, InvocationMessage, SealedParam};
use serde_json::{Map, Value, json};

use super::Invocation;
use crate::{Controller, ControllerError, Identity, Resolved};

/// How long after its acceptance a delivery's first attempt is looked at first.
pub const FIRST_LOOK: Duration = Duration::from_millis(250);

/// Whether an invocation may get a delivery row of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tracking {
    /// When it is non-blocking and its action has a delivery config.
    ByConfig,
    /// Never: it is a delivery's attempt.
    Never,
}

/// The request as a delivery replays it: the parameters the client sent and the sealed
/// parameters its producer added (a trigger's secrets).
pub(super) struct Request {
    pub(super) params: Map<String, Value>,
    pub(super) secrets: Vec<SealedParam>,
}

impl Request {
    /// The delivery's `message`: `{"params": ..., "secrets"?: [...]}`.
    fn message(self) -> Value {
        let mut m = Map::new();
        m.insert("params".into(), Value::Object(self.params));
        if !self.secrets.is_empty() {
            m.insert("secrets".into(), json!(self.secrets));
        }
        Value::Object(m)
    }
}

impl Controller {
    /// The delivery config of action `action` (its name in `ns`), through the cache: a write
    /// through this process is seen at once, one through another within a second.
    pub async fn delivery_config(
        &self,
        ns: &str,
        action: &str,
    ) -> Result<Option<Arc<DeliveryConfig>>, ControllerError> {
        let key = (ns.to_string(), action.to_string());
        self.deliveries
            .get_or_fetch(&key, async {
                Ok::<_, ControllerError>(self.store.delivery_config(ns, action).await?)
            })
            .await
    }

    /// Creates or replaces an action's delivery config (checked by its caller).
    pub async fn put_delivery_config(
        &self,
        config: &DeliveryConfig,
    ) -> Result<(), ControllerError> {
        self.store.put_delivery_config(config).await?;
        self.deliveries
            .forget(&(config.namespace.clone(), config.action.clone()));
        Ok(())
    }

    /// Deletes an action's delivery config; whether there was one.
    pub async fn delete_delivery_config(
        &self,
        ns: &str,
        action: &str,
    ) -> Result<bool, ControllerError> {
        let had = self.store.delete_delivery_config(ns, action).await?;
        self.deliveries
            .forget(&(ns.to_string(), action.to_string()));
        Ok(had)
    }

    /// Whether `action` runs its own code when invoked (no composition or built-in action
    /// runs it instead): what a delivery config needs.
    pub fn runs_code(&self, action: &gust_model::Action) -> bool {
        self.composers
            .iter()
            .all(|c| !c.composes(action) && !c.replaces_code(action))
    }

    /// An attempt of an async delivery (the events crate's loop): runs the action's code like
    /// [`Controller::invoke_code`], never tracked by a delivery of its own.
    pub async fn invoke_attempt(
        self: &Arc<Self>,
        inv: Invocation<'_>,
    ) -> Result<super::InvokeOutcome, ControllerError> {
        self.run_code(inv, Tracking::Never).await
    }

    /// The config a non-blocking invocation by `who` of `resolved` is delivered with, if it
    /// is to be tracked at all.
    pub(super) async fn tracked_by(
        &self,
        tracking: Tracking,
        inv: &Invocation<'_>,
    ) -> Result<Option<Arc<DeliveryConfig>>, ControllerError> {
        let action = &inv.action.action;
        let tracked = tracking == Tracking::ByConfig
            && inv.wait == super::Wait::No
            && inv
                .cause
                .as_ref()
                .is_none_or(|c| c.kind != CauseKind::Workflow)
            && !inv.action.shared
            && inv.caller.namespace == action.namespace;
        if !tracked {
            return Ok(None);
        }
        self.delivery_config(&action.namespace, &action.name).await
    }

    /// Deletes the delivery row of an invocation that was refused after all (nothing was
    /// journaled: there is nothing to deliver).
    pub(super) async fn drop_delivery(&self, d: &Delivery) {
        if let Err(e) = self.store.finish_delivery(&d.namespace, &d.id, None).await {
            tracing::error!(id = %d.id, error = %e, "cannot drop the delivery of a refused invocation; it is retried");
        }
    }
}

/// The delivery row of `msg`, accepted now for `who`'s invocation of `resolved`.
pub(super) fn new_delivery(
    who: &Identity,
    resolved: &Resolved,
    msg: &InvocationMessage,
    config: &DeliveryConfig,
    request: Request,
) -> Delivery {
    Delivery {
        namespace: who.namespace.clone(),
        id: msg.activation_id.clone(),
        action: resolved.action.name.clone(),
        message: request.message(),
        config: config.clone(),
        attempt: 1,
        attempt_id: msg.activation_id.clone(),
        accepted_ms: msg.accepted_at,
        due_ms: msg.accepted_at + FIRST_LOOK.as_millis() as u64,
        owner: None,
        lease_ms: 0,
        state: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use gust_store::cache::EntityCache;

    use super::*;

    /// What a non-blocking invocation of an action without a delivery config pays: one hit
    /// of the config cache (its answer, "none", cached). Prints ns per look-up; asserts
    /// nothing about time. `cargo test -p gust-controller --lib config_lookup -- --ignored
    /// --nocapture`.
    #[tokio::test]
    #[ignore]
    async fn config_lookup_cost() {
        let cache: EntityCache<(String, String), DeliveryConfig> = EntityCache::default();
        let (ns, action) = ("guest", "hello");
        let look = || async {
            let key = (ns.to_string(), action.to_string());
            cache
                .get_or_fetch(&key, async { Ok::<_, ()>(None) })
                .await
                .unwrap()
        };
        assert!(look().await.is_none());
        let n = 1_000_000;
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(look().await);
        }
        let per = start.elapsed().as_nanos() / n;
        println!("a delivery config look-up (cached, absent): {per} ns");
    }
}
