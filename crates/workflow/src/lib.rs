//! Durable workflows (decision 0028): Amazon States Language definitions ([`asl`]), the
//! interpreter over a run's snapshot (`engine`), the runner that drives runs durably
//! (`runner`) and the service the APIs call (`service`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod asl;
pub mod engine;
mod error;
pub mod runner;
mod service;
mod targets;

pub use error::WorkflowError;
pub use runner::{Runner, TaskSignal};
pub use service::{MAX_HISTORY_PAGE, Started, Workflows};
pub use targets::{Target, targets};
