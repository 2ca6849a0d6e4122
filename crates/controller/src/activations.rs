//! Reading activation records, and following them as they are written.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gust_model::{Activation, names};
use gust_store::{ActivationQuery, Store, WritePosition};
use serde_json::value::RawValue;

use crate::{Controller, ControllerError, lock};

impl Controller {
    pub async fn activation(&self, ns: &str, id: &str) -> Result<Activation, ControllerError> {
        if !names::is_activation_id(id) {
            return Err(ControllerError::BadRequest(
                "The activation id is not valid.".into(),
            ));
        }
        self.store
            .activation(ns, id)
            .await?
            .ok_or(ControllerError::NotFound)
    }

    /// Stored records (raw `Activation` JSON), newest first.
    pub async fn list_activations(
        &self,
        q: &ActivationQuery,
    ) -> Result<Vec<Box<RawValue>>, ControllerError> {
        Ok(self.store.list_activations(q).await?)
    }

    pub async fn count_activations(&self, q: &ActivationQuery) -> Result<u64, ControllerError> {
        Ok(self.store.count_activations(q).await?)
    }
}

/// Live activation streams a namespace may hold open at once: each reads the store up to 20
/// times a second under load (4 on PostgreSQL), so an unbounded number would let one tenant
/// load the store for all.
pub const MAX_STREAMS: usize = 10;

/// How often a stream reads the store for new records when the last read found none.
const POLL: Duration = Duration::from_millis(250);

/// How often a stream reads the store when the store signals its record writes (the embedded
/// store): a read follows each signal, and this only bounds what a missed one could delay.
const SIGNALLED_POLL: Duration = Duration::from_secs(2);

/// Least time between two reads of a stream woken by the store's signal: the signal carries
/// no namespace, so under load it would otherwise read as fast as the store answers.
const SIGNALLED_GAP: Duration = Duration::from_millis(50);

/// At most this many records of a stream's past (`since`) are sent, newest kept.
const BACKLOG: u64 = 200;

/// The live streams open per namespace.
#[derive(Debug, Default)]
pub(crate) struct Streams(Arc<Mutex<HashMap<String, usize>>>);

/// One namespace's open stream, counted until dropped.
#[derive(Debug)]
struct StreamSlot {
    streams: Arc<Mutex<HashMap<String, usize>>>,
    namespace: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.streams);
        if let Some(n) = open.get_mut(&self.namespace) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.namespace);
            }
        }
    }
}

/// Where a live stream starts.
#[derive(Debug, Default, Clone)]
pub struct FollowFrom {
    /// Records that started at or after this time (ms) and were written before the stream
    /// opened come first, oldest first; `None`: only records written from now on.
    pub since: Option<u64>,
    /// Resume after this record (the last one the reader got); wins over `since` when it is
    /// a stored record of the namespace.
    pub after: Option<String>,
}

/// The records of one namespace (and action) as they are written: the live activations
/// stream (decision 0026). Records are found in the order they were written, so one that
/// started earlier but finished later is not passed over.
pub struct Follow {
    store: Arc<dyn Store>,
    query: ActivationQuery,
    at: WritePosition,
    /// The past records still to send, oldest first.
    backlog: VecDeque<Box<RawValue>>,
    /// Ids sent from the past: written after the stream's position, they come again.
    sent: HashSet<String>,
    /// The store's signal of record writes, when it has one.
    written: Option<tokio::sync::watch::Receiver<u64>>,
    _slot: StreamSlot,
}

impl std::fmt::Debug for Follow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follow")
            .field("namespace", &self.query.namespace)
            .finish()
    }
}

impl Controller {
    /// Opens a live stream of the records of `ns` (authorized by the caller), of action
    /// `name` only when given; at most [`MAX_STREAMS`] per namespace at once.
    pub async fn follow_activations(
        &self,
        ns: &str,
        name: Option<String>,
        from: FollowFrom,
    ) -> Result<Follow, ControllerError> {
        let slot = {
            let mut open = lock(&self.streams.0);
            let n = open.entry(ns.to_string()).or_insert(0);
            if *n >= MAX_STREAMS {
                return Err(ControllerError::TooManyStreams {
                    allowed: MAX_STREAMS,
                });
            }
            *n += 1;
            StreamSlot {
                streams: self.streams.0.clone(),
                namespace: ns.to_string(),
            }
        };
        let query = ActivationQuery {
            namespace: ns.to_string(),
            name,
            limit: 100,
            ..Default::default()
        };
        // Subscribed before the position is taken: a record written after it wakes the reader.
        let written = self.store.records_written();
        let resumed = match &from.after {
            Some(id) if names::is_activation_id(id) => self.store.write_position_of(ns, id).await?,
            _ => None,
        };
        let mut backlog = VecDeque::new();
        let at = match resumed {
            Some(at) => at,
            None => {
                // The position first: a record written between the two reads comes twice,
                // and the second is dropped by id.
                let at = self.store.write_position().await?;
                if let Some(since) = from.since {
                    let past = ActivationQuery {
                        since: Some(since),
                        limit: BACKLOG,
                        ..query.clone()
                    };
                    // Newest first from the store; sent oldest first.
                    backlog.extend(self.store.list_activations(&past).await?.into_iter().rev());
                }
                at
            }
        };
        let sent = backlog.iter().filter_map(|r| record_id(r)).collect();
        Ok(Follow {
            store: self.store.clone(),
            query,
            at,
            backlog,
            sent,
            written,
            _slot: slot,
        })
    }
}

impl Follow {
    /// The namespace it follows.
    pub fn namespace(&self) -> &str {
        &self.query.namespace
    }

    /// The next records, in the order they were written (the past ones first), each with its
    /// activation id; waits until there is at least one, or `quiet` passes (then none).
    pub async fn next(
        &mut self,
        quiet: Duration,
    ) -> Result<Vec<(String, Box<RawValue>)>, ControllerError> {
        let until = tokio::time::Instant::now() + quiet;
        if !self.backlog.is_empty() {
            return Ok(self
                .backlog
                .drain(..)
                .filter_map(|r| Some((record_id(&r)?, r)))
                .collect());
        }
        loop {
            let (docs, next) = self
                .store
                .activations_written_after(&self.query, &self.at)
                .await?;
            let full = docs.len() as u64 >= self.query.limit;
            self.at = next;
            let fresh: Vec<_> = docs
                .into_iter()
                .filter(|(id, _)| !self.sent.remove(id))
                .collect();
            let now = tokio::time::Instant::now();
            if !fresh.is_empty() || now >= until {
                return Ok(fresh);
            }
            if !full {
                match &mut self.written {
                    Some(signal) => {
                        let wake = until.min(now + SIGNALLED_POLL);
                        // A closed signal (the store is gone) is a plain timeout.
                        let _ = tokio::time::timeout_at(wake, signal.changed()).await;
                        tokio::time::sleep_until(until.min(now + SIGNALLED_GAP)).await;
                    }
                    None => tokio::time::sleep_until(until.min(now + POLL)).await,
                }
            }
        }
    }
}

/// The activation id of a stored record.
fn record_id(record: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(rename = "activationId")]
        activation_id: String,
    }
    serde_json::from_str::<Id>(record.get())
        .ok()
        .map(|r| r.activation_id)
}
