//! The in-process bus of `gust serve`: one unbounded queue per subject. Messages are already
//! serialized when they get here, exactly as they would be for NATS. Nothing is redelivered
//! (the process that would redeliver is the one that died); durability of accepted
//! invocations comes from the store's journal instead.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{Bus, BusError, Delivery, Subscription};

#[derive(Debug, Default)]
pub struct MemoryBus {
    subjects: Mutex<HashMap<String, mpsc::UnboundedSender<Bytes>>>,
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
        let subjects = self.subjects.lock().map_err(|_| BusError::Closed)?;
        let tx = subjects
            .get(subject)
            .ok_or_else(|| BusError::NoSubscriber(subject.to_string()))?;
        tx.send(payload).map_err(|_| BusError::Closed)
    }

    /// Subscribing again to a subject replaces the earlier subscriber.
    async fn subscribe(&self, subject: &str) -> Result<Box<dyn Subscription>, BusError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subjects
            .lock()
            .map_err(|_| BusError::Closed)?
            .insert(subject.to_string(), tx);
        Ok(Box::new(MemorySubscription(rx)))
    }
}

#[cfg(test)]
mod tests {
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
}
