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

/// `gust logs`: an action's last logs, or every new activation's.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Only this action's activations.
    pub name: Option<String>,
    /// Print the logs of each new activation as it lands, until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// With --follow, also activations that started this many seconds ago.
    #[arg(long, default_value_t = 0, requires = "follow")]
    pub since_seconds: u64,
    /// With --follow, stop after this many seconds.
    #[arg(long, requires = "follow")]
    pub exit: Option<u64>,
}

/// `gust logs`: the logs of the last activation (of `name`), or with `--follow` those of
/// each new one.
pub async fn logs(args: LogsArgs, client: &Client) -> Result<()> {
    if args.follow {
        return follow(client, args.name, args.since_seconds, args.exit, Show::Logs).await;
    }
    let mut url = "/api/v1/namespaces/_/activations?limit=1".to_string();
    if let Some(n) = &args.name {
        url.push_str(&format!("&name={}", super::action::encode(n)));
    }
    let list = client.call("GET", &url, None).await?;
    let Some(id) = list[0]["activationId"].as_str() else {
        bail!("there are no activations yet");
    };
    let which = Which {
        id: Some(id.to_string()),
        last: false,
    };
    print_logs(client, &which).await
}

/// Prints the log lines of an activation (its `{"logs"}` answer with `--json`).
async fn print_logs(client: &Client, which: &Which) -> Result<()> {
    let v = fetch(client, which, "/logs").await?;
    if client.json {
        print_json(&v);
    } else {
        for line in v["logs"].as_array().into_iter().flatten() {
            println!("{}", line.as_str().unwrap_or(""));
        }
    }
    Ok(())
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
        ActivationCommand::Logs(which) => print_logs(client, &which).await,
        ActivationCommand::Poll {
            name,
            since_seconds,
            exit,
        } => follow(client, name, since_seconds, exit, Show::Records).await,
        ActivationCommand::Result(which) => {
            let v = fetch(client, &which, "/result").await?;
            print_json(if client.json { &v } else { &v["result"] });
            Ok(())
        }
    }
}

/// What [`follow`] prints of each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// A heading naming the activation, then its logs (`gust activation poll`).
    Records,
    /// Only the log lines, each after its action's name when no name was asked for
    /// (`gust logs --follow`).
    Logs,
}

/// Prints each record as it is written, from the live activations stream
/// (`.../activations/stream`, Server-Sent Events): records that started `since_seconds` ago
/// first, then new ones, in the order they were written. A dropped connection is opened
/// again after the last record printed (`Last-Event-ID`), so none is printed twice or missed.
pub async fn follow(
    client: &Client,
    name: Option<String>,
    since_seconds: u64,
    exit: Option<u64>,
    show: Show,
) -> Result<()> {
    use std::time::Duration;

    let run = async {
        let since = gust_model::time::now_ms().saturating_sub(since_seconds * 1000);
        let mut path = format!("/api/v1/namespaces/_/activations/stream?since={since}");
        if let Some(n) = &name {
            path.push_str(&format!("&name={}", super::action::encode(n)));
        }
        let mut last: Option<String> = None;
        let mut failures = 0u32;
        loop {
            match read_stream(client, &path, &mut last, &name, show).await {
                // A failure answer (401, 403, 429...) is final; a cut connection is not.
                Err(e) if e.downcast_ref::<super::ApiFailure>().is_some() => return Err(e),
                Err(e) if failures >= 5 => return Err(e),
                Err(_) => failures += 1,
                Ok(()) => failures = 0,
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    if show == Show::Records {
        println!("Enter Ctrl-C to exit.");
    }
    match exit {
        Some(secs) => match tokio::time::timeout(Duration::from_secs(secs), run).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        },
        None => run.await,
    }
}

/// Reads one connection of the stream until it ends, printing each record and keeping the
/// last one's id in `last`.
async fn read_stream(
    client: &Client,
    path: &str,
    last: &mut Option<String>,
    name: &Option<String>,
    show: Show,
) -> Result<()> {
    use futures_util::StreamExt as _;
    use std::io::Write as _;

    let res = client.stream(path, last.as_deref()).await?;
    let mut body = res.bytes_stream();
    let mut events = Events::default();
    while let Some(chunk) = body.next().await {
        for (event, id, data) in events.feed(&chunk?) {
            match event.as_str() {
                "activation" => {
                    let record: Value = serde_json::from_str(&data)?;
                    print_record(client, &record, name.is_none(), show);
                    *last = Some(id);
                }
                "error" => bail!(
                    "the live stream ended: {}",
                    serde_json::from_str::<Value>(&data)
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_string))
                        .unwrap_or(data)
                ),
                _ => {}
            }
        }
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

fn print_record(client: &Client, a: &Value, several: bool, show: Show) {
    let name = a["name"].as_str().unwrap_or("");
    let lines = a["logs"].as_array().into_iter().flatten();
    match show {
        _ if client.json => println!("{a}"),
        Show::Records => {
            let id = a["activationId"].as_str().unwrap_or("");
            println!("\nActivation: '{name}' ({id})");
            for line in lines {
                println!("{}", line.as_str().unwrap_or(""));
            }
        }
        Show::Logs => {
            for line in lines {
                let line = line.as_str().unwrap_or("");
                if several {
                    println!("{name}: {line}");
                } else {
                    println!("{line}");
                }
            }
        }
    }
}

/// A Server-Sent Events reader: bytes in, whole events (`event`, `id`, `data`) out.
#[derive(Debug, Default)]
struct Events {
    /// Bytes of a line not ended yet.
    partial: Vec<u8>,
    event: String,
    id: String,
    data: Vec<String>,
}

impl Events {
    fn feed(&mut self, bytes: &[u8]) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    let event = match std::mem::take(&mut self.event) {
                        e if e.is_empty() => "message".to_string(),
                        e => e,
                    };
                    out.push((event, self.id.clone(), self.data.join("\n")));
                }
                self.data.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            match field {
                "event" => self.event = value,
                "id" => self.id = value,
                "data" => self.data.push(value),
                _ => {}
            }
        }
        out
    }
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

#[cfg(test)]
mod tests {
    use super::Events;

    #[test]
    fn events_are_read_across_chunks_with_comments_and_crlf() {
        let mut e = Events::default();
        assert!(
            e.feed(b": keep-alive\n\nevent: activation\nid: a1\ndata: {\"x\"")
                .is_empty()
        );
        let got = e.feed(b":1}\r\n\r\ndata: one\ndata: two\n\n");
        assert_eq!(
            got,
            [
                ("activation".into(), "a1".into(), "{\"x\":1}".into()),
                ("message".into(), "a1".into(), "one\ntwo".into()),
            ]
        );
    }
}
