//! Wiring: one place that builds a Gust process's parts from its settings, shared by
//! `gust serve` (every part in one process) and the cluster roles (`gust controller`,
//! `gust invoker`): the store, the bus, the Wasm runtime, an invoker, a controller with its
//! composers (compositions, the system namespace's built-in actions), events (triggers,
//! rules, the system catalog, timers, event sources), the gateway with static sites, and record retention.
//!
//! **May not:** parse arguments or print: the CLI decides what to build and says what it
//! built; this crate only connects the parts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use gust_bus::Bus;
use gust_bus::memory::MemoryBus;
use gust_bus::nats::NatsBus;
use gust_compose::Compositions;
use gust_controller::{Controller, ControllerBuilder};
use gust_events::delivery::{Deliveries, DeliverySettings};
use gust_events::listeners::Listeners;
use gust_events::system::SystemActions;
use gust_events::timers::Timers;
use gust_events::{Events, Sources};
use gust_gateway::Gateway;
use gust_invoker::Invoker;
use gust_keyring::Keyring;
use gust_model::SystemLimits;
use gust_runtime_process::ProcessRuntime;
use gust_runtime_wasm::{EngineLimits, WasmRuntime};
use gust_store::Store;
use gust_store::postgres::PostgresStore;
use gust_store::sqlite::{Durability, SqliteStore};
use gust_workflow::{Runner, Workflows};

pub mod files;
pub mod rotation;

/// Every event source this binary has: webhooks, NATS, MQTT, AMQP, Redis streams and
/// PostgreSQL row changes.
fn event_sources() -> Arc<Sources> {
    Sources::new(vec![
        Arc::new(gust_source_webhooks::Webhooks),
        Arc::new(gust_source_nats::Nats::default()),
        Arc::new(gust_source_mqtt::Mqtt),
        Arc::new(gust_source_amqp::Amqp),
        Arc::new(gust_source_redis::Redis),
        Arc::new(gust_source_postgres::Postgres),
    ])
}

/// Milliseconds in a day.
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Where a process keeps its data and which backends it uses.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// The compiled-code cache, process runtimes' files and (embedded) the store.
    pub data_dir: &'a Path,
    /// `postgres://...`, or `None` for the embedded store in `data_dir`.
    pub store: Option<&'a str>,
    /// `nats://...` or `tls://...`, or `None` for the in-process bus.
    pub bus: Option<&'a str>,
    /// The NATS cluster name (streams and subjects are per cluster).
    pub cluster: &'a str,
    /// How the embedded store commits.
    pub durability: Durability,
    /// Extra root certificates (PEM) for TLS to PostgreSQL and NATS.
    pub tls_ca: Option<&'a Path>,
    /// Multiplies async delivery's retry delays and maximum event ages (1.0: Lambda's
    /// times; tests shorten them).
    pub delivery_retry_scale: f64,
}

/// The PEM file of extra root certificates for TLS to PostgreSQL and NATS (`GUST_TLS_CA`).
pub fn tls_ca_from_env() -> Option<PathBuf> {
    std::env::var_os("GUST_TLS_CA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A process's backends, connected: what every part it runs shares.
pub struct Node {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub runtime: Arc<WasmRuntime>,
    pub system: SystemLimits,
    /// The bus is this process's own (no broker): its invoker can run blocking invocations
    /// on the request's task.
    in_process_bus: bool,
    /// Wakes this process's timers when a schedule changes.
    timers: Arc<tokio::sync::Notify>,
    /// The event sources (webhooks, queues) whose feeds this process serves.
    sources: Arc<Sources>,
    /// Wakes this process's subscription runners when a subscription changes.
    listeners: Arc<tokio::sync::Notify>,
    /// The store is a server other processes may share (PostgreSQL), not this process's own.
    shared_store: bool,
    /// The master key: seals secrets at rest, derives the token-signing keys.
    pub keyring: Arc<Keyring>,
    /// [`Settings::delivery_retry_scale`].
    delivery_retry_scale: f64,
    /// The NATS bus's URL, where async deliveries' `subject:` destinations publish.
    nats_url: Option<String>,
    /// The NATS cluster name: those destinations publish under `<cluster>.destinations`.
    cluster: String,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("in_process_bus", &self.in_process_bus)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Creates the data directory if needed and connects the store, the bus and the Wasm
    /// runtime that `settings` name.
    pub async fn open(settings: &Settings<'_>) -> Result<Node> {
        files::ensure_data_dir(settings.data_dir)?;
        let shared_store = !matches!(settings.store, None | Some(""));
        if shared_store && std::env::var_os(gust_keyring::ENV).is_none() {
            bail!(
                "a shared store needs one master key in every process of the cluster: set {} \
                 (32 bytes as 64 hex characters, e.g. from `openssl rand -hex 32`)",
                gust_keyring::ENV
            );
        }
        let keyring =
            Arc::new(Keyring::load(settings.data_dir).context("cannot load the master key")?);
        let store = connect_store(
            settings.store,
            settings.data_dir,
            settings.durability,
            settings.tls_ca,
        )
        .await?;
        let bus = connect_bus(settings.bus, settings.cluster, settings.tls_ca).await?;
        gust_telemetry::metrics::get().set_backends(
            if shared_store { "postgres" } else { "sqlite" },
            if matches!(settings.bus, None | Some("")) {
                "memory"
            } else {
                "nats"
            },
        );
        let runtime = Arc::new(
            WasmRuntime::new(settings.data_dir.join("cache"), EngineLimits::default())
                .context("cannot start the Wasm runtime")?,
        );
        Ok(Node {
            store,
            bus,
            runtime,
            system: SystemLimits::default(),
            in_process_bus: matches!(settings.bus, None | Some("")),
            timers: Arc::default(),
            sources: event_sources(),
            listeners: Arc::default(),
            shared_store,
            keyring,
            delivery_retry_scale: settings.delivery_retry_scale,
            nats_url: settings
                .bus
                .filter(|u| u.starts_with("nats://") || u.starts_with("tls://"))
                .map(str::to_string),
            cluster: settings.cluster.to_string(),
        })
    }

    /// Removes the compiled artifacts of code no action uses any more (deleted or replaced
    /// since); returns how many.
    pub async fn sweep_compiled(&self) -> Result<usize> {
        let in_use = self.store.code_hashes().await?.into_iter().collect();
        Ok(self.runtime.sweep(&in_use))
    }

    /// An invoker (not started) running Wasm and, when given, process kinds.
    pub fn invoker(&self, id: &str, processes: Option<Arc<ProcessRuntime>>) -> Arc<Invoker> {
        let invoker = Invoker::new(
            id,
            self.runtime.clone(),
            self.store.clone(),
            self.bus.clone(),
            self.system,
        )
        .with_keyring(self.keyring.clone());
        match processes {
            Some(p) => invoker.with_processes(p),
            None => invoker,
        }
    }

    /// A controller over this node's backends, with compositions and the system namespace's
    /// built-in actions (`api_host`, `http://host:port`, is what `utils/hosturl` names); when
    /// `local` is this process's invoker on an in-process bus, blocking invocations run on it
    /// directly.
    pub fn controller(
        &self,
        id: &str,
        local: Option<&Arc<Invoker>>,
        api_host: &str,
    ) -> ControllerBuilder {
        let mut builder = Controller::builder(
            id,
            self.store.clone(),
            self.bus.clone(),
            self.runtime.clone(),
        )
        .system_limits(self.system)
        .keyring(self.keyring.clone())
        .api_host(api_host)
        .composer(Arc::new(Compositions))
        .composer(Arc::new(SystemActions::new(
            api_host,
            self.timers.clone(),
            self.sources.clone(),
            self.listeners.clone(),
        )));
        if let Some(invoker) = local.filter(|_| self.in_process_bus) {
            builder = builder.local_invoker(invoker.clone());
        }
        builder
    }

    /// Installs or upgrades the system namespace, and starts triggers, rules, this process's
    /// timers (`owner`, unique among the processes sharing the store; `catch_up`, most missed
    /// ticks a schedule fires after a downtime) and its async delivery loop over
    /// `controller`.
    pub async fn events(
        &self,
        controller: &Arc<Controller>,
        owner: &str,
        catch_up: u64,
    ) -> Result<Arc<Events>> {
        gust_events::system::install(self.store.as_ref(), &self.sources)
            .await
            .context("cannot install the system namespace")?;
        let events = Events::new(
            controller.clone(),
            self.timers.clone(),
            self.sources.clone(),
        );
        Timers::start(
            events.clone(),
            self.timers.clone(),
            owner.to_string(),
            self.shared_store,
            catch_up,
        )
        .await
        .context("cannot start the timers")?;
        Listeners::start(
            events.clone(),
            self.sources.clone(),
            self.listeners.clone(),
            owner.to_string(),
            self.shared_store,
        )
        .await
        .context("cannot start the event sources")?;
        let nats = self.nats_url.as_ref().map(|url| {
            let mut config = serde_json::Map::new();
            config.insert("url".into(), serde_json::json!(url));
            config
        });
        Deliveries::start(
            events.clone(),
            DeliverySettings {
                owner: owner.to_string(),
                shared: self.shared_store,
                retry_scale: self.delivery_retry_scale,
                nats,
                subject_root: format!("{}.destinations", self.cluster),
            },
        )
        .await
        .context("cannot start async delivery")?;
        Ok(events)
    }

    /// Starts this process's workflow runner over `controller` (`owner` as for
    /// [`Node::events`]): it resumes the runs nobody live owns, then keeps their leases.
    pub async fn workflows(&self, controller: &Arc<Controller>, owner: &str) -> Result<Workflows> {
        let runner = Runner::new(controller.clone(), self.store.clone(), owner.to_string());
        runner
            .start_loops(!self.shared_store)
            .await
            .context("cannot start the workflow runner")?;
        Ok(Workflows::new(runner))
    }

    /// The gateway in front of `controller`, `events` and `workflows`, serving this node's
    /// static sites too.
    pub fn gateway(
        &self,
        controller: Arc<Controller>,
        events: Arc<Events>,
        workflows: Workflows,
    ) -> Gateway {
        Gateway::new(
            controller,
            events,
            Arc::new(gust_sites::Sites::new(self.store.clone())),
        )
        .with_workflows(workflows)
    }

    /// Deletes records older than `days` (none if 0), now and then every hour.
    pub fn keep_records_for(&self, days: u64) {
        if days > 0 {
            tokio::spawn(retention(self.store.clone(), days));
        }
    }
}

/// Connects the bus `url` names (`nats://...`, `tls://...`), or the in-process bus when there
/// is none.
pub async fn connect_bus(
    url: Option<&str>,
    cluster: &str,
    ca: Option<&Path>,
) -> Result<Arc<dyn Bus>> {
    match url {
        None | Some("") => Ok(Arc::new(MemoryBus::new())),
        Some(u) if u.starts_with("nats://") || u.starts_with("tls://") => Ok(Arc::new(
            NatsBus::connect_with_ca(u, cluster, ca)
                .await
                .context("cannot open the NATS bus")?,
        )),
        Some(u) => {
            bail!("--bus {u}: expected a nats:// URL (leave it out for the in-process bus)")
        }
    }
}

/// Opens the store `url` names (`postgres://...`), or the embedded store of `data_dir` when
/// there is none.
pub async fn connect_store(
    url: Option<&str>,
    data_dir: &Path,
    durability: Durability,
    ca: Option<&Path>,
) -> Result<Arc<dyn Store>> {
    match url {
        None | Some("") => Ok(open_store(data_dir, durability)?),
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            let store = PostgresStore::connect_with_ca(u, ca)
                .await
                .context("cannot open the PostgreSQL store")?;
            Ok(Arc::new(store))
        }
        Some(u) => {
            bail!("--store {u}: expected a postgres:// URL (leave it out for the embedded store)")
        }
    }
}

/// Opens the embedded store of a data directory. The store holds every namespace's key, so
/// the database files are made private to their owner, and so is the directory if Gust
/// creates it (an existing directory, which may be shared, keeps its mode).
pub fn open_store(data_dir: &Path, durability: Durability) -> Result<Arc<SqliteStore>> {
    files::ensure_data_dir(data_dir)?;
    let db = data_dir.join("gust.db");
    if !db.exists() {
        // Created private before SQLite opens it; its -wal and -shm files take its mode.
        files::write_private(&db, "")?;
    }
    let store = SqliteStore::open(&db, durability)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    for file in ["gust.db", "gust.db-wal", "gust.db-shm"] {
        files::restrict(&data_dir.join(file), 0o600)?;
    }
    Ok(Arc::new(store))
}

/// Deletes records older than `days`, now and then every hour.
async fn retention(store: Arc<dyn Store>, days: u64) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let cutoff = gust_model::time::now_ms().saturating_sub(days.saturating_mul(DAY_MS));
        match store.delete_activations_before(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, days, "activation retention"),
            Err(e) => tracing::warn!(error = %e, "activation retention failed"),
        }
    }
}
