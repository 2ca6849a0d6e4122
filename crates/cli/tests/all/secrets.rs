//! Secrets at rest (decision 0022): parameters marked secret reach the function and nothing
//! else in clear: not an API answer, a record, a log, the data directory or the server's
//! output; a sealed value copied from another namespace is never opened; rotation of the
//! master key seals everything again and drops the old key.
//!
//! The test function `digest` answers a digest of each parameter and environment variable,
//! so a secret's arrival is proved without the secret being written to a record.

use std::path::Path;
use std::process::Command;

use gust_testkit::{Server, StoreUnderTest, function, store_under_test};
use serde_json::{Value, json};

use crate::server;

const ACTION_SECRET: &str = "actionSecretQ7v2Lx9";
const ENV_SECRET: &str = "envSecretM3k8Pz1";
const PACKAGE_SECRET: &str = "packageSecretR5t0Wn4";
const TRIGGER_SECRET: &str = "triggerSecretH2j6Yb8";
const ALL: [&str; 4] = [ACTION_SECRET, ENV_SECRET, PACKAGE_SECRET, TRIGGER_SECRET];

/// What `digest` answers for a value: FNV-1a 64 of its text, hex.
fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The digest of a parameter holding the JSON string `s`.
fn param_digest(s: &str) -> String {
    fnv1a(json!(s).to_string().as_bytes())
}

fn secret(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": value, "secret": true })
}

/// Runs the `gust` client against `s`; its stdout.
fn gust(s: &Server, args: &[&str]) -> String {
    gust_with(s, &[], args)
}

/// [`gust`] with environment variables `env`.
fn gust_with(s: &Server, env: &[(&str, &str)], args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gust"))
        .args(args)
        .envs(env.iter().copied())
        .args(["--apihost", &s.apihost, "--auth", &s.auth])
        .env("HOME", home.path())
        .env("GUST_CONFIG_DIR", home.path().join("config"))
        .env_remove("GUST_APIHOST")
        .env_remove("GUST_AUTH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gust {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir`, recursively, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Fails if any secret is in `text`, naming `what`.
fn assert_clean(what: &str, text: &str) {
    for secret in ALL {
        assert!(
            !text.contains(secret),
            "{what} holds a secret in clear: {text}"
        );
    }
}

/// Fails if an API answer holds a secret, in clear or sealed.
fn assert_hidden(what: &str, body: &Value) {
    let text = body.to_string();
    assert_clean(what, &text);
    assert!(
        !text.contains("gust:v1:"),
        "{what} shows a sealed value: {text}"
    );
}

/// The record of the action a trigger's rule started for fire `fire` (its first rule).
async fn rule_record(s: &Server, fire: &str) -> Value {
    let trigger = s.wait_for_record(fire).await;
    let line: Value = serde_json::from_str(trigger["logs"][0].as_str().unwrap()).unwrap();
    let id = line["activationId"].as_str().unwrap().to_string();
    s.wait_for_record(&id).await
}

/// Fires trigger `t`; the record of the action its rule ran.
async fn fire(s: &Server, t: &str) -> Value {
    let r = s
        .call(
            "POST",
            &format!("/api/v1/namespaces/_/triggers/{t}"),
            Some(json!({"x": 1})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    rule_record(s, r.body["activationId"].as_str().unwrap()).await
}

/// Makes an action (with an `init` secret), a package with an action, and a trigger with a
/// rule, each with a secret.
async fn make_entities(s: &Server) {
    let digest = function("digest");
    let r = s
        .put_action(
            "d",
            &digest,
            json!({ "parameters": [
                secret("password", ACTION_SECRET),
                { "key": "TOKEN", "value": ENV_SECRET, "secret": true, "init": true },
                { "key": "plain", "value": "visible" },
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_hidden("the answer of a create", &r.body);
    assert!(
        r.body["parameters"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "password", "secret": true})),
        "a secret shows that it is set: {}",
        r.body
    );

    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/packages/p",
            Some(json!({ "parameters": [secret("pkgpw", PACKAGE_SECRET)] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_hidden("the answer of a package create", &r.body);
    s.create("p/d", &digest, json!({})).await;

    // The trigger through the client's --secret.
    let out = gust(
        s,
        &[
            "trigger",
            "create",
            "t",
            "--secret",
            "trigpw",
            TRIGGER_SECRET,
        ],
    );
    assert_clean("gust trigger create", &out);
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/rules/r",
            Some(json!({ "trigger": "/_/t", "action": "/_/d" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Checks that each function got its secrets.
async fn assert_delivered(s: &Server) {
    let r = s.invoke("d", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let result = &r.body["response"]["result"];
    assert_eq!(result["params"]["password"], param_digest(ACTION_SECRET));
    assert_eq!(result["params"]["plain"], param_digest("visible"));
    assert_eq!(result["env"]["TOKEN"], fnv1a(ENV_SECRET.as_bytes()));
    assert!(
        result["params"]["TOKEN"].is_null(),
        "init goes to the environment"
    );
    assert_hidden("a blocking invocation's record", &r.body);

    let r = s.invoke("p/d", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["response"]["result"]["params"]["pkgpw"],
        param_digest(PACKAGE_SECRET)
    );

    let record = fire(s, "t").await;
    let params = &record["response"]["result"]["params"];
    assert_eq!(params["trigpw"], param_digest(TRIGGER_SECRET), "{record}");
    assert_eq!(params["password"], param_digest(ACTION_SECRET));
    assert_eq!(params["x"], fnv1a(b"1"));
}

#[tokio::test]
async fn a_secret_parameter_reaches_the_action_and_is_nowhere_else_in_clear() {
    let s = server();
    make_entities(&s).await;
    assert_delivered(&s).await;

    // A sequence's secrets go to its first step, as its parameters do.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/seq",
            Some(json!({
                "exec": { "kind": "sequence", "components": ["/_/d"] },
                "parameters": [secret("seqpw", PACKAGE_SECRET)],
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.invoke("seq", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let params = &r.body["response"]["result"]["params"];
    assert_eq!(params["seqpw"], param_digest(PACKAGE_SECRET), "{}", r.body);
    assert_eq!(params["password"], param_digest(ACTION_SECRET));

    // `gust action create --secret`.
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("digest.wasm");
    std::fs::write(&wasm, function("digest")).unwrap();
    let out = gust(
        &s,
        &[
            "action",
            "create",
            "dc",
            wasm.to_str().unwrap(),
            "--secret",
            "password",
            ACTION_SECRET,
            "-p",
            "plain",
            "visible",
        ],
    );
    assert_clean("gust action create", &out);
    let r = s.invoke("dc", json!({})).await;
    assert_eq!(
        r.body["response"]["result"]["params"]["password"],
        param_digest(ACTION_SECRET)
    );
    assert_eq!(
        r.body["response"]["result"]["params"]["plain"],
        param_digest("visible")
    );

    // A binding's secrets join its package's.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/packages/b",
            Some(json!({
                "binding": { "namespace": "guest", "name": "p" },
                "parameters": [secret("bindpw", TRIGGER_SECRET)],
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_hidden("the answer of a binding create", &r.body);
    let r = s.invoke("b/d", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let params = &r.body["response"]["result"]["params"];
    assert_eq!(params["bindpw"], param_digest(TRIGGER_SECRET), "{}", r.body);
    assert_eq!(params["pkgpw"], param_digest(PACKAGE_SECRET));
    assert_hidden(
        "a binding's action",
        &s.call("GET", "/api/v1/namespaces/_/actions/b/d", None)
            .await
            .body,
    );

    // A request's parameter of the same name replaces the secret, as any parameter.
    let r = s.invoke("d", json!({"password": "mine"})).await;
    assert_eq!(
        r.body["response"]["result"]["params"]["password"],
        param_digest("mine")
    );

    // An update that sends the secret back without its value keeps it; one that has no
    // stored value to keep is refused.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/d?overwrite=true",
            Some(json!({ "parameters": [
                { "key": "password", "secret": true },
                { "key": "TOKEN", "secret": true, "init": true },
                { "key": "plain", "value": "visible" },
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.invoke("d", json!({})).await;
    assert_eq!(
        r.body["response"]["result"]["params"]["password"],
        param_digest(ACTION_SECRET),
        "kept: {}",
        r.body
    );
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/d?overwrite=true",
            Some(json!({ "parameters": [{ "key": "other", "secret": true }] })),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("'other'"), "{}", r.body);
    // Annotations are not sealed: `secret` on one is refused.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/packages/p?overwrite=true",
            Some(json!({ "annotations": [secret("a", "b")] })),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Every API answer: gets, lists, the package with its actions, the trigger, and the
    // records with their logs.
    for path in [
        "/api/v1/namespaces/_/actions/d",
        "/api/v1/namespaces/_/actions/d?code=true",
        "/api/v1/namespaces/_/actions/p/d",
        "/api/v1/namespaces/_/actions",
        "/api/v1/namespaces/_/actions?docs=true",
        "/api/v1/namespaces/_/packages/p",
        "/api/v1/namespaces/_/packages",
        "/api/v1/namespaces/_/triggers/t",
        "/api/v1/namespaces/_/triggers",
        "/api/v1/namespaces/_/rules/r",
        "/api/v1/namespaces/_/activations?docs=true&limit=200",
    ] {
        let r = s.call("GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_hidden(path, &r.body);
    }
    let r = s.call("GET", "/api/v1/namespaces/_/triggers/t", None).await;
    assert_eq!(
        r.body["parameters"],
        json!([{"key": "trigpw", "secret": true}])
    );
    let list = s
        .call("GET", "/api/v1/namespaces/_/activations?limit=200", None)
        .await;
    for a in list.body.as_array().unwrap() {
        let id = a["activationId"].as_str().unwrap();
        for suffix in ["", "/logs", "/result"] {
            let path = format!("/api/v1/namespaces/_/activations/{id}{suffix}");
            assert_hidden(&path, &s.call("GET", &path, None).await.body);
        }
    }
    for args in [
        &["action", "get", "d", "--json"][..],
        &["action", "get", "d"],
        &["action", "list", "--json"],
        &["package", "get", "p", "--json"],
        &["trigger", "get", "t", "--json"],
        &["activation", "list", "--json"],
    ] {
        let out = gust(&s, args);
        assert_clean(&format!("gust {args:?}"), &out);
        assert!(!out.contains("gust:v1:"), "gust {args:?}: {out}");
    }

    // At rest and in the output: every file of the data directory (the database, its WAL,
    // the record log, caches) and everything the server wrote.
    let data = files(&s.data_dir);
    for (path, bytes) in &data {
        for secret in ALL {
            assert!(!contains(bytes, secret), "{path} holds {secret} in clear");
        }
    }
    if let StoreUnderTest::Sqlite = store_under_test() {
        // The scan reads the store: a plain parameter is there in clear.
        assert!(data.iter().any(|(_, b)| contains(b, "visible")));
    }
    let output = s.output();
    assert!(output.contains("gust: API host"), "the output is read");
    assert_clean("the server's stdout and stderr", &output);
}

/// The sealed values in the store of `s` (its files, or its PostgreSQL schema).
async fn stored_sealed_values(s: &Server) -> Vec<String> {
    let mut text = String::new();
    if let StoreUnderTest::Postgres(_) = store_under_test() {
        let store = crate::open_store(s).await;
        for ns in store.list_namespaces().await.unwrap() {
            for a in store.list_actions(&ns.name, None, 0, 1000).await.unwrap() {
                text.push_str(&serde_json::to_string(&a).unwrap());
            }
            for p in store.list_packages(&ns.name, false, 0, 1000).await.unwrap() {
                text.push_str(&serde_json::to_string(&p).unwrap());
            }
            for t in store.list_triggers(&ns.name, 0, 1000).await.unwrap() {
                text.push_str(&serde_json::to_string(&t).unwrap());
            }
        }
    } else {
        for (_, bytes) in files(&s.data_dir) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("gust:v1:") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == ':' || c == '-' || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[tokio::test]
async fn a_sealed_value_copied_from_another_namespace_is_never_opened() {
    let s = server();
    let other = s.admin(&["namespace", "create", "victim"]);
    let r = s
        .call_as(
            &other,
            "PUT",
            "/api/v1/namespaces/_/actions/a",
            Some(json!({
                "exec": { "kind": "wasm", "code": base64(&function("digest")) },
                "parameters": [secret("password", ACTION_SECRET)],
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut stolen = stored_sealed_values(&s).await;
    stolen.sort();
    stolen.dedup();
    assert!(!stolen.is_empty(), "the victim's secret is stored sealed");

    // The guest puts the victim's sealed text as its own secret, and as a plain parameter.
    let digest = function("digest");
    for sealed in &stolen {
        let r = s
            .put_action(
                "thief",
                &digest,
                json!({ "parameters": [
                    secret("password", sealed),
                    { "key": "plainpw", "value": sealed },
                ]}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = s.invoke("thief", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let params = &r.body["response"]["result"]["params"];
        for key in ["password", "plainpw"] {
            assert_eq!(
                params[key],
                param_digest(sealed),
                "{key} arrives as the text it was given"
            );
            assert_ne!(params[key], param_digest(ACTION_SECRET));
        }
    }
    // The victim's own function gets the value.
    let r = s
        .call_as(
            &other,
            "POST",
            "/api/v1/namespaces/_/actions/a?blocking=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        r.body["response"]["result"]["params"]["password"],
        param_digest(ACTION_SECRET)
    );
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The key ids of `master.key` in `dir`, current first, and its mode.
fn key_file(dir: &Path) -> (Vec<String>, u32) {
    use sha2::Digest as _;
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("master.key");
    let ids = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| hex::encode(&sha2::Sha256::digest(hex::decode(l.trim()).unwrap())[..4]))
        .collect();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    (ids, mode)
}

#[tokio::test]
async fn rotation_seals_every_secret_again_and_drops_the_old_key() {
    if let StoreUnderTest::Postgres(_) = store_under_test() {
        return rotation_in_a_cluster().await;
    }
    let s = server();
    make_entities(&s).await;
    // A webhook feed's secret and a rule output's, sealed too.
    let params = json!({ "secret": FEED_SECRET });
    crate::sources::feed_trigger(&s, "h", "webhooks/hmac", params, "d").await;
    let url = format!("nats://gust:{OUTPUT_SECRET}@127.0.0.1:4222");
    let output = json!({"key": "output", "value": {"source": "nats", "url": url, "subject": "s"}});
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/rules/o",
            Some(json!({ "trigger": "/_/h", "action": "/_/d", "annotations": [output] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (before, mode) = key_file(&s.data_dir);
    assert_eq!(mode, 0o600, "master.key is private");
    assert_eq!(before.len(), 1);
    let old = format!("gust:v1:{}:", before[0]);
    assert!(
        stored_sealed_values(&s)
            .await
            .iter()
            .any(|v| v.starts_with(&old))
    );

    // Rotated while the server is stopped; then a rotation interrupted after it wrote its
    // new key (two keys in the file) is run again and finishes.
    let mut s = s;
    assert!(s.terminate());
    let out = s.admin(&["master-key", "rotate"]);
    assert!(out.contains("sealed again"), "{out}");
    let (after, mode) = key_file(&s.data_dir);
    assert_eq!(mode, 0o600);
    assert_eq!(after.len(), 1, "the old key is dropped");
    assert_ne!(after, before);

    let path = s.data_dir.join("master.key");
    let current = std::fs::read_to_string(&path).unwrap();
    let newer = gust_keyring_key();
    std::fs::write(&path, format!("{newer}\n{current}")).unwrap();
    s.admin(&["master-key", "rotate"]);
    let (last, mode) = key_file(&s.data_dir);
    assert_eq!(mode, 0o600);
    assert_eq!(last.len(), 1);
    assert_ne!(last, after, "resumed with the key already written");

    let mut s = s.restart();
    assert_delivered(&s).await;
    let body = br#"{"n":1}"#.to_vec();
    let sig = hmac_hex(FEED_SECRET, &body);
    let r = s
        .web(
            "POST",
            "/hooks/guest/h",
            &[("content-type", "application/json"), ("x-signature", &sig)],
            body,
        )
        .await;
    assert_eq!(
        r.status, 202,
        "the resealed webhook secret still checks: {}",
        r.body
    );

    // The old keys' ids in no stored entity (the WAL or free pages may keep old bytes: the
    // entities are read through the store).
    assert!(s.terminate());
    let store = crate::open_store(&s).await;
    let mut stored = String::new();
    for a in store.list_actions("guest", None, 0, 1000).await.unwrap() {
        stored.push_str(&serde_json::to_string(&a).unwrap());
    }
    for p in store.list_packages("guest", false, 0, 1000).await.unwrap() {
        stored.push_str(&serde_json::to_string(&p).unwrap());
    }
    for t in store.list_triggers("guest", 0, 1000).await.unwrap() {
        stored.push_str(&serde_json::to_string(&t).unwrap());
    }
    for r in store.list_rules("guest", 0, 1000).await.unwrap() {
        stored.push_str(&serde_json::to_string(&r).unwrap());
    }
    let hook = store.subscription("guest", "h").await.unwrap().unwrap();
    stored.push_str(&serde_json::to_string(&hook.spec.config).unwrap());
    let current = format!("gust:v1:{}:", last[0]);
    assert_eq!(stored.matches(&current).count(), 6, "{stored}");
    for id in before.iter().chain(&after) {
        assert!(
            !stored.contains(&format!("gust:v1:{id}:")),
            "key {id} still seals something"
        );
    }
}

/// The id of a master key given as 64 hex digits.
fn key_id(key: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(hex::decode(key).unwrap())[..4])
}

/// `gust admin master-key rotate` on the shared store of `s` with `GUST_MASTER_KEY=keys`.
fn rotate_with(s: &Server, keys: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gust"))
        .arg("admin")
        .args(s.store_args())
        .args(["master-key", "rotate"])
        .env("GUST_MASTER_KEY", keys)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// On a shared store: GUST_MASTER_KEY="new,old" seals everything under the new key; the
/// way back ("old,new") too, after which the server (which holds the old key) opens them.
async fn rotation_in_a_cluster() {
    let s = server();
    make_entities(&s).await;
    let (old, new) = (gust_testkit::TEST_MASTER_KEY, gust_keyring_key());
    let out = rotate_with(&s, &format!("{new},{old}"));
    assert!(out.contains("remove them from GUST_MASTER_KEY"), "{out}");
    let values = stored_sealed_values(&s).await;
    assert_eq!(values.len(), 4, "{values:?}");
    for v in &values {
        assert!(v.starts_with(&format!("gust:v1:{}:", key_id(&new))), "{v}");
    }
    rotate_with(&s, &format!("{old},{new}"));
    for v in stored_sealed_values(&s).await {
        assert!(v.starts_with(&format!("gust:v1:{}:", key_id(old))), "{v}");
    }
    assert_delivered(&s).await;
}

/// A new master key as `master.key` holds it (64 hex digits).
fn gust_keyring_key() -> String {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (std::process::id() as u8)
            .wrapping_add(i as u8)
            .wrapping_mul(31);
    }
    hex::encode(bytes)
}

const FEED_SECRET: &str = "feedSecretC4n9Ku3";
const OUTPUT_SECRET: &str = "outputSecretV8d1Fs6";

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn feed_and_output_secrets_are_sealed_and_opened_only_where_the_source_runs() {
    use crate::sources::{call_feed, feed_trigger, wait_for_records};
    let s = server();
    s.create("d", &function("digest"), json!({})).await;
    let params = json!({ "secret": FEED_SECRET, "idHeader": "x-id" });
    feed_trigger(&s, "h", "webhooks/hmac", params, "d").await;
    let body = br#"{"n":1}"#.to_vec();
    let send = |id: &'static str, secret: &'static str| {
        let (body, s) = (body.clone(), &s);
        async move {
            let sig = hmac_hex(secret, &body);
            s.web(
                "POST",
                "/hooks/guest/h",
                &[
                    ("content-type", "application/json"),
                    ("x-signature", &sig),
                    ("x-id", id),
                ],
                body,
            )
            .await
        }
    };
    // The webhook's secret is opened to check the signature: right fires, wrong is 401.
    assert_eq!(send("1", FEED_SECRET).await.status, 202);
    assert_eq!(send("2", "wrong").await.status, 401);
    wait_for_records(&s, "d", 1).await;

    // READ hides it; an UPDATE of another parameter keeps it.
    let read = call_feed(&s, "webhooks/hmac", "READ", "h", json!({})).await;
    assert_eq!(read["result"]["config"]["secret"], "********", "{read}");
    assert_hidden("the feed's READ", &read);
    call_feed(
        &s,
        "webhooks/hmac",
        "UPDATE",
        "h",
        json!({"idHeader": "x-other"}),
    )
    .await;
    let r = s
        .web(
            "POST",
            "/hooks/guest/h",
            &[
                ("content-type", "application/json"),
                ("x-signature", &hmac_hex(FEED_SECRET, &body)),
                ("x-other", "3"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 202, "the kept secret still checks: {}", r.body);
    wait_for_records(&s, "d", 2).await;

    // A rule's output: its secret (a URL with a password) shown as ********, kept when sent
    // back so.
    let url = format!("nats://gust:{OUTPUT_SECRET}@127.0.0.1:4222");
    let output = json!({"key": "output", "value": {"source": "nats", "url": url, "subject": "gust.secret.test"}});
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/rules/o",
            Some(json!({ "trigger": "/_/h", "action": "/_/d", "annotations": [output] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_hidden("the answer of a rule create", &r.body);
    let shown = s
        .call("GET", "/api/v1/namespaces/_/rules/o", None)
        .await
        .body;
    assert_eq!(
        shown["annotations"][0]["value"]["url"], "********",
        "{shown}"
    );
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/rules/o?overwrite=true",
            Some(
                json!({ "trigger": "/_/h", "action": "/_/d", "annotations": shown["annotations"] }),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "sent back as shown: {}", r.body);
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/rules/o2",
            Some(
                json!({ "trigger": "/_/h", "action": "/_/d", "annotations": shown["annotations"] }),
            ),
        )
        .await;
    assert_eq!(r.status, 400, "nothing stored to keep: {}", r.body);
    for path in [
        "/api/v1/namespaces/_/rules",
        "/api/v1/namespaces/_/triggers/h",
    ] {
        assert_hidden(path, &s.call("GET", path, None).await.body);
    }

    for (path, bytes) in files(&s.data_dir) {
        for secret in [FEED_SECRET, OUTPUT_SECRET] {
            assert!(!contains(&bytes, secret), "{path} holds {secret} in clear");
        }
    }
    let output = s.output();
    assert!(!output.contains(FEED_SECRET) && !output.contains(OUTPUT_SECRET));
}

#[tokio::test]
async fn in_a_cluster_a_secret_crosses_the_bus_sealed_and_opens_in_the_invoker() {
    let (Some(pg), Some(nats)) = (gust_testkit::postgres_url(), gust_testkit::nats_url()) else {
        eprintln!("skipped: the cluster tests need GUST_TEST_POSTGRES_URL and GUST_TEST_NATS_URL");
        return;
    };
    let mut c = gust_testkit::Cluster::new(env!("CARGO_BIN_EXE_gust"), &pg, &nats);
    c.add_controller("c1");
    c.add_invoker("i1");
    let host = c.apihosts()[0].clone();
    let http = reqwest::Client::new();
    let (uuid, key) = c.auth.split_once(':').unwrap();
    let code = base64(&function("digest"));
    let r = http
        .put(format!("{host}/api/v1/namespaces/_/actions/d"))
        .basic_auth(uuid, Some(key))
        .json(&json!({
            "exec": { "kind": "wasm", "code": code },
            "parameters": [secret("password", ACTION_SECRET)],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = http
        .post(format!(
            "{host}/api/v1/namespaces/_/actions/d?blocking=true"
        ))
        .basic_auth(uuid, Some(key))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["response"]["result"]["params"]["password"],
        param_digest(ACTION_SECRET),
        "{r}"
    );
    assert_hidden("the record", &r);
    let in_clear = format!(
        "SELECT count(*) FROM actions WHERE name = 'd' AND (doc LIKE '%{ACTION_SECRET}%' OR doc NOT LIKE '%gust:v1:%')"
    );
    assert_eq!(c.count(&in_clear), 0, "stored sealed");
}

#[tokio::test]
async fn a_manifest_takes_secrets_from_the_environment() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("digest.wasm"), function("digest")).unwrap();
    let manifest = dir.path().join("gust.toml");
    std::fs::write(
        &manifest,
        r#"
[[action]]
name = "dd"
source = "digest.wasm"
parameters = { plain = "visible" }
secrets = { password = "GUST_TEST_DEPLOY_SECRET" }

[[trigger]]
name = "td"
secrets = { token = "GUST_TEST_DEPLOY_SECRET" }
"#,
    )
    .unwrap();
    let f = manifest.to_str().unwrap();
    let env = [("GUST_TEST_DEPLOY_SECRET", ACTION_SECRET)];
    let out = gust_with(&s, &env, &["deploy", "-f", f]);
    assert!(out.contains("created action dd"), "{out}");
    let r = s.invoke("dd", json!({})).await;
    assert_eq!(
        r.body["response"]["result"]["params"]["password"],
        param_digest(ACTION_SECRET)
    );
    // The secret's value is not compared (never shown): a second deploy changes nothing.
    let out = gust_with(&s, &env, &["deploy", "-f", f]);
    assert!(out.contains("ok: no changes"), "{out}");
    let t = s
        .call("GET", "/api/v1/namespaces/_/triggers/td", None)
        .await;
    assert_eq!(
        t.body["parameters"],
        json!([{"key": "token", "secret": true}])
    );
    // Without the variable, deploy says which one is missing.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gust"))
        .args([
            "deploy",
            "-f",
            f,
            "--apihost",
            &s.apihost,
            "--auth",
            &s.auth,
        ])
        .env("HOME", home.path())
        .env("GUST_CONFIG_DIR", home.path().join("config"))
        .env_remove("GUST_TEST_DEPLOY_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GUST_TEST_DEPLOY_SECRET"));
}
