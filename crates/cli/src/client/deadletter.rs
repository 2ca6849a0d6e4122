//! `gust deadletter list|get|redrive|delete`: the non-blocking invocations of your namespace
//! that failed for good with no `onFailure` destination (decision 0028), each kept with
//! Lambda's destination record (the request, the last response, why it was given up).
//! `redrive` invokes the action again with the request's parameters and removes the letter.

use anyhow::Result;
use serde_json::Value;

use super::action::encode;
use super::{Client, print_json, print_table};

#[derive(Debug, clap::Subcommand)]
pub enum DeadLetterCommand {
    /// List your namespace's dead letters, newest first.
    List {
        /// Most letters to list (at most 200).
        #[arg(long, default_value_t = 30)]
        limit: u32,
        /// Letters to skip.
        #[arg(long, default_value_t = 0)]
        skip: u32,
    },
    /// Show a dead letter (JSON): its action and destination record.
    Get {
        /// The activation id the invocation was accepted with.
        id: String,
    },
    /// Invoke the letter's action again (non-blocking) with its request's parameters and
    /// remove the letter; prints the new activation id.
    Redrive { id: String },
    /// Delete a dead letter.
    Delete { id: String },
}

fn path(id: &str) -> String {
    format!("/api/v1/namespaces/_/deadletters/{}", encode(id))
}

/// The list's rows, the header first.
fn rows(list: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "ID".into(),
        "ACTION".into(),
        "CONDITION".into(),
        "ATTEMPTS".into(),
        "CREATED".into(),
    ]];
    for d in list.as_array().into_iter().flatten() {
        let context = &d["record"]["requestContext"];
        let created = d["created"].as_u64().unwrap_or(0);
        rows.push(vec![
            d["id"].as_str().unwrap_or("").into(),
            d["action"].as_str().unwrap_or("").into(),
            context["condition"].as_str().unwrap_or("-").into(),
            context["approximateInvokeCount"]
                .as_u64()
                .map_or_else(|| "-".into(), |n| n.to_string()),
            gust_model::time::iso8601(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(created),
            ),
        ]);
    }
    rows
}

pub async fn run(cmd: DeadLetterCommand, client: &Client) -> Result<()> {
    match cmd {
        DeadLetterCommand::List { limit, skip } => {
            let url = format!("/api/v1/namespaces/_/deadletters?limit={limit}&skip={skip}");
            let list = client.call("GET", &url, None).await?;
            if client.json {
                print_json(&list);
            } else {
                print_table(&rows(&list));
            }
            Ok(())
        }
        DeadLetterCommand::Get { id } => match client.call("GET", &path(&id), None).await {
            Ok(d) => {
                print_json(&d);
                Ok(())
            }
            Err(e) => Err(client.not_found(e, "dead letter", &id).await),
        },
        DeadLetterCommand::Redrive { id } => {
            let url = format!("{}/redrive", path(&id));
            match client.call("POST", &url, None).await {
                Ok(v) => {
                    if client.json {
                        print_json(&v);
                    } else {
                        let new = v["activationId"].as_str().unwrap_or("");
                        crate::ui::ok(format_args!("redrove {id}: invoked with id {new}"));
                    }
                    Ok(())
                }
                Err(e) => Err(client.not_found(e, "dead letter", &id).await),
            }
        }
        DeadLetterCommand::Delete { id } => match client.call("DELETE", &path(&id), None).await {
            Ok(d) => {
                if client.json {
                    print_json(&d);
                } else {
                    crate::ui::ok(format_args!("deleted dead letter {id}"));
                }
                Ok(())
            }
            Err(e) => Err(client.not_found(e, "dead letter", &id).await),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_list_shows_why_and_how_often() {
        let list = json!([{
            "id": "abc", "action": "charge", "created": 0,
            "record": {"requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3}},
        }, {"id": "def", "action": "x", "record": {}}]);
        let rows = rows(&list);
        assert_eq!(
            rows[1],
            [
                "abc",
                "charge",
                "RetriesExhausted",
                "3",
                "1970-01-01T00:00:00.000000Z"
            ]
            .map(String::from)
        );
        assert_eq!(rows[2][2], "-");
        assert_eq!(rows[2][3], "-");
    }
}
