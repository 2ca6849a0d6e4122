//! Feed `stream`: a stream read by position, nothing acknowledged (decision 0027).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gust_source::StreamReader;

use super::*;

impl TestStream {
    fn feed(&self, url: &str, more: Value) -> serde_json::Map<String, Value> {
        let mut c = config(json!({"url": url, "stream": self.name}));
        c.extend(config(more));
        c
    }

    async fn open(&self, url: &str, more: Value) -> Box<dyn StreamReader> {
        let feed = self.feed(url, more);
        let nats = Nats::default();
        let kept = nats.configure("stream", &feed).unwrap();
        nats.open_stream("stream", &kept).await.unwrap()
    }

    async fn publish_with(&self, subject: &str, header: Option<(&str, &str)>, body: &'static [u8]) {
        let mut headers = async_nats::HeaderMap::new();
        if let Some((name, value)) = header {
            headers.insert(name, value);
        }
        self.js
            .publish_with_headers(format!("{}.{subject}", self.prefix), headers, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// How many consumers the stream has.
    async fn consumers(&self) -> usize {
        let mut stream = self.js.get_stream(&self.name).await.unwrap();
        stream.info().await.unwrap().state.consumer_count
    }

    /// The names of the stream's consumers.
    async fn consumer_names(&self) -> Vec<String> {
        use futures_util::TryStreamExt;
        let stream = self.js.get_stream(&self.name).await.unwrap();
        stream.consumer_names().try_collect().await.unwrap()
    }

    /// Whether the stream's consumers come down to `n` within a generous bound.
    async fn consumers_become(&self, n: usize) -> bool {
        for _ in 0..200 {
            if self.consumers().await == n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

fn sequences(records: &[gust_source::StreamRecord]) -> Vec<u64> {
    records.iter().map(|r| r.sequence).collect()
}

const NOW: Duration = Duration::ZERO;

#[tokio::test]
async fn a_stream_is_read_in_order_from_any_point_and_again_from_an_earlier_one() {
    let Some(url) = url() else { return };
    let s = TestStream::new(&url).await;
    s.publish_with("a", Some(("Tenant", "t1")), br#"{"n":1}"#)
        .await;
    for body in [&b"2"[..], b"3", b"4", &[0xff, 0x00]] {
        s.publish("b", body).await;
    }
    let mut reader = s.open(&url, json!({})).await;

    let all = reader.read(0, 10, NOW).await.unwrap();
    assert_eq!(sequences(&all), [1, 2, 3, 4, 5]);
    let first = &all[0];
    assert_eq!(
        Value::Object(first.payload.clone()),
        json!({"subject": format!("{}.a", s.prefix), "headers": {"Tenant": "t1"}, "data": {"n": 1}})
    );
    assert_eq!(first.partition_key, format!("{}.a", s.prefix));
    assert_eq!(first.size, 7);
    assert!(first.time_ms > 1_600_000_000_000, "{}", first.time_ms);
    assert_eq!(
        Value::Object(all[4].payload.clone()),
        json!({"subject": format!("{}.b", s.prefix), "data_base64": "/wA="})
    );

    // From the middle, at most `max`, then on from there (the same consumer) and again from
    // an earlier point.
    assert_eq!(sequences(&reader.read(1, 2, NOW).await.unwrap()), [2, 3]);
    let consumer = s.consumer_names().await;
    assert_eq!(sequences(&reader.read(3, 10, NOW).await.unwrap()), [4, 5]);
    assert_eq!(s.consumer_names().await, consumer);
    assert_eq!(
        sequences(&reader.read(5, 10, NOW).await.unwrap()),
        [] as [u64; 0]
    );
    assert_eq!(sequences(&reader.read(2, 1, NOW).await.unwrap()), [3]);
    assert_eq!(
        sequences(&reader.read(0, 10, NOW).await.unwrap()),
        [1, 2, 3, 4, 5]
    );

    // One consumer at a time, none once the reader is gone.
    assert_eq!(s.consumers().await, 1);
    drop(reader);
    assert!(s.consumers_become(0).await, "the reader's consumer stayed");
    s.delete().await;
}

#[tokio::test]
async fn a_read_of_more_than_one_pull_takes_gets_every_record_asked_for() {
    let Some(url) = url() else { return };
    let s = TestStream::new(&url).await;
    for _ in 0..2_500 {
        s.publish("b", b"{}").await;
    }
    let mut reader = s.open(&url, json!({})).await;
    // The server answers no single pull of more than 1,000: the reader makes several.
    let all = reader.read(0, 2_400, Duration::from_secs(1)).await.unwrap();
    assert_eq!(sequences(&all), (1..=2_400).collect::<Vec<u64>>());
    let rest = reader.read(2_400, 5_000, NOW).await.unwrap();
    assert_eq!(sequences(&rest), (2_401..=2_500).collect::<Vec<u64>>());
    drop(reader);
    s.delete().await;
}

#[tokio::test]
async fn a_read_waits_for_the_first_record_and_returns_empty_when_none_comes() {
    let Some(url) = url() else { return };
    let s = TestStream::new(&url).await;
    let mut reader = s.open(&url, json!({})).await;
    let none = reader
        .read(0, 10, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(none.is_empty());

    let waiting = tokio::spawn(async move {
        let records = reader.read(0, 10, Duration::from_secs(30)).await.unwrap();
        (reader, records)
    });
    s.publish("a", b"late").await;
    let (mut reader, records) = waiting.await.unwrap();
    assert_eq!(sequences(&records), [1]);
    assert_eq!(records[0].payload["data"], json!("late"));
    // What came meanwhile is read on from there.
    s.publish("a", b"next").await;
    let next = reader.read(1, 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(sequences(&next), [2]);
    s.delete().await;
}

#[tokio::test]
async fn a_filter_subject_reads_only_its_records_and_counts_them() {
    let Some(url) = url() else { return };
    let s = TestStream::new(&url).await;
    for subject in ["a.1", "b.1", "a.2", "b.2", "a.3"] {
        s.publish(subject, b"x").await;
    }
    let mut reader = s
        .open(&url, json!({"subject": format!("{}.a.*", s.prefix)}))
        .await;
    assert_eq!(
        sequences(&reader.read(0, 10, NOW).await.unwrap()),
        [1, 3, 5]
    );
    assert_eq!(sequences(&reader.read(1, 1, NOW).await.unwrap()), [3]);
    assert_eq!(reader.pending(0).await.unwrap(), 3);
    // Asked where the reader stands (its own consumer answers) and elsewhere.
    assert_eq!(reader.pending(3).await.unwrap(), 1);
    assert_eq!(reader.pending(2).await.unwrap(), 2);
    assert_eq!(reader.pending(5).await.unwrap(), 0);
    assert_eq!(reader.last_sequence().await.unwrap(), 5);
    assert_eq!(sequences(&reader.read(3, 10, NOW).await.unwrap()), [5]);
    s.delete().await;
}

#[tokio::test]
async fn a_header_is_the_partition_key_and_a_missing_one_is_empty() {
    let Some(url) = url() else { return };
    let s = TestStream::new(&url).await;
    s.publish_with("a", Some(("Tenant", "t1")), b"1").await;
    s.publish_with("a", Some(("Other", "x")), b"2").await;
    s.publish("a", b"3").await;
    let mut reader = s.open(&url, json!({"partitionKey": "header:Tenant"})).await;
    let keys: Vec<String> = reader
        .read(0, 10, NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.partition_key)
        .collect();
    assert_eq!(keys, ["t1", "", ""]);
    s.delete().await;
}

#[tokio::test]
async fn the_last_sequence_and_the_lag_without_a_filter() {
    let Some(url) = url() else { return };
    let s = TestStream::new(&url).await;
    let mut reader = s.open(&url, json!({})).await;
    assert_eq!(reader.last_sequence().await.unwrap(), 0);
    assert_eq!(reader.pending(0).await.unwrap(), 0);
    for _ in 0..3 {
        s.publish("a", b"x").await;
    }
    assert_eq!(reader.last_sequence().await.unwrap(), 3);
    assert_eq!(reader.pending(0).await.unwrap(), 3);
    assert_eq!(reader.pending(2).await.unwrap(), 1);
    assert_eq!(reader.pending(3).await.unwrap(), 0);
    s.delete().await;
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_sequence_before_a_time_is_found_between_two_records() {
    let Some(url) = url() else { return };
    let s = TestStream::new(&url).await;
    s.publish("a", b"1").await;
    let mut reader = s.open(&url, json!({})).await;
    let first = reader.read(0, 1, NOW).await.unwrap().remove(0);
    // The second is stored at a later millisecond than the first.
    while now_ms() <= first.time_ms + 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.publish("a", b"2").await;
    let second = reader.read(1, 1, NOW).await.unwrap().remove(0);
    assert!(second.time_ms > first.time_ms);

    assert_eq!(reader.sequence_before(0).await.unwrap(), 0);
    assert_eq!(reader.sequence_before(first.time_ms).await.unwrap(), 0);
    assert_eq!(reader.sequence_before(first.time_ms + 1).await.unwrap(), 1);
    assert_eq!(reader.sequence_before(second.time_ms).await.unwrap(), 1);
    assert_eq!(
        reader
            .sequence_before(second.time_ms + 3_600_000)
            .await
            .unwrap(),
        2
    );
    // The consumers made for the questions are gone; the reader's own stays.
    assert!(s.consumers_become(1).await);
    s.delete().await;
}

#[tokio::test]
async fn a_missing_stream_is_a_configuration_error() {
    let Some(url) = url() else { return };
    let nats = Nats::default();
    let name = format!("NONE_{}", unique());
    let feed = config(json!({"url": url, "stream": name}));
    for result in [
        nats.check("stream", &feed).await.err(),
        nats.open_stream("stream", &feed).await.err(),
    ] {
        match result {
            Some(SourceError::Config(e)) => assert!(e.contains("has no stream"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
    match nats.run("stream", &feed, &*TestSink::new()).await {
        Err(SourceError::Config(e)) => assert!(e.contains("not run"), "{e}"),
        other => panic!("{other:?}"),
    }

    // A stream deleted under a reader.
    let s = TestStream::new(&url).await;
    s.publish("a", b"1").await;
    let mut reader = s.open(&url, json!({})).await;
    s.js.delete_stream(&s.name).await.unwrap();
    match reader.read(0, 10, NOW).await {
        Err(SourceError::Config(e)) => assert!(e.contains("has no stream"), "{e}"),
        other => panic!("{other:?}"),
    }
    match reader.last_sequence().await {
        Err(SourceError::Config(e)) => assert!(e.contains("has no stream"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() {
    let Some(_) = url() else { return };
    let feed = config(json!({"url": "nats://127.0.0.1:1", "stream": "S"}));
    match Nats::default().open_stream("stream", &feed).await {
        Err(SourceError::Connection(e)) => assert!(e.contains("cannot connect"), "{e}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("opened"),
    }
}
