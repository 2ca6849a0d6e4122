//! The NATS event source (package `nats`): core NATS subscriptions and JetStream pull
//! consumers turned into fires, and a rule's output published to a subject.
//!
//! - Feed `subscribe` is core NATS: the broker delivers at most once and there is nothing to
//!   acknowledge; a message published with a `Nats-Msg-Id` header fires once per id.
//! - Feed `jetstream` reads a durable pull consumer with explicit acknowledgement (ack wait
//!   [`ACK_WAIT`], a bounded batch of [`PREFETCH`] messages): a message is acknowledged only
//!   after the sink took it, so one read but not delivered when the subscription stops is
//!   delivered again by JetStream once the ack wait runs out. Its key is
//!   `<stream>:<stream sequence>`. An existing durable consumer is used as it is.
//! - Feed `stream` is not run: its trigger's rules are event source mappings (decision 0027)
//!   that read the stream by position through [`Source::open_stream`] (module `stream`), each
//!   with its own checkpoint; nothing is acknowledged. A record's payload is `{subject,
//!   headers?, data | data_base64}`, its sequence the stream sequence, its partition key the
//!   subject or the header `partitionKey: "header:NAME"` names (empty when missing).
//! - A message moved aside is published to `deadLetter` (core NATS publish, headers kept plus
//!   `Gust-Moved-Aside: <why>`) where configured; on JetStream it is then terminated
//!   (`AckKind::Term`), so it is not delivered again.
//!
//! Payload: `{subject, headers?, data | data_base64, stream?, sequence?, delivered?}` where
//! `headers` maps each name to its value (an array when repeated).
//!
//! **Owns:** the NATS protocol side of a subscription. **May not depend on:** anything of
//! Gust but `gust-source` (no entities, store, bus or HTTP); its client crate is
//! `async-nats`, declared as `gust-bus` declares it so that one copy compiles.

mod config;
mod run;
mod stream;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use gust_source::{FeedDoc, Sink, Source, SourceError, StreamReader, unknown_feed};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

pub use config::{DEFAULT_MAX_DELIVER, DEFAULT_URL, redact};
pub use stream::INACTIVE_THRESHOLD;

/// How long a JetStream message may stay unacknowledged before it is delivered again.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Messages one pull asks for (and at most that many held unacknowledged by a consumer this
/// source creates).
pub const PREFETCH: usize = 16;
/// How long `check` and a run wait for the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const FEEDS: &[FeedDoc] = &[
    FeedDoc {
        name: "subscribe",
        description: "Fire on every message published to a core NATS subject (at most once: \
                      messages published while the subscription is down are not seen)",
        parameters: r#"[
{"name":"subject","required":true,"description":"Subject to subscribe to; '*' and '>' wildcards allowed"},
{"name":"url","required":false,"description":"Server URL, nats://host:4222 or tls://host:4222 (default nats://127.0.0.1:4222)"},
{"name":"queue","required":false,"description":"Queue group: the group's subscribers share the messages"},
{"name":"user","required":false,"description":"User name (with password)"},
{"name":"password","required":false,"description":"Password"},
{"name":"token","required":false,"description":"Authentication token"},
{"name":"tls","required":false,"description":"Require TLS (default false)"},
{"name":"deadLetter","required":false,"description":"Subject a message that cannot be fired is published to"}
]"#,
    },
    FeedDoc {
        name: "jetstream",
        description: "Fire on every message of a JetStream stream, read by a durable pull \
                      consumer and acknowledged once fired (at least once, de-duplicated by \
                      stream sequence)",
        parameters: r#"[
{"name":"stream","required":true,"description":"Stream to read"},
{"name":"consumer","required":true,"description":"Durable consumer name (created when missing)"},
{"name":"subject","required":false,"description":"Filter subject within the stream"},
{"name":"deliverPolicy","required":false,"description":"Where a new consumer starts: all, new or last (default all)"},
{"name":"maxDeliver","required":false,"description":"Deliveries of one message before JetStream gives up on it (default 5)"},
{"name":"url","required":false,"description":"Server URL, nats://host:4222 or tls://host:4222 (default nats://127.0.0.1:4222)"},
{"name":"user","required":false,"description":"User name (with password)"},
{"name":"password","required":false,"description":"Password"},
{"name":"token","required":false,"description":"Authentication token"},
{"name":"tls","required":false,"description":"Require TLS (default false)"},
{"name":"deadLetter","required":false,"description":"Subject a message that cannot be fired is published to before it is terminated"}
]"#,
    },
    FeedDoc {
        name: "stream",
        description: "Run each rule's action with batches of a JetStream stream's messages, \
                      read in order by position with a checkpoint per rule (an event source \
                      mapping; nothing is acknowledged on the stream)",
        parameters: r#"[
{"name":"stream","required":true,"description":"Stream to read"},
{"name":"subject","required":false,"description":"Filter subject within the stream; '*' and '>' wildcards allowed"},
{"name":"partitionKey","required":false,"description":"What order is kept by: subject (default) or header:NAME (the header's value, empty when missing)"},
{"name":"url","required":false,"description":"Server URL, nats://host:4222 or tls://host:4222 (default nats://127.0.0.1:4222)"},
{"name":"user","required":false,"description":"User name (with password)"},
{"name":"password","required":false,"description":"Password"},
{"name":"token","required":false,"description":"Authentication token"},
{"name":"tls","required":false,"description":"Require TLS (default false)"}
]"#,
    },
];

/// The NATS source. It keeps the clients that [`Source::publish`] opened, one per
/// connection configuration, for the next publish.
#[derive(Default)]
pub struct Nats {
    publishers: Mutex<HashMap<config::Connection, async_nats::Client>>,
}

/// Checks a rule output's parameters (`url`, `subject` without wildcards, `user`,
/// `password`, `token`, `tls`) and returns the configuration [`Source::publish`] takes.
pub fn output_config(params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    config::Output::read(params).map(|o| o.write())
}

#[async_trait]
impl Source for Nats {
    fn package(&self) -> &'static str {
        "nats"
    }

    fn description(&self) -> &'static str {
        "NATS subjects and JetStream streams"
    }

    fn feeds(&self) -> &'static [FeedDoc] {
        FEEDS
    }

    fn secrets(&self) -> &'static [&'static str] {
        &["password", "token", "url"]
    }

    fn configure(
        &self,
        feed: &str,
        params: &Map<String, Value>,
    ) -> Result<Map<String, Value>, String> {
        match feed {
            "subscribe" => config::Subscribe::read(params).map(|c| c.write()),
            "jetstream" => config::JetStream::read(params).map(|c| c.write()),
            "stream" => config::Stream::read(params).map(|c| c.write()),
            other => Err(unknown_feed(self, other)),
        }
    }

    fn listens(&self, _feed: &str) -> bool {
        true
    }

    async fn check(&self, feed: &str, config: &Map<String, Value>) -> Result<(), SourceError> {
        match feed {
            "subscribe" => {
                run::check_subscribe(&config::Subscribe::read(config).map_err(SourceError::Config)?)
                    .await
            }
            "jetstream" => {
                run::check_jetstream(&config::JetStream::read(config).map_err(SourceError::Config)?)
                    .await
            }
            "stream" => {
                stream::check(&config::Stream::read(config).map_err(SourceError::Config)?).await
            }
            other => Err(SourceError::Config(unknown_feed(self, other))),
        }
    }

    async fn run(
        &self,
        feed: &str,
        config: &Map<String, Value>,
        sink: &dyn Sink,
    ) -> Result<(), SourceError> {
        match feed {
            "subscribe" => {
                let c = config::Subscribe::read(config).map_err(SourceError::Config)?;
                run::subscribe(&c, sink).await
            }
            "jetstream" => {
                let c = config::JetStream::read(config).map_err(SourceError::Config)?;
                run::jetstream(&c, sink).await
            }
            "stream" => Err(SourceError::Config(
                "feed 'stream' is read by its rules' mappings, not run".into(),
            )),
            other => Err(SourceError::Config(unknown_feed(self, other))),
        }
    }

    fn streams(&self, feed: &str) -> bool {
        feed == "stream"
    }

    async fn open_stream(
        &self,
        feed: &str,
        config: &Map<String, Value>,
    ) -> Result<Box<dyn StreamReader>, SourceError> {
        match feed {
            "stream" => {
                let c = config::Stream::read(config).map_err(SourceError::Config)?;
                Ok(Box::new(stream::open(&c).await?))
            }
            other => Err(SourceError::Config(format!(
                "feed '{other}' is not a stream"
            ))),
        }
    }

    fn configure_output(&self, params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
        output_config(params)
    }

    async fn publish(
        &self,
        config: &Map<String, Value>,
        payload: &Value,
    ) -> Result<(), SourceError> {
        let output = config::Output::read(config).map_err(SourceError::Config)?;
        let body = serde_json::to_vec(payload)
            .map_err(|e| SourceError::Config(format!("cannot encode the payload: {e}")))?;
        let mut publishers = self.publishers.lock().await;
        let client = match publishers.get(&output.connection) {
            Some(client) => client.clone(),
            None => {
                let (client, _) = run::connect(&output.connection).await?;
                publishers.insert(output.connection.clone(), client.clone());
                client
            }
        };
        drop(publishers);
        let headers = output.msg_id.as_deref().map(|id| {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", id);
            h
        });
        let sent = run::publish_flushed(&client, &output.subject, headers, body.into()).await;
        if sent.is_err() {
            self.publishers.lock().await.remove(&output.connection);
        }
        sent
    }
}

#[cfg(test)]
mod tests;
