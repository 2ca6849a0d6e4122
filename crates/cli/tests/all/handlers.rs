//! wasi:http handlers: a component exporting `wasi:http/incoming-handler` (as `wasmtime
//! serve` runs it) behind web actions and API routes, invoked with JSON too, and hostile ones
//! stopped at their limits.

use gust_testkit::{Server, http_handler, js_handler};
use serde_json::{Value, json};

use crate::server;

async fn handler(s: &Server, name: &str, limits: Value) {
    let body = s
        .create(
            name,
            &http_handler(),
            json!({
                "annotations": [{ "key": "web-export", "value": true }],
                "limits": limits,
            }),
        )
        .await;
    assert_eq!(body["exec"]["http"], true, "{body}");
}

fn json_of(r: &gust_testkit::Response) -> Value {
    serde_json::from_slice(&r.bytes).unwrap_or_else(|_| panic!("not JSON: {}", r.body))
}

#[tokio::test]
async fn a_wasi_http_handler_answers_web_requests_routes_and_invocations() {
    let s = server();
    handler(&s, "h", json!({})).await;

    // The request as it came: method, path below the action, query, headers, body.
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/default/h/users/1?x=2",
            &[("x-test", "v")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = json_of(&r);
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/users/1?x=2");
    assert_eq!(v["header"], "v");
    let id = r.header("x-openwhisk-activation-id").unwrap().to_string();
    assert_eq!(v["activation"], id.as_str());
    // Credentials stay with the platform; an encoded path stays encoded.
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/default/h/a%20b/caf%C3%A9",
            &[("authorization", "Basic c2VjcmV0OmtleQ==")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = json_of(&r);
    assert_eq!(v["auth"], false, "{v}");
    assert_eq!(v["path"], "/a%20b/caf%C3%A9");
    let r = s
        .web(
            "POST",
            "/api/v1/web/guest/default/h",
            &[],
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v = json_of(&r);
    assert_eq!(
        (v["path"].as_str(), v["body"].as_str()),
        (Some("/"), Some("hello"))
    );

    // A streamed body arrives whole.
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/default/h/stream?n=2000",
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.bytes.clone()).unwrap();
    assert_eq!(text.lines().count(), 2000);
    assert!(text.ends_with("line 1999\n"));

    // Its record: success with the status, and the handler's log lines.
    let rec = s.wait_for_record(&id).await;
    assert_eq!(rec["response"]["status"], "success", "{rec}");
    assert_eq!(rec["response"]["result"]["statusCode"], 200);
    let logs = rec["logs"].to_string();
    assert!(logs.contains("handling GET /users/1?x=2"), "{logs}");

    // Behind an API route it sees the route's path.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/apis",
            Some(
                json!({ "basePath": "/hh", "path": "/items/{id}", "method": "GET", "action": "h" }),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.web("GET", "/api/guest/hh/items/7", &[], vec![]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json_of(&r)["path"], "/items/7");

    // Invoked with JSON: a POST of the parameters, whose answer is the result.
    let r = s.invoke("h", json!({ "a": 1 })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let result = &r.body["response"]["result"];
    assert_eq!(result["method"], "POST");
    assert_eq!(result["body"], "{\"a\":1}");
}

#[tokio::test]
async fn hostile_handlers_are_stopped_at_their_limits() {
    let s = server();
    handler(&s, "h", json!({ "timeout": 1000, "memory": 128 })).await;
    // Outgoing requests are refused, like sockets.
    let r = s
        .web("GET", "/api/v1/web/guest/default/h/net", &[], vec![])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let outcome = json_of(&r)["outcome"].as_str().unwrap_or("").to_string();
    assert!(outcome.contains("HttpRequestDenied"), "{outcome}");

    // No response, an endless loop, a memory hog: 502, and a record saying why.
    for (path, why) in [
        ("/none", "did not produce a valid"),
        ("/spin", "exceeded its time limits of 1000 milliseconds"),
        ("/big", "exhausted its memory"),
    ] {
        let r = s
            .web(
                "GET",
                &format!("/api/v1/web/guest/default/h{path}"),
                &[],
                vec![],
            )
            .await;
        assert_eq!(r.status, 502, "{path}: {}", r.body);
        let id = r.header("x-openwhisk-activation-id").unwrap().to_string();
        let rec = s.wait_for_record(&id).await;
        assert_eq!(rec["response"]["status"], "action developer error", "{rec}");
        let error = rec["response"]["result"]["error"].as_str().unwrap_or("");
        assert!(error.contains(why), "{path}: {error}");
    }
    // A client that leaves before the answer: the run still ends with its record.
    let gone = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap()
        .get(s.url("/api/v1/web/guest/default/h/spin"))
        .send()
        .await;
    assert!(gone.is_err());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = s
            .call(
                "GET",
                "/api/v1/namespaces/_/activations?name=h&docs=true&limit=50",
                None,
            )
            .await;
        let timeouts = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| {
                a["response"]["result"]["error"]
                    .to_string()
                    .contains("time limits")
            })
            .count();
        if timeouts == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", r.body);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The server still serves.
    let r = s
        .web("GET", "/api/v1/web/guest/default/h/ok", &[], vec![])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn a_javascript_handler_from_componentize_js_runs_unchanged() {
    let Some(code) = js_handler() else {
        eprintln!("skipped: componentize-js is not installed (npm ci --prefix tests/js-handler)");
        return;
    };
    let s = server();
    let body = s
        .create(
            "js",
            &code,
            json!({ "annotations": [{ "key": "web-export", "value": true }] }),
        )
        .await;
    assert_eq!(body["exec"]["http"], true, "{body}");
    let r = s
        .web("GET", "/api/v1/web/guest/default/js/hello?x=1", &[], vec![])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = json_of(&r);
    assert_eq!(
        (v["js"].as_bool(), v["path"].as_str()),
        (Some(true), Some("/hello?x=1"))
    );
    let id = r.header("x-openwhisk-activation-id").unwrap().to_string();
    let r = s
        .web(
            "POST",
            "/api/v1/web/guest/default/js/p",
            &[],
            b"ping".to_vec(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(json_of(&r)["body"], "ping");
    let r = s.invoke("js", json!({ "a": 1 })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["response"]["result"]["body"], "{\"a\":1}");
    let rec = s.wait_for_record(&id).await;
    assert_eq!(rec["response"]["status"], "success", "{rec}");
    assert!(
        rec["logs"].to_string().contains("js handling GET /hello"),
        "{rec}"
    );
}
