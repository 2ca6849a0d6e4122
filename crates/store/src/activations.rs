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

/// A place in the order records were written, for a reader that follows new records (the
/// live activations stream): records are found in the order they were written, so one that
/// started earlier but finished later is not passed over. Opaque outside the store; each
/// backend gives it its own meaning (SQLite: the last row id read; PostgreSQL: a
/// transaction id boundary, the last activation id read at it, and the snapshot taken when
/// the reader started, whose records it does not read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WritePosition {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) snapshot: Option<String>,
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
    /// A signal bumped after each record this process writes, when the backend has one
    /// (the embedded store: its writer is this process); readers of new records wait on it
    /// instead of polling. `None`: other processes write too, poll.
    fn records_written(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// The position after every record written so far: reading from it gives only records
    /// written later (PostgreSQL: and possibly a few committed just before).
    async fn write_position(&self) -> Result<WritePosition>;
    /// The position just after record `id` of `namespace`, if it is stored (to resume a
    /// stream after the last record its reader got).
    async fn write_position_of(&self, namespace: &str, id: &str) -> Result<Option<WritePosition>>;
    /// The records of `query.namespace` (and `query.name`) written after `from`, each with
    /// its activation id, in the order they were written, at most `query.limit`, and the
    /// position to read from next. The query's `since`, `upto` and `skip` are not used.
    async fn activations_written_after(
        &self,
        query: &ActivationQuery,
        from: &WritePosition,
    ) -> Result<(Vec<(String, Box<RawValue>)>, WritePosition)>;
    /// Retention: deletes the records of every namespace that started before `start_ms`
    /// (through the per-namespace start index: no index of its own to slow record writes);
    /// returns how many it deleted.
    async fn delete_activations_before(&self, start_ms: u64) -> Result<u64>;
}
