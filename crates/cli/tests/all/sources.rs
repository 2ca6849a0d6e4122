//! Event sources as feeds of `whisk.system`: webhooks checked by their signatures, and the
//! message-queue sources against the real brokers of the machine (each test skipped by name
//! when its broker's variable is unset).

use std::time::Duration;

use gust_testkit::{Server, function};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::server;

const TRIGGERS: &str = "/api/v1/namespaces/_/triggers";
const RULES: &str = "/api/v1/namespaces/_/rules";

/// `hex(HMAC-SHA256(secret, body))`.
fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Calls feed `feed` with lifecycle `event` for trigger `trigger` as the CLI does: its
/// response (`result` on success).
pub async fn call_feed(s: &Server, feed: &str, event: &str, trigger: &str, params: Value) -> Value {
    let mut body = params.as_object().cloned().unwrap_or_default();
    body.insert("lifecycleEvent".into(), json!(event));
    body.insert("triggerName".into(), json!(format!("/_/{trigger}")));
    body.insert("authKey".into(), json!(s.auth));
    let r = s
        .call(
            "POST",
            &format!("/api/v1/namespaces/whisk.system/actions/{feed}?blocking=true"),
            Some(Value::Object(body)),
        )
        .await;
    r.body["response"].clone()
}

/// Creates trigger `trigger` fed by `feed` with `params` and a rule to action `action`, as
/// `gust trigger create --feed` and `gust rule create` do; the feed's response.
pub async fn feed_trigger(
    s: &Server,
    trigger: &str,
    feed: &str,
    params: Value,
    action: &str,
) -> Value {
    let r = s
        .call(
            "PUT",
            &format!("{TRIGGERS}/{trigger}"),
            Some(json!({ "annotations": [{"key": "feed", "value": format!("/whisk.system/{feed}")}] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = call_feed(s, feed, "CREATE", trigger, params).await;
    let r = s
        .call(
            "PUT",
            &format!("{RULES}/{trigger}-r"),
            Some(json!({ "trigger": format!("/_/{trigger}"), "action": format!("/_/{action}") })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    answer
}

/// The records of action `name` so far.
pub async fn records_of(s: &Server, name: &str) -> Vec<Value> {
    let r = s
        .call(
            "GET",
            &format!("/api/v1/namespaces/_/activations?name={name}&docs=true&limit=200"),
            None,
        )
        .await;
    r.body.as_array().cloned().unwrap_or_default()
}

/// Waits until action `name` has at least `n` records; returns them.
pub async fn wait_for_records(s: &Server, name: &str, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let records = records_of(s, name).await;
        if records.len() >= n {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("action {name} has fewer than {n} records after 30 s");
}

#[tokio::test]
async fn a_github_webhook_runs_a_function_once_per_delivery_and_never_unsigned() {
    let s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let secret = "It's a Secret to Everybody";
    let answer = feed_trigger(
        &s,
        "gh",
        "webhooks/github",
        json!({ "secret": secret }),
        "echo",
    )
    .await;
    assert_eq!(answer["success"], true, "{answer}");
    let url = answer["result"]["url"].as_str().unwrap().to_string();
    assert!(url.ends_with("/hooks/guest/gh"), "{url}");
    let hook = "/hooks/guest/gh";

    // A signed push: fired, the function gets the event's fields and the delivery.
    let body = br#"{"ref":"refs/heads/main","commits":[{"id":"abc"}]}"#.to_vec();
    let signature = format!("sha256={}", sign(secret, &body));
    let headers = [
        ("content-type", "application/json"),
        ("x-github-event", "push"),
        ("x-github-delivery", "d-1"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    let r = s.web("POST", hook, &headers, body.clone()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    let trigger = s.wait_for_record(&id).await;
    assert_eq!(trigger["name"], "gh");
    let records = wait_for_records(&s, "echo", 1).await;
    let result = &records[0]["response"]["result"]["params"];
    assert_eq!(result["ref"], "refs/heads/main", "{result}");
    assert_eq!(result["__webhook"]["event"], "push", "{result}");
    assert_eq!(result["__webhook"]["delivery"], "d-1", "{result}");

    // The same delivery again (GitHub's redeliver): the same fire, nothing runs twice.
    let r = s.web("POST", hook, &headers, body.clone()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["activationId"], id.as_str());

    // A wrong signature, none, or another body under the right one: 401, nothing fired.
    let wrong = format!("sha256={}", sign("guess", &body));
    for sig in [Some(wrong.as_str()), None, Some(signature.as_str())] {
        let mut h: Vec<(&str, &str)> = vec![
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-github-delivery", "d-2"),
        ];
        if let Some(sig) = sig {
            h.push(("x-hub-signature-256", sig));
        }
        let r = s
            .web("POST", hook, &h, br#"{"ref":"refs/heads/evil"}"#.to_vec())
            .await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(!r.body.to_string().contains(secret));
    }

    // GitHub's ping, on the hook's creation: answered, nothing fired.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":7}"#.to_vec();
    let ping_sig = format!("sha256={}", sign(secret, &ping));
    let r = s
        .web(
            "POST",
            hook,
            &[
                ("content-type", "application/json"),
                ("x-github-event", "ping"),
                ("x-github-delivery", "d-3"),
                ("x-hub-signature-256", ping_sig.as_str()),
            ],
            ping,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A body over the payload limit: 413.
    let big = vec![b' '; 1_500_000];
    let r = s.web("POST", hook, &headers, big).await;
    assert_eq!(r.status, 413, "{}", r.body);

    // A trigger without a webhook, or none at all: 404.
    let r = s
        .web("POST", "/hooks/guest/nope", &[], b"{}".to_vec())
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        records_of(&s, "echo").await.len(),
        1,
        "one delivery, one run"
    );

    // READ shows the configuration without the secret, and the URL.
    let read = call_feed(&s, "webhooks/github", "READ", "gh", json!({})).await;
    assert_eq!(read["result"]["config"]["secret"], "********", "{read}");
    assert!(!read.to_string().contains(secret));
    assert_eq!(read["result"]["url"], url.as_str());
    let t = s.call("GET", &format!("{TRIGGERS}/gh"), None).await;
    assert!(!t.body.to_string().contains(secret));

    // Deleting the trigger deletes its webhook.
    let r = s.call("DELETE", &format!("{TRIGGERS}/gh"), None).await;
    assert_eq!(r.status, 200);
    let r = s.web("POST", hook, &headers, body).await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn a_feed_refuses_unknown_and_missing_parameters_and_creates_nothing() {
    let s = server();
    let r = s
        .call("PUT", &format!("{TRIGGERS}/bad"), Some(json!({})))
        .await;
    assert_eq!(r.status, 200);
    let answer = call_feed(
        &s,
        "webhooks/github",
        "CREATE",
        "bad",
        json!({ "secert": "x" }),
    )
    .await;
    assert_eq!(answer["success"], false, "{answer}");
    assert!(
        answer["result"]["error"].to_string().contains("secert"),
        "{answer}"
    );
    let answer = call_feed(&s, "webhooks/github", "CREATE", "bad", json!({})).await;
    assert_eq!(answer["success"], false, "{answer}");
    let r = s.web("POST", "/hooks/guest/bad", &[], b"{}".to_vec()).await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Another namespace's key cannot feed this trigger.
    let mut body = json!({ "lifecycleEvent": "CREATE", "triggerName": "/_/bad", "secret": "s" });
    body["authKey"] = json!("00000000-0000-0000-0000-000000000000:nope");
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/whisk.system/actions/webhooks/github?blocking=true",
            Some(body),
        )
        .await;
    assert_eq!(r.body["response"]["success"], false, "{}", r.body);
}

/// The URL in `var`, or `None` after saying the test is skipped.
pub fn broker(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped {test}: {var} is not set");
            None
        }
    }
}

/// A name no other run uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Waits until the subscription of trigger `trigger` (feed `feed`) says it is connected; its
/// READ.
pub async fn wait_connected(s: &Server, feed: &str, trigger: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = call_feed(s, feed, "READ", trigger, json!({})).await;
        if last["result"]["status"]["connected"] == true {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("trigger {trigger} is not connected after 30 s: {last}");
}

/// The `data.n` of every record of action `name`, sorted.
async fn numbers(s: &Server, name: &str, n: usize) -> Vec<u64> {
    let mut got: Vec<u64> = wait_for_records(s, name, n)
        .await
        .iter()
        .filter_map(|r| r["response"]["result"]["params"]["data"]["n"].as_u64())
        .collect();
    got.sort_unstable();
    got
}

/// A private `nats-server` with JetStream on a free port, its data in a temporary directory,
/// that a test can stop and start again.
struct PrivateNats {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl PrivateNats {
    fn start() -> Option<PrivateNats> {
        if !std::path::Path::new("/usr/sbin/nats-server").exists() {
            eprintln!("skipped: /usr/sbin/nats-server is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut n = PrivateNats {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        n.up();
        Some(n)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let child = std::process::Command::new("/usr/sbin/nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not start");
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.down();
    }
}

#[tokio::test]
async fn a_jetstream_message_runs_a_function_and_none_is_lost_when_the_broker_restarts() {
    let Some(_) = broker("GUST_TEST_NATS_URL", "the JetStream source test") else {
        return;
    };
    let Some(mut nats) = PrivateNats::start() else {
        return;
    };
    let s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let params = json!({ "url": nats.url(), "stream": "ORDERS", "consumer": "gust-orders" });
    let answer = feed_trigger(&s, "orders", "nats/jetstream", params, "echo").await;
    assert_eq!(answer["success"], true, "{answer}");
    wait_connected(&s, "nats/jetstream", "orders").await;
    for n in 0..2u64 {
        js.publish("orders.new", json!({ "n": n }).to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // A message with a W3C `traceparent` header: its run continues that trace.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").as_str(),
    );
    js.publish_with_headers("orders.new", headers, json!({ "n": 2 }).to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(numbers(&s, "echo", 3).await, [0, 1, 2]);
    let records = records_of(&s, "echo").await;
    let first = &records[0]["response"]["result"]["params"];
    assert_eq!(first["stream"], "ORDERS", "{first}");
    for r in &records {
        let traced = r["response"]["result"]["params"]["data"]["n"] == 2;
        assert_eq!(
            crate::annotation(r, "traceId") == trace,
            traced,
            "only the message that carried the trace continues it: {r}"
        );
    }

    // The broker goes down mid-stream and comes back: the subscription reconnects, and what
    // is published after reaches the function once.
    nats.down();
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.up();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for n in 3..6u64 {
        js.publish("orders.new", json!({ "n": n }).to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(numbers(&s, "echo", 6).await, [0, 1, 2, 3, 4, 5]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(records_of(&s, "echo").await.len(), 6, "each message once");
}

/// Publishes `{"n": n}` for each of `ns` to MQTT topic `topic` at QoS 1.
async fn mqtt_publish(url: &str, topic: &str, ns: std::ops::Range<u64>) {
    let hostport = url.trim_start_matches("mqtt://");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "1883"));
    let mut opts = rumqttc::MqttOptions::new(unique("gust-test-pub-"), host, port.parse().unwrap());
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 16);
    let want = ns.end - ns.start;
    for n in ns {
        client
            .publish(
                topic,
                rumqttc::QoS::AtLeastOnce,
                false,
                json!({ "n": n }).to_string(),
            )
            .await
            .unwrap();
    }
    let mut acked = 0;
    while acked < want {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => panic!("publishing to MQTT failed: {other:?}"),
        }
    }
    let _ = client.disconnect().await;
}

#[tokio::test]
async fn an_mqtt_message_runs_a_function_and_none_is_lost_while_the_server_is_down() {
    let Some(url) = broker("GUST_TEST_MQTT_URL", "the MQTT source test") else {
        return;
    };
    let mut s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let topic = unique("gust/test/");
    let params = json!({
        "url": url,
        "topic": topic,
        "qos": 1,
        "clientId": unique("gust-sub-"),
    });
    let answer = feed_trigger(&s, "mq", "mqtt/subscribe", params, "echo").await;
    assert_eq!(answer["success"], true, "{answer}");
    wait_connected(&s, "mqtt/subscribe", "mq").await;
    mqtt_publish(&url, &topic, 0..3).await;
    assert_eq!(numbers(&s, "echo", 3).await, [0, 1, 2]);
    let first = &records_of(&s, "echo").await[0]["response"]["result"]["params"];
    assert_eq!(first["topic"], topic.as_str(), "{first}");

    // Gust is killed; messages published meanwhile wait in the broker's session and run
    // after the restart.
    s.kill();
    mqtt_publish(&url, &topic, 3..5).await;
    let s = s.restart();
    assert_eq!(numbers(&s, "echo", 5).await, [0, 1, 2, 3, 4]);

    // An unreachable broker: the feed says why and keeps nothing.
    let r = s
        .call("PUT", &format!("{TRIGGERS}/dead"), Some(json!({})))
        .await;
    assert_eq!(r.status, 200);
    let bad = json!({ "url": "mqtt://127.0.0.1:1", "topic": "x" });
    let answer = call_feed(&s, "mqtt/subscribe", "CREATE", "dead", bad).await;
    assert_eq!(answer["success"], false, "{answer}");
    let read = call_feed(&s, "mqtt/subscribe", "READ", "dead", json!({})).await;
    assert_eq!(read["success"], false, "no subscription was kept: {read}");
}

#[tokio::test]
async fn a_rabbitmq_message_runs_a_function_and_none_is_lost_while_the_server_is_down() {
    use gust_source::Source as _;
    let Some(url) = broker("GUST_TEST_AMQP_URL", "the AMQP source test") else {
        return;
    };
    let mut s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let queue = unique("gust-test-");
    let params = json!({ "url": url, "queue": queue, "declare": true });
    let answer = feed_trigger(&s, "rq", "amqp/consume", params, "echo").await;
    assert_eq!(answer["success"], true, "{answer}");
    wait_connected(&s, "amqp/consume", "rq").await;
    let out = json!({ "url": url, "routingKey": queue });
    let out = gust_source_amqp::output_config(out.as_object().unwrap()).unwrap();
    let amqp = gust_source_amqp::Amqp;
    for n in 0..3u64 {
        amqp.publish(&out, &json!({ "n": n })).await.unwrap();
    }
    assert_eq!(numbers(&s, "echo", 3).await, [0, 1, 2]);
    let first = &records_of(&s, "echo").await[0]["response"]["result"]["params"];
    assert_eq!(first["routingKey"], queue.as_str(), "{first}");

    s.kill();
    for n in 3..5u64 {
        amqp.publish(&out, &json!({ "n": n })).await.unwrap();
    }
    let s = s.restart();
    assert_eq!(numbers(&s, "echo", 5).await, [0, 1, 2, 3, 4]);

    // A wrong password: the feed says so, without the password.
    let r = s
        .call("PUT", &format!("{TRIGGERS}/denied"), Some(json!({})))
        .await;
    assert_eq!(r.status, 200);
    let bad_url = url.replacen("guest:guest@", "guest:not-the-password@", 1);
    let bad = json!({ "url": bad_url, "queue": queue });
    let answer = call_feed(&s, "amqp/consume", "CREATE", "denied", bad).await;
    assert_eq!(answer["success"], false, "{answer}");
    assert!(!answer.to_string().contains("not-the-password"), "{answer}");
}

#[tokio::test]
async fn a_redis_entry_runs_a_function_a_poison_one_is_moved_aside_and_results_are_published() {
    let Some(url) = broker("GUST_TEST_REDIS_URL", "the Redis source test") else {
        return;
    };
    let s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let stream = unique("gust-test-");
    let params = json!({ "url": url, "stream": stream, "group": "g" });
    let answer = feed_trigger(&s, "rs", "redis/stream", params, "echo").await;
    assert_eq!(answer["success"], true, "{answer}");
    // The rule publishes each result to another stream (an output binding).
    let out = format!("{stream}:out");
    let r = s
        .call(
            "PUT",
            &format!("{RULES}/rs-r?overwrite=true"),
            Some(json!({
                "trigger": "/_/rs", "action": "/_/echo",
                "annotations": [{"key": "output", "value": {"source": "redis", "url": url, "stream": out}}],
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // An output the source cannot take is refused with the rule.
    let r = s
        .call(
            "PUT",
            &format!("{RULES}/bad-out"),
            Some(json!({
                "trigger": "/_/rs", "action": "/_/echo",
                "annotations": [{"key": "output", "value": {"source": "redis", "strem": "x"}}],
            })),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    wait_connected(&s, "redis/stream", "rs").await;

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let xadd = |data: String| {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&stream).arg("*").arg("data").arg(data);
        cmd
    };
    let _: String = xadd(json!({"n": 1}).to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    // Nested deeper than a record may hold (but not than JSON parsers take): it cannot be
    // fired, and is moved aside.
    let poison = format!("{}{}", "[".repeat(110), "]".repeat(110));
    let _: String = xadd(format!("{{\"n\": 99, \"deep\": {poison}}}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = xadd(json!({"n": 2}).to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(numbers(&s, "echo", 2).await, [1, 2]);
    let dead: redis::Value = redis::cmd("XLEN")
        .arg(format!("{stream}:dead"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        dead,
        redis::Value::Int(1),
        "the poison entry was moved aside"
    );
    let read = call_feed(&s, "redis/stream", "READ", "rs", json!({})).await;
    assert_eq!(read["result"]["status"]["movedAside"], 1, "{read}");
    // Both results reached the output stream.
    let mut published = 0;
    for _ in 0..100 {
        let n: redis::Value = redis::cmd("XLEN")
            .arg(&out)
            .query_async(&mut conn)
            .await
            .unwrap();
        published = match n {
            redis::Value::Int(n) => n,
            _ => 0,
        };
        if published >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(published, 2, "each result was published once");
    let _: redis::Value = redis::cmd("DEL")
        .arg(&stream)
        .arg(&out)
        .arg(format!("{stream}:dead"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn slack_standard_webhooks_and_cloudevents_are_checked_and_deduplicated() {
    use base64::Engine as _;
    let s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // Slack: the url_verification handshake is answered; a stale timestamp is refused.
    feed_trigger(
        &s,
        "sl",
        "webhooks/slack",
        json!({ "signingSecret": "sss" }),
        "echo",
    )
    .await;
    let body = br#"{"token":"t","challenge":"ch-123","type":"url_verification"}"#.to_vec();
    let slack_sig = |ts: u64, body: &[u8]| {
        let mut base = format!("v0:{ts}:").into_bytes();
        base.extend_from_slice(body);
        format!("v0={}", sign("sss", &base))
    };
    let (ts, sig) = (now.to_string(), slack_sig(now, &body));
    let r = s
        .web(
            "POST",
            "/hooks/guest/sl",
            &[
                ("content-type", "application/json"),
                ("x-slack-request-timestamp", &ts),
                ("x-slack-signature", &sig),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!("ch-123"));
    let old = now - 600;
    let (ts, sig) = (old.to_string(), slack_sig(old, &body));
    let r = s
        .web(
            "POST",
            "/hooks/guest/sl",
            &[
                ("content-type", "application/json"),
                ("x-slack-request-timestamp", &ts),
                ("x-slack-signature", &sig),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 401, "a replay outside the window: {}", r.body);

    // Standard Webhooks: signed with the secret's key; the same webhook-id fires once.
    let key = b"0123456789abcdef0123456789abcdef";
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    feed_trigger(
        &s,
        "sw",
        "webhooks/standard",
        json!({ "secret": secret }),
        "echo",
    )
    .await;
    let body = br#"{"type":"invoice.paid","n":1}"#.to_vec();
    let mut signed = format!("msg_1.{now}.").into_bytes();
    signed.extend_from_slice(&body);
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(&signed);
    let good = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let signatures = format!(
        "v1,{} v1,{good}",
        base64::engine::general_purpose::STANDARD.encode([0u8; 32])
    );
    let ts = now.to_string();
    let headers = [
        ("content-type", "application/json"),
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", signatures.as_str()),
    ];
    let first = s
        .web("POST", "/hooks/guest/sw", &headers, body.clone())
        .await;
    assert_eq!(first.status, 202, "{}", first.body);
    let again = s
        .web("POST", "/hooks/guest/sw", &headers, body.clone())
        .await;
    assert_eq!(again.body["activationId"], first.body["activationId"]);
    let forged = [
        ("content-type", "application/json"),
        ("webhook-id", "msg_2"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", signatures.as_str()),
    ];
    let r = s.web("POST", "/hooks/guest/sw", &forged, body).await;
    assert_eq!(r.status, 401, "a signature of another message: {}", r.body);

    // CloudEvents in binary mode: attributes from ce- headers; source and id de-duplicate.
    feed_trigger(&s, "ce", "webhooks/cloudevents", json!({}), "echo").await;
    let headers = [
        ("content-type", "application/json"),
        ("ce-specversion", "1.0"),
        ("ce-id", "e-1"),
        ("ce-source", "/orders"),
        ("ce-type", "com.example.order.created"),
    ];
    let r = s
        .web("POST", "/hooks/guest/ce", &headers, br#"{"n":7}"#.to_vec())
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r2 = s
        .web("POST", "/hooks/guest/ce", &headers, br#"{"n":7}"#.to_vec())
        .await;
    assert_eq!(r2.body["activationId"], r.body["activationId"]);
    let r = s
        .web(
            "POST",
            "/hooks/guest/ce",
            &[
                ("content-type", "application/json"),
                ("ce-specversion", "1.0"),
            ],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400, "attributes missing: {}", r.body);

    // One run each for the Standard Webhook and the CloudEvent.
    let records = wait_for_records(&s, "echo", 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(records_of(&s, "echo").await.len(), 2, "{records:?}");
    let ce = records_of(&s, "echo")
        .await
        .into_iter()
        .find(|r| r["response"]["result"]["params"]["type"] == "com.example.order.created")
        .expect("the CloudEvent's run");
    assert_eq!(ce["response"]["result"]["params"]["data"]["n"], 7, "{ce}");
}

#[tokio::test]
async fn a_throttled_namespace_holds_a_sources_messages_instead_of_dropping_them() {
    let Some(url) = broker("GUST_TEST_REDIS_URL", "the source back-pressure test") else {
        return;
    };
    let s = server();
    // One invocation in flight at a time, and an action that takes a second.
    s.admin(&["limits", "set", "guest", "--concurrent-invocations", "1"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s.create("slow", &function("slow"), json!({})).await;
    let r = s
        .call(
            "PUT",
            &format!("{TRIGGERS}/bp"),
            Some(json!({ "parameters": [{"key": "ms", "value": 1000}] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stream = unique("gust-test-bp-");
    let params = json!({ "url": url, "stream": stream, "group": "g" });
    let answer = call_feed(&s, "redis/stream", "CREATE", "bp", params).await;
    assert_eq!(answer["success"], true, "{answer}");
    let r = s
        .call(
            "PUT",
            &format!("{RULES}/bp-r"),
            Some(json!({ "trigger": "/_/bp", "action": "/_/slow" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_connected(&s, "redis/stream", "bp").await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for n in 0..3 {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("data")
            .arg(json!({ "n": n }).to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // Every message runs, one after the other; none is refused with a 429.
    let runs = wait_for_records(&s, "slow", 3).await;
    assert_eq!(runs.len(), 3);
    let fires = records_of(&s, "bp").await;
    assert_eq!(fires.len(), 3, "one trigger record per message: {fires:?}");
    for f in &fires {
        let line: Value = serde_json::from_str(f["logs"][0].as_str().unwrap()).unwrap();
        assert_eq!(line["success"], true, "{line}");
        assert!(f["response"]["result"]["__event_key"].is_string(), "{f}");
    }
    let _: redis::Value = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_webhook_over_the_namespaces_fires_per_minute_is_a_429_that_fires_nothing() {
    let s = server();
    s.admin(&["limits", "set", "guest", "--fires-per-minute", "1"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s.create("echo", &function("echo"), json!({})).await;
    let params = json!({ "secret": "k", "idHeader": "x-id" });
    feed_trigger(&s, "h", "webhooks/hmac", params, "echo").await;
    let body = br#"{"n":1}"#.to_vec();
    let sig = sign("k", &body);
    let send = |id: &'static str| {
        let (body, sig) = (body.clone(), sig.clone());
        let s = &s;
        async move {
            s.web(
                "POST",
                "/hooks/guest/h",
                &[
                    ("content-type", "application/json"),
                    ("x-signature", &sig),
                    ("x-id", id),
                ],
                body,
            )
            .await
        }
    };
    let first = send("1").await;
    assert_eq!(first.status, 202, "{}", first.body);
    // The same delivery again is not a second fire; another one is over the limit.
    assert_eq!(send("1").await.status, 202);
    let r = send("2").await;
    assert_eq!(r.status, 429, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(records_of(&s, "echo").await.len(), 1);
}
