//! Every endpoint and status code of the REST API.

use gust_testkit::function;
use serde_json::json;

use crate::server;

#[tokio::test]
async fn info_ping_namespaces_limits() {
    let s = server();
    let r = s.call_as("", "GET", "/ping", None).await;
    assert_eq!(r.status, 200);
    let r = s.call_as("", "GET", "/api/v1", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["runtimes"]["wasm"][0]["kind"], "wasm");
    assert_eq!(r.body["limits"]["max_action_duration"], 300000);
    assert!(r.header("x-request-id").is_some());
    let r = s.call("GET", "/api/v1/namespaces", None).await;
    assert_eq!(r.body, json!(["guest"]));
    let r = s.call("GET", "/api/v1/namespaces/_/limits", None).await;
    assert_eq!(r.status, 200);
    assert!(r.body["invocationsPerMinute"].as_u64().unwrap() >= 1_000_000);
    assert!(r.body["concurrentInvocations"].as_u64().unwrap() >= 1_000);
}

#[tokio::test]
async fn authentication_errors() {
    let s = server();
    let r = s
        .call_as("", "GET", "/api/v1/namespaces/_/actions", None)
        .await;
    assert_eq!(r.status, 401);
    assert!(r.error().contains("requires authentication"));
    let bad = format!("{}:wrongkey", s.auth.split_once(':').unwrap().0);
    let r = s
        .call_as(&bad, "GET", "/api/v1/namespaces/_/actions", None)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error(), "The supplied authentication is invalid.");
    assert_eq!(r.body["code"].as_str(), r.header("x-request-id"));
    let r = s
        .call_as("nobody:nothing", "GET", "/api/v1/namespaces", None)
        .await;
    assert_eq!(r.status, 401);
    // A path segment that is not UTF-8 is refused by the router itself, in the same shape.
    let r = s
        .call("GET", "/api/v1/namespaces/_/activations/%FF%FE", None)
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!r.error().is_empty(), "{}", r.body);
    assert_eq!(r.body["code"].as_str(), r.header("x-request-id"));
}

#[tokio::test]
async fn action_lifecycle() {
    let s = server();
    let hello = function("hello");
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error(), "The requested resource does not exist.");

    let created = s
        .create("hello", &hello, json!({"parameters": [{"key": "name", "value": "P"}], "annotations": [{"key": "a", "value": 1}], "limits": {"timeout": 5000}}))
        .await;
    assert_eq!(created["version"], "0.0.1");
    assert_eq!(created["limits"]["timeout"], 5000);
    assert_eq!(created["limits"]["memory"], 256);
    assert_eq!(created["limits"]["logs"], 10);
    assert_eq!(created["exec"]["kind"], "wasm");

    // Create again without overwrite: 409.
    let body = json!({"exec": {"kind": "wasm", "code": base64(&hello)}});
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/hello",
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.error(), "Concurrent modification to resource detected.");
    // A create answers with the code stored, as OpenWhisk's does.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/hello-code",
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["exec"]["code"].as_str(),
        Some(base64(&hello).as_str())
    );
    assert_eq!(r.body["exec"]["binary"], true);
    s.call("DELETE", "/api/v1/namespaces/_/actions/hello-code", None)
        .await;

    // Update: version bump; parameters kept when absent.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/hello?overwrite=true",
            Some(json!({"limits": {"memory": 128}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["version"], "0.0.2");
    assert_eq!(r.body["limits"]["memory"], 128);
    assert_eq!(r.body["limits"]["timeout"], 5000);
    assert_eq!(r.body["parameters"][0]["value"], "P");

    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["exec"]["code"].as_str().unwrap(), base64(&hello));
    assert_eq!(r.body["exec"]["binary"], true);
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/hello?code=false", None)
        .await;
    assert!(r.body["exec"].get("code").is_none());
    assert_eq!(r.body["version"], "0.0.2");

    // List, with skip/limit/count.
    for n in ["b1", "b2", "b3"] {
        s.create(n, &hello, json!({})).await;
    }
    let r = s.call("GET", "/api/v1/namespaces/_/actions", None).await;
    let names: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b1", "b2", "b3", "hello"]);
    assert!(r.body[0]["exec"].get("code").is_none());
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions?skip=1&limit=2", None)
        .await;
    let names: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b2", "b3"]);
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions?count=true", None)
        .await;
    assert_eq!(r.body, json!({"actions": 4}));
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions?limit=201", None)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error(),
        "The value '201' is not in the range of 0 to 200 for actions."
    );
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions?skip=-1", None)
        .await;
    assert_eq!(
        (r.status, r.error()),
        (
            400,
            "The value '-1' is not greater than or equal to 0 for actions."
        )
    );
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?since=99999999999999999999",
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (
            400,
            "The value '99999999999999999999' is not an integer for activations."
        )
    );
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?count=true&docs=true",
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "The parameter 'docs' is not permitted with 'count'.")
    );

    // Delete returns the entity; then 404.
    let r = s
        .call("DELETE", "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["name"], "hello");
    let r = s
        .call("DELETE", "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(r.status, 404);
    let r = s.invoke("hello", json!({})).await;
    assert_eq!(r.status, 404);
}

fn base64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong_and_change_nothing() {
    let s = server();
    let hello = function("hello");
    let cases = [
        (
            json!({"exec": {"kind": "java:8", "code": "x"}}),
            "kind 'java:8' is not supported",
        ),
        (
            json!({"exec": {"kind": "wasm", "code": "!!!"}}),
            "not valid base64",
        ),
        (json!({"exec": {"kind": "wasm"}}), "exec.code is required"),
        (json!({"parameters": []}), "exec undefined"),
        (
            json!({"exec": {"kind": "wasm", "code": base64(&hello)}, "limits": {"timeout": 50}}),
            "timeout must be between 100 and 300000 milliseconds, got 50.",
        ),
        (
            json!({"exec": {"kind": "wasm", "code": base64(&hello)}, "limits": {"memory": 1024}}),
            "memory must be between 128 and 512 MB, got 1024.",
        ),
        (
            json!({"exec": {"kind": "wasm", "code": base64(&hello)}, "limits": {"logs": 11}}),
            "logs must be between 0 and 10 MB, got 11.",
        ),
        (
            json!({"exec": {"kind": "wasm", "code": base64(&hello)}, "limits": {"cpu": 1}}),
            "The request content was malformed",
        ),
        (
            json!({"exec": {"kind": "wasm", "code": base64(&hello)}, "parameters": {"a": 1}}),
            "The request content was malformed",
        ),
    ];
    for (body, msg) in cases {
        let r = s
            .call(
                "PUT",
                "/api/v1/namespaces/_/actions/x?overwrite=true",
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.error().contains(msg), "{body}: {}", r.error());
    }
    let r = s
        .call_raw(
            "PUT",
            "/api/v1/namespaces/_/actions/x",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("The request content was malformed"));
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/bad%20name%20",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error(),
        "The name of the entity contains illegal characters."
    );
    let big = json!({"exec": {"kind": "wasm", "code": base64(&hello)}, "parameters": [{"key": "k", "value": "v".repeat(1_100_000)}]});
    let r = s
        .call("PUT", "/api/v1/namespaces/_/actions/x", Some(big))
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions?count=true", None)
        .await;
    assert_eq!(r.body, json!({"actions": 0}), "nothing was stored");

    s.create("hello", &hello, json!({})).await;
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/hello?blocking=maybe",
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("'maybe'"));
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/hello?blocking=true&timeout=70000",
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error(),
        "Timeout must be number of milliseconds up to 60000."
    );
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/hello",
            Some(json!([1, 2])),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = s
        .call_raw(
            "POST",
            "/api/v1/namespaces/_/actions/hello",
            b"{\"a\":".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = s
        .call("GET", "/api/v1/namespaces/_/activations/not-an-id", None)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "The activation id is not valid.");
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?since=yesterday",
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    let r = s.call("GET", "/api/v1/nothing/here", None).await;
    assert_eq!(r.status, 404);
    let r = s
        .call("PATCH", "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn invoke_non_blocking_and_activations() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/hello",
            Some(json!({"name": "nb"})),
        )
        .await;
    assert_eq!(r.status, 202);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    assert_eq!(r.header("x-openwhisk-activation-id"), Some(id.as_str()));
    let rec = s.wait_for_record(&id).await;
    assert_eq!(rec["response"]["result"]["greeting"], "Hello, nb!");
    assert_eq!(rec["activationId"], id.as_str());

    let r = s
        .call(
            "GET",
            &format!("/api/v1/namespaces/_/activations/{id}/result"),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["result"]["greeting"], "Hello, nb!");
    assert_eq!(r.body["status"], "success");
    let r = s
        .call(
            "GET",
            &format!("/api/v1/namespaces/_/activations/{id}/logs"),
            None,
        )
        .await;
    assert_eq!(r.body["logs"].as_array().unwrap().len(), 1);
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations/0123456789abcdef0123456789abcdef",
            None,
        )
        .await;
    assert_eq!(r.status, 404);

    s.create("echo", &function("echo"), json!({})).await;
    let before = gust_model_now();
    for _ in 0..3 {
        assert_eq!(s.invoke("echo", json!({})).await.status, 200);
    }
    let r = s
        .call("GET", "/api/v1/namespaces/_/activations?count=true", None)
        .await;
    assert_eq!(r.body, json!({"activations": 4}));
    let r = s
        .call("GET", "/api/v1/namespaces/_/activations?name=echo", None)
        .await;
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|a| a["name"] == "echo"));
    assert!(
        list[0].get("response").is_none(),
        "summaries only without docs"
    );
    assert!(
        list[0]["start"].as_u64() >= list[1]["start"].as_u64(),
        "newest first"
    );
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?name=echo&docs=true&limit=2",
            None,
        )
        .await;
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list[0]["response"].is_object());
    let r = s
        .call(
            "GET",
            &format!("/api/v1/namespaces/_/activations?since={before}&count=true"),
            None,
        )
        .await;
    assert_eq!(r.body, json!({"activations": 3}));
    let r = s
        .call(
            "GET",
            &format!(
                "/api/v1/namespaces/_/activations?upto={}&count=true",
                before - 1
            ),
            None,
        )
        .await;
    assert_eq!(r.body, json!({"activations": 1}));
    let r = s
        .call("GET", "/api/v1/namespaces/_/activations?skip=3", None)
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
}

fn gust_model_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn blocking_call_that_outlives_its_wait_returns_202_and_its_record_lands() {
    let s = server();
    s.create("slow", &function("slow"), json!({})).await;
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/slow?blocking=true&timeout=200",
            Some(json!({"ms": 1500})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    assert_eq!(r.header("x-openwhisk-activation-id"), Some(id.as_str()));
    let rec = s.wait_for_record(&id).await;
    assert_eq!(rec["response"]["result"], json!({"slept": 1500}));
}

#[tokio::test]
async fn a_blocking_call_whose_client_goes_away_still_ends_with_its_record() {
    let s = server();
    s.admin(&["limits", "set", "guest", "--concurrent-invocations", "1"]);
    s.create("slow", &function("slow"), json!({})).await;
    s.create("hello", &function("hello"), json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // The client gives up (drops its connection) long before the activation ends.
    let gone = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        s.call(
            "POST",
            "/api/v1/namespaces/_/actions/slow?blocking=true",
            Some(json!({"ms": 1000})),
        ),
    )
    .await;
    assert!(gone.is_err(), "the call was expected to still be running");
    let mut records = Vec::new();
    for _ in 0..100 {
        let r = s
            .call(
                "GET",
                "/api/v1/namespaces/_/activations?name=slow&docs=true",
                None,
            )
            .await;
        records = r.body.as_array().cloned().unwrap_or_default();
        if !records.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(records.len(), 1, "exactly one record");
    assert_eq!(records[0]["response"]["result"], json!({"slept": 1000}));
    // Its in-flight slot was freed with it (just after the record was stored).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = s.invoke("hello", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn namespace_throttles_answer_429() {
    let s = server();
    s.admin(&["limits", "set", "guest", "--invocations-per-minute", "3"]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.create("hello", &function("hello"), json!({})).await;
    for _ in 0..3 {
        assert_eq!(s.invoke("hello", json!({})).await.status, 200);
    }
    let r = s.invoke("hello", json!({})).await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.error(),
        "Too many requests in the last minute (count: 3, allowed: 3)."
    );

    s.admin(&[
        "limits",
        "set",
        "guest",
        "--invocations-per-minute",
        "1000",
        "--concurrent-invocations",
        "1",
    ]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.create("slow", &function("slow"), json!({})).await;
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/slow",
            Some(json!({"ms": 1000})),
        )
        .await;
    assert_eq!(r.status, 202);
    let r = s.invoke("hello", json!({})).await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.error(),
        "Too many concurrent requests in flight (count: 1, allowed: 1)."
    );
}
