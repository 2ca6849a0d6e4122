//! Functional behaviour of the Wasm runtime: ABI, components, fresh instances.

use gust_testkit::{component, function};
use serde_json::json;

use crate::server;

#[tokio::test]
async fn hello_blocking_and_result() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/hello?blocking=true&result=true",
            Some(json!({"name": "Gust"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"greeting": "Hello, Gust!"}));
    let id = r
        .header("x-openwhisk-activation-id")
        .expect("activation id header");
    assert_eq!(id.len(), 32);

    let r = s.invoke("hello", json!({})).await;
    assert_eq!(r.status, 200);
    let rec = &r.body;
    assert_eq!(rec["response"]["status"], "success");
    assert_eq!(rec["response"]["success"], true);
    assert_eq!(rec["response"]["result"]["greeting"], "Hello, World!");
    assert_eq!(rec["name"], "hello");
    assert_eq!(rec["namespace"], "guest");
    assert_eq!(rec["version"], "0.0.1");
    let logs = rec["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    let line = logs[0].as_str().unwrap();
    assert!(line.ends_with(" stderr: hello called for World"), "{line}");
    assert!(
        line.starts_with("20") && line.as_bytes()[10] == b'T',
        "{line}"
    );
    let keys: Vec<&str> = rec["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    for k in ["path", "kind", "limits", "waitTime", "initTime", "timeout"] {
        assert!(keys.contains(&k), "annotation {k} missing: {keys:?}");
    }
}

#[tokio::test]
async fn preview2_component_runs() {
    let s = server();
    s.create("hello2", &component("hello"), json!({})).await;
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/hello2?blocking=true&result=true",
            Some(json!({"name": "P2"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"greeting": "Hello, P2!"}));
}

#[tokio::test]
async fn environment_is_only_the_platform_s() {
    let s = server();
    s.create(
        "echo",
        &function("echo"),
        json!({"parameters": [
            {"key": "dflt", "value": "from-action"},
            {"key": "over", "value": 1},
            {"key": "SECRET_INIT", "value": "s3", "init": true}
        ]}),
    )
    .await;
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/echo?blocking=true&result=true",
            Some(json!({"over": 2, "x": [1]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = &r.body;
    assert_eq!(
        b["params"],
        json!({"dflt": "from-action", "over": 2, "x": [1]})
    );
    let env = b["env"].as_object().unwrap();
    let mut keys: Vec<&str> = env.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "SECRET_INIT",
            "__OW_ACTION_NAME",
            "__OW_ACTION_VERSION",
            "__OW_ACTIVATION_ID",
            "__OW_DEADLINE",
            "__OW_NAMESPACE"
        ]
    );
    assert_eq!(env["__OW_ACTION_NAME"], "/guest/echo");
    assert_eq!(env["__OW_NAMESPACE"], "guest");
    assert_eq!(env["SECRET_INIT"], "s3");
    assert_eq!(b["can_read_root"], false, "no preopened directories");
    assert_eq!(b["can_read_cwd"], false, "no preopened directories");
}

#[tokio::test]
async fn every_activation_gets_a_fresh_instance() {
    let s = server();
    s.create("counter", &function("counter"), json!({})).await;
    for _ in 0..3 {
        let r = s
            .call(
                "POST",
                "/api/v1/namespaces/_/actions/counter?blocking=true&result=true",
                None,
            )
            .await;
        assert_eq!(r.body, json!({"calls": 1}));
    }
}

#[tokio::test]
async fn application_error_is_502_with_its_result() {
    let s = server();
    s.create("apperror", &function("apperror"), json!({})).await;
    let r = s.invoke("apperror", json!({})).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.body["response"]["status"], "application error");
    assert_eq!(r.body["response"]["statusCode"], 1);
    assert_eq!(
        r.body["response"]["result"]["error"],
        "something went wrong"
    );
}
