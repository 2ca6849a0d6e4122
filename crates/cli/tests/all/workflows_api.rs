//! The workflow APIs (decision 0028) as clients see them: Gust's own
//! (`/api/v1/namespaces/{ns}/workflows...`), Durable Functions' HTTP API
//! (`/runtime/webhooks/durabletask`), Step Functions' driven by boto3
//! (`tests/workflows/boto3_states.py`, skipped without boto3 in `tests/lambda/.venv`), the
//! `gust workflow` commands and a `[[workflow]]` deployed from `gust.toml`; and who may use
//! them (another namespace, scoped tokens). How runs behave is in `workflows.rs`.

use std::process::{Command, Output};
use std::time::Duration;

use gust_testkit::{Server, function, workspace_root};
use serde_json::{Value, json};

use crate::server;

const NS: &str = "/api/v1/namespaces/_";

/// Pass, a 1 s Wait, a Choice on `$.go`: Succeed, or Fail with `Nope`.
fn choosy() -> Value {
    json!({
        "StartAt": "Shape",
        "States": {
            "Shape": {"Type": "Pass", "Parameters": {"go.$": "$.go", "seen": true}, "Next": "Nap"},
            "Nap": {"Type": "Wait", "Seconds": 1, "Next": "Choose"},
            "Choose": {"Type": "Choice",
                       "Choices": [{"Variable": "$.go", "BooleanEquals": true, "Next": "Done"}],
                       "Default": "Refuse"},
            "Done": {"Type": "Succeed"},
            "Refuse": {"Type": "Fail", "Error": "Nope", "Cause": "go was false"}
        }
    })
}

/// A Wait long enough to stop it by hand.
fn sleepy() -> Value {
    json!({"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 600, "End": true}}})
}

/// `inc` twice, then a callback step through `echo` whose token is in its parameters.
fn callback_flow() -> Value {
    json!({
        "StartAt": "Inc",
        "States": {
            "Inc": {"Type": "Task", "Resource": "inc", "Next": "Again"},
            "Again": {"Type": "Task", "Resource": "inc", "Next": "Approve"},
            "Approve": {"Type": "Task", "Resource": "echo.waitForTaskToken",
                        "Parameters": {"token.$": "$$.Task.Token"},
                        "ResultPath": "$.approval", "Next": "Done"},
            "Done": {"Type": "Succeed"}
        }
    })
}

/// Waits for the event `approval` and answers its body.
fn event_flow() -> Value {
    json!({"StartAt": "Await", "States": {"Await": {"Type": "Task", "Resource": "event:approval", "End": true}}})
}

async fn put(s: &Server, name: &str, definition: Value) -> Value {
    let r = s
        .call(
            "PUT",
            &format!("{NS}/workflows/{name}?overwrite=true"),
            Some(json!({ "definition": definition })),
        )
        .await;
    assert_eq!(r.status, 200, "creating workflow {name}: {}", r.body);
    r.body
}

async fn start(s: &Server, workflow: &str, body: Value) -> Value {
    let r = s
        .call(
            "POST",
            &format!("{NS}/workflows/{workflow}/executions"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 202, "starting {workflow}: {}", r.body);
    r.body
}

async fn execution(s: &Server, id: &str) -> Value {
    let r = s.call("GET", &format!("{NS}/executions/{id}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Polls until execution `id` no longer runs (at most 2 min).
async fn finished(s: &Server, id: &str) -> Value {
    for _ in 0..1200 {
        let e = execution(s, id).await;
        if e["status"] != "RUNNING" {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {id} did not finish: {}", execution(s, id).await);
}

/// Every event of execution `id`, read in pages of `limit`.
async fn history(s: &Server, id: &str, limit: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let r = s
            .call(
                "GET",
                &format!("{NS}/executions/{id}/history?after={after}&limit={limit}"),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.body["events"].as_array().unwrap().clone();
        assert!(page.len() as u64 <= limit, "{}", r.body);
        out.extend(page);
        match r.body["next"].as_u64() {
            Some(next) => after = next,
            None => return out,
        }
    }
}

/// The task token of the callback step of execution `id`, once it is scheduled.
async fn token_of(s: &Server, id: &str) -> String {
    for _ in 0..600 {
        for e in history(s, id, 1000).await {
            if e["kind"] == "TaskScheduled" {
                let params: Value =
                    serde_json::from_str(e["details"]["parameters"].as_str().unwrap_or("{}"))
                        .unwrap_or_default();
                if let Some(t) = params["token"].as_str() {
                    return t.to_string();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {id} scheduled no callback step");
}

/// Polls until execution `id`'s history has an event of `kind`.
async fn wait_for_kind(s: &Server, id: &str, kind: &str) {
    for _ in 0..600 {
        if history(s, id, 1000).await.iter().any(|e| e["kind"] == kind) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {kind} in execution {id}");
}

#[tokio::test]
async fn definitions_are_validated_and_nothing_bad_is_stored() {
    let s = server();
    let bad = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Missing"}}});
    let r = s
        .call(
            "PUT",
            &format!("{NS}/workflows/bad"),
            Some(json!({ "definition": bad })),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["error"].as_str().unwrap().contains("State \"A\""),
        "the error names the state: {}",
        r.body
    );
    assert!(r.body["code"].is_string());
    let r = s.call("GET", &format!("{NS}/workflows/bad"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Not JSON, no definition, an unknown field: 400s too.
    for body in [
        json!({"definition": "{nope"}),
        json!({}),
        json!({"definition": choosy(), "extra": 1}),
    ] {
        let r = s
            .call("PUT", &format!("{NS}/workflows/bad"), Some(body.clone()))
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    let r = s.call("GET", &format!("{NS}/workflows"), None).await;
    assert_eq!((r.status, &r.body), (200, &json!([])));

    // A good one, given as a string, then again: 409 without overwrite.
    let r = s
        .call(
            "PUT",
            &format!("{NS}/workflows/choosy"),
            Some(json!({ "definition": choosy().to_string() })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "choosy");
    assert_eq!(r.body["definition"], choosy());
    let r = s
        .call(
            "PUT",
            &format!("{NS}/workflows/choosy"),
            Some(json!({ "definition": choosy() })),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    // A bad update leaves the stored one as it was.
    let r = s
        .call(
            "PUT",
            &format!("{NS}/workflows/choosy?overwrite=true"),
            Some(json!({ "definition": bad })),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.call("GET", &format!("{NS}/workflows/choosy"), None).await;
    assert_eq!((r.status, &r.body["definition"]), (200, &choosy()));
    let r = s.call("GET", &format!("{NS}/workflows"), None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.body);
    let r = s
        .call("DELETE", &format!("{NS}/workflows/choosy"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call("DELETE", &format!("{NS}/workflows/choosy"), None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = s
        .call(
            "POST",
            &format!("{NS}/workflows/choosy/executions"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn executions_start_once_by_name_and_their_history_pages() {
    let s = server();
    put(&s, "choosy", choosy()).await;
    let e = start(
        &s,
        "choosy",
        json!({"name": "run-1", "input": {"go": true}}),
    )
    .await;
    let id = e["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "{e}");
    assert_eq!(
        (&e["name"], &e["workflow"], &e["status"]),
        (&json!("run-1"), &json!("choosy"), &json!("RUNNING"))
    );
    // The same name and input while it runs (its Wait takes 1 s): that execution, 200;
    // the same name with another input: 409, as Step Functions answers.
    let r = s
        .call(
            "POST",
            &format!("{NS}/workflows/choosy/executions"),
            Some(json!({"name": "run-1", "input": {"go": true}})),
        )
        .await;
    assert_eq!((r.status, &r.body["id"]), (200, &json!(id)), "{}", r.body);
    let r = s
        .call(
            "POST",
            &format!("{NS}/workflows/choosy/executions"),
            Some(json!({"name": "run-1", "input": {"go": false}})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    // A blocking start of another waits for its end.
    let r = s
        .call(
            "POST",
            &format!("{NS}/workflows/choosy/executions?blocking=true&timeout=30000"),
            Some(json!({"input": {"go": false}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["status"], &r.body["error"], &r.body["cause"]),
        (&json!("FAILED"), &json!("Nope"), &json!("go was false"))
    );
    assert_eq!(r.body["name"], r.body["id"], "no name given: the id");

    let done = finished(&s, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["output"], json!({"go": true, "seen": true}));
    assert_eq!(done["input"], json!({"go": true}));
    assert!(done["stop"].as_u64() >= done["start"].as_u64());
    // Its name is taken for good.
    let r = s
        .call(
            "POST",
            &format!("{NS}/workflows/choosy/executions"),
            Some(json!({"name": "run-1"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);

    // Lists: the workflow's, all, by status.
    let r = s
        .call("GET", &format!("{NS}/workflows/choosy/executions"), None)
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 2, "{}", r.body);
    let r = s
        .call("GET", &format!("{NS}/executions?status=SUCCEEDED"), None)
        .await;
    let ids: Vec<&Value> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["id"])
        .collect();
    assert_eq!(ids, [&json!(id)], "{}", r.body);
    let r = s
        .call(
            "GET",
            &format!("{NS}/executions?workflow=choosy&limit=1"),
            None,
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.body);
    let r = s
        .call("GET", &format!("{NS}/executions?status=DONE"), None)
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.call("GET", &format!("{NS}/executions/nope"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // The history, in pages of 2 and whole: the same events, numbered from 1 without gaps.
    let paged = history(&s, &id, 2).await;
    let whole = history(&s, &id, 1000).await;
    assert_eq!(paged, whole);
    let seqs: Vec<u64> = whole.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=whole.len() as u64).collect::<Vec<_>>());
    let kinds: Vec<&str> = whole.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"ExecutionStarted"));
    assert_eq!(kinds.last(), Some(&"ExecutionSucceeded"));
    for state in [
        "PassStateEntered",
        "WaitStateEntered",
        "ChoiceStateEntered",
        "SucceedStateEntered",
    ] {
        assert!(kinds.contains(&state), "{kinds:?}");
    }
    let r = s
        .call(
            "GET",
            &format!("{NS}/executions/{id}/history?reverse=true&limit=1"),
            None,
        )
        .await;
    assert_eq!(
        r.body["events"][0]["kind"], "ExecutionSucceeded",
        "{}",
        r.body
    );
    assert_eq!(r.body["next"], json!(whole.len()), "{}", r.body);
    let r = s
        .call(
            "GET",
            &format!("{NS}/executions/{id}/history?limit=1001"),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test]
async fn tasks_run_actions_and_callbacks_stops_and_events_end_steps() {
    let s = server();
    s.create("inc", &function("inc"), json!({})).await;
    s.create("echo", &function("echo"), json!({})).await;
    put(&s, "approve", callback_flow()).await;
    let e = start(&s, "approve", json!({"input": {"n": 40}})).await;
    let id = e["id"].as_str().unwrap().to_string();
    let token = token_of(&s, &id).await;
    assert_eq!(execution(&s, &id).await["status"], "RUNNING");
    // No token, no output: 400; a token of nothing: 404.
    let r = s
        .call(
            "POST",
            &format!("{NS}/tasks/success"),
            Some(json!({"output": 1})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s
        .call(
            "POST",
            &format!("{NS}/tasks/success"),
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s
        .call(
            "POST",
            &format!("{NS}/tasks/heartbeat"),
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "POST",
            &format!("{NS}/tasks/success"),
            Some(json!({"token": token, "output": {"ok": true}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let done = finished(&s, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["output"]["n"], 42, "{done}");
    assert_eq!(done["output"]["approval"], json!({"ok": true}), "{done}");
    // The step ended: its token is spent.
    let r = s
        .call(
            "POST",
            &format!("{NS}/tasks/failure"),
            Some(json!({"token": token, "error": "Late"})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // A stop aborts a run, with its error and cause; a second stop changes nothing.
    put(&s, "sleepy", sleepy()).await;
    let e = start(&s, "sleepy", json!({})).await;
    let nap = e["id"].as_str().unwrap().to_string();
    wait_for_kind(&s, &nap, "WaitStateEntered").await;
    let r = s
        .call(
            "POST",
            &format!("{NS}/executions/{nap}/stop"),
            Some(json!({"error": "Enough", "cause": "by the test"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stopped = finished(&s, &nap).await;
    assert_eq!(
        (&stopped["status"], &stopped["error"], &stopped["cause"]),
        (&json!("ABORTED"), &json!("Enough"), &json!("by the test"))
    );
    let r = s
        .call(
            "POST",
            &format!("{NS}/executions/{nap}/events/x"),
            Some(json!(1)),
        )
        .await;
    assert_eq!(r.status, 410, "{}", r.body);

    // An event ends the step that waits for it.
    put(&s, "await", event_flow()).await;
    let e = start(&s, "await", json!({})).await;
    let waiting = e["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            "POST",
            &format!("{NS}/executions/{waiting}/events/approval"),
            Some(json!({"by": "ada"})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let done = finished(&s, &waiting).await;
    assert_eq!(
        (&done["status"], &done["output"]),
        (&json!("SUCCEEDED"), &json!({"by": "ada"})),
        "{done}"
    );
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

async fn with_header(s: &Server, auth: &str, method: &str, path: &str, body: Value) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    s.client
        .request(method, s.url(path))
        .header("Authorization", auth)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn another_namespace_cannot_read_start_stop_or_send_and_tokens_keep_to_their_scope() {
    let s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let flow = json!({
        "StartAt": "Approve",
        "States": {"Approve": {"Type": "Task", "Resource": "echo.waitForTaskToken",
                               "Parameters": {"token.$": "$$.Task.Token"}, "End": true}}
    });
    put(&s, "guarded", flow).await;
    let e = start(&s, "guarded", json!({})).await;
    let id = e["id"].as_str().unwrap().to_string();
    let task = token_of(&s, &id).await;

    let other = s.admin(&["namespace", "create", "tenantb"]);
    let as_other = |method: &'static str, path: String, body: Option<Value>| {
        let s = &s;
        let other = other.clone();
        async move { s.call_as(&other, method, &path, body).await }
    };
    // Named by the guest namespace: 403, as every other resource.
    for (method, path) in [
        (
            "GET",
            "/api/v1/namespaces/guest/workflows/guarded".to_string(),
        ),
        ("GET", "/api/v1/namespaces/guest/workflows".to_string()),
        (
            "POST",
            "/api/v1/namespaces/guest/workflows/guarded/executions".to_string(),
        ),
        ("GET", format!("/api/v1/namespaces/guest/executions/{id}")),
        (
            "POST",
            format!("/api/v1/namespaces/guest/executions/{id}/stop"),
        ),
    ] {
        let r = as_other(method, path.clone(), Some(json!({}))).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
    }
    // In its own namespace, the guest's workflow and execution do not exist.
    for (method, path, body) in [
        ("GET", format!("{NS}/workflows/guarded"), None),
        (
            "POST",
            format!("{NS}/workflows/guarded/executions"),
            Some(json!({})),
        ),
        ("GET", format!("{NS}/executions/{id}"), None),
        ("GET", format!("{NS}/executions/{id}/history"), None),
        (
            "POST",
            format!("{NS}/executions/{id}/stop"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("{NS}/executions/{id}/events/x"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("{NS}/tasks/success"),
            Some(json!({"token": task, "output": 1})),
        ),
        (
            "POST",
            format!("{NS}/tasks/failure"),
            Some(json!({"token": task})),
        ),
        (
            "POST",
            format!("{NS}/tasks/heartbeat"),
            Some(json!({"token": task})),
        ),
    ] {
        let r = as_other(method, path.clone(), body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
    }
    let r = as_other("GET", format!("{NS}/executions"), None).await;
    assert_eq!((r.status, &r.body), (200, &json!([])));
    // The Durable Functions API alike.
    let r = as_other(
        "GET",
        format!("/runtime/webhooks/durabletask/instances/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = as_other(
        "POST",
        format!("/runtime/webhooks/durabletask/instances/{id}/terminate"),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        execution(&s, &id).await["status"],
        "RUNNING",
        "nothing reached it"
    );

    // Tokens: read reads and writes nothing; write on one workflow starts it only.
    let reader = token(&s, json!(["read:workflows"])).await;
    let one = token(&s, json!(["write:workflows/guarded"])).await;
    let actions = token(&s, json!(["read:actions"])).await;
    let get = |auth: String, path: String| {
        let s = &s;
        async move { with_header(s, &auth, "GET", &path, json!(null)).await }
    };
    assert_eq!(get(reader.clone(), format!("{NS}/workflows")).await, 200);
    assert_eq!(
        get(reader.clone(), format!("{NS}/executions/{id}/history")).await,
        200
    );
    assert_eq!(get(actions.clone(), format!("{NS}/workflows")).await, 403);
    assert_eq!(
        with_header(
            &s,
            &reader,
            "POST",
            &format!("{NS}/executions/{id}/stop"),
            json!({})
        )
        .await,
        403
    );
    assert_eq!(
        with_header(
            &s,
            &one,
            "POST",
            &format!("{NS}/workflows/guarded/executions"),
            json!({})
        )
        .await,
        202
    );
    assert_eq!(
        with_header(
            &s,
            &one,
            "PUT",
            &format!("{NS}/workflows/other"),
            json!({"definition": sleepy()})
        )
        .await,
        403
    );
    // A token writes a workflow only if it may run what its tasks run: its runs invoke as
    // the namespace.
    let tasky = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "secret", "End": true}}});
    let writer = token(&s, json!(["write:workflows"])).await;
    let both = token(&s, json!(["write:workflows", "invoke:actions/secret"])).await;
    let put = |auth: String, definition: Value| {
        let s = &s;
        async move {
            with_header(
                s,
                &auth,
                "PUT",
                &format!("{NS}/workflows/tasky?overwrite=true"),
                json!({"definition": definition}),
            )
            .await
        }
    };
    assert_eq!(put(writer.clone(), tasky.clone()).await, 403);
    let dynamic = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName.$": "$.fn"}, "End": true}}});
    assert_eq!(
        put(both.clone(), dynamic).await,
        403,
        "any action needs invoke on every one"
    );
    assert_eq!(put(both, tasky).await, 200);
    assert_eq!(
        with_header(
            &s,
            &one,
            "POST",
            &format!("{NS}/executions/{id}/stop"),
            json!({})
        )
        .await,
        403,
        "an execution by id needs the whole kind"
    );
    assert_eq!(
        with_header(
            &s,
            &actions,
            "GET",
            &format!("/runtime/webhooks/durabletask/instances/{id}"),
            json!(null)
        )
        .await,
        403
    );
    assert_eq!(
        with_header(
            &s,
            &reader,
            "GET",
            &format!("/runtime/webhooks/durabletask/instances/{id}"),
            json!(null)
        )
        .await,
        202
    );
    // The guest itself may.
    let r = s
        .call(
            "POST",
            &format!("{NS}/tasks/success"),
            Some(json!({"token": task, "output": {"done": true}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(finished(&s, &id).await["status"], "SUCCEEDED");
}

/// The Durable Functions request `method path` with `headers` and `body`, no credentials
/// but those given.
async fn durable(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> gust_testkit::Response {
    s.web(method, path, headers, body.as_bytes().to_vec()).await
}

#[tokio::test]
async fn durable_functions_clients_start_poll_raise_and_terminate() {
    let s = server();
    put(&s, "await", event_flow()).await;
    put(&s, "choosy", choosy()).await;
    let (uuid, key) = s.auth.split_once(':').unwrap();
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &s.auth)
    );
    let auth = [("authorization", basic.as_str())];
    let json_auth = [
        ("authorization", basic.as_str()),
        ("content-type", "application/json"),
    ];
    let base = "/runtime/webhooks/durabletask";

    // No credentials: 401; bad JSON: 400 "Invalid JSON content"; no such orchestrator: 404.
    let r = durable(&s, "POST", &format!("{base}/orchestrators/await"), &[], "").await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = durable(
        &s,
        "POST",
        &format!("{base}/orchestrators/await"),
        &auth,
        "{nope",
    )
    .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Invalid JSON content"),
        "{}",
        r.body
    );
    let r = durable(&s, "POST", &format!("{base}/orchestrators/nope"), &auth, "").await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Start with an instance id: 202, the check-status payload, Location and Retry-After.
    let r = durable(
        &s,
        "POST",
        &format!("{base}/orchestrators/await/order-7"),
        &json_auth,
        r#"{"n": 7}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let status_uri = s.url(&format!("{base}/instances/{id}"));
    assert_eq!(r.body["statusQueryGetUri"], json!(status_uri));
    assert_eq!(
        r.body["sendEventPostUri"],
        json!(format!("{status_uri}/raiseEvent/{{eventName}}"))
    );
    assert_eq!(
        r.body["terminatePostUri"],
        json!(format!("{status_uri}/terminate?reason={{text}}"))
    );
    assert_eq!(r.header("location"), Some(status_uri.as_str()));
    assert_eq!(r.header("retry-after"), Some("10"));
    assert_eq!(execution(&s, &id).await["name"], "order-7");

    // Running: 202 with Location and Retry-After 5.
    let r = durable(&s, "GET", &format!("{base}/instances/{id}"), &auth, "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.header("location"), Some(status_uri.as_str()));
    assert_eq!(
        (
            &r.body["name"],
            &r.body["instanceId"],
            &r.body["runtimeStatus"],
            &r.body["input"]
        ),
        (
            &json!("await"),
            &json!(id),
            &json!("Running"),
            &json!({"n": 7})
        )
    );
    assert!(r.body["customStatus"].is_null() && r.body["output"].is_null());
    let created = r.body["createdTime"].as_str().unwrap();
    assert!(created.len() == 20 && created.ends_with('Z'), "{created}");

    // An event: JSON only; then it completes with the event's body.
    let r = durable(
        &s,
        "POST",
        &format!("{base}/instances/{id}/raiseEvent/approval"),
        &[
            ("authorization", basic.as_str()),
            ("content-type", "text/plain"),
        ],
        "yes",
    )
    .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Only application/json request content is supported"),
        "{}",
        r.body
    );
    let r = durable(
        &s,
        "POST",
        &format!("{base}/instances/{id}/raiseEvent/approval"),
        &json_auth,
        r#"{"by": "ada"}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    finished(&s, &id).await;
    let r = durable(
        &s,
        "GET",
        &format!("{base}/instances/{id}?showInput=false"),
        &auth,
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            &r.body["runtimeStatus"],
            &r.body["output"],
            &r.body["input"]
        ),
        (&json!("Completed"), &json!({"by": "ada"}), &Value::Null)
    );
    // Ended: events and terminations are 410; an unknown instance 404.
    let r = durable(
        &s,
        "POST",
        &format!("{base}/instances/{id}/raiseEvent/approval"),
        &json_auth,
        "{}",
    )
    .await;
    assert_eq!(r.status, 410, "{}", r.body);
    let r = durable(
        &s,
        "POST",
        &format!("{base}/instances/{id}/terminate?reason=late"),
        &auth,
        "",
    )
    .await;
    assert_eq!(r.status, 410, "{}", r.body);
    for (method, path) in [
        ("GET", format!("{base}/instances/nope")),
        ("POST", format!("{base}/instances/nope/terminate")),
    ] {
        let r = durable(&s, method, &path, &json_auth, "{}").await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
    }

    // `?code=uuid:key` authenticates too, and the URIs carry it; terminate stops a run.
    let code = format!("{uuid}:{key}");
    let r = durable(
        &s,
        "POST",
        &format!("{base}/orchestrators/await?code={code}"),
        &[("content-type", "application/json")],
        "",
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(
        r.body["statusQueryGetUri"]
            .as_str()
            .unwrap()
            .contains("?code="),
        "{}",
        r.body
    );
    assert_eq!(execution(&s, &id).await["input"], Value::Null);
    let r = durable(
        &s,
        "POST",
        &format!("{base}/instances/{id}/terminate?reason=no%20longer%20needed&code={code}"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let stopped = finished(&s, &id).await;
    assert_eq!(
        (&stopped["status"], &stopped["cause"]),
        (&json!("ABORTED"), &json!("no longer needed"))
    );
    let r = durable(
        &s,
        "GET",
        &format!("{base}/instances/{id}?code={code}"),
        &[],
        "",
    )
    .await;
    assert_eq!(
        (r.status, &r.body["runtimeStatus"], &r.body["output"]),
        (200, &json!("Terminated"), &json!("no longer needed"))
    );
    let r = durable(
        &s,
        "GET",
        &format!("{base}/instances/{id}?code={uuid}:wrong"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);

    // A failed one is 200 too, `Failed` with its error.
    let r = durable(
        &s,
        "POST",
        &format!("{base}/orchestrators/choosy"),
        &json_auth,
        r#"{"go": false}"#,
    )
    .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    finished(&s, &id).await;
    let r = durable(&s, "GET", &format!("{base}/instances/{id}"), &auth, "").await;
    assert_eq!(
        (r.status, &r.body["runtimeStatus"], &r.body["output"]),
        (200, &json!("Failed"), &json!("Nope: go was false"))
    );
}

/// Runs `gust ARGS` against `s` with a home of its own, in `dir`.
fn gust(s: &Server, home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gust"))
        .args(args)
        .current_dir(home)
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

/// `gust ARGS`, which must succeed: its stdout.
fn gust_ok(s: &Server, home: &std::path::Path, args: &[&str]) -> String {
    let out = gust(s, home, args);
    assert!(
        out.status.success(),
        "gust {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_cli_creates_starts_reads_sends_stops_and_draws_workflows() {
    let s = server();
    s.create("inc", &function("inc"), json!({})).await;
    s.create("echo", &function("echo"), json!({})).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::write(dir.join("choosy.json"), choosy().to_string()).unwrap();
    std::fs::write(dir.join("approve.json"), callback_flow().to_string()).unwrap();
    std::fs::write(
        dir.join("bad.json"),
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass"}}}"#,
    )
    .unwrap();

    let out = gust(&s, dir, &["workflow", "create", "bad", "bad.json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("State \"A\""),
        "{out:?}"
    );
    assert!(
        gust_ok(&s, dir, &["workflow", "create", "choosy", "choosy.json"])
            .contains("created workflow choosy")
    );
    let out = gust(&s, dir, &["workflow", "create", "choosy", "choosy.json"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--update"),
        "{out:?}"
    );
    gust_ok(
        &s,
        dir,
        &["workflow", "create", "choosy", "choosy.json", "--update"],
    );
    gust_ok(&s, dir, &["workflow", "create", "approve", "approve.json"]);
    let list = gust_ok(&s, dir, &["workflow", "list"]);
    assert!(
        list.contains("choosy") && list.contains("approve"),
        "{list}"
    );
    let got: Value =
        serde_json::from_str(&gust_ok(&s, dir, &["workflow", "get", "choosy"])).unwrap();
    assert_eq!(got["definition"], choosy());

    // --wait prints the output; a failure is the command's.
    let out = gust_ok(
        &s,
        dir,
        &[
            "workflow",
            "start",
            "choosy",
            "--input",
            r#"{"go": true}"#,
            "--wait",
        ],
    );
    let output: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(output, json!({"go": true, "seen": true}));
    let out = gust(
        &s,
        dir,
        &[
            "workflow",
            "start",
            "choosy",
            "--input",
            r#"{"go": false}"#,
            "--wait",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FAILED: Nope"),
        "{out:?}"
    );
    let out = gust(
        &s,
        dir,
        &["workflow", "start", "choosy", "--input", "{nope"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--input is not valid JSON"),
        "{out:?}"
    );

    let started: Value = serde_json::from_str(&gust_ok(
        &s,
        dir,
        &[
            "workflow",
            "start",
            "approve",
            "--name",
            "r1",
            "--input",
            r#"{"n": 1}"#,
            "--json",
        ],
    ))
    .unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    let task = token_of(&s, &id).await;
    let graph = gust_ok(&s, dir, &["workflow", "graph", &id]);
    assert!(
        graph.contains(&format!("execution {id} of approve (RUNNING)")),
        "{graph}"
    );
    assert!(graph.contains("✓ Inc (Task)  → Again"), "{graph}");
    assert!(
        graph.contains("… Approve (Task, waiting for callback)  → Done"),
        "{graph}"
    );
    assert!(graph.contains("· Done (Succeed)"), "{graph}");
    let listed = gust_ok(
        &s,
        dir,
        &["workflow", "executions", "approve", "--status", "RUNNING"],
    );
    assert!(listed.contains(&id) && listed.contains("r1"), "{listed}");
    let shown = gust_ok(&s, dir, &["workflow", "describe", &id]);
    assert!(
        shown.contains("RUNNING") && shown.contains(r#"{"n":1}"#),
        "{shown}"
    );
    gust_ok(&s, dir, &["workflow", "send", "heartbeat", &task]);
    gust_ok(
        &s,
        dir,
        &["workflow", "send", "success", &task, r#"{"yes": 1}"#],
    );
    let done = finished(&s, &id).await;
    assert_eq!(done["output"]["approval"], json!({"yes": 1}), "{done}");
    let graph = gust_ok(&s, dir, &["workflow", "graph", &id]);
    for line in ["✓ Approve (Task)  → Done", "✓ Done (Succeed)"] {
        assert!(graph.contains(line), "{graph}");
    }
    let out = gust(
        &s,
        dir,
        &["workflow", "send", "failure", &task, "--error", "Late"],
    );
    assert!(!out.status.success(), "a spent token: {out:?}");
    let hist = gust_ok(&s, dir, &["workflow", "history", &id]);
    assert!(
        hist.contains("ExecutionStarted") && hist.contains("ExecutionSucceeded"),
        "{hist}"
    );
    let two = gust_ok(&s, dir, &["workflow", "history", &id, "--limit", "2"]);
    assert_eq!(two.lines().count(), 3, "a header and two events: {two}");

    // A stop, drawn; an event on a stopped run is refused.
    std::fs::write(dir.join("sleepy.json"), sleepy().to_string()).unwrap();
    gust_ok(&s, dir, &["workflow", "create", "sleepy", "sleepy.json"]);
    let started: Value = serde_json::from_str(&gust_ok(
        &s,
        dir,
        &["workflow", "start", "sleepy", "--json"],
    ))
    .unwrap();
    let nap = started["id"].as_str().unwrap().to_string();
    wait_for_kind(&s, &nap, "WaitStateEntered").await;
    assert!(
        gust_ok(&s, dir, &["workflow", "stop", &nap, "--error", "Enough"])
            .contains("stopped execution")
    );
    finished(&s, &nap).await;
    let graph = gust_ok(&s, dir, &["workflow", "graph", &nap]);
    assert!(graph.contains("✗ Nap (Wait, failed: Enough)"), "{graph}");
    let out = gust(
        &s,
        dir,
        &["workflow", "send", "event", &nap, "approval", "{}"],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(
        gust_ok(&s, dir, &["workflow", "delete", "sleepy"]).contains("deleted workflow sleepy")
    );
    let out = gust(&s, dir, &["workflow", "get", "sleepy"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_manifest_deploys_and_undeploys_workflows() {
    let s = server();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::write(dir.join("choosy.json"), choosy().to_string()).unwrap();
    let manifest = r#"
[[workflow]]
name = "choosy"
definition = "choosy.json"

[[workflow]]
name = "inline"
definition = { StartAt = "A", States = { A = { Type = "Pass", Result = { x = 1 }, End = true } } }
"#;
    std::fs::write(dir.join("gust.toml"), manifest).unwrap();
    let out = gust_ok(&s, dir, &["deploy"]);
    assert!(
        out.contains("created workflow choosy") && out.contains("created workflow inline"),
        "{out}"
    );
    let out = gust_ok(&s, dir, &["deploy"]);
    assert!(
        out.contains("unchanged workflow choosy") && out.contains("no changes"),
        "{out}"
    );
    let r = s
        .call(
            "POST",
            &format!("{NS}/workflows/inline/executions?blocking=true"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["output"]),
        (200, &json!({"x": 1})),
        "{}",
        r.body
    );
    std::fs::write(dir.join("choosy.json"), sleepy().to_string()).unwrap();
    let out = gust_ok(&s, dir, &["deploy"]);
    assert!(
        out.contains("updated (definition) workflow choosy"),
        "{out}"
    );
    let r = s.call("GET", &format!("{NS}/workflows/choosy"), None).await;
    assert_eq!(r.body["definition"], sleepy());
    let out = gust_ok(&s, dir, &["undeploy"]);
    assert!(
        out.contains("deleted workflow choosy") && out.contains("deleted workflow inline"),
        "{out}"
    );
    let r = s.call("GET", &format!("{NS}/workflows"), None).await;
    assert_eq!(r.body, json!([]));
}

fn python() -> Option<std::path::PathBuf> {
    let python = workspace_root().join("tests/lambda/.venv/bin/python");
    let has_boto3 = Command::new(&python)
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    has_boto3.then_some(python)
}

#[tokio::test]
async fn boto3_runs_state_machines_through_the_step_functions_api() {
    let Some(python) = python() else {
        eprintln!("SKIPPED: boto3 is not installed in tests/lambda/.venv (.ci/run installs it)");
        return;
    };
    let s = server();
    s.create("inc", &function("inc"), json!({})).await;
    s.create("echo", &function("echo"), json!({})).await;
    let (key_id, secret) = s.auth.split_once(':').unwrap();
    let script = workspace_root().join("tests/workflows/boto3_states.py");
    let out = Command::new(python)
        .arg(&script)
        .env("GUST_ENDPOINT", &s.apihost)
        .env("GUST_KEY_ID", key_id)
        .env("GUST_SECRET", secret)
        // boto3 must find nothing of the machine's own AWS setup.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SFN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "boto3_states.py failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(last["machines"], json!(["flow", "sleepy"]));
    // What boto3 made is Gust's: the workflow and its execution over Gust's API.
    let r = s.call("GET", &format!("{NS}/workflows/flow"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call("GET", &format!("{NS}/executions?workflow=flow"), None)
        .await;
    let runs = r.body.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{}", r.body);
    assert_eq!(
        (&runs[0]["name"], &runs[0]["status"]),
        (&json!("run-1"), &json!("SUCCEEDED"))
    );
    assert_eq!(runs[0]["output"], last["output"]);

    // Unsigned or unknown: refused as Lambda's API refuses, in Step Functions' shape.
    let r = s
        .web(
            "POST",
            "/",
            &[
                ("x-amz-target", "AWSStepFunctions.ListStateMachines"),
                ("content-type", "application/x-amz-json-1.0"),
            ],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["__type"], "MissingAuthenticationTokenException");
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );
    let r = s.web("POST", "/", &[], b"{}".to_vec()).await;
    assert_eq!(
        (r.status, &r.body["__type"]),
        (400, &json!("UnknownOperationException"))
    );
}
