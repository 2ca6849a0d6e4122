//! The feed's and the output's parameters, checked and typed: what
//! [`crate::Mqtt::configure`] keeps is the map these types write back, and reading that map
//! again gives the same values.

use gust_source::{boolean, integer, put_optional, refuse_unknown, required, string};
use serde_json::{Map, Value};

pub const DEFAULT_URL: &str = "mqtt://127.0.0.1:1883";

/// The protocol version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// MQTT 3.1.1.
    V3,
    /// MQTT 5.
    V5,
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Broker {
    /// As given (it may carry credentials).
    pub url: String,
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// As given by the parameters.
    pub username: Option<String>,
    pub password: Option<String>,
    /// As given by the URL.
    url_username: Option<String>,
    url_password: Option<String>,
    pub version: Version,
}

impl Broker {
    fn read(params: &Map<String, Value>) -> Result<Self, String> {
        let url = string(params, "url")?.unwrap_or_else(|| DEFAULT_URL.to_string());
        let parsed = parse_url(&url)?;
        let username = string(params, "username")?;
        let password = string(params, "password")?;
        if password.is_some() && username.is_none() {
            return Err("parameter 'password' needs 'username'".into());
        }
        let version = match integer(params, "version", 3..=5, 3)? {
            3 => Version::V3,
            5 => Version::V5,
            _ => return Err("parameter 'version' must be 3 (MQTT 3.1.1) or 5".into()),
        };
        Ok(Broker {
            url,
            host: parsed.host,
            port: parsed.port,
            tls: boolean(params, "tls", false)? || parsed.tls,
            username,
            password,
            url_username: parsed.username,
            url_password: parsed.password,
            version,
        })
    }

    fn write(&self, out: &mut Map<String, Value>) {
        out.insert("url".into(), self.url.clone().into());
        out.insert("tls".into(), self.tls.into());
        put_optional(out, "username", &self.username);
        put_optional(out, "password", &self.password);
        let version = match self.version {
            Version::V3 => 3,
            Version::V5 => 5,
        };
        out.insert("version".into(), version.into());
    }

    /// The user name and password to log in with: the parameters', else the URL's.
    pub fn credentials(&self) -> Option<(String, String)> {
        let (user, password) = match &self.username {
            Some(user) => (user, &self.password),
            None => (self.url_username.as_ref()?, &self.url_password),
        };
        Some((user.clone(), password.clone().unwrap_or_default()))
    }

    /// The broker's address without credentials, for messages and logs.
    pub fn shown(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Feed `subscribe`.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    pub broker: Broker,
    pub topic: String,
    /// 0 or 1.
    pub qos: u8,
    /// A fixed client id keeps its session (and the QoS 1 messages queued while it is away)
    /// at the broker.
    pub client_id: Option<String>,
    pub dead_letter: Option<String>,
}

impl Subscribe {
    pub const PARAMETERS: [&str; 9] = [
        "url",
        "topic",
        "qos",
        "clientId",
        "username",
        "password",
        "version",
        "tls",
        "deadLetter",
    ];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        let topic = required(params, "topic")?;
        check_filter(&topic)?;
        let client_id = string(params, "clientId")?;
        if let Some(id) = &client_id {
            check_client_id(id)?;
        }
        let dead_letter = string(params, "deadLetter")?;
        if let Some(t) = &dead_letter {
            check_topic("deadLetter", t)?;
        }
        Ok(Subscribe {
            broker: Broker::read(params)?,
            topic,
            qos: integer(params, "qos", 0..=1, 1)? as u8,
            client_id,
            dead_letter,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        self.broker.write(&mut out);
        out.insert("topic".into(), self.topic.clone().into());
        out.insert("qos".into(), self.qos.into());
        put_optional(&mut out, "clientId", &self.client_id);
        put_optional(&mut out, "deadLetter", &self.dead_letter);
        out
    }
}

/// A rule's output: publish to `topic`.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub broker: Broker,
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
}

impl Output {
    pub const PARAMETERS: [&str; 8] = [
        "url", "topic", "qos", "retain", "username", "password", "version", "tls",
    ];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        let topic = required(params, "topic")?;
        check_topic("topic", &topic)?;
        Ok(Output {
            broker: Broker::read(params)?,
            topic,
            qos: integer(params, "qos", 0..=1, 1)? as u8,
            retain: boolean(params, "retain", false)?,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        self.broker.write(&mut out);
        out.insert("topic".into(), self.topic.clone().into());
        out.insert("qos".into(), self.qos.into());
        out.insert("retain".into(), self.retain.into());
        out
    }
}

struct Url {
    host: String,
    port: u16,
    tls: bool,
    username: Option<String>,
    password: Option<String>,
}

/// `mqtt://[user[:password]@]host[:port]` (or `tcp://`; `mqtts://` and `ssl://` for TLS).
fn parse_url(url: &str) -> Result<Url, String> {
    let bad =
        |why: &str| format!("parameter 'url': {why} (use mqtt://host:1883 or mqtts://host:8883)");
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let (tls, default_port) = match scheme {
        "mqtt" | "tcp" => (false, 1883),
        "mqtts" | "ssl" => (true, 8883),
        _ => return Err(bad("unknown scheme")),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('?') {
        return Err(bad("an MQTT URL has no path"));
    }
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(decode(user)), Some(decode(pass))),
            None => (Some(decode(u)), None),
        },
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(bad("bad host")),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("bad port"))?,
    };
    Ok(Url {
        host: host.to_string(),
        port,
        tls,
        username: username.filter(|u| !u.is_empty()),
        password,
    })
}

/// Percent-decoding of the URL's user and password (`%40` for `@`).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A topic filter: `+` stands for one whole level, `#` for the rest (last level only);
/// `$share/<group>/<filter>` subscribes as one of a group sharing the messages.
fn check_filter(topic: &str) -> Result<(), String> {
    let filter = match topic.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((group, filter))
                if !group.is_empty() && !group.contains(['+', '#']) && !filter.is_empty() =>
            {
                filter
            }
            _ => {
                return Err(format!(
                    "parameter 'topic': '{topic}' is not $share/<group>/<topic filter>"
                ));
            }
        },
        None => topic,
    };
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let wild = *level == "+" || (*level == "#" && i == levels.len() - 1);
        if !wild && level.contains(['+', '#']) {
            return Err(format!(
                "parameter 'topic': in '{topic}', '+' and '#' must stand for a whole level ('#' the last)"
            ));
        }
    }
    check_chars("topic", topic)
}

/// A topic to publish to: no wildcards.
fn check_topic(name: &str, topic: &str) -> Result<(), String> {
    if topic.contains(['+', '#']) {
        return Err(format!(
            "parameter '{name}': '{topic}' has a wildcard; name one topic"
        ));
    }
    check_chars(name, topic)
}

fn check_chars(name: &str, topic: &str) -> Result<(), String> {
    if topic.contains('\0') || topic.len() > 65_535 {
        return Err(format!("parameter '{name}' is not an MQTT topic"));
    }
    Ok(())
}

fn check_client_id(id: &str) -> Result<(), String> {
    if id.len() > 128 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("parameter 'clientId' must be at most 128 characters without spaces".into());
    }
    Ok(())
}
