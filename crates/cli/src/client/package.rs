//! `gust package create|update|bind|get|list|delete`, with `wsk`'s flags.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::{Map, Value, json};

use super::action::encode;
use super::{ApiFailure, Client, key_values, parameter_list, parameters, print_json, print_table};

#[derive(Debug, clap::Subcommand)]
pub enum PackageCommand {
    /// Create a package.
    #[command(after_help = "Example:\n  gust package create utils -p greeting hi --shared yes")]
    Create(PackageArgs),
    /// Update a package: parameters, annotations, sharing.
    Update(PackageArgs),
    /// Bind another namespace's shared package (or one of yours) under a name of yours.
    #[command(after_help = "Example:\n  gust package bind /other/utils myutils -p greeting hello")]
    Bind {
        /// The package to bind: /namespace/package.
        package: String,
        /// The binding's name.
        name: String,
        /// Parameter KEY VALUE; repeatable.
        #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"])]
        param: Vec<String>,
        /// Parameters from a JSON file.
        #[arg(short = 'P', long = "param-file")]
        param_file: Option<PathBuf>,
        /// Secret parameter KEY VALUE of the binding (stored sealed, never shown); repeatable.
        #[arg(long = "secret", num_args = 2, value_names = ["KEY", "VALUE"])]
        secret: Vec<String>,
    },
    /// Show a package and its actions: yours, or another namespace's shared one
    /// (`gust package get /whisk.system/alarms`).
    Get { name: String },
    /// List your packages, or another namespace's shared ones (`gust package list /other`).
    List {
        /// A namespace (`/name`); yours by default.
        namespace: Option<String>,
        #[arg(long, default_value_t = 30)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        skip: u32,
    },
    /// Delete a package (with --force, also the actions in it).
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct PackageArgs {
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
    /// Share the package with every namespace (yes) or not (no).
    #[arg(long, value_parser = ["yes", "no", "true", "false"])]
    pub shared: Option<String>,
}

fn path(name: &str) -> String {
    format!("/api/v1/namespaces/_/packages/{}", encode(name))
}

/// `/ns/pkg` (or `ns/pkg`) as (namespace, package).
fn qualified(name: &str) -> Result<(String, String)> {
    match name.trim_start_matches('/').split_once('/') {
        Some((ns, p)) if !ns.is_empty() && !p.is_empty() && !p.contains('/') => {
            Ok((ns.to_string(), p.to_string()))
        }
        _ => anyhow::bail!("'{name}' is not a qualified package name: give /namespace/package"),
    }
}

fn body(args: &PackageArgs) -> Result<Value> {
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
    if let Some(s) = &args.shared {
        body.insert("publish".into(), json!(s == "yes" || s == "true"));
    }
    Ok(Value::Object(body))
}

async fn put(client: &Client, name: &str, body: Value, create: bool) -> Result<()> {
    let url = format!("{}?overwrite={}", path(name), !create);
    let p = match client.call("PUT", &url, Some(&body)).await {
        Ok(p) => p,
        Err(e) => {
            return Err(match e.downcast_ref::<ApiFailure>() {
                Some(f) if f.status == 409 => {
                    anyhow::anyhow!(
                        "package '{name}' already exists (409): use `gust package update`"
                    )
                }
                _ => e,
            });
        }
    };
    if client.json {
        print_json(&p);
    } else {
        crate::ui::ok(format_args!(
            "{} package {name} (version {})",
            if create { "created" } else { "updated" },
            p["version"].as_str().unwrap_or("")
        ));
    }
    Ok(())
}

pub async fn run(cmd: PackageCommand, client: &Client) -> Result<()> {
    match cmd {
        PackageCommand::Create(args) => put(client, &args.name, body(&args)?, true).await,
        PackageCommand::Update(args) => put(client, &args.name, body(&args)?, false).await,
        PackageCommand::Bind {
            package,
            name,
            param,
            param_file,
            secret,
        } => {
            let (ns, pkg) = qualified(&package)?;
            let mut b = json!({ "binding": { "namespace": ns, "name": pkg } });
            if let Some(list) = parameter_list(&param, param_file.as_ref(), &secret)? {
                b["parameters"] = list;
            }
            put(client, &name, b, true).await
        }
        PackageCommand::Get { name } => {
            // `/ns/pkg` reads another namespace's shared package (`/whisk.system/mqtt`).
            let url = super::trigger::entity_path("packages", &name);
            let p = match client.call("GET", &url, None).await {
                Ok(p) => p,
                Err(e) => return Err(client.not_found(e, "package", &name).await),
            };
            if client.json {
                print_json(&p);
                return Ok(());
            }
            let binding = match p["binding"].as_object() {
                Some(b) if !b.is_empty() => format!(
                    "/{}/{}",
                    b["namespace"].as_str().unwrap_or(""),
                    b["name"].as_str().unwrap_or("")
                ),
                _ => "-".into(),
            };
            let actions: Vec<&str> = p["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["name"].as_str())
                .collect();
            print_table(&[
                vec![
                    "package".into(),
                    format!(
                        "/{}/{}",
                        p["namespace"].as_str().unwrap_or(""),
                        p["name"].as_str().unwrap_or("")
                    ),
                ],
                vec!["version".into(), p["version"].as_str().unwrap_or("").into()],
                vec!["shared".into(), p["publish"].to_string()],
                vec!["binding".into(), binding],
                vec!["parameters".into(), p["parameters"].to_string()],
                vec!["actions".into(), actions.join(", ")],
            ]);
            Ok(())
        }
        PackageCommand::List {
            namespace,
            limit,
            skip,
        } => {
            let ns = namespace
                .as_deref()
                .map(|n| n.trim_matches('/').to_string())
                .unwrap_or_else(|| "_".into());
            let list = client
                .call(
                    "GET",
                    &format!(
                        "/api/v1/namespaces/{}/packages?limit={limit}&skip={skip}",
                        encode(&ns)
                    ),
                    None,
                )
                .await?;
            if client.json {
                print_json(&list);
                return Ok(());
            }
            let mut rows = vec![vec!["NAME".into(), "SHARED".into(), "BINDING".into()]];
            for p in list.as_array().into_iter().flatten() {
                let binding = match p["binding"].as_object() {
                    Some(b) if !b.is_empty() => format!(
                        "/{}/{}",
                        b["namespace"].as_str().unwrap_or(""),
                        b["name"].as_str().unwrap_or("")
                    ),
                    _ => String::new(),
                };
                rows.push(vec![
                    format!(
                        "/{}/{}",
                        p["namespace"].as_str().unwrap_or(""),
                        p["name"].as_str().unwrap_or("")
                    ),
                    if p["publish"] == true {
                        "shared"
                    } else {
                        "private"
                    }
                    .into(),
                    binding,
                ]);
            }
            print_table(&rows);
            Ok(())
        }
        PackageCommand::Delete { name, force } => {
            let url = format!("{}?force={force}", path(&name));
            let p = match client.call("DELETE", &url, None).await {
                Ok(p) => p,
                Err(e) => return Err(client.not_found(e, "package", &name).await),
            };
            if client.json {
                print_json(&p);
            } else {
                crate::ui::ok(format_args!("deleted package {name}"));
            }
            Ok(())
        }
    }
}
