//! The controller: authenticates and authorizes each request, enriches an invocation with
//! the action's parameters, applies the namespace's throttles, hands the invocation to an
//! invoker chosen by the scheduler over the bus, and waits for blocking results.
//!
//! **API boundary:** the gateway calls only the methods of [`Controller`] with typed values;
//! every failure is a [`ControllerError`], which the gateway maps to one HTTP status and
//! message.
//!
//! **Invariant:** a non-blocking invocation is journaled in the store before its id is
//! returned; a blocking one is journaled before an id is returned without its result. Every
//! id a client sees therefore ends with exactly one record.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod actions;
pub mod apis;
mod cache;
mod error;
mod handler;
mod invoke;
mod packages;
mod scheduler;
mod sequence;
pub mod sites;
mod throttle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gust_bus::Bus;
use gust_model::{Action, Namespace, Package, Route, SystemLimits};
use gust_runtime_wasm::WasmRuntime;
use gust_store::Store;
use tokio::sync::oneshot;

pub use actions::{ActionPut, ExecPut, Resolved};
pub use error::ControllerError;
pub use gust_store::ActivationQuery;
pub use handler::HandlerOutcome;
pub use invoke::{InvokeOutcome, MAX_BLOCKING_WAIT};
pub use packages::PackagePut;
pub use scheduler::Scheduler;
pub use sequence::Cause;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub namespace: String,
    pub uuid: String,
    pub limits: gust_model::NamespaceLimits,
}

/// Entities cached by (namespace, name).
type ByName<V> = cache::EntityCache<(String, String), V>;

/// Blocking callers waiting for their record (raw JSON; None when the completion came
/// without it), by activation id.
type Waiters = Mutex<HashMap<String, oneshot::Sender<Option<Box<serde_json::value::RawValue>>>>>;

pub struct Controller {
    id: String,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    runtime: Arc<WasmRuntime>,
    /// Process kinds (Node.js, Python, native) the invokers run; none until set.
    kinds: std::sync::OnceLock<gust_runtime_process::kinds::Kinds>,
    scheduler: Scheduler,
    /// The invoker of this process, when the bus is in-process too: blocking invocations
    /// are handed to it directly ([`Controller::set_local_invoker`]).
    local: std::sync::OnceLock<Arc<gust_invoker::Invoker>>,
    system: SystemLimits,
    waiters: Waiters,
    /// Namespaces by API key uuid.
    identities: cache::EntityCache<String, Namespace>,
    /// Namespaces by name (the owners of web actions).
    owners: cache::EntityCache<String, Namespace>,
    actions: ByName<Action>,
    packages: ByName<Package>,
    /// API routes by (namespace, base path).
    routes: ByName<Vec<Route>>,
    /// Static sites by (namespace, name).
    sites: ByName<gust_model::Site>,
    /// Static sites' file contents by (namespace, hash).
    contents: sites::ContentCache,
    throttles: throttle::Throttles,
    /// One of a cluster's controllers: limits are counted in the shared store, the
    /// scheduler follows invokers' heartbeats, and stale journal entries are swept.
    clustered: bool,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("id", &self.id).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Controller {
    pub fn new(
        id: impl Into<String>,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        runtime: Arc<WasmRuntime>,
        scheduler: Scheduler,
        system: SystemLimits,
    ) -> Arc<Self> {
        Self::build(id.into(), store, bus, runtime, scheduler, system, false)
    }

    /// One of a cluster's controllers (`gust controller`): any number of them share the
    /// store (which must count limits across processes: PostgreSQL) and the bus; the
    /// invokers are the ones whose heartbeats it hears.
    pub fn clustered(
        id: impl Into<String>,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        runtime: Arc<WasmRuntime>,
        system: SystemLimits,
    ) -> Arc<Self> {
        let scheduler = Scheduler::following_heartbeats();
        Self::build(id.into(), store, bus, runtime, scheduler, system, true)
    }

    fn build(
        id: String,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        runtime: Arc<WasmRuntime>,
        scheduler: Scheduler,
        system: SystemLimits,
        clustered: bool,
    ) -> Arc<Self> {
        Arc::new(Controller {
            id,
            store,
            bus,
            runtime,
            kinds: std::sync::OnceLock::new(),
            scheduler,
            local: std::sync::OnceLock::new(),
            system,
            waiters: Mutex::new(HashMap::new()),
            identities: Default::default(),
            owners: Default::default(),
            actions: Default::default(),
            packages: Default::default(),
            routes: Default::default(),
            sites: Default::default(),
            contents: sites::content_cache(),
            throttles: throttle::Throttles::default(),
            clustered,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Accepts actions of these process kinds (set once, at start).
    pub fn set_kinds(&self, kinds: gust_runtime_process::kinds::Kinds) {
        let _ = self.kinds.set(kinds);
    }

    /// Hands blocking invocations to `invoker` directly, on the request's own task, instead
    /// of through the bus: only for an invoker in this process on an in-process bus, where a
    /// blocking invocation is not journaled either way (a crash loses it with its caller's
    /// connection). Non-blocking invocations still go through the journal and the bus.
    pub fn set_local_invoker(&self, invoker: Arc<gust_invoker::Invoker>) {
        let _ = self.local.set(invoker);
    }

    /// The process kinds accepted (listed by `GET /api/v1`).
    pub fn kinds(&self) -> &gust_runtime_process::kinds::Kinds {
        static NONE: gust_runtime_process::kinds::Kinds =
            gust_runtime_process::kinds::Kinds::none();
        self.kinds.get().unwrap_or(&NONE)
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

    async fn namespace_by_uuid(
        &self,
        uuid: &str,
    ) -> Result<Option<Arc<Namespace>>, ControllerError> {
        self.identities
            .get_or_fetch(&uuid.to_string(), async {
                Ok(self.store.namespace_by_uuid(uuid).await?)
            })
            .await
    }

    /// The identity of namespace `name`'s owner (web actions run as their owner); `None` if
    /// there is no such namespace.
    pub async fn owner(&self, name: &str) -> Result<Option<Identity>, ControllerError> {
        let ns = self
            .owners
            .get_or_fetch(&name.to_string(), async {
                Ok(self.store.namespace(name).await?)
            })
            .await?;
        Ok(ns.map(|ns| Identity {
            namespace: ns.name.clone(),
            uuid: ns.uuid.clone(),
            limits: ns.limits,
        }))
    }

    /// Checks an API key (`uuid`, `key`); 401 if unknown or wrong.
    pub async fn authenticate(&self, uuid: &str, key: &str) -> Result<Identity, ControllerError> {
        match self.namespace_by_uuid(uuid).await? {
            Some(ns) if constant_time_eq(ns.key.as_bytes(), key.as_bytes()) => Ok(Identity {
                namespace: ns.name.clone(),
                uuid: ns.uuid.clone(),
                limits: ns.limits,
            }),
            _ => Err(ControllerError::Unauthenticated),
        }
    }

    /// Resolves the namespace of a path (`_` is the caller's own) and checks the caller may
    /// use it; 403 otherwise.
    pub fn authorize<'a>(
        &self,
        who: &'a Identity,
        ns: &'a str,
    ) -> Result<&'a str, ControllerError> {
        if ns == "_" || ns == who.namespace {
            Ok(&who.namespace)
        } else {
            Err(ControllerError::Forbidden(ns.to_string()))
        }
    }

    /// The namespace record of the caller (for its limits).
    pub async fn namespace(&self, name: &str) -> Result<Namespace, ControllerError> {
        self.store
            .namespace(name)
            .await?
            .ok_or(ControllerError::NotFound)
    }

    /// Recovery at start: every invocation journaled but not recorded (the process stopped
    /// before it finished) is sent to an invoker again. Returns how many.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, ControllerError> {
        let pending = self.store.pending().await?;
        let n = pending.len();
        for p in pending {
            self.resubmit(p).await;
        }
        Ok(n)
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

/// Whether two secrets are equal, in time that depends on their length only (a caller timing
/// the answer learns nothing of where they differ).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
