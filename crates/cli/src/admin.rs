//! `gust admin`: namespaces, keys and limits, written to the store directly (like
//! `wskadmin`). A running server sees the change within a second. `master-key rotate` seals
//! every secret again under a new master key (decision 0022).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use gust_model::{Namespace, NamespaceLimits, names};
use gust_store::StoreError;
use gust_store::sqlite::Durability;

use gust_node::{DAY_MS, connect_store, tls_ca_from_env};

use crate::serve::{new_auth, parse_auth};

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Data directory of the embedded store.
    #[arg(long, global = true, default_value = "./.gust")]
    data_dir: PathBuf,
    /// The store, when it is not the embedded one: `postgres://user@host:port/db`.
    #[arg(long, global = true, env = "GUST_STORE", value_name = "URL")]
    store: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Namespaces (tenants).
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Throttles.
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// Activation records.
    #[command(subcommand)]
    Activations(ActivationsCommand),
    /// The master key that seals secret parameters.
    #[command(subcommand)]
    MasterKey(MasterKeyCommand),
}

#[derive(Debug, Subcommand)]
enum MasterKeyCommand {
    /// Seal every secret again under a new key. Embedded: a new key is put first in
    /// DATA_DIR/master.key, the old one is dropped once nothing needs it (stop the server
    /// first: it reads master.key at start only; run again if interrupted). Cluster: set
    /// GUST_MASTER_KEY="new,old" in every process, run this, then remove the old key.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum ActivationsCommand {
    /// Delete every namespace's records that started more than N days ago (what
    /// `gust serve --retention-days N` does hourly).
    Prune {
        #[arg(long, value_name = "N")]
        older_than_days: u64,
    },
}

#[derive(Debug, Subcommand)]
enum NamespaceCommand {
    /// Create a namespace and print its key.
    Create {
        name: String,
        /// Use this key instead of a generated one.
        #[arg(long, value_name = "UUID:KEY")]
        auth: Option<String>,
    },
    /// List namespaces.
    List,
    /// Delete a namespace with its actions and activations.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Replace a namespace's key and print the new one.
    Rotate { namespace: String },
}

#[derive(Debug, Subcommand)]
enum LimitsCommand {
    /// Set a namespace's throttles.
    Set {
        namespace: String,
        #[arg(long)]
        invocations_per_minute: Option<u64>,
        #[arg(long)]
        concurrent_invocations: Option<u64>,
        /// Trigger fires per minute.
        #[arg(long)]
        fires_per_minute: Option<u64>,
    },
}

pub async fn run(args: AdminArgs) -> Result<()> {
    let ca = tls_ca_from_env();
    let store = connect_store(
        args.store.as_deref(),
        &args.data_dir,
        Durability::Process,
        ca.as_deref(),
    )
    .await?;
    match args.command {
        AdminCommand::Namespace(NamespaceCommand::Create { name, auth }) => {
            names::check_namespace(&name)?;
            let (uuid, key) = match auth {
                Some(a) => parse_auth(&a)?,
                None => new_auth(),
            };
            let ns = Namespace {
                name: name.clone(),
                uuid: uuid.clone(),
                key: key.clone(),
                limits: NamespaceLimits::default(),
            };
            match store.create_namespace(&ns).await {
                Err(StoreError::Conflict) => {
                    bail!("namespace '{name}' or its key already exists")
                }
                other => other?,
            }
            println!("{uuid}:{key}");
        }
        AdminCommand::Namespace(NamespaceCommand::List) => {
            let mut rows = vec![vec![
                "NAMESPACE".to_string(),
                "UUID".into(),
                "INVOCATIONS/MIN".into(),
                "CONCURRENT".into(),
            ]];
            for ns in store.list_namespaces().await? {
                rows.push(vec![
                    ns.name,
                    ns.uuid,
                    ns.limits.invocations_per_minute.to_string(),
                    ns.limits.concurrent_invocations.to_string(),
                ]);
            }
            crate::client::print_table(&rows);
        }
        AdminCommand::Namespace(NamespaceCommand::Delete { name }) => {
            match store.delete_namespace(&name).await {
                Err(StoreError::NotFound) => bail!("namespace '{name}' does not exist"),
                other => other?,
            }
            crate::ui::ok(format_args!("deleted namespace '{name}'"));
        }
        AdminCommand::Key(KeyCommand::Rotate { namespace }) => {
            let (uuid, key) = new_auth();
            match store.set_namespace_key(&namespace, &uuid, &key).await {
                Err(StoreError::NotFound) => bail!("namespace '{namespace}' does not exist"),
                other => other?,
            }
            println!("{uuid}:{key}");
        }
        AdminCommand::MasterKey(MasterKeyCommand::Rotate) => {
            if args.store.is_some() && std::env::var_os("GUST_MASTER_KEY").is_none() {
                bail!(
                    "a shared store's secrets are sealed under GUST_MASTER_KEY: set it to \"new,old\""
                );
            }
            let r = gust_node::rotation::rotate_master_key(&args.data_dir, store.as_ref()).await?;
            crate::ui::ok(format_args!(
                "{} secret(s) sealed again under master key {}",
                r.resealed, r.current
            ));
            if r.sealed_meanwhile > 0 {
                crate::ui::warn(format_args!(
                    "{} secret(s) were sealed under key(s) {} while this ran: a server is running; kept them. Stop the server, run this again, then start it",
                    r.sealed_meanwhile,
                    r.kept.join(", ")
                ));
            } else if r.waiting > 0 {
                crate::ui::warn(format_args!(
                    "{} journaled invocation(s) still carry values sealed under key(s) {}: kept; run this again once they ran",
                    r.waiting,
                    r.kept.join(", ")
                ));
            } else if !r.kept.is_empty() {
                crate::ui::ok(format_args!(
                    "nothing needs key(s) {} any more: remove them from GUST_MASTER_KEY",
                    r.kept.join(", ")
                ));
            }
        }
        AdminCommand::Activations(ActivationsCommand::Prune { older_than_days }) => {
            let cutoff =
                gust_model::time::now_ms().saturating_sub(older_than_days.saturating_mul(DAY_MS));
            let n = store.delete_activations_before(cutoff).await?;
            crate::ui::ok(format_args!(
                "deleted {n} activation record(s) older than {older_than_days} day(s)"
            ));
        }
        AdminCommand::Limits(LimitsCommand::Set {
            namespace,
            invocations_per_minute,
            concurrent_invocations,
            fires_per_minute,
        }) => {
            let Some(ns) = store.namespace(&namespace).await? else {
                bail!("namespace '{namespace}' does not exist");
            };
            let limits = NamespaceLimits {
                invocations_per_minute: invocations_per_minute
                    .unwrap_or(ns.limits.invocations_per_minute),
                concurrent_invocations: concurrent_invocations
                    .unwrap_or(ns.limits.concurrent_invocations),
                fires_per_minute: fires_per_minute.unwrap_or(ns.limits.fires_per_minute),
            };
            store.set_namespace_limits(&namespace, limits).await?;
            println!(
                "{namespace}: invocationsPerMinute={} concurrentInvocations={} firesPerMinute={}",
                limits.invocations_per_minute,
                limits.concurrent_invocations,
                limits.fires_per_minute
            );
        }
    }
    Ok(())
}
