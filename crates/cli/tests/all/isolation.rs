//! Tenant isolation: one namespace's key cannot read, invoke or list another's actions or
//! activations.

use gust_testkit::function;
use serde_json::json;

use crate::server;

#[tokio::test]
async fn a_key_cannot_reach_another_namespace() {
    let s = server();
    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    s.create("hello", &function("hello"), json!({})).await;
    let a_id = s.invoke("hello", json!({})).await.body["activationId"]
        .as_str()
        .unwrap()
        .to_string();

    // B's own view: nothing of A's.
    let r = s.call_as(&b_auth, "GET", "/api/v1/namespaces", None).await;
    assert_eq!(r.body, json!(["tenantb"]));
    let r = s
        .call_as(&b_auth, "GET", "/api/v1/namespaces/_/actions", None)
        .await;
    assert_eq!(r.body, json!([]));
    let r = s
        .call_as(&b_auth, "GET", "/api/v1/namespaces/_/activations", None)
        .await;
    assert_eq!(r.body, json!([]));
    let r = s
        .call_as(
            &b_auth,
            "GET",
            &format!("/api/v1/namespaces/_/activations/{a_id}"),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "an id from another namespace is not found");

    // B naming A's namespace: 403 on everything.
    for (method, path) in [
        ("GET", "/api/v1/namespaces/guest/actions"),
        ("GET", "/api/v1/namespaces/guest/actions/hello"),
        (
            "POST",
            "/api/v1/namespaces/guest/actions/hello?blocking=true",
        ),
        (
            "PUT",
            "/api/v1/namespaces/guest/actions/evil?overwrite=true",
        ),
        ("DELETE", "/api/v1/namespaces/guest/actions/hello"),
        ("GET", "/api/v1/namespaces/guest/activations"),
        ("GET", "/api/v1/namespaces/guest/limits"),
    ] {
        let r = s.call_as(&b_auth, method, path, Some(json!({}))).await;
        assert_eq!(r.status, 403, "{method} {path}");
        assert_eq!(
            r.error(),
            "The supplied authentication is not authorized to access 'guest'."
        );
    }
    let r = s
        .call_as(
            &b_auth,
            "GET",
            &format!("/api/v1/namespaces/guest/activations/{a_id}"),
            None,
        )
        .await;
    assert_eq!(r.status, 403);

    // B's own action with the same name is B's, and A's is untouched.
    let r = s
        .call_as(
            &b_auth,
            "PUT",
            "/api/v1/namespaces/_/actions/hello",
            Some(json!({
                "exec": {"kind": "wasm", "code": b64(&function("apperror"))}
            })),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call_as(
            &b_auth,
            "POST",
            "/api/v1/namespaces/tenantb/actions/hello?blocking=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.body["namespace"], "tenantb");
    let r = s.invoke("hello", json!({})).await;
    assert_eq!(r.status, 200);

    // A rotated key stops working.
    let new_auth = s.admin(&["key", "rotate", "tenantb"]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = s.call_as(&b_auth, "GET", "/api/v1/namespaces", None).await;
    assert_eq!(r.status, 401);
    let r = s
        .call_as(&new_auth, "GET", "/api/v1/namespaces", None)
        .await;
    assert_eq!(r.status, 200);
}

fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
