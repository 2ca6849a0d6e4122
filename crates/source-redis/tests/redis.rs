//! The Redis source against a real server: run when `GUST_TEST_REDIS_URL` is set
//! (`redis://127.0.0.1:6379`), each test on stream keys of its own, deleted at its end;
//! skipped, and said so, otherwise.
#![allow(clippy::unwrap_used)]

use gust_source::testing::{TestSink, config, server_url, start, wait_until};
use gust_source::{Source, SourceError};
use gust_source_redis::{Redis, output_config};
use redis::AsyncCommands;
use serde_json::{Value, json};

#[path = "redis/batches.rs"]
mod batches;

fn url() -> Option<String> {
    server_url("GUST_TEST_REDIS_URL")
}

/// A connection and the keys a test made, deleted at its end.
struct Keys {
    conn: redis::aio::MultiplexedConnection,
    stream: String,
}

impl Keys {
    async fn new(url: &str) -> Keys {
        let client = redis::Client::open(url).unwrap();
        Keys {
            conn: client.get_multiplexed_async_connection().await.unwrap(),
            stream: format!("gust-test:{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn dead(&self) -> String {
        format!("{}:dead", self.stream)
    }

    async fn add(&mut self, fields: &[(&str, &str)]) -> String {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.stream).arg("*");
        for (k, v) in fields {
            cmd.arg(k).arg(v);
        }
        cmd.query_async(&mut self.conn).await.unwrap()
    }

    /// Entries of `key`, each as (id, [(field, value)]).
    async fn entries(&mut self, key: &str) -> Vec<(String, Vec<(String, String)>)> {
        let reply: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn)
            .await
            .unwrap();
        reply
            .into_iter()
            .map(|(id, flat)| {
                let pairs = flat
                    .chunks(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect();
                (id, pairs)
            })
            .collect()
    }

    /// How many entries the group holds unacknowledged.
    async fn pending(&mut self, group: &str) -> i64 {
        let reply: (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(group)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        reply.0
    }

    async fn delete(mut self) {
        let _: () = self.conn.del(&[&self.stream, &self.dead()]).await.unwrap();
    }
}

#[tokio::test]
async fn an_entry_fires_with_its_fields_and_is_acknowledged() {
    let Some(url) = url() else { return };
    let mut keys = Keys::new(&url).await;
    let sink = TestSink::new();
    let task = start(
        Redis,
        "stream",
        config(json!({"url": url, "stream": keys.stream, "group": "g"})),
        sink.clone(),
    );
    assert!(wait_until(|| sink.connected() > 0).await);
    let id = keys.add(&[("kind", "order"), ("data", r#"{"n":1}"#)]).await;
    let plain = keys.add(&[("note", "no body")]).await;
    assert!(wait_until(|| sink.events().len() == 2).await);
    let events = sink.events();
    assert_eq!(events[0].key, Some(format!("{}:{id}", keys.stream)));
    assert_eq!(
        Value::Object(events[0].payload.clone()),
        json!({"stream": keys.stream, "id": id, "fields": {"kind": "order", "data": "{\"n\":1}"},
               "data": {"n": 1}})
    );
    assert_eq!(
        Value::Object(events[1].payload.clone()),
        json!({"stream": keys.stream, "id": plain, "fields": {"note": "no body"}})
    );
    let mut acked = false;
    for _ in 0..100 {
        if keys.pending("g").await == 0 {
            acked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(acked, "entries left unacknowledged");
    task.abort();
    keys.delete().await;
}

#[tokio::test]
async fn an_entry_not_yet_fired_when_the_run_stops_is_read_again_from_the_pending_list() {
    let Some(url) = url() else { return };
    let mut keys = Keys::new(&url).await;
    // Both are in the stream before the group is created at 0: the first read takes both.
    let id = keys.add(&[("data", "\"first\"")]).await;
    keys.add(&[("data", "\"second\"")]).await;
    let config = config(
        json!({"url": url, "stream": keys.stream, "group": "g", "consumer": "c1",
                               "start": "0"}),
    );
    let held = TestSink::holding();
    let task = start(Redis, "stream", config.clone(), held.clone());
    assert!(wait_until(|| held.events().len() == 1).await);
    task.abort();
    let _ = task.await;
    assert_eq!(keys.pending("g").await, 2);

    let sink = TestSink::new();
    let task = start(Redis, "stream", config, sink.clone());
    assert!(wait_until(|| sink.events().len() == 2).await);
    let events = sink.events();
    assert_eq!(events[0].key, Some(format!("{}:{id}", keys.stream)));
    assert_eq!(events[0].payload["data"], json!("first"));
    assert_eq!(events[1].payload["data"], json!("second"));
    task.abort();
    keys.delete().await;
}

#[tokio::test]
async fn an_entry_moved_aside_goes_to_the_dead_letter_stream() {
    let Some(url) = url() else { return };
    let mut keys = Keys::new(&url).await;
    let sink = TestSink::moving_aside("poison");
    let task = start(
        Redis,
        "stream",
        config(json!({"url": url, "stream": keys.stream, "group": "g", "start": "0"})),
        sink.clone(),
    );
    // Added before the group exists: `start: 0` reads it.
    let id = keys.add(&[("message", "poison")]).await;
    assert!(wait_until(|| sink.moved().len() == 1).await);
    let dead = keys.dead();
    let entries = keys.entries(&dead).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].1,
        vec![
            ("message".to_string(), "poison".to_string()),
            (
                "gust-moved-aside".to_string(),
                "test says poison".to_string()
            ),
            ("gust-stream".to_string(), keys.stream.clone()),
            ("gust-id".to_string(), id),
        ]
    );
    assert_eq!(keys.pending("g").await, 0);
    task.abort();
    keys.delete().await;
}

#[tokio::test]
async fn check_names_what_is_wrong() {
    let Some(url) = url() else { return };
    let mut keys = Keys::new(&url).await;
    let check = |params: Value| async move { Redis.check("stream", &config(params)).await };
    match check(json!({"url": "redis://127.0.0.1:1", "stream": "s", "group": "g"})).await {
        Err(SourceError::Connection(e)) => {
            assert!(
                e.contains("cannot connect to Redis at redis://127.0.0.1:1"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    let _: () = keys.conn.set(&keys.stream, "a string").await.unwrap();
    match check(json!({"url": url, "stream": keys.stream, "group": "g"})).await {
        Err(SourceError::Config(e)) => assert!(e.contains("holds a string"), "{e}"),
        other => panic!("{other:?}"),
    }
    let wrong = json!({"url": url, "stream": "s", "group": "g",
                       "username": "gust-nobody", "password": "not-the-password"});
    match check(wrong).await {
        Err(SourceError::Connection(e)) => {
            assert!(!e.contains("not-the-password"), "{e}");
            eprintln!("a wrong password: {e}");
        }
        Ok(()) => eprintln!("not checked: a wrong password (the test server takes anyone)"),
        other => panic!("{other:?}"),
    }
    check(json!({"url": url, "stream": format!("{}-new", keys.stream), "group": "g"}))
        .await
        .unwrap();
    keys.delete().await;
}

#[tokio::test]
async fn publish_adds_the_result_as_json_in_field_data() {
    let Some(url) = url() else { return };
    let mut keys = Keys::new(&url).await;
    let output = output_config(&config(
        json!({"url": url, "stream": keys.stream, "maxLen": 100}),
    ))
    .unwrap();
    Redis.publish(&output, &json!({"ok": true})).await.unwrap();
    let stream = keys.stream.clone();
    let entries = keys.entries(&stream).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].1,
        vec![("data".to_string(), r#"{"ok":true}"#.to_string())]
    );
    keys.delete().await;
}
