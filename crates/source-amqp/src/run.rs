//! Connecting, checking, consuming and publishing. Dropping a run drops its connection,
//! which closes it: RabbitMQ puts whatever it had delivered but not been acknowledged back
//! in the queue.

use std::time::Duration;

use futures_util::StreamExt;
use gust_source::{Delivery, Event, Sink, SourceError, base64_text, put_body};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::AMQPErrorKind;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind};
use serde_json::{Map, Value};

use crate::config::{Broker, Consume, Output};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The header that says why a message was moved aside.
pub const MOVED_ASIDE_HEADER: &str = "x-gust-moved-aside";

async fn connect(broker: &Broker) -> Result<Connection, SourceError> {
    let shown = broker.shown();
    let properties = ConnectionProperties::default().with_connection_name("gust-source".into());
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(&broker.url, properties),
    )
    .await
    .map_err(|_| {
        SourceError::Connection(format!(
            "cannot connect to AMQP at {shown}: no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))
    })?
    .map_err(|e| {
        SourceError::Connection(format!(
            "cannot connect to AMQP at {shown}: {}",
            explain(&e)
        ))
    })
}

/// A lapin error in words, the broker's own where it sent some.
fn explain(e: &lapin::Error) -> String {
    match e.kind() {
        ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Hard(lapin::protocol::AMQPHardError::CONNECTIONFORCED) => {
                format!("the broker closed the connection ({})", amqp.get_message())
            }
            _ => amqp.get_message().to_string(),
        },
        _ => e.to_string(),
    }
}

/// Whether the broker refused an operation (a missing queue or exchange, a queue declared
/// with other arguments, no permission) rather than the connection failing.
fn refused(e: &lapin::Error) -> bool {
    matches!(e.kind(), ErrorKind::ProtocolError(a) if matches!(a.kind(), AMQPErrorKind::Soft(_)))
}

fn setup_error(what: String, e: &lapin::Error) -> SourceError {
    if refused(e) {
        SourceError::Config(format!("{what}: {}", explain(e)))
    } else {
        SourceError::Connection(format!("{what}: {}", explain(e)))
    }
}

async fn channel(connection: &Connection, broker: &Broker) -> Result<Channel, SourceError> {
    connection.create_channel().await.map_err(|e| {
        SourceError::Connection(format!(
            "cannot open a channel at {}: {}",
            broker.shown(),
            explain(&e)
        ))
    })
}

/// The queue as configured: declared or required to exist, bound where asked; the
/// dead-letter queue declared when missing. A refusal closes the channel it happened on, so
/// this works on channels of its own.
async fn prepare(connection: &Connection, c: &Consume) -> Result<(), SourceError> {
    let at = c.broker.shown();
    let scratch = channel(connection, &c.broker).await?;
    let options = if c.declare {
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        }
    } else {
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        }
    };
    scratch
        .queue_declare(c.queue.as_str().into(), options, FieldTable::default())
        .await
        .map_err(|e| {
            let hint = if c.declare {
                ""
            } else {
                " (declare: true creates it)"
            };
            setup_error(format!("queue '{}' at {at}{hint}", c.queue), &e)
        })?;
    if let Some(exchange) = &c.exchange {
        let key = c.routing_key.clone().unwrap_or_default();
        scratch
            .queue_bind(
                c.queue.as_str().into(),
                exchange.as_str().into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                setup_error(
                    format!(
                        "cannot bind queue '{}' to exchange '{exchange}' at {at}",
                        c.queue
                    ),
                    &e,
                )
            })?;
    }
    if let Some(dead) = &c.dead_letter {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if let Err(e) = scratch
            .queue_declare(dead.as_str().into(), passive, FieldTable::default())
            .await
        {
            if !refused(&e) {
                return Err(setup_error(
                    format!("dead-letter queue '{dead}' at {at}"),
                    &e,
                ));
            }
            let declare = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            channel(connection, &c.broker)
                .await?
                .queue_declare(dead.as_str().into(), declare, FieldTable::default())
                .await
                .map_err(|e| {
                    setup_error(
                        format!("cannot declare dead-letter queue '{dead}' at {at}"),
                        &e,
                    )
                })?;
        }
    }
    Ok(())
}

pub async fn check(c: &Consume) -> Result<(), SourceError> {
    let connection = connect(&c.broker).await?;
    let at = c.broker.shown();
    let scratch = channel(&connection, &c.broker).await?;
    if !c.declare {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        scratch
            .queue_declare(c.queue.as_str().into(), passive, FieldTable::default())
            .await
            .map_err(|e| {
                setup_error(
                    format!("queue '{}' at {at} (declare: true creates it)", c.queue),
                    &e,
                )
            })?;
    }
    if let Some(exchange) = &c.exchange {
        scratch
            .exchange_declare(
                exchange.as_str().into(),
                lapin::ExchangeKind::Direct,
                lapin::options::ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| setup_error(format!("exchange '{exchange}' at {at}"), &e))?;
    }
    let _ = connection.close(200, "OK".into()).await;
    Ok(())
}

pub async fn consume(c: &Consume, sink: &dyn Sink) -> Result<(), SourceError> {
    let connection = connect(&c.broker).await?;
    let at = c.broker.shown();
    prepare(&connection, c).await?;
    let channel = channel(&connection, &c.broker).await?;
    let lost = |what: &str, e: lapin::Error| {
        SourceError::Connection(format!("{what} at {at}: {}", explain(&e)))
    };
    channel
        .basic_qos(c.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| lost("cannot set the prefetch", e))?;
    if c.dead_letter.is_some() {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| lost("cannot turn on publisher confirms", e))?;
    }
    let mut consumer = channel
        .basic_consume(
            c.queue.as_str().into(),
            consumer_tag().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| setup_error(format!("cannot consume queue '{}' at {at}", c.queue), &e))?;
    sink.connected(&format!("consuming queue {} at {at}", c.queue));
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.map_err(|e| lost("the consumer stopped", e))?;
        let event = Event {
            key: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.to_string()),
            payload: payload(&delivery),
        };
        match sink.deliver(event).await {
            Delivery::Accepted => {
                delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(|e| lost("cannot acknowledge", e))?;
            }
            Delivery::MoveAside(why) => {
                if let Some(dead) = &c.dead_letter {
                    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
                    headers.insert(
                        MOVED_ASIDE_HEADER.into(),
                        AMQPValue::LongString(why.as_str().into()),
                    );
                    let properties = delivery.properties.clone().with_headers(headers);
                    publish_confirmed(&channel, "", dead, &delivery.data, properties)
                        .await
                        .map_err(|e| SourceError::Connection(format!("{e} at {at}")))?;
                }
                // Rejected without requeueing: RabbitMQ dead-letters it where the queue has a
                // dead-letter exchange.
                delivery
                    .nack(BasicNackOptions {
                        requeue: false,
                        multiple: false,
                    })
                    .await
                    .map_err(|e| lost("cannot reject", e))?;
                sink.moved_aside(&why);
            }
        }
    }
    Err(SourceError::Connection(format!(
        "the consumer of queue '{}' at {at} was cancelled or its connection closed",
        c.queue
    )))
}

fn consumer_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("gust-{nanos:x}")
}

/// Publishes (mandatory: a message no queue takes is an error) and waits for the broker's
/// confirm; the channel is in confirm mode.
async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), String> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties,
        )
        .await
        .map_err(|e| format!("cannot publish to '{routing_key}': {}", explain(&e)))?;
    match confirm.await {
        Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => Ok(()),
        Ok(Confirmation::Ack(Some(_))) | Ok(Confirmation::Nack(Some(_))) => Err(format!(
            "no queue takes messages to exchange '{exchange}' with routing key '{routing_key}'"
        )),
        Ok(Confirmation::Nack(None)) => {
            Err(format!("the broker refused the message to '{routing_key}'"))
        }
        Err(e) => Err(format!("publishing to '{routing_key}': {}", explain(&e))),
    }
}

/// Connects, publishes with a confirm, closes.
pub async fn publish(o: &Output, body: &[u8]) -> Result<(), SourceError> {
    let connection = connect(&o.broker).await?;
    let at = o.broker.shown();
    let channel = channel(&connection, &o.broker).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| SourceError::Connection(format!("at {at}: {}", explain(&e))))?;
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(if o.persistent { 2 } else { 1 });
    let sent = publish_confirmed(&channel, &o.exchange, &o.routing_key, body, properties).await;
    let _ = connection.close(200, "OK".into()).await;
    sent.map_err(|e| SourceError::Connection(format!("{e} at {at}")))
}

/// `{exchange, routingKey, redelivered, messageId?, correlationId?, contentType?, headers?,
/// data | data_base64}`.
fn payload(d: &lapin::message::Delivery) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("exchange".into(), d.exchange.as_str().into());
    payload.insert("routingKey".into(), d.routing_key.as_str().into());
    payload.insert("redelivered".into(), d.redelivered.into());
    let p = &d.properties;
    let mut text = |name: &str, v: &Option<ShortString>| {
        if let Some(v) = v {
            payload.insert(name.into(), v.as_str().into());
        }
    };
    text("messageId", p.message_id());
    text("correlationId", p.correlation_id());
    text("contentType", p.content_type());
    if let Some(headers) = p.headers().as_ref().filter(|h| !h.inner().is_empty()) {
        payload.insert("headers".into(), table(headers));
    }
    put_body(&mut payload, &d.data);
    payload
}

fn table(t: &FieldTable) -> Value {
    Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.to_string(), value(v)))
            .collect(),
    )
}

/// A header value as JSON: numbers, text (or base64 when not UTF-8), arrays and tables.
fn value(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => (*b).into(),
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => (*n).into(),
        AMQPValue::Timestamp(n) => (*n).into(),
        AMQPValue::Float(f) => (*f).into(),
        AMQPValue::Double(f) => (*f).into(),
        AMQPValue::DecimalValue(d) => (f64::from(d.value) / 10f64.powi(i32::from(d.scale))).into(),
        AMQPValue::ShortString(s) => s.as_str().into(),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(text) => text.into(),
            Err(_) => base64_text(s.as_bytes()).into(),
        },
        AMQPValue::ByteArray(b) => base64_text(b.as_slice()).into(),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value).collect()),
        AMQPValue::FieldTable(t) => table(t),
        AMQPValue::Void => Value::Null,
    }
}
