//! Restarts and crashes: entities, records and compiled code survive; no accepted invocation
//! is lost, none is recorded twice.

use std::collections::HashSet;
use std::time::SystemTime;

use gust_testkit::function;
use serde_json::json;

use crate::server;

fn artifacts(dir: &std::path::Path) -> Vec<(String, SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("cache"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn an_unreadable_journal_entry_ends_as_an_internal_error_record() {
    use gust_store::PendingInvocation;

    let mut s = server();
    s.create("hello", &function("hello"), json!({})).await;
    assert!(s.terminate());
    // Journal two accepted invocations as a crashed server would have left them: one whole,
    // one whose message this version cannot read (its limits are not an object).
    let (good, bad) = (
        gust_model::names::new_activation_id(),
        gust_model::names::new_activation_id(),
    );
    {
        let store = crate::open_store(&s).await;
        let action = store
            .action("guest", "hello", false)
            .await
            .unwrap()
            .unwrap();
        let message = |id: &str, limits: serde_json::Value| {
            serde_json::to_vec(&json!({
                "activation_id": id, "namespace": "guest", "action": "hello",
                "version": action.version, "kind": "wasm", "code_hash": action.code_hash,
                "subject": "guest", "params": {"name": "journal"}, "env": [],
                "limits": limits, "blocking": false,
                "reply_to": "completed.controller0", "accepted_at": 1,
            }))
            .unwrap()
        };
        for (id, limits) in [(&good, json!(action.limits)), (&bad, json!("bad"))] {
            store
                .put_pending(PendingInvocation {
                    activation_id: id.clone(),
                    accepted_at: 1,
                    message: message(id, limits),
                })
                .await
                .unwrap();
        }
    }
    let s = s.stop_and_restart();
    let rec = s.wait_for_record(&good).await;
    assert_eq!(rec["response"]["result"]["greeting"], "Hello, journal!");
    let rec = s.wait_for_record(&bad).await;
    assert_eq!(rec["response"]["status"], "whisk internal error", "{rec}");
    assert!(
        rec["response"]["result"]["error"]
            .as_str()
            .unwrap()
            .starts_with("The invocation message could not be read:"),
        "{rec}"
    );
}

#[tokio::test]
async fn restart_keeps_entities_activations_and_compiled_code() {
    let mut s = server();
    s.create("hello", &function("hello"), json!({})).await;
    let id = s.invoke("hello", json!({})).await.body["activationId"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = s.auth.clone();
    let cached = artifacts(&s.data_dir);
    assert_eq!(cached.len(), 1, "one compiled artifact");
    assert!(cached[0].0.ends_with(".cwasm"));

    assert!(s.terminate(), "a clean shutdown exits with 0");
    s = s.stop_and_restart();
    assert_eq!(s.auth, auth, "the guest key is kept");
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call(
            "GET",
            &format!("/api/v1/namespaces/_/activations/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s.invoke("hello", json!({"name": "again"})).await;
    assert_eq!(r.body["response"]["result"]["greeting"], "Hello, again!");
    assert_eq!(
        artifacts(&s.data_dir),
        cached,
        "the artifact was reused, not rebuilt"
    );
}

#[tokio::test]
async fn kill_9_mid_load_loses_no_accepted_invocation() {
    let s = server();
    s.create("slow", &function("slow"), json!({})).await;
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..300 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let path = if i % 3 == 0 {
                // Blocking with a short wait: the id comes back with a 202 while it runs.
                "/api/v1/namespaces/_/actions/slow?blocking=true&timeout=100"
            } else {
                "/api/v1/namespaces/_/actions/slow"
            };
            let r = s.call("POST", path, Some(json!({"ms": 400}))).await;
            assert_eq!(r.status, 202, "{}", r.body);
            r.body["activationId"].as_str().unwrap().to_string()
        }));
    }
    let mut accepted = HashSet::new();
    for t in tasks {
        accepted.insert(t.await.unwrap());
    }
    // Let the first few finish; many are still queued or running: kill -9 now.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let s = std::sync::Arc::try_unwrap(s).ok().expect("no other owner");
    let s = s.kill_and_restart();
    for id in &accepted {
        let rec = s.wait_for_record(id).await;
        assert_eq!(rec["activationId"], id.as_str());
        assert_eq!(rec["response"]["status"], "success", "{rec}");
    }
    let r = s
        .call("GET", "/api/v1/namespaces/_/activations?count=true", None)
        .await;
    assert_eq!(
        r.body["activations"],
        accepted.len() as u64,
        "exactly one record per accepted id"
    );
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?limit=200&docs=false",
            None,
        )
        .await;
    let ids: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["activationId"].as_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| accepted.contains(*id)),
        "no record that nobody accepted"
    );
}

/// A sequence whose server dies mid-way ends with one record (an interrupted sequence, a
/// whisk internal error); the component that had run keeps its own.
#[tokio::test]
async fn a_sequence_cut_by_a_crash_ends_with_one_record() {
    let s = server();
    s.create("slow", &function("slow"), json!({})).await;
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/long",
            Some(json!({ "exec": { "kind": "sequence", "components": ["/guest/slow", "/guest/slow"] } })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/long",
            Some(json!({ "ms": 3000 })),
        )
        .await;
    assert_eq!(r.status, 202);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let s = s.kill_and_restart();
    let rec = s.wait_for_record(&id).await;
    assert_eq!(rec["response"]["status"], "whisk internal error", "{rec}");
    let error = rec["response"]["result"]["error"].as_str().unwrap();
    assert!(error.contains("interrupted"), "{error}");
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?name=long&count=true",
            None,
        )
        .await;
    assert_eq!(r.body["activations"], 1);
}
