//! API routes: routes to web actions with path parameters, response types, CORS, rate limits,
//! OpenAPI export, and hostile route definitions and requests.

use gust_testkit::{Server, function};
use serde_json::{Value, json};

use crate::server;

const APIS: &str = "/api/v1/namespaces/_/apis";

async fn web_echo(s: &Server, name: &str) {
    s.create(
        name,
        &function("echo"),
        json!({ "annotations": [{ "key": "web-export", "value": true }] }),
    )
    .await;
}

async fn route(s: &Server, body: Value) -> gust_testkit::Response {
    s.call("PUT", APIS, Some(body)).await
}

#[tokio::test]
async fn routes_run_web_actions_with_path_parameters() {
    let s = server();
    web_echo(&s, "users").await;
    let r = route(
        &s,
        json!({ "basePath": "/shop", "path": "/users/{id}", "method": "get", "action": "users" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["method"], "GET");
    assert_eq!(r.body["action"], "/guest/users");
    assert_eq!(r.body["url"], "/api/guest/shop/users/{id}");
    let r = route(
        &s,
        json!({ "basePath": "/shop", "path": "/users", "method": "POST", "action": "/guest/users",
                "responseType": "http", "cors": false, "rateLimit": 2 }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Served: path parameters, query and headers reach the action.
    let r = s
        .web(
            "GET",
            "/api/guest/shop/users/42?q=x",
            &[("x-k", "v")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = &r.body["params"];
    assert_eq!(p["id"], "42");
    assert_eq!(p["q"], "x");
    assert_eq!(p["__ow_method"], "get");
    assert_eq!(p["__ow_path"], "/users/42");
    assert_eq!(p["__ow_headers"]["x-k"], "v");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    // Another method on a known path: 405 naming the allowed ones; unknown paths: 404.
    let r = s
        .web("DELETE", "/api/guest/shop/users/42", &[], vec![])
        .await;
    assert_eq!(r.status, 405, "{}", r.body);
    assert!(r.error().contains("GET"));
    for path in [
        "/api/guest/shop/nothing",
        "/api/guest/other/users",
        "/api/nobody/shop/users/1",
    ] {
        assert_eq!(s.web("GET", path, &[], vec![]).await.status, 404, "{path}");
    }
    // The http route: echo's result has no statusCode or body (204), no CORS, rate-limited.
    let r = s.web("POST", "/api/guest/shop/users", &[], vec![]).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(
        s.web("POST", "/api/guest/shop/users", &[], vec![])
            .await
            .status,
        204
    );
    let r = s.web("POST", "/api/guest/shop/users", &[], vec![]).await;
    assert_eq!(r.status, 429);
    assert!(r.error().contains("2 per minute"), "{}", r.body);

    // Listing, OpenAPI export, deleting one route, then the API.
    let r = s.call("GET", APIS, None).await;
    assert_eq!(r.body["apis"][0]["basePath"], "/shop");
    assert_eq!(r.body["apis"][0]["routes"].as_array().unwrap().len(), 2);
    let r = s
        .call("GET", &format!("{APIS}/shop?format=openapi"), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["openapi"], "3.0.3");
    assert_eq!(r.body["servers"][0]["url"], "/api/guest/shop");
    let op = &r.body["paths"]["/users/{id}"]["get"];
    assert_eq!(op["parameters"][0]["name"], "id");
    assert_eq!(op["parameters"][0]["in"], "path");
    assert_eq!(op["x-gust-action"], "/guest/users");
    let r = s
        .call(
            "DELETE",
            &format!("{APIS}/shop?path=/users&method=post"),
            None,
        )
        .await;
    assert_eq!(r.body, json!({ "deleted": 1 }));
    assert_eq!(
        s.web("POST", "/api/guest/shop/users", &[], vec![])
            .await
            .status,
        404
    );
    let r = s.call("DELETE", &format!("{APIS}/shop"), None).await;
    assert_eq!(r.body, json!({ "deleted": 1 }));
    assert_eq!(
        s.web("GET", "/api/guest/shop/users/1", &[], vec![])
            .await
            .status,
        404
    );
    assert_eq!(
        s.call("DELETE", &format!("{APIS}/shop"), None).await.status,
        404
    );
}

#[tokio::test]
async fn bad_routes_are_refused_and_change_nothing() {
    let s = server();
    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    web_echo(&s, "ok").await;
    s.create("notweb", &function("echo"), json!({})).await;
    for body in [
        json!({ "basePath": "shop", "path": "/x", "method": "GET", "action": "ok" }),
        json!({ "basePath": "/a/b", "path": "/x", "method": "GET", "action": "ok" }),
        json!({ "basePath": "/..", "path": "/x", "method": "GET", "action": "ok" }),
        json!({ "basePath": "/shop", "path": "/../etc", "method": "GET", "action": "ok" }),
        json!({ "basePath": "/shop", "path": "/a/{x}/{x}", "method": "GET", "action": "ok" }),
        json!({ "basePath": "/shop", "path": "/{__ow_method}", "method": "GET", "action": "ok" }),
        json!({ "basePath": "/shop", "path": "/x", "method": "BREW", "action": "ok" }),
        json!({ "basePath": "/shop", "path": "/x", "method": "GET", "action": "missing" }),
        json!({ "basePath": "/shop", "path": "/x", "method": "GET", "action": "notweb" }),
        json!({ "basePath": "/shop", "path": "/x", "method": "GET", "action": "ok", "responseType": "xml" }),
        json!({ "basePath": "/shop", "path": "/x", "method": "GET", "action": "ok", "rateLimit": 0 }),
        json!({ "basePath": "/shop", "path": "/x", "method": "GET", "action": "ok", "extra": 1 }),
    ] {
        let r = route(&s, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(!r.error().is_empty());
    }
    assert_eq!(s.call("GET", APIS, None).await.body, json!({ "apis": [] }));
    // Another tenant cannot route to guest's private action, nor see guest's APIs.
    let r = s
        .call_as(
            &b_auth,
            "PUT",
            APIS,
            Some(json!({ "basePath": "/steal", "path": "/", "method": "GET", "action": "/guest/ok" })),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s
        .call_as(&b_auth, "GET", "/api/v1/namespaces/guest/apis", None)
        .await;
    assert_eq!(r.status, 403);
    // Traversal in a served path finds nothing.
    route(
        &s,
        json!({ "basePath": "/shop", "path": "/", "method": "GET", "action": "ok" }),
    )
    .await;
    for path in [
        "/api/guest/shop/../../v1/namespaces",
        "/api/guest/shop/%2e%2e/x",
    ] {
        let r = s.web("GET", path, &[], vec![]).await;
        assert_ne!(r.status, 200, "{path}: {}", r.body);
    }
    assert_eq!(
        s.web("GET", "/api/guest/shop", &[], vec![]).await.status,
        200
    );
}
