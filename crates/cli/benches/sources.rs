//! Event sources under load (issue 23): for each broker this machine runs, messages per
//! second from a publisher through a trigger and a rule to a Wasm action (`stamp`, named
//! `echo` here: it answers its parameters and the time it started), and the delay from a
//! message's publication to its action's start (p50 and p99), beside the same broker's own publish-to-consume rate and delay measured in the
//! same run with the same client library.
//!
//!   cargo bench -p gust --bench sources [-- MESSAGES]
//!
//! Each broker is measured twice: a burst of MESSAGES (default 800: Mosquitto's default
//! `max_queued_messages` of 1,000 drops what a slower consumer leaves queued beyond it) for
//! the rate, and 400 messages at 200 per second for the delay of the path itself.
//!
//! Brokers: NATS JetStream (`GUST_TEST_NATS_URL`, default nats://127.0.0.1:4222), MQTT
//! (`GUST_TEST_MQTT_URL`, mqtt://127.0.0.1:1883), AMQP (`GUST_TEST_AMQP_URL`) and Redis
//! streams (`GUST_TEST_REDIS_URL`); one that does not answer is skipped. The publisher, the
//! server and the action share this machine.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use gust_testkit::{Server, function};
use serde_json::{Value, json};

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", now_us())
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn answers(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let hostport = rest.rsplit('@').next().unwrap_or(rest);
    let hostport = hostport.split('/').next().unwrap_or(hostport);
    std::net::TcpStream::connect_timeout(
        &match hostport.parse() {
            Ok(a) => a,
            Err(_) => return false,
        },
        Duration::from_secs(1),
    )
    .is_ok()
}

/// p50 and p99 of `v` (sorted in place).
fn percentiles(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

/// One line of the report.
fn report(what: &str, n: usize, secs: f64, delays_ms: &mut [f64]) {
    let (p50, p99) = percentiles(delays_ms);
    println!(
        "{what:<40} {n:>6} msgs  {:>9.0} msg/s  delay p50 {p50:>8.2} ms  p99 {p99:>8.2} ms",
        n as f64 / secs
    );
}

/// A broker under test: how to publish `{"t": us, "n": n}` and how to consume it raw.
#[derive(Clone, Copy, Debug)]
enum Broker {
    Nats,
    Mqtt,
    Amqp,
    Redis,
}

impl Broker {
    fn url(self) -> String {
        match self {
            Broker::Nats => env_or("GUST_TEST_NATS_URL", "nats://127.0.0.1:4222"),
            Broker::Mqtt => env_or("GUST_TEST_MQTT_URL", "mqtt://127.0.0.1:1883"),
            Broker::Amqp => env_or(
                "GUST_TEST_AMQP_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            ),
            Broker::Redis => env_or("GUST_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
        }
    }
}

/// Publishes `n` messages `{"t": now_us, "n": i}` to `dest`: as fast as the broker takes
/// them, or one every `pace`.
async fn publish(broker: Broker, url: &str, dest: &str, n: usize, pace: Option<Duration>) {
    let pause = || async {
        if let Some(p) = pace {
            tokio::time::sleep(p).await;
        }
    };
    match broker {
        Broker::Nats => {
            let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
            let mut acks = Vec::with_capacity(n);
            for i in 0..n {
                let body = json!({ "t": now_us(), "n": i }).to_string();
                acks.push(js.publish(dest.to_string(), body.into()).await.unwrap());
                pause().await;
            }
            for a in acks {
                a.await.unwrap();
            }
        }
        Broker::Mqtt => {
            let (host, port) = mqtt_host(url);
            let mut opts = rumqttc::MqttOptions::new(unique("bench-pub-"), host, port);
            opts.set_inflight(100);
            let (client, mut events) = rumqttc::AsyncClient::new(opts, 1000);
            let pump = tokio::spawn(async move {
                let mut acked = 0;
                while acked < n {
                    if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) =
                        events.poll().await
                    {
                        acked += 1;
                    }
                }
            });
            for i in 0..n {
                let body = json!({ "t": now_us(), "n": i }).to_string();
                client
                    .publish(dest, rumqttc::QoS::AtLeastOnce, false, body)
                    .await
                    .unwrap();
                pause().await;
            }
            pump.await.unwrap();
        }
        Broker::Amqp => {
            let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
                .await
                .unwrap();
            let channel = conn.create_channel().await.unwrap();
            channel
                .confirm_select(lapin::options::ConfirmSelectOptions::default())
                .await
                .unwrap();
            let mut confirms = Vec::with_capacity(n);
            for i in 0..n {
                let body = json!({ "t": now_us(), "n": i }).to_string();
                confirms.push(
                    channel
                        .basic_publish(
                            "".into(),
                            dest.into(),
                            lapin::options::BasicPublishOptions::default(),
                            body.as_bytes(),
                            lapin::BasicProperties::default(),
                        )
                        .await
                        .unwrap(),
                );
                pause().await;
            }
            for c in confirms {
                c.await.unwrap();
            }
        }
        Broker::Redis => {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            for i in 0..n {
                let body = json!({ "t": now_us(), "n": i }).to_string();
                let _: String = redis::cmd("XADD")
                    .arg(dest)
                    .arg("*")
                    .arg("data")
                    .arg(body)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                pause().await;
            }
        }
    }
}

fn mqtt_host(url: &str) -> (String, u16) {
    let hostport = url.trim_start_matches("mqtt://");
    let (h, p) = hostport.split_once(':').unwrap_or((hostport, "1883"));
    (h.to_string(), p.parse().unwrap_or(1883))
}

/// The broker alone: publishes `n` messages and consumes them with the same library; the
/// rate and the publish-to-receive delays.
async fn baseline(broker: Broker, n: usize, pace: Option<Duration>) -> (f64, Vec<f64>) {
    let url = broker.url();
    match broker {
        Broker::Nats => {
            let client = async_nats::connect(&url).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let stream = unique("BENCHBASE");
            let subject = format!("{}.in", stream.to_lowercase());
            js.create_stream(async_nats::jetstream::stream::Config {
                name: stream.clone(),
                subjects: vec![subject.clone()],
                ..Default::default()
            })
            .await
            .unwrap();
            let consumer: async_nats::jetstream::consumer::PullConsumer = js
                .create_consumer_on_stream(
                    async_nats::jetstream::consumer::pull::Config {
                        durable_name: Some("bench".into()),
                        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                        ..Default::default()
                    },
                    stream.as_str(),
                )
                .await
                .unwrap();
            let reader = tokio::spawn(async move {
                let mut delays = Vec::with_capacity(n);
                let mut messages = consumer.messages().await.unwrap();
                while delays.len() < n {
                    let m = messages.next().await.unwrap().unwrap();
                    let v: Value = serde_json::from_slice(&m.payload).unwrap();
                    delays.push((now_us() - v["t"].as_u64().unwrap()) as f64 / 1000.0);
                    m.ack().await.unwrap();
                }
                delays
            });
            let started = std::time::Instant::now();
            publish(broker, &url, &subject, n, pace).await;
            let delays = reader.await.unwrap();
            js.delete_stream(&stream).await.unwrap();
            (started.elapsed().as_secs_f64(), delays)
        }
        Broker::Mqtt => {
            let topic = unique("bench/base/");
            let (host, port) = mqtt_host(&url);
            let opts = rumqttc::MqttOptions::new(unique("bench-sub-"), host, port);
            let (client, mut events) = rumqttc::AsyncClient::new(opts, 1000);
            client
                .subscribe(&topic, rumqttc::QoS::AtLeastOnce)
                .await
                .unwrap();
            loop {
                if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) =
                    events.poll().await
                {
                    break;
                }
            }
            let reader = tokio::spawn(async move {
                let mut delays = Vec::with_capacity(n);
                while delays.len() < n {
                    if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) =
                        events.poll().await
                    {
                        let v: Value = serde_json::from_slice(&p.payload).unwrap();
                        delays.push((now_us() - v["t"].as_u64().unwrap()) as f64 / 1000.0);
                    }
                }
                delays
            });
            let started = std::time::Instant::now();
            publish(broker, &url, &topic, n, pace).await;
            let delays = reader.await.unwrap();
            (started.elapsed().as_secs_f64(), delays)
        }
        Broker::Amqp => {
            let queue = unique("bench-base-");
            let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
                .await
                .unwrap();
            let channel = conn.create_channel().await.unwrap();
            channel
                .queue_declare(
                    queue.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        auto_delete: true,
                        ..Default::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await
                .unwrap();
            channel
                .basic_qos(16, lapin::options::BasicQosOptions::default())
                .await
                .unwrap();
            let mut consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    "bench".into(),
                    lapin::options::BasicConsumeOptions::default(),
                    lapin::types::FieldTable::default(),
                )
                .await
                .unwrap();
            let reader = tokio::spawn(async move {
                let mut delays = Vec::with_capacity(n);
                while delays.len() < n {
                    let d = consumer.next().await.unwrap().unwrap();
                    let v: Value = serde_json::from_slice(&d.data).unwrap();
                    delays.push((now_us() - v["t"].as_u64().unwrap()) as f64 / 1000.0);
                    d.ack(lapin::options::BasicAckOptions::default())
                        .await
                        .unwrap();
                }
                delays
            });
            let started = std::time::Instant::now();
            publish(broker, &url, &queue, n, pace).await;
            let delays = reader.await.unwrap();
            (started.elapsed().as_secs_f64(), delays)
        }
        Broker::Redis => {
            let stream = unique("bench-base-");
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let _: redis::Value = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&stream)
                .arg("g")
                .arg("$")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await
                .unwrap();
            let reader = {
                let (stream, mut conn) = (
                    stream.clone(),
                    client.get_multiplexed_async_connection().await.unwrap(),
                );
                tokio::spawn(async move {
                    let mut delays = Vec::with_capacity(n);
                    while delays.len() < n {
                        let reply: redis::Value = redis::cmd("XREADGROUP")
                            .arg("GROUP")
                            .arg("g")
                            .arg("c")
                            .arg("COUNT")
                            .arg(16)
                            .arg("BLOCK")
                            .arg(1000)
                            .arg("STREAMS")
                            .arg(&stream)
                            .arg(">")
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                        for (id, body) in entries(&reply) {
                            let v: Value = serde_json::from_str(&body).unwrap();
                            delays.push((now_us() - v["t"].as_u64().unwrap()) as f64 / 1000.0);
                            let _: redis::Value = redis::cmd("XACK")
                                .arg(&stream)
                                .arg("g")
                                .arg(id)
                                .query_async(&mut conn)
                                .await
                                .unwrap();
                        }
                    }
                    delays
                })
            };
            let started = std::time::Instant::now();
            publish(broker, &url, &stream, n, pace).await;
            let delays = reader.await.unwrap();
            let _: redis::Value = redis::cmd("DEL")
                .arg(&stream)
                .query_async(&mut conn)
                .await
                .unwrap();
            (started.elapsed().as_secs_f64(), delays)
        }
    }
}

/// The (id, `data` field) of every entry of an XREADGROUP reply.
fn entries(reply: &redis::Value) -> Vec<(String, String)> {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).to_string(),
        redis::Value::SimpleString(s) => s.clone(),
        _ => String::new(),
    };
    let mut out = Vec::new();
    let redis::Value::Array(streams) = reply else {
        return out;
    };
    for s in streams {
        let redis::Value::Array(parts) = s else {
            continue;
        };
        let Some(redis::Value::Array(items)) = parts.get(1) else {
            continue;
        };
        for item in items {
            let redis::Value::Array(pair) = item else {
                continue;
            };
            let (Some(id), Some(redis::Value::Array(fields))) = (pair.first(), pair.get(1)) else {
                continue;
            };
            if let Some(body) = fields.get(1) {
                out.push((text(id), text(body)));
            }
        }
    }
    out
}

/// Calls feed `feed` (CREATE) for trigger `trigger` with `params`.
async fn create_feed(s: &Server, feed: &str, trigger: &str, params: Value) {
    let r = s
        .call(
            "PUT",
            &format!("/api/v1/namespaces/_/triggers/{trigger}"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut body = params.as_object().cloned().unwrap();
    body.insert("lifecycleEvent".into(), json!("CREATE"));
    body.insert("triggerName".into(), json!(format!("/_/{trigger}")));
    body.insert("authKey".into(), json!(s.auth));
    let r = s
        .call(
            "POST",
            &format!("/api/v1/namespaces/whisk.system/actions/{feed}?blocking=true"),
            Some(Value::Object(body)),
        )
        .await;
    assert_eq!(r.body["response"]["success"], true, "{}", r.body);
    let r = s
        .call(
            "PUT",
            &format!("/api/v1/namespaces/_/rules/{trigger}-r"),
            Some(json!({ "trigger": trigger, "action": "echo" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for _ in 0..300 {
        let mut body = json!({ "lifecycleEvent": "READ", "triggerName": format!("/_/{trigger}") });
        body["authKey"] = json!(s.auth);
        let r = s
            .call(
                "POST",
                &format!("/api/v1/namespaces/whisk.system/actions/{feed}?blocking=true"),
                Some(body),
            )
            .await;
        if r.body["response"]["result"]["status"]["connected"] == true {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{trigger} did not connect");
}

/// Every record of action `name` (paged).
async fn records(s: &Server, name: &str) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let r = s
            .call(
                "GET",
                &format!(
                    "/api/v1/namespaces/_/activations?name={name}&docs=true&limit=200&skip={}",
                    all.len()
                ),
                None,
            )
            .await;
        let page = r.body.as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

async fn count(s: &Server, name: &str) -> u64 {
    let r = s
        .call(
            "GET",
            &format!("/api/v1/namespaces/_/activations?name={name}&count=true"),
            None,
        )
        .await;
    r.body["activations"].as_u64().unwrap_or(0)
}

/// Through Gust: `n` messages through a trigger and a rule to `echo`, published as
/// [`publish`] does; the rate (first publish to the last action's start) and the
/// publish-to-start delays.
async fn through_gust(
    s: &Server,
    broker: Broker,
    n: usize,
    pace: Option<Duration>,
) -> (f64, Vec<f64>) {
    let url = broker.url();
    let trigger = unique("t");
    let (feed, params, dest) = match broker {
        Broker::Nats => {
            let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
            let stream = unique("BENCHGUST");
            let subject = format!("{}.in", stream.to_lowercase());
            js.create_stream(async_nats::jetstream::stream::Config {
                name: stream.clone(),
                subjects: vec![subject.clone()],
                ..Default::default()
            })
            .await
            .unwrap();
            let params = json!({ "url": url, "stream": stream, "consumer": "gust" });
            ("nats/jetstream", params, subject)
        }
        Broker::Mqtt => {
            let topic = unique("bench/gust/");
            let params =
                json!({ "url": url, "topic": topic, "qos": 1, "clientId": unique("gust-bench-") });
            ("mqtt/subscribe", params, topic)
        }
        Broker::Amqp => {
            let queue = unique("bench-gust-");
            let params = json!({ "url": url, "queue": queue, "declare": true });
            ("amqp/consume", params, queue)
        }
        Broker::Redis => {
            let stream = unique("bench-gust-");
            let params = json!({ "url": url, "stream": stream, "group": "gust" });
            ("redis/stream", params, stream)
        }
    };
    create_feed(s, feed, &trigger, params).await;
    let before = count(s, "echo").await;
    let first = now_us();
    publish(broker, &url, &dest, n, pace).await;
    let published = now_us();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while count(s, "echo").await < before + n as u64 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{broker:?}: published {n} in {:.2} s",
        (published - first) as f64 / 1e6
    );
    let recs = records(s, "echo").await;
    let mut last_start = 0u64;
    let mut delays = Vec::with_capacity(n);
    for r in recs
        .iter()
        .filter(|r| r["response"]["result"]["params"]["data"]["t"].as_u64() >= Some(first))
    {
        let t = r["response"]["result"]["params"]["data"]["t"]
            .as_u64()
            .unwrap();
        let start_us = r["response"]["result"]["startedUs"].as_u64().unwrap();
        last_start = last_start.max(start_us);
        delays.push(start_us.saturating_sub(t) as f64 / 1000.0);
    }
    ((last_start.saturating_sub(first)) as f64 / 1e6, delays)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(800);
    let s = Server::start(env!("CARGO_BIN_EXE_gust"));
    s.admin(&[
        "limits",
        "set",
        "guest",
        "--fires-per-minute",
        "1000000000",
        "--invocations-per-minute",
        "1000000000",
        "--concurrent-invocations",
        "1000000000",
    ]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s.create("echo", &function("stamp"), json!({})).await;
    // Paced: one message every 5 ms (200/s), so the delay is the path's, not a queue's.
    let paced = Some(Duration::from_millis(5));
    for broker in [Broker::Nats, Broker::Mqtt, Broker::Amqp, Broker::Redis] {
        let url = broker.url();
        if !answers(&url) {
            println!("{broker:?}: skipped, {url} does not answer");
            continue;
        }
        for (mode, pace, n) in [("burst", None, n), ("200/s", paced, 400)] {
            let (secs, mut delays) = baseline(broker, n, pace).await;
            report(&format!("{broker:?} alone, {mode}"), n, secs, &mut delays);
            let (secs, mut delays) = through_gust(&s, broker, n, pace).await;
            report(
                &format!("{broker:?} -> rule -> Wasm echo, {mode}"),
                delays.len(),
                secs,
                &mut delays,
            );
        }
    }
}
