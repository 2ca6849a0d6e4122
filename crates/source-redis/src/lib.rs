//! The Redis Streams event source (package `redis`): a consumer group's entries turned into
//! fires, and a rule's output added to a stream.
//!
//! - Feed `stream` reads `stream` as `consumer` (default `gust`) of `group`, created when
//!   missing (XGROUP CREATE … MKSTREAM at `start`: `$` new entries, the default, or `0` all;
//!   an existing group is kept as it is). Entries are read [`BATCH`] at a time and each is
//!   acknowledged (XACK) only after the sink took it. On start the consumer's pending entries
//!   (read before a stop, never acknowledged) are read again first, then new ones with a
//!   blocking read.
//! - The key is `<stream>:<entry id>`.
//! - A message moved aside is added to the `deadLetter` stream (default `<stream>:dead`) with
//!   its fields plus `gust-moved-aside` (why), `gust-stream` and `gust-id`, then acknowledged.
//! - Feed `batches` is not run: its trigger's rules are event source mappings (decision
//!   0027) that read the stream by position through [`Source::open_stream`] (module
//!   `batches`: XREAD without a group, sequence `ms * 65536 + n` of entry id `ms-n`), each
//!   with its own checkpoint; nothing is acknowledged. A record's payload is the `stream`
//!   feed's.
//! - `rediss://` connects with TLS (rustls, the system's root certificates).
//!
//! Payload: `{stream, id, fields: {name: text}, fields_base64?: {name: base64},
//! data | data_base64?}`: an entry is a map of fields; the first of the fields [`DATA_FIELDS`]
//! (`data`, `payload`, `message`) that it has is also read as the body (`data`: its JSON, else
//! its text).
//!
//! **Owns:** the Redis protocol side of a subscription. **May not depend on:** anything of
//! Gust but `gust-source` (no entities, store, bus or HTTP); its client crate is `redis`.

mod batches;
mod config;
mod run;

use async_trait::async_trait;
use gust_source::{FeedDoc, Sink, Source, SourceError, StreamReader, unknown_feed};
use serde_json::{Map, Value};

pub use batches::{PENDING_LIMIT, entry_id, sequence};
pub use config::{DEFAULT_CONSUMER, DEFAULT_URL};
pub use run::{BATCH, DATA_FIELDS, MOVED_ASIDE_FIELD};

const FEEDS: &[FeedDoc] = &[
    FeedDoc {
        name: "stream",
        description: "Fire on every entry added to a Redis stream, read through a consumer group \
                  and acknowledged once fired (at least once, de-duplicated by entry id)",
        parameters: r#"[
{"name":"stream","required":true,"description":"Stream key"},
{"name":"group","required":true,"description":"Consumer group (created when missing)"},
{"name":"consumer","required":false,"description":"Consumer name within the group (default gust)"},
{"name":"start","required":false,"description":"Where a new group starts: $ (new entries, default) or 0 (all)"},
{"name":"url","required":false,"description":"Server URL, redis://[user:password@]host:6379[/db] or rediss:// (default redis://127.0.0.1:6379)"},
{"name":"username","required":false,"description":"ACL user name (with password)"},
{"name":"password","required":false,"description":"Password"},
{"name":"deadLetter","required":false,"description":"Stream an entry that cannot be fired is added to (default <stream>:dead)"}
]"#,
    },
    FeedDoc {
        name: "batches",
        description: "Run each rule's action with batches of a Redis stream's entries, read in \
                      order by position with a checkpoint per rule (an event source mapping; \
                      no consumer group, nothing acknowledged)",
        parameters: r#"[
{"name":"stream","required":true,"description":"Stream key"},
{"name":"partitionKey","required":false,"description":"What order is kept by: stream (the key, one partition; default) or field:NAME (the entry's field, empty when missing)"},
{"name":"url","required":false,"description":"Server URL, redis://[user:password@]host:6379[/db] or rediss:// (default redis://127.0.0.1:6379)"},
{"name":"username","required":false,"description":"ACL user name (with password)"},
{"name":"password","required":false,"description":"Password"}
]"#,
    },
];

/// The Redis source.
#[derive(Debug, Default)]
pub struct Redis;

/// Checks a rule output's parameters (`url`, `stream` required, `maxLen` to trim the stream
/// to about that many entries, `username`, `password`) and returns the configuration
/// [`Source::publish`] takes: XADD with the field `data` holding the payload's JSON. Each
/// publish opens a connection of its own.
pub fn output_config(params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    config::Output::read(params).map(|o| o.write())
}

#[async_trait]
impl Source for Redis {
    fn package(&self) -> &'static str {
        "redis"
    }

    fn description(&self) -> &'static str {
        "Redis streams"
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
            "stream" => config::Stream::read(params).map(|c| c.write()),
            "batches" => config::Batches::read(params).map(|c| c.write()),
            other => Err(unknown_feed(self, other)),
        }
    }

    fn listens(&self, _feed: &str) -> bool {
        true
    }

    async fn check(&self, feed: &str, config: &Map<String, Value>) -> Result<(), SourceError> {
        match feed {
            "stream" => {
                run::check(&config::Stream::read(config).map_err(SourceError::Config)?).await
            }
            "batches" => {
                batches::open(&config::Batches::read(config).map_err(SourceError::Config)?)
                    .await
                    .map(drop)
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
            "stream" => {
                let c = config::Stream::read(config).map_err(SourceError::Config)?;
                run::stream(&c, sink).await
            }
            "batches" => Err(SourceError::Config(
                "feed 'batches' is read by its rules' mappings, not run".into(),
            )),
            other => Err(SourceError::Config(unknown_feed(self, other))),
        }
    }

    fn streams(&self, feed: &str) -> bool {
        feed == "batches"
    }

    async fn open_stream(
        &self,
        feed: &str,
        config: &Map<String, Value>,
    ) -> Result<Box<dyn StreamReader>, SourceError> {
        match feed {
            "batches" => {
                let c = config::Batches::read(config).map_err(SourceError::Config)?;
                Ok(Box::new(batches::open(&c).await?))
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
        run::publish(&output, &payload.to_string()).await
    }
}

#[cfg(test)]
mod tests;
