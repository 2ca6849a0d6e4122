//! `gust rule create|update|enable|disable|get|list|delete`, like `wsk rule`: a rule runs an
//! action each time its trigger fires, while it is active.

use anyhow::Result;
use serde_json::{Value, json};

use super::action::qualify;
use super::trigger::{entity_path, full_name, put_failure};
use super::{Client, key_values, parameters, print_json, print_table};

#[derive(Debug, clap::Subcommand)]
pub enum RuleCommand {
    /// Create a rule: when TRIGGER fires, ACTION runs with the fire's parameters.
    #[command(after_help = "Example:\n  gust rule create on-tick tick hello")]
    Create(RuleArgs),
    /// Change a rule's trigger or action (its status stays).
    Update(RuleArgs),
    /// Make a rule run its action when its trigger fires.
    Enable { name: String },
    /// Stop a rule from running its action (it stays, inactive).
    Disable { name: String },
    /// Show a rule and its status.
    Get { name: String },
    /// List the rules of your namespace.
    List {
        /// Most rules to list (at most 200).
        #[arg(long, default_value_t = 30)]
        limit: u32,
        /// Rules to skip.
        #[arg(long, default_value_t = 0)]
        skip: u32,
    },
    /// Delete a rule.
    Delete { name: String },
}

#[derive(Debug, clap::Args)]
pub struct RuleArgs {
    pub name: String,
    /// The trigger: a trigger of your namespace.
    pub trigger: String,
    /// The action: name, package/name or /namespace/[package/]name.
    pub action: String,
    /// Annotation KEY VALUE; repeatable (`-a output '{"source":"nats",...}'` publishes the
    /// action's result).
    #[arg(short = 'a', long = "annotation", num_args = 2, value_names = ["KEY", "VALUE"])]
    pub annotation: Vec<String>,
}

fn path(name: &str) -> String {
    entity_path("rules", name)
}

/// `/ns/[pkg/]name` of an entity as the API names it in a rule: `{path, name}` (or a string).
pub fn entity_name(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        _ => format!(
            "/{}/{}",
            v["path"].as_str().unwrap_or(""),
            v["name"].as_str().unwrap_or("")
        ),
    }
}

/// The PUT body of a rule: trigger and action fully qualified (`t` -> `/_/t`).
pub fn body(trigger: &str, action: &str) -> Value {
    json!({ "trigger": qualify(trigger), "action": qualify(action) })
}

async fn put(client: &Client, args: &RuleArgs, create: bool) -> Result<()> {
    let url = format!("{}?overwrite={}", path(&args.name), !create);
    let mut put = body(&args.trigger, &args.action);
    if !args.annotation.is_empty() {
        put["annotations"] = key_values(parameters(&args.annotation, None)?);
    }
    let r = client
        .call("PUT", &url, Some(&put))
        .await
        .map_err(|e| put_failure(e, "rule", &args.name))?;
    if client.json {
        print_json(&r);
    } else {
        crate::ui::ok(format_args!(
            "{} rule {} (version {}): {} -> {}",
            if create { "created" } else { "updated" },
            args.name,
            r["version"].as_str().unwrap_or(""),
            entity_name(&r["trigger"]),
            entity_name(&r["action"]),
        ));
    }
    Ok(())
}

/// Sets rule `name`'s status (`active` or `inactive`).
pub async fn set_status(client: &Client, name: &str, status: &str) -> Result<Value> {
    match client
        .call("POST", &path(name), Some(&json!({ "status": status })))
        .await
    {
        Ok(r) => Ok(r),
        Err(e) => Err(client.not_found(e, "rule", name).await),
    }
}

pub async fn run(cmd: RuleCommand, client: &Client) -> Result<()> {
    match cmd {
        RuleCommand::Create(args) => put(client, &args, true).await,
        RuleCommand::Update(args) => put(client, &args, false).await,
        RuleCommand::Enable { name } => {
            let r = set_status(client, &name, "active").await?;
            if client.json {
                print_json(&r);
            } else {
                crate::ui::ok(format_args!("enabled rule {name}"));
            }
            Ok(())
        }
        RuleCommand::Disable { name } => {
            let r = set_status(client, &name, "inactive").await?;
            if client.json {
                print_json(&r);
            } else {
                crate::ui::ok(format_args!("disabled rule {name}"));
            }
            Ok(())
        }
        RuleCommand::Get { name } => {
            let r = match client.call("GET", &path(&name), None).await {
                Ok(r) => r,
                Err(e) => return Err(client.not_found(e, "rule", &name).await),
            };
            if client.json {
                print_json(&r);
                return Ok(());
            }
            print_table(&[
                vec!["rule".into(), full_name(&r)],
                vec!["version".into(), r["version"].as_str().unwrap_or("").into()],
                vec!["status".into(), r["status"].as_str().unwrap_or("").into()],
                vec!["trigger".into(), entity_name(&r["trigger"])],
                vec!["action".into(), entity_name(&r["action"])],
                vec!["annotations".into(), r["annotations"].to_string()],
            ]);
            Ok(())
        }
        RuleCommand::List { limit, skip } => {
            let list = client
                .call(
                    "GET",
                    &format!("/api/v1/namespaces/_/rules?limit={limit}&skip={skip}"),
                    None,
                )
                .await?;
            if client.json {
                print_json(&list);
                return Ok(());
            }
            // The list does not say whether a rule is active (OpenWhisk's neither): `rule get`.
            let mut rows = vec![vec!["NAME".into(), "TRIGGER".into(), "ACTION".into()]];
            for r in list.as_array().into_iter().flatten() {
                rows.push(vec![
                    full_name(r),
                    entity_name(&r["trigger"]),
                    entity_name(&r["action"]),
                ]);
            }
            print_table(&rows);
            Ok(())
        }
        RuleCommand::Delete { name } => {
            let r = match client.call("DELETE", &path(&name), None).await {
                Ok(r) => r,
                Err(e) => return Err(client.not_found(e, "rule", &name).await),
            };
            if client.json {
                print_json(&r);
            } else {
                crate::ui::ok(format_args!("deleted rule {name}"));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_bodies_qualify_their_names() {
        assert_eq!(
            body("t", "pkg/a"),
            json!({ "trigger": "/_/t", "action": "/_/pkg/a" })
        );
        assert_eq!(
            body("/guest/t", "/other/pkg/a"),
            json!({ "trigger": "/guest/t", "action": "/other/pkg/a" })
        );
        assert_eq!(
            entity_name(&json!({ "path": "guest/pkg", "name": "a" })),
            "/guest/pkg/a"
        );
        assert_eq!(entity_name(&json!("/guest/t")), "/guest/t");
    }
}
