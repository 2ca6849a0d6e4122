//! The AMQP source against a real RabbitMQ: run when `GUST_TEST_AMQP_URL` is set
//! (`amqp://guest:guest@127.0.0.1:5672/%2f`), each test on queues of its own, deleted at its
//! end; skipped, and said so, otherwise.
#![allow(clippy::unwrap_used)]

use gust_source::testing::{TestSink, config, server_url, start, wait_until};
use gust_source::{Source, SourceError};
use gust_source_amqp::{Amqp, output_config};
use lapin::options::{BasicPublishOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};

fn url() -> Option<String> {
    server_url("GUST_TEST_AMQP_URL")
}

/// Queue names of a test's own, deleted when it ends.
struct Queues {
    url: String,
    names: Vec<String>,
}

impl Queues {
    fn new(url: &str) -> Queues {
        Queues {
            url: url.to_string(),
            names: Vec::new(),
        }
    }

    fn name(&mut self, what: &str) -> String {
        let name = format!("gust-test.{what}.{}", uuid::Uuid::new_v4().simple());
        self.names.push(name.clone());
        name
    }

    async fn delete(self) {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        for name in &self.names {
            let _ = channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
}

/// Publishes with properties the output does not set.
async fn publish_raw(url: &str, queue: &str, body: &[u8], properties: BasicProperties) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    connection.close(200, "OK".into()).await.unwrap();
}

async fn publish(url: &str, queue: &str, body: Value) {
    let output = output_config(&config(json!({"url": url, "routingKey": queue}))).unwrap();
    Amqp.publish(&output, &body).await.unwrap();
}

#[tokio::test]
async fn a_message_fires_with_its_properties_and_message_id() {
    let Some(url) = url() else { return };
    let mut queues = Queues::new(&url);
    let queue = queues.name("fires");
    let sink = TestSink::new();
    let task = start(
        Amqp,
        "consume",
        config(json!({"url": url, "queue": queue, "declare": true})),
        sink.clone(),
    );
    assert!(wait_until(|| sink.connected() > 0).await);
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "tenant".into(),
        lapin::types::AMQPValue::LongString("acme".into()),
    );
    publish_raw(
        &url,
        &queue,
        br#"{"order":7}"#,
        BasicProperties::default()
            .with_message_id("order-7".into())
            .with_headers(headers),
    )
    .await;
    publish(&url, &queue, json!("plain")).await;
    assert!(wait_until(|| sink.events().len() == 2).await);
    let events = sink.events();
    assert_eq!(events[0].key.as_deref(), Some("order-7"));
    assert_eq!(
        Value::Object(events[0].payload.clone()),
        json!({"exchange": "", "routingKey": queue, "redelivered": false, "messageId": "order-7",
               "headers": {"tenant": "acme"}, "data": {"order": 7}})
    );
    assert_eq!(events[1].key, None);
    assert_eq!(events[1].payload["data"], json!("plain"));
    assert_eq!(events[1].payload["contentType"], json!("application/json"));
    task.abort();
    queues.delete().await;
}

#[tokio::test]
async fn a_message_not_yet_fired_when_the_run_stops_goes_back_to_the_queue() {
    let Some(url) = url() else { return };
    let mut queues = Queues::new(&url);
    let queue = queues.name("redelivered");
    let config = config(json!({"url": url, "queue": queue, "declare": true}));
    let held = TestSink::holding();
    let task = start(Amqp, "consume", config.clone(), held.clone());
    assert!(wait_until(|| held.connected() > 0).await);
    publish(&url, &queue, json!({"n": 1})).await;
    assert!(wait_until(|| held.events().len() == 1).await);
    task.abort();
    let _ = task.await;

    let sink = TestSink::new();
    let task = start(Amqp, "consume", config, sink.clone());
    assert!(wait_until(|| !sink.events().is_empty()).await);
    let again = sink.events().remove(0);
    assert_eq!(again.payload["data"], json!({"n": 1}));
    assert_eq!(again.payload["redelivered"], json!(true));
    task.abort();
    queues.delete().await;
}

#[tokio::test]
async fn a_message_moved_aside_goes_to_the_dead_letter_queue() {
    let Some(url) = url() else { return };
    let mut queues = Queues::new(&url);
    let queue = queues.name("poisoned");
    let dead = queues.name("dead");
    let sink = TestSink::moving_aside("poison");
    let task = start(
        Amqp,
        "consume",
        config(json!({"url": url, "queue": queue, "declare": true, "deadLetter": dead})),
        sink.clone(),
    );
    assert!(wait_until(|| sink.connected() > 0).await);
    publish(&url, &queue, json!("poison")).await;
    publish(&url, &queue, json!("fine")).await;
    assert!(wait_until(|| sink.events().len() == 2).await);
    assert_eq!(sink.moved(), vec!["test says poison".to_string()]);

    let dead_sink = TestSink::new();
    let dead_task = start(
        Amqp,
        "consume",
        config(json!({"url": url, "queue": dead})),
        dead_sink.clone(),
    );
    assert!(wait_until(|| dead_sink.events().len() == 1).await);
    let moved = dead_sink.events().remove(0);
    assert_eq!(moved.payload["data"], json!("poison"));
    assert_eq!(
        moved.payload["headers"],
        json!({"x-gust-moved-aside": "test says poison"})
    );
    task.abort();
    dead_task.abort();
    queues.delete().await;
}

#[tokio::test]
async fn check_names_what_is_wrong() {
    let Some(url) = url() else { return };
    let mut queues = Queues::new(&url);
    let missing = queues.name("missing");
    let check = |params: Value| async move { Amqp.check("consume", &config(params)).await };

    match check(json!({"url": "amqp://guest:guest@127.0.0.1:1/%2f", "queue": "q"})).await {
        Err(SourceError::Connection(e)) => {
            assert!(
                e.contains("cannot connect to AMQP at amqp://127.0.0.1:1/%2f"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    // TLS to a plain-text port: the handshake fails, and says where.
    let tls = url.replacen("amqp://", "amqps://", 1);
    match check(json!({"url": tls, "queue": "q"})).await {
        Err(SourceError::Connection(e)) => {
            assert!(e.contains("cannot connect to AMQP at amqps://"), "{e}");
            assert!(!e.contains("guest:guest"), "{e}");
        }
        other => panic!("TLS to a plain port: {other:?}"),
    }
    let wrong = url.replacen("guest:guest@", "guest:not-the-password@", 1);
    assert_ne!(wrong, url, "the test URL should log in as guest:guest");
    match check(json!({"url": wrong, "queue": "q"})).await {
        Err(SourceError::Connection(e)) => {
            assert!(!e.contains("not-the-password"), "{e}");
            assert!(e.contains("cannot connect"), "{e}");
            eprintln!("a wrong password: {e}");
        }
        other => panic!("{other:?}"),
    }
    match check(json!({"url": url, "queue": missing})).await {
        Err(SourceError::Config(e)) => assert!(e.contains("declare: true"), "{e}"),
        other => panic!("{other:?}"),
    }
    match check(
        json!({"url": url, "queue": missing, "declare": true, "exchange": "gust-test-none"}),
    )
    .await
    {
        Err(SourceError::Config(e)) => assert!(e.contains("exchange 'gust-test-none'"), "{e}"),
        other => panic!("{other:?}"),
    }
    check(json!({"url": url, "queue": missing, "declare": true}))
        .await
        .unwrap();
    queues.delete().await;
}

#[tokio::test]
async fn a_queue_bound_to_an_exchange_gets_its_messages() {
    let Some(url) = url() else { return };
    let mut queues = Queues::new(&url);
    let queue = queues.name("bound");
    let sink = TestSink::new();
    let task = start(
        Amqp,
        "consume",
        config(json!({"url": url, "queue": queue, "declare": true,
                      "exchange": "amq.topic", "routingKey": format!("{queue}.#")})),
        sink.clone(),
    );
    assert!(wait_until(|| sink.connected() > 0).await);
    let output = output_config(&config(
        json!({"url": url, "exchange": "amq.topic", "routingKey": format!("{queue}.created")}),
    ))
    .unwrap();
    Amqp.publish(&output, &json!({"id": 3})).await.unwrap();
    assert!(wait_until(|| sink.events().len() == 1).await);
    let event = sink.events().remove(0);
    assert_eq!(event.payload["exchange"], json!("amq.topic"));
    assert_eq!(
        event.payload["routingKey"],
        json!(format!("{queue}.created"))
    );
    // Nothing takes this routing key: the publish says so.
    let nowhere = output_config(&config(
        json!({"url": url, "exchange": "amq.topic", "routingKey": format!("{queue}-nowhere")}),
    ))
    .unwrap();
    assert!(Amqp.publish(&nowhere, &json!(1)).await.is_err());
    task.abort();
    queues.delete().await;
}
