//! `gust site deploy|list|get|delete`: static sites served at `/sites/{namespace}/{name}/`.
//! A deploy hashes every file, asks the host which contents it lacks, uploads only those
//! (with a progress bar on a terminal), then switches the site to the new manifest at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::action::encode;
use super::{ApiFailure, Client, print_json, print_table};

const SITES: &str = "/api/v1/namespaces/_/sites";
const BLOBS: &str = "/api/v1/namespaces/_/site-blobs";
/// Uploads in flight at once.
const PARALLEL_UPLOADS: usize = 4;
/// Upload chunk: the progress bar moves this much at a time.
const CHUNK: usize = 256 * 1024;
/// Deploys tried before giving up when contents vanish meanwhile (swept by another deploy).
const ATTEMPTS: usize = 3;

#[derive(Debug, clap::Subcommand)]
pub enum SiteCommand {
    /// Upload folder DIR as a site (only files whose content changed travel).
    #[command(after_help = "Example:\n  gust site deploy ./public --name web --spa")]
    Deploy {
        dir: PathBuf,
        /// The site's name (default: the folder's name).
        #[arg(long)]
        name: Option<String>,
        /// Serve index.html for paths that name no file (a single-page app).
        #[arg(long)]
        spa: bool,
        /// Cache-Control of files other than HTML pages, e.g. "public, max-age=3600".
        #[arg(long)]
        cache_control: Option<String>,
    },
    /// List your sites.
    List,
    /// Show a site and its files.
    Get { name: String },
    /// Delete a site.
    Delete { name: String },
}

/// A file of the folder being deployed.
struct LocalFile {
    /// Path inside the site, `/`-separated.
    path: String,
    full: PathBuf,
    size: u64,
    hash: String,
}

/// Every file under `dir` (hidden ones skipped, except `.well-known`), by site path.
fn walk(dir: &Path) -> Result<Vec<LocalFile>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot read the folder {}", folder.display()))?;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| anyhow!("{} is not a UTF-8 name", entry.path().display()))?;
            if name.starts_with('.') && name != ".well-known" {
                continue;
            }
            let path = format!("{prefix}{name}");
            let full = entry.path();
            // Symbolic links are skipped: one could publish a file from outside the folder
            // (a key, a password file), and a linked folder could loop.
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                eprintln!("skipped {} (a symbolic link)", full.display());
            } else if kind.is_dir() {
                stack.push((full, format!("{path}/")));
            } else if let Ok(meta) = std::fs::metadata(&full)
                && meta.is_file()
            {
                out.push(LocalFile {
                    hash: hash_file(&full)?,
                    path,
                    full,
                    size: meta.len(),
                });
            } else {
                eprintln!("skipped {} (not a regular file)", full.display());
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn hash_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The site name of folder `dir`: its own name.
fn default_name(dir: &Path) -> Result<String> {
    let full = dir
        .canonicalize()
        .with_context(|| format!("cannot find the folder {}", dir.display()))?;
    full.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("name the site with --name"))
}

/// Uploads one file's content, moving `bar` as it is sent.
async fn upload(client: &Client, file: &LocalFile, bar: indicatif::ProgressBar) -> Result<()> {
    let content = bytes::Bytes::from(
        tokio::fs::read(&file.full)
            .await
            .with_context(|| format!("cannot read {}", file.full.display()))?,
    );
    let chunks: Vec<bytes::Bytes> = (0..content.len())
        .step_by(CHUNK)
        .map(|i| content.slice(i..content.len().min(i + CHUNK)))
        .collect();
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |c| {
        bar.inc(c.len() as u64);
        Ok::<_, std::io::Error>(c)
    }));
    client
        .call_raw(
            "PUT",
            &format!("{BLOBS}/{}", file.hash),
            reqwest::Body::wrap_stream(stream),
        )
        .await
        .with_context(|| format!("cannot upload {}", file.path))?;
    Ok(())
}

/// One deploy attempt: uploads what the host lacks, then puts the manifest. Returns the
/// site and how many files and bytes travelled.
async fn deploy_once(
    client: &Client,
    name: &str,
    files: &[LocalFile],
    manifest: &Value,
) -> Result<(Value, usize, u64)> {
    let hashes: Vec<&str> = files.iter().map(|f| f.hash.as_str()).collect();
    let r = client
        .call("POST", BLOBS, Some(&json!({ "hashes": hashes })))
        .await?;
    let missing: Vec<&str> = r["missing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // One upload per content, however many paths share it.
    let mut todo: BTreeMap<&str, &LocalFile> = BTreeMap::new();
    for f in files.iter().filter(|f| missing.contains(&f.hash.as_str())) {
        todo.entry(f.hash.as_str()).or_insert(f);
    }
    let bytes: u64 = todo.values().map(|f| f.size).sum();
    let bar = if client.json || todo.is_empty() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(bytes)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "uploading {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    futures_util::stream::iter(todo.values().map(|f| upload(client, f, bar.clone())))
        .buffer_unordered(PARALLEL_UPLOADS)
        .try_collect::<Vec<()>>()
        .await?;
    bar.finish_and_clear();
    let site = client
        .call("PUT", &format!("{SITES}/{}", encode(name)), Some(manifest))
        .await?;
    Ok((site, todo.len(), bytes))
}

async fn deploy(
    client: &Client,
    dir: &Path,
    name: Option<String>,
    spa: bool,
    cache_control: Option<String>,
) -> Result<()> {
    let name = match name {
        Some(n) => n,
        None => default_name(dir)?,
    };
    let files = walk(dir)?;
    if files.is_empty() {
        bail!("the folder {} holds no files to deploy", dir.display());
    }
    let map: BTreeMap<&str, &str> = files
        .iter()
        .map(|f| (f.path.as_str(), f.hash.as_str()))
        .collect();
    let mut manifest = json!({ "files": map, "spa": spa });
    if let Some(cc) = cache_control {
        manifest["cacheControl"] = json!(cc);
    }
    let mut attempt = 1;
    let (site, uploaded, bytes) = loop {
        match deploy_once(client, &name, &files, &manifest).await {
            Err(e)
                if attempt < ATTEMPTS
                    && e.downcast_ref::<ApiFailure>()
                        .is_some_and(|f| f.status == 409) =>
            {
                attempt += 1;
            }
            other => break other?,
        }
    };
    if client.json {
        print_json(&site);
    } else {
        crate::ui::ok(format_args!(
            "deployed site {name}: {} files, {uploaded} uploaded ({}), at {}{}",
            files.len(),
            crate::ui::bytes(bytes as usize),
            client.apihost(),
            site["url"].as_str().unwrap_or("")
        ));
    }
    Ok(())
}

pub async fn run(cmd: SiteCommand, client: &Client) -> Result<()> {
    match cmd {
        SiteCommand::Deploy {
            dir,
            name,
            spa,
            cache_control,
        } => deploy(client, &dir, name, spa, cache_control).await,
        SiteCommand::List => {
            let sites = client.call("GET", SITES, None).await?;
            if client.json {
                print_json(&sites);
                return Ok(());
            }
            let mut rows = vec![vec![
                "NAME".into(),
                "FILES".into(),
                "SIZE".into(),
                "URL".into(),
            ]];
            for s in sites.as_array().into_iter().flatten() {
                rows.push(vec![
                    s["name"].as_str().unwrap_or("").into(),
                    s["files"].to_string(),
                    crate::ui::bytes(s["size"].as_u64().unwrap_or(0) as usize),
                    format!("{}{}", client.apihost(), s["url"].as_str().unwrap_or("")),
                ]);
            }
            print_table(&rows);
            Ok(())
        }
        SiteCommand::Get { name } => {
            let site = match client
                .call("GET", &format!("{SITES}/{}", encode(&name)), None)
                .await
            {
                Ok(s) => s,
                Err(e) => return Err(client.not_found(e, "site", &name).await),
            };
            if client.json {
                print_json(&site);
                return Ok(());
            }
            println!(
                "site {name} at {}{}",
                client.apihost(),
                site["url"].as_str().unwrap_or("")
            );
            let mut rows = vec![vec!["PATH".into(), "SIZE".into(), "TYPE".into()]];
            for (path, f) in site["files"].as_object().into_iter().flatten() {
                rows.push(vec![
                    path.clone(),
                    crate::ui::bytes(f["size"].as_u64().unwrap_or(0) as usize),
                    f["contentType"].as_str().unwrap_or("").into(),
                ]);
            }
            print_table(&rows);
            Ok(())
        }
        SiteCommand::Delete { name } => {
            let site = match client
                .call("DELETE", &format!("{SITES}/{}", encode(&name)), None)
                .await
            {
                Ok(s) => s,
                Err(e) => return Err(client.not_found(e, "site", &name).await),
            };
            if client.json {
                print_json(&site);
            } else {
                crate::ui::ok(format_args!("deleted site {name}"));
            }
            Ok(())
        }
    }
}
