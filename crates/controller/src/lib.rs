//! The controller, Gust's invocation core: identity (who a key names, which namespaces it may
//! use), the catalog (actions, packages, API routes) and resolution of the action a request
//! names, one [`Invocation`] value and one way to invoke it ([`Controller::invoke`]), the
//! namespaces' throttles, the scheduler that picks an invoker, the wait for blocking results,
//! and recovery of journaled invocations.
//!
//! **API boundary:** every producer of invocations (the gateway, compositions, and the
//! coming rules, sources and workflows) calls this crate with typed values; every failure is
//! a [`ControllerError`], which the gateway maps to one HTTP status and message.
//!
//! **Invariant:** a non-blocking invocation is journaled in the store before its id is
//! returned; a blocking one is journaled before an id is returned without its result. Every
//! id a client sees therefore ends with exactly one record.
//!
//! **May not know:** sequences and conductors (they plug in through [`Composer`]), static
//! sites, triggers, event sources, or HTTP.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod activations;
pub mod catalog;
mod compose;
mod error;
mod handler;
mod identity;
mod invoke;
mod scheduler;
mod secrets;
mod throttle;
pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gust_bus::Bus;
use gust_invoker::Invoker;
use gust_keyring::Keyring;
use gust_model::{Action, Namespace, Package, Route, SystemLimits};
use gust_runtime_process::kinds::Kinds;
use gust_runtime_wasm::WasmRuntime;
use gust_store::Store;
use gust_store::cache::EntityCache;
use tokio::sync::oneshot;

pub use activations::{Follow, FollowFrom, MAX_STREAMS};
pub use catalog::actions::{ActionPut, ExecPut, Resolved};
pub use catalog::apis;
pub use catalog::packages::PackagePut;
pub use compose::Composer;
pub use error::ControllerError;
pub use gust_model::Identity;
pub use gust_store::ActivationQuery;
pub use handler::HandlerOutcome;
pub use identity::{SignatureCheck, constant_time_eq};
pub use invoke::{
    DELIVERY_FIRST_LOOK, IDEMPOTENCY_TTL, Idempotent, Invocation, InvokeOutcome, MAX_BLOCKING_WAIT,
    Prepared, TAKE_OVER_AFTER, Wait, check_idempotency_key, encode, params_digest, prepare_input,
};
pub use scheduler::Scheduler;

/// Entities cached by (namespace, name).
type ByName<V> = EntityCache<(String, String), V>;

/// How long a single node trusts a cached action or package (its own writes forget them).
const LOCAL_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// A cache of entities by name: one second in a cluster (other controllers write),
/// [`LOCAL_TTL`] on a single node.
fn entity_cache<V>(clustered: bool) -> ByName<V> {
    if clustered {
        EntityCache::default()
    } else {
        EntityCache::with_ttl(LOCAL_TTL)
    }
}

/// Blocking callers waiting for their record (raw JSON; None when the completion came
/// without it), by activation id.
type Waiters = Mutex<HashMap<String, oneshot::Sender<Option<Box<serde_json::value::RawValue>>>>>;

pub struct Controller {
    id: String,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    runtime: Arc<WasmRuntime>,
    /// Process kinds (Node.js, Python, native) the invokers run.
    kinds: Kinds,
    scheduler: Scheduler,
    /// The invoker of this process, when the bus is in-process too: blocking invocations
    /// are handed to it directly ([`ControllerBuilder::local_invoker`]).
    local: Option<Arc<Invoker>>,
    /// Run compositions and built-in actions, the first that claims an action; without any,
    /// every action runs its own code.
    composers: Vec<Arc<dyn Composer>>,
    system: SystemLimits,
    waiters: Waiters,
    /// Namespaces by API key uuid.
    identities: EntityCache<String, Namespace>,
    /// Namespaces by name (the owners of web actions).
    owners: EntityCache<String, Namespace>,
    actions: ByName<Action>,
    packages: ByName<Package>,
    /// Actions' delivery configs (async delivery, decision 0028), absent ones included: read
    /// for every non-blocking invocation.
    deliveries: ByName<gust_model::DeliveryConfig>,
    /// API routes by (namespace, base path).
    routes: ByName<Vec<Route>>,
    throttles: throttle::Throttles,
    /// One of a cluster's controllers: limits are counted in the shared store, the
    /// scheduler follows invokers' heartbeats, and stale journal entries are swept.
    clustered: bool,
    /// Seals secret parameters in the write path (decision 0022); opens them only for a
    /// wasi:http handler it runs itself, just before its sandbox.
    keyring: Arc<Keyring>,
    /// Signs and checks scoped tokens, with keys derived from `keyring`.
    tokens: gust_tokens::TokenKeys,
    /// The URL clients reach this API at: an action given a token gets it as `__OW_API_HOST`.
    api_host: Option<String>,
    /// Live activation streams open, per namespace.
    streams: activations::Streams,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("id", &self.id).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds a [`Controller`]: what it talks to, then what it offers.
pub struct ControllerBuilder {
    id: String,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    runtime: Arc<WasmRuntime>,
    scheduler: Option<Scheduler>,
    system: SystemLimits,
    kinds: Kinds,
    local: Option<Arc<Invoker>>,
    composers: Vec<Arc<dyn Composer>>,
    clustered: bool,
    keyring: Option<Arc<Keyring>>,
    api_host: Option<String>,
}

impl ControllerBuilder {
    /// Sends work to the invokers `scheduler` knows (default: those whose heartbeats it
    /// hears).
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// One of a cluster's controllers (`gust controller`): any number of them share the
    /// store (which must count limits across processes: PostgreSQL) and the bus; the
    /// invokers are the ones whose heartbeats it hears, and stale journal entries are swept.
    pub fn clustered(mut self) -> Self {
        self.clustered = true;
        self
    }

    pub fn system_limits(mut self, system: SystemLimits) -> Self {
        self.system = system;
        self
    }

    /// Accepts actions of these process kinds.
    pub fn kinds(mut self, kinds: Kinds) -> Self {
        self.kinds = kinds;
        self
    }

    /// Hands blocking invocations to `invoker` directly, on the request's own task, instead
    /// of through the bus: only for an invoker in this process on an in-process bus, where a
    /// blocking invocation is not journaled either way (a crash loses it with its caller's
    /// connection). Non-blocking invocations still go through the journal and the bus.
    pub fn local_invoker(mut self, invoker: Arc<Invoker>) -> Self {
        self.local = Some(invoker);
        self
    }

    /// Runs the actions `composer` claims (compositions, built-in actions) with it; several
    /// composers are asked in the order they were added.
    pub fn composer(mut self, composer: Arc<dyn Composer>) -> Self {
        self.composers.push(composer);
        self
    }

    /// Seals secret parameters under `keyring`'s current key and signs scoped tokens with
    /// keys derived from it (default: a random key of its own, for tests: what it seals opens
    /// nowhere else, what it signs verifies nowhere else).
    pub fn keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// The URL clients reach this API at (`http://host:port`), given to an action with its
    /// own token (annotation `api-token-scope`) as `__OW_API_HOST`.
    pub fn api_host(mut self, url: impl Into<String>) -> Self {
        self.api_host = Some(url.into());
        self
    }

    pub fn build(self) -> Arc<Controller> {
        let keyring = self
            .keyring
            .unwrap_or_else(|| Arc::new(Keyring::generate()));
        Arc::new(Controller {
            id: self.id,
            store: self.store,
            bus: self.bus,
            runtime: self.runtime,
            kinds: self.kinds,
            scheduler: self
                .scheduler
                .unwrap_or_else(Scheduler::following_heartbeats),
            local: self.local,
            composers: self.composers,
            system: self.system,
            waiters: Mutex::new(HashMap::new()),
            identities: Default::default(),
            owners: Default::default(),
            // A single node's actions and packages are written through it alone (each write
            // forgets its entry): they are trusted longer than a cluster's.
            actions: entity_cache(self.clustered),
            packages: entity_cache(self.clustered),
            deliveries: Default::default(),
            routes: Default::default(),
            throttles: throttle::Throttles::default(),
            streams: activations::Streams::default(),
            clustered: self.clustered,
            tokens: gust_tokens::TokenKeys::new(keyring.clone()),
            keyring,
            api_host: self.api_host,
        })
    }
}

impl Controller {
    /// A controller with identity `id` over `store`, `bus` and the Wasm `runtime`.
    pub fn builder(
        id: impl Into<String>,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        runtime: Arc<WasmRuntime>,
    ) -> ControllerBuilder {
        ControllerBuilder {
            id: id.into(),
            store,
            bus,
            runtime,
            scheduler: None,
            system: SystemLimits::default(),
            kinds: Kinds::none(),
            local: None,
            composers: Vec::new(),
            clustered: false,
            keyring: None,
            api_host: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The process kinds accepted (listed by `GET /api/v1`).
    pub fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    /// The invokers this controller sends work to now.
    pub fn invokers(&self) -> Vec<String> {
        self.scheduler.invokers()
    }

    pub fn system_limits(&self) -> SystemLimits {
        self.system
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The master keys: for what seals and opens secrets outside the catalog (the event
    /// sources' configurations, opened only where a source runs).
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// Whether this is one of a cluster's controllers (its records may race with a sweep's).
    pub fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// Starts the task that takes completions from the bus; a clustered controller also
    /// starts following invokers' heartbeats and sweeping stale journal entries.
    pub async fn start(self: &Arc<Self>) -> Result<(), ControllerError> {
        invoke::start_completions(self).await?;
        if self.clustered {
            invoke::follow_invokers(self).await?;
            tokio::spawn(invoke::sweep_stale(self.clone()));
        }
        Ok(())
    }
}
