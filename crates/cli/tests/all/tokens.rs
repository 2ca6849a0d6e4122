//! Scoped tokens (`POST /api/v1/namespaces/_/tokens`, `Authorization: Bearer`): minted with a
//! key, used within their scope, refused once expired, altered, out of scope, after the
//! namespace's key was rotated, or for minting; a web token calls its web action only; a
//! token minted on one controller of a cluster works on another.

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use gust_testkit::{Cluster, Response, Server, function};
use serde_json::{Value, json};

use crate::server;

/// Mints a token on `s` with the guest key; panics unless 200.
async fn mint(s: &Server, body: Value) -> String {
    let r = s
        .call("POST", "/api/v1/namespaces/_/tokens", Some(body))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["token"].as_str().unwrap().to_string()
}

/// `method path` on `s` with `Authorization: Bearer token` and no key.
async fn with_token(s: &Server, token: &str, method: &str, path: &str, body: Value) -> Response {
    let auth = format!("Bearer {token}");
    s.web(
        method,
        path,
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body.to_string().into_bytes(),
    )
    .await
}

fn kv(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

#[tokio::test]
async fn a_token_lists_and_invokes_within_its_scope() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/tokens",
            Some(json!({
                "ttl": "30m",
                "scope": ["invoke:actions/hello", "read:actions", "read:activations"],
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["scope"],
        json!(["invoke:actions/hello", "read:actions", "read:activations"])
    );
    let expires = r.body["expires"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(expires > now + 29 * 60_000 && expires <= now + 30 * 60_000 + 1000);
    let token = r.body["token"].as_str().unwrap();

    let r = with_token(&s, token, "GET", "/api/v1/namespaces/_/actions", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[0]["name"], "hello");
    let r = with_token(
        &s,
        token,
        "POST",
        "/api/v1/namespaces/_/actions/hello?blocking=true",
        json!({"name": "token"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    let r = with_token(
        &s,
        token,
        "GET",
        &format!("/api/v1/namespaces/_/activations/{id}"),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["subject"], "guest");
    // The default lifetime is one hour.
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/guest/tokens",
            Some(json!({"scope": ["read:*"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let expires = r.body["expires"].as_u64().unwrap();
    assert!(expires > now + 59 * 60_000 && expires <= now + 3_600_000 + 5000);
}

#[tokio::test]
async fn a_token_out_of_scope_is_refused_naming_its_scope() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    s.create("other", &function("hello"), json!({})).await;
    let token = mint(&s, json!({"scope": ["invoke:actions/hello"]})).await;
    for (method, path, verb, entity) in [
        (
            "POST",
            "/api/v1/namespaces/_/actions/other?blocking=true",
            "invoke",
            "actions/other",
        ),
        (
            "GET",
            "/api/v1/namespaces/_/actions/hello",
            "read",
            "actions/hello",
        ),
        ("GET", "/api/v1/namespaces/_/actions", "read", "actions"),
        (
            "PUT",
            "/api/v1/namespaces/_/actions/hello?overwrite=true",
            "write",
            "actions/hello",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/_/actions/hello",
            "write",
            "actions/hello",
        ),
        (
            "GET",
            "/api/v1/namespaces/_/activations",
            "read",
            "activations",
        ),
        (
            "POST",
            "/api/v1/namespaces/_/triggers/t",
            "fire",
            "triggers/t",
        ),
    ] {
        let r = with_token(&s, &token, method, path, json!({})).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(
            r.error(),
            format!(
                "The token's scope (invoke:actions/hello) does not allow {verb} on '{entity}'."
            ),
            "{method} {path}"
        );
        assert!(r.body["code"].is_string(), "an OpenWhisk error body");
    }
    // Nothing changed: both actions are there.
    let r = s.call("GET", "/api/v1/namespaces/_/actions", None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    // A prefix pattern and a fire scope.
    let token = mint(
        &s,
        json!({"scope": ["fire:triggers/deploy-*", "write:triggers"]}),
    )
    .await;
    let r = with_token(
        &s,
        &token,
        "PUT",
        "/api/v1/namespaces/_/triggers/deploy-prod",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = with_token(
        &s,
        &token,
        "POST",
        "/api/v1/namespaces/_/triggers/deploy-prod",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 204, "a fire without rules: {}", r.body);
    let r = with_token(
        &s,
        &token,
        "POST",
        "/api/v1/namespaces/_/triggers/build",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Another namespace's entities stay out of reach, as with a key.
    let r = with_token(
        &s,
        &token,
        "PUT",
        "/api/v1/namespaces/other/triggers/deploy-x",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let s = server();
    let token = mint(&s, json!({"ttl": 1, "scope": ["read:*"]})).await;
    let path = "/api/v1/namespaces/_/actions";
    assert_eq!(
        with_token(&s, &token, "GET", path, json!({})).await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = with_token(&s, &token, "GET", path, json!({})).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.error(), "The supplied token has expired.");
}

/// `token` with the character at `at` of its part `part` (0 header, 1 claims, 2 signature)
/// replaced by another.
fn flip(token: &str, part: usize, at: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut bytes = parts[part].clone().into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    parts[part] = String::from_utf8(bytes).unwrap();
    parts.join(".")
}

#[tokio::test]
async fn a_tampered_or_made_up_token_is_refused() {
    let s = server();
    let token = mint(&s, json!({"scope": ["read:actions"]})).await;
    let path = "/api/v1/namespaces/_/actions";
    assert_eq!(
        with_token(&s, &token, "GET", path, json!({})).await.status,
        200
    );
    // A claim changed to widen the scope, with the signature left as it was.
    let parts: Vec<&str> = token.split('.').collect();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = json!(["read,write,invoke,fire:*"]);
    let widened = format!(
        "{}.{}.{}",
        parts[0],
        engine.encode(claims.to_string()),
        parts[2]
    );
    let tampered = [
        flip(&token, 2, 5),
        flip(&token, 1, 5),
        widened,
        "garbage".to_string(),
        "a.b.c".to_string(),
        String::new(),
    ];
    for t in tampered {
        let r = with_token(&s, &t, "GET", path, json!({})).await;
        assert_eq!(r.status, 401, "{t}: {}", r.body);
        assert_eq!(r.error(), "The supplied authentication is invalid.", "{t}");
    }
    // Signed by another server's master key.
    let other = server();
    let foreign = mint(&other, json!({"scope": ["read:*"]})).await;
    let r = with_token(&s, &foreign, "GET", path, json!({})).await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test]
async fn a_token_cannot_mint() {
    let s = server();
    let token = mint(&s, json!({"scope": ["read,write,invoke,fire:*"]})).await;
    let r = with_token(
        &s,
        &token,
        "POST",
        "/api/v1/namespaces/_/tokens",
        json!({"scope": ["read:*"]}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.error(),
        "A token cannot mint tokens: authenticate with the namespace's key."
    );
    assert!(r.body.get("token").is_none());
}

#[tokio::test]
async fn a_web_token_calls_its_web_action_only() {
    let s = server();
    for name in ["shop", "admin"] {
        let annotations = json!([
            kv("web-export", json!(true)),
            kv("require-whisk-auth", json!(true))
        ]);
        s.create(
            name,
            &function("echo"),
            json!({ "annotations": annotations }),
        )
        .await;
    }
    let token = mint(&s, json!({"web": "shop", "ttl": "5m"})).await;
    let r = with_token(
        &s,
        &token,
        "GET",
        "/api/v1/web/guest/default/shop.json",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["params"]["__ow_user"], "guest");
    let r = with_token(
        &s,
        &token,
        "GET",
        "/api/v1/web/guest/default/admin.json",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error(), "The token may only call web action 'shop'.");
    let r = with_token(&s, &token, "GET", "/api/v1/namespaces/_/actions", json!({})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error(), "The token may only call web action 'shop'.");
    let r = with_token(
        &s,
        &token,
        "POST",
        "/api/v1/namespaces/_/actions/shop?blocking=true",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // A scoped token calls the web actions it may invoke.
    let token = mint(&s, json!({"scope": ["invoke:actions/admin"]})).await;
    let r = with_token(
        &s,
        &token,
        "GET",
        "/api/v1/web/guest/default/admin.json",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = with_token(
        &s,
        &token,
        "GET",
        "/api/v1/web/guest/default/shop.json",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.error(),
        "The token's scope (invoke:actions/admin) does not allow invoke on 'actions/shop'."
    );
    // A token for an API route calls the route, not the action's web URL nor other routes.
    for (path, action) in [("/users/{id}", "/guest/shop"), ("/admin", "/guest/admin")] {
        let body = json!({ "basePath": "/store", "path": path, "method": "GET", "action": action });
        let r = s.call("PUT", "/api/v1/namespaces/_/apis", Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let token = mint(&s, json!({"web": "/store/users/{id}"})).await;
    let r = with_token(&s, &token, "GET", "/api/guest/store/users/7", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["params"]["id"], "7");
    let r = with_token(&s, &token, "GET", "/api/guest/store/admin", json!({})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = with_token(
        &s,
        &token,
        "GET",
        "/api/v1/web/guest/default/shop.json",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let token = mint(&s, json!({"scope": ["invoke:actions/admin"]})).await;
    // An expired or altered token is a 401 there too.
    let r = with_token(
        &s,
        &flip(&token, 2, 4),
        "GET",
        "/api/v1/web/guest/default/admin.json",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test]
async fn a_token_minted_before_a_key_rotation_is_refused() {
    let s = server();
    let token = mint(&s, json!({"scope": ["read:*"]})).await;
    let path = "/api/v1/namespaces/_/actions";
    assert_eq!(
        with_token(&s, &token, "GET", path, json!({})).await.status,
        200
    );
    let new_auth = s.admin(&["key", "rotate", "guest"]);
    // The controller's namespace cache lives one second.
    let mut refused = None;
    for _ in 0..50 {
        let r = with_token(&s, &token, "GET", path, json!({})).await;
        if r.status != 200 {
            refused = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = refused.expect("the old token is refused within 5 s");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.error(),
        "The supplied token was issued before the namespace's key was changed."
    );
    // A token minted with the new key works.
    let r = s
        .call_as(
            &new_auth,
            "POST",
            "/api/v1/namespaces/_/tokens",
            Some(json!({"scope": ["read:*"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["token"].as_str().unwrap();
    assert_eq!(
        with_token(&s, token, "GET", path, json!({})).await.status,
        200
    );
}

#[tokio::test]
async fn bad_token_requests_are_refused_and_change_nothing() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    for (body, status, message) in [
        (
            json!({"ttl": "13h", "scope": ["read:*"]}),
            400,
            "at most 12h",
        ),
        (
            json!({"ttl": 43201, "scope": ["read:*"]}),
            400,
            "at most 12h",
        ),
        (
            json!({"ttl": "soon", "scope": ["read:*"]}),
            400,
            "not a lifetime",
        ),
        (
            json!({"ttl": 0, "scope": ["read:*"]}),
            400,
            "at least 1 second",
        ),
        (
            json!({"scope": ["read:actions", "run:actions/x"]}),
            400,
            "bad scope item 'run:actions/x': unknown verb 'run'",
        ),
        (
            json!({"scope": ["invoke:packages/p"]}),
            400,
            "'invoke:packages/p': invoke applies to actions only",
        ),
        (
            json!({"scope": ["read:acts"]}),
            400,
            "unknown entity kind 'acts'",
        ),
        (json!({"scope": []}), 400, "needs a scope"),
        (json!({}), 400, "needs a scope"),
        (json!({"web": "a/b/c"}), 400, "neither an action"),
        (json!({"web": "/"}), 400, "nor an API route"),
        (json!({"web": "a", "scope": ["read:*"]}), 400, "not both"),
        (
            json!({"scope": ["read:*"], "roles": ["admin"]}),
            400,
            "unknown field",
        ),
        (json!({"scope": "read:*"}), 400, "malformed"),
    ] {
        let r = s
            .call("POST", "/api/v1/namespaces/_/tokens", Some(body.clone()))
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.error().contains(message), "{body}: {}", r.error());
        assert!(r.body.get("token").is_none());
    }
    // Another namespace's tokens: 403, as for any of its entities.
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/other/tokens",
            Some(json!({"scope": ["read:*"]})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Without a key: 401.
    let r = s
        .web("POST", "/api/v1/namespaces/_/tokens", &[], b"{}".to_vec())
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    // Nothing changed.
    let r = s.call("GET", "/api/v1/namespaces/_/actions", None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_cli_mints_a_token_and_uses_it() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    let home = tempfile::tempdir().unwrap();
    let gust = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gust"));
        cmd.args(args)
            .env("HOME", home.path())
            .env("GUST_CONFIG_DIR", home.path().join("config"))
            .env("GUST_APIHOST", &s.apihost)
            .env_remove("GUST_AUTH")
            .env_remove("GUST_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let key = [("GUST_AUTH", s.auth.as_str())];
    let out = gust(
        &key,
        &[
            "token",
            "create",
            "--scope",
            "read:actions",
            "--scope",
            "invoke:actions/hello",
            "--ttl",
            "10m",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    // With the token in GUST_TOKEN and no key at all.
    let out = gust(&[("GUST_TOKEN", token.as_str())], &["action", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello"));
    let out = gust(
        &[],
        &["--token", &token, "action", "invoke", "hello", "--result"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gust(&[], &["--token", &token, "action", "delete", "hello"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not allow write on 'actions/hello'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --json shows the whole answer.
    let out = gust(&key, &["token", "create", "--web", "hello", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["web"], "hello");
    assert!(answer["expires"].is_u64());
    // Out of range: the server's message.
    let out = gust(
        &key,
        &["token", "create", "--scope", "read:*", "--ttl", "13h"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 12h"));
}

#[tokio::test]
async fn a_token_minted_on_one_controller_works_on_another() {
    let (Some(pg), Some(nats)) = (gust_testkit::postgres_url(), gust_testkit::nats_url()) else {
        eprintln!("skipped: the cluster tests need GUST_TEST_POSTGRES_URL and GUST_TEST_NATS_URL");
        return;
    };
    let mut c = Cluster::new(env!("CARGO_BIN_EXE_gust"), &pg, &nats);
    c.add_controller("c1");
    c.add_controller("c2");
    let hosts = c.apihosts();
    let http = reqwest::Client::new();
    let (uuid, key) = c.auth.split_once(':').unwrap();
    let r = http
        .post(format!("{}/api/v1/namespaces/_/tokens", hosts[0]))
        .basic_auth(uuid, Some(key))
        .json(&json!({"scope": ["read:actions"], "ttl": "10m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    for host in &hosts {
        let r = http
            .get(format!("{host}/api/v1/namespaces/_/actions"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "on {host}");
        let r = http
            .get(format!("{host}/api/v1/namespaces/_/activations"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "out of scope on {host}");
    }
    // A key rotation refuses it on every controller.
    c.admin(&["key", "rotate", "guest"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for host in &hosts {
        let r = http
            .get(format!("{host}/api/v1/namespaces/_/actions"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "after the rotation on {host}");
    }
}

#[tokio::test]
async fn an_action_gets_a_token_of_the_scope_it_asks_for() {
    let s = server();
    let annotations = json!([kv(
        "api-token-scope",
        json!(["read:actions", "invoke:actions/hello"])
    )]);
    s.create(
        "caller",
        &function("echo"),
        json!({ "annotations": annotations, "limits": {"timeout": 5000} }),
    )
    .await;
    s.create("plain", &function("echo"), json!({})).await;
    let r = s.invoke("caller", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["response"]["result"]["env"]["__OW_API_TOKEN"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {}", r.body))
        .to_string();
    // Its lifetime is the action's timeout plus a minute.
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims: Value =
        serde_json::from_slice(&engine.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 65, "{claims}");
    assert_eq!(claims["sub"], "guest");
    assert_eq!(
        r.body["response"]["result"]["env"]["__OW_API_HOST"],
        s.apihost.as_str()
    );
    // It works within its scope and nowhere else.
    let r = with_token(&s, &token, "GET", "/api/v1/namespaces/_/actions", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = with_token(
        &s,
        &token,
        "DELETE",
        "/api/v1/namespaces/_/actions/plain",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // It is not in the record's parameters or annotations, and an action without the
    // annotation gets none.
    let r = s.invoke("plain", json!({})).await;
    assert!(
        r.body["response"]["result"]["env"]
            .get("__OW_API_TOKEN")
            .is_none()
    );
    // A scope that does not parse: the invocation's 400, naming the item.
    let annotations = json!([kv("api-token-scope", json!(["run:actions/x"]))]);
    s.create(
        "broken",
        &function("echo"),
        json!({ "annotations": annotations }),
    )
    .await;
    let r = s.invoke("broken", json!({})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("run:actions/x"), "{}", r.error());
}

/// What a token writes reaches nothing it could not reach itself: a sequence, a rule or a
/// binding naming an action out of its scope, a conductor, an `api-token-scope` annotation
/// (which would mint a wider token) and anything of another namespace are refused, and
/// nothing is written.
#[tokio::test]
async fn a_token_cannot_widen_itself_through_what_it_writes() {
    let s = server();
    s.create("secret-work", &function("hello"), json!({})).await;
    s.create("mine", &function("hello"), json!({})).await;
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/packages/private",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.call("PUT", "/api/v1/namespaces/_/triggers/t", Some(json!({})))
        .await;
    let token = mint(
        &s,
        json!({ "scope": [
            "read,write,invoke:actions/mine", "read,write,invoke:actions/seq",
            "read,write:rules", "read,write:packages/bound", "read,write,fire:triggers"
        ] }),
    )
    .await;
    let sequence =
        |components: Value| json!({ "exec": { "kind": "sequence", "components": components } });
    type Case<'a> = (&'a str, &'a str, Value, u16);
    let cases: Vec<Case> = vec![
        // A sequence of its own action: allowed.
        (
            "PUT",
            "/api/v1/namespaces/_/actions/seq",
            sequence(json!(["/_/mine", "/guest/mine"])),
            200,
        ),
        // A sequence through an action out of scope, or of another namespace.
        (
            "PUT",
            "/api/v1/namespaces/_/actions/seq?overwrite=true",
            sequence(json!(["/guest/mine", "/guest/secret-work"])),
            403,
        ),
        (
            "PUT",
            "/api/v1/namespaces/_/actions/seq?overwrite=true",
            sequence(json!(["/other/pkg/a"])),
            403,
        ),
        // An action that would be given a token.
        (
            "PUT",
            "/api/v1/namespaces/_/actions/mine?overwrite=true",
            json!({ "exec": { "kind": "wasm", "code": "AA==" }, "annotations": [kv("api-token-scope", json!(["*"]))] }),
            403,
        ),
        // A conductor picks any action as it runs.
        (
            "PUT",
            "/api/v1/namespaces/_/actions/mine?overwrite=true",
            json!({ "exec": { "kind": "wasm", "code": "AA==" }, "annotations": [kv("conductor", json!(true))] }),
            403,
        ),
        // A rule to an action out of scope, in each of the shapes a rule names an action.
        (
            "PUT",
            "/api/v1/namespaces/_/rules/r",
            json!({ "trigger": "/_/t", "action": "/_/secret-work" }),
            403,
        ),
        (
            "PUT",
            "/api/v1/namespaces/_/rules/r",
            json!({ "trigger": "/_/t", "action": { "path": "guest", "name": "secret-work" } }),
            403,
        ),
        (
            "PUT",
            "/api/v1/namespaces/_/rules/r",
            json!({ "trigger": "/_/t", "action": "/_/mine" }),
            200,
        ),
        // A binding reaches every action of its package.
        (
            "PUT",
            "/api/v1/namespaces/_/packages/bound",
            json!({ "binding": { "namespace": "guest", "name": "private" } }),
            403,
        ),
        // Another namespace: a token only reads there.
        (
            "POST",
            "/api/v1/namespaces/whisk.system/actions/utils/echo?blocking=true",
            json!({}),
            403,
        ),
    ];
    for (method, path, body, status) in cases {
        let r = with_token(&s, &token, method, path, body.clone()).await;
        assert_eq!(r.status, status, "{method} {path} {body}: {}", r.body);
    }
    // Nothing refused was written: the sequence is still the first one, no binding.
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/seq", None)
        .await;
    assert_eq!(
        r.body["exec"]["components"],
        json!(["/guest/mine", "/guest/mine"]),
        "{}",
        r.body
    );
    let r = s
        .call("GET", "/api/v1/namespaces/_/packages/bound", None)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/mine", None)
        .await;
    assert!(
        !r.body["annotations"]
            .to_string()
            .contains("api-token-scope"),
        "{}",
        r.body
    );
}
