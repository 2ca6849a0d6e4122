//! `gust controller` and `gust invoker`: the two roles of a cluster, each its own process,
//! any number of each, sharing a PostgreSQL store and a NATS JetStream bus.
//!
//! Settings come from flags, else the environment (`GUST_*`), else a TOML config file
//! (`--config`, whose keys are the flags' long names with `_` for `-`), else defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use gust_node::{Node, Settings};
use gust_store::sqlite::Durability;
use serde::Deserialize;

use crate::listen::{MetricsArgs, Tls, TlsArgs};
use crate::otlp::OtlpArgs;
use crate::processes::ProcessArgs;
use crate::serve::shutdown_signal;

/// Settings both roles share.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// TOML file with any of these settings (flags and environment variables win).
    #[arg(long, env = "GUST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The store every process of the cluster shares: `postgres://user@host:port/db`
    /// (`?sslmode=require` for TLS).
    #[arg(long, env = "GUST_STORE", value_name = "URL")]
    store: Option<String>,
    /// The bus: `nats://host:4222` (`tls://host:4222` for TLS).
    #[arg(long, env = "GUST_BUS", value_name = "URL")]
    bus: Option<String>,
    /// Name of this cluster's subjects and stream on the NATS server [default: gust].
    #[arg(long, env = "GUST_CLUSTER")]
    cluster: Option<String>,
    /// This process's name in the cluster: letters, digits, `-`, `_`. An invoker's must stay
    /// the same across restarts [default: controller-<random>, invoker-<host name>].
    #[arg(long, env = "GUST_ID")]
    id: Option<String>,
    /// Directory for the compiled-code cache [default: ./.gust].
    #[arg(long, env = "GUST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PEM file of root certificates to trust, besides the system's, for TLS to PostgreSQL
    /// (`sslmode=require`) and NATS (`tls://`).
    #[arg(long, env = "GUST_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Address to listen on [default: 127.0.0.1:3233].
    #[arg(long, env = "GUST_LISTEN")]
    listen: Option<SocketAddr>,
    /// Delete activation records older than this many days (checked at start and hourly);
    /// 0 keeps them forever [default: 0].
    #[arg(long, env = "GUST_RETENTION_DAYS")]
    retention_days: Option<u64>,
    /// Most missed ticks a timer fires after a downtime, the latest ones [default: 1000].
    #[arg(long, env = "GUST_TIMER_CATCH_UP")]
    timer_catch_up: Option<u64>,
    /// Multiplies async delivery's retry delays and actions' maximumEventAgeInSeconds (tests
    /// shorten them) [default: 1].
    #[arg(long, env = "GUST_DELIVERY_RETRY_SCALE", value_parser = crate::serve::retry_scale)]
    delivery_retry_scale: Option<f64>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    otlp: OtlpArgs,
    #[command(flatten)]
    processes: ProcessArgs,
}

#[derive(Debug, clap::Args)]
pub struct InvokerArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Seconds to let running activations finish on shutdown; the rest run again elsewhere
    /// [default: 10].
    #[arg(long, env = "GUST_SHUTDOWN_GRACE")]
    shutdown_grace: Option<u64>,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    otlp: OtlpArgs,
    #[command(flatten)]
    processes: ProcessArgs,
}

/// The config file: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    store: Option<String>,
    bus: Option<String>,
    cluster: Option<String>,
    id: Option<String>,
    data_dir: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    listen: Option<SocketAddr>,
    retention_days: Option<u64>,
    shutdown_grace: Option<u64>,
    timer_catch_up: Option<u64>,
    delivery_retry_scale: Option<f64>,
    metrics_addr: Option<SocketAddr>,
    otlp_endpoint: Option<String>,
}

/// The metrics listener and the span export, from the flags or else the config file.
fn observability(
    metrics: MetricsArgs,
    otlp: OtlpArgs,
    file: &mut ConfigFile,
) -> (MetricsArgs, OtlpArgs) {
    (
        MetricsArgs {
            metrics_addr: metrics.metrics_addr.or(file.metrics_addr.take()),
        },
        OtlpArgs {
            otlp_endpoint: otlp.otlp_endpoint.or(file.otlp_endpoint.take()),
        },
    )
}

fn read_config(path: Option<&Path>) -> Result<ConfigFile> {
    let Some(path) = path else {
        return Ok(ConfigFile::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

/// Settings of either role, resolved.
struct Resolved {
    store: String,
    bus: String,
    cluster: String,
    id: String,
    data_dir: PathBuf,
    tls_ca: Option<PathBuf>,
}

fn resolve(args: ClusterArgs, file: &mut ConfigFile, role: &str) -> Result<Resolved> {
    let store = args.store.or(file.store.take()).unwrap_or_default();
    if !(store.starts_with("postgres://") || store.starts_with("postgresql://")) {
        bail!(
            "gust {role} needs --store postgres://... (the store every process of the cluster shares)"
        );
    }
    let bus = args.bus.or(file.bus.take()).unwrap_or_default();
    if !(bus.starts_with("nats://") || bus.starts_with("tls://")) {
        bail!("gust {role} needs --bus nats://... (the NATS JetStream server of the cluster)");
    }
    let id = match args.id.or(file.id.take()) {
        Some(id) => id,
        None if role == "invoker" => format!("invoker-{}", host_name()),
        None => format!(
            "controller-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
    };
    if !gust_bus::valid_member_id(&id) {
        bail!("--id {id}: use up to 64 letters, digits, '-' and '_'");
    }
    Ok(Resolved {
        store,
        bus,
        cluster: args
            .cluster
            .or(file.cluster.take())
            .unwrap_or_else(|| "gust".into()),
        id,
        data_dir: args
            .data_dir
            .or(file.data_dir.take())
            .unwrap_or_else(|| PathBuf::from("./.gust")),
        tls_ca: args.tls_ca.or(file.tls_ca.take()),
    })
}

/// This host's name, made fit for an id.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    if name.is_empty() { "host".into() } else { name }
}

async fn open(settings: &Resolved, delivery_retry_scale: f64) -> Result<Node> {
    Node::open(&Settings {
        data_dir: &settings.data_dir,
        store: Some(&settings.store),
        bus: Some(&settings.bus),
        cluster: &settings.cluster,
        durability: Durability::Process,
        tls_ca: settings.tls_ca.as_deref(),
        delivery_retry_scale,
    })
    .await
}

pub async fn controller(args: ControllerArgs) -> Result<()> {
    let mut file = read_config(args.cluster.config.as_deref())?;
    let listen = args
        .listen
        .or(file.listen.take())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3233)));
    let retention_days = args
        .retention_days
        .or(file.retention_days.take())
        .unwrap_or(0);
    let scale = args
        .delivery_retry_scale
        .or(file.delivery_retry_scale.take())
        .unwrap_or(1.0);
    crate::serve::retry_scale(&scale.to_string())
        .map_err(|e| anyhow::anyhow!("delivery_retry_scale: {e}"))?;
    let settings = resolve(args.cluster, &mut file, "controller")?;
    let node = open(&settings, scale).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let tls = args.tls.load(&settings.data_dir, addr)?;
    let apihost = format!("{}://{addr}", Tls::scheme(tls.as_ref()));
    let controller = node
        .controller(&settings.id, None, &apihost)
        .clustered()
        .kinds(args.processes.kinds()?)
        .build();
    controller.start().await?;
    // Invokers announce themselves every second: give them a moment before taking requests.
    for _ in 0..30 {
        if !controller.invokers().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.keep_records_for(retention_days);
    // Each controller runs timers; schedules are shared through the store, one owner each.
    let owner = format!("{}-{}", settings.id, uuid::Uuid::new_v4().simple());
    let catch_up = args
        .timer_catch_up
        .or(file.timer_catch_up.take())
        .unwrap_or(gust_events::timers::CATCH_UP);
    let events = node.events(&controller, &owner, catch_up).await?;
    let workflows = node.workflows(&controller, &owner).await?;
    let (metrics, otlp) = observability(args.metrics, args.otlp, &mut file);
    metrics.spawn().await?;
    let exporting = otlp.start("controller")?;
    println!("gust: controller {} on {apihost}", settings.id);
    if let Some(tls) = &tls {
        tls.announce();
    }
    println!(
        "gust: store PostgreSQL; bus NATS JetStream, cluster '{}'; invokers heard: {}",
        settings.cluster,
        controller.invokers().len()
    );
    crate::listen::serve(listener, node.gateway(controller, events, workflows), tls).await?;
    crate::otlp::stop(exporting).await;
    eprintln!("gust: stopped");
    Ok(())
}

pub async fn invoker(args: InvokerArgs) -> Result<()> {
    let mut file = read_config(args.cluster.config.as_deref())?;
    let grace = args
        .shutdown_grace
        .or(file.shutdown_grace.take())
        .unwrap_or(10);
    let settings = resolve(args.cluster, &mut file, "invoker")?;
    // An invoker runs no delivery loop.
    let node = open(&settings, 1.0).await?;
    let (_, processes) = args
        .processes
        .runtime(&settings.data_dir.join("processes"))?;
    let invoker = node.invoker(&settings.id, processes);
    invoker.join_cluster().await?;
    invoker.start().await?;
    let (metrics, otlp) = observability(args.metrics, args.otlp, &mut file);
    metrics.spawn().await?;
    let exporting = otlp.start("invoker")?;
    println!(
        "gust: invoker {} taking work; store PostgreSQL; bus NATS JetStream, cluster '{}'",
        settings.id, settings.cluster
    );
    shutdown_signal().await;
    let left = invoker.drain(Duration::from_secs(grace)).await;
    if left > 0 {
        eprintln!("gust: {left} activation(s) still running; another invoker runs them again");
    }
    crate::otlp::stop(exporting).await;
    eprintln!("gust: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_fills_what_flags_and_environment_leave_out() {
        let mut file: ConfigFile = toml::from_str(
            "store = \"postgres://db/gust\"\nbus = \"nats://bus:4222\"\nid = \"from-file\"\ncluster = \"prod\"",
        )
        .unwrap();
        let args = ClusterArgs {
            config: None,
            store: None,
            bus: None,
            cluster: None,
            id: Some("from-flag".into()),
            data_dir: None,
            tls_ca: None,
        };
        let r = resolve(args, &mut file, "invoker").unwrap();
        assert_eq!(r.store, "postgres://db/gust");
        assert_eq!(r.bus, "nats://bus:4222");
        assert_eq!(r.id, "from-flag");
        assert_eq!(r.cluster, "prod");
        assert!(
            toml::from_str::<ConfigFile>("stroe = \"x\"").is_err(),
            "typos are refused"
        );
    }

    #[test]
    fn metrics_and_span_export_come_from_the_flags_or_else_the_config_file() {
        let text = "metrics_addr = \"127.0.0.1:9464\"\notlp_endpoint = \"http://otel:4318\"";
        let mut file: ConfigFile = toml::from_str(text).unwrap();
        let (m, o) = observability(
            MetricsArgs { metrics_addr: None },
            OtlpArgs {
                otlp_endpoint: Some("http://flag:4318".into()),
            },
            &mut file,
        );
        assert_eq!(
            m.metrics_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert_eq!(o.otlp_endpoint.as_deref(), Some("http://flag:4318"));
        // The example deployment's file holds only keys the roles take, and its commented
        // metrics and span export keys are ones too.
        let example = include_str!("../../../deploy/gust.toml");
        toml::from_str::<ConfigFile>(example).unwrap();
        let uncommented = example.replace("# metrics_addr", "metrics_addr");
        let uncommented = uncommented.replace("# otlp_endpoint", "otlp_endpoint");
        let file: ConfigFile = toml::from_str(&uncommented).unwrap();
        assert!(file.metrics_addr.is_some() && file.otlp_endpoint.is_some());
    }

    #[test]
    fn roles_refuse_an_embedded_store_or_bus_and_bad_ids() {
        let args = |store: &str, bus: &str, id: &str| ClusterArgs {
            config: None,
            store: Some(store.into()),
            bus: Some(bus.into()),
            cluster: None,
            id: Some(id.into()),
            data_dir: None,
            tls_ca: None,
        };
        let mut none = ConfigFile::default();
        let e = resolve(args("", "nats://x", "a"), &mut none, "controller")
            .err()
            .unwrap();
        assert!(e.to_string().contains("needs --store postgres://"), "{e}");
        let e = resolve(args("postgres://x", "", "a"), &mut none, "invoker")
            .err()
            .unwrap();
        assert!(e.to_string().contains("needs --bus nats://"), "{e}");
        let e = resolve(
            args("postgres://x", "nats://x", "a.b"),
            &mut none,
            "invoker",
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("--id a.b"), "{e}");
        assert!(
            resolve(
                args("postgres://x", "nats://x", "a-1_b"),
                &mut none,
                "invoker"
            )
            .is_ok()
        );
    }
}
