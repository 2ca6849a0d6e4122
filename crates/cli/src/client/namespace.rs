//! `gust namespace list` and `gust list` (every entity of the namespace).

use anyhow::Result;

use super::{Client, print_json, print_table};

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

/// `gust list`: every kind of entity the namespace holds (actions today; packages, triggers,
/// rules, APIs and sites join as the server gains them).
pub async fn list_all(client: &Client) -> Result<()> {
    let actions = client
        .call("GET", "/api/v1/namespaces/_/actions?limit=200", None)
        .await?;
    if client.json {
        print_json(&serde_json::json!({ "actions": actions }));
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
    Ok(())
}
