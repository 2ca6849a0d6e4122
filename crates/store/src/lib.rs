//! The store: namespaces, actions, activation records and the journal of accepted but
//! unfinished invocations. One interface ([`Store`]), one module per backend.
//!
//! **Invariant:** an activation record and the removal of its pending journal entry are
//! written in one transaction, and a record is written at most once per activation id
//! (a second write of the same id is ignored). Together with the journal this gives every
//! accepted invocation exactly one record, also across a crash.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cache;
pub mod postgres;
mod record_log;
pub mod sqlite;

use async_trait::async_trait;
use gust_model::{
    Action, Activation, EncodedActivation, Namespace, NamespaceLimits, Package, Route, Site,
};
use serde_json::value::RawValue;

/// Store failures. `NotFound` and `Conflict` are caused by users; `Backend` by the host.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict")]
    Conflict,
    #[error("store failure: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// How `put_action` treats an existing action of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Create; `Conflict` if the name is taken.
    Create,
    /// Replace the action whose version is this one; `Conflict` if it changed meanwhile.
    Replace { expected_version: String },
}

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

/// An accepted invocation not yet recorded: the serialized bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInvocation {
    pub activation_id: String,
    pub accepted_at: u64,
    pub message: Vec<u8>,
}

/// What [`Store::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted and journaled.
    Admitted,
    /// Refused: the namespace had `count` invocations this minute already.
    PerMinute { count: u64 },
    /// Refused: the namespace had `count` invocations in flight already.
    Concurrent { count: u64 },
}

/// The storage interface every backend implements.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn create_namespace(&self, ns: &Namespace) -> Result<()>;
    async fn namespace_by_uuid(&self, uuid: &str) -> Result<Option<Namespace>>;
    async fn namespace(&self, name: &str) -> Result<Option<Namespace>>;
    async fn list_namespaces(&self) -> Result<Vec<Namespace>>;
    async fn set_namespace_key(&self, name: &str, uuid: &str, key: &str) -> Result<()>;
    async fn set_namespace_limits(&self, name: &str, limits: NamespaceLimits) -> Result<()>;
    /// Deletes a namespace with its actions and activations.
    async fn delete_namespace(&self, name: &str) -> Result<()>;

    /// The action, with `exec.code` filled in (base64) when `with_code`.
    async fn action(&self, namespace: &str, name: &str, with_code: bool) -> Result<Option<Action>>;
    /// The raw code of the action whose code hash is `code_hash`.
    async fn action_code(&self, namespace: &str, name: &str) -> Result<Option<Vec<u8>>>;
    /// Writes an action. `code` replaces the stored code when given; an update without code
    /// keeps the old code (and `action.code_hash` must then be the old hash).
    async fn put_action(&self, action: &Action, code: Option<&[u8]>, mode: PutMode) -> Result<()>;
    /// Deletes and returns the action.
    async fn delete_action(&self, namespace: &str, name: &str) -> Result<Option<Action>>;
    /// The actions of a namespace (every one, also those in packages), or of one of its
    /// packages, by name.
    async fn list_actions(
        &self,
        namespace: &str,
        package: Option<&str>,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Action>>;
    async fn count_actions(&self, namespace: &str, package: Option<&str>) -> Result<u64>;

    async fn package(&self, namespace: &str, name: &str) -> Result<Option<Package>>;
    /// Writes a package or binding (`Replace` compares versions like `put_action`).
    async fn put_package(&self, package: &Package, mode: PutMode) -> Result<()>;
    /// Deletes and returns the package, with every action in it, in one transaction.
    async fn delete_package(&self, namespace: &str, name: &str) -> Result<Option<Package>>;
    /// The packages of a namespace by name; only the published ones when `public_only`.
    async fn list_packages(
        &self,
        namespace: &str,
        public_only: bool,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Package>>;
    async fn count_packages(&self, namespace: &str, public_only: bool) -> Result<u64>;

    /// Writes an API route, replacing the one with the same base path, path and method.
    async fn put_route(&self, route: &Route) -> Result<()>;
    /// Deletes the routes of API `base_path`: every one, or those of `path` (and `method`);
    /// returns how many.
    async fn delete_routes(
        &self,
        namespace: &str,
        base_path: &str,
        path: Option<&str>,
        method: Option<&str>,
    ) -> Result<u64>;
    /// The routes of a namespace, or of its API `base_path`, by base path, path and method.
    async fn list_routes(&self, namespace: &str, base_path: Option<&str>) -> Result<Vec<Route>>;
    /// Stores the content of a site file under `hash` (its SHA-256, checked by the caller),
    /// keeping the stored copy if there is one; marks it used now.
    async fn put_site_blob(&self, namespace: &str, hash: &str, content: Vec<u8>) -> Result<()>;
    /// The sizes of those of `hashes` that are stored, each marked used now (so a sweep
    /// leaves them for a deploy about to name them).
    async fn touch_site_blobs(
        &self,
        namespace: &str,
        hashes: &[String],
    ) -> Result<std::collections::HashMap<String, u64>>;
    async fn site_blob(&self, namespace: &str, hash: &str) -> Result<Option<Vec<u8>>>;
    /// Bytes of site content a namespace stores (named by a site or not).
    async fn site_blob_bytes(&self, namespace: &str) -> Result<u64>;
    /// Deletes the blobs of `namespace` that no site names and that were last used before
    /// `before` (ms); returns how many.
    async fn sweep_site_blobs(&self, namespace: &str, before: u64) -> Result<u64>;
    async fn site(&self, namespace: &str, name: &str) -> Result<Option<Site>>;
    /// Writes a site, replacing the one of the same name.
    async fn put_site(&self, site: &Site) -> Result<()>;
    /// Deletes and returns the site (its blobs stay until swept).
    async fn delete_site(&self, namespace: &str, name: &str) -> Result<Option<Site>>;
    /// The sites of a namespace by name.
    async fn list_sites(&self, namespace: &str) -> Result<Vec<Site>>;

    /// The code hashes of every action of every namespace (for sweeping compiled artifacts).
    async fn code_hashes(&self) -> Result<Vec<String>>;

    /// Journals an accepted invocation; durable when this returns.
    async fn put_pending(&self, pending: PendingInvocation) -> Result<()>;
    /// Journals an invocation unless its record already exists (a blocking call whose wait
    /// ran out races with its own completion). Returns whether it was journaled.
    async fn put_pending_unless_recorded(&self, pending: PendingInvocation) -> Result<bool>;
    /// Every journaled invocation, oldest first.
    async fn pending(&self) -> Result<Vec<PendingInvocation>>;

    /// Cluster-wide throttling: journals `pending` as an invocation of `namespace` unless that
    /// would exceed the namespace's invocations this minute (`now_ms`'s minute) or its
    /// invocations in flight (journaled and not yet recorded), atomically with respect to
    /// every other process admitting for the same namespace. The entry needs only to be
    /// durable as a counter (the bus keeps the invocation itself), so a backend may commit it
    /// lazily. Only a store shared by processes implements it.
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
    /// Stores a record (once: a second record for the same id is ignored) and clears its
    /// journal entry, in one transaction; durable when this returns. Returns whether this
    /// record was written (false: one for the same id was already stored).
    async fn put_activation(&self, record: &EncodedActivation) -> Result<bool>;
    /// Stores the record of an invocation run for the first time (no record can exist for
    /// its id yet) and clears its journal entry; durable when this returns, and every read
    /// made after it returns sees it. Unlike [`Store::put_activation`] a backend need not check
    /// for an earlier record first (the embedded store appends it to its record log).
    async fn put_new_activation(&self, record: &EncodedActivation) -> Result<()> {
        self.put_activation(record).await.map(|_| ())
    }
    async fn activation(&self, namespace: &str, id: &str) -> Result<Option<Activation>>;
    /// The stored records (`Activation` JSON, as stored), newest first.
    async fn list_activations(&self, query: &ActivationQuery) -> Result<Vec<Box<RawValue>>>;
    async fn count_activations(&self, query: &ActivationQuery) -> Result<u64>;
    /// Retention: deletes the records of every namespace that started before `start_ms`
    /// (through the per-namespace start index: no index of its own to slow record writes);
    /// returns how many it deleted.
    async fn delete_activations_before(&self, start_ms: u64) -> Result<u64>;
}

fn unshared() -> StoreError {
    StoreError::Backend(
        "the embedded store serves one process: a cluster needs the PostgreSQL store".into(),
    )
}

/// The range of stored action names inside package `p`: from `p/` up to (not including)
/// `p0` (`'0'` follows `'/'`), so the primary key's index answers it.
fn package_range(p: &str) -> (String, String) {
    (format!("{p}/"), format!("{p}0"))
}

/// An action from its stored document (without code), its code hash and, if read, its code.
fn action_from(doc: &str, code_hash: String, code: Option<Vec<u8>>) -> Result<Action> {
    let mut action: Action = serde_json::from_str(doc)?;
    action.code_hash = code_hash;
    if let Some(code) = code {
        // Binary code (Wasm, zips, executables) travels as base64, source as its text.
        action.exec.code = Some(match String::from_utf8(code) {
            Ok(text) if !action.exec.binary => text,
            Ok(text) => base64::Engine::encode(&base64::engine::general_purpose::STANDARD, text),
            Err(e) => {
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, e.into_bytes())
            }
        });
    }
    Ok(action)
}
