//! The journal: invocations accepted but not yet recorded. An entry is written before an
//! invocation is handed to the bus and cleared by its record (in the same transaction), so
//! whatever is left after a crash is exactly what must run again.

use async_trait::async_trait;

use crate::{Result, unshared};

/// An accepted invocation not yet recorded: the serialized bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInvocation {
    pub activation_id: String,
    pub accepted_at: u64,
    pub message: Vec<u8>,
}

#[async_trait]
pub trait JournalStore: Send + Sync + 'static {
    /// Journals an accepted invocation; durable when this returns.
    async fn put_pending(&self, pending: PendingInvocation) -> Result<()>;
    /// Journals an invocation unless its record already exists (a blocking call whose wait
    /// ran out races with its own completion). Returns whether it was journaled.
    async fn put_pending_unless_recorded(&self, pending: PendingInvocation) -> Result<bool>;
    /// Every journaled invocation, oldest first.
    async fn pending(&self) -> Result<Vec<PendingInvocation>>;
    /// Whether activation `id` of `namespace` was accepted: it is journaled or recorded.
    async fn is_accepted(&self, namespace: &str, id: &str) -> Result<bool>;

    /// Marks a journal entry as accepted at `now_ms` (a long-running sequence, so a sweep of
    /// stale entries does not take it for lost). Only stores that sweep need it.
    async fn refresh_pending(&self, activation_id: &str, now_ms: u64) -> Result<()> {
        let _ = (activation_id, now_ms);
        Ok(())
    }

    /// Drops a journal entry of an invocation that was not handed to an invoker after all.
    async fn forget_pending(&self, activation_id: &str) -> Result<()> {
        let _ = activation_id;
        Err(unshared())
    }

    /// Claims the journal entries accepted before `before_ms` that are still without a record
    /// (their invocation was lost on the way to an invoker, or is very late): marks them
    /// accepted at `now_ms`, so another process sweeping at the same time does not claim
    /// them too, and returns them to be sent again. Only a store shared by processes
    /// implements it.
    async fn claim_stale_pending(
        &self,
        before_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<PendingInvocation>> {
        let _ = (before_ms, now_ms);
        Err(unshared())
    }
}
