//! Feed `batches`: a Redis stream read by position for event source mappings (decision
//! 0027), with XREAD and XREVRANGE and no consumer group; nothing is acknowledged, the caller
//! keeps the checkpoint.
//!
//! - **Sequences**: entry id `ms-n` is sequence `ms * 65536 + n`, and a sequence `s` is the
//!   id `(s / 65536)-(s % 65536)`, so ids and sequences order alike. An entry whose `n` is
//!   65536 or more (only ids given explicitly to XADD, never `*`), or whose `ms` is 2^48 or
//!   more, has no sequence: reading it is a configuration error that names it.
//! - **A read** is one XREAD `COUNT max` after the id of `after`, with `BLOCK` for the
//!   window: Redis answers at once with what follows, else as soon as something is added.
//! - **A record**: its partition key is the stream's key (one partition) or the value of the
//!   field `partitionKey: "field:NAME"` names (empty when the entry has none), its time the
//!   id's `ms`, its size its fields' names and values in bytes, its payload as the `stream`
//!   feed's: `{stream, id, fields, fields_base64?, data | data_base64?}`.
//! - **The lag** ([`StreamReader::pending`]) is counted with XREAD pages, up to
//!   [`PENDING_LIMIT`].
//! - A missing key is an empty stream (XADD creates it); a key of another type is a
//!   configuration error.
//! - The connection is dropped and made again after a command that failed, timed out or was
//!   cancelled (a blocking XREAD left behind would hold up the next command).
//!
//! **May not:** create consumer groups or write to the stream.

use std::time::Duration;

use async_trait::async_trait;
use gust_source::{SourceError, StreamReader, StreamRecord};
use redis::aio::MultiplexedConnection;

use crate::config::Batches;
use crate::run::{CONNECT_TIMEOUT, Entry, connect_with, entries, lost, must_be_a_stream, payload};

/// The lag [`StreamReader::pending`] counts up to; a larger one is reported as this.
pub const PENDING_LIMIT: u64 = 10_000;
/// Entries one read of the lag's count takes.
const PAGE: u64 = 1_000;
/// `n` of an entry id `ms-n` is below this.
const N_BOUND: u64 = 1 << 16;

/// The sequence of entry id `ms-n`, or why it has none.
pub fn sequence(id: &str) -> Result<u64, String> {
    let (ms, n) = id
        .split_once('-')
        .and_then(|(ms, n)| Some((ms.parse::<u64>().ok()?, n.parse::<u64>().ok()?)))
        .ok_or_else(|| format!("'{id}' is not a stream entry id"))?;
    if n >= N_BOUND || ms >= 1 << 48 {
        return Err(format!(
            "the entry id '{id}' has no sequence (ms below 2^48 and n below 65536 are needed)"
        ));
    }
    Ok(ms * N_BOUND + n)
}

/// The entry id of sequence `s`.
pub fn entry_id(s: u64) -> String {
    format!("{}-{}", s / N_BOUND, s % N_BOUND)
}

/// A Redis stream read by position (see the module's doc).
pub struct Reader {
    feed: Batches,
    /// `None` after a command that did not finish: connected again before the next.
    conn: Option<MultiplexedConnection>,
}

/// Connects and checks that the key is a stream or missing.
pub async fn open(feed: &Batches) -> Result<Reader, SourceError> {
    let mut conn = connect_with(&feed.server, None).await?;
    must_be_a_stream(&mut conn, &feed.server, &feed.stream).await?;
    Ok(Reader {
        feed: feed.clone(),
        conn: Some(conn),
    })
}

impl Reader {
    /// Sends `cmd` (answered within `wait` and [`CONNECT_TIMEOUT`]), connecting first when
    /// the last command did not finish.
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        what: &str,
        cmd: &redis::Cmd,
        wait: Duration,
    ) -> Result<T, SourceError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => connect_with(&self.feed.server, None).await?,
        };
        let answer = tokio::time::timeout(wait + CONNECT_TIMEOUT, cmd.query_async(&mut conn))
            .await
            .map_err(|_| {
                SourceError::Connection(format!(
                    "Redis at {}: {what}: no answer",
                    self.feed.server.shown()
                ))
            })?
            .map_err(|e| lost(&self.feed.server, what, e))?;
        self.conn = Some(conn);
        Ok(answer)
    }

    /// An entry as a record of the feed.
    fn record(&self, entry: Entry) -> Result<StreamRecord, SourceError> {
        let sequence = sequence(&entry.id).map_err(|why| {
            SourceError::Config(format!("Redis stream '{}': {why}", self.feed.stream))
        })?;
        let fields = entry.fields.unwrap_or_default();
        let partition_key = match &self.feed.key_field {
            None => self.feed.stream.clone(),
            Some(name) => fields
                .iter()
                .find(|(k, _)| k.as_slice() == name.as_bytes())
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default(),
        };
        Ok(StreamRecord {
            sequence,
            partition_key,
            time_ms: sequence / N_BOUND,
            size: fields.iter().map(|(k, v)| k.len() + v.len()).sum(),
            payload: payload(&self.feed.stream, &entry.id, &fields),
        })
    }

    /// Up to `count` entries after sequence `after`, waiting up to `wait` (zero: not at all)
    /// when there are none.
    async fn after(
        &mut self,
        after: u64,
        count: u64,
        wait: Duration,
    ) -> Result<Vec<Entry>, SourceError> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(count);
        if !wait.is_zero() {
            // BLOCK 0 would wait for ever: at least 1 ms.
            cmd.arg("BLOCK")
                .arg(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1));
        }
        cmd.arg("STREAMS")
            .arg(&self.feed.stream)
            .arg(entry_id(after));
        let reply: redis::Value = self.query("XREAD", &cmd, wait).await?;
        entries(reply).map_err(|why| {
            SourceError::Connection(format!("an XREAD answer not understood: {why}"))
        })
    }
}

/// An XREVRANGE answer, a list of entries, read as XREAD's.
fn list(reply: redis::Value) -> Result<Vec<Entry>, SourceError> {
    let wrapped = redis::Value::Array(vec![redis::Value::Array(vec![redis::Value::Nil, reply])]);
    entries(wrapped).map_err(|why| {
        SourceError::Connection(format!("an XREVRANGE answer not understood: {why}"))
    })
}

#[async_trait]
impl StreamReader for Reader {
    async fn read(
        &mut self,
        after: u64,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<StreamRecord>, SourceError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let found = self.after(after, max as u64, wait).await?;
        found.into_iter().map(|e| self.record(e)).collect()
    }

    async fn last_sequence(&mut self) -> Result<u64, SourceError> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(&self.feed.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let reply: redis::Value = self.query("XREVRANGE", &cmd, Duration::ZERO).await?;
        match list(reply)?.into_iter().next() {
            Some(entry) => Ok(self.record(entry)?.sequence),
            None => Ok(0),
        }
    }

    async fn sequence_before(&mut self, ms: u64) -> Result<u64, SourceError> {
        // The first entry at or after `ms-0`: the first after the sequence before it.
        let first = match ms.checked_mul(N_BOUND) {
            Some(s) => self.after(s.saturating_sub(1), 1, Duration::ZERO).await?,
            None => Vec::new(),
        };
        match first.into_iter().next() {
            Some(entry) => Ok(self.record(entry)?.sequence.saturating_sub(1)),
            None => self.last_sequence().await,
        }
    }

    async fn pending(&mut self, after: u64) -> Result<u64, SourceError> {
        let mut count = 0;
        let mut from = after;
        while count < PENDING_LIMIT {
            let asked = PAGE.min(PENDING_LIMIT - count);
            let page = self.after(from, asked, Duration::ZERO).await?;
            let Some(last) = page.last() else { break };
            from = sequence(&last.id).map_err(|why| {
                SourceError::Config(format!("Redis stream '{}': {why}", self.feed.stream))
            })?;
            count += page.len() as u64;
            if (page.len() as u64) < asked {
                break;
            }
        }
        Ok(count)
    }
}
