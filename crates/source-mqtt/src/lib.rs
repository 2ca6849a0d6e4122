//! The MQTT event source (package `mqtt`): a topic subscription turned into fires, and a
//! rule's output published to a topic. MQTT 3.1.1 and MQTT 5 (`version`), plain or TLS
//! (`mqtts://` or `tls: true`, the system's root certificates).
//!
//! - Messages are acknowledged by hand, each only after the sink took it: a QoS 1 message
//!   read but not yet fired when the subscription stops is delivered again by the broker when
//!   the same `clientId` connects again (its session is kept: clean session off, and on MQTT 5
//!   a session expiry of a week). Without a `clientId` the client id is random and the
//!   session clean: what arrives while no subscription runs is not seen.
//! - At most [`RECEIVE_MAXIMUM`] QoS 1 messages are unacknowledged at once on MQTT 5
//!   (on 3.1.1 the broker's in-flight limit applies); QoS 0 messages beyond a backlog of
//!   1,024 while the sink is busy are dropped.
//! - MQTT has no message id: the key is the MQTT 5 user property `message-id` when present,
//!   otherwise none.
//! - A message moved aside is published to `deadLetter` (QoS 1, with the MQTT 5 user property
//!   `gust-moved-aside: <why>`) and then acknowledged.
//!
//! Payload: `{topic, qos, retain, data | data_base64, userProperties?, contentType?}`.
//!
//! **Owns:** the MQTT protocol side of a subscription. **May not depend on:** anything of
//! Gust but `gust-source` (no entities, store, bus or HTTP); its client crate is `rumqttc`.

mod client;
mod config;
mod run;

use async_trait::async_trait;
use gust_source::{FeedDoc, Sink, Source, SourceError, unknown_feed};
use serde_json::{Map, Value};

pub use client::RECEIVE_MAXIMUM;
pub use config::DEFAULT_URL;
pub use run::{MESSAGE_ID_PROPERTY, MOVED_ASIDE_PROPERTY};

const FEEDS: &[FeedDoc] = &[FeedDoc {
    name: "subscribe",
    description: "Fire on every message published to an MQTT topic filter, acknowledged once \
                  fired (QoS 1: at least once; give a clientId to get what arrives while the \
                  subscription is down)",
    parameters: r#"[
{"name":"topic","required":true,"description":"Topic filter; '+' and '#' wildcards and $share/<group>/<filter> allowed"},
{"name":"url","required":false,"description":"Broker URL, mqtt://host:1883 or mqtts://host:8883 (default mqtt://127.0.0.1:1883)"},
{"name":"qos","required":false,"description":"0 or 1 (default 1)"},
{"name":"clientId","required":false,"description":"Fixed client id: the broker keeps the session and queues QoS 1 messages while disconnected (default: random, clean session)"},
{"name":"username","required":false,"description":"User name"},
{"name":"password","required":false,"description":"Password"},
{"name":"version","required":false,"description":"3 (MQTT 3.1.1) or 5 (default 3)"},
{"name":"tls","required":false,"description":"Use TLS (default false; mqtts:// implies it)"},
{"name":"deadLetter","required":false,"description":"Topic a message that cannot be fired is published to"}
]"#,
}];

/// The MQTT source.
#[derive(Debug, Default)]
pub struct Mqtt;

/// Checks a rule output's parameters (`url`, `topic` without wildcards, `qos` 0|1 default
/// 1, `retain` default false, `username`, `password`, `version`, `tls`) and returns the
/// configuration [`Source::publish`] takes. Each publish opens a connection of its own.
pub fn output_config(params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    config::Output::read(params).map(|o| o.write())
}

#[async_trait]
impl Source for Mqtt {
    fn package(&self) -> &'static str {
        "mqtt"
    }

    fn description(&self) -> &'static str {
        "MQTT topics (3.1.1 and 5)"
    }

    fn feeds(&self) -> &'static [FeedDoc] {
        FEEDS
    }

    fn secrets(&self) -> &'static [&'static str] {
        &["password", "url"]
    }

    fn configure(
        &self,
        feed: &str,
        params: &Map<String, Value>,
    ) -> Result<Map<String, Value>, String> {
        match feed {
            "subscribe" => config::Subscribe::read(params).map(|c| c.write()),
            other => Err(unknown_feed(self, other)),
        }
    }

    fn listens(&self, _feed: &str) -> bool {
        true
    }

    async fn check(&self, feed: &str, config: &Map<String, Value>) -> Result<(), SourceError> {
        match feed {
            "subscribe" => {
                run::check(&config::Subscribe::read(config).map_err(SourceError::Config)?).await
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
        run::publish(&output, body.into()).await
    }
}

#[cfg(test)]
mod tests;
