//! The in-process bus of `gust serve`: one unbounded queue per subject. Messages are already
//! serialized when they get here, exactly as they would be for NATS. Nothing is redelivered
//! (the process that would redeliver is the one that died); durability of accepted
//! invocations comes from the store's journal instead.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{Bus, BusError, Delivery, Handler, Subscription};

/// Who takes a subject's messages.
enum Consumer {
    Queue(mpsc::UnboundedSender<Bytes>),
    Handler(Handler),
}

#[derive(Default)]
pub struct MemoryBus {
    subjects: Mutex<HashMap<String, Consumer>>,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus").finish_non_exhaustive()
    }
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }
}

struct MemorySubscription(mpsc::UnboundedReceiver<Bytes>);

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<Delivery> {
        self.0.recv().await.map(|p| Delivery::new(p, None))
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        let handler = {
            let subjects = self.subjects.lock().map_err(|_| BusError::Closed)?;
            match subjects.get(subject) {
                None => return Err(BusError::NoSubscriber(subject.to_string())),
                Some(Consumer::Queue(tx)) => {
                    return tx.send(payload).map_err(|_| BusError::Closed);
                }
                Some(Consumer::Handler(h)) => h.clone(),
            }
        };
        handler(Delivery::new(payload, None))
    }

    /// Subscribing again to a subject replaces the earlier consumer.
    async fn subscribe(&self, subject: &str) -> Result<Box<dyn Subscription>, BusError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subjects
            .lock()
            .map_err(|_| BusError::Closed)?
            .insert(subject.to_string(), Consumer::Queue(tx));
        Ok(Box::new(MemorySubscription(rx)))
    }

    /// The handler runs inside `publish`, on the publisher's task.
    async fn consume(&self, subject: &str, handler: Handler) -> Result<(), BusError> {
        self.subjects
            .lock()
            .map_err(|_| BusError::Closed)?
            .insert(subject.to_string(), Consumer::Handler(handler));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn delivers_in_order_and_refuses_unknown_subjects() {
        let bus = MemoryBus::new();
        let mut sub = bus.subscribe("a").await.unwrap();
        bus.publish("a", Bytes::from_static(b"1")).await.unwrap();
        bus.publish("a", Bytes::from_static(b"2")).await.unwrap();
        assert_eq!(sub.next().await.unwrap().payload, "1");
        assert_eq!(sub.next().await.unwrap().payload, "2");
        assert!(matches!(
            bus.publish("b", Bytes::new()).await,
            Err(BusError::NoSubscriber(_))
        ));
    }

    #[tokio::test]
    async fn a_handler_takes_deliveries_inside_publish() {
        let bus = MemoryBus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let taken = seen.clone();
        let handler: Handler = Arc::new(move |d: Delivery| {
            let mut seen = taken.lock().unwrap();
            if seen.len() == 2 {
                return Err(BusError::Closed);
            }
            seen.push(d.payload);
            Ok(())
        });
        bus.consume("a", handler).await.unwrap();
        bus.publish("a", Bytes::from_static(b"1")).await.unwrap();
        bus.publish("a", Bytes::from_static(b"2")).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["1", "2"]);
        assert!(matches!(
            bus.publish("a", Bytes::from_static(b"3")).await,
            Err(BusError::Closed)
        ));
    }
}
