//! The scale-out bus: NATS, with JetStream keeping the invocations.
//!
//! - Invocation subjects (`invoke.<invoker>`) are stored in one JetStream stream per cluster,
//!   `<CLUSTER>_INVOKE`, with work-queue retention: a message stays until an invoker
//!   acknowledges it, which the invoker does only after the activation record is stored. The
//!   activation id is the message id, so the same invocation published twice within the
//!   duplicate window is stored once.
//! - Each invoker takes its subject through a durable pull consumer named after it, with an
//!   ack wait longer than the longest action timeout: a message whose invoker dies unacknowledged
//!   is delivered again (marked with its attempt number) when the ack wait runs out.
//! - Every other subject (completions) is core NATS: fire and forget, because a lost completion
//!   only delays a blocking caller, who then reads the stored record.
//!
//! Subjects on the wire are `<cluster>.<subject>`, so clusters (and tests) can share a server.
//!
//! **Layout (hard to undo: running clusters depend on it):** stream `<CLUSTER>_INVOKE` holds
//! subjects `<cluster>.invoke.>` (work-queue retention, file storage, duplicate window 120 s);
//! the durable pull consumer of `invoke.<invoker>` is named `invoke-<invoker>` (explicit ack,
//! ack wait 330 s, at most 5 deliveries, at most 1024 unacknowledged). Core NATS subjects:
//! `completed.<controller>` (completions), `health` (heartbeats, to every subscriber) and
//! `dead.<invoker>` (a copy of each invocation given up after its last delivery, for
//! operators). Taking a queue over deletes its consumer and creates it again, so whatever the
//! old one held unacknowledged is delivered again at once. Why:
//! `docs/decisions/0006-postgresql-and-nats-for-clusters.md`.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::{Ack, Bus, BusError, Delivery, Handler, INVOKE_PREFIX, Subscription};

/// Tries at creating the invocation stream before a start fails.
const STREAM_ATTEMPTS: u32 = 5;
/// How long the stream remembers message ids to drop duplicates.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long an invoker may hold a message unacknowledged: the longest action timeout (300 s)
/// plus the time to store its record.
pub const ACK_WAIT: Duration = Duration::from_secs(330);
/// Deliveries of one message before JetStream gives up on it.
const MAX_DELIVER: i64 = 5;
/// Messages one invoker holds unacknowledged at once (its backlog beyond that waits in the
/// stream).
const MAX_ACK_PENDING: i64 = 1024;
/// How long a handed-back message waits before it is delivered again.
const NAK_DELAY: Duration = Duration::from_millis(500);
/// Messages one pull request asks for: what an invoker holds in its client-side buffer,
/// handed back (nak) when it stops.
const PULL_BATCH: usize = 64;

#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    cluster: String,
    ack_wait: Duration,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

fn backend(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Backend(format!("{what}: {e}"))
}

/// The JetStream stream that keeps `cluster`'s invocations.
pub fn invoke_stream(cluster: &str) -> String {
    format!("{}_INVOKE", cluster.to_uppercase())
}

impl NatsBus {
    /// Connects to `url` (`nats://host:4222`) and makes sure the cluster's invocation stream
    /// exists. `cluster` (letters, digits, `-`, `_`) names the cluster's subjects and stream.
    pub async fn connect(url: &str, cluster: &str) -> Result<Self, BusError> {
        Self::connect_with_ca(url, cluster, None).await
    }

    /// Connects like [`NatsBus::connect`]; a `tls://` URL requires TLS, with the server's
    /// certificate checked against the system's roots and those of the PEM file `ca`.
    pub async fn connect_with_ca(
        url: &str,
        cluster: &str,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, BusError> {
        if cluster.is_empty()
            || !cluster
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(BusError::Backend(format!(
                "cluster name '{cluster}': use letters, digits, '-' and '_'"
            )));
        }
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("gust-{cluster}"))
            .require_tls(url.starts_with("tls://"));
        if let Some(ca) = ca {
            options = options.add_root_certificates(ca.to_path_buf());
        }
        let client = options
            .connect(url)
            .await
            .map_err(|e| backend(&format!("cannot connect to NATS at {url}"), e))?;
        let js = jetstream::new(client.clone());
        let config = stream::Config {
            name: invoke_stream(cluster),
            subjects: vec![format!("{cluster}.{INVOKE_PREFIX}>")],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        // A creation can fail for a moment on the server's side (nats-server 2.9 removes an
        // account's store folder when its last stream is deleted, racing a creation beside
        // it): tried a few times before the start fails.
        let mut attempt = 1;
        loop {
            match js.get_or_create_stream(config.clone()).await {
                Ok(_) => break,
                Err(e) if attempt < STREAM_ATTEMPTS => {
                    tracing::warn!(attempt, error = %e, "cannot create the invocation stream yet; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                    attempt += 1;
                }
                Err(e) => return Err(backend("cannot create the invocation stream", e)),
            }
        }
        Ok(NatsBus {
            client,
            js,
            cluster: cluster.to_string(),
            ack_wait: ACK_WAIT,
        })
    }

    /// Sets how long a consumer created from now on may hold a message unacknowledged
    /// ([`ACK_WAIT`] by default; tests shorten it).
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    fn wire(&self, subject: &str) -> String {
        format!("{}.{subject}", self.cluster)
    }

    fn kept(subject: &str) -> bool {
        subject.starts_with(INVOKE_PREFIX)
    }

    /// Publishes into the stream and waits until JetStream has stored the message.
    async fn publish_kept(
        &self,
        subject: &str,
        id: Option<&str>,
        payload: Bytes,
    ) -> Result<(), BusError> {
        let mut message = jetstream::message::PublishMessage::build().payload(payload);
        if let Some(id) = id {
            message = message.message_id(id);
        }
        self.js
            .send_publish(self.wire(subject), message)
            .await
            .map_err(|e| backend("cannot publish an invocation", e))?
            .await
            .map_err(|e| backend("JetStream did not store an invocation", e))?;
        Ok(())
    }
}

struct NatsAck(jetstream::message::Acker);

#[async_trait]
impl Ack for NatsAck {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        // Double ack: returns once the server has taken the acknowledgement, so a message
        // acknowledged here is not delivered again.
        self.0
            .double_ack()
            .await
            .map_err(|e| backend("cannot acknowledge", e))
    }

    async fn nak(self: Box<Self>) -> Result<(), BusError> {
        self.0
            .ack_with(jetstream::AckKind::Nak(Some(NAK_DELAY)))
            .await
            .map_err(|e| backend("cannot hand back", e))
    }
}

enum NatsSubscription {
    /// A pull consumer's messages; those stored at or before `replayed` (a stream sequence)
    /// may have been delivered to an earlier taker.
    Kept {
        messages: Box<consumer::pull::Stream>,
        replayed: u64,
    },
    Core(async_nats::Subscriber),
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        match self {
            NatsSubscription::Core(sub) => sub.next().await.map(|m| Delivery::new(m.payload, None)),
            NatsSubscription::Kept { messages, replayed } => loop {
                match messages.next().await? {
                    Ok(message) => {
                        let (delivered, sequence) = message
                            .info()
                            .map_or((1, 0), |i| (i.delivered.max(1) as u64, i.stream_sequence));
                        let attempt = if sequence <= *replayed {
                            delivered.max(2)
                        } else {
                            delivered
                        };
                        let (message, acker) = message.split();
                        return Some(
                            Delivery::new(message.payload, Some(Box::new(NatsAck(acker))))
                                .with_attempt(attempt, delivered >= MAX_DELIVER as u64),
                        );
                    }
                    // Another process took the queue over: this subscription is finished.
                    Err(e) if e.kind() == consumer::pull::MessagesErrorKind::ConsumerDeleted => {
                        return None;
                    }
                    // Heartbeats missed, a reconnect: the stream recovers by itself.
                    Err(e) => tracing::warn!(error = %e, "NATS pull consumer"),
                }
            },
        }
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        if Self::kept(subject) {
            return self.publish_kept(subject, None, payload).await;
        }
        self.client
            .publish(self.wire(subject), payload)
            .await
            .map_err(|e| backend("cannot publish", e))
    }

    async fn publish_with_id(
        &self,
        subject: &str,
        id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        if Self::kept(subject) {
            return self.publish_kept(subject, Some(id), payload).await;
        }
        self.publish(subject, payload).await
    }

    /// An invocation subject is taken through the durable consumer named after it (the same
    /// consumer after a restart, so unacknowledged work comes back); any other subject is a
    /// plain subscription.
    async fn subscribe(&self, subject: &str) -> Result<Box<dyn Subscription>, BusError> {
        if !Self::kept(subject) {
            let sub = self
                .client
                .subscribe(self.wire(subject))
                .await
                .map_err(|e| backend("cannot subscribe", e))?;
            return Ok(Box::new(NatsSubscription::Core(sub)));
        }
        self.pull(subject, false).await
    }

    /// Deletes the subject's consumer first: JetStream keeps a work queue's messages until
    /// they are acknowledged, so the new consumer gets every one the old one held, at once.
    async fn take_over(&self, subject: &str) -> Result<Box<dyn Subscription>, BusError> {
        if !Self::kept(subject) {
            return self.subscribe(subject).await;
        }
        self.pull(subject, true).await
    }

    /// An invocation subject is taken over (its taker is this process now: what an earlier
    /// run of it held comes back at once). If another process takes it over in turn (it
    /// thought this one dead), this one subscribes again and they share it.
    async fn consume(&self, subject: &str, handler: Handler) -> Result<(), BusError> {
        let mut sub = self.take_over(subject).await?;
        let this = self.clone();
        let subject = subject.to_string();
        tokio::spawn(async move {
            let (_keep, mut stop) = tokio::sync::watch::channel(false);
            while crate::pump(sub, &handler, &mut stop).await {
                // Subscribe again until it works: giving up would leave the queue untaken
                // while this process still announces itself.
                let mut wait = Duration::from_millis(500);
                sub = loop {
                    tokio::time::sleep(wait).await;
                    match this.subscribe(&subject).await {
                        Ok(sub) => break sub,
                        Err(e) => {
                            tracing::error!(subject, error = %e, "cannot subscribe again");
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    }
                };
            }
        });
        Ok(())
    }

    /// Invokers with a durable consumer on the invocation stream.
    async fn invoker_queues(&self) -> Result<Vec<String>, BusError> {
        let stream = self.invocations().await?;
        let prefix = consumer_name(INVOKE_PREFIX);
        let names: Vec<String> = stream
            .consumer_names()
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| backend("cannot list the invokers' consumers", e))?;
        Ok(names
            .into_iter()
            .filter_map(|n| n.strip_prefix(&prefix).map(str::to_string))
            .collect())
    }
}

/// The durable consumer's name for an invocation subject (dots are not allowed in names).
fn consumer_name(subject: &str) -> String {
    subject.replace(['.', '*', '>'], "-")
}

impl NatsBus {
    async fn invocations(&self) -> Result<stream::Stream, BusError> {
        self.js
            .get_stream(invoke_stream(&self.cluster))
            .await
            .map_err(|e| backend("cannot open the invocation stream", e))
    }

    /// Pulls an invocation subject through its durable consumer (the same consumer after a
    /// restart, so unacknowledged work comes back); `take_over` replaces the consumer first.
    async fn pull(
        &self,
        subject: &str,
        take_over: bool,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let mut stream = self.invocations().await?;
        let name = consumer_name(subject);
        let mut replayed = 0;
        if take_over {
            // Everything stored so far may have been delivered to the old consumer.
            replayed = stream
                .info()
                .await
                .map_err(|e| backend("cannot read the invocation stream", e))?
                .state
                .last_sequence;
            match stream.delete_consumer(&name).await {
                Ok(_) => {}
                Err(e) if e.to_string().contains("not found") => {}
                Err(e) => return Err(backend("cannot take the queue over", e)),
            }
        }
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.wire(subject),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    max_deliver: MAX_DELIVER,
                    max_ack_pending: MAX_ACK_PENDING,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| backend("cannot create the invoker's consumer", e))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| backend("cannot pull invocations", e))?;
        Ok(Box::new(NatsSubscription::Kept {
            messages: Box::new(messages),
            replayed,
        }))
    }
}
