//! Connecting, checking and reading: one message at a time, acknowledged (JetStream) only
//! after the sink returned.

use async_nats::jetstream::{self, AckKind, consumer};
use async_nats::{HeaderMap, ServerError};
use bytes::Bytes;
use futures_util::StreamExt;
use gust_source::{Delivery, Event, Sink, SourceError, put_body};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::config::{Connection, JetStream, Start, Subscribe};
use crate::{ACK_WAIT, CONNECT_TIMEOUT, PREFETCH};

/// Messages a core subscription holds in the client while the sink is busy; past that the
/// client drops them (core NATS delivers at most once).
const SUBSCRIPTION_CAPACITY: usize = 1024;
/// Header naming why a message was moved aside.
pub const MOVED_ASIDE_HEADER: &str = "Gust-Moved-Aside";

/// The client's events that end a subscription: the connection lost or closed, a server
/// error (a permission refused).
pub struct Lost(mpsc::Receiver<async_nats::Event>);

impl Lost {
    /// Waits for an event that ends the subscription.
    async fn next(&mut self, url: &str) -> SourceError {
        match self.0.recv().await {
            None | Some(async_nats::Event::Closed) => {
                SourceError::Connection(format!("the connection to NATS at {url} was closed"))
            }
            Some(async_nats::Event::ServerError(ServerError::Other(e)))
                if e.to_lowercase().contains("permissions violation") =>
            {
                SourceError::Config(format!("NATS at {url} refused: {e}"))
            }
            Some(event) => SourceError::Connection(format!(
                "the connection to NATS at {url} was lost ({event})"
            )),
        }
    }
}

/// Connects with [`CONNECT_TIMEOUT`]; the events that end a subscription come through
/// [`Lost`].
pub async fn connect(c: &Connection) -> Result<(async_nats::Client, Lost), SourceError> {
    let (tx, rx) = mpsc::channel(16);
    let mut options = async_nats::ConnectOptions::new()
        .name("gust-source")
        .connection_timeout(CONNECT_TIMEOUT)
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .require_tls(c.tls)
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                match event {
                    async_nats::Event::Disconnected
                    | async_nats::Event::Closed
                    | async_nats::Event::ServerError(ServerError::AuthorizationViolation)
                    | async_nats::Event::ServerError(ServerError::Other(_)) => {
                        let _ = tx.try_send(event);
                    }
                    other => tracing::debug!("NATS: {other}"),
                }
            }
        });
    if let (Some(user), Some(password)) = (&c.user, &c.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &c.token {
        options = options.token(token.clone());
    }
    let url = c.shown();
    let client = tokio::time::timeout(CONNECT_TIMEOUT, options.connect(c.url.as_str()))
        .await
        .map_err(|_| {
            SourceError::Connection(format!(
                "cannot connect to NATS at {url}: no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| SourceError::Connection(format!("cannot connect to NATS at {url}: {e}")))?;
    Ok((client, Lost(rx)))
}

async fn subscriber(
    client: &async_nats::Client,
    c: &Subscribe,
) -> Result<async_nats::Subscriber, SourceError> {
    let subject = c.subject.clone();
    let sub = match &c.queue {
        Some(queue) => client.queue_subscribe(subject, queue.clone()).await,
        None => client.subscribe(subject).await,
    };
    let sub =
        sub.map_err(|e| SourceError::Config(format!("cannot subscribe to '{}': {e}", c.subject)))?;
    // A round trip: the server has the subscription (or has refused it) once this returns.
    client
        .flush()
        .await
        .map_err(|e| SourceError::Connection(format!("NATS at {}: {e}", c.connection.shown())))?;
    Ok(sub)
}

pub async fn check_subscribe(c: &Subscribe) -> Result<(), SourceError> {
    let (client, mut lost) = connect(&c.connection).await?;
    let _sub = subscriber(&client, c).await?;
    // A refused subscription is reported asynchronously, before the flush's answer: give
    // the event a moment to come through.
    let url = c.connection.shown();
    match tokio::time::timeout(std::time::Duration::from_millis(250), lost.next(&url)).await {
        Ok(error) => Err(error),
        Err(_) => Ok(()),
    }
}

pub async fn subscribe(c: &Subscribe, sink: &dyn Sink) -> Result<(), SourceError> {
    let (client, mut lost) = connect(&c.connection).await?;
    let url = c.connection.shown();
    let mut sub = subscriber(&client, c).await?;
    sink.connected(&match &c.queue {
        Some(q) => format!("subscribed to {} in queue group {q} at {url}", c.subject),
        None => format!("subscribed to {} at {url}", c.subject),
    });
    loop {
        let message = tokio::select! {
            error = lost.next(&url) => return Err(error),
            message = sub.next() => message.ok_or_else(|| {
                SourceError::Connection(format!("the subscription at {url} ended"))
            })?,
        };
        let key = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_string());
        let event = Event {
            payload: payload(&message, None),
            key,
        };
        if let Delivery::MoveAside(why) = sink.deliver(event).await {
            if let Some(dead_letter) = &c.dead_letter {
                let headers = moved_aside_headers(message.headers.as_ref(), &why);
                publish_flushed(&client, dead_letter, Some(headers), message.payload.clone())
                    .await?;
            }
            sink.moved_aside(&why);
        }
    }
}

pub async fn check_jetstream(c: &JetStream) -> Result<(), SourceError> {
    let (client, _lost) = connect(&c.connection).await?;
    let js = jetstream::new(client);
    js.get_stream(&c.stream)
        .await
        .map_err(|e| stream_error(&c.stream, &c.connection.shown(), e))?;
    Ok(())
}

pub(crate) fn stream_error(
    stream: &str,
    url: &str,
    e: async_nats::jetstream::context::GetStreamError,
) -> SourceError {
    use async_nats::jetstream::context::GetStreamErrorKind;
    match e.kind() {
        GetStreamErrorKind::JetStream(js)
            if js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND =>
        {
            SourceError::Config(format!("JetStream at {url} has no stream '{stream}'"))
        }
        GetStreamErrorKind::JetStream(_) | GetStreamErrorKind::InvalidStreamName => {
            SourceError::Config(format!("JetStream stream '{stream}' at {url}: {e}"))
        }
        _ => SourceError::Connection(format!(
            "cannot read JetStream stream '{stream}' at {url} (is JetStream enabled?): {e}"
        )),
    }
}

pub async fn jetstream(c: &JetStream, sink: &dyn Sink) -> Result<(), SourceError> {
    let (client, mut lost) = connect(&c.connection).await?;
    let url = c.connection.shown();
    let js = jetstream::new(client.clone());
    let stream = js
        .get_stream(&c.stream)
        .await
        .map_err(|e| stream_error(&c.stream, &url, e))?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &c.consumer,
            consumer::pull::Config {
                durable_name: Some(c.consumer.clone()),
                filter_subject: c.subject.clone().unwrap_or_default(),
                deliver_policy: match c.deliver_policy {
                    Start::All => consumer::DeliverPolicy::All,
                    Start::New => consumer::DeliverPolicy::New,
                    Start::Last => consumer::DeliverPolicy::Last,
                },
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_deliver: i64::try_from(c.max_deliver).unwrap_or(i64::MAX),
                max_ack_pending: PREFETCH as i64,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            SourceError::Config(format!(
                "cannot use consumer '{}' of stream '{}' at {url}: {e}",
                c.consumer, c.stream
            ))
        })?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(PREFETCH)
        .messages()
        .await
        .map_err(|e| SourceError::Connection(format!("cannot pull from '{}': {e}", c.consumer)))?;
    sink.connected(&format!(
        "reading stream {} through consumer {} at {url}",
        c.stream, c.consumer
    ));
    loop {
        let next = tokio::select! {
            error = lost.next(&url) => return Err(error),
            next = messages.next() => next,
        };
        let message = match next {
            None => {
                return Err(SourceError::Connection(format!(
                    "the consumer '{}' at {url} stopped",
                    c.consumer
                )));
            }
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                use consumer::pull::MessagesErrorKind;
                match e.kind() {
                    // Heartbeats late (the sink was busy, or a reconnect): the pull resumes.
                    MessagesErrorKind::MissingHeartbeat => {
                        tracing::debug!("JetStream consumer {}: {e}", c.consumer);
                        continue;
                    }
                    _ => {
                        return Err(SourceError::Connection(format!(
                            "consumer '{}' of stream '{}' at {url}: {e}",
                            c.consumer, c.stream
                        )));
                    }
                }
            }
        };
        let info = message.info().map_err(|e| {
            SourceError::Connection(format!("a JetStream message without its metadata: {e}"))
        })?;
        let (stream_name, sequence, delivered) = (
            info.stream.to_string(),
            info.stream_sequence,
            info.delivered,
        );
        let mut extra = Map::new();
        extra.insert("stream".into(), stream_name.clone().into());
        extra.insert("sequence".into(), sequence.into());
        extra.insert("delivered".into(), delivered.into());
        let event = Event {
            payload: payload(&message.message, Some(extra)),
            key: Some(format!("{stream_name}:{sequence}")),
        };
        let acked = match sink.deliver(event).await {
            Delivery::Accepted => message.double_ack().await,
            Delivery::MoveAside(why) => {
                if let Some(dead_letter) = &c.dead_letter {
                    let headers = moved_aside_headers(message.headers.as_ref(), &why);
                    publish_flushed(&client, dead_letter, Some(headers), message.payload.clone())
                        .await?;
                }
                let acked = message.double_ack_with(AckKind::Term).await;
                if acked.is_ok() {
                    sink.moved_aside(&why);
                }
                acked
            }
        };
        acked.map_err(|e| {
            SourceError::Connection(format!("cannot acknowledge a message at {url}: {e}"))
        })?;
    }
}

/// Publishes and waits until the server has the message.
pub async fn publish_flushed(
    client: &async_nats::Client,
    subject: &str,
    headers: Option<HeaderMap>,
    body: Bytes,
) -> Result<(), SourceError> {
    let subject = subject.to_string();
    let sent = match headers {
        Some(h) => client.publish_with_headers(subject.clone(), h, body).await,
        None => client.publish(subject.clone(), body).await,
    };
    sent.map_err(|e| SourceError::Connection(format!("cannot publish to '{subject}': {e}")))?;
    tokio::time::timeout(CONNECT_TIMEOUT, client.flush())
        .await
        .map_err(|_| SourceError::Connection(format!("publishing to '{subject}': no answer")))?
        .map_err(|e| SourceError::Connection(format!("cannot publish to '{subject}': {e}")))
}

fn moved_aside_headers(original: Option<&HeaderMap>, why: &str) -> HeaderMap {
    let mut headers = original.cloned().unwrap_or_default();
    // A header value is one line.
    let why: String = why
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    headers.insert(MOVED_ASIDE_HEADER, why.as_str());
    headers
}

/// `{subject, headers?, data | data_base64}` and `extra` (JetStream's metadata).
pub(crate) fn payload(
    message: &async_nats::Message,
    extra: Option<Map<String, Value>>,
) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("subject".into(), message.subject.as_str().into());
    if let Some(headers) = message.headers.as_ref().filter(|h| !h.is_empty()) {
        let mut shown = Map::new();
        for (name, values) in headers.iter() {
            let value = match values.as_slice() {
                [one] => Value::String(one.as_str().to_string()),
                many => Value::Array(
                    many.iter()
                        .map(|v| Value::String(v.as_str().to_string()))
                        .collect(),
                ),
            };
            shown.insert(name.to_string(), value);
        }
        payload.insert("headers".into(), Value::Object(shown));
    }
    put_body(&mut payload, &message.payload);
    if let Some(extra) = extra {
        payload.extend(extra);
    }
    payload
}
