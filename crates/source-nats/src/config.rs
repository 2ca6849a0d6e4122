//! The feeds' parameters, checked and typed: what [`crate::Nats::configure`] keeps is the
//! map these types write back, and reading that map again gives the same values.

use async_nats::ServerAddr;
use gust_source::{boolean, integer, put_optional, refuse_unknown, required, string};
use serde_json::{Map, Value};

pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// TLS required (also when the URL is `tls://`).
    pub tls: bool,
}

impl Connection {
    fn read(params: &Map<String, Value>) -> Result<Self, String> {
        let url = string(params, "url")?.unwrap_or_else(|| DEFAULT_URL.to_string());
        let addr: ServerAddr = url.parse().map_err(|e| {
            format!("parameter 'url': {e} (use nats://host:4222 or tls://host:4222)")
        })?;
        if !matches!(addr.scheme(), "nats" | "tls") {
            return Err("parameter 'url' must be a nats:// or tls:// URL".into());
        }
        let user = string(params, "user")?;
        let password = string(params, "password")?;
        if user.is_some() != password.is_some() {
            return Err("parameters 'user' and 'password' go together".into());
        }
        let token = string(params, "token")?;
        if token.is_some() && user.is_some() {
            return Err("give either 'token' or 'user' and 'password', not both".into());
        }
        let tls = boolean(params, "tls", false)? || addr.scheme() == "tls";
        Ok(Connection {
            url,
            user,
            password,
            token,
            tls,
        })
    }

    fn write(&self, out: &mut Map<String, Value>) {
        out.insert("url".into(), self.url.clone().into());
        put_optional(out, "user", &self.user);
        put_optional(out, "password", &self.password);
        put_optional(out, "token", &self.token);
        out.insert("tls".into(), self.tls.into());
    }

    /// The URL without credentials, for messages and logs.
    pub fn shown(&self) -> String {
        redact(&self.url)
    }
}

/// Feed `subscribe`: core NATS.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    pub connection: Connection,
    pub subject: String,
    pub queue: Option<String>,
    pub dead_letter: Option<String>,
}

impl Subscribe {
    pub const PARAMETERS: [&str; 8] = [
        "url",
        "user",
        "password",
        "token",
        "tls",
        "subject",
        "queue",
        "deadLetter",
    ];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        let subject = required(params, "subject")?;
        check_subject("subject", &subject, Wildcards::Allowed)?;
        let queue = string(params, "queue")?;
        if let Some(q) = &queue {
            check_token("queue", q)?;
        }
        Ok(Subscribe {
            connection: Connection::read(params)?,
            subject,
            queue,
            dead_letter: dead_letter(params)?,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        self.connection.write(&mut out);
        out.insert("subject".into(), self.subject.clone().into());
        put_optional(&mut out, "queue", &self.queue);
        put_optional(&mut out, "deadLetter", &self.dead_letter);
        out
    }
}

/// Where a JetStream consumer starts when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    All,
    New,
    Last,
}

impl Start {
    fn name(self) -> &'static str {
        match self {
            Start::All => "all",
            Start::New => "new",
            Start::Last => "last",
        }
    }
}

/// Feed `jetstream`: a durable pull consumer with explicit acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct JetStream {
    pub connection: Connection,
    pub stream: String,
    pub consumer: String,
    pub subject: Option<String>,
    pub deliver_policy: Start,
    pub max_deliver: u64,
    pub dead_letter: Option<String>,
}

/// Deliveries of one message before JetStream gives up on it, unless `maxDeliver` says.
pub const DEFAULT_MAX_DELIVER: u64 = 5;

impl JetStream {
    pub const PARAMETERS: [&str; 11] = [
        "url",
        "user",
        "password",
        "token",
        "tls",
        "stream",
        "consumer",
        "subject",
        "deliverPolicy",
        "maxDeliver",
        "deadLetter",
    ];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        let stream = required(params, "stream")?;
        check_name("stream", &stream)?;
        let consumer = required(params, "consumer")?;
        check_name("consumer", &consumer)?;
        let subject = string(params, "subject")?;
        if let Some(s) = &subject {
            check_subject("subject", s, Wildcards::Allowed)?;
        }
        let deliver_policy = match string(params, "deliverPolicy")?.as_deref() {
            None | Some("all") => Start::All,
            Some("new") => Start::New,
            Some("last") => Start::Last,
            Some(other) => {
                return Err(format!(
                    "parameter 'deliverPolicy' must be all, new or last, not '{other}'"
                ));
            }
        };
        Ok(JetStream {
            connection: Connection::read(params)?,
            stream,
            consumer,
            subject,
            deliver_policy,
            max_deliver: integer(params, "maxDeliver", 1..=10_000, DEFAULT_MAX_DELIVER)?,
            dead_letter: dead_letter(params)?,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        self.connection.write(&mut out);
        out.insert("stream".into(), self.stream.clone().into());
        out.insert("consumer".into(), self.consumer.clone().into());
        put_optional(&mut out, "subject", &self.subject);
        out.insert("deliverPolicy".into(), self.deliver_policy.name().into());
        out.insert("maxDeliver".into(), self.max_deliver.into());
        put_optional(&mut out, "deadLetter", &self.dead_letter);
        out
    }
}

/// What a stream feed's records keep their order by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionKey {
    /// The message's subject (the default).
    Subject,
    /// The value of this header (the first when repeated; the empty string when missing).
    Header(String),
}

/// Feed `stream`: a JetStream stream read by position by event source mappings (decision
/// 0027); nothing is acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub connection: Connection,
    pub stream: String,
    pub subject: Option<String>,
    pub partition_key: PartitionKey,
}

impl Stream {
    pub const PARAMETERS: [&str; 8] = [
        "url",
        "user",
        "password",
        "token",
        "tls",
        "stream",
        "subject",
        "partitionKey",
    ];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        let stream = required(params, "stream")?;
        check_name("stream", &stream)?;
        let subject = string(params, "subject")?;
        if let Some(s) = &subject {
            check_subject("subject", s, Wildcards::Allowed)?;
        }
        let partition_key = match string(params, "partitionKey")?.as_deref() {
            None | Some("subject") => PartitionKey::Subject,
            Some(other) => match other.strip_prefix("header:") {
                Some(name)
                    if !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == ':') =>
                {
                    PartitionKey::Header(name.to_string())
                }
                _ => {
                    return Err(format!(
                        "parameter 'partitionKey' must be 'subject' or 'header:NAME', not '{other}'"
                    ));
                }
            },
        };
        Ok(Stream {
            connection: Connection::read(params)?,
            stream,
            subject,
            partition_key,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        self.connection.write(&mut out);
        out.insert("stream".into(), self.stream.clone().into());
        put_optional(&mut out, "subject", &self.subject);
        let key = match &self.partition_key {
            PartitionKey::Subject => "subject".to_string(),
            PartitionKey::Header(name) => format!("header:{name}"),
        };
        out.insert("partitionKey".into(), key.into());
        out
    }
}

/// A rule's output: publish to `subject`.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub connection: Connection,
    pub subject: String,
    /// The `Nats-Msg-Id` header of what is published (JetStream stores a message of an id
    /// once within its stream's duplicate window; core NATS ignores it).
    pub msg_id: Option<String>,
}

impl Output {
    pub const PARAMETERS: [&str; 7] = [
        "url", "user", "password", "token", "tls", "subject", "msgId",
    ];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        let subject = required(params, "subject")?;
        check_subject("subject", &subject, Wildcards::Refused)?;
        let msg_id = string(params, "msgId")?;
        if let Some(id) = &msg_id
            && (id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err("parameter 'msgId' must be visible ASCII characters".into());
        }
        Ok(Output {
            connection: Connection::read(params)?,
            subject,
            msg_id,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        self.connection.write(&mut out);
        out.insert("subject".into(), self.subject.clone().into());
        if let Some(id) = &self.msg_id {
            out.insert("msgId".into(), id.clone().into());
        }
        out
    }
}

fn dead_letter(params: &Map<String, Value>) -> Result<Option<String>, String> {
    let dead_letter = string(params, "deadLetter")?;
    if let Some(s) = &dead_letter {
        check_subject("deadLetter", s, Wildcards::Refused)?;
    }
    Ok(dead_letter)
}

#[derive(PartialEq, Eq)]
enum Wildcards {
    Allowed,
    Refused,
}

/// A subject: dot-separated non-empty tokens without white space; `*` stands for one token
/// and `>` for the rest, where wildcards are allowed.
fn check_subject(name: &str, subject: &str, wildcards: Wildcards) -> Result<(), String> {
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() || token.chars().any(char::is_whitespace) {
            return Err(format!(
                "parameter '{name}': '{subject}' is not a NATS subject (dot-separated names without spaces)"
            ));
        }
        let wild = *token == "*" || (*token == ">" && i == tokens.len() - 1);
        if wild && wildcards == Wildcards::Refused {
            return Err(format!(
                "parameter '{name}': '{subject}' has a wildcard; name one subject"
            ));
        }
        if !wild && (token.contains('*') || token.contains('>')) {
            return Err(format!(
                "parameter '{name}': '{subject}' uses '*' or '>' inside a name"
            ));
        }
    }
    Ok(())
}

/// A queue group: one token.
fn check_token(name: &str, value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_whitespace()) {
        return Err(format!("parameter '{name}' may not contain spaces"));
    }
    Ok(())
}

/// A stream or consumer name: no spaces, dots, wildcards or path separators.
fn check_name(name: &str, value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Err(format!(
            "parameter '{name}': '{value}' may not contain spaces, '.', '*', '>', '/' or '\\'"
        ));
    }
    Ok(())
}

/// `url` without the `user:password@` part.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}
