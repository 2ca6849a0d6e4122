//! The store: namespaces, actions, packages, API routes, static sites, triggers, rules and
//! their schedules, subscriptions and event source mappings, the journal of accepted but unfinished invocations and activation
//! records. One trait per entity
//! ([`NamespaceStore`], [`ActionStore`], ...), [`Store`] for all of them together, so a
//! subsystem can hold only the part it uses; one module per backend ([`sqlite`],
//! [`postgres`]), and the SQL both backends run alike in one place (`sql`).
//!
//! **Invariants:** an activation record and the removal of its pending journal entry are
//! written in one transaction, and a record is written at most once per activation id
//! (a second write of the same id is ignored). Together with the journal this gives every
//! accepted invocation exactly one record, also across a crash. Every list is ordered by the
//! bytes of its keys (SQLite's `BINARY`, PostgreSQL's `"C"` collation on every key column),
//! on both backends alike.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod actions;
mod activations;
mod admission;
pub mod cache;
mod deliveries;
mod history;
mod journal;
mod mappings;
mod namespaces;
mod packages;
pub mod postgres;
mod record_log;
mod routes;
mod rules;
mod schedules;
mod sites;
mod sql;
pub mod sqlite;
mod subscriptions;
mod triggers;
mod workflows;

use gust_model::Action;

pub use actions::ActionStore;
pub use activations::{ActivationQuery, ActivationStore, WritePosition};
pub use admission::{Admission, AdmissionStore};
pub use deliveries::{DeliveryStore, IdempotencyClaim};
pub use journal::{JournalStore, PendingInvocation};
pub use mappings::MappingStore;
pub use namespaces::NamespaceStore;
pub use packages::PackageStore;
pub use routes::RouteStore;
pub use rules::RuleStore;
pub use schedules::{ScheduleStore, TickClaim};
pub use sites::SiteStore;
pub use subscriptions::SubscriptionStore;
pub use triggers::TriggerStore;
pub use workflows::{ExecutionQuery, RunCommit, WorkflowStore};

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

/// How `put_action`, `put_package`, `put_trigger` and `put_rule` treat an existing entity of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Create; `Conflict` if the name is taken.
    Create,
    /// Replace the entity whose version is this one; `Conflict` if it changed meanwhile.
    Replace { expected_version: String },
}

/// Every part of the store: what a backend implements and what the process wiring holds.
pub trait Store:
    NamespaceStore
    + ActionStore
    + PackageStore
    + RouteStore
    + SiteStore
    + TriggerStore
    + RuleStore
    + ScheduleStore
    + SubscriptionStore
    + MappingStore
    + JournalStore
    + AdmissionStore
    + ActivationStore
    + WorkflowStore
    + DeliveryStore
{
}

impl<T> Store for T where
    T: NamespaceStore
        + ActionStore
        + PackageStore
        + RouteStore
        + SiteStore
        + TriggerStore
        + RuleStore
        + ScheduleStore
        + SubscriptionStore
        + MappingStore
        + JournalStore
        + AdmissionStore
        + ActivationStore
        + WorkflowStore
        + DeliveryStore
{
}

fn unshared() -> StoreError {
    StoreError::Backend(
        "the embedded store serves one process: a cluster needs the PostgreSQL store".into(),
    )
}

/// The range of stored action names inside package `p` (`p/` up to, not including, `p0`:
/// `'0'` follows `'/'`), or every name: one range, so the primary key's index answers it. The
/// upper bound of "every name" is U+10FFFF, which no name reaches.
fn name_range(package: Option<&str>) -> (String, String) {
    match package {
        Some(p) => (format!("{p}/"), format!("{p}0")),
        None => (String::new(), char::MAX.to_string()),
    }
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
