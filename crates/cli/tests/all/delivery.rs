//! Async delivery (decision 0028) through `gust serve` with `--delivery-retry-scale 0.01`
//! (retry delays of 0.6 s and 1.2 s; an event age of 60 s lasts 0.6 s): a failing action
//! tried three times, then Lambda's destination record at its `onFailure` action; a success
//! reaching `onSuccess` through a trigger; a failure with no destination kept as a dead
//! letter, redriven and deleted over `gust deadletter`, and one whose destination is gone kept
//! there too; an attempt lost before it was journaled invoked again with its id after a
//! restart; an event too old to retry; the `Idempotency-Key` header running an invocation
//! once; bad configs refused with nothing stored; another namespace, and tokens without the
//! scope, kept out; `gust action delivery`; boto3's event invoke config calls (skipped without
//! boto3 and root).

use std::process::{Command, Output};
use std::time::Duration;

use gust_testkit::{Server, function, workspace_root};
use serde_json::{Value, json};

const SCALE: &str = "0.01";
const NS: &str = "/api/v1/namespaces/_";

fn server() -> Server {
    Server::start_with(
        env!("CARGO_BIN_EXE_gust"),
        &["--delivery-retry-scale", SCALE],
    )
}

/// Runs `gust ARGS` against `s` with a home of its own.
fn gust(s: &Server, home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gust"))
        .args(args)
        .env("HOME", home)
        .env("GUST_CONFIG_DIR", home.join("config"))
        .env("GUST_APIHOST", &s.apihost)
        .env("GUST_AUTH", &s.auth)
        .env_remove("GUST_TOKEN")
        .env_remove("XDG_CONFIG_HOME")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

async fn put_delivery(s: &Server, action: &str, config: Value) -> gust_testkit::Response {
    s.call(
        "PUT",
        &format!("{NS}/actions/{action}/delivery"),
        Some(config),
    )
    .await
}

/// Invokes `action` non-blocking with `params`; its activation id.
async fn invoke_async(s: &Server, action: &str, params: Value) -> String {
    let r = s
        .call("POST", &format!("{NS}/actions/{action}"), Some(params))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.body["activationId"].as_str().unwrap().to_string()
}

/// The records of `action`, newest first, with their documents.
async fn records(s: &Server, action: &str) -> Vec<Value> {
    let r = s
        .call(
            "GET",
            &format!("{NS}/activations?name={action}&docs=true&limit=200"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.as_array().unwrap().clone()
}

/// Waits (up to 30 s) until `action` has `n` records; returns them, newest first.
async fn wait_for_records(s: &Server, action: &str, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let list = records(s, action).await;
        if list.len() >= n {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{action} has fewer than {n} records: {:?}",
        records(s, action).await
    );
}

/// Waits (up to 30 s) for dead letter `id`.
async fn wait_for_letter(s: &Server, id: &str) -> Value {
    for _ in 0..300 {
        let r = s.call("GET", &format!("{NS}/deadletters/{id}"), None).await;
        if r.status == 200 {
            return r.body;
        }
        assert_eq!(r.status, 404, "{}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no dead letter {id}");
}

/// The destination record an `echo` action was invoked with.
fn destination_record(echoed: &Value) -> &Value {
    &echoed["response"]["result"]["params"]
}

#[tokio::test]
async fn a_failing_action_is_tried_three_times_then_its_record_reaches_on_failure() {
    let s = server();
    s.create("fail", &function("apperror"), json!({})).await;
    s.create("sink", &function("echo"), json!({})).await;
    let r = put_delivery(
        &s,
        "fail",
        json!({"maximumRetryAttempts": 2, "onFailure": "action:sink"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["maximumRetryAttempts"], 2);
    assert_eq!(r.body["maximumEventAgeInSeconds"], 21_600);
    assert_eq!(r.body["onFailure"], "action:sink");

    let id = invoke_async(&s, "fail", json!({"order": 42})).await;
    let sunk = wait_for_records(&s, "sink", 1).await;
    let record = destination_record(&sunk[0]);
    assert_eq!(record["version"], "1.0", "{record}");
    assert_eq!(
        record["requestContext"],
        json!({
            "requestId": id,
            "functionArn": "/guest/fail",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        })
    );
    assert_eq!(record["requestPayload"], json!({"order": 42}));
    assert_eq!(
        record["responseContext"],
        json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "application error"})
    );
    assert_eq!(
        record["responsePayload"],
        json!({"error": "something went wrong"})
    );
    assert!(record["timestamp"].as_str().unwrap().ends_with('Z'));

    // Three attempts, each its own activation, the first the id the client got; each run
    // with the request's parameters.
    let tries = records(&s, "fail").await;
    assert_eq!(tries.len(), 3, "{tries:?}");
    let ids: Vec<&str> = tries
        .iter()
        .map(|t| t["activationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids[2], id);
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
    // Lambda's delays, scaled: 0.6 s before the 2nd attempt, 1.2 s before the 3rd.
    let starts: Vec<u64> = tries.iter().map(|t| t["start"].as_u64().unwrap()).collect();
    assert!(starts[1] - starts[2] >= 600, "{starts:?}");
    assert!(starts[0] - starts[1] >= 1_200, "{starts:?}");
    // Nothing more runs, and nothing is left in the dead letters.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(records(&s, "fail").await.len(), 3);
    assert_eq!(records(&s, "sink").await.len(), 1);
    let letters = s.call("GET", &format!("{NS}/deadletters"), None).await;
    assert_eq!(letters.body, json!([]));
}

#[tokio::test]
async fn a_success_reaches_on_success_through_a_trigger() {
    let s = server();
    s.create("ok", &function("reply"), json!({})).await;
    s.create("sink", &function("echo"), json!({})).await;
    // A trigger that does not exist yet is refused, naming the field.
    let r = put_delivery(&s, "ok", json!({"onSuccess": "trigger:done"})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["error"].as_str().unwrap().contains("onSuccess"),
        "{}",
        r.body
    );
    let r = s
        .call("PUT", &format!("{NS}/triggers/done"), Some(json!({})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "PUT",
            &format!("{NS}/rules/done-to-sink"),
            Some(json!({"trigger": "/_/done", "action": "/_/sink"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = put_delivery(&s, "ok", json!({"onSuccess": "trigger:done"})).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let id = invoke_async(&s, "ok", json!({"reply": {"paid": true}})).await;
    let sunk = wait_for_records(&s, "sink", 1).await;
    let record = destination_record(&sunk[0]);
    assert_eq!(record["requestContext"]["condition"], "Success", "{record}");
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(record["requestPayload"], json!({"reply": {"paid": true}}));
    assert_eq!(
        record["responseContext"],
        json!({"statusCode": 200, "executedVersion": "$LATEST"})
    );
    assert_eq!(record["responsePayload"], json!({"paid": true}));
    // A blocking invocation is not delivered.
    let r = s.invoke("ok", json!({"reply": {"n": 1}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(records(&s, "sink").await.len(), 1);
}

#[tokio::test]
async fn a_failure_without_a_destination_is_a_dead_letter_to_redrive_and_delete() {
    let s = server();
    s.create("fail", &function("apperror"), json!({})).await;
    let r = put_delivery(&s, "fail", json!({"maximumRetryAttempts": 0})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = invoke_async(&s, "fail", json!({"n": 1})).await;
    let letter = wait_for_letter(&s, &id).await;
    assert_eq!(letter["action"], "fail");
    assert_eq!(letter["namespace"], "guest");
    assert_eq!(
        letter["record"]["requestContext"]["condition"],
        "RetriesExhausted"
    );
    assert_eq!(
        letter["record"]["requestContext"]["approximateInvokeCount"],
        1
    );
    assert_eq!(letter["record"]["requestPayload"], json!({"n": 1}));

    let home = tempfile::tempdir().unwrap();
    let out = gust(&s, home.path(), &["deadletter", "list"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.contains(&id) && text.contains("RetriesExhausted"),
        "{text}"
    );
    let out = gust(&s, home.path(), &["deadletter", "get", &id, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown, letter);

    // Redriven: the action runs again with the request's parameters, the letter goes.
    let out = gust(&s, home.path(), &["deadletter", "redrive", &id, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    let again = again["activationId"].as_str().unwrap().to_string();
    assert_ne!(again, id);
    let r = s.call("GET", &format!("{NS}/deadletters/{id}"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let record = s.wait_for_record(&again).await;
    assert_eq!(record["name"], "fail");
    // It failed again: its own delivery made it a letter of its own.
    let letter = wait_for_letter(&s, &again).await;
    assert_eq!(letter["record"]["requestPayload"], json!({"n": 1}));
    let out = gust(&s, home.path(), &["deadletter", "delete", &again]);
    assert!(out.status.success(), "{out:?}");
    let r = s.call("GET", &format!("{NS}/deadletters"), None).await;
    assert_eq!((r.status, &r.body), (200, &json!([])));
    let out = gust(&s, home.path(), &["deadletter", "redrive", &again]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test]
async fn a_letter_redriven_twice_at_once_invokes_one_activation() {
    let s = server();
    s.create("fail", &function("apperror"), json!({})).await;
    let r = put_delivery(&s, "fail", json!({"maximumRetryAttempts": 0})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = invoke_async(&s, "fail", json!({"n": 1})).await;
    wait_for_letter(&s, &id).await;
    // Deleting the configuration keeps the redriven activation from being a letter again.
    let r = s
        .call("DELETE", &format!("{NS}/actions/fail/delivery"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let path = format!("{NS}/deadletters/{id}/redrive");
    let (a, b) = tokio::join!(s.call("POST", &path, None), s.call("POST", &path, None));
    let ids: Vec<&str> = [&a, &b]
        .iter()
        .filter(|r| r.status == 202)
        .map(|r| r.body["activationId"].as_str().unwrap())
        .collect();
    assert!(!ids.is_empty(), "{} {}", a.body, b.body);
    for r in [&a, &b] {
        assert!(r.status == 202 || r.status == 404, "{}", r.body);
    }
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    s.wait_for_record(ids[0]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        records(&s, "fail").await.len(),
        2,
        "the first run and one redrive"
    );
}

#[tokio::test]
async fn a_failure_whose_destination_is_gone_is_kept_as_a_dead_letter() {
    let s = server();
    s.create("fail", &function("apperror"), json!({})).await;
    s.create("sink", &function("echo"), json!({})).await;
    let r = put_delivery(
        &s,
        "fail",
        json!({"maximumRetryAttempts": 0, "onFailure": "action:sink"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The destination goes after the config was checked: the record is not lost.
    let r = s.call("DELETE", &format!("{NS}/actions/sink"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = invoke_async(&s, "fail", json!({"k": "v"})).await;
    let letter = wait_for_letter(&s, &id).await;
    assert_eq!(
        letter["record"]["requestContext"]["condition"],
        "RetriesExhausted"
    );
    let why = letter["record"]["destinationError"].as_str().unwrap();
    assert!(why.contains("action:sink"), "{why}");
    assert_eq!(letter["record"]["requestPayload"], json!({"k": "v"}));
}

#[tokio::test]
async fn an_attempt_lost_before_it_was_journaled_is_invoked_again_with_its_id() {
    let mut s = server();
    s.create("ok", &function("reply"), json!({})).await;
    s.create("sink", &function("echo"), json!({})).await;
    let r = put_delivery(&s, "ok", json!({"onSuccess": "action:sink"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A delivery row whose invocation never reached the journal (its process died between
    // the two), owned by that dead process, written with the server stopped.
    assert!(s.terminate());
    let now = gust_model::time::now_ms();
    let id = gust_model::names::new_activation_id();
    {
        let store = crate::open_store(&s).await;
        let config = store.delivery_config("guest", "ok").await.unwrap().unwrap();
        let lost = gust_model::Delivery {
            namespace: "guest".into(),
            id: id.clone(),
            action: "ok".into(),
            message: json!({"params": {"reply": {"lost": true}}}),
            config,
            attempt: 1,
            attempt_id: id.clone(),
            accepted_ms: now - 20_000,
            due_ms: now - 19_000,
            owner: Some("a-dead-process".into()),
            lease_ms: now - 9_000,
            state: serde_json::Map::new(),
        };
        store.put_delivery(&lost).await.unwrap();
    }
    let s = s.restart();
    let record = s.wait_for_record(&id).await;
    assert_eq!(record["response"]["result"], json!({"lost": true}));
    let sunk = wait_for_records(&s, "sink", 1).await;
    let delivered = destination_record(&sunk[0]);
    assert_eq!(delivered["requestContext"]["requestId"], id.as_str());
    assert_eq!(delivered["requestContext"]["condition"], "Success");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        records(&s, "ok").await.len(),
        1,
        "invoked once again, not more"
    );
    assert_eq!(records(&s, "sink").await.len(), 1);
}

#[tokio::test]
async fn an_event_too_old_to_retry_goes_to_on_failure_as_event_age_exceeded() {
    let s = server();
    s.create("fail", &function("apperror"), json!({})).await;
    s.create("sink", &function("echo"), json!({})).await;
    // 60 s scaled: 0.6 s, which has passed when the 2nd attempt is due (0.6 s after the 1st).
    let r = put_delivery(
        &s,
        "fail",
        json!({"maximumRetryAttempts": 2, "maximumEventAgeInSeconds": 60, "onFailure": "action:sink"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = invoke_async(&s, "fail", json!({})).await;
    let sunk = wait_for_records(&s, "sink", 1).await;
    let record = destination_record(&sunk[0]);
    assert_eq!(
        record["requestContext"]["condition"], "EventAgeExceeded",
        "{record}"
    );
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(
        record["responsePayload"],
        json!({"error": "something went wrong"})
    );
    assert_eq!(records(&s, "fail").await.len(), 1);
}

/// `Authorization: Basic` of `s`'s guest key.
fn basic(s: &Server) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&s.auth)
    )
}

/// `POST .../actions/{action}` with `Idempotency-Key: key` and `params`.
async fn invoke_keyed(
    s: &Server,
    action: &str,
    key: &str,
    blocking: bool,
    params: Value,
) -> gust_testkit::Response {
    s.web(
        "POST",
        &format!("{NS}/actions/{action}?blocking={blocking}"),
        &[
            ("authorization", &basic(s)),
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ],
        params.to_string().into_bytes(),
    )
    .await
}

#[tokio::test]
async fn an_idempotency_key_belongs_to_one_action_and_its_parameters() {
    let s = server();
    s.create("ok", &function("reply"), json!({})).await;
    s.create("secret", &function("reply"), json!({})).await;
    let params = json!({"reply": {"n": 1}, "a": [1, {"y": 2, "x": 3}]});
    let first = invoke_keyed(&s, "secret", "shared", true, params.clone()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let id = first.body["activationId"].as_str().unwrap().to_string();
    // Another action with the key: 409 naming it, nothing of the first action's is answered,
    // and nothing runs.
    for blocking in [false, true] {
        let r = invoke_keyed(&s, "ok", "shared", blocking, params.clone()).await;
        assert_eq!(r.status, 409, "{}", r.body);
        assert!(r.error().contains("'shared'"), "{}", r.body);
        assert!(!r.body.to_string().contains(&id), "{}", r.body);
    }
    // The same action with other parameters: 422.
    let r = invoke_keyed(&s, "secret", "shared", false, json!({"reply": {"n": 2}})).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.error().contains("'shared'"), "{}", r.body);
    // The same parameters in another order are the same request.
    let same = json!({"a": [1, {"x": 3, "y": 2}], "reply": {"n": 1}});
    let r = invoke_keyed(&s, "secret", "shared", false, same).await;
    assert_eq!(
        (r.status, r.body["activationId"].as_str()),
        (202, Some(id.as_str()))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(records(&s, "ok").await.is_empty());
    assert_eq!(records(&s, "secret").await.len(), 1);
}

#[tokio::test]
async fn a_key_whose_activation_never_started_is_taken_over() {
    let mut s = server();
    s.create("ok", &function("reply"), json!({})).await;
    let params = json!({"reply": {"n": 1}});
    // A key claimed a minute ago by a process that died before its invocation was journaled,
    // and one claimed just now (its invocation may be on its way), written with the server
    // stopped.
    assert!(s.terminate());
    let now = gust_model::time::now_ms();
    let (lost, fresh) = (
        gust_model::names::new_activation_id(),
        gust_model::names::new_activation_id(),
    );
    {
        let store = crate::open_store(&s).await;
        let digest = gust_controller::params_digest(params.as_object().unwrap());
        for (key, id, at) in [("lost", &lost, now - 60_000), ("fresh", &fresh, now)] {
            let claim = gust_store::IdempotencyClaim {
                activation_id: id.clone(),
                action: "/guest/ok".into(),
                digest: digest.clone(),
                claimed_ms: at,
                expires_ms: at + 86_400_000,
            };
            let held = store
                .claim_idempotency_key("guest", key, &claim, at)
                .await
                .unwrap();
            assert_eq!(held, None);
        }
    }
    let s = s.restart();
    let r = invoke_keyed(&s, "ok", "lost", false, params.clone()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let new = r.body["activationId"].as_str().unwrap().to_string();
    assert_ne!(new, lost);
    let record = s.wait_for_record(&new).await;
    assert_eq!(record["response"]["result"], json!({"n": 1}));
    // Taken over once: the key now names the new activation.
    let again = invoke_keyed(&s, "ok", "lost", true, params.clone()).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["activationId"], new.as_str());
    // A recent claim is left to its invocation.
    let r = invoke_keyed(&s, "ok", "fresh", false, params.clone()).await;
    assert_eq!(
        (r.status, r.body["activationId"].as_str()),
        (202, Some(fresh.as_str()))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(records(&s, "ok").await.len(), 1);
}

#[tokio::test]
async fn an_idempotency_key_runs_an_invocation_once() {
    let s = server();
    s.create("ok", &function("reply"), json!({})).await;
    let params = json!({"reply": {"n": 1}});
    let first = invoke_keyed(&s, "ok", "order-42", false, params.clone()).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let id = first.body["activationId"].as_str().unwrap().to_string();
    let second = invoke_keyed(&s, "ok", "order-42", false, params.clone()).await;
    assert_eq!((second.status, &second.body), (202, &first.body));
    s.wait_for_record(&id).await;
    // Blocking, the key answers the first activation's record.
    let blocking = invoke_keyed(&s, "ok", "order-42", true, params.clone()).await;
    assert_eq!(blocking.status, 200, "{}", blocking.body);
    assert_eq!(blocking.body["activationId"], id.as_str());
    // Another key runs again; so does the CLI's flag, once.
    let other = invoke_keyed(&s, "ok", "order-43", false, params.clone()).await;
    assert_eq!(other.status, 202);
    assert_ne!(other.body["activationId"], id.as_str());
    let home = tempfile::tempdir().unwrap();
    let mut cli_ids = Vec::new();
    for _ in 0..2 {
        let out = gust(
            &s,
            home.path(),
            &[
                "action",
                "invoke",
                "ok",
                "--idempotency-key",
                "cli-1",
                "--json",
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        cli_ids.push(v["activationId"].as_str().unwrap().to_string());
    }
    assert_eq!(cli_ids[0], cli_ids[1]);
    s.wait_for_record(&cli_ids[0]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(records(&s, "ok").await.len(), 3, "one run per key");

    // A bad key is a 400 and runs nothing.
    for bad in ["", "has space", &"k".repeat(257)] {
        let r = invoke_keyed(&s, "ok", bad, false, json!({})).await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.body);
        assert!(r.error().contains("Idempotency-Key"), "{}", r.body);
    }
    // A refused invocation frees its key: the request made again runs.
    s.create(
        "fixed",
        &function("reply"),
        json!({
            "parameters": [{"key": "reply", "value": {"v": "fixed"}}],
            "annotations": [{"key": "final", "value": true}],
        }),
    )
    .await;
    let r = invoke_keyed(
        &s,
        "fixed",
        "fixed-1",
        false,
        json!({"reply": {"v": "mine"}}),
    )
    .await;
    assert_eq!(
        r.status, 400,
        "a final parameter cannot be redefined: {}",
        r.body
    );
    let r = invoke_keyed(&s, "fixed", "fixed-1", false, json!({})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let record = s
        .wait_for_record(r.body["activationId"].as_str().unwrap())
        .await;
    assert_eq!(record["response"]["result"], json!({"v": "fixed"}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(records(&s, "ok").await.len(), 3);
}

#[tokio::test]
async fn bad_configs_are_400_naming_the_field_and_store_nothing() {
    let s = server();
    s.create("fail", &function("apperror"), json!({})).await;
    for (bad, field) in [
        (json!({"maximumRetryAttempts": 11}), "maximumRetryAttempts"),
        (json!({"maximumRetryAttempts": -1}), "maximumRetryAttempts"),
        (json!({"maximumRetryAttempts": "2"}), "maximumRetryAttempts"),
        (
            json!({"maximumEventAgeInSeconds": 59}),
            "maximumEventAgeInSeconds",
        ),
        (
            json!({"maximumEventAgeInSeconds": 21_601}),
            "maximumEventAgeInSeconds",
        ),
        (json!({"onFailure": "queue:x"}), "onFailure"),
        (json!({"onFailure": "action:"}), "onFailure"),
        (json!({"onFailure": "action:nope"}), "onFailure"),
        (json!({"onSuccess": "trigger:nope"}), "onSuccess"),
        (json!({"onSuccess": 5}), "onSuccess"),
        (json!({"retries": 1}), "retries"),
    ] {
        let r = put_delivery(&s, "fail", bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        let error = r.body["error"].as_str().unwrap();
        assert!(error.contains(field), "{bad}: {error}");
    }
    if gust_testkit::bus_under_test().is_none() {
        let r = put_delivery(&s, "fail", json!({"onFailure": "subject:dlq"})).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains("NATS"));
    }
    for body in [json!([1]), json!("x")] {
        let r = put_delivery(&s, "fail", body).await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    let r = s
        .call("GET", &format!("{NS}/actions/fail/delivery"), None)
        .await;
    assert_eq!(r.status, 404, "nothing was stored: {}", r.body);
    // No such action; a delete of no config.
    let r = put_delivery(&s, "nope", json!({})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = s
        .call("DELETE", &format!("{NS}/actions/fail/delivery"), None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Without a config, a non-blocking invocation is delivered nowhere.
    invoke_async(&s, "fail", json!({})).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(records(&s, "fail").await.len(), 1);
    let r = s.call("GET", &format!("{NS}/deadletters"), None).await;
    assert_eq!(r.body, json!([]));
}

#[tokio::test]
async fn delivery_lives_under_the_actions_path_without_hiding_a_package_action() {
    let s = server();
    s.create("fail", &function("apperror"), json!({})).await;
    let r = s
        .call("PUT", &format!("{NS}/packages/tools"), Some(json!({})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // `tools/delivery` is the package's action of that name, `tools/x/delivery` a config.
    s.create("tools/delivery", &function("echo"), json!({}))
        .await;
    let r = s
        .call("GET", &format!("{NS}/actions/tools/delivery"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "delivery");
    s.create("tools/x", &function("echo"), json!({})).await;
    let r = put_delivery(&s, "tools/x", json!({"maximumRetryAttempts": 1})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["action"], "tools/x");

    // `gust action delivery`.
    let home = tempfile::tempdir().unwrap();
    let out = gust(
        &s,
        home.path(),
        &[
            "action",
            "delivery",
            "set",
            "fail",
            "--retries",
            "1",
            "--max-age",
            "600",
            "--on-failure",
            "action:/_/tools/x",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 retries") && text.contains("action:/_/tools/x"),
        "{text}"
    );
    let out = gust(&s, home.path(), &["action", "delivery", "get", "fail"]);
    assert!(out.status.success(), "{out:?}");
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["maximumRetryAttempts"], 1);
    assert_eq!(c["maximumEventAgeInSeconds"], 600);
    assert_eq!(c["onFailure"], "action:/_/tools/x");
    let out = gust(
        &s,
        home.path(),
        &["action", "delivery", "set", "fail", "--retries", "99"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("maximumRetryAttempts"));
    let out = gust(&s, home.path(), &["action", "delivery", "delete", "fail"]);
    assert!(out.status.success(), "{out:?}");
    let out = gust(&s, home.path(), &["action", "delivery", "get", "fail"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{out:?}"
    );
    // Deleting an action deletes its config.
    let r = s
        .call("DELETE", &format!("{NS}/actions/tools/x"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.create("tools/x", &function("echo"), json!({})).await;
    let r = s
        .call("GET", &format!("{NS}/actions/tools/x/delivery"), None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn another_namespace_and_tokens_without_the_scope_are_kept_out() {
    let s = server();
    s.create("fail", &function("apperror"), json!({})).await;
    let r = put_delivery(&s, "fail", json!({"maximumRetryAttempts": 0})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = invoke_async(&s, "fail", json!({})).await;
    wait_for_letter(&s, &id).await;

    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    for (method, path) in [
        ("GET", "/api/v1/namespaces/guest/deadletters".to_string()),
        ("GET", format!("/api/v1/namespaces/guest/deadletters/{id}")),
        (
            "DELETE",
            format!("/api/v1/namespaces/guest/deadletters/{id}"),
        ),
        (
            "POST",
            format!("/api/v1/namespaces/guest/deadletters/{id}/redrive"),
        ),
        (
            "GET",
            "/api/v1/namespaces/guest/actions/fail/delivery".into(),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/guest/actions/fail/delivery".into(),
        ),
    ] {
        let r = s.call_as(&b_auth, method, &path, None).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
    }
    // Its own list is empty, and the id is not one of its letters.
    let r = s
        .call_as(&b_auth, "GET", "/api/v1/namespaces/_/deadletters", None)
        .await;
    assert_eq!((r.status, &r.body), (200, &json!([])));
    let r = s
        .call_as(
            &b_auth,
            "POST",
            &format!("/api/v1/namespaces/_/deadletters/{id}/redrive"),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    s.wait_for_record(&id).await;
    assert_eq!(records(&s, "fail").await.len(), 1, "nothing was redriven");

    // Tokens: read:actions does not read dead letters; read:deadletters does, but does not
    // redrive; write:deadletters without invoke on the action does not either.
    let read_actions = token(&s, json!(["read:actions"])).await;
    let r = bearer(&s, &read_actions, "GET", &format!("{NS}/deadletters")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = bearer(
        &s,
        &read_actions,
        "GET",
        &format!("{NS}/actions/fail/delivery"),
    )
    .await;
    assert_eq!(r.status, 200, "read:actions reads a config: {}", r.body);
    let read = token(&s, json!(["read:deadletters"])).await;
    let r = bearer(&s, &read, "GET", &format!("{NS}/deadletters/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = bearer(&s, &read, "POST", &format!("{NS}/deadletters/{id}/redrive")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let write = token(&s, json!(["write:deadletters"])).await;
    let r = bearer(
        &s,
        &write,
        "POST",
        &format!("{NS}/deadletters/{id}/redrive"),
    )
    .await;
    assert_eq!(
        r.status, 403,
        "redriving needs invoke on the action: {}",
        r.body
    );
    assert_eq!(records(&s, "fail").await.len(), 1);
    let both = token(&s, json!(["write:deadletters", "invoke:actions/fail"])).await;
    let r = bearer(&s, &both, "POST", &format!("{NS}/deadletters/{id}/redrive")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_for_records(&s, "fail", 2).await;
}

/// A token of the guest namespace with `scope`.
async fn token(s: &Server, scope: Value) -> String {
    let r = s
        .call(
            "POST",
            &format!("{NS}/tokens"),
            Some(json!({ "scope": scope })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["token"].as_str().unwrap().to_string()
}

/// A request with `token` as its bearer.
async fn bearer(s: &Server, token: &str, method: &str, path: &str) -> gust_testkit::Response {
    let auth = format!("Bearer {token}");
    s.web(method, path, &[("authorization", &auth)], Vec::new())
        .await
}

fn boto3_python() -> Option<std::path::PathBuf> {
    let python = workspace_root().join("tests/lambda/.venv/bin/python");
    let has_boto3 = Command::new(&python)
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    has_boto3.then_some(python)
}

#[tokio::test]
async fn boto3_puts_updates_gets_and_deletes_event_invoke_configs() {
    let Some(python) = boto3_python() else {
        eprintln!("SKIPPED: boto3 is not installed in tests/lambda/.venv (.ci/run installs it)");
        return;
    };
    if !gust_testkit::is_root() {
        eprintln!("SKIPPED: the process sandbox that runs Lambda functions needs root");
        return;
    }
    let s = server();
    let (key_id, secret) = s.auth.split_once(':').unwrap();
    let out = Command::new(&python)
        .arg(workspace_root().join("tests/lambda/boto3_delivery.py"))
        .env("GUST_ENDPOINT", &s.apihost)
        .env("GUST_KEY_ID", key_id)
        .env("GUST_SECRET", secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_LAMBDA")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "boto3_delivery.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    // The Event invocation of the failing function was tried twice (1 retry), then its record
    // reached the destination function, which ran with it as its event.
    let id = last["event_id"].as_str().unwrap();
    let sunk = wait_for_records(&s, "sink", 1).await;
    let event = &sunk[0]["response"]["result"]["event"];
    assert_eq!(event["requestContext"]["requestId"], id, "{event}");
    assert_eq!(event["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(event["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(event["requestPayload"], json!({"fail": true}));
    assert_eq!(records(&s, "failing").await.len(), 2);
    // Invoked three times with one Idempotency-Key: run once.
    let keyed = s.wait_for_record(last["keyed_id"].as_str().unwrap()).await;
    assert_eq!(keyed["name"], "keyed");
    assert_eq!(records(&s, "keyed").await.len(), 1);
}
