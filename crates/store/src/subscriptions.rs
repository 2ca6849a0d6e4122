//! Subscriptions: the triggers fed by event sources (webhooks, queues, topics), with each
//! one's configuration and, for a connected source, which process runs it until when. A
//! subscription is claimed by compare-and-swap on its owner and lease, so one process at a
//! time runs it (decision 0021).

use async_trait::async_trait;
use gust_model::Subscription;
use serde_json::{Map, Value};

use crate::Result;

#[async_trait]
pub trait SubscriptionStore: Send + Sync + 'static {
    /// Creates or replaces a trigger's subscription; a replaced one keeps its owner (who
    /// restarts it, seeing its newer `changed_ms`) and drops its status.
    async fn put_subscription(&self, subscription: &Subscription) -> Result<()>;
    async fn subscription(&self, namespace: &str, trigger: &str) -> Result<Option<Subscription>>;
    /// Deletes a trigger's subscription; returns whether there was one.
    async fn delete_subscription(&self, namespace: &str, trigger: &str) -> Result<bool>;
    /// The connected, unpaused subscriptions `owner` runs or may claim: owned by it, by
    /// nobody, or by a process whose lease ran out at `now_ms`.
    async fn runnable_subscriptions(&self, owner: &str, now_ms: u64) -> Result<Vec<Subscription>>;
    /// Claims a subscription for `owner` until `lease_ms`; false if another live process
    /// holds it or it no longer runs.
    async fn claim_subscription(
        &self,
        namespace: &str,
        trigger: &str,
        owner: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<bool>;
    /// Extends the lease of every subscription `owner` holds to `lease_ms`.
    async fn renew_subscriptions(&self, owner: &str, lease_ms: u64) -> Result<u64>;
    /// Stores what a subscription's runner says of it.
    async fn set_subscription_status(
        &self,
        namespace: &str,
        trigger: &str,
        status: &Map<String, Value>,
    ) -> Result<()>;
    /// Drops every subscription's owner (a store that one process uses, at its start).
    async fn release_subscriptions(&self) -> Result<()>;
}
