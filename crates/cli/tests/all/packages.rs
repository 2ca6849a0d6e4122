//! Packages, bindings, actions inside packages and parameter merging, as OpenWhisk does them.

use gust_testkit::function;
use serde_json::{Value, json};

use crate::server;

const PKG: &str = "/api/v1/namespaces/_/packages";

fn kv(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

#[tokio::test]
async fn package_lifecycle_and_actions_inside() {
    let s = server();
    let r = s
        .call(
            "PUT",
            &format!("{PKG}/utils"),
            Some(json!({ "parameters": [kv("greeting", json!("hi"))] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["namespace"], "guest");
    assert_eq!(r.body["name"], "utils");
    assert_eq!(r.body["version"], "0.0.1");
    assert_eq!(r.body["binding"], json!({}));
    assert_eq!(r.body["publish"], false);

    // Again without overwrite: 409; with it: version bump, absent fields kept.
    let r = s
        .call("PUT", &format!("{PKG}/utils"), Some(json!({})))
        .await;
    assert_eq!(r.status, 409);
    let r = s
        .call(
            "PUT",
            &format!("{PKG}/utils?overwrite=true"),
            Some(json!({ "annotations": [kv("description", json!("tools"))] })),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["version"], "0.0.2");
    assert_eq!(r.body["parameters"][0]["key"], "greeting");

    // An action in the package: stored under it, shown as OpenWhisk shows it.
    let body = s.create("utils/echo", &function("echo"), json!({})).await;
    assert_eq!(body["namespace"], "guest/utils");
    assert_eq!(body["name"], "echo");
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/utils/echo", None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["namespace"], "guest/utils");

    // Package parameters reach it, the action's own win, the request's win over both.
    s.create(
        "utils/echo",
        &function("echo"),
        json!({ "parameters": [kv("who", json!("action"))] }),
    )
    .await;
    let r = s.invoke("utils/echo", json!({ "extra": 1 })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = &r.body["response"]["result"]["params"];
    assert_eq!(p["greeting"], "hi");
    assert_eq!(p["who"], "action");
    assert_eq!(p["extra"], 1);
    let env = &r.body["response"]["result"]["env"];
    assert_eq!(env["__OW_ACTION_NAME"], "/guest/utils/echo");
    // The record: OpenWhisk's name and path; listable by `package/name`.
    assert_eq!(r.body["name"], "echo");
    let path = r.body["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "path")
        .unwrap()["value"]
        .clone();
    assert_eq!(path, "guest/utils/echo");
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?name=utils/echo",
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(!r.body.as_array().unwrap().is_empty());

    // Listing: the package's own actions under `pkg/`; the namespace lists them too.
    s.create("top", &function("hello"), json!({})).await;
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/utils/", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo"]);
    let r = s.call("GET", "/api/v1/namespaces/_/actions", None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    let r = s.call("GET", PKG, None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["name"], "utils");
    let r = s.call("GET", &format!("{PKG}?count=true"), None).await;
    assert_eq!(r.body, json!({ "packages": 1 }));

    // GET lists its actions.
    let r = s.call("GET", &format!("{PKG}/utils"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["actions"][0]["name"], "echo");

    // An action in a package that does not exist: 404, nothing created.
    let r = s
        .put_action("nopkg/echo", &function("echo"), json!({}))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // A package with actions is deleted only with force, and takes them with it.
    let r = s.call("DELETE", &format!("{PKG}/utils"), None).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.error(),
        "Package not empty (contains 1 entity). Set force param or delete package contents."
    );
    let r = s
        .call("DELETE", &format!("{PKG}/utils?force=true"), None)
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/utils/echo", None)
        .await;
    assert_eq!(r.status, 404);
    let r = s.call("GET", &format!("{PKG}/utils"), None).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn bad_package_requests_change_nothing() {
    let s = server();
    for (name, body, status) in [
        ("default", json!({}), 400),
        ("bad%20name%20", json!({}), 400),
        (
            "p",
            json!({ "binding": { "namespace": "guest", "name": "missing" } }),
            400,
        ),
        ("p", json!({ "binding": "nonsense" }), 400),
        ("p", json!({ "parameters": [kv("", json!(1))] }), 400),
        ("p", json!({ "publish": "yes" }), 400),
    ] {
        let r = s
            .call("PUT", &format!("{PKG}/{name}"), Some(body.clone()))
            .await;
        assert_eq!(r.status, status, "{name} {body}: {}", r.body);
        assert!(!r.error().is_empty());
    }
    let r = s.call("GET", PKG, None).await;
    assert_eq!(r.body, json!([]));

    // A package cannot become a binding, nor a binding bind a binding.
    s.call("PUT", &format!("{PKG}/base"), Some(json!({}))).await;
    let r = s
        .call(
            "PUT",
            &format!("{PKG}/base?overwrite=true"),
            Some(json!({ "binding": { "namespace": "guest", "name": "base" } })),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = s
        .call(
            "PUT",
            &format!("{PKG}/b1"),
            Some(json!({ "binding": { "namespace": "guest", "name": "base" } })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "PUT",
            &format!("{PKG}/b2"),
            Some(json!({ "binding": { "namespace": "guest", "name": "b1" } })),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "Cannot bind to another package binding.");
    // No actions are created inside a binding.
    let r = s.put_action("b1/x", &function("hello"), json!({})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "Operation not permitted on package binding.");
}

#[tokio::test]
async fn shared_packages_bindings_and_final_parameters() {
    let s = server();
    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    // guest shares `lib` (with a parameter) and keeps `private` to itself.
    let r = s
        .call(
            "PUT",
            &format!("{PKG}/lib"),
            Some(json!({ "publish": true, "parameters": [kv("from", json!("package")), kv("level", json!(1))] })),
        )
        .await;
    assert_eq!(r.status, 200);
    s.create("lib/echo", &function("echo"), json!({})).await;
    s.call("PUT", &format!("{PKG}/private"), Some(json!({})))
        .await;
    s.create("private/echo", &function("echo"), json!({})).await;

    // tenantb sees only the shared package and may invoke inside it.
    let r = s
        .call_as(&b_auth, "GET", "/api/v1/namespaces/guest/packages", None)
        .await;
    assert_eq!(r.status, 200);
    let names: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lib"]);
    let r = s
        .call_as(
            &b_auth,
            "POST",
            "/api/v1/namespaces/guest/actions/lib/echo?blocking=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["namespace"], "tenantb", "the record is the caller's");
    for path in [
        "/api/v1/namespaces/guest/packages/private",
        "/api/v1/namespaces/guest/actions/private/echo",
        "/api/v1/namespaces/guest/actions/private/",
    ] {
        let r = s.call_as(&b_auth, "GET", path, None).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    let r = s
        .call_as(
            &b_auth,
            "POST",
            "/api/v1/namespaces/guest/actions/private/echo?blocking=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 403);
    // Nor may it bind the private one (nor learn whether one exists), nor write into the
    // shared one.
    let r = s
        .call_as(
            &b_auth,
            "PUT",
            "/api/v1/namespaces/_/packages/ghost",
            Some(json!({ "binding": { "namespace": "guest", "name": "no-such-package" } })),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s
        .call_as(
            &b_auth,
            "PUT",
            "/api/v1/namespaces/_/packages/mine",
            Some(json!({ "binding": { "namespace": "guest", "name": "private" } })),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s
        .call_as(
            &b_auth,
            "PUT",
            "/api/v1/namespaces/guest/actions/lib/evil",
            Some(json!({ "exec": { "kind": "wasm", "code": "AA==" } })),
        )
        .await;
    assert_eq!(r.status, 403);

    // A binding in tenantb: its parameters override the package's; invocations through it
    // run guest's code as tenantb.
    let r = s
        .call_as(
            &b_auth,
            "PUT",
            "/api/v1/namespaces/_/packages/mylib",
            Some(json!({ "binding": { "namespace": "guest", "name": "lib" },
                         "parameters": [kv("from", json!("binding"))] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["binding"],
        json!({ "namespace": "guest", "name": "lib" })
    );
    let r = s
        .call_as(
            &b_auth,
            "POST",
            "/api/v1/namespaces/_/actions/mylib/echo?blocking=true",
            Some(json!({ "mine": true })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = &r.body["response"]["result"]["params"];
    assert_eq!(p["from"], "binding");
    assert_eq!(p["level"], 1);
    assert_eq!(p["mine"], true);
    let r = s
        .call_as(&b_auth, "GET", "/api/v1/namespaces/_/actions/mylib/", None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body[0]["name"], "echo");
    let r = s
        .call_as(&b_auth, "GET", "/api/v1/namespaces/_/packages/mylib", None)
        .await;
    assert_eq!(r.body["actions"][0]["name"], "echo");

    // `final`: a defined parameter cannot be overridden by the request (400), others can.
    s.create(
        "lib/echo",
        &function("echo"),
        json!({ "parameters": [kv("fixed", json!("yes"))], "annotations": [kv("final", json!(true))] }),
    )
    .await;
    let r = s.invoke("lib/echo", json!({ "fixed": "no" })).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error(),
        "Request defines parameters that are not allowed (e.g., reserved properties)."
    );
    let r = s.invoke("lib/echo", json!({ "level": 2 })).await;
    assert_eq!(r.status, 400, "inherited parameters are final too");
    let r = s.invoke("lib/echo", json!({ "free": 1 })).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["response"]["result"]["params"]["fixed"], "yes");

    // Unsharing the package cuts the binding off.
    let r = s
        .call(
            "PUT",
            &format!("{PKG}/lib?overwrite=true"),
            Some(json!({ "publish": false })),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call_as(
            &b_auth,
            "POST",
            "/api/v1/namespaces/_/actions/mylib/echo?blocking=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
}
