//! The NATS source against a real server: run when `GUST_TEST_NATS_URL` is set (JetStream
//! enabled), each test on subjects and a stream of its own; skipped, and said so, otherwise.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use gust_source::testing::{TestSink, config, server_url, start, wait_until};
use gust_source::{Source, SourceError};
use gust_source_nats::Nats;
use serde_json::{Value, json};

#[path = "nats/stream.rs"]
mod stream_feed;

fn url() -> Option<String> {
    server_url("GUST_TEST_NATS_URL")
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A stream of its own (subjects `<prefix>.>`), deleted at the test's end.
struct TestStream {
    js: jetstream::Context,
    name: String,
    prefix: String,
}

impl TestStream {
    async fn new(url: &str) -> TestStream {
        let id = unique();
        let js = jetstream::new(async_nats::connect(url).await.unwrap());
        let name = format!("GUST_TEST_{id}");
        let prefix = format!("gust-test.{id}");
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
        TestStream { js, name, prefix }
    }

    async fn publish(&self, subject: &str, body: &'static [u8]) {
        self.js
            .publish(format!("{}.{subject}", self.prefix), body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    async fn consumer_info(&self, name: &str) -> consumer::Info {
        let mut c: consumer::PullConsumer = self
            .js
            .get_consumer_from_stream(name, &self.name)
            .await
            .unwrap();
        c.info().await.unwrap().clone()
    }

    async fn delete(self) {
        let _ = self.js.delete_stream(&self.name).await;
    }
}

#[tokio::test]
async fn a_core_message_fires_with_its_subject_headers_and_id() {
    let Some(url) = url() else { return };
    let subject = format!("gust-test.{}", unique());
    let sink = TestSink::new();
    let task = start(
        Nats::default(),
        "subscribe",
        config(json!({"url": url, "subject": format!("{subject}.>")})),
        sink.clone(),
    );
    assert!(wait_until(|| sink.connected() > 0).await);
    let client = async_nats::connect(&url).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "order-1");
    client
        .publish_with_headers(format!("{subject}.new"), headers, r#"{"id":1}"#.into())
        .await
        .unwrap();
    client
        .publish(format!("{subject}.raw"), vec![0xff, 0x00].into())
        .await
        .unwrap();
    assert!(wait_until(|| sink.events().len() == 2).await);
    let events = sink.events();
    assert_eq!(events[0].key.as_deref(), Some("order-1"));
    assert_eq!(
        Value::Object(events[0].payload.clone()),
        json!({"subject": format!("{subject}.new"), "headers": {"Nats-Msg-Id": "order-1"}, "data": {"id": 1}})
    );
    assert_eq!(events[1].key, None);
    assert_eq!(
        Value::Object(events[1].payload.clone()),
        json!({"subject": format!("{subject}.raw"), "data_base64": "/wA="})
    );
    task.abort();
}

#[tokio::test]
async fn a_core_message_moved_aside_goes_to_the_dead_letter_subject() {
    let Some(url) = url() else { return };
    let subject = format!("gust-test.{}", unique());
    let dead = format!("{subject}-dead");
    let client = async_nats::connect(&url).await.unwrap();
    let mut dead_sub = client.subscribe(dead.clone()).await.unwrap();
    client.flush().await.unwrap();
    let sink = TestSink::moving_aside("poison");
    let task = start(
        Nats::default(),
        "subscribe",
        config(json!({"url": url, "subject": subject, "deadLetter": dead})),
        sink.clone(),
    );
    assert!(wait_until(|| sink.connected() > 0).await);
    client
        .publish(subject.clone(), "poison".into())
        .await
        .unwrap();
    let moved = tokio::time::timeout(Duration::from_secs(10), futures_next(&mut dead_sub))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&moved.payload[..], b"poison");
    let why = moved
        .headers
        .unwrap()
        .get("Gust-Moved-Aside")
        .unwrap()
        .to_string();
    assert_eq!(why, "test says poison");
    assert_eq!(sink.moved(), vec!["test says poison".to_string()]);
    task.abort();
}

async fn futures_next(sub: &mut async_nats::Subscriber) -> Option<async_nats::Message> {
    use futures_util::StreamExt;
    sub.next().await
}

#[tokio::test]
async fn a_jetstream_message_fires_keyed_by_stream_sequence_and_is_acknowledged() {
    let Some(url) = url() else { return };
    let s = TestStream::new(&url).await;
    s.publish("a", br#"{"n":1}"#).await;
    let sink = TestSink::new();
    let task = start(
        Nats::default(),
        "jetstream",
        config(json!({"url": url, "stream": s.name, "consumer": "gust"})),
        sink.clone(),
    );
    assert!(wait_until(|| sink.events().len() == 1).await);
    let event = sink.events().remove(0);
    assert_eq!(event.key, Some(format!("{}:1", s.name)));
    assert_eq!(
        Value::Object(event.payload),
        json!({"subject": format!("{}.a", s.prefix), "data": {"n": 1}, "stream": s.name,
               "sequence": 1, "delivered": 1})
    );
    let mut acked = false;
    for _ in 0..100 {
        let info = s.consumer_info("gust").await;
        if info.ack_floor.stream_sequence == 1 && info.num_ack_pending == 0 {
            acked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(acked, "the message was not acknowledged");
    task.abort();
    s.delete().await;
}

#[tokio::test]
async fn a_jetstream_message_not_yet_fired_when_the_run_stops_is_delivered_again() {
    let Some(url) = url() else { return };
    let s = TestStream::new(&url).await;
    // The consumer exists with a short ack wait; the source uses it as it is.
    s.js.get_stream(&s.name)
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("gust".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    s.publish("a", b"first").await;
    let config = config(json!({"url": url, "stream": s.name, "consumer": "gust"}));
    let held = TestSink::holding();
    let task = start(Nats::default(), "jetstream", config.clone(), held.clone());
    assert!(wait_until(|| held.events().len() == 1).await);
    task.abort();
    let _ = task.await;

    let sink = TestSink::new();
    let task = start(Nats::default(), "jetstream", config, sink.clone());
    assert!(wait_until(|| sink.events().len() == 1).await);
    let again = sink.events().remove(0);
    assert_eq!(again.key, held.events()[0].key);
    assert_eq!(again.payload["delivered"], json!(2));
    task.abort();
    s.delete().await;
}

#[tokio::test]
async fn a_jetstream_message_moved_aside_is_published_and_terminated() {
    let Some(url) = url() else { return };
    let s = TestStream::new(&url).await;
    let dead = format!("gust-test-dead.{}", unique());
    let client = async_nats::connect(&url).await.unwrap();
    let mut dead_sub = client.subscribe(dead.clone()).await.unwrap();
    client.flush().await.unwrap();
    s.publish("a", b"poison").await;
    let sink = TestSink::moving_aside("poison");
    let task = start(
        Nats::default(),
        "jetstream",
        config(json!({"url": url, "stream": s.name, "consumer": "gust", "deadLetter": dead})),
        sink.clone(),
    );
    let moved = tokio::time::timeout(Duration::from_secs(10), futures_next(&mut dead_sub))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&moved.payload[..], b"poison");
    assert!(wait_until(|| sink.moved().len() == 1).await);
    let info = s.consumer_info("gust").await;
    assert_eq!(info.num_ack_pending, 0);
    task.abort();
    s.delete().await;
}

#[tokio::test]
async fn check_names_what_is_wrong() {
    let Some(url) = url() else { return };
    let nats = Nats::default();
    let unreachable = config(json!({"url": "nats://127.0.0.1:1", "subject": "x"}));
    match nats.check("subscribe", &unreachable).await {
        Err(SourceError::Connection(e)) => {
            assert!(
                e.contains("cannot connect to NATS at nats://127.0.0.1:1"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    let missing =
        config(json!({"url": url, "stream": format!("NONE_{}", unique()), "consumer": "c"}));
    match nats.check("jetstream", &missing).await {
        Err(SourceError::Config(e)) => assert!(e.contains("has no stream"), "{e}"),
        other => panic!("{other:?}"),
    }
    let fine = config(json!({"url": url, "subject": "gust-test.check"}));
    nats.check("subscribe", &fine).await.unwrap();
    eprintln!("not checked: a wrong password (the test server takes anonymous clients)");
}

#[tokio::test]
async fn publish_sends_the_result_as_json() {
    let Some(url) = url() else { return };
    let subject = format!("gust-test.{}", unique());
    let client = async_nats::connect(&url).await.unwrap();
    let mut sub = client.subscribe(subject.clone()).await.unwrap();
    client.flush().await.unwrap();
    let nats = Nats::default();
    let output =
        gust_source_nats::output_config(&config(json!({"url": url, "subject": subject}))).unwrap();
    for n in 0..2 {
        nats.publish(&output, &json!({"n": n})).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), futures_next(&mut sub))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&got.payload).unwrap(),
            json!({"n": n})
        );
    }
}
