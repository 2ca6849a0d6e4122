//! The AMQP 0-9-1 event source (package `amqp`, RabbitMQ): a queue consumed into fires, and
//! a rule's output published to an exchange.
//!
//! - Feed `consume` reads one queue with manual acknowledgement and a prefetch of
//!   `prefetch` messages (default 16): each message is acknowledged only after the sink took
//!   it, so one delivered but not yet fired when the subscription stops goes back to the
//!   queue (the connection closes) and is delivered again, marked `redelivered`.
//! - The queue must exist (checked by a passive declare) unless `declare: true`, which
//!   declares it durable; with `exchange` (and `routingKey`) the queue is bound to it.
//! - The key is the message's `message_id` property where the publisher set one.
//! - A message moved aside is published to the `deadLetter` queue (default exchange,
//!   publisher confirm, the header `x-gust-moved-aside: <why>` added; the queue is declared
//!   durable when missing) where configured, then rejected without requeueing, so RabbitMQ
//!   also dead-letters it where the queue has a dead-letter exchange.
//! - `amqps://` is TLS (rustls with ring, the system's root certificates), `amqp://` plain.
//!
//! Payload: `{exchange, routingKey, redelivered, messageId?, correlationId?, contentType?,
//! headers?, data | data_base64}`.
//!
//! **Owns:** the AMQP protocol side of a subscription. **May not depend on:** anything of
//! Gust but `gust-source` (no entities, store, bus or HTTP); its client crate is `lapin`.

mod config;
mod run;

use async_trait::async_trait;
use gust_source::{FeedDoc, Sink, Source, SourceError, unknown_feed};
use serde_json::{Map, Value};

pub use config::{DEFAULT_PREFETCH, DEFAULT_URL};
pub use run::MOVED_ASIDE_HEADER;

const FEEDS: &[FeedDoc] = &[FeedDoc {
    name: "consume",
    description: "Fire on every message of an AMQP queue (RabbitMQ), acknowledged once fired \
                  (at least once; de-duplicated by message_id where set)",
    parameters: r#"[
{"name":"queue","required":true,"description":"Queue to consume"},
{"name":"url","required":false,"description":"Broker URL with credentials and virtual host (default amqp://guest:guest@127.0.0.1:5672/%2f)"},
{"name":"declare","required":false,"description":"Declare the queue, durable, when missing (default false: it must exist)"},
{"name":"exchange","required":false,"description":"Exchange to bind the queue to"},
{"name":"routingKey","required":false,"description":"Routing key of that binding (default empty)"},
{"name":"prefetch","required":false,"description":"Messages delivered ahead of their acknowledgement, 1 to 1000 (default 16)"},
{"name":"deadLetter","required":false,"description":"Queue a message that cannot be fired is published to before it is rejected"}
]"#,
}];

/// The AMQP source.
#[derive(Debug, Default)]
pub struct Amqp;

/// Checks a rule output's parameters (`url`, `exchange` default the default exchange,
/// `routingKey` required (the queue's name for the default exchange), `persistent` default
/// true) and returns the configuration [`Source::publish`] takes. Each publish opens a
/// connection of its own and waits for the broker's confirm; a message no queue takes is an
/// error.
pub fn output_config(params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    config::Output::read(params).map(|o| o.write())
}

#[async_trait]
impl Source for Amqp {
    fn package(&self) -> &'static str {
        "amqp"
    }

    fn description(&self) -> &'static str {
        "AMQP 0-9-1 queues (RabbitMQ)"
    }

    fn feeds(&self) -> &'static [FeedDoc] {
        FEEDS
    }

    fn secrets(&self) -> &'static [&'static str] {
        &["url"]
    }

    fn configure(
        &self,
        feed: &str,
        params: &Map<String, Value>,
    ) -> Result<Map<String, Value>, String> {
        match feed {
            "consume" => config::Consume::read(params).map(|c| c.write()),
            other => Err(unknown_feed(self, other)),
        }
    }

    fn listens(&self, _feed: &str) -> bool {
        true
    }

    async fn check(&self, feed: &str, config: &Map<String, Value>) -> Result<(), SourceError> {
        match feed {
            "consume" => {
                run::check(&config::Consume::read(config).map_err(SourceError::Config)?).await
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
            "consume" => {
                let c = config::Consume::read(config).map_err(SourceError::Config)?;
                run::consume(&c, sink).await
            }
            other => Err(SourceError::Config(unknown_feed(self, other))),
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
        run::publish(&output, &body).await
    }
}

#[cfg(test)]
mod tests;
