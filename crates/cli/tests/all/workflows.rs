//! Durable workflows run by a real server (decision 0028): every state kind with real
//! actions, retry and catch, a 1,000-item Map under its concurrency limit, callbacks that
//! time out, nested workflows, and runs that survive `kill -9` of the server at every step
//! kind with each step run once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use gust_testkit::{Server, function};
use serde_json::{Value, json};

use crate::server;

async fn put_workflow(s: &Server, name: &str, definition: Value) {
    let r = s
        .call(
            "PUT",
            &format!("/api/v1/namespaces/_/workflows/{name}?overwrite=true"),
            Some(json!({ "definition": definition })),
        )
        .await;
    assert_eq!(r.status, 200, "creating workflow {name}: {}", r.body);
}

/// Starts an execution; returns its id.
async fn start(s: &Server, workflow: &str, input: Value) -> String {
    let r = s
        .call(
            "POST",
            &format!("/api/v1/namespaces/_/workflows/{workflow}/executions"),
            Some(json!({ "input": input })),
        )
        .await;
    assert!(
        r.status == 202 || r.status == 200,
        "starting {workflow}: {} {}",
        r.status,
        r.body
    );
    r.body["id"].as_str().expect("an execution id").to_string()
}

async fn execution(s: &Server, id: &str) -> Value {
    let r = s
        .call(
            "GET",
            &format!("/api/v1/namespaces/_/executions/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Polls until the execution is no longer running (or 120 s pass).
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

/// The whole history, every page.
async fn history(s: &Server, id: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let r = s
            .call(
                "GET",
                &format!("/api/v1/namespaces/_/executions/{id}/history?after={after}&limit=100"),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.body["events"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return events;
        }
        after = page.last().unwrap()["seq"].as_u64().unwrap();
        events.extend(page);
    }
}

/// Polls until the history has an event of `kind` (whose details satisfy `pick`).
async fn wait_for_event(s: &Server, id: &str, kind: &str, pick: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        if let Some(e) = history(s, id)
            .await
            .into_iter()
            .find(|e| e["kind"] == kind && pick(&e["details"]))
        {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {kind} event in {id}: {:?}", history(s, id).await);
}

/// The activation ids of the steps the history scheduled, checking that no step was
/// scheduled twice (by its place and state).
fn scheduled_once(events: &[Value]) -> Vec<String> {
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    let mut entered: HashMap<String, String> = HashMap::new();
    for e in events {
        let d = &e["details"];
        if e["kind"]
            .as_str()
            .unwrap_or_default()
            .ends_with("StateEntered")
        {
            entered.insert(
                d["path"].as_str().unwrap_or_default().to_string(),
                d["name"].as_str().unwrap_or_default().to_string(),
            );
        }
        if e["kind"] == "TaskScheduled" {
            let path = d["path"].as_str().unwrap_or_default().to_string();
            let state = entered.get(&path).cloned().unwrap_or_default();
            assert!(
                seen.insert((path.clone(), state.clone())),
                "step {state} at {path:?} was scheduled twice: {events:?}"
            );
            ids.push(d["activationId"].as_str().unwrap().to_string());
        }
    }
    ids
}

async fn records_of(s: &Server, ids: &[String]) -> Vec<Value> {
    let mut records = Vec::new();
    for id in ids {
        records.push(s.wait_for_record(id).await);
    }
    records
}

#[tokio::test]
async fn every_state_kind_runs_with_real_actions() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    s.create("echo", &function("echo"), json!({})).await;
    put_workflow(
        &s,
        "kinds",
        json!({
            "Comment": "Every state kind",
            "StartAt": "Greet",
            "States": {
                "Greet": {"Type": "Task", "Resource": "hello", "Parameters": {"name.$": "$.who"},
                          "ResultSelector": {"text.$": "$.greeting"}, "ResultPath": "$.greet", "Next": "Pick"},
                "Pick": {"Type": "Choice", "Choices": [
                    {"Variable": "$.n", "NumericGreaterThan": 2, "Next": "Fan"}], "Default": "Fail"},
                "Fan": {"Type": "Parallel", "ResultPath": "$.fan", "Next": "Each", "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "hello", "Parameters": {"name": "a"}, "End": true}}},
                    {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": "b", "End": true}}}]},
                "Each": {"Type": "Map", "ItemsPath": "$.items", "ResultPath": "$.each", "MaxConcurrency": 2, "Next": "Pause",
                         "ItemSelector": {"name.$": "$$.Map.Item.Value"},
                         "ItemProcessor": {"StartAt": "H", "States": {"H": {"Type": "Task", "Resource": "hello", "OutputPath": "$.greeting", "End": true}}}},
                "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Shape"},
                "Shape": {"Type": "Pass", "Parameters": {"greet.$": "$.greet.text", "fan.$": "$.fan[0].greeting", "each.$": "$.each", "n.$": "States.MathAdd($.n, 1)"}, "Next": "Done"},
                "Done": {"Type": "Succeed"},
                "Fail": {"Type": "Fail", "Error": "TooSmall", "Cause": "n must be over 2"}
            }
        }),
    )
    .await;
    let id = start(
        &s,
        "kinds",
        json!({"who": "ada", "n": 3, "items": ["x", "y", "z"]}),
    )
    .await;
    let e = finished(&s, &id).await;
    assert_eq!(e["status"], "SUCCEEDED", "{e}");
    assert_eq!(
        e["output"],
        json!({"greet": "Hello, ada!", "fan": "Hello, a!", "each": ["Hello, x!", "Hello, y!", "Hello, z!"], "n": 4})
    );
    let events = history(&s, &id).await;
    let ids = scheduled_once(&events);
    assert_eq!(ids.len(), 5, "Greet, A and three items");
    for r in records_of(&s, &ids).await {
        assert_eq!(r["cause"], json!(id), "a step's record names its run: {r}");
    }
    for kind in [
        "ExecutionStarted",
        "TaskStateEntered",
        "ChoiceStateEntered",
        "ParallelStateEntered",
        "MapStateEntered",
        "MapIterationStarted",
        "WaitStateEntered",
        "PassStateEntered",
        "SucceedStateEntered",
        "ExecutionSucceeded",
    ] {
        assert!(
            events.iter().any(|e| e["kind"] == kind),
            "no {kind}: {events:?}"
        );
    }

    // The Choice's default: a Fail state fails the run with its error and cause.
    let id = start(&s, "kinds", json!({"who": "bo", "n": 1, "items": []})).await;
    let e = finished(&s, &id).await;
    assert_eq!(e["status"], "FAILED");
    assert_eq!(
        (e["error"].as_str(), e["cause"].as_str()),
        (Some("TooSmall"), Some("n must be over 2"))
    );
}

#[tokio::test]
async fn retry_then_catch_with_a_failing_action() {
    let s = server();
    s.create("apperror", &function("apperror"), json!({})).await;
    put_workflow(
        &s,
        "retrying",
        json!({"StartAt": "Try", "States": {
            "Try": {"Type": "Task", "Resource": "apperror", "Next": "Never",
                    "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1.0}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught", "ResultPath": "$.error"}]},
            "Never": {"Type": "Fail", "Error": "Unreachable"},
            "Caught": {"Type": "Pass", "End": true}
        }}),
    )
    .await;
    let id = start(&s, "retrying", json!({"k": 1})).await;
    let e = finished(&s, &id).await;
    assert_eq!(e["status"], "SUCCEEDED", "{e}");
    assert_eq!(e["output"]["k"], 1);
    assert!(e["output"]["error"]["Error"].is_string(), "{e}");
    let events = history(&s, &id).await;
    let tries: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "TaskScheduled")
        .collect();
    assert_eq!(tries.len(), 3, "one try and two retries: {events:?}");
    let ids: HashSet<&str> = tries
        .iter()
        .map(|e| e["details"]["activationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "each attempt is its own activation");
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "TaskFailed").count(),
        3
    );
}

#[tokio::test]
async fn a_thousand_item_map_keeps_to_its_concurrency() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    put_workflow(
        &s,
        "wide",
        json!({"StartAt": "Each", "States": {
            "Each": {"Type": "Map", "MaxConcurrency": 10, "End": true,
                     "ItemSelector": {"name.$": "States.Format('n{}', $$.Map.Item.Index)"},
                     "ItemProcessor": {"StartAt": "H", "States": {"H": {"Type": "Task", "Resource": "hello", "OutputPath": "$.greeting", "End": true}}}}
        }}),
    )
    .await;
    let items: Vec<u32> = (0..1000).collect();
    let id = start(&s, "wide", json!(items)).await;
    let e = finished(&s, &id).await;
    assert_eq!(e["status"], "SUCCEEDED", "{}", e["error"]);
    let out = e["output"].as_array().unwrap();
    assert_eq!(out.len(), 1000);
    assert_eq!(out[0], "Hello, n0!");
    assert_eq!(out[999], "Hello, n999!");
    // In flight at once, as the history's order tells: never more than 10.
    let (mut live, mut most) = (0i64, 0i64);
    for ev in history(&s, &id).await {
        match ev["kind"].as_str().unwrap() {
            "TaskScheduled" => live += 1,
            "TaskSucceeded" | "TaskFailed" => live -= 1,
            _ => {}
        }
        most = most.max(live);
    }
    assert!((2..=10).contains(&most), "at most {most} steps in flight");
}

#[tokio::test]
async fn a_callback_that_never_comes_times_out_and_one_that_comes_ends_the_step() {
    let s = server();
    s.create("echo", &function("echo"), json!({})).await;
    put_workflow(
        &s,
        "ask",
        json!({"StartAt": "Ask", "States": {
            "Ask": {"Type": "Task", "Resource": "echo.waitForTaskToken", "TimeoutSeconds": 2,
                    "Parameters": {"token.$": "$$.Task.Token", "q.$": "$.q"}, "End": true}
        }}),
    )
    .await;
    let id = start(&s, "ask", json!({"q": "ok?"})).await;
    let e = finished(&s, &id).await;
    assert_eq!(e["status"], "FAILED");
    assert_eq!(e["error"], "States.Timeout");

    let id = start(&s, "ask", json!({"q": "yes?"})).await;
    let scheduled = wait_for_event(&s, &id, "TaskScheduled", |_| true).await;
    let params: Value =
        serde_json::from_str(scheduled["details"]["parameters"].as_str().unwrap()).unwrap();
    let token = params["token"].as_str().unwrap().to_string();
    // The action got the token too.
    let rec = s
        .wait_for_record(scheduled["details"]["activationId"].as_str().unwrap())
        .await;
    assert_eq!(rec["response"]["result"]["params"]["token"], json!(token));
    let bad = s
        .call(
            "POST",
            "/api/v1/namespaces/_/tasks/success",
            Some(json!({"token": "not-a-token", "output": {}})),
        )
        .await;
    assert!(bad.status == 400 || bad.status == 404, "{}", bad.body);
    let ok = s
        .call(
            "POST",
            "/api/v1/namespaces/_/tasks/success",
            Some(json!({"token": token, "output": {"answer": "yes"}})),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let e = finished(&s, &id).await;
    assert_eq!(e["status"], "SUCCEEDED", "{e}");
    assert_eq!(e["output"], json!({"answer": "yes"}));
    // The token is spent.
    let again = s
        .call(
            "POST",
            "/api/v1/namespaces/_/tasks/success",
            Some(json!({"token": token, "output": {}})),
        )
        .await;
    assert_eq!(again.status, 404, "{}", again.body);
}

#[tokio::test]
async fn a_task_can_run_a_nested_workflow_and_wait_for_an_event() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    put_workflow(
        &s,
        "child",
        json!({"StartAt": "H", "States": {"H": {"Type": "Task", "Resource": "hello", "End": true}}}),
    )
    .await;
    put_workflow(
        &s,
        "parent",
        json!({"StartAt": "Run", "States": {
            "Run": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                    "Parameters": {"StateMachineArn": "child", "Input": {"name.$": "$.name"}}, "ResultPath": "$.child", "Next": "Approve"},
            "Approve": {"Type": "Task", "Resource": "event:approval", "ResultPath": "$.approval", "End": true}
        }}),
    )
    .await;
    let id = start(&s, "parent", json!({"name": "kid"})).await;
    wait_for_event(&s, &id, "TaskScheduled", |d| d["resource"] == "approval").await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/namespaces/_/executions/{id}/events/approval"),
            Some(json!({"by": "boss"})),
        )
        .await;
    assert!(r.status == 200 || r.status == 202, "{}", r.body);
    let e = finished(&s, &id).await;
    assert_eq!(e["status"], "SUCCEEDED", "{e}");
    assert_eq!(e["output"]["child"]["greeting"], "Hello, kid!");
    assert_eq!(e["output"]["approval"], json!({"by": "boss"}));
    // The child is an execution of its own, named by its parent.
    let list = s
        .call(
            "GET",
            "/api/v1/namespaces/_/executions?workflow=child",
            None,
        )
        .await;
    let children = list.body.as_array().cloned().unwrap_or_default();
    assert_eq!(children.len(), 1, "{}", list.body);
    assert_eq!(children[0]["parent"], json!(id));
}

#[tokio::test]
async fn a_run_survives_kill_9_at_every_step_kind_and_runs_each_step_once() {
    let mut s = server();
    s.create("slow", &function("slow"), json!({})).await;
    s.create("echo", &function("echo"), json!({})).await;
    put_workflow(
        &s,
        "sturdy",
        json!({"StartAt": "Work", "States": {
            "Work": {"Type": "Task", "Resource": "slow", "Parameters": {"ms": 1500}, "ResultPath": "$.work", "Next": "Pause"},
            "Pause": {"Type": "Wait", "Seconds": 2, "Next": "Fan"},
            "Fan": {"Type": "Parallel", "ResultPath": "$.fan", "Next": "Each", "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "slow", "Parameters": {"ms": 1500}, "End": true}}},
                {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "echo", "End": true}}}]},
            "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.each", "Next": "Ask",
                     "ItemSelector": {"ms.$": "$$.Map.Item.Value"},
                     "ItemProcessor": {"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": "slow", "End": true}}}},
            "Ask": {"Type": "Task", "Resource": "echo.waitForTaskToken", "Parameters": {"token.$": "$$.Task.Token"}, "ResultPath": "$.answer", "End": true}
        }}),
    )
    .await;
    let id = start(&s, "sturdy", json!({"items": [700, 700, 700, 700]})).await;

    // Killed while a task runs, while a Wait waits, inside a Parallel, inside a Map and
    // while a callback waits: each time the run resumes where it was.
    wait_for_event(&s, &id, "TaskScheduled", |_| true).await;
    s = s.kill_and_restart();
    wait_for_event(&s, &id, "WaitStateEntered", |_| true).await;
    s = s.kill_and_restart();
    wait_for_event(&s, &id, "ParallelStateStarted", |_| true).await;
    s = s.kill_and_restart();
    wait_for_event(&s, &id, "MapIterationStarted", |_| true).await;
    s = s.kill_and_restart();
    let ask = wait_for_event(&s, &id, "TaskScheduled", |d| {
        d["parameters"]
            .as_str()
            .is_some_and(|p| p.contains("token"))
    })
    .await;
    s = s.kill_and_restart();
    let params: Value =
        serde_json::from_str(ask["details"]["parameters"].as_str().unwrap()).unwrap();
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/tasks/success",
            Some(json!({"token": params["token"], "output": "done"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let e = finished(&s, &id).await;
    assert_eq!(e["status"], "SUCCEEDED", "{e}");
    assert_eq!(e["output"]["answer"], "done");
    assert_eq!(e["output"]["each"].as_array().unwrap().len(), 4);
    assert_eq!(e["output"]["work"]["slept"], 1500);

    // Each step was scheduled once and has exactly one record.
    let events = history(&s, &id).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
    let ids = scheduled_once(&events);
    assert_eq!(ids.len(), 1 + 2 + 4 + 1);
    let records = records_of(&s, &ids).await;
    let listed = s
        .call("GET", "/api/v1/namespaces/_/activations?limit=200", None)
        .await;
    let of_run = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| ids.iter().any(|i| r["activationId"] == json!(i)))
        .count();
    assert_eq!(of_run, records.len(), "one record per step");
}
