//! `gust deploy` and `gust undeploy`: make the namespace hold what a manifest (`gust.toml`)
//! lists, and say what changed. Running it twice changes nothing the second time.
//!
//! The manifest's tables are per entity kind, so packages, triggers, rules, API routes and
//! sites join as `[[package]]`, `[[trigger]]`, ... without changing `[[action]]`:
//!
//! ```toml
//! [[action]]
//! name = "hello"
//! source = "examples/hello"      # a .wasm file, or a Cargo project (built for wasm32-wasip1)
//! bin = "hello"                  # which binary, if the project has several
//! kind = "wasm"                  # default: from the source
//! limits = { timeout = 3000, memory = 128, logs = 10 }
//! parameters = { name = "World" }
//! annotations = { owner = "docs" }
//! web = false                    # true, false or "raw" (annotations web-export, raw-http)
//! ```
//!
//! Relative sources are relative to the manifest's directory. What the manifest leaves out
//! takes its default (limits) or is empty (parameters, annotations), so the namespace ends
//! up exactly as described.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use gust_model::annotations;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::action::{build_project, encode, kind_of};
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
    #[serde(default)]
    annotations: Map<String, Value>,
    #[serde(default)]
    web: Option<toml::Value>,
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the manifest {}", path.display()))?;
    let m: Manifest = toml::from_str(&text)
        .with_context(|| format!("the manifest {} is not valid", path.display()))?;
    let mut names = std::collections::HashSet::new();
    for a in &m.action {
        if !names.insert(&a.name) {
            bail!("the manifest lists action '{}' twice", a.name);
        }
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

fn as_map(list: &Value) -> Map<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|kv| kv["key"] != "exec")
        .filter_map(|kv| Some((kv["key"].as_str()?.to_string(), kv["value"].clone())))
        .collect()
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
            "parameters": super::key_values(spec.parameters.clone()),
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
    if changed == 0 {
        crate::ui::ok("no changes");
    } else {
        crate::ui::ok(format_args!("{changed} change(s)"));
    }
    Ok(())
}

pub async fn undeploy(args: &DeployArgs, client: &Client) -> Result<()> {
    let manifest = read_manifest(&args.manifest)?;
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
