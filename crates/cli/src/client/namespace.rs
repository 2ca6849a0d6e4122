//! `gust namespace list` and `gust list` (every entity of the namespace).

use anyhow::Result;
use serde_json::{Value, json};

use super::rule::entity_name;
use super::trigger::{feed_of, full_name};
use super::{ApiFailure, Client, print_json, print_table};

#[derive(Debug, clap::Subcommand)]
pub enum NamespaceCommand {
    /// The namespaces your key may use.
    List,
}

pub async fn run(cmd: NamespaceCommand, client: &Client) -> Result<()> {
    match cmd {
        NamespaceCommand::List => {
            let list = client.call("GET", "/api/v1/namespaces", None).await?;
            if client.json {
                print_json(&list);
            } else {
                let mut rows = vec![vec!["NAMESPACE".to_string()]];
                for ns in list.as_array().into_iter().flatten() {
                    rows.push(vec![ns.as_str().unwrap_or("").to_string()]);
                }
                print_table(&rows);
            }
            Ok(())
        }
    }
}

/// A collection of the namespace (`actions`, `triggers`, `rules`), at most 200 of it; empty
/// from an API host that does not have the collection (404).
async fn collection(client: &Client, name: &str) -> Result<Value> {
    match client
        .call(
            "GET",
            &format!("/api/v1/namespaces/_/{name}?limit=200"),
            None,
        )
        .await
    {
        Ok(list) => Ok(list),
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| f.status == 404) =>
        {
            Ok(json!([]))
        }
        Err(e) => Err(e),
    }
}

/// `gust list`: every kind of entity the namespace holds (actions, triggers and rules today;
/// packages, APIs and sites join as the server gains them).
pub async fn list_all(client: &Client) -> Result<()> {
    let actions = client
        .call("GET", "/api/v1/namespaces/_/actions?limit=200", None)
        .await?;
    let triggers = collection(client, "triggers").await?;
    let rules = collection(client, "rules").await?;
    if client.json {
        print_json(&json!({ "actions": actions, "triggers": triggers, "rules": rules }));
        return Ok(());
    }
    println!("actions");
    let mut rows = Vec::new();
    for a in actions.as_array().into_iter().flatten() {
        rows.push(vec![
            format!(
                "  /{}/{}",
                a["namespace"].as_str().unwrap_or("_"),
                a["name"].as_str().unwrap_or("")
            ),
            a["version"].as_str().unwrap_or("").to_string(),
        ]);
    }
    print_table(&rows);
    println!("triggers");
    let mut rows = Vec::new();
    for t in triggers.as_array().into_iter().flatten() {
        rows.push(vec![
            format!("  {}", full_name(t)),
            t["version"].as_str().unwrap_or("").to_string(),
            feed_of(t).unwrap_or_default(),
        ]);
    }
    print_table(&rows);
    println!("rules");
    let mut rows = Vec::new();
    for r in rules.as_array().into_iter().flatten() {
        rows.push(vec![
            format!("  {}", full_name(r)),
            format!(
                "{} -> {}",
                entity_name(&r["trigger"]),
                entity_name(&r["action"])
            ),
        ]);
    }
    print_table(&rows);
    Ok(())
}
