//! Hostile functions end in the right outcome, and the server keeps serving.

use crate::annotation;
use gust_testkit::{Server, function};
use serde_json::{Value, json};

use crate::server;

/// Creates `name` from test function `name` with `limits`, invokes it blocking with `params`
/// and returns the record; then checks the server still answers a friendly call.
async fn run(s: &Server, name: &str, limits: Value, params: Value) -> Value {
    s.create(name, &function(name), json!({ "limits": limits }))
        .await;
    let r = s.invoke(name, params).await;
    assert!(r.header("x-openwhisk-activation-id").is_some());
    let rec = r.body.clone();
    let ok = s.invoke("hello", json!({})).await;
    assert_eq!(ok.status, 200, "server still serves after {name}");
    assert_eq!(r.status, 502, "{name}: {rec}");
    rec
}

fn error_of(rec: &Value) -> &str {
    rec["response"]["result"]["error"].as_str().unwrap_or("")
}

async fn hostile_server() -> Server {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    s
}

#[tokio::test]
async fn infinite_loop_stops_at_its_timeout() {
    let s = hostile_server().await;
    let rec = run(&s, "spin", json!({"timeout": 300}), json!({})).await;
    assert_eq!(rec["response"]["status"], "action developer error");
    assert_eq!(
        error_of(&rec),
        "The action exceeded its time limits of 300 milliseconds."
    );
    assert_eq!(annotation(&rec, "timeout"), &json!(true));
}

#[tokio::test]
async fn blocking_host_call_stops_at_its_timeout() {
    let s = hostile_server().await;
    let rec = run(&s, "sleep", json!({"timeout": 200}), json!({})).await;
    assert_eq!(
        error_of(&rec),
        "The action exceeded its time limits of 200 milliseconds."
    );
}

#[tokio::test]
async fn memory_growth_stops_at_its_limit() {
    let s = hostile_server().await;
    let rec = run(&s, "memhog", json!({"memory": 128}), json!({})).await;
    assert_eq!(rec["response"]["status"], "action developer error");
    assert_eq!(
        error_of(&rec),
        "The action exhausted its memory and was aborted."
    );
}

#[tokio::test]
async fn stdout_flood_is_a_too_large_result() {
    let s = hostile_server().await;
    let rec = run(&s, "stdoutflood", json!({}), json!({})).await;
    assert_eq!(
        error_of(&rec),
        "The action produced a response that exceeded the allowed length: 13107200 > 1048576 bytes."
    );
}

#[tokio::test]
async fn log_flood_is_truncated_at_the_log_limit() {
    let s = hostile_server().await;
    s.create(
        "logflood",
        &function("logflood"),
        json!({"limits": {"logs": 1}}),
    )
    .await;
    let r = s.invoke("logflood", json!({"lines": 100000})).await;
    assert_eq!(r.status, 200, "{}", r.body["response"]);
    let logs = r.body["logs"].as_array().unwrap();
    let last = logs.last().unwrap().as_str().unwrap();
    assert!(
        last.ends_with(
            "Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."
        ),
        "{last}"
    );
    let kept: usize = logs[..logs.len() - 1]
        .iter()
        .map(|l| l.as_str().unwrap().split_once(" stderr: ").unwrap().1.len())
        .sum();
    assert!(kept <= 1048576);

    s.create(
        "quiet",
        &function("logflood"),
        json!({"limits": {"logs": 0}}),
    )
    .await;
    let r = s.invoke("quiet", json!({"lines": 3})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["logs"].as_array().unwrap().len(),
        1,
        "only the truncation line"
    );
}

#[tokio::test]
async fn output_that_is_not_a_json_object() {
    let s = hostile_server().await;
    let rec = run(&s, "notjson", json!({}), json!({})).await;
    assert_eq!(rec["response"]["status"], "action developer error");
    assert!(
        error_of(&rec).starts_with("The action did not produce a valid JSON response"),
        "{rec}"
    );
    let rec = run(&s, "notdict", json!({}), json!({})).await;
    assert_eq!(error_of(&rec), "The action did not return a dictionary.");
}

#[tokio::test]
async fn trap_and_exit_are_developer_errors() {
    let s = hostile_server().await;
    let rec = run(&s, "panic", json!({}), json!({})).await;
    assert_eq!(rec["response"]["status"], "action developer error");
    assert!(error_of(&rec).contains("exited unexpectedly"), "{rec}");
    let rec = run(&s, "exit", json!({}), json!({})).await;
    assert!(error_of(&rec).contains("exit status 3"), "{rec}");
    assert!(
        rec["logs"][0]
            .as_str()
            .unwrap()
            .ends_with("stderr: exiting with 3")
    );
}

#[tokio::test]
async fn invalid_and_non_wasi_wasm_is_refused_at_create() {
    let s = hostile_server().await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage",
            b"definitely not wasm".to_vec(),
            "not a WebAssembly binary",
        ),
        (
            "truncated",
            function("hello")[..1000].to_vec(),
            "not a valid Wasm function",
        ),
        (
            "nostart",
            wat::parse_str("(module (func (export \"main\")))").unwrap(),
            "does not export a function `_start`",
        ),
        (
            "badimport",
            wat::parse_str("(module (import \"env\" \"steal\" (func)) (func (export \"_start\")))")
                .unwrap(),
            "steal",
        ),
    ];
    for (name, code, reason) in cases {
        let r = s.put_action(name, &code, json!({})).await;
        assert_eq!(r.status, 400, "{name}: {}", r.body);
        assert!(r.error().contains(reason), "{name}: {}", r.error());
        assert!(r.body["code"].is_string());
        let r = s
            .call("GET", &format!("/api/v1/namespaces/_/actions/{name}"), None)
            .await;
        assert_eq!(r.status, 404, "{name} must not be stored");
    }
}

#[tokio::test]
async fn huge_payloads_are_refused() {
    let s = hostile_server().await;
    let big = json!({ "blob": "x".repeat(1_100_000) });
    let r = s.invoke("hello", big).await;
    assert_eq!(r.status, 413);
    assert!(
        r.error().starts_with("Request larger than allowed:"),
        "{}",
        r.error()
    );
    // 80 MB: refused from its Content-Length; the server may close before reading it all.
    let r = s
        .try_call_raw(
            "POST",
            "/api/v1/namespaces/_/actions/hello?blocking=true",
            vec![b' '; 80 * 1024 * 1024],
        )
        .await;
    if let Some(r) = r {
        assert_eq!(r.status, 413);
    }
    let ok = s.invoke("hello", json!({})).await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn declared_memory_beyond_the_limits() {
    let s = hostile_server().await;
    // 600 MB of initial memory: more than any action may have, refused at create.
    let code = wat::parse_str("(module (memory 9600) (func (export \"_start\")))").unwrap();
    let r = s.put_action("bigmem", &code, json!({})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("memory"), "{}", r.error());
    // 300 MB: allowed by the platform, but not by this action's 128 MB limit.
    let code = wat::parse_str("(module (memory 4800) (func (export \"_start\")))").unwrap();
    s.create("midmem", &code, json!({"limits": {"memory": 128}}))
        .await;
    let r = s.invoke("midmem", json!({})).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(
        error_of(&r.body),
        "The action exhausted its memory and was aborted."
    );
}

#[tokio::test]
async fn no_sockets_for_modules_or_components() {
    let s = hostile_server().await;
    // Something real to connect to, so a refusal is the sandbox's doing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    s.create("net1", &function("net"), json!({})).await;
    s.create("net2", &gust_testkit::component("net"), json!({}))
        .await;
    for name in ["net1", "net2"] {
        let r = s.invoke(name, json!({ "addr": addr })).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let result = &r.body["response"]["result"];
        assert!(
            result["connect"].as_str().unwrap().starts_with("refused"),
            "{name}: {result}"
        );
        assert!(
            result["resolve"].as_str().unwrap().starts_with("refused"),
            "{name}: {result}"
        );
    }
}

#[tokio::test]
async fn code_over_48_mb_is_refused() {
    let s = server();
    let mut code = b"\0asm\x01\0\0\0".to_vec();
    code.resize(49 * 1024 * 1024, 0);
    let r = s.put_action("huge", &code, json!({})).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(
        r.error(),
        "Code larger than allowed: 51380224 > 50331648 bytes."
    );
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/huge", None)
        .await;
    assert_eq!(r.status, 404);
}

/// `{"a": {"a": ... 1}}`, `depth` objects deep.
fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "a": v });
    }
    v
}

#[tokio::test]
async fn deeply_nested_json_is_refused_before_it_is_accepted() {
    let s = hostile_server().await;
    s.create("echo", &function("echo"), json!({})).await;
    let r = s.invoke("echo", nested(100)).await;
    assert_eq!(
        r.status, 502,
        "accepted, but echo wraps it one level deeper: {}",
        r.body
    );
    let r = s.invoke("echo", nested(99)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for depth in [101, 127, 200] {
        for blocking in ["true", "false"] {
            let r = s
                .call_raw(
                    "POST",
                    &format!("/api/v1/namespaces/_/actions/echo?blocking={blocking}"),
                    serde_json::to_vec(&nested(depth)).unwrap(),
                )
                .await;
            assert_eq!(r.status, 400, "{depth} levels: {}", r.body);
            assert!(
                r.error().starts_with("The request content was malformed:"),
                "{}",
                r.error()
            );
        }
    }
    let r = s
        .put_action(
            "deepparam",
            &function("echo"),
            json!({"parameters": [{"key": "p", "value": nested(101)}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error(),
        "The parameter 'p' nests arrays and objects deeper than 100 levels."
    );
    // Nothing was accepted, so nothing was recorded.
    let r = s
        .call("GET", "/api/v1/namespaces/_/activations?count=true", None)
        .await;
    assert_eq!(r.body["activations"], 2, "the echoes of 100 and 99 levels");
}

#[tokio::test]
async fn deeply_nested_results_are_developer_errors() {
    let s = hostile_server().await;
    let rec = run(&s, "deep", json!({}), json!({"depth": 120})).await;
    assert_eq!(
        error_of(&rec),
        "The action produced a response that nests arrays and objects deeper than 100 levels."
    );
    let rec = run(&s, "deep", json!({}), json!({"depth": 300})).await;
    assert!(
        error_of(&rec).starts_with("The action did not produce a valid JSON response"),
        "{rec}"
    );
    let r = s.invoke("deep", json!({"depth": 100})).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
