//! Checking, reading and publishing. The event loop is polled all the time (keep-alive,
//! acknowledgements) by a pump beside the loop that hands messages to the sink one at a
//! time; both live in the run's future, so dropping it closes the connection with whatever
//! was not yet acknowledged still unacknowledged.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use gust_source::{Delivery, Event, Sink, SourceError, put_body};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::client::{self, CONNECT_TIMEOUT, Client, EventLoop, Message, Packet};
use crate::config::{Broker, Output, Subscribe};

/// QoS 0 messages held while the sink is busy; past that they are dropped (QoS 0 is at
/// most once). QoS 1 messages are bounded by the broker's in-flight window, since each is
/// acknowledged only once the sink took it.
const QOS0_BACKLOG: usize = 1024;
/// The MQTT 5 user property that names a message's id (its de-duplication key), and the
/// one that says why a message was moved aside.
pub const MESSAGE_ID_PROPERTY: &str = "message-id";
pub const MOVED_ASIDE_PROPERTY: &str = "gust-moved-aside";

/// A client id for a connection that keeps no session.
fn random_client_id(prefix: &str) -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{prefix}{:016x}", h.finish())
}

/// Messages and the answers to this client's own requests, out of the event loop.
struct Pumped {
    messages: mpsc::UnboundedReceiver<Message>,
    answers: mpsc::UnboundedReceiver<Packet>,
    queued: Arc<AtomicUsize>,
}

/// Polls the event loop until the connection fails; returns why.
async fn pump(
    mut events: EventLoop,
    broker: &Broker,
    messages: mpsc::UnboundedSender<Message>,
    answers: mpsc::UnboundedSender<Packet>,
    queued: Arc<AtomicUsize>,
) -> SourceError {
    let mut dropped: u64 = 0;
    loop {
        match events.poll(broker).await {
            Ok(Packet::Message(m)) => {
                if m.qos == 0 && queued.load(Ordering::SeqCst) >= QOS0_BACKLOG {
                    dropped += 1;
                    if dropped.is_power_of_two() {
                        tracing::warn!(
                            "MQTT {}: {dropped} QoS 0 messages dropped while the sink was busy",
                            broker.shown()
                        );
                    }
                    continue;
                }
                queued.fetch_add(1, Ordering::SeqCst);
                let _ = messages.send(m);
            }
            Ok(Packet::Other) => {}
            Ok(answer) => {
                let _ = answers.send(answer);
            }
            Err(e) => return e,
        }
    }
}

/// Connects and subscribes, runs `body` with the pumped packets beside the pump; returns
/// `body`'s result or why the connection failed.
async fn connected<F, Fut>(
    broker: &Broker,
    client_id: String,
    keep_session: bool,
    body: F,
) -> Result<(), SourceError>
where
    F: FnOnce(Client, Pumped) -> Fut,
    Fut: Future<Output = Result<(), SourceError>>,
{
    let (client, events) = client::new(broker, client_id, keep_session)?;
    let (m_tx, m_rx) = mpsc::unbounded_channel();
    let (a_tx, a_rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let pumped = Pumped {
        messages: m_rx,
        answers: a_rx,
        queued: queued.clone(),
    };
    tokio::select! {
        e = pump(events, broker, m_tx, a_tx, queued) => Err(e),
        r = body(client, pumped) => r,
    }
}

/// Waits for the subscription's answer.
async fn subscribed(
    client: &Client,
    pumped: &mut Pumped,
    c: &Subscribe,
) -> Result<(), SourceError> {
    client.subscribe(&c.topic, c.qos).await?;
    loop {
        match pumped.answers.recv().await {
            Some(Packet::SubAck(Ok(()))) => return Ok(()),
            Some(Packet::SubAck(Err(why))) => {
                return Err(SourceError::Config(format!(
                    "cannot subscribe to '{}' at {}: {why}",
                    c.topic,
                    c.broker.shown()
                )));
            }
            Some(_) => {}
            None => return Err(SourceError::Connection("the MQTT client stopped".into())),
        }
    }
}

pub async fn check(c: &Subscribe) -> Result<(), SourceError> {
    // A client id of its own and no session: a running subscription with a fixed client id
    // is not taken over, and nothing is left at the broker.
    let attempt = connected(
        &c.broker,
        random_client_id("gust-check-"),
        false,
        |client, mut pumped| async move {
            subscribed(&client, &mut pumped, c).await?;
            client.disconnect().await;
            Ok(())
        },
    );
    tokio::time::timeout(2 * CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(SourceError::Connection(format!(
                "the MQTT broker at {} did not answer",
                c.broker.shown()
            )))
        })
}

pub async fn subscribe(c: &Subscribe, sink: &dyn Sink) -> Result<(), SourceError> {
    let (client_id, keep_session) = match &c.client_id {
        Some(id) => (id.clone(), true),
        None => (random_client_id("gust-"), false),
    };
    connected(
        &c.broker,
        client_id.clone(),
        keep_session,
        |client, mut pumped| async move {
            subscribed(&client, &mut pumped, c).await?;
            sink.connected(&format!(
                "subscribed to {} (QoS {}) at {} as {client_id}",
                c.topic,
                c.qos,
                c.broker.shown()
            ));
            while let Some(message) = pumped.messages.recv().await {
                pumped.queued.fetch_sub(1, Ordering::SeqCst);
                let event = Event {
                    key: message
                        .user_properties
                        .iter()
                        .find(|(k, _)| k == MESSAGE_ID_PROPERTY)
                        .map(|(_, v)| v.clone()),
                    payload: payload(&message),
                };
                if let Delivery::MoveAside(why) = sink.deliver(event).await {
                    if let Some(dead_letter) = &c.dead_letter {
                        client
                            .publish(
                                dead_letter,
                                1,
                                false,
                                message.payload.clone(),
                                Some((MOVED_ASIDE_PROPERTY, &why)),
                            )
                            .await?;
                        published(&mut pumped, 1).await?;
                    }
                    client.ack(&message).await?;
                    sink.moved_aside(&why);
                } else {
                    client.ack(&message).await?;
                }
            }
            Err(SourceError::Connection("the MQTT client stopped".into()))
        },
    )
    .await
}

/// Waits until the broker has this client's last publish (QoS 1), or it was written out
/// (QoS 0).
async fn published(pumped: &mut Pumped, qos: u8) -> Result<(), SourceError> {
    loop {
        match pumped.answers.recv().await {
            Some(Packet::PubAck) if qos == 1 => return Ok(()),
            Some(Packet::Sent) if qos == 0 => return Ok(()),
            Some(_) => {}
            None => return Err(SourceError::Connection("the MQTT client stopped".into())),
        }
    }
}

/// Connects, publishes, waits for the broker to have it and disconnects.
pub async fn publish(o: &Output, body: Bytes) -> Result<(), SourceError> {
    let attempt = async {
        let (client, mut events) = client::new(&o.broker, random_client_id("gust-out-"), false)?;
        client
            .publish(&o.topic, o.qos, o.retain, body, None)
            .await?;
        loop {
            match events.poll(&o.broker).await? {
                Packet::PubAck if o.qos == 1 => break,
                Packet::Sent if o.qos == 0 => break,
                _ => {}
            }
        }
        client.disconnect().await;
        // The broker closes the connection on DISCONNECT: an error here is the end.
        while let Ok(packet) = events.poll(&o.broker).await {
            if matches!(packet, Packet::Disconnected) {
                break;
            }
        }
        Ok(())
    };
    tokio::time::timeout(2 * CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(SourceError::Connection(format!(
                "publishing to '{}' at {}: no answer",
                o.topic,
                o.broker.shown()
            )))
        })
}

/// `{topic, qos, retain, data | data_base64, userProperties?, contentType?}`.
fn payload(m: &Message) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("topic".into(), m.topic.clone().into());
    payload.insert("qos".into(), m.qos.into());
    payload.insert("retain".into(), m.retain.into());
    put_body(&mut payload, &m.payload);
    if !m.user_properties.is_empty() {
        let mut props = Map::new();
        for (k, v) in &m.user_properties {
            // A repeated name keeps its first value.
            props.entry(k.clone()).or_insert_with(|| v.clone().into());
        }
        payload.insert("userProperties".into(), Value::Object(props));
    }
    if let Some(ct) = &m.content_type {
        payload.insert("contentType".into(), ct.clone().into());
    }
    payload
}
