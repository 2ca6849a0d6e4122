//! Lambda functions over HTTP: a web action (Gust's function URL) and an API route turn the
//! request into Lambda's payload format 2.0 event, and the function's response object into
//! the HTTP response, with Python handlers packaged as Lambda zips.
//!
//! Lambda functions run in the process sandbox, which needs root; without it, or without
//! python3 in /usr/bin or /usr/local/bin, these tests say so and skip.

use std::io::Write;

use base64::Engine as _;
use gust_testkit::Server;
use serde_json::{Value, json};

/// Returns the event it was given.
const ECHO: &str = "def handler(event, context):\n    return event\n";

/// Answers 201 with headers, two cookies and a binary body: bytes 0 and 255, then the
/// request's body (decoded when it came base64-encoded).
const RESPOND: &str = r#"import base64

def handler(event, context):
    body = event.get('body') or ''
    raw = base64.b64decode(body) if event['isBase64Encoded'] else body.encode()
    return {
        'statusCode': 201,
        'headers': {'content-type': 'application/octet-stream', 'x-route': event['routeKey'],
                    'x-path': event['rawPath']},
        'cookies': ['session=abc; Path=/; HttpOnly', 'theme=dark'],
        'body': base64.b64encode(bytes([0, 255]) + raw).decode(),
        'isBase64Encoded': True,
    }
"#;

/// Fails: a function error.
const FAIL: &str = "def handler(event, context):\n    raise ValueError('no such thing')\n";

/// Outlasts its time limit.
const SLOW: &str = "import time\n\ndef handler(event, context):\n    time.sleep(30)\n";

/// A server that runs Lambda functions, or `None` (said on stderr).
async fn lambda_server(test: &str) -> Option<Server> {
    crate::process_server(test, &[]).await
}

/// A Lambda deployment package: `app.py` holding `source`, base64-encoded.
fn package(source: &str) -> String {
    package_file("app.py", source)
}

/// A Lambda deployment package of one file, base64-encoded.
fn package_file(name: &str, source: &str) -> String {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(source.as_bytes()).unwrap();
    let bytes = w.finish().unwrap().into_inner();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Creates `name`, a web-exported Lambda function with handler `app.handler` in `source`.
async fn lambda_function(s: &Server, name: &str, source: &str) {
    lambda_function_with(s, name, source, json!([]), json!({})).await;
}

/// Like [`lambda_function`], with more annotations and these limits.
async fn lambda_function_with(
    s: &Server,
    name: &str,
    source: &str,
    annotations: Value,
    limits: Value,
) {
    let mut a = vec![json!({ "key": "web-export", "value": true })];
    a.extend(annotations.as_array().cloned().unwrap_or_default());
    let body = json!({
        "exec": { "kind": "lambda:python3.11", "main": "app.handler", "code": package(source),
                  "binary": true },
        "annotations": a,
        "limits": limits,
    });
    let r = s
        .call(
            "PUT",
            &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 200, "creating {name}: {}", r.body);
}

#[tokio::test]
async fn a_web_action_serves_a_lambda_function_with_payload_format_2() {
    let Some(s) =
        lambda_server("a_web_action_serves_a_lambda_function_with_payload_format_2").await
    else {
        return;
    };
    lambda_function(&s, "echo", ECHO).await;
    let r = s
        .web(
            "POST",
            "/api/v1/web/guest/default/echo/items/a%20b?x=1&x=2&y=two%20words",
            &[
                ("content-type", "text/plain"),
                ("user-agent", "gust-test"),
                ("x-many", "one"),
                ("x-many", "two"),
                ("cookie", "a=1; b=2"),
                ("authorization", "Bearer the-apps-own-token"),
            ],
            b"hello lambda".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-openwhisk-activation-id").is_some());
    let e = &r.body;
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "$default");
    assert_eq!(e["rawPath"], "/items/a%20b");
    assert_eq!(e["rawQueryString"], "x=1&x=2&y=two%20words");
    assert_eq!(
        e["queryStringParameters"],
        json!({ "x": "1,2", "y": "two words" })
    );
    assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
    assert_eq!(e["headers"]["x-many"], "one,two");
    assert_eq!(e["headers"]["user-agent"], "gust-test");
    assert!(e["headers"].get("cookie").is_none(), "{}", e["headers"]);
    // A public function checks its own bearer tokens.
    assert_eq!(e["headers"]["authorization"], "Bearer the-apps-own-token");
    assert_eq!(e["body"], "hello lambda");
    assert_eq!(e["isBase64Encoded"], false);
    assert!(e.get("pathParameters").is_none());
    let c = &e["requestContext"];
    assert_eq!(c["accountId"], "anonymous");
    assert_eq!(c["routeKey"], "$default");
    assert_eq!(c["stage"], "$default");
    assert_eq!(c["http"]["method"], "POST");
    assert_eq!(c["http"]["path"], "/items/a%20b");
    assert_eq!(c["http"]["protocol"], "HTTP/1.1");
    assert_eq!(c["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(c["http"]["userAgent"], "gust-test");
    assert_eq!(c["domainName"], e["headers"]["host"]);
    // The event names the request as its answer does.
    assert_eq!(c["requestId"].as_str(), r.header("x-request-id"));
    assert!(
        c["timeEpoch"]
            .as_u64()
            .is_some_and(|t| t > 1_700_000_000_000)
    );
    assert!(c["time"].as_str().is_some_and(|t| t.ends_with(" +0000")));

    // No path, no query, no body; a binary body arrives base64-encoded.
    // HTTP Basic credentials (a namespace key, which browsers resend by themselves) never
    // reach a function.
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/default/echo",
            &[("authorization", "Basic Z3Vlc3Q6a2V5")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["headers"].get("authorization").is_none());
    assert_eq!(r.body["rawPath"], "/");
    assert_eq!(r.body["rawQueryString"], "");
    assert!(r.body.get("body").is_none());
    assert!(r.body.get("queryStringParameters").is_none());
    let r = s
        .web(
            "PUT",
            "/api/v1/web/guest/default/echo.http",
            &[("content-type", "application/octet-stream")],
            vec![0, 1, 254, 255],
        )
        .await;
    assert_eq!(r.body["isBase64Encoded"], true);
    assert_eq!(r.body["body"], "AAH+/w==");

    // `.json` renders the function's response as an OpenWhisk result, projected.
    let r = s
        .web(
            "GET",
            "/api/v1/web/guest/default/echo.json/requestContext/http/method",
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "GET");
}

#[tokio::test]
async fn a_lambda_response_object_becomes_the_http_response() {
    let Some(s) = lambda_server("a_lambda_response_object_becomes_the_http_response").await else {
        return;
    };
    lambda_function(&s, "respond", RESPOND).await;
    let r = s
        .web(
            "POST",
            "/api/v1/web/guest/default/respond/x",
            &[("content-type", "application/octet-stream")],
            vec![7, 8, 0xff],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("x-route"), Some("$default"));
    assert_eq!(r.header("x-path"), Some("/x"));
    let cookies: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["session=abc; Path=/; HttpOnly", "theme=dark"]);
    assert_eq!(r.bytes, [0, 255, 7, 8, 0xff]);

    // A function error is Lambda's 502.
    lambda_function(&s, "fail", FAIL).await;
    let r = s
        .web("GET", "/api/v1/web/guest/default/fail", &[], vec![])
        .await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body, json!({ "message": "Internal Server Error" }));
    let id = r.header("x-openwhisk-activation-id").unwrap().to_string();
    let record = s.wait_for_record(&id).await;
    assert_eq!(record["response"]["status"], "application error");

    // So is a timeout: on Lambda a function that runs out of time has failed.
    lambda_function_with(&s, "slow", SLOW, json!([]), json!({ "timeout": 1000 })).await;
    let r = s
        .web("GET", "/api/v1/web/guest/default/slow", &[], vec![])
        .await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body, json!({ "message": "Internal Server Error" }));
    let id = r.header("x-openwhisk-activation-id").unwrap().to_string();
    let record = s.wait_for_record(&id).await;
    assert_eq!(record["response"]["status"], "action developer error");
}

#[tokio::test]
async fn a_lambda_function_that_requires_authentication_never_sees_the_credentials() {
    let Some(s) =
        lambda_server("a_lambda_function_that_requires_authentication_never_sees_the_credentials")
            .await
    else {
        return;
    };
    lambda_function_with(
        &s,
        "guarded",
        ECHO,
        json!([{ "key": "require-whisk-auth", "value": "s3cret" }]),
        json!({}),
    )
    .await;
    let url = "/api/v1/web/guest/default/guarded";
    assert_eq!(s.web("GET", url, &[], vec![]).await.status, 401);
    let r = s
        .web("GET", url, &[("x-require-whisk-auth", "wrong")], vec![])
        .await;
    assert_eq!(r.status, 401);
    let r = s
        .web(
            "GET",
            url,
            &[
                ("x-require-whisk-auth", "s3cret"),
                ("authorization", "Bearer something"),
                ("x-kept", "yes"),
            ],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let h = &r.body["headers"];
    assert!(h.get("x-require-whisk-auth").is_none(), "{h}");
    assert!(h.get("authorization").is_none(), "{h}");
    assert_eq!(h["x-kept"], "yes");
}

#[tokio::test]
async fn an_api_route_serves_a_lambda_function_with_its_path_parameters() {
    let Some(s) =
        lambda_server("an_api_route_serves_a_lambda_function_with_its_path_parameters").await
    else {
        return;
    };
    lambda_function(&s, "echo", ECHO).await;
    lambda_function(&s, "respond", RESPOND).await;
    for (path, method, action) in [
        ("/items/{id}", "get", "echo"),
        ("/items", "post", "respond"),
    ] {
        let r = s
            .call(
                "PUT",
                "/api/v1/namespaces/_/apis",
                Some(json!({ "basePath": "/shop", "path": path, "method": method,
                             "action": action })),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = s
        .web("GET", "/api/guest/shop/items/42?q=x", &[], vec![])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let e: &Value = &r.body;
    assert_eq!(e["routeKey"], "GET /items/{id}");
    assert_eq!(e["requestContext"]["routeKey"], "GET /items/{id}");
    assert_eq!(e["rawPath"], "/api/guest/shop/items/42");
    assert_eq!(e["pathParameters"], json!({ "id": "42" }));
    assert_eq!(e["queryStringParameters"], json!({ "q": "x" }));
    assert_eq!(e["requestContext"]["apiId"], "shop");
    // The route's path parameter is in `pathParameters` only, not beside the event's fields.
    assert!(e.get("id").is_none());

    // A route's response type does not apply: the response object is the response.
    let r = s
        .web("POST", "/api/guest/shop/items", &[], b"text".to_vec())
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("x-route"), Some("POST /items"));
    assert_eq!(r.header("x-path"), Some("/api/guest/shop/items"));
    assert_eq!(r.bytes, b"\x00\xfftext");
}

#[tokio::test]
async fn a_nodejs_function_gets_the_same_event_and_answers_the_same_way() {
    let Some(s) =
        lambda_server("a_nodejs_function_gets_the_same_event_and_answers_the_same_way").await
    else {
        return;
    };
    let source = "exports.handler = async (event) => ({ statusCode: 202, \
                  headers: { 'content-type': 'application/json' }, cookies: ['n=1'], \
                  body: JSON.stringify({ path: event.rawPath, q: event.queryStringParameters, \
                  method: event.requestContext.http.method }) });\n";
    let body = json!({
        "exec": { "kind": "lambda:nodejs20.x", "main": "index.handler",
                  "code": package_file("index.js", source), "binary": true },
        "annotations": [{ "key": "web-export", "value": true }],
    });
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/node?overwrite=true",
            Some(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .web(
            "DELETE",
            "/api/v1/web/guest/default/node/a/b?k=v",
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.header("set-cookie"), Some("n=1"));
    assert_eq!(
        r.body,
        json!({ "path": "/a/b", "q": { "k": "v" }, "method": "DELETE" })
    );
}
