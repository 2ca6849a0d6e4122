//! Stream mappings (decision 0027): a JetStream stream read in batches by every rule of a
//! `nats/stream` trigger, against the machine's real JetStream (skipped by name when
//! `GUST_TEST_NATS_URL` is unset): order, checkpoints, partial failures, bisection, the
//! destination of records given up, a kill -9 mid-batch, and order per key in parallel lanes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream;
use gust_testkit::{Server, function};
use serde_json::{Value, json};

use crate::server;
use crate::sources::{broker, call_feed, feed_trigger, records_of, unique};

/// The URL of the machine's JetStream, or `None` after saying `test` is skipped.
fn nats(test: &str) -> Option<String> {
    broker("GUST_TEST_NATS_URL", test)
}

/// A new stream `name` on subjects `name.>`.
async fn stream(url: &str, name: &str) -> jetstream::Context {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: name.into(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    js
}

/// Publishes `body` to `subject`, acknowledged by the stream.
async fn publish(js: &jetstream::Context, subject: String, body: Value) {
    js.publish(subject, body.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// The mapping of rule `rule` as the API shows it.
async fn mapping(s: &Server, rule: &str) -> Value {
    s.call(
        "GET",
        &format!("/api/v1/namespaces/_/mappings/{rule}"),
        None,
    )
    .await
    .body
}

/// A mapping's checkpoint (a string in the API, as sequence numbers are); 0 without one.
fn checkpoint_of(m: &Value) -> u64 {
    m["checkpoint"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Waits until rule `rule`'s mapping has its checkpoint at `at`; the mapping.
async fn wait_checkpoint(s: &Server, rule: &str, at: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = mapping(s, rule).await;
        if checkpoint_of(&last) == at && !last["checkpoint"].is_null() {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the mapping of {rule} did not reach {at} in 60 s: {last}");
}

/// The batches action `name` ran, oldest first: the sequences each saw and its record.
async fn batches(s: &Server, name: &str) -> Vec<(Vec<u64>, Value)> {
    let mut records = records_of(s, name).await;
    records.sort_by_key(|r| r["start"].as_u64());
    records
        .into_iter()
        .map(|r| {
            let seen = r["response"]["result"]["seen"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
                .unwrap_or_default();
            (seen, r)
        })
        .collect()
}

/// The destination records action `name` received.
async fn destination_records(s: &Server, name: &str, n: usize) -> Vec<Value> {
    for _ in 0..600 {
        let records = records_of(s, name).await;
        if records.len() >= n {
            return records
                .iter()
                .map(|r| r["response"]["result"]["params"].clone())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} did not receive {n} destination record(s)");
}

#[tokio::test]
async fn a_bad_record_is_retried_bisected_and_sent_to_the_destination_while_the_rest_advance() {
    let Some(url) = nats("the stream mapping bisection test") else {
        return;
    };
    let name = unique("MAPBIS");
    let js = stream(&url, &name).await;
    for n in 1..=20u64 {
        publish(&js, format!("{name}.k"), json!({ "n": n, "bad": n == 7 })).await;
    }
    let s = server();
    s.create("batch", &function("batch"), json!({})).await;
    s.create("dlq", &function("echo"), json!({})).await;
    let params = json!({
        "url": url, "stream": name, "startingPosition": "oldest", "batchSize": 5,
        "bisectBatchOnFunctionError": true, "maximumRetryAttempts": 1,
        "onFailure": "action:dlq",
    });
    let answer = feed_trigger(&s, "orders", "nats/stream", params, "batch").await;
    assert_eq!(answer["success"], true, "{answer}");
    let m = wait_checkpoint(&s, "orders-r", 20).await;
    assert_eq!(m["trigger"], "orders", "{m}");
    assert_eq!(m["destinationDeliveries"], 1, "{m}");
    assert!(m["bisections"].as_u64().unwrap() >= 2, "{m}");

    // The destination got where the bad record is, alone after bisection; not the records.
    let dlq = destination_records(&s, "dlq", 1).await;
    let info = &dlq[0]["StreamBatchInfo"];
    assert_eq!(info["startSequenceNumber"], "7", "{}", dlq[0]);
    assert_eq!(info["endSequenceNumber"], "7", "{}", dlq[0]);
    assert_eq!(info["batchSize"], 1, "{}", dlq[0]);
    assert_eq!(info["stream"], name.as_str());
    let context = &dlq[0]["requestContext"];
    assert_eq!(context["condition"], "RetryAttemptsExhausted", "{}", dlq[0]);
    assert_eq!(context["functionArn"], "/guest/batch", "{}", dlq[0]);
    assert_eq!(
        dlq[0]["responseContext"]["functionError"],
        "application error"
    );

    // Every good record ran in a batch that succeeded; the bad one in none.
    let mut done = BTreeSet::new();
    for (seen, record) in batches(&s, "batch").await {
        if record["response"]["success"] == true {
            done.extend(seen);
        }
    }
    let expected: BTreeSet<u64> = (1..=20).filter(|n| *n != 7).collect();
    assert_eq!(done, expected);

    // A record with its metadata as decision 0027 gives it.
    let (_, first) = &batches(&s, "batch").await[0];
    let r = &first["response"]["result"];
    assert_eq!(r["keys"][0], format!("{name}.k"), "{first}");
}

#[tokio::test]
async fn a_partial_batch_response_moves_the_checkpoint_to_the_lowest_failed_record() {
    let Some(url) = nats("the stream mapping partial-failure test") else {
        return;
    };
    let name = unique("MAPPART");
    let js = stream(&url, &name).await;
    for n in 1..=6u64 {
        publish(&js, format!("{name}.k"), json!({ "n": n, "bad": n == 4 })).await;
    }
    let s = server();
    s.create(
        "batch",
        &function("batch"),
        json!({ "parameters": [{ "key": "mode", "value": "partial" }] }),
    )
    .await;
    let dlq = unique("dlq");
    let sub = async_nats::connect(&url)
        .await
        .unwrap()
        .subscribe(dlq.clone())
        .await
        .unwrap();
    let params = json!({
        "url": url, "stream": name, "startingPosition": "oldest", "batchSize": 10,
        "maximumBatchingWindowInSeconds": 1, "maximumRetryAttempts": 1,
        "onFailure": format!("subject:{dlq}"),
    });
    let answer = feed_trigger(&s, "parts", "nats/stream", params, "batch").await;
    assert_eq!(answer["success"], true, "{answer}");
    let m = wait_checkpoint(&s, "parts-r", 6).await;
    assert_eq!(m["destinationDeliveries"], 1, "{m}");

    // The first batch held all six and named record 4: 1 to 3 were done, 4 to 6 retried
    // (once) and given up together, as Lambda does without bisection.
    let runs = batches(&s, "batch").await;
    assert_eq!(runs[0].0, [1, 2, 3, 4, 5, 6], "{runs:?}");
    assert_eq!(runs[1].0, [4, 5, 6], "{runs:?}");
    let mut sub = sub;
    let message = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::StreamExt::next(&mut sub),
    )
    .await
    .unwrap()
    .unwrap();
    let record: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(
        record["StreamBatchInfo"]["startSequenceNumber"], "4",
        "{record}"
    );
    assert_eq!(
        record["StreamBatchInfo"]["endSequenceNumber"], "6",
        "{record}"
    );

    // A record published later runs on its own, from the checkpoint.
    publish(&js, format!("{name}.k"), json!({ "n": 7 })).await;
    wait_checkpoint(&s, "parts-r", 7).await;
    let runs = batches(&s, "batch").await;
    assert_eq!(runs.last().unwrap().0, [7], "{runs:?}");

    // Bad parameters are refused, naming the parameter, and keep nothing.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/triggers/badmap",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200);
    for (bad, says) in [
        (json!({ "batchSize": 0 }), "batchSize"),
        (json!({ "onFailure": "queue:x" }), "onFailure"),
        (json!({ "onFailure": "action:missing" }), "missing"),
        (
            json!({ "startingPosition": "at" }),
            "startingPositionTimestamp",
        ),
    ] {
        let mut params = bad.clone();
        params["url"] = json!(url);
        params["stream"] = json!(name);
        let answer = call_feed(&s, "nats/stream", "CREATE", "badmap", params).await;
        assert_eq!(answer["success"], false, "{bad}: {answer}");
        assert!(
            answer["result"].to_string().contains(says),
            "{bad}: {answer}"
        );
    }
}

#[tokio::test]
async fn a_kill_mid_batch_resumes_from_the_checkpoint_with_no_record_skipped() {
    let Some(url) = nats("the stream mapping kill -9 test") else {
        return;
    };
    let name = unique("MAPKILL");
    let js = stream(&url, &name).await;
    let total = 60u64;
    for n in 1..=total {
        publish(&js, format!("{name}.k"), json!({ "n": n })).await;
    }
    let mut s = server();
    s.create(
        "batch",
        &function("batch"),
        json!({ "parameters": [{ "key": "sleepMs", "value": 300 }] }),
    )
    .await;
    let params = json!({
        "url": url, "stream": name, "startingPosition": "oldest", "batchSize": 5,
    });
    let answer = feed_trigger(&s, "kills", "nats/stream", params, "batch").await;
    assert_eq!(answer["success"], true, "{answer}");
    // Killed once a few batches are done and while one runs.
    let mut before = Value::Null;
    for _ in 0..600 {
        before = mapping(&s, "kills-r").await;
        if checkpoint_of(&before) >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at_kill = checkpoint_of(&before);
    assert!(
        at_kill < total,
        "the test wants to kill mid-stream: {before}"
    );
    s.kill();
    let s = s.restart();
    let after = wait_checkpoint(&s, "kills-r", total).await;
    assert!(checkpoint_of(&after) >= at_kill);
    let mut done = BTreeSet::new();
    for (seen, record) in batches(&s, "batch").await {
        assert_eq!(record["response"]["success"], true, "{record}");
        done.extend(seen);
    }
    assert_eq!(done, (1..=total).collect(), "no record skipped");
}

#[tokio::test]
async fn records_of_one_key_keep_their_order_across_parallel_lanes() {
    let Some(url) = nats("the stream mapping ordering test") else {
        return;
    };
    let name = unique("MAPORD");
    let js = stream(&url, &name).await;
    let total = 48u64;
    for n in 1..=total {
        publish(&js, format!("{name}.key{}", n % 6), json!({ "n": n })).await;
    }
    let s = server();
    s.create(
        "batch",
        &function("batch"),
        json!({ "parameters": [{ "key": "sleepMs", "value": 50 }] }),
    )
    .await;
    let params = json!({
        "url": url, "stream": name, "startingPosition": "oldest", "batchSize": 3,
        "parallelizationFactor": 3,
    });
    let answer = feed_trigger(&s, "lanes", "nats/stream", params, "batch").await;
    assert_eq!(answer["success"], true, "{answer}");
    wait_checkpoint(&s, "lanes-r", total).await;
    // Per key, the sequences seen in the order the batches started only grow, and every
    // record ran once.
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut all = Vec::new();
    for (seen, record) in batches(&s, "batch").await {
        let keys = record["response"]["result"]["keys"]
            .as_array()
            .unwrap()
            .clone();
        for (seq, key) in seen.iter().zip(keys) {
            per_key
                .entry(key.as_str().unwrap().to_string())
                .or_default()
                .push(*seq);
            all.push(*seq);
        }
    }
    for (key, seqs) in &per_key {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
    }
    all.sort_unstable();
    assert_eq!(all, (1..=total).collect::<Vec<_>>());
    let list = s.call("GET", "/api/v1/namespaces/_/mappings", None).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body[0]["rule"], "lanes-r", "{}", list.body);
}

/// The sequence of Redis entry id `ms-n` (decision 0027).
fn redis_sequence(id: &str) -> u64 {
    let (ms, n) = id.split_once('-').unwrap();
    ms.parse::<u64>().unwrap() * 65536 + n.parse::<u64>().unwrap()
}

#[tokio::test]
async fn a_redis_stream_is_mapped_too_and_a_given_up_batch_fires_a_trigger() {
    let Some(url) = broker("GUST_TEST_REDIS_URL", "the Redis stream mapping test") else {
        return;
    };
    let key = unique("gust-map-");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut ids = Vec::new();
    for n in 1..=10u64 {
        let id: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("data")
            .arg(json!({ "n": n, "bad": n == 4 }).to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
        ids.push(redis_sequence(&id));
    }
    let s = server();
    s.create(
        "batch",
        &function("batch"),
        json!({ "parameters": [{ "key": "mode", "value": "partial" }] }),
    )
    .await;
    s.create("dead", &function("echo"), json!({})).await;
    // The destination: a plain trigger with a rule to `dead`.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/triggers/gaveup",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/rules/gaveup-r",
            Some(json!({ "trigger": "/_/gaveup", "action": "/_/dead" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let params = json!({
        "url": url, "stream": key, "startingPosition": "oldest", "batchSize": 3,
        "maximumRetryAttempts": 0, "onFailure": "trigger:gaveup",
    });
    let answer = feed_trigger(&s, "rmap", "redis/batches", params, "batch").await;
    assert_eq!(answer["success"], true, "{answer}");
    let m = wait_checkpoint(&s, "rmap-r", ids[9]).await;
    assert_eq!(m["destinationDeliveries"], 1, "{m}");
    // Batches of three from the first entry: 4 failed in [4, 5, 6], given up at once.
    let dead = destination_records(&s, "dead", 1).await;
    let info = &dead[0]["StreamBatchInfo"];
    assert_eq!(
        info["startSequenceNumber"],
        ids[3].to_string(),
        "{}",
        dead[0]
    );
    assert_eq!(info["endSequenceNumber"], ids[5].to_string(), "{}", dead[0]);
    let mut done = BTreeSet::new();
    for (seen, record) in batches(&s, "batch").await {
        if record["response"]["result"]["batchItemFailures"].is_null() {
            done.extend(seen);
        }
    }
    let expected: BTreeSet<u64> = [0, 1, 2, 6, 7, 8, 9].iter().map(|i| ids[*i]).collect();
    assert_eq!(done, expected);
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_feed_that_names_another_stream_starts_its_mappings_again() {
    let Some(url) = nats("the stream mapping update test") else {
        return;
    };
    let (one, two) = (unique("MAPONE"), unique("MAPTWO"));
    let js = stream(&url, &one).await;
    stream(&url, &two).await;
    for n in 1..=5u64 {
        publish(&js, format!("{one}.k"), json!({ "n": n })).await;
    }
    for n in 1..=3u64 {
        publish(&js, format!("{two}.k"), json!({ "n": n })).await;
    }
    let s = server();
    s.create("batch", &function("batch"), json!({})).await;
    let params = json!({ "url": url, "stream": one, "startingPosition": "oldest" });
    let answer = feed_trigger(&s, "moves", "nats/stream", params, "batch").await;
    assert_eq!(answer["success"], true, "{answer}");
    wait_checkpoint(&s, "moves-r", 5).await;
    // Only a mapping parameter changes: the checkpoint stays.
    let answer = call_feed(
        &s,
        "nats/stream",
        "UPDATE",
        "moves",
        json!({ "batchSize": 2 }),
    )
    .await;
    assert_eq!(answer["success"], true, "{answer}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(checkpoint_of(&mapping(&s, "moves-r").await), 5);
    // Another stream: read from its own first record, not from the first one's checkpoint.
    let answer = call_feed(
        &s,
        "nats/stream",
        "UPDATE",
        "moves",
        json!({ "stream": two }),
    )
    .await;
    assert_eq!(answer["success"], true, "{answer}");
    let m = wait_checkpoint(&s, "moves-r", 3).await;
    assert_eq!(m["batches"], 2, "counters start again with the stream: {m}");
    let last: Vec<u64> = batches(&s, "batch").await.last().unwrap().0.clone();
    assert_eq!(
        last,
        [3],
        "batches of two from the second stream's first record"
    );
    // Gust's own parameter cannot be given.
    let answer = call_feed(
        &s,
        "nats/stream",
        "UPDATE",
        "moves",
        json!({ "streamSince": 1 }),
    )
    .await;
    assert_eq!(answer["success"], false, "{answer}");
}
