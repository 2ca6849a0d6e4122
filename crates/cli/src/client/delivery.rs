//! `gust action delivery get|set|delete`: an action's async delivery config (decision 0028)
//! — how many times a failed non-blocking invocation is retried, how old it may get, and
//! where its outcome goes (`action:NAME`, `trigger:NAME`, `subject:SUBJECT`); a failure with
//! no `--on-failure` goes to the namespace's dead letters (`gust deadletter`).

use anyhow::Result;
use serde_json::{Map, Value, json};

use super::action::path;
use super::{Client, print_json};

#[derive(Debug, clap::Subcommand)]
pub enum DeliveryCommand {
    /// Show an action's delivery config (JSON).
    Get { name: String },
    /// Set an action's delivery config, replacing the one it has: what is left out takes
    /// Lambda's defaults (2 retries, 21600 s, no destinations).
    #[command(
        after_help = "Example:\n  gust action delivery set charge --retries 2 --max-age 3600 --on-success trigger:charged --on-failure action:alert"
    )]
    Set {
        name: String,
        /// Retries of a failed invocation (0 to 10), 1 min then 2 min apart, doubling.
        #[arg(long, value_name = "N")]
        retries: Option<u32>,
        /// Seconds after which an invocation is not retried any more (60 to 21600).
        #[arg(long, value_name = "SECONDS")]
        max_age: Option<u64>,
        /// Where a success's record goes: action:NAME, trigger:NAME or subject:SUBJECT.
        #[arg(long, value_name = "DESTINATION")]
        on_success: Option<String>,
        /// Where a failure's record goes (else the dead letters).
        #[arg(long, value_name = "DESTINATION")]
        on_failure: Option<String>,
    },
    /// Delete an action's delivery config: its non-blocking invocations run once, unfollowed.
    Delete { name: String },
}

/// The API path of `name`'s delivery config.
fn delivery_path(name: &str) -> String {
    format!("{}/delivery", path(name))
}

/// The body of a `set`.
fn body(
    retries: Option<u32>,
    max_age: Option<u64>,
    on_success: Option<String>,
    on_failure: Option<String>,
) -> Value {
    let mut b = Map::new();
    if let Some(n) = retries {
        b.insert("maximumRetryAttempts".into(), json!(n));
    }
    if let Some(s) = max_age {
        b.insert("maximumEventAgeInSeconds".into(), json!(s));
    }
    if let Some(d) = on_success {
        b.insert("onSuccess".into(), json!(d));
    }
    if let Some(d) = on_failure {
        b.insert("onFailure".into(), json!(d));
    }
    Value::Object(b)
}

/// One line saying what a config does.
fn summary(c: &Value) -> String {
    let dest = |k: &str| c[k].as_str().unwrap_or("-").to_string();
    format!(
        "{}: {} retries, max age {} s, on success {}, on failure {}",
        c["action"].as_str().unwrap_or(""),
        c["maximumRetryAttempts"],
        c["maximumEventAgeInSeconds"],
        dest("onSuccess"),
        c["onFailure"]
            .as_str()
            .map_or_else(|| "dead letters".to_string(), str::to_string),
    )
}

pub async fn run(cmd: DeliveryCommand, client: &Client) -> Result<()> {
    match cmd {
        DeliveryCommand::Get { name } => {
            match client.call("GET", &delivery_path(&name), None).await {
                Ok(c) => {
                    print_json(&c);
                    Ok(())
                }
                Err(e) => Err(client
                    .not_found(e, "delivery config of action", &name)
                    .await),
            }
        }
        DeliveryCommand::Set {
            name,
            retries,
            max_age,
            on_success,
            on_failure,
        } => {
            let b = body(retries, max_age, on_success, on_failure);
            let c = match client.call("PUT", &delivery_path(&name), Some(&b)).await {
                Ok(c) => c,
                Err(e) => return Err(client.not_found(e, "action", &name).await),
            };
            if client.json {
                print_json(&c);
            } else {
                crate::ui::ok(format_args!("set the delivery of {}", summary(&c)));
            }
            Ok(())
        }
        DeliveryCommand::Delete { name } => {
            match client.call("DELETE", &delivery_path(&name), None).await {
                Ok(c) => {
                    if client.json {
                        print_json(&c);
                    } else {
                        crate::ui::ok(format_args!("deleted the delivery config of {name}"));
                    }
                    Ok(())
                }
                Err(e) => Err(client
                    .not_found(e, "delivery config of action", &name)
                    .await),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_sends_only_what_was_given() {
        assert_eq!(body(None, None, None, None), json!({}));
        assert_eq!(
            body(Some(1), Some(60), None, Some("action:dlq".into())),
            json!({"maximumRetryAttempts": 1, "maximumEventAgeInSeconds": 60, "onFailure": "action:dlq"})
        );
        assert_eq!(
            delivery_path("p/a"),
            "/api/v1/namespaces/_/actions/p/a/delivery"
        );
    }

    #[test]
    fn a_config_reads_as_one_line() {
        let c = json!({"action": "charge", "maximumRetryAttempts": 2, "maximumEventAgeInSeconds": 60, "onSuccess": "trigger:ok"});
        assert_eq!(
            summary(&c),
            "charge: 2 retries, max age 60 s, on success trigger:ok, on failure dead letters"
        );
    }
}
