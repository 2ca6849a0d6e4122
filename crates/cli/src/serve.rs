//! `gust serve`: the whole platform in one process on an embedded store.

use crate::processes::ProcessArgs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use gust_bus::memory::MemoryBus;
use gust_bus::nats::NatsBus;
use gust_controller::{Controller, Scheduler};
use gust_gateway::Gateway;
use gust_invoker::Invoker;
use gust_model::{Namespace, NamespaceLimits, SystemLimits};
use gust_runtime_wasm::{EngineLimits, WasmRuntime};
use gust_store::Store;
use gust_store::postgres::PostgresStore;
use gust_store::sqlite::{Durability, SqliteStore};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:3233")]
    listen: SocketAddr,
    /// Directory for the store, the compiled-code cache and the guest key.
    #[arg(long, default_value = "./.gust")]
    data_dir: PathBuf,
    /// Fix the guest namespace's key instead of generating one.
    #[arg(long, env = "GUST_GUEST_AUTH", value_name = "UUID:KEY")]
    guest_auth: Option<String>,
    /// Seconds to let running activations finish on shutdown; what is still running then
    /// stays journaled and runs at the next start.
    #[arg(long, default_value_t = 10)]
    shutdown_grace: u64,
    /// `process`: writes survive a crash of this process (records and journal entries are
    /// appended to the record log next to the database, then inserted in batches); `full`:
    /// also a power loss (every write is committed with an fsync).
    #[arg(long, default_value = "process", value_parser = ["process", "full"])]
    durability: String,
    /// The store: the embedded SQLite store in the data directory (default), or PostgreSQL
    /// (`postgres://user@host:port/db`), shared by every process of a cluster.
    #[arg(long, env = "GUST_STORE", value_name = "URL")]
    store: Option<String>,
    /// The bus: in-process (default), or NATS with JetStream (`nats://host:4222`).
    #[arg(long, env = "GUST_BUS", value_name = "URL")]
    bus: Option<String>,
    /// Name of this cluster's subjects and stream on a shared NATS server.
    #[arg(long, env = "GUST_CLUSTER", default_value = "gust")]
    cluster: String,
    /// Delete activation records older than this many days (checked at start and hourly);
    /// 0 keeps them forever.
    #[arg(long, env = "GUST_RETENTION_DAYS", default_value_t = 0)]
    retention_days: u64,
    /// Do not write the client configuration for the `gust` CLI.
    #[arg(long)]
    no_client_config: bool,
    #[command(flatten)]
    processes: ProcessArgs,
}

pub const GUEST: &str = "guest";

/// A new API key: a UUID and 64 hex characters of randomness.
pub fn new_auth() -> (String, String) {
    let uuid = uuid::Uuid::new_v4().to_string();
    let key = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    (uuid, key)
}

/// Splits `UUID:KEY`, refusing anything else.
pub fn parse_auth(s: &str) -> Result<(String, String)> {
    match s.split_once(':') {
        Some((u, k)) if !u.is_empty() && !k.is_empty() && !k.contains(':') => {
            Ok((u.to_string(), k.to_string()))
        }
        _ => bail!("an API key must look like UUID:KEY"),
    }
}

/// Makes `path` readable by its owner only, if it exists.
fn restrict(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot restrict {}", path.display()));
            }
            _ => {}
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// The PEM file of extra root certificates for TLS to PostgreSQL and NATS (`GUST_TLS_CA`).
pub fn tls_ca_from_env() -> Option<PathBuf> {
    std::env::var_os("GUST_TLS_CA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Connects the bus `url` names (`nats://...`, `tls://...`), or the in-process bus when there
/// is none.
pub async fn connect_bus(
    url: Option<&str>,
    cluster: &str,
    ca: Option<&Path>,
) -> Result<Arc<dyn gust_bus::Bus>> {
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

/// Creates the data directory, private to its owner, if it does not exist.
pub(crate) fn ensure_data_dir(data_dir: &Path) -> Result<()> {
    if !data_dir.exists() {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        restrict(data_dir, 0o700)?;
    }
    Ok(())
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
    ensure_data_dir(data_dir)?;
    let db = data_dir.join("gust.db");
    if !db.exists() {
        // Created private before SQLite opens it; its -wal and -shm files take its mode.
        write_private(&db, "")?;
    }
    let store = SqliteStore::open(&db, durability)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    for file in ["gust.db", "gust.db-wal", "gust.db-shm"] {
        restrict(&data_dir.join(file), 0o600)?;
    }
    Ok(Arc::new(store))
}

async fn ensure_guest(store: &dyn Store, fixed: Option<&str>) -> Result<Namespace> {
    let fixed = fixed.map(parse_auth).transpose()?;
    match store.namespace(GUEST).await? {
        Some(ns) => match fixed {
            Some((uuid, key)) if uuid != ns.uuid || key != ns.key => {
                store.set_namespace_key(GUEST, &uuid, &key).await?;
                Ok(Namespace { uuid, key, ..ns })
            }
            _ => Ok(ns),
        },
        None => {
            let (uuid, key) = fixed.unwrap_or_else(new_auth);
            let ns = Namespace {
                name: GUEST.into(),
                uuid,
                key,
                limits: NamespaceLimits::default(),
            };
            store.create_namespace(&ns).await?;
            Ok(ns)
        }
    }
}

pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    // `mode` applies only to a new file; an older one may have been readable by others.
    restrict(path, 0o600)
}

/// Where the CLI's configuration lives: `$GUST_CONFIG_DIR`, else `$XDG_CONFIG_HOME/gust`,
/// else `~/.config/gust`.
pub fn client_config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("GUST_CONFIG_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(d).join("gust"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config").join("gust"))
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let durability = if args.durability == "full" {
        Durability::Full
    } else {
        Durability::Process
    };
    // The data directory holds the compiled-code cache and the guest key whatever the store.
    ensure_data_dir(&args.data_dir)?;
    let ca = tls_ca_from_env();
    let store = connect_store(
        args.store.as_deref(),
        &args.data_dir,
        durability,
        ca.as_deref(),
    )
    .await?;
    let guest = ensure_guest(store.as_ref(), args.guest_auth.as_deref()).await?;
    let auth = format!("{}:{}", guest.uuid, guest.key);
    write_private(&args.data_dir.join("guest.auth"), &format!("{auth}\n"))?;

    let runtime = Arc::new(
        WasmRuntime::new(args.data_dir.join("cache"), EngineLimits::default())
            .context("cannot start the Wasm runtime")?,
    );
    // Artifacts of code that no action uses any more (deleted or replaced since).
    let in_use = store.code_hashes().await?.into_iter().collect();
    let swept = runtime.sweep(&in_use);
    if swept > 0 {
        tracing::info!(swept, "removed unused compiled artifacts");
    }
    let bus = connect_bus(args.bus.as_deref(), &args.cluster, ca.as_deref()).await?;
    let system = SystemLimits::default();

    let mut invoker = Invoker::new(
        "invoker0",
        runtime.clone(),
        store.clone(),
        bus.clone(),
        system,
    );
    let (kinds, processes) = args.processes.runtime(&args.data_dir.join("processes"))?;
    if let Some(p) = processes {
        invoker = invoker.with_processes(p);
    }
    invoker.start().await?;
    let controller = Controller::new(
        "controller0",
        store.clone(),
        bus.clone(),
        runtime,
        Scheduler::new(vec![invoker.id().to_string()]),
        system,
    );
    controller.set_kinds(kinds);
    if matches!(args.bus.as_deref(), None | Some("")) {
        controller.set_local_invoker(invoker.clone());
    }
    controller.start().await?;
    let recovered = controller.recover().await?;
    if recovered > 0 {
        eprintln!("gust: resuming {recovered} invocation(s) accepted before the last stop");
    }

    if args.retention_days > 0 {
        tokio::spawn(retention(store.clone(), args.retention_days));
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let apihost = format!("http://{addr}");
    if !args.no_client_config
        && let Some(dir) = client_config_dir()
    {
        let config = serde_json::json!({ "apihost": apihost, "auth": auth });
        let written = std::fs::create_dir_all(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                write_private(
                    &dir.join("config.json"),
                    &serde_json::to_string_pretty(&config)?,
                )
            });
        if let Err(e) = written {
            eprintln!("gust: could not write the client configuration: {e:#}");
        }
    }
    println!("gust: API host {apihost}");
    println!("gust: guest key {auth}");
    println!("gust: data in {}", args.data_dir.display());
    // Which backends, without the URLs (they may hold passwords).
    let store_kind = if args.store.as_deref().is_some_and(|s| !s.is_empty()) {
        "PostgreSQL"
    } else {
        "SQLite in the data directory"
    };
    let bus_kind = if args.bus.as_deref().is_some_and(|b| !b.is_empty()) {
        format!("NATS JetStream, cluster '{}'", args.cluster)
    } else {
        "in-process".to_string()
    };
    println!("gust: store {store_kind}; bus {bus_kind}");

    gust_gateway::serve(listener, Gateway::new(controller), shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    let left = invoker
        .drain(Duration::from_secs(args.shutdown_grace))
        .await;
    if left > 0 {
        eprintln!(
            "gust: {left} activation(s) still running; they stay journaled for the next start"
        );
    }
    eprintln!("gust: stopped");
    Ok(())
}

/// Milliseconds in a day.
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Deletes records older than `days`, now and then every hour.
pub(crate) async fn retention(store: Arc<dyn Store>, days: u64) {
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

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("gust: shutting down");
}
