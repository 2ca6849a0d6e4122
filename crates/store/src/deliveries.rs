//! Async delivery (decision 0028): actions' delivery configs, the deliveries in progress
//! (one per non-blocking invocation of a configured action, leased like runs), the dead
//! letters of a namespace and the idempotency keys of invocations.

use async_trait::async_trait;
use gust_model::{DeadLetter, Delivery, DeliveryConfig};

use crate::Result;

#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    async fn delivery_config(
        &self,
        namespace: &str,
        action: &str,
    ) -> Result<Option<DeliveryConfig>>;
    /// Creates or replaces an action's config.
    async fn put_delivery_config(&self, config: &DeliveryConfig) -> Result<()>;
    /// Returns whether there was one.
    async fn delete_delivery_config(&self, namespace: &str, action: &str) -> Result<bool>;

    /// Creates a delivery (ignored if its id exists).
    async fn put_delivery(&self, delivery: &Delivery) -> Result<()>;
    async fn delivery(&self, namespace: &str, id: &str) -> Result<Option<Delivery>>;
    /// Up to `limit` deliveries due by `now_ms` that `owner` may take (owned by it, by
    /// nobody, or by a process whose lease ran out), soonest first.
    async fn due_deliveries(&self, owner: &str, now_ms: u64, limit: u64) -> Result<Vec<Delivery>>;
    /// Replaces a delivery (its attempt, ids, due time, owner, lease, state) if its stored
    /// `attempt` is `expected_attempt` and nobody else live owns it; false otherwise.
    async fn update_delivery(
        &self,
        delivery: &Delivery,
        expected_attempt: u32,
        now_ms: u64,
    ) -> Result<bool>;
    /// Deletes a delivery, and writes a dead letter in the same transaction when given;
    /// returns whether the delivery was there (only then is the letter written; it replaces
    /// a letter of the same id).
    async fn finish_delivery(
        &self,
        namespace: &str,
        id: &str,
        dead: Option<&DeadLetter>,
    ) -> Result<bool>;
    /// Drops every delivery's owner (a store one process uses, at its start).
    async fn release_deliveries(&self) -> Result<()>;

    /// Newest first.
    async fn dead_letters(&self, namespace: &str, skip: u64, limit: u64)
    -> Result<Vec<DeadLetter>>;
    async fn dead_letter(&self, namespace: &str, id: &str) -> Result<Option<DeadLetter>>;
    /// Returns whether there was one.
    async fn delete_dead_letter(&self, namespace: &str, id: &str) -> Result<bool>;

    /// Records `key` of `namespace` as `claim` (until its `expires_ms`), unless an unexpired
    /// one exists at `now_ms`: then returns that one and writes nothing.
    async fn claim_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
        claim: &IdempotencyClaim,
        now_ms: u64,
    ) -> Result<Option<IdempotencyClaim>>;
    /// Replaces `key` of `namespace` by `claim` if it still names `activation_id` (a claim
    /// whose invocation never started, taken over); returns whether it did.
    async fn replace_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
        activation_id: &str,
        claim: &IdempotencyClaim,
    ) -> Result<bool>;
    /// Deletes `key` of `namespace` if it still names `activation_id` (the invocation it was
    /// claimed for was refused, so a retry of the request may run).
    async fn release_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
        activation_id: &str,
    ) -> Result<()>;
    /// Deletes every key expired by `now_ms`; returns how many.
    async fn sweep_idempotency_keys(&self, now_ms: u64) -> Result<u64>;
}

/// What an idempotency key names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdempotencyClaim {
    /// The activation it was claimed for.
    pub activation_id: String,
    /// The action invoked with it (`/namespace/pkg/name`).
    pub action: String,
    /// A digest of the parameters it was invoked with.
    pub digest: String,
    /// When it was claimed, ms since the epoch.
    pub claimed_ms: u64,
    /// When it expires, ms since the epoch.
    pub expires_ms: u64,
}
