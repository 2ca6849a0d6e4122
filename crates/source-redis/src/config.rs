//! The feed's and the output's parameters, checked and typed: what
//! [`crate::Redis::configure`] keeps is the map these types write back, and reading that map
//! again gives the same values.

use gust_source::{integer, put_optional, refuse_unknown, required, string};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use serde_json::{Map, Value};

pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_CONSUMER: &str = "gust";

/// Where and as whom to connect: the URL (which may carry credentials, `redis://user:pw@h`,
/// or `rediss://` for TLS) and the `username`/`password` parameters, which win.
#[derive(Debug, Clone)]
pub struct Server {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub info: ConnectionInfo,
}

impl PartialEq for Server {
    fn eq(&self, other: &Self) -> bool {
        (&self.url, &self.username, &self.password)
            == (&other.url, &other.username, &other.password)
    }
}

impl Server {
    fn read(params: &Map<String, Value>) -> Result<Self, String> {
        let url = string(params, "url")?.unwrap_or_else(|| DEFAULT_URL.to_string());
        let mut info = url.as_str().into_connection_info().map_err(|e| {
            format!("parameter 'url': {e} (use redis://host:6379 or rediss://host:6380)")
        })?;
        let username = string(params, "username")?;
        let password = string(params, "password")?;
        if username.is_some() && password.is_none() {
            return Err("parameter 'username' needs 'password'".into());
        }
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &password {
            settings = settings.set_password(p);
        }
        info = info.set_redis_settings(settings);
        Ok(Server {
            url,
            username,
            password,
            info,
        })
    }

    fn write(&self, out: &mut Map<String, Value>) {
        out.insert("url".into(), self.url.clone().into());
        put_optional(out, "username", &self.username);
        put_optional(out, "password", &self.password);
    }

    /// The server's address without credentials, for messages and logs.
    pub fn shown(&self) -> String {
        match self.info.addr() {
            ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}"),
            ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}"),
            ConnectionAddr::Unix(path) => format!("redis+unix://{}", path.display()),
            other => other.to_string(),
        }
    }
}

/// Where a consumer group created by the source starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `$`: entries added from now on.
    New,
    /// `0`: every entry in the stream.
    All,
}

/// Feed `stream`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub server: Server,
    pub stream: String,
    pub group: String,
    pub consumer: String,
    pub start: Start,
    pub dead_letter: String,
}

impl Stream {
    pub const PARAMETERS: [&str; 8] = [
        "url",
        "stream",
        "group",
        "consumer",
        "start",
        "deadLetter",
        "username",
        "password",
    ];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        let stream = required(params, "stream")?;
        let group = required(params, "group")?;
        let consumer = string(params, "consumer")?.unwrap_or_else(|| DEFAULT_CONSUMER.into());
        let start = match string(params, "start")?.as_deref() {
            None | Some("$") => Start::New,
            Some("0") => Start::All,
            Some(other) => {
                return Err(format!(
                    "parameter 'start' must be '$' (new entries) or '0' (all), not '{other}'"
                ));
            }
        };
        let dead_letter = string(params, "deadLetter")?.unwrap_or_else(|| format!("{stream}:dead"));
        if dead_letter == stream {
            return Err("parameter 'deadLetter' must name another stream".into());
        }
        Ok(Stream {
            server: Server::read(params)?,
            stream,
            group,
            consumer,
            start,
            dead_letter,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        self.server.write(&mut out);
        out.insert("stream".into(), self.stream.clone().into());
        out.insert("group".into(), self.group.clone().into());
        out.insert("consumer".into(), self.consumer.clone().into());
        let start = match self.start {
            Start::New => "$",
            Start::All => "0",
        };
        out.insert("start".into(), start.into());
        out.insert("deadLetter".into(), self.dead_letter.clone().into());
        out
    }
}

/// Feed `batches`: a stream read by position by event source mappings (decision 0027),
/// without a consumer group; nothing is acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Batches {
    pub server: Server,
    pub stream: String,
    /// The field whose value is a record's partition key (`partitionKey: "field:NAME"`);
    /// `None`: the stream's key, one partition.
    pub key_field: Option<String>,
}

impl Batches {
    pub const PARAMETERS: [&str; 5] = ["url", "stream", "partitionKey", "username", "password"];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        let stream = required(params, "stream")?;
        let key_field = match string(params, "partitionKey")?.as_deref() {
            None | Some("stream") => None,
            Some(other) => match other.strip_prefix("field:") {
                Some(name) if !name.is_empty() => Some(name.to_string()),
                _ => {
                    return Err(format!(
                        "parameter 'partitionKey' must be 'stream' or 'field:NAME', not '{other}'"
                    ));
                }
            },
        };
        Ok(Batches {
            server: Server::read(params)?,
            stream,
            key_field,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        self.server.write(&mut out);
        out.insert("stream".into(), self.stream.clone().into());
        let key = match &self.key_field {
            None => "stream".to_string(),
            Some(name) => format!("field:{name}"),
        };
        out.insert("partitionKey".into(), key.into());
        out
    }
}

/// A rule's output: XADD to `stream`, field `data` the payload's JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub server: Server,
    pub stream: String,
    /// Trim the stream to about this many entries (`MAXLEN ~`).
    pub max_len: Option<u64>,
}

impl Output {
    pub const PARAMETERS: [&str; 5] = ["url", "stream", "maxLen", "username", "password"];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        let max_len = match params.get("maxLen") {
            None | Some(Value::Null) => None,
            Some(_) => Some(integer(params, "maxLen", 1..=u64::from(u32::MAX), 0)?),
        };
        Ok(Output {
            server: Server::read(params)?,
            stream: required(params, "stream")?,
            max_len,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        self.server.write(&mut out);
        out.insert("stream".into(), self.stream.clone().into());
        if let Some(n) = self.max_len {
            out.insert("maxLen".into(), n.into());
        }
        out
    }
}
