//! Tracing (decision 0026): a request's W3C `traceparent` reaches every record of what it
//! caused (a 3-step sequence's steps, a rule's action) as the `traceId` annotation; a
//! malformed one is ignored and a new trace starts; with `--otlp-endpoint` the spans reach a
//! collector (a small OTLP/HTTP receiver here) as one tree with the records' ids, and without
//! it nothing is sent. Spans are read after the server stopped: its shutdown sends what is
//! queued, so no test waits for a timer.

use std::sync::{Arc, Mutex};

use gust_testkit::{Server, function};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use crate::annotation;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const UNSAMPLED_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const UNSAMPLED: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

/// What an OTLP/HTTP receiver got: every span of every `POST /v1/traces`, with its
/// resource's `service.name`, and every other request's path.
#[derive(Default)]
struct Received {
    spans: Vec<(String, Span)>,
    other: Vec<String>,
}

/// A collector on a free port that accepts `POST /v1/traces` (protobuf) and answers 200;
/// its base URL and what it received. It runs on a thread of its own: it must take the spans
/// a server's shutdown sends while the test waits for that server to exit.
async fn receiver() -> (String, Arc<Mutex<Received>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received: Arc<Mutex<Received>> = Arc::default();
    let into = received.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve_connection(conn, into.clone()));
            }
        });
    });
    (url, received)
}

/// HTTP/1.1 requests on one connection (the exporter keeps it open), each read whole.
async fn serve_connection(conn: tokio::net::TcpStream, into: Arc<Mutex<Received>>) {
    let mut conn = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_string();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if conn.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body).await.unwrap();
        if path == "/v1/traces" {
            let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            let mut r = into.lock().unwrap();
            for resource in request.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|a| a.key == "service.name")
                    .and_then(|a| a.value.as_ref())
                    .map(|v| format!("{:?}", v.value))
                    .unwrap_or_default();
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        r.spans.push((service.clone(), span));
                    }
                }
            }
        } else {
            into.lock().unwrap().other.push(path);
        }
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if conn.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Invokes `name` blocking with `params`, sending `traceparent` (if any): the record.
async fn invoke_traced(s: &Server, name: &str, params: Value, traceparent: Option<&str>) -> Value {
    let (u, k) = s.auth.split_once(':').unwrap();
    let mut req = s
        .client
        .post(s.url(&format!(
            "/api/v1/namespaces/_/actions/{name}?blocking=true"
        )))
        .basic_auth(u, Some(k))
        .json(&params);
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// A sequence `three` of three `inc` steps.
async fn three_steps(s: &Server) {
    s.create("inc", &function("inc"), json!({})).await;
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/three",
            Some(json!({ "exec": { "kind": "sequence", "components": ["/_/inc", "/_/inc", "/_/inc"] } })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The sequence's record and its components' records, in order.
async fn records_of(s: &Server, seq: &Value) -> Vec<Value> {
    let mut out = vec![seq.clone()];
    for id in seq["logs"].as_array().unwrap() {
        out.push(s.wait_for_record(id.as_str().unwrap()).await);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The span's attribute `key`, as text.
fn attribute(span: &Span, key: &str) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            V::StringValue(s) => s.clone(),
            V::IntValue(i) => i.to_string(),
            V::BoolValue(b) => b.to_string(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_trace_crosses_a_sequence_and_reaches_the_collector_as_one_tree() {
    let (url, received) = receiver().await;
    let mut s = Server::start_with(env!("CARGO_BIN_EXE_gust"), &["--otlp-endpoint", &url]);
    assert!(s.output().contains("gust: spans exported over OTLP"));
    three_steps(&s).await;
    let seq = invoke_traced(&s, "three", json!({ "n": 1 }), Some(TRACEPARENT)).await;
    assert_eq!(seq["response"]["result"]["n"], 4, "{seq}");
    let records = records_of(&s, &seq).await;
    assert_eq!(records.len(), 4);
    for r in &records {
        assert_eq!(annotation(r, "traceId"), TRACE_ID, "{r}");
    }
    // A trace its caller does not sample keeps its id in the records but is not exported.
    let unsampled = invoke_traced(&s, "three", json!({ "n": 1 }), Some(UNSAMPLED)).await;
    assert_eq!(annotation(&unsampled, "traceId"), UNSAMPLED_TRACE_ID);
    assert!(s.terminate(), "the server stops cleanly");

    let received = received.lock().unwrap();
    assert!(received.other.is_empty(), "{:?}", received.other);
    let spans: Vec<&Span> = received.spans.iter().map(|(_, s)| s).collect();
    assert!(
        received
            .spans
            .iter()
            .all(|(service, _)| service.contains("gust")),
        "service.name is gust"
    );
    // One trace: the sampled caller's.
    for span in &spans {
        assert_eq!(hex(&span.trace_id), TRACE_ID, "{}", span.name);
    }
    let by_name =
        |name: &str| -> Vec<&Span> { spans.iter().copied().filter(|s| s.name == name).collect() };
    // The sequence's span is a child of the caller's; each step's invoke span a child of
    // the sequence's; each run a child of its step's invoke span, for the step's record.
    let sequence = by_name("sequence guest/three");
    assert_eq!(sequence.len(), 1, "{:?}", names(&spans));
    let sequence = sequence[0];
    assert_eq!(hex(&sequence.parent_span_id), CALLER_SPAN);
    assert_eq!(
        attribute(sequence, "faas.invocation_id"),
        seq["activationId"].as_str().unwrap()
    );
    let invokes = by_name("invoke guest/inc");
    let runs = by_name("run guest/inc");
    assert_eq!((invokes.len(), runs.len()), (3, 3), "{:?}", names(&spans));
    for step in &records[1..] {
        let id = step["activationId"].as_str().unwrap();
        let invoke = invokes
            .iter()
            .find(|s| attribute(s, "faas.invocation_id") == id)
            .expect("an invoke span per step");
        assert_eq!(
            invoke.parent_span_id, sequence.span_id,
            "a child of the sequence"
        );
        let run = runs
            .iter()
            .find(|s| attribute(s, "faas.invocation_id") == id)
            .expect("a run span per step");
        assert_eq!(
            run.parent_span_id, invoke.span_id,
            "a child of its invoke span"
        );
        assert_eq!(
            attribute(run, "gust.wait_ms"),
            annotation(step, "waitTime").to_string()
        );
        assert_eq!(attribute(run, "gust.status_code"), "0");
        assert!(run.start_time_unix_nano <= run.end_time_unix_nano);
    }
    // Every span's id is unique.
    let mut ids: Vec<&[u8]> = spans.iter().map(|s| s.span_id.as_slice()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), spans.len());
}

fn names(spans: &[&Span]) -> Vec<String> {
    spans.iter().map(|s| s.name.clone()).collect()
}

#[tokio::test]
async fn a_malformed_or_missing_traceparent_starts_a_new_trace() {
    let s = crate::server();
    s.create("echo", &function("echo"), json!({})).await;
    let mut seen = Vec::new();
    for tp in [
        None,
        Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
        Some("garbage"),
    ] {
        let r = invoke_traced(&s, "echo", json!({}), tp).await;
        let id = annotation(&r, "traceId").as_str().unwrap().to_string();
        assert_eq!(id.len(), 32, "{tp:?}: {id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{id}"
        );
        assert_ne!(id, TRACE_ID, "{tp:?} is ignored");
        assert_ne!(id, "0".repeat(32));
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "each invocation starts a trace of its own");
    // A valid one is kept.
    let r = invoke_traced(&s, "echo", json!({}), Some(TRACEPARENT)).await;
    assert_eq!(annotation(&r, "traceId"), TRACE_ID);
}

#[tokio::test]
async fn a_trigger_fire_carries_its_trace_to_the_rules_action() {
    let s = crate::server();
    s.create("echo", &function("echo"), json!({})).await;
    let r = s
        .call("PUT", "/api/v1/namespaces/_/triggers/t", Some(json!({})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/rules/r",
            Some(json!({ "trigger": "/_/t", "action": "/_/echo" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fired = s
        .web(
            "POST",
            "/api/v1/namespaces/_/triggers/t",
            &[
                ("authorization", &basic(&s.auth)),
                ("traceparent", TRACEPARENT),
                ("content-type", "application/json"),
            ],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(fired.status, 202, "{}", fired.body);
    let trigger = s
        .wait_for_record(fired.body["activationId"].as_str().unwrap())
        .await;
    assert_eq!(annotation(&trigger, "traceId"), TRACE_ID);
    let line: Value = serde_json::from_str(trigger["logs"][0].as_str().unwrap()).unwrap();
    let action = s
        .wait_for_record(line["activationId"].as_str().unwrap())
        .await;
    assert_eq!(annotation(&action, "traceId"), TRACE_ID);
    assert_eq!(action["cause"], trigger["activationId"]);
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_sent() {
    // The receiver is where spans would go; the server is not told.
    let (_url, received) = receiver().await;
    let mut s = crate::server();
    three_steps(&s).await;
    let seq = invoke_traced(&s, "three", json!({ "n": 1 }), Some(TRACEPARENT)).await;
    assert_eq!(annotation(&seq, "traceId"), TRACE_ID);
    assert!(!s.output().contains("spans exported"));
    assert!(s.terminate());
    let received = received.lock().unwrap();
    assert!(received.spans.is_empty() && received.other.is_empty());
}

#[tokio::test]
async fn an_unreachable_collector_fails_no_invocation() {
    // A port nothing listens on (bound, then closed).
    let url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut s = Server::start_with(env!("CARGO_BIN_EXE_gust"), &["--otlp-endpoint", &url]);
    three_steps(&s).await;
    for n in 0..5 {
        let seq = invoke_traced(&s, "three", json!({ "n": n }), Some(TRACEPARENT)).await;
        assert_eq!(seq["response"]["result"]["n"], n + 3);
    }
    assert!(
        s.terminate(),
        "the shutdown's flush gives up and the server stops cleanly"
    );
}

#[tokio::test]
async fn a_bad_endpoint_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gust"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-client-config"])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--otlp-endpoint", "collector:4318"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not an http:// or https:// URL"), "{err}");
}

fn basic(auth: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(auth)
    )
}

#[tokio::test]
async fn in_a_cluster_the_trace_context_crosses_the_bus() {
    let (Some(pg), Some(nats)) = (gust_testkit::postgres_url(), gust_testkit::nats_url()) else {
        eprintln!("skipped: the cluster tests need GUST_TEST_POSTGRES_URL and GUST_TEST_NATS_URL");
        return;
    };
    let mut c = gust_testkit::Cluster::new(env!("CARGO_BIN_EXE_gust"), &pg, &nats);
    c.add_controller("c1");
    c.add_invoker("i1");
    let host = c.apihosts()[0].clone();
    let http = reqwest::Client::new();
    let (uuid, key) = c.auth.split_once(':').unwrap();
    use base64::Engine as _;
    let code = base64::engine::general_purpose::STANDARD.encode(function("inc"));
    let r = http
        .put(format!("{host}/api/v1/namespaces/_/actions/inc"))
        .basic_auth(uuid, Some(key))
        .json(&json!({ "exec": { "kind": "wasm", "code": code } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The invoker writes the record from the message it took from NATS.
    let r: Value = http
        .post(format!(
            "{host}/api/v1/namespaces/_/actions/inc?blocking=true"
        ))
        .basic_auth(uuid, Some(key))
        .header("traceparent", TRACEPARENT)
        .json(&json!({ "n": 1 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["response"]["result"]["n"], 2, "{r}");
    assert_eq!(annotation(&r, "traceId"), TRACE_ID);
}

#[tokio::test]
async fn a_webhooks_trace_reaches_the_rules_action() {
    use hmac::{Hmac, Mac as _};
    let s = crate::server();
    s.create("echo", &function("echo"), json!({})).await;
    let secret = "hook secret";
    let answer = crate::sources::feed_trigger(
        &s,
        "gh",
        "webhooks/github",
        json!({ "secret": secret }),
        "echo",
    )
    .await;
    assert_eq!(answer["success"], true, "{answer}");
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let headers = [
        ("content-type", "application/json"),
        ("x-github-event", "push"),
        ("x-github-delivery", "d-trace"),
        ("x-hub-signature-256", signature.as_str()),
        ("traceparent", TRACEPARENT),
    ];
    let r = s.web("POST", "/hooks/guest/gh", &headers, body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let trigger = s
        .wait_for_record(r.body["activationId"].as_str().unwrap())
        .await;
    assert_eq!(annotation(&trigger, "traceId"), TRACE_ID);
    let line: Value = serde_json::from_str(trigger["logs"][0].as_str().unwrap()).unwrap();
    let action = s
        .wait_for_record(line["activationId"].as_str().unwrap())
        .await;
    assert_eq!(annotation(&action, "traceId"), TRACE_ID);
}

#[tokio::test]
async fn a_web_actions_trace_reaches_its_record() {
    let s = crate::server();
    s.create(
        "wecho",
        &function("echo"),
        json!({ "annotations": [{"key": "web-export", "value": true}] }),
    )
    .await;
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/default/wecho.json",
            &[("traceparent", TRACEPARENT)],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.header("x-openwhisk-activation-id").unwrap().to_string();
    let record = s.wait_for_record(&id).await;
    assert_eq!(annotation(&record, "traceId"), TRACE_ID);
}
