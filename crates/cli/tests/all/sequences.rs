//! Sequences: chaining, records as OpenWhisk writes them, the first error stops the chain,
//! and bad definitions (cycles, missing or forbidden components, too long) are refused.

use crate::annotation;
use gust_testkit::function;
use serde_json::{Value, json};

use crate::server;

fn sequence(components: &[&str]) -> Value {
    json!({ "exec": { "kind": "sequence", "components": components } })
}

#[tokio::test]
async fn a_sequence_chains_its_components() {
    let s = server();
    s.create("inc", &function("inc"), json!({})).await;
    s.call("PUT", "/api/v1/namespaces/_/packages/p", Some(json!({})))
        .await;
    s.create("p/inc2", &function("inc"), json!({})).await;
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/three",
            Some(sequence(&["/guest/inc", "/_/p/inc2", "guest/inc"])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["exec"]["kind"], "sequence");
    assert_eq!(
        r.body["exec"]["components"],
        json!(["/guest/inc", "/guest/p/inc2", "/guest/inc"])
    );

    let r = s.invoke("three", json!({ "n": 10 })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seq = r.body.clone();
    assert_eq!(seq["response"]["result"]["n"], 13);
    assert_eq!(
        seq["response"]["result"]["trail"],
        json!(["/guest/inc", "/guest/p/inc2", "/guest/inc"])
    );
    assert_eq!(annotation(&seq, "kind"), "sequence");
    assert_eq!(annotation(&seq, "topmost"), true);
    assert_eq!(annotation(&seq, "path"), "guest/three");
    // The logs are the components' activation ids; each component points at its cause.
    let ids: Vec<String> = seq["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let mut total = 0;
    for id in &ids {
        let c = s.wait_for_record(id).await;
        assert_eq!(c["cause"], seq["activationId"]);
        assert_eq!(annotation(&c, "causedBy"), "sequence");
        total += c["duration"].as_u64().unwrap();
    }
    assert_eq!(seq["duration"].as_u64().unwrap(), total);

    // Non-blocking: an id at once, the record later.
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/three",
            Some(json!({ "n": 0 })),
        )
        .await;
    assert_eq!(r.status, 202);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    let rec = s.wait_for_record(&id).await;
    assert_eq!(rec["response"]["result"]["n"], 3);

    // A sequence of sequences.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/six",
            Some(sequence(&["/guest/three", "/guest/three"])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/six?blocking=true&result=true",
            Some(json!({ "n": 0 })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["n"], 6);
}

#[tokio::test]
async fn the_first_error_stops_a_sequence() {
    let s = server();
    s.create("inc", &function("inc"), json!({})).await;
    s.create("fail", &function("apperror"), json!({})).await;
    s.call(
        "PUT",
        "/api/v1/namespaces/_/actions/broken",
        Some(sequence(&["/guest/inc", "/guest/fail", "/guest/inc"])),
    )
    .await;
    let r = s.invoke("broken", json!({})).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["response"]["status"], "application error");
    assert_eq!(
        r.body["response"]["result"]["error"],
        "something went wrong"
    );
    assert_eq!(r.body["logs"].as_array().unwrap().len(), 2);

    // A component deleted after the sequence was made: a clear error record.
    s.call("DELETE", "/api/v1/namespaces/_/actions/fail", None)
        .await;
    let r = s.invoke("broken", json!({})).await;
    assert_eq!(r.status, 502, "{}", r.body);
    let err = r.body["response"]["result"]["error"].as_str().unwrap();
    assert!(err.contains("/guest/fail"), "{err}");
}

#[tokio::test]
async fn bad_sequences_are_refused() {
    let s = server();
    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    s.create("inc", &function("inc"), json!({})).await;
    let put = |name: &'static str, body: Value| {
        let s = &s;
        async move {
            s.call(
                "PUT",
                &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
                Some(body),
            )
            .await
        }
    };
    for (body, status, error) in [
        (
            sequence(&[]),
            400,
            "No component specified for the sequence.",
        ),
        (
            sequence(&["/guest/nothing"]),
            400,
            "Sequence component does not exist: /guest/nothing.",
        ),
        (sequence(&["inc"]), 400, ""),
        (
            sequence(&["/guest/s1"]),
            400,
            "Sequence may not refer to itself.",
        ),
        (
            json!({ "exec": { "kind": "sequence" } }),
            400,
            "No component specified for the sequence.",
        ),
    ] {
        let r = put("s1", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        if !error.is_empty() {
            assert_eq!(r.error(), error);
        }
    }
    // A cycle through another sequence.
    assert_eq!(put("s1", sequence(&["/guest/inc"])).await.status, 200);
    assert_eq!(put("s2", sequence(&["/guest/s1"])).await.status, 200);
    let r = put("s1", sequence(&["/guest/s2"])).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "Sequence may not refer to itself.");
    // Too many atomic actions (OpenWhisk's 50), nested ones counted.
    let ten: Vec<&str> = vec!["/guest/inc"; 10];
    assert_eq!(put("ten", sequence(&ten)).await.status, 200);
    let six_tens: Vec<&str> = vec!["/guest/ten"; 6];
    let r = put("sixty", sequence(&six_tens)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "Too many actions in the sequence.");
    let five_tens: Vec<&str> = vec!["/guest/ten"; 5];
    assert_eq!(put("fifty", sequence(&five_tens)).await.status, 200);

    // Another tenant's private action cannot be a component.
    let r = s
        .call_as(
            &b_auth,
            "PUT",
            "/api/v1/namespaces/_/actions/steal",
            Some(sequence(&["/guest/inc"])),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[tokio::test]
async fn a_conductor_action_decides_each_next_step() {
    let s = server();
    s.create("inc", &function("inc"), json!({})).await;
    let conductor = |plan: Value| {
        json!({
            "annotations": [{ "key": "conductor", "value": true }],
            "parameters": [{ "key": "plan", "value": plan }],
        })
    };
    s.create(
        "twice",
        &function("conductor"),
        conductor(json!(["/guest/inc", "/_/inc"])),
    )
    .await;
    let r = s.invoke("twice", json!({ "n": 1 })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["response"]["result"]["n"], 3);
    assert_eq!(annotation(&r.body, "conductor"), true);
    assert_eq!(annotation(&r.body, "kind"), "sequence");
    // Conductor, inc, conductor, inc, conductor: five derived activations, all caused by it.
    let ids = r.body["logs"].as_array().unwrap();
    assert_eq!(ids.len(), 5);
    for id in ids {
        let c = s.wait_for_record(id.as_str().unwrap()).await;
        assert_eq!(c["cause"], r.body["activationId"]);
    }

    // A component that cannot be resolved: an application error that says so.
    s.create(
        "lost",
        &function("conductor"),
        conductor(json!(["/guest/nothing"])),
    )
    .await;
    let r = s.invoke("lost", json!({})).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.body["response"]["status"], "application error");
    let err = r.body["response"]["result"]["error"].as_str().unwrap();
    assert!(err.contains("/guest/nothing"), "{err}");

    // A conductor that never ends is stopped at OpenWhisk's cap (50 components).
    s.create(
        "forever",
        &function("conductor"),
        conductor(json!(["/guest/inc"])),
    )
    .await;
    let r = s.invoke("forever", json!({ "forever": true })).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["response"]["status"], "application error");
    assert_eq!(r.body["logs"].as_array().unwrap().len(), 101);
}

/// A cycle made after the sequences were checked (a binding moved under them) ends with an
/// application error at the step cap instead of running forever.
#[tokio::test]
async fn a_cycle_made_later_is_stopped_at_run_time() {
    let s = server();
    let pkg = |name: &str, body: Value| {
        let s = &s;
        let name = name.to_string();
        async move {
            let r = s
                .call(
                    "PUT",
                    &format!("/api/v1/namespaces/_/packages/{name}?overwrite=true"),
                    Some(body),
                )
                .await;
            assert_eq!(r.status, 200, "{name}: {}", r.body);
        }
    };
    pkg("p1", json!({})).await;
    pkg("p2", json!({})).await;
    s.create("p1/x", &function("inc"), json!({})).await;
    pkg(
        "b",
        json!({ "binding": { "namespace": "guest", "name": "p1" } }),
    )
    .await;
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/a",
            Some(sequence(&["/guest/b/x"])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/p2/x",
            Some(sequence(&["/guest/a"])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The sequence has no code to show.
    let r = s.call("GET", "/api/v1/namespaces/_/actions/a", None).await;
    assert!(r.body["exec"].get("code").is_none(), "{}", r.body);
    // Now a -> b/x = p2/x -> a -> ...
    pkg(
        "b",
        json!({ "binding": { "namespace": "guest", "name": "p2" } }),
    )
    .await;
    let r = s.invoke("a", json!({})).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["response"]["status"], "application error");
    let err = r.body["response"]["result"]["error"].as_str().unwrap();
    assert!(err.contains("Too many actions in the sequence."), "{err}");
}
