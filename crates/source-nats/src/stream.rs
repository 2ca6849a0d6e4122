//! Feed `stream`: a JetStream stream read by position for event source mappings (decision
//! 0027). Nothing is acknowledged: the caller keeps the checkpoint.
//!
//! A [`Reader`] reads through one ephemeral pull consumer of its own (no acknowledgement,
//! starting at the sequence after the caller's `after`, the feed's filter subject, state in
//! memory). It is reused while the caller reads on from where the last read ended, and
//! replaced (the old one deleted first) when the caller reads from elsewhere (a retry reads
//! again from an earlier point), when a read was cancelled or failed halfway (where the
//! consumer stands is then unknown), or when it sat idle for half of
//! [`INACTIVE_THRESHOLD`] (after which the server may remove it). A reader dropped deletes its
//! consumer from a task; the server removes one that nobody deleted after the threshold.
//!
//! A read takes what the stream holds at once (a pull that does not wait); when that is
//! nothing it waits up to the window for one record, then takes what followed it at once.
//!
//! **May not:** acknowledge, or keep a durable consumer on the server.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{self, PullConsumer};
use async_nats::jetstream::{self, ErrorCode};
use async_trait::async_trait;
use futures_util::StreamExt;
use gust_source::{SourceError, StreamReader, StreamRecord};

use crate::CONNECT_TIMEOUT;
use crate::config::{PartitionKey, Stream};
use crate::run::{connect, payload, stream_error};

/// How long a reader's consumer may sit unused before the server removes it.
/// The most records one pull asks for: the NATS server here (2.9) never answers a no-wait
/// pull of more than 1,000 messages, so a larger read is made of several pulls.
const MAX_PULL: usize = 1000;

pub const INACTIVE_THRESHOLD: Duration = Duration::from_secs(300);
/// A consumer unused for longer than this is replaced instead of reused.
const REUSE_WITHIN: Duration = Duration::from_secs(150);

/// A JetStream stream read by position (see the module's doc).
pub struct Reader {
    client: async_nats::Client,
    stream: jetstream::stream::Stream,
    feed: Stream,
    url: String,
    cursor: Option<Cursor>,
}

/// The reader's consumer and where it stands.
struct Cursor {
    consumer: PullConsumer,
    stream: jetstream::stream::Stream,
    name: String,
    /// The sequence of the last record it delivered (the one before its start at first).
    after: u64,
    /// No read is under way on it: a read cancelled or failed halfway leaves it unsettled.
    settled: bool,
    used: Instant,
    /// Deleted already: nothing to do when dropped.
    deleted: bool,
}

impl Cursor {
    /// Deletes its consumer and waits for the answer (a failure is only logged: the server
    /// removes it after [`INACTIVE_THRESHOLD`]).
    async fn delete(mut self) {
        self.deleted = true;
        if let Err(e) = self.stream.delete_consumer(&self.name).await {
            tracing::debug!(
                "cannot delete the stream reader's consumer {}: {e}",
                self.name
            );
        }
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (stream, name) = (self.stream.clone(), std::mem::take(&mut self.name));
            runtime.spawn(async move {
                let _ = stream.delete_consumer(&name).await;
            });
        }
    }
}

/// Connects, finds the stream, and returns a reader of it.
pub async fn open(feed: &Stream) -> Result<Reader, SourceError> {
    let (client, _lost) = connect(&feed.connection).await?;
    let url = feed.connection.shown();
    let stream = jetstream::new(client.clone())
        .get_stream(&feed.stream)
        .await
        .map_err(|e| stream_error(&feed.stream, &url, e))?;
    Ok(Reader {
        client,
        stream,
        feed: feed.clone(),
        url,
        cursor: None,
    })
}

/// Connects and checks that the stream exists.
pub async fn check(feed: &Stream) -> Result<(), SourceError> {
    open(feed).await.map(drop)
}

impl Reader {
    /// A connection error at once when the client knows it is not connected (instead of a
    /// request's timeout).
    fn connected(&self) -> Result<(), SourceError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(SourceError::Connection(format!(
                "NATS at {} is not connected ({state})",
                self.url
            ))),
        }
    }

    /// Why a JetStream request failed: the stream gone, or a request JetStream refused
    /// (a filter subject outside the stream's) is the configuration's; anything else is the
    /// connection's.
    fn failed(&self, what: &str, e: &(dyn std::error::Error + 'static)) -> SourceError {
        let stream = &self.feed.stream;
        let mut cause = Some(e);
        while let Some(error) = cause {
            let js = error
                .downcast_ref::<jetstream::Error>()
                .cloned()
                .or_else(|| {
                    error
                        .downcast_ref::<jetstream::stream::ConsumerError>()
                        .and_then(|c| match c.kind() {
                            jetstream::stream::ConsumerErrorKind::JetStream(js) => Some(js),
                            _ => None,
                        })
                });
            if let Some(js) = js {
                return if js.error_code() == ErrorCode::STREAM_NOT_FOUND {
                    SourceError::Config(format!(
                        "JetStream at {} has no stream '{stream}'",
                        self.url
                    ))
                } else {
                    SourceError::Config(format!(
                        "JetStream stream '{stream}' at {}: {what}: {js}",
                        self.url
                    ))
                };
            }
            cause = error.source();
        }
        SourceError::Connection(format!(
            "JetStream stream '{stream}' at {}: {what}: {e}",
            self.url
        ))
    }

    /// A new ephemeral consumer of the feed's subjects starting at `start`.
    async fn consumer(&self, start: consumer::DeliverPolicy) -> Result<Cursor, SourceError> {
        let consumer: PullConsumer = self
            .stream
            .create_consumer(consumer::pull::Config {
                deliver_policy: start,
                ack_policy: consumer::AckPolicy::None,
                filter_subject: self.feed.subject.clone().unwrap_or_default(),
                inactive_threshold: INACTIVE_THRESHOLD,
                memory_storage: true,
                description: Some("gust stream reader".into()),
                ..Default::default()
            })
            .await
            .map_err(|e| self.failed("cannot create a consumer", &e))?;
        let name = consumer.cached_info().name.clone();
        Ok(Cursor {
            consumer,
            stream: self.stream.clone(),
            name,
            after: 0,
            settled: true,
            used: Instant::now(),
            deleted: false,
        })
    }

    /// The reader's consumer positioned after `after`: the current one when the last read
    /// ended there, else a new one (the old one deleted).
    async fn cursor_at(&mut self, after: u64) -> Result<Cursor, SourceError> {
        match self.cursor.take() {
            Some(c) if c.settled && c.after == after && c.used.elapsed() < REUSE_WITHIN => Ok(c),
            old => {
                if let Some(old) = old {
                    old.delete().await;
                }
                let mut c = self
                    .consumer(consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: after.saturating_add(1),
                    })
                    .await?;
                c.after = after;
                Ok(c)
            }
        }
    }

    /// At most `n` records from `cursor`, those there are now, in pulls of at most
    /// [`MAX_PULL`].
    async fn pull_now(
        &self,
        cursor: &mut Cursor,
        n: usize,
    ) -> Result<Vec<StreamRecord>, SourceError> {
        let mut records = Vec::new();
        while records.len() < n {
            let want = (n - records.len()).min(MAX_PULL);
            let got = self.pull(cursor, want, None).await?;
            let short = got.len() < want;
            records.extend(got);
            if short {
                break;
            }
        }
        Ok(records)
    }

    /// At most `n` records from `cursor`: those there are now (`wait` none), or waiting up to
    /// `wait` for them.
    async fn pull(
        &self,
        cursor: &mut Cursor,
        n: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<StreamRecord>, SourceError> {
        let batch = match wait {
            None => cursor.consumer.fetch().max_messages(n).messages().await,
            Some(w) => {
                cursor
                    .consumer
                    .batch()
                    .max_messages(n)
                    .expires(w)
                    .messages()
                    .await
            }
        }
        .map_err(|e| self.failed("cannot pull", &e))?;
        let collect = async {
            let mut records = Vec::new();
            let mut batch = batch;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| self.failed("reading", e.as_ref()))?;
                let record = record(&message, &self.feed.partition_key)?;
                cursor.after = record.sequence;
                records.push(record);
            }
            Ok::<_, SourceError>(records)
        };
        let bound = wait.unwrap_or_default() + CONNECT_TIMEOUT;
        tokio::time::timeout(bound, collect).await.map_err(|_| {
            SourceError::Connection(format!(
                "JetStream stream '{}' at {}: no answer to a pull",
                self.feed.stream, self.url
            ))
        })?
    }
}

/// A message as a record of the feed.
fn record(message: &jetstream::Message, key: &PartitionKey) -> Result<StreamRecord, SourceError> {
    let info = message.info().map_err(|e| {
        SourceError::Connection(format!("a JetStream message without its metadata: {e}"))
    })?;
    let time_ms = u64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let partition_key = match key {
        PartitionKey::Subject => message.subject.to_string(),
        PartitionKey::Header(name) => message
            .headers
            .as_ref()
            .and_then(|h| h.get(name.as_str()))
            .map(|v| v.as_str().to_string())
            .unwrap_or_default(),
    };
    Ok(StreamRecord {
        sequence: info.stream_sequence,
        partition_key,
        time_ms,
        payload: payload(&message.message, None),
        size: message.payload.len(),
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
        self.connected()?;
        let mut cursor = self.cursor_at(after).await?;
        cursor.settled = false;
        let mut records = self.pull_now(&mut cursor, max).await;
        if matches!(&records, Ok(r) if r.is_empty()) && !wait.is_zero() {
            records = self.pull(&mut cursor, 1, Some(wait)).await;
            if let Ok(first) = &mut records
                && !first.is_empty()
                && max > 1
            {
                match self.pull_now(&mut cursor, max - 1).await {
                    Ok(more) => first.extend(more),
                    Err(e) => records = Err(e),
                }
            }
        }
        cursor.settled = records.is_ok();
        cursor.used = Instant::now();
        self.cursor = Some(cursor);
        records
    }

    async fn last_sequence(&mut self) -> Result<u64, SourceError> {
        self.connected()?;
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| self.failed("cannot read the stream's state", &e))?;
        Ok(info.state.last_sequence)
    }

    async fn sequence_before(&mut self, ms: u64) -> Result<u64, SourceError> {
        self.connected()?;
        let nanos = i128::from(ms) * 1_000_000;
        let start_time = async_nats::datetime::from_nanos(nanos)
            .map_err(|e| SourceError::Config(format!("time {ms} ms: {e}")))?;
        let mut cursor = self
            .consumer(consumer::DeliverPolicy::ByStartTime { start_time })
            .await?;
        let first = self.pull(&mut cursor, 1, None).await;
        cursor.delete().await;
        match first?.first() {
            Some(record) => Ok(record.sequence - 1),
            None => self.last_sequence().await,
        }
    }

    async fn pending(&mut self, after: u64) -> Result<u64, SourceError> {
        self.connected()?;
        if self.feed.subject.is_none() {
            let info = self
                .stream
                .get_info()
                .await
                .map_err(|e| self.failed("cannot read the stream's state", &e))?;
            let before_first = info.state.first_sequence.saturating_sub(1);
            return Ok(info
                .state
                .last_sequence
                .saturating_sub(after.max(before_first)));
        }
        // The consumer that reads on from `after` knows how many matching records follow;
        // else one made for the question.
        if let Some(c) = &mut self.cursor
            && c.settled
            && c.after == after
            && c.used.elapsed() < REUSE_WITHIN
        {
            let info = c.consumer.info().await.map(|i| i.num_pending);
            return info.map_err(|e| self.failed("cannot read the consumer's state", &e));
        }
        let cursor = self
            .consumer(consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after.saturating_add(1),
            })
            .await?;
        let pending = cursor.consumer.cached_info().num_pending;
        cursor.delete().await;
        Ok(pending)
    }
}
