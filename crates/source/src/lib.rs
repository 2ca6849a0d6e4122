//! The interface of an event source: what a webhook receiver or a message-queue consumer
//! gives Gust, and what Gust gives it. A source knows its protocol and nothing of triggers,
//! rules, stores or HTTP routing; the events crate runs it (decision 0021):
//!
//! - **configuration**: a feed's parameters are checked by [`Source::configure`], unknown
//!   ones refused, secrets named by [`Source::secrets`] so that they are never shown;
//! - **connected sources** ([`Source::listens`]) run one subscription in one process at a
//!   time ([`Source::run`]); every message becomes an [`Event`] (a payload and, where the
//!   protocol has one, a de-duplication key) handed to a [`Sink`], and is acknowledged to
//!   the broker only once the sink says the fire was accepted;
//! - **webhooks** are not connected: a request to the trigger's hook URL is checked and
//!   turned into an event by [`Source::receive`];
//! - **output**: a source may publish an action's result ([`Source::publish`]).
//!
//! **May not:** know Gust's entities or its store; block a thread.

#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value};

/// A feed of a source, as the system catalog lists it (`/whisk.system/<package>/<name>`).
#[derive(Debug, Clone, Copy)]
pub struct FeedDoc {
    pub name: &'static str,
    pub description: &'static str,
    /// OpenWhisk's `parameters` annotation, as JSON: `[{"name", "required", "description"}]`.
    pub parameters: &'static str,
}

/// One message turned into a fire.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What the trigger is fired with.
    pub payload: Map<String, Value>,
    /// The message's identity at its source (a delivery id, a stream sequence): a message
    /// delivered again with the same key fires nothing new.
    pub key: Option<String>,
}

/// What became of an event handed to a [`Sink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Its fire was accepted: acknowledge the message.
    Accepted,
    /// It cannot be fired (too large, or it failed as many times as allowed): move it aside
    /// (a dead-letter destination where the source has one), then acknowledge it.
    MoveAside(String),
}

/// Where a connected source hands its events. [`Sink::deliver`] returns only once the event
/// is accepted or given up: while the namespace is throttled or the platform cannot take the
/// fire, it waits (back-pressure), so the source reads no further meanwhile.
#[async_trait]
pub trait Sink: Send + Sync {
    async fn deliver(&self, event: Event) -> Delivery;
    /// The subscription is connected (or reconnected) and reading.
    fn connected(&self, detail: &str);
    /// A message was moved aside, with why (counted, and shown by the feed's READ).
    fn moved_aside(&self, why: &str);
}

/// One record of a stream read by position (decision 0027).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Its position: unique and increasing in the stream (JetStream's stream sequence; a
    /// Redis entry id `ms-n` as `ms * 65536 + n`).
    pub sequence: u64,
    /// What its order is kept by (the NATS subject, or the header the feed names).
    pub partition_key: String,
    /// When the stream stored it, ms since the epoch.
    pub time_ms: u64,
    /// The record as a function sees it: `subject`, `headers` (when it has any), `data` or
    /// `data_base64`.
    pub payload: Map<String, Value>,
    /// Its body's size in bytes.
    pub size: usize,
}

/// A stream read by position. Nothing is acknowledged: the reader's caller keeps the
/// checkpoint. Cancelled by dropping a future.
#[async_trait]
pub trait StreamReader: Send {
    /// At most `max` records whose sequence is above `after`, in order; waits at most `wait`
    /// for the first one (empty when none came).
    async fn read(
        &mut self,
        after: u64,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<StreamRecord>, SourceError>;
    /// The sequence of the newest record the stream holds (0 when it holds none).
    async fn last_sequence(&mut self) -> Result<u64, SourceError>;
    /// The sequence just before the first record stored at or after `ms` (the stream's last
    /// sequence when there is none).
    async fn sequence_before(&mut self, ms: u64) -> Result<u64, SourceError>;
    /// How many records (of those the feed reads) follow `after`: a mapping's lag.
    async fn pending(&mut self, after: u64) -> Result<u64, SourceError>;
}

/// Why a subscription stopped; the runner reconnects after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The broker cannot be reached, refused the credentials, or dropped the connection.
    #[error("{0}")]
    Connection(String),
    /// The configuration cannot work (a queue that does not exist, a bad subject).
    #[error("{0}")]
    Config(String),
}

/// A request to a webhook's URL.
#[derive(Debug, Clone)]
pub struct HookRequest {
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// When it arrived, in ms since the epoch (replay windows are checked against it).
    pub now_ms: u64,
}

impl HookRequest {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a webhook request is.
#[derive(Debug, Clone, PartialEq)]
pub enum Hook {
    /// An event: fire the trigger.
    Fire(Event),
    /// A handshake the sender expects an answer to (Slack's `url_verification`, GitHub's
    /// `ping`): answer it, fire nothing.
    Reply {
        content_type: &'static str,
        body: String,
    },
}

/// Why a webhook request was refused; nothing is fired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The signature is missing, wrong or too old (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The request is not what the feed takes (400).
    #[error("{0}")]
    BadRequest(String),
}

/// An event source: a package of feeds under `whisk.system`.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// The package its feeds are in (`mqtt`, `webhooks`).
    fn package(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn feeds(&self) -> &'static [FeedDoc];
    /// Parameters whose values are secrets: kept, never shown nor logged.
    fn secrets(&self) -> &'static [&'static str] {
        &[]
    }
    /// Checks `params` for feed `feed`: every required one present and well formed, none
    /// unknown; the configuration to keep (defaults filled in).
    fn configure(
        &self,
        feed: &str,
        params: &Map<String, Value>,
    ) -> Result<Map<String, Value>, String>;
    /// Whether a subscription of `feed` holds a connection (run in one process at a time).
    fn listens(&self, feed: &str) -> bool;
    /// Connects once with `config` and checks that the subscription can work (a feed's
    /// CREATE and UPDATE fail with its error instead of creating a trigger that never fires).
    async fn check(&self, _feed: &str, _config: &Map<String, Value>) -> Result<(), SourceError> {
        Ok(())
    }
    /// Runs a subscription: reads messages and hands them to `sink`, acknowledging each
    /// only after [`Sink::deliver`] returns. Returns when the connection is lost (the runner
    /// reconnects) and is cancelled by dropping its future.
    async fn run(
        &self,
        _feed: &str,
        _config: &Map<String, Value>,
        _sink: &dyn Sink,
    ) -> Result<(), SourceError> {
        Err(SourceError::Config("this feed does not listen".into()))
    }
    /// Releases what a subscription of `feed` with `config` holds at its source once the
    /// subscription is deleted (a PostgreSQL replication slot, which would otherwise keep
    /// its WAL forever). Best effort: the caller logs an error and goes on.
    async fn forget(&self, _feed: &str, _config: &Map<String, Value>) -> Result<(), SourceError> {
        Ok(())
    }
    /// Whether `feed` is a stream read by position by its trigger's rules (event source
    /// mappings, decision 0027) instead of messages handed to a [`Sink`].
    fn streams(&self, _feed: &str) -> bool {
        false
    }
    /// Opens a stream feed with `config` for one mapping (connected, the stream found).
    async fn open_stream(
        &self,
        _feed: &str,
        _config: &Map<String, Value>,
    ) -> Result<Box<dyn StreamReader>, SourceError> {
        Err(SourceError::Config("this feed is not a stream".into()))
    }
    /// Checks and reads a webhook request.
    fn receive(
        &self,
        _feed: &str,
        _config: &Map<String, Value>,
        _request: &HookRequest,
    ) -> Result<Hook, HookError> {
        Err(HookError::BadRequest("this feed takes no webhooks".into()))
    }
    /// Checks a rule output's parameters (where [`Source::publish`] sends an action's
    /// result), unknown ones refused; the configuration to keep.
    fn configure_output(&self, _params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
        Err(format!("the {} source cannot publish", self.package()))
    }
    /// Publishes `payload` to the destination `config` names (a rule's output).
    async fn publish(
        &self,
        _config: &Map<String, Value>,
        _payload: &Value,
    ) -> Result<(), SourceError> {
        Err(SourceError::Config(format!(
            "the {} source cannot publish",
            self.package()
        )))
    }
}

/// Checks a feed's parameters against the names it takes: the first unknown one is refused.
pub fn refuse_unknown(params: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown parameter '{k}' (this feed takes {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

/// Parameter `name` as a non-empty string, if present.
pub fn string(params: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(format!("parameter '{name}' must be a non-empty string")),
    }
}

/// Parameter `name` as a non-empty string; an error naming it when missing.
pub fn required(params: &Map<String, Value>, name: &str) -> Result<String, String> {
    string(params, name)?.ok_or_else(|| format!("missing required parameter '{name}'"))
}

/// Parameter `name` as an integer within `range`, or `default`.
pub fn integer(
    params: &Map<String, Value>,
    name: &str,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<u64, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().filter(|n| range.contains(n)).ok_or_else(|| {
            format!(
                "parameter '{name}' must be an integer from {} to {}",
                range.start(),
                range.end()
            )
        }),
    }
}

/// Parameter `name` as a boolean, or `default`.
pub fn boolean(params: &Map<String, Value>, name: &str, default: bool) -> Result<bool, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("parameter '{name}' must be true or false")),
    }
}

/// Puts parameter `name` in a configuration to keep when it has a value.
pub fn put_optional(out: &mut Map<String, Value>, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        out.insert(name.into(), v.clone().into());
    }
}

/// Why `source` refuses feed `feed`: the package, and the feeds it has.
pub fn unknown_feed(source: &(impl Source + ?Sized), feed: &str) -> String {
    let feeds: Vec<&str> = source.feeds().iter().map(|f| f.name).collect();
    format!(
        "the {} package has no feed '{feed}' (it has {})",
        source.package(),
        feeds.join(", ")
    )
}

/// A message body as a payload value: its JSON if it is JSON, else its text, else base64
/// is left to the caller (`None`); [`put_body`] puts either in a payload.
pub fn body_value(body: &[u8]) -> Option<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Some(v);
    }
    std::str::from_utf8(body)
        .ok()
        .map(|s| Value::String(s.to_string()))
}

/// Puts a message body in `payload`: `data` ([`body_value`]: its JSON, else its text) or,
/// when it is neither, `data_base64`.
pub fn put_body(payload: &mut Map<String, Value>, body: &[u8]) {
    match body_value(body) {
        Some(v) => payload.insert("data".into(), v),
        None => payload.insert("data_base64".into(), base64_text(body).into()),
    };
}

/// `bytes` in standard base64, padded (how payloads carry what is not text).
pub fn base64_text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The wait before reconnection attempt `n` (0-based): 0.5 s doubling to at most 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6)).min(30_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_parameters_are_named() {
        let p = json!({"url": "x", "sujbect": "y"});
        let err = refuse_unknown(p.as_object().unwrap_or(&Map::new()), &["url", "subject"]);
        assert_eq!(
            err,
            Err("unknown parameter 'sujbect' (this feed takes url, subject)".into())
        );
    }

    #[test]
    fn bodies_are_json_text_or_base64() {
        let check = |body: &[u8], expected: Value| {
            let mut payload = Map::new();
            put_body(&mut payload, body);
            assert_eq!(Value::Object(payload), expected, "{body:?}");
        };
        check(br#"{"a":1}"#, json!({"data": {"a": 1}}));
        check(b"plain text", json!({"data": "plain text"}));
        check(b"", json!({"data": ""}));
        check(&[0xff, 0x00], json!({"data_base64": "/wA="}));
    }

    #[test]
    fn an_unknown_feed_is_refused_with_the_feeds_there_are() {
        struct Two;
        #[async_trait]
        impl Source for Two {
            fn package(&self) -> &'static str {
                "two"
            }
            fn description(&self) -> &'static str {
                "two feeds"
            }
            fn feeds(&self) -> &'static [FeedDoc] {
                const FEEDS: &[FeedDoc] = &[
                    FeedDoc {
                        name: "first",
                        description: "",
                        parameters: "[]",
                    },
                    FeedDoc {
                        name: "second",
                        description: "",
                        parameters: "[]",
                    },
                ];
                FEEDS
            }
            fn configure(
                &self,
                feed: &str,
                _params: &Map<String, Value>,
            ) -> Result<Map<String, Value>, String> {
                Err(unknown_feed(self, feed))
            }
            fn listens(&self, _feed: &str) -> bool {
                false
            }
        }
        assert_eq!(
            Two.configure("third", &Map::new()),
            Err("the two package has no feed 'third' (it has first, second)".into())
        );
    }

    #[test]
    fn backoff_grows_to_a_bound() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(20), Duration::from_secs(30));
    }
}
