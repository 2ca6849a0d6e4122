//! The client half of `gust`: commands that talk to a Gust API host over its REST API, like
//! OpenWhisk's `wsk`. One module per entity; this one finds the API host and key and makes
//! the requests.
//!
//! Where the API host and key come from, first found wins: the `--apihost` / `--auth` flags,
//! then `GUST_APIHOST` / `GUST_AUTH`, then the config file (`gust property set`, or the one
//! `gust serve` writes), then `~/.wskprops` (`APIHOST`, `AUTH`). A token (`--token`, else
//! `GUST_TOKEN`) is sent as `Authorization: Bearer` instead of the key, which is then not
//! needed.

pub mod action;
pub mod activation;
pub mod api;
pub mod deadletter;
pub mod delivery;
pub mod deploy;
pub mod mapping;
pub mod namespace;
pub mod package;
pub mod property;
pub mod rule;
pub mod site;
pub mod token;
pub mod trigger;
pub mod workflow;

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use serde_json::Value;

use crate::serve::client_config_dir;

/// Flags every client command takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// API host, e.g. http://127.0.0.1:3233 (else GUST_APIHOST, the config file, ~/.wskprops).
    #[arg(long, global = true)]
    pub apihost: Option<String>,
    /// API key UUID:KEY (else GUST_AUTH, the config file, ~/.wskprops).
    #[arg(long, global = true)]
    pub auth: Option<String>,
    /// A scoped token (`gust token create`) to send instead of the key (else GUST_TOKEN).
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Accept the API host's TLS certificate unchecked (a self-signed host), like `wsk -i`.
    #[arg(short = 'i', long, global = true)]
    pub insecure: bool,
    /// Trust the API host's certificate if this CA (PEM) signed it, such as the development
    /// CA of `gust serve --tls-self-signed` (else GUST_CACERT, the config file).
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Print exactly the API's JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The saved client configuration (`config.json` in the config directory).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apihost: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// A CA certificate (PEM) to trust for the API host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert: Option<PathBuf>,
}

pub fn config_path() -> Option<PathBuf> {
    client_config_dir().map(|d| d.join("config.json"))
}

/// The saved configuration; empty if there is none.
pub fn load_config() -> Result<Config> {
    let Some(path) = config_path() else {
        return Ok(Config::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid configuration", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `APIHOST` and `AUTH` of `~/.wskprops`, for OpenWhisk users.
fn wskprops() -> Config {
    let Some(home) = std::env::var_os("HOME") else {
        return Config::default();
    };
    let Ok(text) = std::fs::read_to_string(PathBuf::from(home).join(".wskprops")) else {
        return Config::default();
    };
    let mut c = Config::default();
    for line in text.lines() {
        match line.trim().split_once('=') {
            Some(("APIHOST", v)) => c.apihost = Some(v.trim().to_string()),
            Some(("AUTH", v)) => c.auth = Some(v.trim().to_string()),
            _ => {}
        }
    }
    c
}

/// Resolves the API host and key, in the order the module documentation gives.
pub fn resolve(args: &ClientArgs) -> Result<(String, String)> {
    let saved = load_config()?;
    let wsk = wskprops();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let apihost = args
        .apihost
        .clone()
        .or_else(|| env("GUST_APIHOST"))
        .or(saved.apihost)
        .or(wsk.apihost)
        .ok_or_else(|| {
            anyhow!(
                "no API host: start `gust serve`, or run `gust property set --apihost URL --auth UUID:KEY`"
            )
        })?;
    let auth = args
        .auth
        .clone()
        .or_else(|| env("GUST_AUTH"))
        .or(saved.auth)
        .or(wsk.auth)
        .or_else(|| token(args).map(|_| String::new()))
        .ok_or_else(|| anyhow!("no API key: run `gust property set --auth UUID:KEY`"))?;
    // Like wsk, a host without a scheme is HTTPS.
    let apihost = if apihost.contains("://") {
        apihost
    } else {
        format!("https://{apihost}")
    };
    Ok((apihost.trim_end_matches('/').to_string(), auth))
}

/// The token of `--token`, else of `GUST_TOKEN`.
fn token(args: &ClientArgs) -> Option<String> {
    args.token
        .clone()
        .or_else(|| std::env::var("GUST_TOKEN").ok())
        .filter(|t| !t.trim().is_empty())
}

/// The HTTP client: it trusts the usual roots and the CA of `--cacert`, `GUST_CACERT` or the
/// config file (first found), or, with `--insecure`, any certificate.
fn http_client(args: &ClientArgs) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().danger_accept_invalid_certs(args.insecure);
    let cacert = match &args.cacert {
        Some(path) => Some(path.clone()),
        None => std::env::var_os("GUST_CACERT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or(load_config()?.cacert),
    };
    if let Some(path) = cacert {
        let pem = std::fs::read(&path)
            .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no PEM certificate", path.display()))?;
        if certs.is_empty() {
            bail!("{} holds no PEM certificate", path.display());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().context("cannot set up HTTPS")
}

/// An API answer that is not a success: its status and OpenWhisk's error message.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub message: String,
    pub body: Value,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for ApiFailure {}

/// A connection to one API host with one key.
pub struct Client {
    http: reqwest::Client,
    apihost: String,
    /// The key, `UUID:KEY`: a feed's `authKey` (empty when a token is sent instead).
    auth: String,
    auth_header: String,
    pub json: bool,
}

impl Client {
    pub fn apihost(&self) -> &str {
        &self.apihost
    }

    /// The API key, `UUID:KEY`.
    pub fn auth(&self) -> &str {
        &self.auth
    }

    pub fn new(args: &ClientArgs) -> Result<Self> {
        let (apihost, auth) = resolve(args)?;
        let auth_header = match token(args) {
            Some(token) => format!("Bearer {}", token.trim()),
            None if !auth.contains(':') => bail!("the API key must look like UUID:KEY"),
            None => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(auth.as_bytes())
            ),
        };
        Ok(Client {
            http: http_client(args)?,
            apihost,
            auth,
            auth_header,
            json: args.json,
        })
    }

    /// `method path` with an optional JSON body; the JSON answer on 2xx, else an
    /// [`ApiFailure`] (also for 502 of a blocking invoke, whose body is the record).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        self.call_with_status(method, path, body)
            .await
            .map(|(_, v)| v)
    }

    /// As [`Self::call`], with the success status.
    pub async fn call_with_status(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self.request(method, path)?;
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    /// As [`Self::call_with_status`], with extra request headers.
    pub async fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        let mut req = self.request(method, path)?;
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    /// `method path` with a raw body (streamed as it is read), like [`Self::call`].
    pub async fn call_raw(&self, method: &str, path: &str, body: reqwest::Body) -> Result<Value> {
        let req = self
            .request(method, path)?
            .header("Content-Type", "application/octet-stream")
            .body(body);
        self.send(req).await.map(|(_, v)| v)
    }

    fn request(&self, method: &str, path: &str) -> Result<reqwest::RequestBuilder> {
        let url = format!("{}{path}", self.apihost);
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        Ok(self
            .http
            .request(method, &url)
            .header("Authorization", &self.auth_header))
    }

    /// `GET path` whose answer is read as it comes (a stream of Server-Sent Events), with
    /// `Last-Event-ID` when given; a failure's JSON answer becomes an [`ApiFailure`].
    pub async fn stream(
        &self,
        path: &str,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut req = self
            .request("GET", path)?
            .header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let res = req.send().await.map_err(|e| self.unreachable(&e))?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        Err(failure(
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// The error of a request that got no answer, with a hint.
    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        let cause = root_cause(e);
        let hint = if cause.to_lowercase().contains("certificate") {
            "If the host's certificate is self-signed, add --insecure"
        } else {
            "Is `gust serve` running?"
        };
        anyhow!(
            "cannot reach the API host {}: {cause}. {hint}",
            self.apihost,
        )
    }

    /// Sends a request: the JSON answer on 2xx, else an [`ApiFailure`].
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value)> {
        let res = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = res.status().as_u16();
        let text = res.text().await.context("the answer was cut off")?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if (200..300).contains(&status) {
            return Ok((status, value));
        }
        Err(failure(status, value))
    }
}

impl Client {
    /// Rewrites a 404 of an entity as what the user asked for, naming the namespace.
    pub async fn not_found(&self, e: anyhow::Error, what: &str, name: &str) -> anyhow::Error {
        match e.downcast_ref::<ApiFailure>() {
            Some(f) if f.status == 404 => {
                let ns = self
                    .call("GET", "/api/v1/namespaces", None)
                    .await
                    .ok()
                    .and_then(|v| v[0].as_str().map(str::to_string))
                    .unwrap_or_else(|| "_".into());
                anyhow!("{what} '{name}' does not exist in namespace '{ns}' (404)")
            }
            _ => e,
        }
    }
}

/// A failure answer: its status, OpenWhisk's `error` message, and the whole body.
fn failure(status: u16, body: Value) -> anyhow::Error {
    let message = body["error"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("the API host answered {status}"));
    ApiFailure {
        status,
        message,
        body,
    }
    .into()
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Prints JSON, indented.
pub fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Prints rows as a table with aligned columns; the first row is the header.
pub fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| console::measure_text_width(s))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (r, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 < row.len() {
                // Padded by visible width: a cell may hold colour codes.
                line.push_str(cell);
                let pad = widths[c] - console::measure_text_width(cell) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.push_str(cell);
            }
        }
        let line = line.trim_end();
        if r == 0 {
            println!("{}", crate::ui::header(line));
        } else {
            println!("{line}");
        }
    }
}

/// `-p KEY VALUE` pairs and `-P FILE` as one JSON object: VALUE is JSON when it parses as
/// JSON, else a string; later pairs win over the file.
pub fn parameters(
    pairs: &[String],
    file: Option<&PathBuf>,
) -> Result<serde_json::Map<String, Value>> {
    let mut out = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the parameter file {}", path.display()))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => bail!(
                    "the parameter file {} must hold a JSON object",
                    path.display()
                ),
                Err(e) => bail!(
                    "the parameter file {} is not valid JSON: {e}",
                    path.display()
                ),
            }
        }
        None => serde_json::Map::new(),
    };
    for pair in pairs.chunks(2) {
        let [key, value] = pair else {
            bail!("a parameter needs a key and a value: -p KEY VALUE");
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.clone()));
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// The `parameters` of a PUT body: `-p` pairs and the `-P` file, then `--secret` pairs
/// (`{key, value, secret: true}`, sealed by the server; VALUE is JSON when it parses as
/// JSON); `None` when none is given (an update keeps the stored ones).
pub fn parameter_list(
    pairs: &[String],
    file: Option<&PathBuf>,
    secrets: &[String],
) -> Result<Option<Value>> {
    if pairs.is_empty() && file.is_none() && secrets.is_empty() {
        return Ok(None);
    }
    let Value::Array(mut list) = key_values(parameters(pairs, file)?) else {
        unreachable!("key_values makes a list")
    };
    for (key, value) in parameters(secrets, None)? {
        list.retain(|kv| kv["key"] != key.as_str());
        list.push(serde_json::json!({ "key": key, "value": value, "secret": true }));
    }
    Ok(Some(Value::Array(list)))
}

/// OpenWhisk's `[{key, value}]` list from an object.
pub fn key_values(map: serde_json::Map<String, Value>) -> Value {
    Value::Array(
        map.into_iter()
            .map(|(k, v)| serde_json::json!({ "key": k, "value": v }))
            .collect(),
    )
}
