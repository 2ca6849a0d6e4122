//! Web actions: OpenWhisk's `/api/v1/web/...` with every verb, the `__ow_*` parameters, the
//! response by extension, CORS, `require-whisk-auth`, and hostile requests and responses.

use base64::Engine as _;
use gust_testkit::{Server, function};
use serde_json::{Value, json};

use crate::server;

fn kv(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

/// Creates `name` from test function `f` as a web action with these extra annotations and
/// parameters.
async fn web_action(s: &Server, name: &str, f: &str, annotations: Value, parameters: Value) {
    let mut a = vec![kv("web-export", json!(true))];
    a.extend(annotations.as_array().cloned().unwrap_or_default());
    s.create(
        name,
        &function(f),
        json!({ "annotations": a, "parameters": parameters }),
    )
    .await;
}

#[tokio::test]
async fn the_request_becomes_parameters() {
    let s = server();
    web_action(
        &s,
        "echo",
        "echo",
        json!([]),
        json!([kv("preset", json!("p"))]),
    )
    .await;
    let r = s
        .web(
            "POST",
            "/api/v1/web/guest/default/echo.json/params?q=1&name=x",
            &[("content-type", "application/json"), ("x-custom", "yes")],
            br#"{"body_field": 42}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-openwhisk-activation-id").is_some());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    // `.json/params` projected the result's `params`.
    let p = &r.body;
    assert_eq!(p["__ow_method"], "post");
    assert_eq!(p["__ow_path"], "/params");
    assert_eq!(p["__ow_headers"]["x-custom"], "yes");
    assert_eq!(p["q"], "1");
    assert_eq!(p["name"], "x");
    assert_eq!(p["body_field"], 42);
    assert_eq!(p["preset"], "p");
    assert!(p.get("__ow_user").is_none());

    // Every verb reaches it.
    for m in ["GET", "PUT", "DELETE", "PATCH"] {
        let r = s
            .web(m, "/api/v1/web/guest/default/echo.json", &[], vec![])
            .await;
        assert_eq!(r.status, 200, "{m}");
        assert_eq!(r.body["params"]["__ow_method"], m.to_ascii_lowercase());
    }
    // `.json` projects path segments; a missing one is a 404.
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/default/echo.json/params/q?q=7",
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "7");
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/default/echo.json/nothing/here",
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 404);

    // A text body arrives as `__ow_body`; reserved parameters cannot be sent.
    let r = s
        .web(
            "POST",
            "/api/v1/web/guest/default/echo.json",
            &[("content-type", "text/plain")],
            b"plain words".to_vec(),
        )
        .await;
    assert_eq!(r.body["params"]["__ow_body"], "plain words");
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/default/echo.json?__ow_method=evil",
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error(),
        "Request defines parameters that are not allowed (e.g., reserved properties)."
    );
    // The API key never reaches the function.
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/default/echo.json",
            &[("authorization", "Basic c2VjcmV0OnNlY3JldA==")],
            vec![],
        )
        .await;
    assert!(
        r.body["params"]["__ow_headers"]
            .get("authorization")
            .is_none()
    );

    // raw-http: the query and body as they came.
    web_action(
        &s,
        "raw",
        "echo",
        json!([kv("raw-http", json!(true))]),
        json!([]),
    )
    .await;
    let r = s
        .web(
            "POST",
            "/api/v1/web/guest/default/raw.json?a=1&b=2",
            &[("content-type", "application/json")],
            br#"{"x":1}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["params"]["__ow_query"], "a=1&b=2");
    // JSON is bytes to OpenWhisk's raw handling: base64.
    assert_eq!(
        r.body["params"]["__ow_body"],
        base64::engine::general_purpose::STANDARD.encode(r#"{"x":1}"#)
    );
    assert!(r.body["params"].get("a").is_none());
    let r = s
        .web(
            "POST",
            "/api/v1/web/guest/default/raw.json",
            &[("content-type", "application/octet-stream")],
            vec![0, 159, 146, 150],
        )
        .await;
    assert_eq!(
        r.body["params"]["__ow_body"],
        base64::engine::general_purpose::STANDARD.encode([0u8, 159, 146, 150])
    );

    // A package's web action, and `final` parameters the query cannot override.
    s.call("PUT", "/api/v1/namespaces/_/packages/site", Some(json!({})))
        .await;
    web_action(
        &s,
        "site/fixed",
        "echo",
        json!([kv("final", json!(true))]),
        json!([kv("mode", json!("safe"))]),
    )
    .await;
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/site/fixed.json?other=1",
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["params"]["mode"], "safe");
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/site/fixed.json?mode=unsafe",
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn the_result_becomes_the_response() {
    let s = server();
    let reply = |v: Value| json!([kv("reply", v)]);
    // (extension and path, result, status, content type, body)
    type Case<'a> = (&'a str, Value, u16, Option<&'a str>, &'a [u8]);
    let cases: Vec<Case> = vec![
        (
            "http",
            json!({ "statusCode": 201, "headers": { "x-made": "here", "content-type": "text/plain" }, "body": "made" }),
            201,
            Some("text/plain"),
            b"made",
        ),
        (
            "http",
            json!({ "body": "<p>hi</p>" }),
            200,
            Some("text/html; charset=UTF-8"),
            b"<p>hi</p>",
        ),
        (
            "http",
            json!({ "body": { "a": 1 } }),
            200,
            Some("application/json"),
            br#"{"a":1}"#,
        ),
        ("http", json!({}), 204, None, b""),
        // `.http` does not project: the path is the action's (`__ow_path`).
        (
            "http/some/route",
            json!({ "body": "routed" }),
            200,
            None,
            b"routed",
        ),
        (
            "http",
            json!({ "headers": { "content-type": "image/png" }, "body": "AAEC" }),
            200,
            Some("image/png"),
            &[0, 1, 2],
        ),
        (
            "html",
            json!({ "html": "<b>x</b>" }),
            200,
            Some("text/html; charset=UTF-8"),
            b"<b>x</b>",
        ),
        (
            "text",
            json!({ "text": "words" }),
            200,
            Some("text/plain; charset=UTF-8"),
            b"words",
        ),
        (
            "svg",
            json!({ "svg": "<svg/>" }),
            200,
            Some("image/svg+xml"),
            b"<svg/>",
        ),
        // `.json` answers with the result as the action returned it, or the projected part.
        (
            "json",
            json!({ "a": { "b": [1, "two"] }, "s": "x\"é" }),
            200,
            Some("application/json"),
            "{\"a\":{\"b\":[1,\"two\"]},\"s\":\"x\\\"é\"}".as_bytes(),
        ),
        (
            "json/",
            json!({ "n": 1.5 }),
            200,
            Some("application/json"),
            br#"{"n":1.5}"#,
        ),
        (
            "json/a/b/1",
            json!({ "a": { "b": [1, "two"] } }),
            200,
            Some("application/json"),
            br#""two""#,
        ),
        ("json/a/missing", json!({ "a": {} }), 404, None, b""),
        ("html", json!({ "other": "x" }), 404, None, b""),
        // Hostile responses: CRLF in a header, an invalid header name, invalid base64.
        (
            "http",
            json!({ "headers": { "x-evil": "a\r\nset-cookie: pwned=1" }, "body": "x" }),
            502,
            None,
            b"",
        ),
        (
            "http",
            json!({ "headers": { "bad header": "x" }, "body": "x" }),
            502,
            None,
            b"",
        ),
        (
            "http",
            json!({ "headers": { "content-type": "image/png" }, "body": "!!not base64!!" }),
            502,
            None,
            b"",
        ),
        ("http", json!({ "statusCode": 99999 }), 502, None, b""),
        (
            "http",
            json!({ "statusCode": 101, "body": "x" }),
            502,
            None,
            b"",
        ),
        // Framing headers are the server's: a lying content-length is dropped.
        (
            "http",
            json!({ "headers": { "content-length": "1", "transfer-encoding": "chunked", "content-type": "text/plain" }, "body": "full body" }),
            200,
            Some("text/plain"),
            b"full body",
        ),
    ];
    for (i, (ext, result, status, ct, body)) in cases.into_iter().enumerate() {
        let name = format!("r{i}");
        web_action(&s, &name, "reply", json!([]), reply(result.clone())).await;
        let r = s
            .web(
                "GET",
                &format!("/api/v1/web/guest/default/{name}.{ext}"),
                &[],
                vec![],
            )
            .await;
        assert_eq!(r.status, status, "{ext} {result}: {}", r.body);
        if let Some(ct) = ct {
            assert_eq!(r.header("content-type"), Some(ct), "{result}");
        }
        if status < 400 {
            assert_eq!(r.bytes, body, "{result}");
        } else {
            assert!(!r.error().is_empty(), "{result}: {}", r.body);
        }
        assert!(r.header("set-cookie").is_none());
    }

    // An application error with an object is the response of `.http` (400 by default).
    web_action(
        &s,
        "denied",
        "reply",
        json!([]),
        reply(json!({ "error": { "statusCode": 403, "body": "no" } })),
    )
    .await;
    let r = s
        .web("GET", "/api/v1/web/guest/default/denied.http", &[], vec![])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.bytes, b"no");
    // A developer error is a 502 with the reason.
    web_action(&s, "crash", "panic", json!([]), json!([])).await;
    let r = s
        .web("GET", "/api/v1/web/guest/default/crash.json", &[], vec![])
        .await;
    assert_eq!(r.status, 502, "{}", r.body);
}

#[tokio::test]
async fn exports_auth_and_cors() {
    let s = server();
    // Not web-exported, or nonexistent: the same 404.
    s.create("private", &function("echo"), json!({})).await;
    for path in [
        "/api/v1/web/guest/default/private.json",
        "/api/v1/web/guest/default/missing.json",
        "/api/v1/web/nobody/default/echo.json",
        "/api/v1/web/guest/nopkg/echo.json",
        "/api/v1/web/guest/default/..%2F..%2Fetc.json",
    ] {
        let r = s.web("GET", path, &[], vec![]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }

    // OPTIONS is answered by the platform with CORS headers, without running the action.
    web_action(&s, "open", "echo", json!([]), json!([])).await;
    let r = s
        .web(
            "OPTIONS",
            "/api/v1/web/guest/default/open.json",
            &[("access-control-request-headers", "x-mine")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-headers"), Some("x-mine"));
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("PATCH")
    );
    assert!(r.header("x-openwhisk-activation-id").is_none());
    // web-custom-options: the action answers OPTIONS itself, no CORS added.
    web_action(
        &s,
        "custom",
        "echo",
        json!([kv("web-custom-options", json!(true))]),
        json!([]),
    )
    .await;
    let r = s
        .web(
            "OPTIONS",
            "/api/v1/web/guest/default/custom.json",
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.body["params"]["__ow_method"], "options");
    assert!(r.header("access-control-allow-origin").is_none());

    // require-whisk-auth with a secret.
    web_action(
        &s,
        "secret",
        "echo",
        json!([kv("require-whisk-auth", json!("s3cret"))]),
        json!([]),
    )
    .await;
    let path = "/api/v1/web/guest/default/secret.json";
    assert_eq!(s.web("GET", path, &[], vec![]).await.status, 401);
    let r = s
        .web("GET", path, &[("x-require-whisk-auth", "wrong")], vec![])
        .await;
    assert_eq!(r.status, 401);
    let r = s
        .web("GET", path, &[("x-require-whisk-auth", "s3cret")], vec![])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // require-whisk-auth true: any valid key, whose namespace is `__ow_user`.
    web_action(
        &s,
        "authed",
        "echo",
        json!([kv("require-whisk-auth", json!(true))]),
        json!([]),
    )
    .await;
    let path = "/api/v1/web/guest/default/authed.json";
    assert_eq!(s.web("GET", path, &[], vec![]).await.status, 401);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&s.auth)
    );
    let r = s
        .web("GET", path, &[("authorization", basic.as_str())], vec![])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["params"]["__ow_user"], "guest");
    let r = s
        .web("GET", path, &[("authorization", "Basic bm86bm8=")], vec![])
        .await;
    assert_eq!(r.status, 401);

    // Oversized bodies are refused.
    let r = s
        .web(
            "POST",
            "/api/v1/web/guest/default/open.json",
            &[("content-type", "text/plain")],
            vec![b'a'; 1_200_000],
        )
        .await;
    assert_eq!(r.status, 413);
}
