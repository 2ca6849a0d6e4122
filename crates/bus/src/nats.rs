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

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::{Ack, Bus, BusError, Delivery, INVOKE_PREFIX, Subscription};

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
        if cluster.is_empty()
            || !cluster
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(BusError::Backend(format!(
                "cluster name '{cluster}': use letters, digits, '-' and '_'"
            )));
        }
        let client = async_nats::ConnectOptions::new()
            .name(format!("gust-{cluster}"))
            .connect(url)
            .await
            .map_err(|e| backend(&format!("cannot connect to NATS at {url}"), e))?;
        let js = jetstream::new(client.clone());
        js.get_or_create_stream(stream::Config {
            name: invoke_stream(cluster),
            subjects: vec![format!("{cluster}.{INVOKE_PREFIX}>")],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(|e| backend("cannot create the invocation stream", e))?;
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
}

enum NatsSubscription {
    Kept(Box<consumer::pull::Stream>),
    Core(async_nats::Subscriber),
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        match self {
            NatsSubscription::Core(sub) => sub.next().await.map(|m| Delivery::new(m.payload, None)),
            NatsSubscription::Kept(messages) => loop {
                match messages.next().await? {
                    Ok(message) => {
                        let attempt = message.info().map_or(1, |i| i.delivered.max(1) as u64);
                        let (message, acker) = message.split();
                        return Some(
                            Delivery::new(message.payload, Some(Box::new(NatsAck(acker))))
                                .with_attempt(attempt, attempt >= MAX_DELIVER as u64),
                        );
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
        let stream = self
            .js
            .get_stream(invoke_stream(&self.cluster))
            .await
            .map_err(|e| backend("cannot open the invocation stream", e))?;
        let name = subject.replace(['.', '*', '>'], "-");
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
            .messages()
            .await
            .map_err(|e| backend("cannot pull invocations", e))?;
        Ok(Box::new(NatsSubscription::Kept(Box::new(messages))))
    }
}
