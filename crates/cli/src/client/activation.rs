//! `gust activation list|get|logs|result`.

use anyhow::{Result, bail};
use serde_json::Value;

use super::{Client, print_json, print_table};

#[derive(Debug, clap::Subcommand)]
pub enum ActivationCommand {
    /// List activations, newest first.
    #[command(after_help = "Example:\n  gust activation list hello --limit 5")]
    List {
        /// Only this action's activations.
        name: Option<String>,
        /// Most activations to list (at most 200).
        #[arg(long, default_value_t = 30)]
        limit: u32,
        /// Only activations that started at or after this time (ms since the epoch).
        #[arg(long)]
        since: Option<u64>,
    },
    /// Show an activation record.
    #[command(
        after_help = "Examples:\n  gust activation get --last\n  gust activation get 01a2..."
    )]
    Get(Which),
    /// Show an activation's logs.
    #[command(after_help = "Example:\n  gust activation logs --last")]
    Logs(Which),
    /// Show an activation's result.
    Result(Which),
    /// Print new activations and their logs as they land, until Ctrl-C.
    #[command(after_help = "Example:\n  gust activation poll hello --since-seconds 60")]
    Poll {
        /// Only this action's activations.
        name: Option<String>,
        /// Also print activations that started this many seconds ago.
        #[arg(long, default_value_t = 0)]
        since_seconds: u64,
        /// Stop after this many seconds.
        #[arg(long)]
        exit: Option<u64>,
    },
}

/// An activation id, or `--last`.
#[derive(Debug, clap::Args)]
pub struct Which {
    /// The activation id.
    #[arg(required_unless_present = "last")]
    pub id: Option<String>,
    /// The most recent activation instead.
    #[arg(long)]
    pub last: bool,
}

async fn resolve_id(client: &Client, which: &Which) -> Result<String> {
    if let Some(id) = &which.id {
        return Ok(id.clone());
    }
    let list = client
        .call("GET", "/api/v1/namespaces/_/activations?limit=1", None)
        .await?;
    match list[0]["activationId"].as_str() {
        Some(id) => Ok(id.to_string()),
        None => bail!("there are no activations yet"),
    }
}

async fn fetch(client: &Client, which: &Which, part: &str) -> Result<Value> {
    let id = resolve_id(client, which).await?;
    let path = format!(
        "/api/v1/namespaces/_/activations/{}{part}",
        super::action::encode(&id)
    );
    match client.call("GET", &path, None).await {
        Ok(v) => Ok(v),
        Err(e) => Err(client.not_found(e, "activation", &id).await),
    }
}

pub async fn run(cmd: ActivationCommand, client: &Client) -> Result<()> {
    match cmd {
        ActivationCommand::List { name, limit, since } => {
            let mut url = format!("/api/v1/namespaces/_/activations?limit={limit}");
            if let Some(n) = &name {
                url.push_str(&format!("&name={}", super::action::encode(n)));
            }
            if let Some(t) = since {
                url.push_str(&format!("&since={t}"));
            }
            let list = client.call("GET", &url, None).await?;
            if client.json {
                print_json(&list);
                return Ok(());
            }
            let mut rows = vec![vec![
                "START".into(),
                "ID".into(),
                "STATUS".into(),
                "DURATION".into(),
                "NAME".into(),
            ]];
            for a in list.as_array().into_iter().flatten() {
                let start = a["start"].as_u64().unwrap_or(0);
                rows.push(vec![
                    gust_model::time::iso8601(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(start),
                    ),
                    a["activationId"].as_str().unwrap_or("").into(),
                    crate::ui::outcome(status_name(a["statusCode"].as_u64())),
                    format!("{} ms", a["duration"]),
                    a["name"].as_str().unwrap_or("").into(),
                ]);
            }
            print_table(&rows);
            Ok(())
        }
        ActivationCommand::Get(which) => {
            print_json(&fetch(client, &which, "").await?);
            Ok(())
        }
        ActivationCommand::Logs(which) => {
            let v = fetch(client, &which, "/logs").await?;
            if client.json {
                print_json(&v);
            } else {
                for line in v["logs"].as_array().into_iter().flatten() {
                    println!("{}", line.as_str().unwrap_or(""));
                }
            }
            Ok(())
        }
        ActivationCommand::Poll {
            name,
            since_seconds,
            exit,
        } => poll(client, name, since_seconds, exit).await,
        ActivationCommand::Result(which) => {
            let v = fetch(client, &which, "/result").await?;
            print_json(if client.json { &v } else { &v["result"] });
            Ok(())
        }
    }
}

/// Polls for records that started at or after a cursor, oldest first, and prints each once.
async fn poll(
    client: &Client,
    name: Option<String>,
    since_seconds: u64,
    exit: Option<u64>,
) -> Result<()> {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    let stop = exit.map(|s| Instant::now() + Duration::from_secs(s));
    let mut cursor = gust_model::time::now_ms().saturating_sub(since_seconds * 1000);
    // Ids printed, with their start; those before the cursor cannot come back and are dropped.
    let mut seen: HashMap<String, u64> = HashMap::new();
    println!("Enter Ctrl-C to exit.");
    while stop.is_none_or(|t| Instant::now() < t) {
        let mut url =
            format!("/api/v1/namespaces/_/activations?docs=true&limit=200&since={cursor}");
        if let Some(n) = &name {
            url.push_str(&format!("&name={}", super::action::encode(n)));
        }
        let list = client.call("GET", &url, None).await?;
        let mut fresh: Vec<&Value> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["activationId"]
                    .as_str()
                    .is_some_and(|id| !seen.contains_key(id))
            })
            .collect();
        fresh.sort_by_key(|a| a["start"].as_u64().unwrap_or(0));
        for a in fresh {
            let id = a["activationId"].as_str().unwrap_or("").to_string();
            if client.json {
                println!("{a}");
            } else {
                println!(
                    "\nActivation: '{}' ({id})",
                    a["name"].as_str().unwrap_or("")
                );
                for line in a["logs"].as_array().into_iter().flatten() {
                    println!("{}", line.as_str().unwrap_or(""));
                }
            }
            let start = a["start"].as_u64().unwrap_or(0);
            cursor = cursor.max(start);
            seen.insert(id, start);
        }
        seen.retain(|_, start| *start >= cursor);
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

fn status_name(code: Option<u64>) -> &'static str {
    match code {
        Some(0) => "success",
        Some(1) => "application error",
        Some(2) => "developer error",
        Some(3) => "internal error",
        _ => "",
    }
}
