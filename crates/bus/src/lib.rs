//! The bus: invocation and completion messages between controllers and invokers. One
//! interface ([`Bus`]), one module per backend. Payloads are bytes (the serialized messages of
//! `gust_model::message`), so every backend carries exactly the same wire format.
//!
//! **Invariant:** a subject has queue semantics: each message published on it is delivered to
//! one subscriber (except [`HEALTH_SUBJECT`], which is broadcast). A delivery that is not acknowledged may be delivered again (at-least-once);
//! consumers deduplicate by activation id.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod memory;
pub mod nats;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

/// Bus failures; all are caused by the host (a broker down, a process stopping).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("no subscriber for subject '{0}'")]
    NoSubscriber(String),
    #[error("the bus is closed")]
    Closed,
    #[error("bus failure: {0}")]
    Backend(String),
}

/// Acknowledges one delivery: the consumer has finished with it for good.
#[async_trait]
pub trait Ack: Send {
    async fn ack(self: Box<Self>) -> Result<(), BusError>;

    /// Hands the delivery back unfinished: the backend delivers it again soon (after a short
    /// delay, so it does not bounce straight back to a taker that is stopping), to whoever
    /// takes the subject next.
    async fn nak(self: Box<Self>) -> Result<(), BusError> {
        Ok(())
    }
}

/// One message taken from a subject.
pub struct Delivery {
    pub payload: Bytes,
    /// 1 for the first delivery of a message, more when it is delivered again.
    pub attempt: u64,
    /// The backend will not deliver this message again, acknowledged or not.
    pub last_attempt: bool,
    ack: Option<Box<dyn Ack>>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("len", &self.payload.len())
            .finish()
    }
}

impl Delivery {
    pub fn new(payload: Bytes, ack: Option<Box<dyn Ack>>) -> Self {
        Delivery {
            payload,
            attempt: 1,
            last_attempt: false,
            ack,
        }
    }

    /// Marks this as delivery number `attempt` of its message, and whether it is the last
    /// one the backend makes.
    pub fn with_attempt(mut self, attempt: u64, last: bool) -> Self {
        self.attempt = attempt;
        self.last_attempt = last;
        self
    }

    /// Whether acknowledging means anything (false on backends without redelivery).
    pub fn has_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Acknowledges the delivery; a no-op on backends without redelivery.
    pub async fn ack(self) -> Result<(), BusError> {
        match self.ack {
            Some(a) => a.ack().await,
            None => Ok(()),
        }
    }

    /// Hands the delivery back without working on it (the consumer is stopping); a no-op on
    /// backends without redelivery.
    pub async fn nak(self) -> Result<(), BusError> {
        match self.ack {
            Some(a) => a.nak().await,
            None => Ok(()),
        }
    }
}

/// A stream of deliveries from one subject.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery, or `None` when the bus closed.
    async fn next(&mut self) -> Option<Delivery>;
}

/// Takes one delivery and must not block: it starts the work (spawns a task) and returns.
/// An error means the consumer takes no more work (it is stopping); it should hand the
/// delivery back ([`Delivery::nak`]) so a backend with redelivery hands it out again at once.
pub type Handler = Arc<dyn Fn(Delivery) -> Result<(), BusError> + Send + Sync>;

/// The bus interface every backend implements.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError>;

    /// Publishes a message known by `id` (an activation id): a backend that keeps messages
    /// drops a second message with the same id published within its duplicate window.
    async fn publish_with_id(
        &self,
        subject: &str,
        id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        let _ = id;
        self.publish(subject, payload).await
    }
    async fn subscribe(&self, subject: &str) -> Result<Box<dyn Subscription>, BusError>;

    /// Subscribes to an invocation subject whose earlier taker is gone (it died, or this is
    /// its restart): what it held unacknowledged is delivered again at once instead of after
    /// the ack wait. Deliveries that may have reached the earlier taker are marked with an
    /// attempt of at least 2. By default the same as [`Bus::subscribe`].
    async fn take_over(&self, subject: &str) -> Result<Box<dyn Subscription>, BusError> {
        self.subscribe(subject).await
    }

    /// The invokers that have a queue of invocations on the bus, alive or not (a backend
    /// whose queues die with their process has none to report).
    async fn invoker_queues(&self) -> Result<Vec<String>, BusError> {
        Ok(Vec::new())
    }

    /// Hands every delivery of `subject` to `handler`. By default a task takes them from a
    /// subscription one by one (see [`pump`]); the in-process bus calls the handler directly
    /// from `publish`, which saves a task wake-up per message.
    async fn consume(&self, subject: &str, handler: Handler) -> Result<(), BusError> {
        let sub = self.subscribe(subject).await?;
        let (keep, mut stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            pump(sub, &handler, &mut stop).await;
            drop(keep);
        });
        Ok(())
    }
}

/// How long [`pump`] waits for more buffered deliveries to hand back when it stops.
const HAND_BACK_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
/// Most deliveries [`pump`] hands back when it stops: about what a subscription buffers.
const HAND_BACK_MAX: usize = 128;

/// Hands the deliveries of `sub` to `handler` until the handler refuses one (it hands that one
/// back itself), `stop` turns true, or the subscription ends. Then it hands back (nak) what
/// the subscription had already taken from the backend, at most [`HAND_BACK_MAX`], so they
/// go to another taker soon instead of after the ack wait; the subscription is dropped after,
/// so what it would pull next stays in the backend. Returns true if the subscription ended by
/// itself.
pub async fn pump(
    mut sub: Box<dyn Subscription>,
    handler: &Handler,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    loop {
        let next = tokio::select! {
            next = sub.next() => next,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(delivery) = next else { return true };
        if handler(delivery).is_err() {
            break;
        }
    }
    for _ in 0..HAND_BACK_MAX {
        let Ok(Some(delivery)) = tokio::time::timeout(HAND_BACK_WAIT, sub.next()).await else {
            break;
        };
        if let Err(e) = delivery.nak().await {
            tracing::debug!(error = %e, "cannot hand a delivery back");
        }
    }
    false
}

/// Subject an invoker takes its invocations from. Backends that share a broker between
/// clusters put the cluster's name in front.
pub fn invoke_subject(invoker: &str) -> String {
    format!("{INVOKE_PREFIX}{invoker}")
}

/// Subject a controller takes its completions from.
pub fn completion_subject(controller: &str) -> String {
    format!("completed.{controller}")
}

/// Subject where an invoker puts a copy of each invocation it gave up on (delivered as often
/// as the bus allows without a record), for operators to inspect.
pub fn dead_letter_subject(invoker: &str) -> String {
    format!("dead.{invoker}")
}

/// What every invocation subject starts with.
pub const INVOKE_PREFIX: &str = "invoke.";

/// Subject of invokers' heartbeats (`gust_model::message::InvokerHealth`). Unlike the other
/// subjects it is broadcast: every subscriber gets every heartbeat.
pub const HEALTH_SUBJECT: &str = "health";

/// Whether `id` can name an invoker or controller: letters, digits, `-` and `_` (it becomes
/// part of subjects and consumer names).
pub fn valid_member_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
