//! Reading event source mappings (decision 0027) over the REST API and `gust mapping`: the
//! list and one mapping, what a missing one answers, who may read them (the namespace's key,
//! a `read:mappings` token, not another namespace), and a mapping written to the store read
//! back as the API shows it and gone with its rule. The runs that write mappings are in
//! `mappings.rs`.

use std::process::{Command, Output};

use gust_model::Mapping;
use gust_testkit::{Server, function};
use serde_json::{Value, json};

use crate::server;

const MAPPINGS: &str = "/api/v1/namespaces/_/mappings";

/// Runs `gust ARGS` against `s` with a home of its own (nothing of the real user's).
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

/// A token of the guest namespace with `scope`, as its `Authorization` header.
async fn token(s: &Server, scope: Value) -> String {
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/tokens",
            Some(json!({ "scope": scope })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    format!("Bearer {}", r.body["token"].as_str().unwrap())
}

#[tokio::test]
async fn no_mappings_is_an_empty_list_and_a_missing_one_is_404() {
    let s = server();
    let r = s.call("GET", MAPPINGS, None).await;
    assert_eq!((r.status, &r.body), (200, &json!([])));
    let r = s.call("GET", &format!("{MAPPINGS}/nope"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["error"], "The requested resource does not exist.");
    assert!(r.body["code"].is_string(), "{}", r.body);
    // Read only.
    let r = s
        .call("PUT", &format!("{MAPPINGS}/nope"), Some(json!({})))
        .await;
    assert_eq!(r.status, 405, "{}", r.body);

    let home = tempfile::tempdir().unwrap();
    let out = gust(&s, home.path(), &["mapping", "list"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("RULE"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    let out = gust(&s, home.path(), &["mapping", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed, json!([]));
    let out = gust(&s, home.path(), &["mapping", "get", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mapping of rule 'nope' does not exist in namespace 'guest' (404)"),
        "{err}"
    );
}

#[tokio::test]
async fn mappings_are_read_with_the_key_or_a_read_mappings_token_and_not_across_namespaces() {
    let s = server();
    let headers = |auth: &str| [("authorization", auth.to_string())];
    let get = |auth: String, path: String| {
        let s = &s;
        async move {
            let h = headers(&auth);
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.web("GET", &path, &h, Vec::new()).await.status
        }
    };
    let reader = token(&s, json!(["read:mappings"])).await;
    assert_eq!(get(reader.clone(), MAPPINGS.into()).await, 200);
    assert_eq!(get(reader.clone(), format!("{MAPPINGS}/r")).await, 404);
    let one = token(&s, json!(["read:mappings/r"])).await;
    assert_eq!(get(one.clone(), format!("{MAPPINGS}/r")).await, 404);
    assert_eq!(get(one, MAPPINGS.into()).await, 403);
    // `read:mappings` reads nothing else, and reading rules is not reading mappings.
    assert_eq!(
        get(reader.clone(), "/api/v1/namespaces/_/rules".into()).await,
        403
    );
    let rules = token(&s, json!(["read:rules"])).await;
    assert_eq!(get(rules, MAPPINGS.into()).await, 403);
    let all = token(&s, json!(["read:*"])).await;
    assert_eq!(get(all, MAPPINGS.into()).await, 200);
    // Another namespace: refused with a key or a token, as every other namespace read.
    let other = s.admin(&["namespace", "create", "tenantb"]);
    let r = s
        .call_as(&other, "GET", "/api/v1/namespaces/guest/mappings", None)
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s
        .call_as(&other, "GET", "/api/v1/namespaces/guest/mappings/r", None)
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        get(reader, "/api/v1/namespaces/tenantb/mappings".into()).await,
        403
    );
    let r = s.call_as("", "GET", MAPPINGS, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test]
async fn a_stored_mapping_is_read_back_with_its_state_and_goes_with_its_rule() {
    let mut s = server();
    s.create("hello", &function("hello"), json!({})).await;
    let r = s
        .call("PUT", "/api/v1/namespaces/_/triggers/t", Some(json!({})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for rule in ["r", "q"] {
        let r = s
            .call(
                "PUT",
                &format!("/api/v1/namespaces/_/rules/{rule}"),
                Some(json!({"trigger": "/_/t", "action": "/_/hello"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Written as a mapping's runner writes them, with the server stopped (the embedded
    // store serves one process).
    assert!(s.terminate());
    let state = json!({
        "action": "/guest/hello",
        "state": "retrying",
        "lag": 5,
        "batches": 2,
        "records": 7,
        "lastBatch": {"first": "3", "last": "4", "size": 2, "activationId": "a1", "at": 9},
        "lastError": {"message": "the action failed"},
        // A state key never hides a fixed field.
        "checkpoint": "not this",
    });
    let mapping = |rule: &str, checkpoint| Mapping {
        namespace: "guest".into(),
        rule: rule.into(),
        trigger: "/guest/t".into(),
        checkpoint,
        state: state.as_object().unwrap().clone(),
        updated_ms: 1_700_000_000_000,
    };
    {
        let store = crate::open_store(&s).await;
        for (rule, checkpoint) in [("r", 4), ("q", 1)] {
            assert!(store.put_mapping(&mapping(rule, checkpoint)).await.unwrap());
        }
    }
    let s = s.restart();

    let r = s.call("GET", &format!("{MAPPINGS}/r"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut expected = state.clone();
    let fixed = json!({
        "namespace": "guest", "rule": "r", "trigger": "/guest/t", "checkpoint": "4",
        "updatedAt": 1_700_000_000_000u64,
    });
    for (k, v) in fixed.as_object().unwrap() {
        expected[k] = v.clone();
    }
    assert_eq!(r.body, expected);
    let r = s.call("GET", MAPPINGS, None).await;
    let rules: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["q", "r"]);

    let home = tempfile::tempdir().unwrap();
    let out = gust(&s, home.path(), &["mapping", "list"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("r "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            "r",
            "/guest/t",
            "4",
            "5",
            "retrying:",
            "the",
            "action",
            "failed",
            "2023-11-14T22:13:20.000000Z"
        ],
        "{text}"
    );
    let out = gust(&s, home.path(), &["mapping", "get", "r"]);
    assert!(out.status.success(), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, expected);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\n  \"rule\": \"r\""));

    // Deleting the rule deletes its mapping.
    let r = s.call("DELETE", "/api/v1/namespaces/_/rules/r", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.call("GET", &format!("{MAPPINGS}/r"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = s.call("GET", MAPPINGS, None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.body);
}
