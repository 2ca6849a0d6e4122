//! The bus: invocation and completion messages between controllers and invokers. One
//! interface ([`Bus`]), one module per backend. Payloads are bytes (the serialized messages of
//! `gust_model::message`), so every backend carries exactly the same wire format.
//!
//! **Invariant:** a subject has queue semantics: each message published on it is delivered to
//! one subscriber. A delivery that is not acknowledged may be delivered again (at-least-once);
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
}

/// A stream of deliveries from one subject.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery, or `None` when the bus closed.
    async fn next(&mut self) -> Option<Delivery>;
}

/// Takes one delivery and must not block: it starts the work (spawns a task) and returns.
/// An error means the consumer takes no more work (it is stopping); the delivery is not
/// acknowledged, so a backend with redelivery hands it out again.
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

    /// Hands every delivery of `subject` to `handler`. By default a task takes them from a
    /// subscription one by one; the in-process bus calls the handler directly from
    /// `publish`, which saves a task wake-up per message.
    async fn consume(&self, subject: &str, handler: Handler) -> Result<(), BusError> {
        let mut sub = self.subscribe(subject).await?;
        tokio::spawn(async move {
            while let Some(delivery) = sub.next().await {
                if handler(delivery).is_err() {
                    break;
                }
            }
        });
        Ok(())
    }
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
