//! Triggers, rules and fires as OpenWhisk has them; the system catalog (`whisk.system`); the
//! alarm feeds and their durable timers.

use std::collections::BTreeSet;
use std::time::Duration;

use gust_testkit::{Server, function};
use serde_json::{Value, json};

use crate::{annotation, server};

const TRIGGERS: &str = "/api/v1/namespaces/_/triggers";
const RULES: &str = "/api/v1/namespaces/_/rules";

fn kv(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

/// The activation id in a log line of a trigger's record, for its `n`th rule.
fn rule_log(record: &Value, n: usize) -> Value {
    serde_json::from_str(record["logs"][n].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn triggers_and_rules_fire_actions_with_openwhisks_shapes_and_texts() {
    let s = server();
    s.create("echo", &function("echo"), json!({})).await;

    // A trigger: OpenWhisk's entity, 409 without overwrite, version bump with it.
    let r = s
        .call(
            "PUT",
            &format!("{TRIGGERS}/t"),
            Some(json!({ "parameters": [kv("from", json!("trigger")), kv("both", json!("trigger"))] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["namespace"], "guest");
    assert_eq!(r.body["version"], "0.0.1");
    assert_eq!(r.body["limits"], json!({}));
    assert_eq!(r.body["annotations"], json!([]));
    assert_eq!(
        s.call("PUT", &format!("{TRIGGERS}/t"), Some(json!({})))
            .await
            .status,
        409
    );
    let r = s
        .call(
            "PUT",
            &format!("{TRIGGERS}/t?overwrite=true"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.body["version"], "0.0.2");
    assert_eq!(
        r.body["parameters"][0]["key"], "from",
        "an update keeps what it does not name"
    );
    let r = s.call("GET", TRIGGERS, None).await;
    assert_eq!(r.body[0]["name"], "t");
    assert!(
        r.body[0].get("parameters").is_none(),
        "list rows have no parameters"
    );
    assert_eq!(
        s.call("GET", &format!("{TRIGGERS}?count=true"), None)
            .await
            .body,
        json!({"triggers": 1})
    );

    // Without an active rule a fire runs nothing: 204, no body, no record.
    let r = s
        .call("POST", &format!("{TRIGGERS}/t"), Some(json!({"x": 1})))
        .await;
    assert_eq!(r.status, 204);

    // Rules: names as strings or {path, name}, answered as exactly {path, name}.
    let r = s
        .call(
            "PUT",
            &format!("{RULES}/r"),
            Some(json!({ "trigger": "/_/t", "action": {"path": "guest", "name": "echo"} })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["trigger"], json!({"path": "guest", "name": "t"}));
    assert_eq!(r.body["action"], json!({"path": "guest", "name": "echo"}));
    assert_eq!(r.body["status"], "active");
    let r = s.call("GET", &format!("{TRIGGERS}/t"), None).await;
    assert_eq!(
        r.body["rules"]["guest/r"],
        json!({"action": {"path": "guest", "name": "echo"}, "status": "active"})
    );

    // A fire: 202 with the id in the body and the header; the payload wins over the
    // trigger's parameters; credentials are not forwarded.
    let r = s
        .call(
            "POST",
            &format!("{TRIGGERS}/t"),
            Some(json!({"both": "payload", "n": 7})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    assert_eq!(r.header("x-openwhisk-activation-id"), Some(id.as_str()));
    let trigger = s.wait_for_record(&id).await;
    assert_eq!(trigger["name"], "t");
    assert_eq!(
        trigger["response"]["result"],
        json!({"both": "payload", "n": 7})
    );
    assert_eq!(trigger["response"]["success"], true);
    let line = rule_log(&trigger, 0);
    assert_eq!(
        (line["rule"].as_str(), line["action"].as_str()),
        (Some("guest/r"), Some("guest/echo"))
    );
    assert_eq!(
        (line["statusCode"].as_i64(), line["success"].as_bool()),
        (Some(0), Some(true))
    );
    let action_id = line["activationId"].as_str().unwrap();
    let run = s.wait_for_record(action_id).await;
    assert_eq!(
        run["cause"],
        json!(id),
        "the action's record names the trigger's"
    );
    assert_eq!(annotation(&run, "causedBy"), &Value::Null);
    let params = &run["response"]["result"]["params"];
    assert_eq!(params["from"], "trigger");
    assert_eq!(params["both"], "payload");
    assert_eq!(params["n"], 7);
    let headers = params["__ow_headers"].as_object().unwrap();
    assert!(headers.contains_key("content-type"), "{headers:?}");
    assert!(
        !headers.contains_key("authorization"),
        "the caller's key is not forwarded"
    );

    // Disabled: fires run nothing; enabled again: they do. Bad states: OpenWhisk's 400.
    let r = s
        .call(
            "POST",
            &format!("{RULES}/r"),
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.call("GET", &format!("{RULES}/r"), None).await.body["status"],
        "inactive"
    );
    assert_eq!(
        s.call("POST", &format!("{TRIGGERS}/t"), None).await.status,
        204
    );
    let r = s
        .call("POST", &format!("{RULES}/r"), Some(json!({"status": "on"})))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error(),
        "'on' is not a recognized rule state, must be one of ['active', 'inactive']"
    );
    assert_eq!(
        s.call(
            "POST",
            &format!("{RULES}/r"),
            Some(json!({"status": "active"}))
        )
        .await
        .status,
        200
    );
    let r = s.call("GET", RULES, None).await;
    assert_eq!(r.body[0]["name"], "r");
    assert!(
        r.body[0].get("status").is_none(),
        "list rows have no status"
    );

    // Bad rules change nothing.
    for (body, text) in [
        (
            json!({"trigger": "/_/t"}),
            "rule requires a valid trigger and a valid action",
        ),
        (
            json!({"trigger": "/_/nope", "action": "/_/echo"}),
            "trigger /guest/nope does not exist",
        ),
        (
            json!({"trigger": "/_/t", "action": "/_/nope"}),
            "action /guest/nope does not exist",
        ),
        (
            json!({"trigger": 5, "action": "/_/echo"}),
            "rule requires a valid trigger and a valid action",
        ),
    ] {
        let r = s.call("PUT", &format!("{RULES}/bad"), Some(body)).await;
        assert_eq!((r.status, r.error()), (400, text));
    }
    assert_eq!(
        s.call("GET", &format!("{RULES}/bad"), None).await.status,
        404
    );
    // One name per namespace across collections.
    let r = s
        .call("PUT", &format!("{TRIGGERS}/echo"), Some(json!({})))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (
            409,
            "Resource by this name exists but is not in this collection."
        )
    );
    let r = s.call("GET", &format!("{TRIGGERS}/r"), None).await;
    assert_eq!(r.status, 409);
    let r = s
        .call(
            "PUT",
            &format!("{TRIGGERS}/f"),
            Some(json!({"annotations": [kv("feed", json!("/a//b"))]})),
        )
        .await;
    assert_eq!((r.status, r.error()), (400, "Feed name is not valid"));
    let r = s
        .call("POST", &format!("{TRIGGERS}/t"), Some(json!([1, 2])))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        s.call("POST", &format!("{TRIGGERS}/missing"), None)
            .await
            .status,
        404
    );

    // A trigger deleted: its rule reads inactive, cannot be enabled, can be deleted.
    assert_eq!(
        s.call("DELETE", &format!("{TRIGGERS}/t"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        s.call("GET", &format!("{RULES}/r"), None).await.body["status"],
        "inactive"
    );
    let r = s
        .call(
            "POST",
            &format!("{RULES}/r"),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (404, "Only rules with existing triggers can be activated")
    );
    // A trigger made again under the same name does not bring its old rules back.
    s.call("PUT", &format!("{TRIGGERS}/t"), Some(json!({})))
        .await;
    let r = s.call("GET", &format!("{RULES}/r"), None).await;
    assert_eq!(r.body["status"], "inactive");
    assert_eq!(
        s.call("POST", &format!("{TRIGGERS}/t"), None).await.status,
        204
    );
    assert_eq!(
        s.call("DELETE", &format!("{RULES}/r"), None).await.status,
        200
    );
    assert_eq!(s.call("GET", &format!("{RULES}/r"), None).await.status, 404);
}

#[tokio::test]
async fn a_rule_cannot_name_another_tenants_private_action_and_fires_are_throttled() {
    let s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let other = s.admin(&["namespace", "create", "tenantb"]);
    let r = s
        .call_as(&other, "PUT", &format!("{TRIGGERS}/t"), Some(json!({})))
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call_as(
            &other,
            "PUT",
            &format!("{RULES}/r"),
            Some(json!({"trigger": "t", "action": "/guest/echo"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Nor read, fire or delete another namespace's triggers.
    for method in ["GET", "POST", "DELETE"] {
        let r = s
            .call_as(&other, method, "/api/v1/namespaces/guest/triggers/x", None)
            .await;
        assert_eq!(r.status, 403, "{method}");
    }

    s.admin(&["limits", "set", "guest", "--fires-per-minute", "2"]);
    // The server reads a key's namespace (and its limits) again once its cache expires.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.call("PUT", &format!("{TRIGGERS}/u"), Some(json!({})))
        .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(s.call("POST", &format!("{TRIGGERS}/u"), None).await);
    }
    assert_eq!(statuses[0].status, 204);
    let last = &statuses[2];
    assert_eq!(last.status, 429, "{}", last.body);
    assert_eq!(
        last.error(),
        "Too many requests in the last minute (count: 2, allowed: 2)."
    );
    // Built-in actions count against the namespace's invocations per minute too.
    s.admin(&["limits", "set", "guest", "--invocations-per-minute", "1"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let echo = "/api/v1/namespaces/whisk.system/actions/utils/echo?blocking=true";
    let statuses = [
        s.call("POST", echo, Some(json!({}))).await.status,
        s.call("POST", echo, Some(json!({}))).await.status,
    ];
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn the_system_catalog_is_shared_with_every_namespace() {
    let s = server();
    let r = s
        .call("GET", "/api/v1/namespaces/whisk.system/packages", None)
        .await;
    let names: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "alarms", "amqp", "mqtt", "nats", "postgres", "redis", "utils", "webhooks"
        ]
    );
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/whisk.system/packages/alarms",
            None,
        )
        .await;
    let feeds: Vec<&str> = r.body["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(feeds, ["alarm", "interval", "once"]);
    let invoke = |name: &str, params: Value| {
        let path = format!(
            "/api/v1/namespaces/whisk.system/actions/utils/{name}?blocking=true&result=true"
        );
        let s = &s;
        async move { s.call("POST", &path, Some(params)).await }
    };
    assert_eq!(invoke("echo", json!({"a": 1})).await.body, json!({"a": 1}));
    assert_eq!(
        invoke("sort", json!({"lines": ["b", "a"]})).await.body,
        json!({"lines": ["a", "b"], "length": 2})
    );
    assert_eq!(
        invoke("namespace", json!({})).await.body,
        json!({"namespace": "guest"})
    );
    // A built-in action's record is in its request's trace, or a new one without it.
    let record = s
        .call(
            "POST",
            "/api/v1/namespaces/whisk.system/actions/utils/echo?blocking=true",
            Some(json!({})),
        )
        .await
        .body;
    let trace = annotation(&record, "traceId").as_str().unwrap_or_default();
    assert!(
        trace.len() == 32
            && trace
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{record}"
    );
    let (user, key) = s.auth.split_once(':').unwrap();
    let record: Value = s
        .client
        .post(s.url("/api/v1/namespaces/whisk.system/actions/utils/echo?blocking=true"))
        .basic_auth(user, Some(key))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        annotation(&record, "traceId"),
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "{record}"
    );
    // Built-in actions as a sequence's steps, as OpenWhisk's examples chain them.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/lines",
            Some(json!({"exec": {"kind": "sequence", "components": ["/whisk.system/utils/split", "/whisk.system/utils/sort"]}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/lines?blocking=true&result=true",
            Some(json!({"payload": "c\nb\na"})),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"lines": ["a", "b", "c"], "length": 3}),
        "{}",
        r.body
    );
    // Its actions cannot be changed through the API.
    let r = s
        .call(
            "DELETE",
            "/api/v1/namespaces/whisk.system/actions/utils/echo",
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/mine",
            Some(json!({"exec": {"kind": "builtin", "code": "x"}})),
        )
        .await;
    assert_eq!(r.status, 400);
}

/// Creates trigger `name` fed by the alarm feed `feed` with `params`, and rule `name-r` to
/// action `echo`; returns the feed's activation.
async fn alarm(s: &Server, name: &str, feed: &str, params: Value) -> Value {
    let r = s
        .call(
            "PUT",
            &format!("{TRIGGERS}/{name}"),
            Some(
                json!({"annotations": [kv("feed", json!(format!("/whisk.system/alarms/{feed}")))]}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "PUT",
            &format!("{RULES}/{name}-r"),
            Some(json!({"trigger": name, "action": "echo"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    feed_call(s, feed, "CREATE", name, params).await
}

async fn feed_call(s: &Server, feed: &str, event: &str, trigger: &str, params: Value) -> Value {
    let mut body =
        json!({"lifecycleEvent": event, "triggerName": format!("/_/{trigger}"), "authKey": s.auth});
    for (k, v) in params.as_object().unwrap() {
        body[k] = v.clone();
    }
    let path = format!("/api/v1/namespaces/whisk.system/actions/alarms/{feed}?blocking=true");
    s.call("POST", &path, Some(body)).await.body
}

/// The ticks (ms) of trigger `name`'s fires so far: each fire's activation id carries its
/// tick as its UUIDv7 time.
async fn ticks(s: &Server, name: &str) -> Vec<u64> {
    let r = s
        .call(
            "GET",
            &format!("/api/v1/namespaces/_/activations?name={name}&limit=200"),
            None,
        )
        .await;
    let mut out: Vec<u64> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| u64::from_str_radix(&a["activationId"].as_str().unwrap()[..12], 16).unwrap())
        .collect();
    out.sort_unstable();
    out
}

async fn wait_for_ticks(s: &Server, name: &str, n: usize) -> Vec<u64> {
    for _ in 0..300 {
        let t = ticks(s, name).await;
        if t.len() >= n {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "trigger {name} fired fewer than {n} times: {:?}",
        ticks(s, name).await
    );
}

#[tokio::test]
async fn the_alarm_feed_fires_its_trigger_and_answers_the_feed_protocol() {
    let s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let created = alarm(
        &s,
        "tick",
        "alarm",
        json!({"cron": "* * * * * *", "trigger_payload": {"who": "Odin"}}),
    )
    .await;
    assert_eq!(created["response"]["success"], true, "{created}");
    assert_eq!(created["response"]["result"], json!({"status": "success"}));
    let ticks = wait_for_ticks(&s, "tick", 2).await;
    assert_eq!(ticks[1] - ticks[0], 1000);
    let read = feed_call(&s, "alarm", "READ", "tick", json!({})).await;
    let result = &read["response"]["result"];
    assert_eq!(result["config"]["cron"], "* * * * * *", "{read}");
    assert_eq!(result["config"]["payload"], json!({"who": "Odin"}));
    assert_eq!(result["status"]["active"], true);
    // The actions got the payload.
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?name=echo&limit=1&docs=true",
            None,
        )
        .await;
    assert_eq!(
        r.body[0]["response"]["result"]["params"]["who"], "Odin",
        "{}",
        r.body
    );

    // Bad parameters: the alarms package's texts, and nothing stored.
    for (feed, params, text) in [
        (
            "alarm",
            json!({"cron": "***"}),
            "cron pattern '***' is not valid",
        ),
        (
            "alarm",
            json!({"cron": "* * * * *", "timezone": "America/RTP"}),
            "Invalid timezone.",
        ),
        (
            "alarm",
            json!({}),
            "alarms trigger feed is missing the cron parameter",
        ),
        (
            "once",
            json!({"date": "tomorrow"}),
            "date parameter 'tomorrow' is not a valid Date",
        ),
        (
            "interval",
            json!({"minutes": "five"}),
            "the minutes parameter must be an integer",
        ),
    ] {
        let r = feed_call(&s, feed, "CREATE", "tick", params).await;
        assert_eq!(r["response"]["result"]["error"]["error"], text, "{r}");
    }
    let r = feed_call(
        &s,
        "alarm",
        "CREATE",
        "tick",
        json!({"cron": "* * * * *", "authKey": "x:y"}),
    )
    .await;
    assert_eq!(
        r["response"]["result"]["error"]["error"],
        "Trigger authentication request failed."
    );
    let r = feed_call(&s, "alarm", "UPDATE", "tick", json!({})).await;
    assert_eq!(
        r["response"]["result"]["error"]["error"],
        "no updatable parameters were specified"
    );
    let r = feed_call(&s, "alarm", "CHANGE", "tick", json!({})).await;
    assert_eq!(
        r["response"]["result"]["error"]["error"],
        "unsupported lifecycleEvent"
    );

    // PAUSE stops the ticks, DELETE removes the schedule.
    let r = feed_call(&s, "alarm", "PAUSE", "tick", json!({})).await;
    assert_eq!(r["response"]["success"], true, "{r}");
    let read = feed_call(&s, "alarm", "READ", "tick", json!({})).await;
    assert_eq!(read["response"]["result"]["status"]["active"], false);
    let r = feed_call(&s, "alarm", "DELETE", "tick", json!({})).await;
    assert_eq!(r["response"]["success"], true);
    let r = feed_call(&s, "alarm", "READ", "tick", json!({})).await;
    assert_eq!(
        r["response"]["result"]["error"]["error"],
        "could not find trigger /guest/tick in the database"
    );
}

#[tokio::test]
async fn a_timer_fires_every_tick_exactly_once_across_a_kill() {
    let s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let created = alarm(&s, "beat", "alarm", json!({"cron": "* * * * * *"})).await;
    assert_eq!(created["response"]["success"], true, "{created}");
    wait_for_ticks(&s, "beat", 2).await;
    let s = s.kill_and_restart_after(Duration::from_secs(4));
    // Down a while: the missed ticks fire after the restart, once each, marked past due.
    let before = ticks(&s, "beat").await;
    let want = before.len() + 8;
    let after = wait_for_ticks(&s, "beat", want).await;
    let distinct: BTreeSet<u64> = after.iter().copied().collect();
    assert_eq!(distinct.len(), after.len(), "a tick fired twice: {after:?}");
    for pair in after.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "a tick was missed: {after:?}");
    }
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?name=beat&limit=200&docs=true",
            None,
        )
        .await;
    let mut past_due = 0;
    for a in r.body.as_array().unwrap() {
        let id = a["activationId"].as_str().unwrap();
        let tick = u64::from_str_radix(&id[..12], 16).unwrap();
        let late = a["start"].as_u64().unwrap() - tick;
        let marked = a["response"]["result"]["pastDue"] == true;
        if late > 3000 {
            assert!(
                marked,
                "a tick fired {late} ms late is marked past due: {a}"
            );
        }
        past_due += usize::from(marked);
    }
    assert!(
        past_due >= 2,
        "the ticks missed while down fired after the restart: {}",
        r.body
    );
}

#[tokio::test]
async fn a_slow_rule_is_not_stacked_by_its_timer_its_skipped_fires_are_counted() {
    let s = server();
    s.create("slow", &function("slow"), json!({})).await;
    let r = s
        .call(
            "PUT",
            &format!("{TRIGGERS}/busy"),
            Some(json!({"annotations": [kv("feed", json!("/whisk.system/alarms/alarm"))]})),
        )
        .await;
    assert_eq!(r.status, 200);
    let rule = json!({"trigger": "busy", "action": "slow"});
    s.call("PUT", &format!("{RULES}/busy-r"), Some(rule)).await;
    let params = json!({"cron": "* * * * * *", "trigger_payload": {"ms": 2500}});
    let created = feed_call(&s, "alarm", "CREATE", "busy", params).await;
    assert_eq!(created["response"]["success"], true, "{created}");
    wait_for_ticks(&s, "busy", 6).await;
    feed_call(&s, "alarm", "DELETE", "busy", json!({})).await;
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?name=busy&limit=200&docs=true",
            None,
        )
        .await;
    let lines: Vec<Value> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| rule_log(a, 0))
        .collect();
    let ran = lines.iter().filter(|l| l["success"] == true).count();
    let skipped: Vec<&Value> = lines.iter().filter(|l| l["success"] == false).collect();
    assert!(ran >= 1 && !skipped.is_empty(), "{lines:?}");
    let error = skipped[0]["error"].as_str().unwrap();
    assert!(error.contains("is still running"), "{error}");
    assert!(error.contains("overlapping fires skipped"), "{error}");
    // At most one slow activation ran at a time.
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?name=slow&limit=200&docs=true",
            None,
        )
        .await;
    let mut spans: Vec<(u64, u64)> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["start"].as_u64().unwrap(), a["end"].as_u64().unwrap()))
        .collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "two runs of the slow rule overlapped: {spans:?}"
        );
    }
}

#[tokio::test]
async fn hostile_trigger_names_payloads_crons_and_time_zones_change_nothing() {
    let s = server();
    let long = "t".repeat(300);
    for name in ["..", "a%2Fb", "%20x", long.as_str()] {
        let r = s
            .call("PUT", &format!("{TRIGGERS}/{name}"), Some(json!({})))
            .await;
        assert!(
            r.status == 400 || r.status == 404,
            "{name}: {} {}",
            r.status,
            r.body
        );
    }
    s.call("PUT", &format!("{TRIGGERS}/t"), Some(json!({})))
        .await;
    let mut deep = json!(1);
    for _ in 0..110 {
        deep = json!({ "a": deep });
    }
    let r = s.call("POST", &format!("{TRIGGERS}/t"), Some(deep)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let big = json!({ "x": "y".repeat(1_100_000) });
    let r = s.call("POST", &format!("{TRIGGERS}/t"), Some(big)).await;
    assert_eq!(r.status, 413);
    for (params, text) in [
        (
            json!({"cron": "* * * * * * * * * *"}),
            "cron pattern '* * * * * * * * * *' is not valid",
        ),
        (
            json!({"cron": "99 99 99 99 99"}),
            "cron pattern '99 99 99 99 99' is not valid",
        ),
        (
            json!({"cron": "* * * * *\n* * * * *"}),
            "cron pattern '* * * * *\n* * * * *' is not valid",
        ),
        (
            json!({"cron": "* * * * *", "timezone": "../../../../etc/passwd"}),
            "Invalid timezone.",
        ),
        (
            json!({"cron": "* * * * *", "timezone": "Europe/Nowhere"}),
            "Invalid timezone.",
        ),
        (
            json!({"cron": ["* * * * *"]}),
            "cron pattern '[\"* * * * *\"]' is not valid",
        ),
    ] {
        let r = feed_call(&s, "alarm", "CREATE", "t", params).await;
        assert_eq!(r["response"]["result"]["error"]["error"], text, "{r}");
    }
    let r = feed_call(&s, "alarm", "READ", "t", json!({})).await;
    assert_eq!(
        r["response"]["result"]["error"]["error"],
        "could not find trigger /guest/t in the database"
    );
    // Another tenant's key cannot attach a schedule to this namespace's trigger.
    let other = s.admin(&["namespace", "create", "tenantc"]);
    let mut body = json!({"lifecycleEvent": "CREATE", "triggerName": "/guest/t", "authKey": other, "cron": "* * * * *"});
    let path = "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true";
    let r = s.call_as(&other, "POST", path, Some(body.clone())).await;
    assert_eq!(
        r.body["response"]["result"]["error"]["error"], "Trigger authentication request failed.",
        "{}",
        r.body
    );
    body["authKey"] = json!(s.auth);
    let r = s.call_as(&other, "POST", path, Some(body)).await;
    assert_eq!(
        r.body["response"]["result"]["error"]["error"], "Trigger authentication request failed.",
        "{}",
        r.body
    );
}

/// A tick claimed by a process that died mid-fire, after its rule's invocation was accepted
/// (journaled) but before the trigger's record: fired again, it does not make that
/// invocation again.
#[tokio::test]
async fn a_tick_fired_again_after_a_crash_does_not_run_an_accepted_rule_twice() {
    use gust_events::timers::{rule_activation_id, tick_activation_id};
    use gust_model::{Schedule, ScheduleSpec, Timing};

    let s = server();
    s.create("echo", &function("echo"), json!({})).await;
    s.call("PUT", &format!("{TRIGGERS}/crashy"), Some(json!({})))
        .await;
    let rule = json!({"trigger": "crashy", "action": "echo"});
    s.call("PUT", &format!("{RULES}/crashy-r"), Some(rule))
        .await;
    let store = crate::open_store(&s).await;
    let tick = gust_model::time::now_ms() - 10_000;
    // What the dead process's fire left: the rule's invocation in the journal (accepted, not
    // run yet), no trigger record, and the tick pending under a lease that ran out.
    let accepted = rule_activation_id("guest", "crashy", "crashy-r", tick);
    store
        .put_pending(gust_store::PendingInvocation {
            activation_id: accepted.clone(),
            accepted_at: tick,
            message: b"{}".to_vec(),
        })
        .await
        .unwrap();
    let schedule = Schedule {
        namespace: "guest".into(),
        trigger: "crashy".into(),
        spec: ScheduleSpec {
            timing: Timing::Once {
                at_ms: tick,
                delete_after_fire: Default::default(),
            },
            payload: Default::default(),
            start_ms: None,
            stop_ms: None,
            feed: "/whisk.system/alarms/once".into(),
            config: Default::default(),
            paused: false,
            changed_ms: tick,
        },
        next_ms: Some(tick),
        pending_ms: None,
        owner: None,
        lease_ms: 0,
        fired: 0,
    };
    store.put_schedule(&schedule).await.unwrap();
    let claim = gust_store::TickClaim {
        namespace: "guest",
        trigger: "crashy",
        tick_ms: tick,
        next_ms: None,
        owner: "dead",
        now_ms: tick,
        lease_ms: tick,
    };
    // The server's own timers may claim it first (then they fire it once: fine too).
    let claimed = store.claim_tick(&claim).await.unwrap();
    let trigger = s
        .wait_for_record(&tick_activation_id("guest", "crashy", tick))
        .await;
    let line = rule_log(&trigger, 0);
    assert_eq!(line["success"], true, "{line}");
    assert_eq!(line["activationId"], json!(accepted));
    if !claimed {
        eprintln!("the server claimed the tick before the test could: fired once, as it should");
        return;
    }
    // Not made again: it stays the journal's (nothing ran it, so it has no record).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = s
        .call(
            "GET",
            &format!("/api/v1/namespaces/_/activations/{accepted}"),
            None,
        )
        .await;
    assert_eq!(
        r.status, 404,
        "the accepted invocation was made again: {}",
        r.body
    );
}

#[tokio::test]
async fn past_the_catch_up_limit_only_the_latest_missed_ticks_fire() {
    let s = Server::start_with(env!("CARGO_BIN_EXE_gust"), &["--timer-catch-up", "2"]);
    s.create("echo", &function("echo"), json!({})).await;
    let created = alarm(&s, "lag", "alarm", json!({"cron": "* * * * * *"})).await;
    assert_eq!(created["response"]["success"], true, "{created}");
    wait_for_ticks(&s, "lag", 2).await;
    let s = s.kill_and_restart_after(Duration::from_secs(7));
    let before = ticks(&s, "lag").await;
    let after = wait_for_ticks(&s, "lag", before.len() + 4).await;
    let gaps: Vec<&[u64]> = after.windows(2).filter(|w| w[1] - w[0] > 1000).collect();
    assert_eq!(gaps.len(), 1, "one run of ticks was skipped: {after:?}");
    let first_after_gap = gaps[0][1];
    let r = s
        .call(
            "GET",
            "/api/v1/namespaces/_/activations?name=lag&limit=200&docs=true",
            None,
        )
        .await;
    let record = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            let id = a["activationId"].as_str().unwrap();
            u64::from_str_radix(&id[..12], 16).unwrap() == first_after_gap
        })
        .unwrap();
    let result = &record["response"]["result"];
    assert!(result["skippedSince"].is_string(), "{record}");
    assert!(
        gaps[0][1] - gaps[0][0] > 3000,
        "more than the limit was skipped: {after:?}"
    );
    // No tick fired twice.
    let distinct: BTreeSet<u64> = after.iter().copied().collect();
    assert_eq!(distinct.len(), after.len());
}
