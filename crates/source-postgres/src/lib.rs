//! The PostgreSQL change-events source (package `postgres`, decision 0027): row inserts,
//! updates and deletes of the tables a trigger names, read from a logical replication slot,
//! each turned into a fire in commit order.
//!
//! - Feed `changes` reads slot `slot` with the built-in `pgoutput` plugin through
//!   publication `publication` (both named `gust_` and 20 random hex digits at CREATE unless
//!   given, and kept by UPDATE). Only [`Source::check`] (CREATE and UPDATE) makes the
//!   publication (FOR TABLE the configured tables, publishing the configured operations; one
//!   that exists is set to them) and the slot where missing; a run requires both and fails
//!   when the slot is missing (a slot made again would skip the changes since, and one made
//!   after a DELETE would be nobody's). [`Source::forget`] drops the slot, and the
//!   publication when its name starts with `gust_`.
//! - Reading is plain SQL over tokio-postgres (no replication protocol): peek at most
//!   [`CHUNK`] changes, hand each to the sink, then advance the slot past the last commit
//!   handed ([`run`]'s module doc). A run stopped mid-transaction leaves the slot before it:
//!   the next run hands the same changes again with the same keys. The slot never moves past
//!   a change the sink did not accept: a `MoveAside` (there is no place to put a change
//!   aside) stops the run with an error, past the transactions accepted before it only, and
//!   the next run, after the listener's backoff, hands that change again; one that can never
//!   be fired holds the subscription until an operator moves the slot past its transaction
//!   (decision 0027) or the trigger is made again.
//! - The key of a change is `<commit LSN>:<index in its transaction>`. Its payload is
//!   Debezium-like: `{op: c|u|d, before, after, source: {connector: "postgresql", db,
//!   schema, table, txId, lsn, ts_ms}, ts_ms}` ([`run::value`] for column values).
//! - The status says how much WAL the slot holds back, every [`REPORT_EVERY`]; above
//!   [`WARN_RETAINED`] the log warns, as it does of other `gust_` slots of the database that
//!   nobody reads.
//!
//! **Owns:** the PostgreSQL side of a change subscription. **May not depend on:** anything
//! of Gust but `gust-source`; its client crate is the project's `tokio-postgres`.

mod config;
pub mod pgoutput;
mod run;

use async_trait::async_trait;
use gust_source::{FeedDoc, Sink, Source, SourceError, unknown_feed};
use serde_json::{Map, Value};

pub use config::DEFAULT_PREFIX;
pub use run::{
    CHUNK, IDLE_WAIT, REPORT_EVERY, SlotLag, WARN_RETAINED, bytes_text, value as column_value,
};

const FEEDS: &[FeedDoc] = &[FeedDoc {
    name: "changes",
    description: "Fire once per row inserted, updated or deleted in PostgreSQL tables, in commit \
                  order, read from a logical replication slot (pgoutput) that moves only past \
                  fired transactions",
    parameters: r#"[
{"name":"url","required":true,"description":"postgres://user:password@host:5432/database (sslmode=require for TLS); the user needs the REPLICATION attribute and to own the tables (or be a superuser)"},
{"name":"tables","required":true,"description":"Tables, schema.table or table (schema public): an array, or a comma-separated string"},
{"name":"operations","required":false,"description":"Which of insert, update, delete fire (default all)"},
{"name":"slot","required":false,"description":"Replication slot (made at CREATE and UPDATE when missing, never by a run; default gust_ and 20 random hex digits, chosen at CREATE)"},
{"name":"publication","required":false,"description":"Publication (made at CREATE and UPDATE when missing, set to the tables; default the slot's name)"}
]"#,
}];

/// The PostgreSQL source.
#[derive(Debug, Default)]
pub struct Postgres;

fn read(feed: &str, config: &Map<String, Value>) -> Result<config::Changes, SourceError> {
    match feed {
        "changes" => config::Changes::read(config).map_err(SourceError::Config),
        other => Err(SourceError::Config(unknown_feed(&Postgres, other))),
    }
}

/// How far the slot of a `changes` configuration is behind (`None` when it has no slot).
pub async fn slot_lag(config: &Map<String, Value>) -> Result<Option<SlotLag>, SourceError> {
    let c = read("changes", config)?;
    let client = run::connect(&c).await?;
    run::slot_lag(&client, &c).await
}

#[async_trait]
impl Source for Postgres {
    fn package(&self) -> &'static str {
        "postgres"
    }

    fn description(&self) -> &'static str {
        "PostgreSQL row changes (logical decoding)"
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
            "changes" => config::Changes::read(params).map(|c| c.write()),
            other => Err(unknown_feed(self, other)),
        }
    }

    fn listens(&self, _feed: &str) -> bool {
        true
    }

    async fn check(&self, feed: &str, config: &Map<String, Value>) -> Result<(), SourceError> {
        run::check(&read(feed, config)?).await
    }

    async fn run(
        &self,
        feed: &str,
        config: &Map<String, Value>,
        sink: &dyn Sink,
    ) -> Result<(), SourceError> {
        run::changes(&read(feed, config)?, sink).await
    }

    async fn forget(&self, feed: &str, config: &Map<String, Value>) -> Result<(), SourceError> {
        run::forget(&read(feed, config)?).await
    }
}

#[cfg(test)]
mod tests;
