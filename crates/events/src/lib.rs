//! Events: triggers, rules and `fire`, the `whisk.system` catalog with its built-in actions
//! (the `utils` package, the `alarms` feeds and the feeds of every event source), the
//! durable timers that fire triggers on a schedule, the runners of connected sources
//! (queues, topics) and the receiver of webhooks. A trigger is the OpenWhisk entity that rules connect to actions; firing it
//! invokes, through the controller's invoke API, the action of every active rule.
//!
//! **API boundary:** a client of the invocation core: every action runs through
//! [`Controller::invoke`] with an [`Invocation`](gust_controller::Invocation) whose cause is
//! the trigger's activation; failures are [`EventError`]s, which the gateway maps.
//!
//! **Invariant:** a fire that answers with an activation id has had every active rule's
//! invocation accepted (journaled) and the trigger's record stored first. A schedule's tick
//! fires at most once per trigger record (its activation id is derived from the tick), and a
//! tick claimed by a process that dies is fired by another (decision 0020).
//!
//! **May not:** reach the bus, the invoker or a runtime, or know HTTP.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod alarms;
pub mod delivery;
mod delivery_config;
mod destinations;
mod error;
mod fire;
mod hooks;
pub mod listeners;
mod mappings;
mod outputs;
mod rules;
pub mod sources;
pub mod system;
pub mod timers;
mod timing;
mod triggers;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use gust_controller::Controller;
use gust_model::{Rule, Trigger};
use gust_store::Store;
use gust_store::cache::EntityCache;
use serde_json::{Map, Value};
use tokio::sync::Notify;

pub use delivery_config::DeliveryPut;
pub use error::EventError;
pub use fire::{Fired, forwarded_headers};
pub use gust_source::HookRequest;
pub use hooks::Hooked;
pub use rules::RulePut;
pub use sources::Sources;
pub use triggers::TriggerPut;

/// A trigger and the rules that name it: what a fire reads.
#[derive(Debug)]
pub(crate) struct Target {
    trigger: Trigger,
    rules: Vec<Rule>,
}

/// Triggers, rules and fires over the invocation core.
pub struct Events {
    core: Arc<Controller>,
    store: Arc<dyn Store>,
    /// Fire targets by (namespace, trigger), short-lived.
    targets: EntityCache<(String, String), Target>,
    /// Fires counted per namespace in this process: (minute, count).
    fires: Mutex<HashMap<String, (u64, u64)>>,
    /// Woken when a schedule changes, so the timers look again at once.
    timers: Arc<Notify>,
    /// The event sources this process knows.
    sources: Arc<Sources>,
    /// The ids of the source events being fired in this process.
    firing: Mutex<HashSet<String>>,
    /// How this process's delivery loop runs, once it started ([`delivery::Deliveries`]).
    delivery: OnceLock<delivery::DeliveryOptions>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Events {
    /// Events over `core`, waking `timers` when a schedule changes, receiving webhooks of
    /// `sources`.
    pub fn new(core: Arc<Controller>, timers: Arc<Notify>, sources: Arc<Sources>) -> Arc<Events> {
        Arc::new(Events {
            store: core.store().clone(),
            core,
            targets: EntityCache::default(),
            fires: Mutex::new(HashMap::new()),
            timers,
            sources,
            firing: Mutex::default(),
            delivery: OnceLock::new(),
        })
    }

    pub fn core(&self) -> &Arc<Controller> {
        &self.core
    }

    /// The connection `subject:` destinations of deliveries publish on: the `nats` source and
    /// the parameters the delivery loop was given, if it has them.
    pub(crate) fn delivery_publisher(
        &self,
    ) -> Option<(Arc<dyn gust_source::Source>, Map<String, Value>)> {
        let config = self.delivery.get()?.nats.clone()?;
        let source = self.sources.get("nats")?.clone();
        Some((source, config))
    }

    /// Forgets the cached fire target of `ns/trigger` after a write.
    fn forget(&self, ns: &str, trigger: &str) {
        self.targets.forget(&(ns.to_string(), trigger.to_string()));
    }
}
