//! Triggers. Deleting a trigger deletes its schedule (if a timer feeds it) in the same
//! transaction; the rules that name it stay, and read inactive (OpenWhisk's behaviour).

use async_trait::async_trait;
use gust_model::Trigger;

use crate::{PutMode, Result};

#[async_trait]
pub trait TriggerStore: Send + Sync + 'static {
    async fn trigger(&self, namespace: &str, name: &str) -> Result<Option<Trigger>>;
    /// Writes a trigger (`Replace` compares versions like `put_action`).
    async fn put_trigger(&self, trigger: &Trigger, mode: PutMode) -> Result<()>;
    /// Deletes and returns the trigger, and deletes its schedule.
    async fn delete_trigger(&self, namespace: &str, name: &str) -> Result<Option<Trigger>>;
    /// The triggers of a namespace by name.
    async fn list_triggers(&self, namespace: &str, skip: u64, limit: u64) -> Result<Vec<Trigger>>;
    async fn count_triggers(&self, namespace: &str) -> Result<u64>;
}
