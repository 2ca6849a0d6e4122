//! `gust deploy` and `gust undeploy`: make the namespace hold what a manifest (`gust.toml`)
//! lists, and say what changed. Running it twice changes nothing the second time.
//!
//! The manifest's tables are per entity kind, so packages, API routes and sites join as
//! `[[package]]`, ... without changing `[[action]]`, `[[trigger]]`, `[[rule]]` or
//! `[[workflow]]`:
//!
//! ```toml
//! [[action]]
//! name = "hello"
//! source = "examples/hello"      # a .wasm file, or a Cargo project (built for wasm32-wasip1)
//! bin = "hello"                  # which binary, if the project has several
//! kind = "wasm"                  # default: from the source
//! limits = { timeout = 3000, memory = 128, logs = 10 }
//! parameters = { name = "World" }
//! secrets = { api_key = "HELLO_API_KEY" }   # secret parameters, read from these environment variables
//! annotations = { owner = "docs" }
//! web = false                    # true, false or "raw" (annotations web-export, raw-http)
//!
//! [[trigger]]
//! name = "every-minute"
//! parameters = { source = "cron" }          # the trigger's own (merged into each fire)
//! secrets = { token = "DEPLOY_TOKEN" }      # its secret parameters, from the environment
//! annotations = { owner = "docs" }
//! feed = "/whisk.system/alarms/alarm"       # optional: the feed action that fires it
//! feed_parameters = { cron = "* * * * *", trigger_payload = { x = 1 } }   # the feed's
//!
//! [[rule]]
//! name = "every-minute-hello"
//! trigger = "every-minute"
//! action = "hello"                          # name, pkg/name or /namespace/[pkg/]name
//! active = true                             # default true
//!
//! [[workflow]]
//! name = "orders"
//! definition = "orders.asl.json"            # an ASL definition (JSON file), or inline:
//!
//! [[workflow]]
//! name = "hello-flow"
//! definition = { StartAt = "Hi", States = { Hi = { Type = "Task", Resource = "hello", End = true } } }
//! ```
//!
//! Relative sources are relative to the manifest's directory. What the manifest leaves out
//! takes its default (limits, `active`) or is empty (parameters, annotations), so the
//! namespace ends up exactly as described. Deploy writes actions, then workflows (a
//! definition is compared as JSON), then triggers (a feed's trigger is announced to its
//! feed, `CREATE`), then rules; undeploy deletes rules, then triggers (telling their feeds,
//! `DELETE`), then workflows, then actions. A feed's parameters are compared
//! with what the feed's `READ` answers (`config`, as the alarms feeds answer); when they
//! differ, the feed is told `DELETE` and `CREATE` again. A secret's value is not compared
//! (the server never shows it): only whether the key is there; a changed value is sent with
//! the entity's next change, or at once with `gust action update --secret`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use gust_model::annotations;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::action::{build_project, encode, kind_of, qualify};
use super::rule::entity_name;
use super::trigger::{call_feed, create_with_feed, delete_with_feed, entity_path, feed_of};
use super::{ApiFailure, Client};

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The manifest.
    #[arg(short = 'f', long = "manifest", default_value = "gust.toml")]
    pub manifest: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    action: Vec<ActionSpec>,
    #[serde(default)]
    trigger: Vec<TriggerSpec>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    workflow: Vec<WorkflowSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionSpec {
    name: String,
    source: PathBuf,
    #[serde(default)]
    bin: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    limits: BTreeMap<String, u64>,
    #[serde(default)]
    parameters: Map<String, Value>,
    /// Secret parameters: key -> the environment variable that holds the value.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    annotations: Map<String, Value>,
    #[serde(default)]
    web: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerSpec {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    /// Secret parameters: key -> the environment variable that holds the value.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    annotations: Map<String, Value>,
    /// The feed action that fires the trigger, e.g. `/whisk.system/alarms/alarm`.
    #[serde(default)]
    feed: Option<String>,
    /// The feed's parameters (`cron`, `trigger_payload`, ...).
    #[serde(default)]
    feed_parameters: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    trigger: String,
    action: String,
    #[serde(default = "active_by_default")]
    active: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowSpec {
    name: String,
    /// A path to the definition (JSON), relative to the manifest, or the definition inline.
    definition: toml::Value,
}

impl WorkflowSpec {
    /// The definition as JSON: the file's, or the inline table's.
    fn definition(&self, base: &Path) -> Result<Value> {
        match &self.definition {
            toml::Value::String(path) => {
                super::workflow::read_json(&base.join(path), "the definition")
            }
            toml::Value::Table(t) => Ok(serde_json::to_value(t)?),
            other => bail!(
                "workflow '{}': definition must be a file name or a table, not {other}",
                self.name
            ),
        }
    }
}

fn active_by_default() -> bool {
    true
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the manifest {}", path.display()))?;
    parse_manifest(&text).with_context(|| format!("the manifest {} is not valid", path.display()))
}

fn parse_manifest(text: &str) -> Result<Manifest> {
    let m: Manifest = toml::from_str(text)?;
    // Actions, triggers and rules share a namespace's names.
    let mut names = std::collections::HashMap::new();
    let entities = m
        .action
        .iter()
        .map(|a| ("action", &a.name))
        .chain(m.trigger.iter().map(|t| ("trigger", &t.name)))
        .chain(m.rule.iter().map(|r| ("rule", &r.name)));
    for (kind, name) in entities {
        if let Some(first) = names.insert(name, kind) {
            if first == kind {
                bail!("the manifest lists {kind} '{name}' twice");
            }
            bail!(
                "the manifest names {first} '{name}' and {kind} '{name}' alike: actions, triggers and rules share the namespace's names"
            );
        }
    }
    for t in &m.trigger {
        if t.feed.is_none() && !t.feed_parameters.is_empty() {
            bail!("trigger '{}': feed_parameters without a feed", t.name);
        }
    }
    let mut workflows = std::collections::HashSet::new();
    for w in &m.workflow {
        if !workflows.insert(&w.name) {
            bail!("the manifest lists workflow '{}' twice", w.name);
        }
        if !matches!(w.definition, toml::Value::String(_) | toml::Value::Table(_)) {
            bail!(
                "workflow '{}': definition must be a file name or a table",
                w.name
            );
        }
    }
    for r in &m.rule {
        if r.trigger.is_empty() || r.action.is_empty() {
            bail!("rule '{}': give its trigger and its action", r.name);
        }
    }
    for a in &m.action {
        for key in a.limits.keys() {
            if !["timeout", "memory", "logs", "concurrency"].contains(&key.as_str()) {
                bail!(
                    "action '{}': unknown limit '{key}' (timeout, memory, logs, concurrency)",
                    a.name
                );
            }
        }
    }
    Ok(m)
}

/// The annotations a spec asks for, `web` included (as OpenWhisk spells it).
fn annotations(spec: &ActionSpec) -> Result<Map<String, Value>> {
    let mut out = spec.annotations.clone();
    match &spec.web {
        None | Some(toml::Value::Boolean(false)) => {}
        Some(toml::Value::Boolean(true)) => {
            out.insert(annotations::WEB_EXPORT.into(), json!(true));
        }
        Some(toml::Value::String(s)) if s == "raw" => {
            out.insert(annotations::WEB_EXPORT.into(), json!(true));
            out.insert(annotations::RAW_HTTP.into(), json!(true));
        }
        Some(other) => bail!(
            "action '{}': web must be true, false or \"raw\", not {other}",
            spec.name
        ),
    }
    Ok(out)
}

/// A `{key, value}` list as a map; a secret's value as `null` (never shown, so not compared).
fn as_map(list: &Value) -> Map<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|kv| kv["key"] != "exec")
        .filter_map(|kv| {
            let value = if kv["secret"] == true {
                Value::Null
            } else {
                kv["value"].clone()
            };
            Some((kv["key"].as_str()?.to_string(), value))
        })
        .collect()
}

/// The `parameters` of `what`: `parameters`, then `secrets` (each read from the environment
/// variable it names) as secret parameters.
fn parameter_list(
    what: &str,
    parameters: &Map<String, Value>,
    secrets: &BTreeMap<String, String>,
) -> Result<Value> {
    let Value::Array(mut list) = super::key_values(parameters.clone()) else {
        unreachable!("key_values makes a list")
    };
    for (key, var) in secrets {
        let Ok(value) = std::env::var(var) else {
            bail!("{what}: the secret '{key}' reads environment variable {var}, which is not set");
        };
        list.retain(|kv| kv["key"] != key.as_str());
        list.push(json!({ "key": key, "value": value, "secret": true }));
    }
    Ok(Value::Array(list))
}

/// What differs between the stored action and the wanted one.
fn changes(existing: &Value, wanted: &Value) -> Vec<&'static str> {
    let mut out = Vec::new();
    if existing["exec"]["code"] != wanted["exec"]["code"]
        || existing["exec"]["kind"] != wanted["exec"]["kind"]
    {
        out.push("code");
    }
    if as_map(&existing["parameters"]) != as_map(&wanted["parameters"]) {
        out.push("parameters");
    }
    if as_map(&existing["annotations"]) != as_map(&wanted["annotations"]) {
        out.push("annotations");
    }
    for key in ["timeout", "memory", "logs", "concurrency"] {
        if existing["limits"][key] != wanted["limits"][key] {
            out.push("limits");
            break;
        }
    }
    out
}

pub async fn deploy(args: &DeployArgs, client: &Client) -> Result<()> {
    let manifest = read_manifest(&args.manifest)?;
    let base = args
        .manifest
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut changed = 0;
    for spec in &manifest.action {
        let source = base.join(&spec.source);
        let file = if source.is_dir() {
            build_project(&source, spec.bin.as_deref())?
        } else {
            source.clone()
        };
        let code = std::fs::read(&file)
            .with_context(|| format!("action '{}': cannot read {}", spec.name, file.display()))?;
        let kind = match &spec.kind {
            Some(k) => k.clone(),
            None => kind_of(&file)?.to_string(),
        };
        let mut limits = Map::new();
        for (key, default) in [
            ("timeout", 60_000u64),
            ("memory", 256),
            ("logs", 10),
            ("concurrency", 1),
        ] {
            limits.insert(
                key.into(),
                json!(spec.limits.get(key).copied().unwrap_or(default)),
            );
        }
        let wanted = json!({
            "exec": {
                "kind": kind,
                "code": base64::engine::general_purpose::STANDARD.encode(&code),
                "binary": true,
            },
            "parameters": parameter_list(
                &format!("action '{}'", spec.name),
                &spec.parameters,
                &spec.secrets,
            )?,
            "annotations": super::key_values(annotations(spec)?),
            "limits": limits,
        });
        let path = format!("/api/v1/namespaces/_/actions/{}", encode(&spec.name));
        let existing = match client.call("GET", &format!("{path}?code=true"), None).await {
            Ok(a) => Some(a),
            Err(e)
                if e.downcast_ref::<ApiFailure>()
                    .is_some_and(|f| f.status == 404) =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        let what = match &existing {
            None => "created".to_string(),
            Some(a) => {
                let diff = changes(a, &wanted);
                if diff.is_empty() {
                    crate::ui::change("unchanged", format_args!("action {}", spec.name));
                    continue;
                }
                format!("updated ({})", diff.join(", "))
            }
        };
        let spinner = crate::ui::spinner(format!(
            "uploading {} ({})",
            spec.name,
            crate::ui::bytes(code.len())
        ));
        let answer = client
            .call(
                "PUT",
                &format!("{path}?overwrite={}", existing.is_some()),
                Some(&wanted),
            )
            .await;
        drop(spinner);
        answer.with_context(|| format!("action '{}'", spec.name))?;
        crate::ui::change(&what, format_args!("action {}", spec.name));
        changed += 1;
    }
    for spec in &manifest.workflow {
        let what = deploy_workflow(client, spec, &base)
            .await
            .with_context(|| format!("workflow '{}'", spec.name))?;
        changed += usize::from(what.is_some());
        crate::ui::change(
            what.as_deref().unwrap_or("unchanged"),
            format_args!("workflow {}", spec.name),
        );
    }
    for spec in &manifest.trigger {
        let what = deploy_trigger(client, spec)
            .await
            .with_context(|| format!("trigger '{}'", spec.name))?;
        changed += usize::from(what.is_some());
        crate::ui::change(
            what.as_deref().unwrap_or("unchanged"),
            format_args!("trigger {}", spec.name),
        );
    }
    for spec in &manifest.rule {
        let what = deploy_rule(client, spec)
            .await
            .with_context(|| format!("rule '{}'", spec.name))?;
        changed += usize::from(what.is_some());
        crate::ui::change(
            what.as_deref().unwrap_or("unchanged"),
            format_args!("rule {}", spec.name),
        );
    }
    if changed == 0 {
        crate::ui::ok("no changes");
    } else {
        crate::ui::ok(format_args!("{changed} change(s)"));
    }
    Ok(())
}

/// The entity at `path`, or `None` when there is none (404).
async fn existing(client: &Client, path: &str) -> Result<Option<Value>> {
    match client.call("GET", path, None).await {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| f.status == 404) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Makes workflow `spec` as described: what changed, or `None`.
async fn deploy_workflow(
    client: &Client,
    spec: &WorkflowSpec,
    base: &Path,
) -> Result<Option<String>> {
    let definition = spec.definition(base)?;
    let path = format!("/api/v1/namespaces/_/workflows/{}", encode(&spec.name));
    let what = match existing(client, &path).await? {
        None => "created",
        Some(w) if w["definition"] == definition => return Ok(None),
        Some(_) => "updated (definition)",
    };
    let overwrite = what != "created";
    client
        .call(
            "PUT",
            &format!("{path}?overwrite={overwrite}"),
            Some(&json!({ "definition": definition })),
        )
        .await?;
    Ok(Some(what.into()))
}

/// `trigger_payload` as the alarms feeds keep it: an object as it is, nothing (or "") as
/// `{}`, anything else as `{"payload": ...}`.
fn payload(v: Option<Value>) -> Value {
    match v {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.is_empty() => json!({}),
        Some(Value::Object(m)) => Value::Object(m),
        Some(other) => json!({ "payload": other }),
    }
}

/// Whether a feed's `READ` answer shows the parameters `wanted`: its `config` (as the alarms
/// feeds answer it) holds each of them as given (`trigger_payload` as `payload`) and no
/// other. An answer without `config` cannot tell, and is taken to match.
fn feed_matches(read: &Value, wanted: &Map<String, Value>) -> bool {
    let Some(config) = read["config"].as_object() else {
        return true;
    };
    let mut wanted = wanted.clone();
    let wanted_payload = payload(wanted.remove("trigger_payload"));
    if config.get("payload").cloned().unwrap_or_else(|| json!({})) != wanted_payload {
        return false;
    }
    let shown: Map<String, Value> = config
        .iter()
        .filter(|(k, _)| !["name", "namespace", "payload"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    shown == wanted
}

/// Makes trigger `spec` as described (its feed told): what changed, or `None`.
async fn deploy_trigger(client: &Client, spec: &TriggerSpec) -> Result<Option<String>> {
    let path = entity_path("triggers", &spec.name);
    let mut annotations = spec.annotations.clone();
    if let Some(feed) = &spec.feed {
        annotations.insert(gust_model::annotations::FEED.into(), json!(feed));
    }
    let wanted = json!({
        "parameters": parameter_list(
            &format!("trigger '{}'", spec.name),
            &spec.parameters,
            &spec.secrets,
        )?,
        "annotations": super::key_values(annotations),
    });
    let feed = spec
        .feed
        .as_deref()
        .map(|f| (f, spec.feed_parameters.clone()));
    let Some(t) = existing(client, &path).await? else {
        create_with_feed(client, &spec.name, wanted, feed).await?;
        return Ok(Some("created".into()));
    };
    let mut diff = Vec::new();
    if as_map(&t["parameters"]) != as_map(&wanted["parameters"]) {
        diff.push("parameters");
    }
    if as_map(&t["annotations"]) != as_map(&wanted["annotations"]) {
        diff.push("annotations");
    }
    let old_feed = feed_of(&t);
    // The old feed to tell DELETE, and whether to tell the new one CREATE.
    let (delete, create) = if old_feed != spec.feed {
        (old_feed, spec.feed.is_some())
    } else if let Some(f) = &spec.feed {
        match call_feed(client, f, "READ", &spec.name, Map::new()).await {
            Ok(read) if feed_matches(&read, &spec.feed_parameters) => (None, false),
            Ok(_) => (Some(f.clone()), true),
            // The feed has no record of the trigger: announce it again.
            Err(_) => (None, true),
        }
    } else {
        (None, false)
    };
    if delete.is_some() || create {
        diff.push("feed");
    }
    if diff.is_empty() {
        return Ok(None);
    }
    if let Some(old) = &delete
        && let Err(e) = call_feed(client, old, "DELETE", &spec.name, Map::new()).await
    {
        crate::ui::warn(format_args!("trigger '{}': {e:#}", spec.name));
    }
    if diff.contains(&"parameters") || diff.contains(&"annotations") {
        client
            .call("PUT", &format!("{path}?overwrite=true"), Some(&wanted))
            .await?;
    }
    if let Some((f, params)) = feed.filter(|_| create) {
        call_feed(client, f, "CREATE", &spec.name, params).await?;
    }
    Ok(Some(format!("updated ({})", diff.join(", "))))
}

/// `/_/x` (as a rule body gives it) as the API answers it, in namespace `ns`.
fn in_namespace(name: &str, ns: &str) -> String {
    match name.strip_prefix("/_/") {
        Some(rest) => format!("/{ns}/{rest}"),
        None => name.to_string(),
    }
}

/// Makes rule `spec` as described: what changed, or `None`.
async fn deploy_rule(client: &Client, spec: &RuleSpec) -> Result<Option<String>> {
    let path = entity_path("rules", &spec.name);
    let wanted = super::rule::body(&spec.trigger, &spec.action);
    let status = if spec.active { "active" } else { "inactive" };
    let Some(r) = existing(client, &path).await? else {
        client
            .call("PUT", &format!("{path}?overwrite=false"), Some(&wanted))
            .await?;
        // A new rule is active.
        if !spec.active {
            super::rule::set_status(client, &spec.name, status).await?;
        }
        return Ok(Some("created".into()));
    };
    let ns = r["namespace"].as_str().unwrap_or("_");
    let mut diff = Vec::new();
    if entity_name(&r["trigger"]) != in_namespace(&qualify(&spec.trigger), ns) {
        diff.push("trigger");
    }
    if entity_name(&r["action"]) != in_namespace(&qualify(&spec.action), ns) {
        diff.push("action");
    }
    if diff.is_empty() && r["status"] == status {
        return Ok(None);
    }
    if !diff.is_empty() {
        client
            .call("PUT", &format!("{path}?overwrite=true"), Some(&wanted))
            .await?;
    }
    if r["status"] != status {
        super::rule::set_status(client, &spec.name, status).await?;
        diff.push("status");
    }
    Ok(Some(format!("updated ({})", diff.join(", "))))
}

pub async fn undeploy(args: &DeployArgs, client: &Client) -> Result<()> {
    let manifest = read_manifest(&args.manifest)?;
    for spec in &manifest.rule {
        let path = entity_path("rules", &spec.name);
        match client.call("DELETE", &path, None).await {
            Ok(_) => crate::ui::change("deleted", format_args!("rule {}", spec.name)),
            Err(e)
                if e.downcast_ref::<ApiFailure>()
                    .is_some_and(|f| f.status == 404) =>
            {
                crate::ui::change("absent", format_args!("rule {}", spec.name))
            }
            Err(e) => return Err(e).with_context(|| format!("rule '{}'", spec.name)),
        }
    }
    for spec in &manifest.trigger {
        let path = entity_path("triggers", &spec.name);
        let deleted = match existing(client, &path).await {
            Ok(Some(t)) => delete_with_feed(client, &spec.name, &t).await.map(Some),
            other => other,
        };
        match deleted {
            Ok(Some(_)) => crate::ui::change("deleted", format_args!("trigger {}", spec.name)),
            Ok(None) => crate::ui::change("absent", format_args!("trigger {}", spec.name)),
            Err(e) => return Err(e).with_context(|| format!("trigger '{}'", spec.name)),
        }
    }
    for spec in &manifest.workflow {
        let path = format!("/api/v1/namespaces/_/workflows/{}", encode(&spec.name));
        match client.call("DELETE", &path, None).await {
            Ok(_) => crate::ui::change("deleted", format_args!("workflow {}", spec.name)),
            Err(e)
                if e.downcast_ref::<ApiFailure>()
                    .is_some_and(|f| f.status == 404) =>
            {
                crate::ui::change("absent", format_args!("workflow {}", spec.name))
            }
            Err(e) => return Err(e).with_context(|| format!("workflow '{}'", spec.name)),
        }
    }
    for spec in &manifest.action {
        let path = format!("/api/v1/namespaces/_/actions/{}", encode(&spec.name));
        match client.call("DELETE", &path, None).await {
            Ok(_) => crate::ui::change("deleted", format_args!("action {}", spec.name)),
            Err(e)
                if e.downcast_ref::<ApiFailure>()
                    .is_some_and(|f| f.status == 404) =>
            {
                crate::ui::change("absent", format_args!("action {}", spec.name))
            }
            Err(e) => return Err(e).with_context(|| format!("action '{}'", spec.name)),
        }
    }
    crate::ui::ok(format_args!("undeployed {}", args.manifest.display()));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        format!("{:#}", parse_manifest(text).unwrap_err())
    }

    #[test]
    fn triggers_and_rules_parse_with_their_defaults() {
        let m = parse_manifest(
            r#"
[[action]]
name = "hello"
source = "hello.wasm"

[[trigger]]
name = "tick"
feed = "/whisk.system/alarms/alarm"
feed_parameters = { cron = "* * * * *", trigger_payload = { x = 1 } }

[[trigger]]
name = "hook"
parameters = { source = "web" }
annotations = { owner = "docs" }

[[rule]]
name = "on-tick"
trigger = "tick"
action = "hello"

[[rule]]
name = "on-hook"
trigger = "hook"
action = "/guest/pkg/hello"
active = false
"#,
        )
        .unwrap();
        assert_eq!(m.action.len(), 1);
        let [tick, hook] = &m.trigger[..] else {
            panic!("two triggers: {:?}", m.trigger)
        };
        assert_eq!(tick.feed.as_deref(), Some("/whisk.system/alarms/alarm"));
        assert_eq!(tick.feed_parameters["trigger_payload"], json!({ "x": 1 }));
        assert!(tick.parameters.is_empty() && tick.annotations.is_empty());
        assert_eq!(hook.feed, None);
        assert_eq!(hook.parameters["source"], "web");
        assert_eq!(hook.annotations["owner"], "docs");
        let [on_tick, on_hook] = &m.rule[..] else {
            panic!("two rules: {:?}", m.rule)
        };
        assert!(on_tick.active && !on_hook.active);
        assert_eq!(on_hook.action, "/guest/pkg/hello");
        assert!(parse_manifest("").unwrap().rule.is_empty());
    }

    #[test]
    fn workflows_parse_from_a_file_name_or_inline() {
        let m = parse_manifest(
            r#"
[[workflow]]
name = "orders"
definition = "orders.asl.json"

[[workflow]]
name = "inline"
definition = { StartAt = "A", States = { A = { Type = "Pass", End = true } } }
"#,
        )
        .unwrap();
        let [file, inline] = &m.workflow[..] else {
            panic!("two workflows: {:?}", m.workflow)
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("orders.asl.json"), r#"{"StartAt": "X"}"#).unwrap();
        assert_eq!(
            file.definition(dir.path()).unwrap(),
            json!({"StartAt": "X"})
        );
        assert_eq!(
            inline.definition(dir.path()).unwrap(),
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}})
        );
        std::fs::write(dir.path().join("orders.asl.json"), "{nope").unwrap();
        let e = format!("{:#}", file.definition(dir.path()).unwrap_err());
        assert!(e.contains("is not valid JSON"), "{e}");
        assert!(
            error("[[workflow]]\nname = \"w\"\ndefinition = 3\n")
                .contains("workflow 'w': definition must be a file name or a table")
        );
        assert!(
            error("[[workflow]]\nname = \"w\"\ndefinition = \"a\"\n[[workflow]]\nname = \"w\"\ndefinition = \"b\"\n")
                .contains("lists workflow 'w' twice")
        );
        assert!(error("[[workflow]]\nname = \"w\"\n").contains("missing field `definition`"));
    }

    #[test]
    fn manifest_mistakes_are_named() {
        assert!(
            error("[[rule]]\nname = \"r\"\ntrigger = \"t\"\n").contains("missing field `action`")
        );
        assert!(
            error("[[trigger]]\nname = \"t\"\nfeeds = \"x\"\n").contains("unknown field `feeds`")
        );
        assert!(
            error("[[trigger]]\nname = \"t\"\nfeed_parameters = { cron = \"* * * * *\" }\n")
                .contains("trigger 't': feed_parameters without a feed")
        );
        assert!(
            error("[[trigger]]\nname = \"t\"\n[[trigger]]\nname = \"t\"\n")
                .contains("lists trigger 't' twice")
        );
        let e = error(
            "[[action]]\nname = \"x\"\nsource = \"x.wasm\"\n[[rule]]\nname = \"x\"\ntrigger = \"t\"\naction = \"x\"\n",
        );
        assert!(e.contains("action 'x' and rule 'x'"), "{e}");
        assert!(
            error("[[rule]]\nname = \"r\"\ntrigger = \"\"\naction = \"a\"\n")
                .contains("rule 'r': give its trigger and its action")
        );
    }

    #[test]
    fn a_feeds_read_is_compared_with_the_wanted_parameters() {
        let read = json!({
            "config": {
                "name": "tick", "namespace": "guest", "payload": { "x": 1 },
                "cron": "* * * * *",
            },
            "status": { "active": true },
        });
        let wanted = |v: Value| v.as_object().unwrap().clone();
        assert!(feed_matches(
            &read,
            &wanted(json!({ "cron": "* * * * *", "trigger_payload": { "x": 1 } }))
        ));
        assert!(!feed_matches(
            &read,
            &wanted(json!({ "cron": "*/5 * * * *", "trigger_payload": { "x": 1 } }))
        ));
        assert!(!feed_matches(
            &read,
            &wanted(json!({ "cron": "* * * * *" }))
        ));
        assert!(!feed_matches(
            &read,
            &wanted(
                json!({ "cron": "* * * * *", "trigger_payload": { "x": 1 }, "stopDate": "2030-01-01" })
            )
        ));
        let plain =
            json!({ "config": { "name": "t", "payload": { "payload": "hi" }, "minutes": 5 } });
        assert!(feed_matches(
            &plain,
            &wanted(json!({ "minutes": 5, "trigger_payload": "hi" }))
        ));
        assert!(feed_matches(&json!({ "status": "ok" }), &Map::new()));
    }

    #[test]
    fn rule_names_compare_in_the_rules_namespace() {
        assert_eq!(in_namespace(&qualify("t"), "guest"), "/guest/t");
        assert_eq!(in_namespace(&qualify("pkg/a"), "guest"), "/guest/pkg/a");
        assert_eq!(in_namespace(&qualify("/other/a"), "guest"), "/other/a");
    }
}
