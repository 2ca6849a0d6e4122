//! `gust serve`: the whole platform in one process on an embedded store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use gust_controller::Scheduler;
use gust_model::{Namespace, NamespaceLimits};
use gust_node::files::write_private;
use gust_node::{Node, Settings, tls_ca_from_env};
use gust_store::Store;
use gust_store::sqlite::Durability;

use crate::listen::{MetricsArgs, Tls, TlsArgs};
use crate::otlp::OtlpArgs;
use crate::processes::ProcessArgs;

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
    /// Most missed ticks a timer fires after a downtime (the latest ones; the first of them
    /// says since when ticks were skipped).
    #[arg(long, env = "GUST_TIMER_CATCH_UP", default_value_t = gust_events::timers::CATCH_UP)]
    timer_catch_up: u64,
    /// Multiplies async delivery's retry delays (1 min, 2 min, ...) and actions'
    /// maximumEventAgeInSeconds: 1 keeps Lambda's times; tests shorten them (0.01).
    #[arg(long, env = "GUST_DELIVERY_RETRY_SCALE", default_value_t = 1.0, value_parser = retry_scale)]
    delivery_retry_scale: f64,
    /// Do not write the client configuration for the `gust` CLI.
    #[arg(long)]
    no_client_config: bool,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    otlp: OtlpArgs,
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

/// A `--delivery-retry-scale`: a number above 0, at most 1000.
pub fn retry_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 1000.0 => Ok(x),
        _ => Err(format!("'{s}' is not a number above 0 and at most 1000")),
    }
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
    let ca = tls_ca_from_env();
    let node = Node::open(&Settings {
        data_dir: &args.data_dir,
        store: args.store.as_deref(),
        bus: args.bus.as_deref(),
        cluster: &args.cluster,
        durability,
        tls_ca: ca.as_deref(),
        delivery_retry_scale: args.delivery_retry_scale,
    })
    .await?;
    let guest = ensure_guest(node.store.as_ref(), args.guest_auth.as_deref()).await?;
    let auth = format!("{}:{}", guest.uuid, guest.key);
    write_private(&args.data_dir.join("guest.auth"), &format!("{auth}\n"))?;
    let swept = node.sweep_compiled().await?;
    if swept > 0 {
        tracing::info!(swept, "removed unused compiled artifacts");
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let tls = args.tls.load(&args.data_dir, addr)?;
    let apihost = format!("{}://{addr}", Tls::scheme(tls.as_ref()));
    let (kinds, processes) = args.processes.runtime(&args.data_dir.join("processes"))?;
    let invoker = node.invoker("invoker0", processes);
    invoker.start().await?;
    let controller = node
        .controller("controller0", Some(&invoker), &apihost)
        .scheduler(Scheduler::new(vec![invoker.id().to_string()]))
        .kinds(kinds)
        .build();
    controller.start().await?;
    let recovered = controller.recover().await?;
    if recovered > 0 {
        eprintln!("gust: resuming {recovered} invocation(s) accepted before the last stop");
    }
    node.keep_records_for(args.retention_days);
    // On the embedded store this process's timers own every schedule; on a shared one (several
    // `gust serve` on one PostgreSQL) each process needs an owner name of its own.
    let owner = format!("serve-{}", uuid::Uuid::new_v4().simple());
    let events = node
        .events(&controller, &owner, args.timer_catch_up)
        .await?;
    let workflows = node.workflows(&controller, &owner).await?;

    if !args.no_client_config
        && let Some(dir) = client_config_dir()
    {
        let mut config = serde_json::json!({ "apihost": apihost, "auth": auth });
        if let Some(ca) = tls.as_ref().and_then(|t| t.ca.as_ref()) {
            config["cacert"] = serde_json::json!(ca);
        }
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
    args.metrics.spawn().await?;
    let exporting = args.otlp.start("serve")?;
    println!("gust: API host {apihost}");
    if let Some(tls) = &tls {
        tls.announce();
    }
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

    crate::listen::serve(listener, node.gateway(controller, events, workflows), tls).await?;
    let left = invoker
        .drain(Duration::from_secs(args.shutdown_grace))
        .await;
    if left > 0 {
        eprintln!(
            "gust: {left} activation(s) still running; they stay journaled for the next start"
        );
    }
    crate::otlp::stop(exporting).await;
    eprintln!("gust: stopped");
    Ok(())
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
