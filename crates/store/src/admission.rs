//! Cluster-wide throttling: counting a namespace's invocations across every controller.

use async_trait::async_trait;
use gust_model::NamespaceLimits;

use crate::{PendingInvocation, Result, unshared};

/// What [`AdmissionStore::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted and journaled.
    Admitted,
    /// Refused: the namespace had `count` invocations this minute already.
    PerMinute { count: u64 },
    /// Refused: the namespace had `count` invocations in flight already.
    Concurrent { count: u64 },
}

#[async_trait]
pub trait AdmissionStore: Send + Sync + 'static {
    /// Journals `pending` as an invocation of `namespace` unless that would exceed the
    /// namespace's invocations this minute (`now_ms`'s minute) or its invocations in flight
    /// (journaled and not yet recorded), atomically with respect to every other process
    /// admitting for the same namespace. The entry needs only to be durable as a counter (the
    /// bus keeps the invocation itself), so a backend may commit it lazily. Only a store
    /// shared by processes implements it.
    async fn admit(
        &self,
        namespace: &str,
        limits: &NamespaceLimits,
        now_ms: u64,
        pending: PendingInvocation,
    ) -> Result<Admission> {
        let _ = (namespace, limits, now_ms, pending);
        Err(unshared())
    }

    /// Counts one trigger fire of `namespace` in `now_ms`'s minute unless the namespace had
    /// `per_minute` fires in that minute already (then `PerMinute`), atomically with respect
    /// to every other process. Only a store shared by processes implements it.
    async fn admit_fire(&self, namespace: &str, per_minute: u64, now_ms: u64) -> Result<Admission> {
        let _ = (namespace, per_minute, now_ms);
        Err(unshared())
    }
}
