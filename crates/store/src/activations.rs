//! Activation records, written once per activation id.

use async_trait::async_trait;
use gust_model::{Activation, EncodedActivation};
use serde_json::value::RawValue;

use crate::Result;

/// A filter on the activation list, newest first.
#[derive(Debug, Clone, Default)]
pub struct ActivationQuery {
    pub namespace: String,
    pub name: Option<String>,
    /// Only records that started at or after this time (ms).
    pub since: Option<u64>,
    /// Only records that started at or before this time (ms).
    pub upto: Option<u64>,
    pub skip: u64,
    pub limit: u64,
}

#[async_trait]
pub trait ActivationStore: Send + Sync + 'static {
    /// Stores a record (once: a second record for the same id is ignored) and clears its
    /// journal entry, in one transaction; durable when this returns. Returns whether this
    /// record was written (false: one for the same id was already stored).
    async fn put_activation(&self, record: &EncodedActivation) -> Result<bool>;
    /// Stores the record of an invocation run for the first time (no record can exist for
    /// its id yet) and clears its journal entry; durable when this returns, and every read
    /// made after it returns sees it. Unlike [`ActivationStore::put_activation`] a backend
    /// need not check for an earlier record first (the embedded store appends it to its
    /// record log).
    async fn put_new_activation(&self, record: &EncodedActivation) -> Result<()> {
        self.put_activation(record).await.map(|_| ())
    }
    async fn activation(&self, namespace: &str, id: &str) -> Result<Option<Activation>>;
    /// The stored records (`Activation` JSON, as stored), newest first, ties by id.
    async fn list_activations(&self, query: &ActivationQuery) -> Result<Vec<Box<RawValue>>>;
    async fn count_activations(&self, query: &ActivationQuery) -> Result<u64>;
    /// Retention: deletes the records of every namespace that started before `start_ms`
    /// (through the per-namespace start index: no index of its own to slow record writes);
    /// returns how many it deleted.
    async fn delete_activations_before(&self, start_ms: u64) -> Result<u64>;
}
