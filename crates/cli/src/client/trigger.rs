//! `gust trigger create|update|get|list|delete|fire`, with `wsk`'s flags and its feed
//! protocol: a trigger created with `--feed` is announced to the feed action (`CREATE`, with
//! the `-p` parameters, the trigger's name and the key), and `get`, `update` and `delete` of
//! it tell the feed too (`READ`, `UPDATE`, `DELETE`).

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use gust_model::annotations::FEED;
use serde_json::{Map, Value, json};

use super::action::encode;
use super::{ApiFailure, Client, key_values, parameter_list, parameters, print_json, print_table};

#[derive(Debug, clap::Subcommand)]
pub enum TriggerCommand {
    /// Create a trigger; with --feed, a feed (an alarm, ...) fires it.
    #[command(
        after_help = "Examples:\n  gust trigger create hook -p source web\n  gust trigger create tick --feed /whisk.system/alarms/alarm -p cron '*/10 * * * * *' -p trigger_payload '{\"x\":1}'"
    )]
    Create {
        #[command(flatten)]
        args: TriggerArgs,
        /// The feed action that fires the trigger (`/whisk.system/alarms/alarm`, `once`,
        /// `interval`); the -p parameters go to the feed instead of the trigger.
        #[arg(long)]
        feed: Option<String>,
    },
    /// Update a trigger's parameters or annotations (a feed's trigger: the feed's parameters).
    #[command(after_help = "Example:\n  gust trigger update tick -p cron '0 * * * *'")]
    Update(TriggerArgs),
    /// Show a trigger, its rules, and what its feed says of it (with --json: under `feed`).
    Get { name: String },
    /// List the triggers of your namespace.
    List {
        /// Most triggers to list (at most 200).
        #[arg(long, default_value_t = 30)]
        limit: u32,
        /// Triggers to skip.
        #[arg(long, default_value_t = 0)]
        skip: u32,
    },
    /// Delete a trigger (and its feed's schedule).
    Delete { name: String },
    /// Fire a trigger: each of its active rules invokes its action with the parameters.
    #[command(after_help = "Example:\n  gust trigger fire hook -p order 42")]
    Fire {
        name: String,
        /// Parameter KEY VALUE (VALUE is JSON when it parses as JSON); repeatable.
        #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"])]
        param: Vec<String>,
        /// Parameters from a JSON file.
        #[arg(short = 'P', long = "param-file")]
        param_file: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    pub name: String,
    /// Parameter KEY VALUE (VALUE is JSON when it parses as JSON); repeatable.
    #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"])]
    pub param: Vec<String>,
    /// Parameters from a JSON file.
    #[arg(short = 'P', long = "param-file")]
    pub param_file: Option<PathBuf>,
    /// Secret parameter KEY VALUE: stored sealed, given to the function, never shown
    /// again (a GET shows `{"key": KEY, "secret": true}`); repeatable.
    #[arg(long = "secret", num_args = 2, value_names = ["KEY", "VALUE"])]
    pub secret: Vec<String>,
    /// Annotation KEY VALUE; repeatable.
    #[arg(short = 'a', long = "annotation", num_args = 2, value_names = ["KEY", "VALUE"])]
    pub annotation: Vec<String>,
}

/// `name` or `/namespace/name` as (namespace, name); `_` is the key's own namespace.
pub fn split(name: &str) -> (&str, &str) {
    match name.strip_prefix('/').and_then(|n| n.split_once('/')) {
        Some((ns, n)) => (ns, n),
        None => ("_", name),
    }
}

/// `/_/name` for a name of yours, `/ns/name` as it is: how OpenWhisk names an entity.
pub fn qualified(name: &str) -> String {
    let (ns, n) = split(name);
    format!("/{ns}/{n}")
}

/// The API path of entity `name` (`name` or `/namespace/name`) of `collection` (`triggers`,
/// `rules`).
pub fn entity_path(collection: &str, name: &str) -> String {
    let (ns, n) = split(name);
    format!(
        "/api/v1/namespaces/{}/{collection}/{}",
        encode(ns),
        encode(n)
    )
}

fn path(name: &str) -> String {
    entity_path("triggers", name)
}

/// `/ns/name` of an entity the API answered.
pub fn full_name(v: &Value) -> String {
    format!(
        "/{}/{}",
        v["namespace"].as_str().unwrap_or("_"),
        v["name"].as_str().unwrap_or("")
    )
}

/// The feed annotation of a trigger the API answered, if it has one.
pub fn feed_of(trigger: &Value) -> Option<String> {
    trigger["annotations"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == FEED)
        .and_then(|kv| kv["value"].as_str())
        .map(str::to_string)
}

/// A PUT's failure in words: 409 is "already exists" (or, from another collection, a name
/// that an action, package or rule has).
pub fn put_failure(e: anyhow::Error, what: &str, name: &str) -> anyhow::Error {
    match e.downcast_ref::<ApiFailure>() {
        Some(f) if f.status == 409 && f.message.contains("not in this collection") => anyhow!(
            "'{name}' is the name of another entity (action, package, trigger or rule) of the namespace (409)"
        ),
        Some(f) if f.status == 409 => {
            anyhow!("{what} '{name}' already exists (409): use `gust {what} update`")
        }
        _ => e,
    }
}

/// The URL of feed action `feed` (`/ns/pkg/a`, `/ns/a`, or `pkg/a` in your namespace),
/// invoked blocking.
fn feed_url(feed: &str) -> Result<String> {
    let (ns, action) = match feed.strip_prefix('/') {
        Some(rest) => rest.split_once('/').ok_or_else(|| {
            anyhow!("'{feed}' is not a feed action name: give /namespace/[package/]action")
        })?,
        None => ("_", feed),
    };
    let segments: Vec<&str> = action.split('/').collect();
    if ns.is_empty() || segments.len() > 2 || segments.iter().any(|s| s.is_empty()) {
        anyhow::bail!("'{feed}' is not a feed action name: give /namespace/[package/]action");
    }
    let segments: Vec<String> = segments.into_iter().map(encode).collect();
    Ok(format!(
        "/api/v1/namespaces/{}/actions/{}?blocking=true",
        encode(ns),
        segments.join("/")
    ))
}

/// The error text of a failed activation's result: `{"error": "text"}`, or the alarms
/// feeds' `{"error": {"error": "text"}}`.
fn error_text(result: &Value) -> String {
    let e = &result["error"];
    e.as_str()
        .or_else(|| e["error"].as_str())
        .or_else(|| e["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            if e.is_null() {
                result.to_string()
            } else {
                e.to_string()
            }
        })
}

/// Invokes feed action `feed` (blocking) with lifecycle `event` for trigger `trigger` (`name`
/// or `/ns/name`), the key and `params`: the feed's result, or why it failed.
pub async fn call_feed(
    client: &Client,
    feed: &str,
    event: &str,
    trigger: &str,
    params: Map<String, Value>,
) -> Result<Value> {
    let mut body = params;
    body.insert("lifecycleEvent".into(), json!(event));
    body.insert("triggerName".into(), json!(qualified(trigger)));
    body.insert("authKey".into(), json!(client.auth()));
    let answer = client
        .call_with_status("POST", &feed_url(feed)?, Some(&Value::Object(body)))
        .await;
    match answer {
        // Still running after the blocking wait: accepted, its result unknown.
        Ok((202, v)) => Ok(v),
        Ok((_, record)) if record["response"]["success"] == false => Err(anyhow!(
            "feed {feed} failed: {}",
            error_text(&record["response"]["result"])
        )),
        Ok((_, record)) => Ok(record["response"]["result"].clone()),
        Err(e) => Err(match e.downcast_ref::<ApiFailure>() {
            Some(f) if f.status == 404 => anyhow!("feed action '{feed}' does not exist (404)"),
            Some(f) if f.body["response"].is_object() => anyhow!(
                "feed {feed} failed: {}",
                error_text(&f.body["response"]["result"])
            ),
            Some(f) => anyhow!("feed {feed} failed: {f}"),
            None => e,
        }),
    }
}

/// Creates trigger `name` with `body`; with `feed`, then tells the feed (`CREATE` with its
/// parameters), deleting the trigger again when the feed refuses. The trigger as the API
/// answered it.
pub async fn create_with_feed(
    client: &Client,
    name: &str,
    mut body: Value,
    feed: Option<(&str, Map<String, Value>)>,
) -> Result<Value> {
    if let Some((feed, _)) = &feed {
        let mut annotations = Map::new();
        for kv in body["annotations"].as_array().into_iter().flatten() {
            if let Some(k) = kv["key"].as_str() {
                annotations.insert(k.to_string(), kv["value"].clone());
            }
        }
        annotations.insert(FEED.into(), json!(feed));
        body["annotations"] = key_values(annotations);
    }
    let url = format!("{}?overwrite=false", path(name));
    let t = client
        .call("PUT", &url, Some(&body))
        .await
        .map_err(|e| put_failure(e, "trigger", name))?;
    if let Some((feed, params)) = feed {
        match call_feed(client, feed, "CREATE", name, params).await {
            // A webhook feed answers with the URL its sender must be given.
            Ok(result) => {
                if let Some(url) = result["url"].as_str()
                    && !client.json
                {
                    crate::ui::note(format_args!("webhook URL of trigger {name}: {url}"));
                }
            }
            Err(e) => {
                return Err(match client.call("DELETE", &path(name), None).await {
                    Ok(_) => anyhow!("{e:#} (trigger '{name}' was not created)"),
                    Err(d) => anyhow!("{e:#}; deleting trigger '{name}' failed too: {d:#}"),
                });
            }
        }
    }
    Ok(t)
}

/// Deletes trigger `name` (as `trigger`, the API answered it), telling its feed first (a
/// feed's failure is only a warning). The deleted trigger as the API answered it.
pub async fn delete_with_feed(client: &Client, name: &str, trigger: &Value) -> Result<Value> {
    if let Some(feed) = feed_of(trigger)
        && let Err(e) = call_feed(client, &feed, "DELETE", name, Map::new()).await
    {
        crate::ui::warn(format_args!("{e:#} (deleting the trigger anyway)"));
    }
    client.call("DELETE", &path(name), None).await
}

/// The body of a PUT: parameters and annotations, each only when given (an update keeps what
/// is absent).
fn body(args: &TriggerArgs) -> Result<Value> {
    let mut body = Map::new();
    if let Some(list) = parameter_list(&args.param, args.param_file.as_ref(), &args.secret)? {
        body.insert("parameters".into(), list);
    }
    if !args.annotation.is_empty() {
        body.insert(
            "annotations".into(),
            key_values(parameters(&args.annotation, None)?),
        );
    }
    Ok(Value::Object(body))
}

fn done(client: &Client, verb: &str, name: &str, t: &Value, feed: Option<&str>) {
    if client.json {
        print_json(t);
    } else {
        crate::ui::ok(format_args!(
            "{verb} trigger {name} (version {}){}",
            t["version"].as_str().unwrap_or(""),
            feed.map(|f| format!(" with feed {f}")).unwrap_or_default()
        ));
    }
}

/// `--secret` sets a trigger's own parameters, which a feed's trigger does not take.
fn no_secret_for_feed(args: &TriggerArgs) -> Result<()> {
    if !args.secret.is_empty() {
        anyhow::bail!(
            "--secret sets a trigger's own parameters; a feed's trigger takes the feed's (-p)"
        );
    }
    Ok(())
}

async fn update(client: &Client, args: TriggerArgs) -> Result<()> {
    let name = args.name.as_str();
    let existing = match client.call("GET", &path(name), None).await {
        Ok(t) => Some(t),
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| f.status == 404) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    let Some(feed) = existing.as_ref().and_then(feed_of) else {
        // No feed: like `package update`, it creates the trigger when there is none.
        let url = format!("{}?overwrite=true", path(name));
        let t = client
            .call("PUT", &url, Some(&body(&args)?))
            .await
            .map_err(|e| put_failure(e, "trigger", name))?;
        done(client, "updated", name, &t, None);
        return Ok(());
    };
    // A feed's trigger: the parameters are the feed's; the annotations keep the feed.
    no_secret_for_feed(&args)?;
    let mut t = existing.unwrap_or_default();
    if !args.annotation.is_empty() {
        let mut annotations = parameters(&args.annotation, None)?;
        annotations.insert(FEED.into(), json!(feed));
        let url = format!("{}?overwrite=true", path(name));
        t = client
            .call(
                "PUT",
                &url,
                Some(&json!({ "annotations": key_values(annotations) })),
            )
            .await?;
    }
    if !args.param.is_empty() || args.param_file.is_some() {
        let params = parameters(&args.param, args.param_file.as_ref())?;
        call_feed(client, &feed, "UPDATE", name, params).await?;
    } else if args.annotation.is_empty() {
        anyhow::bail!(
            "nothing to update: give the feed's parameters (-p KEY VALUE) or annotations (-a KEY VALUE)"
        );
    }
    if args.annotation.is_empty() && !client.json {
        // Only the feed changed: the trigger keeps its version.
        crate::ui::ok(format_args!("updated the feed {feed} of trigger {name}"));
    } else {
        done(client, "updated", name, &t, Some(&feed));
    }
    Ok(())
}

/// `ns/r: /ns/a (active), ...` of a trigger's `rules` map.
fn rules_of(t: &Value) -> Option<String> {
    let rules = t["rules"].as_object()?;
    Some(
        rules
            .iter()
            .map(|(name, r)| {
                format!(
                    "{name}: {} ({})",
                    super::rule::entity_name(&r["action"]),
                    r["status"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    )
}

async fn get(client: &Client, name: &str) -> Result<()> {
    let mut t = match client.call("GET", &path(name), None).await {
        Ok(t) => t,
        Err(e) => return Err(client.not_found(e, "trigger", name).await),
    };
    let feed = match feed_of(&t) {
        Some(feed) => {
            let read = call_feed(client, &feed, "READ", name, Map::new()).await;
            Some((feed, read))
        }
        None => None,
    };
    if client.json {
        if let Some((action, read)) = feed {
            t["feed"] = match read {
                Ok(result) => json!({ "action": action, "result": result }),
                Err(e) => json!({ "action": action, "error": format!("{e:#}") }),
            };
        }
        print_json(&t);
        return Ok(());
    }
    let mut rows = vec![
        vec!["trigger".into(), full_name(&t)],
        vec!["version".into(), t["version"].as_str().unwrap_or("").into()],
        vec!["parameters".into(), t["parameters"].to_string()],
        vec!["annotations".into(), t["annotations"].to_string()],
    ];
    if let Some(rules) = rules_of(&t) {
        rows.push(vec!["rules".into(), rules]);
    }
    if let Some((action, read)) = feed {
        rows.push(vec!["feed".into(), action]);
        match read {
            Ok(result) => rows.push(vec!["feed state".into(), result.to_string()]),
            Err(e) => crate::ui::warn(format_args!("cannot read the feed's state: {e:#}")),
        }
    }
    print_table(&rows);
    Ok(())
}

pub async fn run(cmd: TriggerCommand, client: &Client) -> Result<()> {
    match cmd {
        TriggerCommand::Create { args, feed } => {
            let t = match &feed {
                Some(feed) => {
                    // The -p parameters are the feed's, not the trigger's.
                    no_secret_for_feed(&args)?;
                    let mut body = Map::new();
                    if !args.annotation.is_empty() {
                        body.insert(
                            "annotations".into(),
                            key_values(parameters(&args.annotation, None)?),
                        );
                    }
                    let params = parameters(&args.param, args.param_file.as_ref())?;
                    let body = Value::Object(body);
                    create_with_feed(client, &args.name, body, Some((feed, params))).await?
                }
                None => create_with_feed(client, &args.name, body(&args)?, None).await?,
            };
            done(client, "created", &args.name, &t, feed.as_deref());
            Ok(())
        }
        TriggerCommand::Update(args) => update(client, args).await,
        TriggerCommand::Get { name } => get(client, &name).await,
        TriggerCommand::List { limit, skip } => {
            let list = client
                .call(
                    "GET",
                    &format!("/api/v1/namespaces/_/triggers?limit={limit}&skip={skip}"),
                    None,
                )
                .await?;
            if client.json {
                print_json(&list);
                return Ok(());
            }
            let mut rows = vec![vec!["NAME".into(), "VERSION".into(), "FEED".into()]];
            for t in list.as_array().into_iter().flatten() {
                rows.push(vec![
                    full_name(t),
                    t["version"].as_str().unwrap_or("").into(),
                    feed_of(t).unwrap_or_default(),
                ]);
            }
            print_table(&rows);
            Ok(())
        }
        TriggerCommand::Delete { name } => {
            let t = match client.call("GET", &path(&name), None).await {
                Ok(t) => delete_with_feed(client, &name, &t).await,
                Err(e) => Err(e),
            };
            let t = match t {
                Ok(t) => t,
                Err(e) => return Err(client.not_found(e, "trigger", &name).await),
            };
            if client.json {
                print_json(&t);
            } else {
                crate::ui::ok(format_args!("deleted trigger {name}"));
            }
            Ok(())
        }
        TriggerCommand::Fire {
            name,
            param,
            param_file,
        } => {
            let payload = Value::Object(parameters(&param, param_file.as_ref())?);
            let answer = client
                .call_with_status("POST", &path(&name), Some(&payload))
                .await;
            let v = match answer {
                Ok((_, v)) => v,
                Err(e) => return Err(client.not_found(e, "trigger", &name).await),
            };
            // 204 and no body: no rule is active, so nothing ran and nothing was recorded.
            let id = v["activationId"].as_str();
            if client.json {
                print_json(&if v.is_null() { json!({}) } else { v.clone() });
            } else if let Some(id) = id {
                crate::ui::ok(format_args!("triggered {} with id {id}", qualified(&name)));
            } else {
                crate::ui::ok(format_args!(
                    "triggered {} (no active rule: nothing ran)",
                    qualified(&name)
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_feed_urls() {
        assert_eq!(qualified("t"), "/_/t");
        assert_eq!(qualified("/guest/t"), "/guest/t");
        assert_eq!(
            entity_path("triggers", "a b"),
            "/api/v1/namespaces/_/triggers/a%20b"
        );
        assert_eq!(
            entity_path("rules", "/other/r"),
            "/api/v1/namespaces/other/rules/r"
        );
        assert_eq!(
            feed_url("/whisk.system/alarms/alarm").ok().as_deref(),
            Some("/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true")
        );
        assert_eq!(
            feed_url("myfeeds/tick").ok().as_deref(),
            Some("/api/v1/namespaces/_/actions/myfeeds/tick?blocking=true")
        );
        assert!(feed_url("/whisk.system").is_err());
        assert!(feed_url("/a/b/c/d").is_err());
    }

    #[test]
    fn feed_errors_read_as_the_feed_wrote_them() {
        assert_eq!(
            error_text(&json!({"error": {"error": "cron pattern 'x' is not valid"}})),
            "cron pattern 'x' is not valid"
        );
        assert_eq!(error_text(&json!({"error": "boom"})), "boom");
        assert_eq!(error_text(&json!({"other": 1})), r#"{"other":1}"#);
    }
}
