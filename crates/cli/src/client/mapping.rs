//! `gust mapping list|get`: the event source mappings of stream triggers (decision 0027) —
//! each rule of a stream trigger reads the stream on its own, and these show how far it got
//! (its checkpoint), how far behind it is (its lag) and what went wrong last. Read only:
//! a mapping comes with its rule and goes with it.

use anyhow::Result;
use serde_json::Value;

use super::trigger::entity_path;
use super::{Client, print_json, print_table};

#[derive(Debug, clap::Subcommand)]
pub enum MappingCommand {
    /// List the mappings of your namespace: each rule of a stream trigger, its checkpoint,
    /// lag and state.
    List,
    /// Show a rule's mapping as the API has it (JSON).
    #[command(after_help = "Example:\n  gust mapping get orders-to-billing")]
    Get {
        /// The rule.
        rule: String,
    },
}

/// Longest last error shown in the list; `gust mapping get` shows all of it.
const ERROR_WIDTH: usize = 60;

/// A mapping's state for the list: its runner's `state`, and its last error unless running.
fn state_cell(m: &Value) -> String {
    let state = m["state"].as_str().unwrap_or("-");
    let error = match &m["lastError"] {
        Value::Null => return state.to_string(),
        Value::String(s) => s.clone(),
        v => v["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .map_or_else(|| v.to_string(), str::to_string),
    };
    if state == "running" {
        return state.to_string();
    }
    let mut error: String = error.split_whitespace().collect::<Vec<_>>().join(" ");
    if error.chars().count() > ERROR_WIDTH {
        error = error.chars().take(ERROR_WIDTH - 1).collect::<String>() + "…";
    }
    format!("{state}: {error}")
}

/// A number of the answer, or `-` where it has none.
fn number_cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.as_u64().map_or_else(|| "-".into(), |n| n.to_string()),
    }
}

/// The list's rows, the header first.
fn rows(list: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "RULE".into(),
        "TRIGGER".into(),
        "CHECKPOINT".into(),
        "LAG".into(),
        "STATE".into(),
        "UPDATED".into(),
    ]];
    for m in list.as_array().into_iter().flatten() {
        let updated = m["updatedAt"].as_u64().unwrap_or(0);
        rows.push(vec![
            m["rule"].as_str().unwrap_or("").into(),
            m["trigger"].as_str().unwrap_or("").into(),
            number_cell(&m["checkpoint"]),
            number_cell(&m["lag"]),
            state_cell(m),
            gust_model::time::iso8601(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(updated),
            ),
        ]);
    }
    rows
}

pub async fn run(cmd: MappingCommand, client: &Client) -> Result<()> {
    match cmd {
        MappingCommand::List => {
            let list = client
                .call("GET", "/api/v1/namespaces/_/mappings", None)
                .await?;
            if client.json {
                print_json(&list);
            } else {
                print_table(&rows(&list));
            }
            Ok(())
        }
        MappingCommand::Get { rule } => {
            match client
                .call("GET", &entity_path("mappings", &rule), None)
                .await
            {
                Ok(m) => {
                    print_json(&m);
                    Ok(())
                }
                Err(e) => Err(client.not_found(e, "mapping of rule", &rule).await),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_list_shows_state_and_last_error_unless_running() {
        let list = json!([
            {"rule": "a", "trigger": "/ns/s", "checkpoint": "7", "updatedAt": 0,
             "state": "running", "lag": 2, "lastError": "old"},
            {"rule": "b", "trigger": "/ns/s", "checkpoint": 0, "updatedAt": 0,
             "state": "retrying", "lastError": {"message": "boom\nat line 1"}},
            {"rule": "c", "trigger": "/ns/s", "checkpoint": 3, "updatedAt": 0},
        ]);
        let rows = rows(&list);
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[1][..5],
            ["a", "/ns/s", "7", "2", "running"].map(String::from)
        );
        assert_eq!(rows[2][4], "retrying: boom at line 1");
        assert_eq!(rows[2][3], "-");
        assert_eq!(rows[3][4], "-");
        assert_eq!(rows[3][5], "1970-01-01T00:00:00.000000Z");
        let long = json!({"state": "error", "lastError": "x".repeat(100)});
        assert_eq!(
            state_cell(&long).chars().count(),
            "error: ".len() + ERROR_WIDTH
        );
    }
}
