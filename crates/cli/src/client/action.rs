//! `gust action create|update|get|list|delete|invoke`, with `wsk`'s flags, and `gust action
//! delivery` ([`super::delivery`]).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use gust_model::annotations;
use serde_json::{Map, Value, json};

use super::{ApiFailure, Client, key_values, parameter_list, parameters, print_json, print_table};

#[derive(Debug, clap::Subcommand)]
pub enum ActionCommand {
    /// Create an action from a file (`.wasm`).
    #[command(after_help = "Example:\n  gust action create hello hello.wasm -p name World -t 3000")]
    Create(PutArgs),
    /// Update an action: new code, parameters, annotations or limits.
    #[command(after_help = "Example:\n  gust action update hello -m 128")]
    Update(PutArgs),
    /// Show an action.
    Get {
        name: String,
        /// Print only the action's URL.
        #[arg(long)]
        url: bool,
        /// Save the action's code as NAME.wasm in the current directory.
        #[arg(long)]
        save: bool,
    },
    /// List the actions of your namespace.
    List {
        /// Most actions to list (at most 200).
        #[arg(long, default_value_t = 30)]
        limit: u32,
        /// Actions to skip.
        #[arg(long, default_value_t = 0)]
        skip: u32,
    },
    /// Delete an action.
    Delete { name: String },
    /// Invoke an action.
    #[command(
        after_help = "Examples:\n  gust action invoke hello -p name Ada -r\n  gust action invoke hello     # prints the activation id"
    )]
    Invoke {
        name: String,
        /// Parameter KEY VALUE (VALUE is JSON when it parses as JSON); repeatable.
        #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"])]
        param: Vec<String>,
        /// Parameters from a JSON file.
        #[arg(short = 'P', long = "param-file")]
        param_file: Option<PathBuf>,
        /// Wait for the result.
        #[arg(short = 'b', long)]
        blocking: bool,
        /// Wait and print only the result (implies --blocking).
        #[arg(short = 'r', long)]
        result: bool,
        /// Invoke once per key: a repeated key (within 24 h) answers the first activation
        /// and runs nothing (the `Idempotency-Key` header).
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// Read, set or delete an action's async delivery: retries and where the outcome of a
    /// non-blocking invocation goes.
    #[command(
        after_help = "Examples:\n  gust action delivery set charge --retries 2 --on-failure action:alert\n  gust action delivery get charge"
    )]
    Delivery {
        #[command(subcommand)]
        command: super::delivery::DeliveryCommand,
    },
}

#[derive(Debug, clap::Args)]
pub struct PutArgs {
    pub name: String,
    /// The code (required for create): a `.wasm` file, a Cargo project directory to build
    /// for wasm32-wasip1, a `.js` or `.py` source file, a `.zip` (with --kind), or an
    /// executable (--kind native).
    pub file: Option<PathBuf>,
    /// The binary to build when the Cargo project has several.
    #[arg(long)]
    pub bin: Option<String>,
    /// The kind; by default it follows from the file name.
    #[arg(long)]
    pub kind: Option<String>,
    /// The function to call in a Node.js or Python action (default `main`).
    #[arg(long)]
    pub main: Option<String>,
    /// Activations one instance runs at once (Node.js; wsk's `--concurrency`).
    #[arg(short = 'c', long)]
    pub concurrency: Option<u64>,
    /// Most instances of the action running at once (process kinds).
    #[arg(long)]
    pub instances: Option<u64>,
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
    /// Environment variable KEY VALUE of the function (an `init` parameter: a Lambda
    /// function's environment, an OpenWhisk action's `process.env`); repeatable.
    #[arg(long = "env", num_args = 2, value_names = ["KEY", "VALUE"])]
    pub env: Vec<String>,
    /// Annotation KEY VALUE; repeatable.
    #[arg(short = 'a', long = "annotation", num_args = 2, value_names = ["KEY", "VALUE"])]
    pub annotation: Vec<String>,
    /// Timeout in milliseconds.
    #[arg(short = 't', long)]
    pub timeout: Option<u64>,
    /// Memory limit in MB.
    #[arg(short = 'm', long)]
    pub memory: Option<u64>,
    /// Log limit in MB.
    #[arg(short = 'l', long)]
    pub logsize: Option<u64>,
    /// Export as a web action: true, false or raw (annotations web-export, raw-http; final
    /// too, so a web request cannot override the action's parameters).
    #[arg(long, value_parser = ["true", "false", "raw"])]
    pub web: Option<String>,
    /// Make the action a sequence of these actions (comma-separated; `a`, `pkg/a` or
    /// `/namespace/[pkg/]a`) instead of giving code.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["file", "kind", "bin"])]
    pub sequence: Option<Vec<String>>,
}

/// An action name as the API wants it in a sequence or a rule: fully qualified (`a` ->
/// `/_/a`, `pkg/a` -> `/_/pkg/a`; `/ns/[pkg/]a` as it is).
pub fn qualify(component: &str) -> String {
    if component.starts_with('/') {
        component.to_string()
    } else {
        format!("/_/{component}")
    }
}

/// Builds the Cargo project in `dir` for `wasm32-wasip1` in release mode, showing cargo's
/// progress, and returns the `.wasm` it made.
pub fn build_project(dir: &std::path::Path, bin: Option<&str>) -> Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} is a directory without a Cargo.toml: give a .wasm file or a Cargo project",
            dir.display()
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata = std::process::Command::new(&cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !metadata.status.success() {
        bail!(
            "cargo cannot read {}: {}",
            manifest.display(),
            String::from_utf8_lossy(&metadata.stderr).trim()
        );
    }
    let metadata: Value = serde_json::from_slice(&metadata.stdout)?;
    // A member of a workspace builds its own binaries, not its siblings'.
    let own = std::fs::canonicalize(&manifest).ok();
    let packages: Vec<&Value> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let mine: Vec<&Value> = packages
        .iter()
        .copied()
        .filter(|p| {
            p["manifest_path"]
                .as_str()
                .map(|m| std::fs::canonicalize(m).ok())
                == Some(own.clone())
        })
        .collect();
    let packages = if mine.is_empty() { packages } else { mine };
    let bins: Vec<String> = packages
        .into_iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    let bin = match (bin, bins.as_slice()) {
        (Some(b), _) if bins.iter().any(|x| x == b) => b.to_string(),
        (Some(b), _) => bail!(
            "the project has no binary '{b}' (it has: {})",
            bins.join(", ")
        ),
        (None, [only]) => only.clone(),
        (None, []) => bail!("the project builds no binary: a function is a program with main"),
        (None, _) => bail!(
            "the project has several binaries ({}): pick one with --bin",
            bins.join(", ")
        ),
    };
    crate::ui::note(format_args!("building {bin} for wasm32-wasip1 (release)"));
    let status = std::process::Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--bin",
            &bin,
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("the build failed (see cargo's messages above)");
    }
    let target_dir = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    Ok(target_dir
        .join("wasm32-wasip1")
        .join("release")
        .join(format!("{bin}.wasm")))
}

/// The kind of a code file, from its name.
pub fn kind_of(file: &std::path::Path) -> Result<&'static str> {
    match file.extension().and_then(|e| e.to_str()) {
        Some("wasm") => Ok("wasm"),
        Some("js") | Some("mjs") | Some("cjs") => Ok("nodejs:default"),
        Some("py") => Ok("python:default"),
        _ => bail!(
            "cannot tell the kind of {} from its name: give --kind (wasm, nodejs:default, python:default, native)",
            file.display()
        ),
    }
}

fn put_body(args: &PutArgs, create: bool) -> Result<Value> {
    let mut body = Map::new();
    if let Some(components) = &args.sequence {
        let components: Vec<String> = components.iter().map(|c| qualify(c.trim())).collect();
        body.insert(
            "exec".into(),
            json!({ "kind": "sequence", "components": components }),
        );
    }
    match &args.file {
        Some(file) => {
            let file = &if file.is_dir() {
                build_project(file, args.bin.as_deref())?
            } else {
                file.clone()
            };
            let code =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let kind = match &args.kind {
                Some(k) => k.clone(),
                None => kind_of(file)?.to_string(),
            };
            // Source text travels as it is (OpenWhisk's `binary: false`); anything else,
            // a zip or an executable included, as base64.
            let source = (kind.starts_with("nodejs") || kind.starts_with("python"))
                && !code.starts_with(b"PK\x03\x04")
                && std::str::from_utf8(&code).is_ok();
            let mut exec = if source {
                json!({ "kind": kind, "code": String::from_utf8_lossy(&code), "binary": false })
            } else {
                json!({
                    "kind": kind,
                    "code": base64::engine::general_purpose::STANDARD.encode(code),
                    "binary": true,
                })
            };
            if let Some(main) = &args.main {
                exec["main"] = json!(main);
            }
            body.insert("exec".into(), exec);
        }
        None if create && args.sequence.is_none() => {
            bail!("give the action's code: gust action create NAME FILE (or --sequence A,B)")
        }
        None => {}
    }
    // `--env` pairs are `init` parameters, over any parameter of the same name.
    let env: Vec<Value> = args
        .env
        .chunks_exact(2)
        .map(|pair| json!({ "key": pair[0], "value": pair[1], "init": true }))
        .collect();
    match parameter_list(&args.param, args.param_file.as_ref(), &args.secret)? {
        Some(Value::Array(mut items)) => {
            for e in env {
                items.retain(|kv| kv["key"] != e["key"]);
                items.push(e);
            }
            body.insert("parameters".into(), Value::Array(items));
        }
        _ if !env.is_empty() => {
            body.insert("parameters".into(), Value::Array(env));
        }
        _ => {}
    }
    if !args.annotation.is_empty() || args.web.is_some() {
        let mut annotations = parameters(&args.annotation, None)?;
        if let Some(web) = &args.web {
            annotations.insert(annotations::WEB_EXPORT.into(), json!(web != "false"));
            annotations.insert(annotations::RAW_HTTP.into(), json!(web == "raw"));
            annotations.insert(annotations::FINAL.into(), json!(web != "false"));
        }
        body.insert("annotations".into(), key_values(annotations));
    }
    let mut limits = Map::new();
    for (key, value) in [
        ("timeout", args.timeout),
        ("memory", args.memory),
        ("logs", args.logsize),
        ("concurrency", args.concurrency),
        ("instances", args.instances),
    ] {
        if let Some(v) = value {
            limits.insert(key.into(), json!(v));
        }
    }
    if !limits.is_empty() {
        body.insert("limits".into(), Value::Object(limits));
    }
    Ok(Value::Object(body))
}

/// The API path of action `name` (`a` or `pkg/a`: each segment encoded on its own).
pub(super) fn path(name: &str) -> String {
    let segments: Vec<String> = name.split('/').map(encode).collect();
    format!("/api/v1/namespaces/_/actions/{}", segments.join("/"))
}

/// Percent-encodes a name for a URL path segment.
pub fn encode(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A one-screen summary of an action.
fn show(a: &Value) {
    let limits = &a["limits"];
    print_table(&[
        vec![
            "action".into(),
            format!(
                "/{}/{}",
                a["namespace"].as_str().unwrap_or("_"),
                a["name"].as_str().unwrap_or("")
            ),
        ],
        vec!["version".into(), a["version"].as_str().unwrap_or("").into()],
        vec![
            "kind".into(),
            a["exec"]["kind"].as_str().unwrap_or("").into(),
        ],
        vec![
            "limits".into(),
            format!(
                "timeout {} ms, memory {} MB, logs {} MB",
                limits["timeout"], limits["memory"], limits["logs"]
            ),
        ],
        vec!["parameters".into(), a["parameters"].to_string()],
        vec!["annotations".into(), a["annotations"].to_string()],
    ]);
}

pub async fn run(cmd: ActionCommand, client: &Client) -> Result<()> {
    match cmd {
        ActionCommand::Create(args) => put(client, &args, true).await,
        ActionCommand::Update(args) => put(client, &args, false).await,
        ActionCommand::Delivery { command } => super::delivery::run(command, client).await,
        ActionCommand::Get { name, url, save } => {
            let a = client
                .call("GET", &format!("{}?code={save}", path(&name)), None)
                .await;
            let a = match a {
                Ok(a) => a,
                Err(e) => return Err(client.not_found(e, "action", &name).await),
            };
            if url {
                // A web action's public URL (OpenWhisk's `wsk action get --url`), else its
                // REST URL.
                let namespace = a["namespace"].as_str().unwrap_or("_");
                let (ns, pkg) = namespace.split_once('/').unwrap_or((namespace, "default"));
                let simple = a["name"].as_str().unwrap_or(&name);
                let web = a["annotations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| x["key"] == annotations::WEB_EXPORT && x["value"] == true);
                if web {
                    println!(
                        "{}/api/v1/web/{}/{}/{}",
                        client.apihost(),
                        encode(ns),
                        encode(pkg),
                        encode(simple)
                    );
                } else {
                    println!(
                        "{}{}",
                        client.apihost(),
                        path(&name).replacen("/_/", &format!("/{}/", encode(ns)), 1)
                    );
                }
            } else if save {
                let code = base64::engine::general_purpose::STANDARD
                    .decode(a["exec"]["code"].as_str().unwrap_or(""))
                    .context("the server sent code that is not base64")?;
                let file = PathBuf::from(format!("{name}.wasm"));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&file)
                    .with_context(|| format!("cannot create {}", file.display()))?;
                std::io::Write::write_all(&mut f, &code)?;
                crate::ui::ok(format_args!("saved action code to {}", file.display()));
            } else if client.json {
                print_json(&a);
            } else {
                show(&a);
            }
            Ok(())
        }
        ActionCommand::List { limit, skip } => {
            let list = client
                .call(
                    "GET",
                    &format!("/api/v1/namespaces/_/actions?limit={limit}&skip={skip}"),
                    None,
                )
                .await?;
            if client.json {
                print_json(&list);
                return Ok(());
            }
            let mut rows = vec![vec!["NAME".into(), "VERSION".into(), "KIND".into()]];
            for a in list.as_array().into_iter().flatten() {
                let kind = a["annotations"]
                    .as_array()
                    .and_then(|v| v.iter().find(|x| x["key"] == "exec"))
                    .and_then(|x| x["value"].as_str())
                    .unwrap_or("");
                rows.push(vec![
                    a["name"].as_str().unwrap_or("").into(),
                    a["version"].as_str().unwrap_or("").into(),
                    kind.into(),
                ]);
            }
            print_table(&rows);
            Ok(())
        }
        ActionCommand::Delete { name } => {
            let a = match client.call("DELETE", &path(&name), None).await {
                Ok(a) => a,
                Err(e) => return Err(client.not_found(e, "action", &name).await),
            };
            if client.json {
                print_json(&a);
            } else {
                crate::ui::ok(format_args!("deleted action {name}"));
            }
            Ok(())
        }
        ActionCommand::Invoke {
            name,
            param,
            param_file,
            blocking,
            result,
            idempotency_key,
        } => {
            let params = Value::Object(parameters(&param, param_file.as_ref())?);
            let blocking = blocking || result;
            let url = format!("{}?blocking={blocking}&result={result}", path(&name));
            let headers: Vec<(&str, &str)> = idempotency_key
                .as_deref()
                .map(|k| ("Idempotency-Key", k))
                .into_iter()
                .collect();
            match client
                .call_with_headers("POST", &url, Some(&params), &headers)
                .await
            {
                Ok((202, v)) => {
                    let id = v["activationId"].as_str().unwrap_or("");
                    if client.json {
                        print_json(&v);
                    } else if blocking {
                        crate::ui::ok(format_args!(
                            "invoked {name}; still running, id {id} (see gust activation get {id})"
                        ));
                    } else {
                        crate::ui::ok(format_args!("invoked {name} with id {id}"));
                    }
                    Ok(())
                }
                Ok((_, v)) => {
                    print_json(&v);
                    Ok(())
                }
                Err(e) => match e.downcast_ref::<ApiFailure>() {
                    // The action failed: its record (or result) is the answer; the exit status
                    // says it failed.
                    Some(f)
                        if f.status == 502
                            || (f.status == 500
                                && f.body.is_object()
                                && f.body.get("error").is_none()) =>
                    {
                        print_json(&f.body);
                        bail!("the action failed ({})", f.status)
                    }
                    _ => Err(client.not_found(e, "action", &name).await),
                },
            }
        }
    }
}

async fn put(client: &Client, args: &PutArgs, create: bool) -> Result<()> {
    let body = put_body(args, create)?;
    let url = format!("{}?overwrite={}", path(&args.name), !create);
    // The code travels as base64: four characters for three bytes.
    let size = body["exec"]["code"].as_str().map_or(0, |c| c.len() / 4 * 3);
    let spinner = crate::ui::spinner(format!(
        "uploading {} ({}) and compiling it",
        args.name,
        crate::ui::bytes(size)
    ));
    let answer = client.call("PUT", &url, Some(&body)).await;
    drop(spinner);
    let a = match answer {
        Ok(a) => a,
        Err(e) => {
            return Err(match e.downcast_ref::<ApiFailure>() {
                Some(f) if f.status == 409 => anyhow::anyhow!(
                    "action '{}' already exists (409): use `gust action update`",
                    args.name
                ),
                _ => e,
            });
        }
    };
    if client.json {
        print_json(&a);
    } else {
        crate::ui::ok(format_args!(
            "{} action {} (version {})",
            if create { "created" } else { "updated" },
            args.name,
            a["version"].as_str().unwrap_or("")
        ));
    }
    Ok(())
}
