//! Feed `batches`: a stream read by position without a consumer group (decision 0027).

use std::time::Duration;

use gust_source::{StreamReader, StreamRecord};
use gust_source_redis::sequence;

use super::*;

const NOW: Duration = Duration::ZERO;

impl Keys {
    async fn open(&self, url: &str, more: Value) -> Box<dyn StreamReader> {
        let mut feed = config(json!({"url": url, "stream": self.stream}));
        feed.extend(config(more));
        let kept = Redis.configure("batches", &feed).unwrap();
        Redis.open_stream("batches", &kept).await.unwrap()
    }

    /// XADD with an explicit id.
    async fn add_at(&mut self, id: &str, fields: &[(&str, &str)]) {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.stream).arg(id);
        for (k, v) in fields {
            cmd.arg(k).arg(v);
        }
        let _: String = cmd.query_async(&mut self.conn).await.unwrap();
    }
}

fn sequences(records: &[StreamRecord]) -> Vec<u64> {
    records.iter().map(|r| r.sequence).collect()
}

#[tokio::test]
async fn a_stream_is_read_in_order_from_any_point_and_again_from_an_earlier_one() {
    let Some(url) = url() else { return };
    let mut keys = Keys::new(&url).await;
    let mut ids = vec![keys.add(&[("kind", "order"), ("data", r#"{"n":1}"#)]).await];
    for n in 2..=5 {
        ids.push(keys.add(&[("n", &n.to_string())]).await);
    }
    let seqs: Vec<u64> = ids.iter().map(|id| sequence(id).unwrap()).collect();
    let mut reader = keys.open(&url, json!({})).await;

    let all = reader.read(0, 10, NOW).await.unwrap();
    assert_eq!(sequences(&all), seqs);
    let first = &all[0];
    assert_eq!(
        Value::Object(first.payload.clone()),
        json!({"stream": keys.stream, "id": ids[0], "fields": {"kind": "order", "data": "{\"n\":1}"},
               "data": {"n": 1}})
    );
    assert_eq!(first.partition_key, keys.stream);
    assert_eq!(first.size, "kind".len() + "order".len() + "data".len() + 7);
    let ms: u64 = ids[0].split('-').next().unwrap().parse().unwrap();
    assert_eq!(first.time_ms, ms);

    assert_eq!(
        sequences(&reader.read(seqs[0], 2, NOW).await.unwrap()),
        seqs[1..3]
    );
    assert_eq!(
        sequences(&reader.read(seqs[2], 10, NOW).await.unwrap()),
        seqs[3..]
    );
    assert!(reader.read(seqs[4], 10, NOW).await.unwrap().is_empty());
    assert_eq!(
        sequences(&reader.read(seqs[1], 1, NOW).await.unwrap()),
        seqs[2..3]
    );
    assert_eq!(sequences(&reader.read(0, 10, NOW).await.unwrap()), seqs);
    keys.delete().await;
}

#[tokio::test]
async fn a_read_waits_for_the_first_record_and_returns_empty_when_none_comes() {
    let Some(url) = url() else { return };
    let mut keys = Keys::new(&url).await;
    let mut reader = keys.open(&url, json!({})).await;
    assert!(
        reader
            .read(0, 10, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    let waiting = tokio::spawn(async move {
        let records = reader.read(0, 10, Duration::from_secs(30)).await.unwrap();
        (reader, records)
    });
    let id = keys.add(&[("data", "late")]).await;
    let (mut reader, records) = waiting.await.unwrap();
    assert_eq!(sequences(&records), [sequence(&id).unwrap()]);
    assert_eq!(records[0].payload["data"], json!("late"));

    // A blocking read given up (its future dropped) leaves nothing in the way of the next.
    let given_up = tokio::time::timeout(
        Duration::from_millis(100),
        reader.read(sequence(&id).unwrap(), 10, Duration::from_secs(60)),
    )
    .await;
    assert!(given_up.is_err());
    let next = keys.add(&[("data", "next")]).await;
    let records = reader.read(sequence(&id).unwrap(), 10, NOW).await.unwrap();
    assert_eq!(sequences(&records), [sequence(&next).unwrap()]);
    keys.delete().await;
}

#[tokio::test]
async fn a_field_is_the_partition_key_and_a_missing_one_is_empty() {
    let Some(url) = url() else { return };
    let mut keys = Keys::new(&url).await;
    keys.add(&[("tenant", "t1"), ("data", "1")]).await;
    keys.add(&[("data", "2")]).await;
    let mut reader = keys
        .open(&url, json!({"partitionKey": "field:tenant"}))
        .await;
    let got: Vec<String> = reader
        .read(0, 10, NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.partition_key)
        .collect();
    assert_eq!(got, ["t1", ""]);
    keys.delete().await;
}

#[tokio::test]
async fn the_last_sequence_the_lag_and_the_sequence_before_a_time() {
    let Some(url) = url() else { return };
    let mut keys = Keys::new(&url).await;
    let mut reader = keys.open(&url, json!({})).await;
    assert_eq!(reader.last_sequence().await.unwrap(), 0);
    assert_eq!(reader.pending(0).await.unwrap(), 0);
    assert_eq!(reader.sequence_before(1_000).await.unwrap(), 0);
    for id in ["1000-0", "1000-1", "2000-0"] {
        keys.add_at(id, &[("data", id)]).await;
    }
    let (a, b, c) = (65_536_000, 65_536_001, 131_072_000);
    assert_eq!(reader.last_sequence().await.unwrap(), c);
    assert_eq!(reader.pending(0).await.unwrap(), 3);
    assert_eq!(reader.pending(a).await.unwrap(), 2);
    assert_eq!(reader.pending(b + 1).await.unwrap(), 1);
    assert_eq!(reader.pending(c).await.unwrap(), 0);

    assert_eq!(reader.sequence_before(0).await.unwrap(), a - 1);
    assert_eq!(reader.sequence_before(1_000).await.unwrap(), a - 1);
    // Just before the first record at or after the time: not always another record's.
    assert_eq!(reader.sequence_before(1_500).await.unwrap(), c - 1);
    assert_eq!(reader.sequence_before(2_000).await.unwrap(), c - 1);
    assert_eq!(reader.sequence_before(3_000).await.unwrap(), c);
    // Reading after what it says gives the first record at or after the time.
    let at = reader.sequence_before(1_000).await.unwrap();
    assert_eq!(sequences(&reader.read(at, 1, NOW).await.unwrap()), [a]);
    keys.delete().await;
}

#[tokio::test]
async fn an_entry_id_without_a_sequence_is_a_configuration_error_naming_it() {
    let Some(url) = url() else { return };
    let mut keys = Keys::new(&url).await;
    keys.add_at("5-70000", &[("data", "x")]).await;
    let mut reader = keys.open(&url, json!({})).await;
    match reader.read(0, 10, NOW).await {
        Err(SourceError::Config(e)) => assert!(e.contains("'5-70000' has no sequence"), "{e}"),
        other => panic!("{other:?}"),
    }
    keys.delete().await;
}

#[tokio::test]
async fn a_key_of_another_type_or_no_server_is_refused_and_the_feed_is_not_run() {
    let Some(url) = url() else { return };
    let mut keys = Keys::new(&url).await;
    let _: () = keys.conn.set(&keys.stream, "a string").await.unwrap();
    let feed = config(json!({"url": url, "stream": keys.stream}));
    for result in [
        Redis.check("batches", &feed).await.err(),
        Redis.open_stream("batches", &feed).await.err(),
    ] {
        match result {
            Some(SourceError::Config(e)) => assert!(e.contains("holds a string"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
    match Redis.run("batches", &feed, &*TestSink::new()).await {
        Err(SourceError::Config(e)) => assert!(e.contains("not run"), "{e}"),
        other => panic!("{other:?}"),
    }
    let unreachable = config(json!({"url": "redis://127.0.0.1:1", "stream": "s"}));
    match Redis.open_stream("batches", &unreachable).await {
        Err(SourceError::Connection(e)) => assert!(e.contains("cannot connect"), "{e}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("opened"),
    }
    keys.delete().await;
}
