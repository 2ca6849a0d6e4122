#![allow(clippy::unwrap_used)]
//! Cluster tests: real `gust controller` and `gust invoker` processes on loopback, sharing a
//! PostgreSQL schema and a NATS cluster name of their own. They run when
//! `GUST_TEST_POSTGRES_URL` and `GUST_TEST_NATS_URL` are set and say they skipped otherwise.
//!
//! After each disturbance (an invoker or a controller killed with SIGKILL mid-load, an
//! invoker added mid-load) every activation id a client was given has exactly one record,
//! and the invocation stream ends empty: nothing accepted is lost or left behind.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use gust_testkit::Cluster;
use serde_json::{Value, json};

/// The cluster tests run one at a time: each runs five processes on a 2-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Actions the load spreads over: enough that every invoker is home to some.
const ACTIONS: usize = 12;

async fn cluster() -> Option<(tokio::sync::MutexGuard<'static, ()>, Cluster)> {
    let (Some(pg), Some(nats)) = (gust_testkit::postgres_url(), gust_testkit::nats_url()) else {
        eprintln!("skipped: the cluster tests need GUST_TEST_POSTGRES_URL and GUST_TEST_NATS_URL");
        return None;
    };
    let guard = ONE_AT_A_TIME.lock().await;
    Some((guard, Cluster::new(env!("CARGO_BIN_EXE_gust"), &pg, &nats)))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap()
}

fn basic(auth: &str) -> (String, String) {
    let (u, k) = auth.split_once(':').unwrap();
    (u.to_string(), k.to_string())
}

/// Creates actions `slow0`..`slowN` (each sleeps for its `ms` parameter) through `apihost`.
async fn create_actions(c: &Cluster, apihost: &str) {
    let code = base64::engine::general_purpose::STANDARD.encode(gust_testkit::function("slow"));
    let (u, k) = basic(&c.auth);
    let http = client();
    for i in 0..ACTIONS {
        let r = http
            .put(format!("{apihost}/api/v1/namespaces/_/actions/slow{i}"))
            .basic_auth(&u, Some(&k))
            .json(&json!({ "exec": { "kind": "wasm", "code": code, "binary": true } }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

/// Starts `invokers`, then controllers `ctl1` and `ctl2`, and creates the actions.
async fn start(c: &mut Cluster, invokers: &[&str]) {
    for id in invokers {
        c.add_invoker(id);
    }
    c.add_controller("ctl1");
    c.add_controller("ctl2");
    create_actions(c, &c.apihosts()[0]).await;
}

/// What the clients of a load saw.
#[derive(Debug, Default)]
struct Seen {
    /// Every activation id a client was given.
    ids: HashSet<String>,
    /// Blocking calls answered with a successful record.
    completed: usize,
    /// Calls that got no id (a controller gone, a refusal).
    refused: usize,
}

/// Runs `clients` loops invoking the actions through every controller in turn (half of the
/// calls blocking) until `stop` is set.
fn start_load(
    c: &Cluster,
    clients: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Seen> {
    let hosts = c.apihosts();
    let (u, k) = basic(&c.auth);
    tokio::spawn(async move {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut tasks = Vec::new();
        for n in 0..clients {
            let (hosts, u, k, stop, seen) = (
                hosts.clone(),
                u.clone(),
                k.clone(),
                stop.clone(),
                seen.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let http = client();
                let mut i = n;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    i += clients;
                    let host = &hosts[i % hosts.len()];
                    let blocking = i % 2 == 0;
                    let r = http
                        .post(format!(
                            "{host}/api/v1/namespaces/_/actions/slow{}?blocking={blocking}",
                            i % ACTIONS
                        ))
                        .basic_auth(&u, Some(&k))
                        .json(&json!({ "ms": 20 }))
                        .send()
                        .await;
                    let Ok(r) = r else {
                        // A controller killed: connection refused or reset, no id given.
                        seen.lock().unwrap().refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let status = r.status().as_u16();
                    let Ok(body) = r.json::<Value>().await else {
                        seen.lock().unwrap().refused += 1;
                        continue;
                    };
                    let mut seen = seen.lock().unwrap();
                    match (status, body["activationId"].as_str()) {
                        (200 | 202, Some(id)) => {
                            if status == 200 {
                                assert_eq!(body["response"]["status"], "success", "{body}");
                                seen.completed += 1;
                            }
                            seen.ids.insert(id.to_string());
                        }
                        (502, Some(id)) => panic!("activation {id} failed: {body}"),
                        _ => seen.refused += 1,
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
    })
}

/// Waits until every id has its record (readable through every live controller) and the
/// invocation stream is empty; then checks that the store holds one record per id at most.
async fn assert_all_recorded(c: &Cluster, seen: &Seen) {
    assert!(!seen.ids.is_empty(), "the load got no invocation through");
    let (u, k) = basic(&c.auth);
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(120);
    for host in c.apihosts() {
        for id in &seen.ids {
            loop {
                let r = http
                    .get(format!("{host}/api/v1/namespaces/_/activations/{id}"))
                    .basic_auth(&u, Some(&k))
                    .send()
                    .await
                    .unwrap();
                if r.status() == 200 {
                    let record: Value = r.json().await.unwrap();
                    assert_eq!(record["response"]["status"], "success", "{record}");
                    break;
                }
                assert_eq!(r.status(), 404);
                assert!(Instant::now() < deadline, "activation {id} has no record");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    loop {
        let (_, left) = c.queue_state("none");
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} invocation(s) left in the stream"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The primary key keeps records unique; every record is one a client could have asked
    // for (none appears out of nowhere).
    let records = c.count("SELECT count(*) FROM activations") as usize;
    assert!(records >= seen.ids.len());
    assert!(
        records <= seen.ids.len() + seen.refused,
        "{records} records for {} ids and {} refused calls",
        seen.ids.len(),
        seen.refused
    );
}

async fn run_load_around(c: &mut Cluster, disturb: impl FnOnce(&mut Cluster)) -> Seen {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = start_load(c, 8, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    disturb(c);
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = load.await.unwrap();
    eprintln!(
        "load: {} ids, {} blocking results, {} refused",
        seen.ids.len(),
        seen.completed,
        seen.refused
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_share_three_invokers_and_an_invoker_killed_mid_load_loses_nothing() {
    let Some((_guard, mut c)) = cluster().await else {
        return;
    };
    start(&mut c, &["inv1", "inv2", "inv3"]).await;
    let seen = run_load_around(&mut c, |c| {
        // The busiest invoker dies with work in hand.
        let victim = ["inv1", "inv2", "inv3"]
            .into_iter()
            .max_by_key(|id| c.queue_state(id).0)
            .unwrap();
        assert!(c.queue_state(victim).0 > 0);
        eprintln!("killing {victim}");
        c.kill(victim);
    })
    .await;
    assert!(seen.completed > 0);
    assert_all_recorded(&c, &seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoker_stopped_mid_load_finishes_or_hands_back_its_work() {
    let Some((_guard, mut c)) = cluster().await else {
        return;
    };
    start(&mut c, &["inv1", "inv2"]).await;
    let seen = run_load_around(&mut c, |c| {
        let busiest = ["inv1", "inv2"]
            .into_iter()
            .max_by_key(|id| c.queue_state(id).0)
            .unwrap();
        eprintln!("stopping {busiest}");
        assert!(c.terminate(busiest), "{busiest} stops cleanly on SIGTERM");
    })
    .await;
    assert_all_recorded(&c, &seen).await;
    assert_eq!(c.count("SELECT count(*) FROM pending"), 0);
    // Nothing ran out of deliveries on the way (handed-back work is not a failure).
    assert_eq!(
        c.count("SELECT count(*) FROM activations WHERE doc LIKE '%without finishing%'"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_load_loses_no_accepted_invocation() {
    let Some((_guard, mut c)) = cluster().await else {
        return;
    };
    start(&mut c, &["inv1", "inv2", "inv3"]).await;
    let seen = run_load_around(&mut c, |c| c.kill("ctl1")).await;
    assert!(seen.refused > 0, "calls to the dead controller failed");
    assert_all_recorded(&c, &seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoker_added_mid_load_takes_work_at_once() {
    let Some((_guard, mut c)) = cluster().await else {
        return;
    };
    start(&mut c, &["inv1", "inv2"]).await;
    let seen = run_load_around(&mut c, |c| {
        c.add_invoker("inv3");
    })
    .await;
    let (delivered, _) = c.queue_state("inv3");
    assert!(delivered > 0, "the new invoker took no work");
    assert_all_recorded(&c, &seen).await;
    // Nothing is left in flight, so nothing holds a concurrency slot.
    assert_eq!(c.count("SELECT count(*) FROM pending"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_across_two_controllers() {
    let Some((_guard, mut c)) = cluster().await else {
        return;
    };
    c.add_invoker("inv1");
    c.add_controller("ctl1");
    c.add_controller("ctl2");
    create_actions(&c, &c.apihosts()[0]).await;
    let hosts = c.apihosts();
    let (u, k) = basic(&c.auth);
    let http = client();
    let invoke = |i: usize, ms: u64| {
        let (http, host, u, k) = (http.clone(), hosts[i % 2].clone(), u.clone(), k.clone());
        async move {
            let r = http
                .post(format!("{host}/api/v1/namespaces/_/actions/slow0"))
                .basic_auth(&u, Some(&k))
                .json(&json!({ "ms": ms }))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    // Concurrency: 4 in flight at most, counted over both controllers.
    c.admin(&["limits", "set", "guest", "--concurrent-invocations", "4"]);
    tokio::time::sleep(Duration::from_millis(1200)).await; // the identity cache
    let mut statuses = Vec::new();
    for i in 0..10 {
        statuses.push(invoke(i, 3000).await);
    }
    let accepted = statuses.iter().filter(|(s, _)| *s == 202).count();
    assert_eq!(accepted, 4, "{statuses:?}");
    let (_, refusal) = statuses.iter().find(|(s, _)| *s == 429).unwrap();
    assert_eq!(
        refusal["error"],
        "Too many concurrent requests in flight (count: 4, allowed: 4)."
    );
    // Once they finish, their slots are free again, whichever controller took them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.count("SELECT count(*) FROM activations") < 4 {
        assert!(
            Instant::now() < deadline,
            "the slow invocations never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(invoke(1, 1).await.0, 202);

    // Invocations per minute, counted over both controllers: 3 more than this minute has.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let minute = (gust_model::time::now_ms() / 60_000) as i64;
    let before = c.count(&format!(
        "SELECT CASE WHEN minute = {minute} THEN in_minute ELSE 0 END
         FROM invocations_admitted WHERE namespace = 'guest'"
    ));
    let allowed = (before + 3).to_string();
    c.admin(&[
        "limits",
        "set",
        "guest",
        "--concurrent-invocations",
        "100",
        "--invocations-per-minute",
        &allowed,
    ]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(invoke(i, 1).await.0);
    }
    if (gust_model::time::now_ms() / 60_000) as i64 == minute {
        assert_eq!(statuses, [202, 202, 202, 429, 429, 429]);
    } else {
        eprintln!("a new minute began during the per-minute check: not asserted");
    }
}

/// Sends `method path body` to `apihost` as the cluster's guest.
async fn call(c: &Cluster, apihost: &str, method: &str, path: &str, body: Value) -> Value {
    let (u, k) = basic(&c.auth);
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r = client()
        .request(method, format!("{apihost}{path}"))
        .basic_auth(&u, Some(&k))
        .json(&body)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap_or(Value::Null)
}

/// The ticks of trigger `name`'s fires: each fire's activation id carries its tick.
async fn ticks(c: &Cluster, apihost: &str, name: &str) -> Vec<u64> {
    let path = format!("/api/v1/namespaces/_/activations?name={name}&limit=200");
    let list = call(c, apihost, "GET", &path, Value::Null).await;
    let mut out: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| u64::from_str_radix(&a["activationId"].as_str().unwrap()[..12], 16).unwrap())
        .collect();
    out.sort_unstable();
    out
}

#[tokio::test]
async fn a_schedule_fires_once_per_tick_when_its_owning_controller_dies() {
    let Some((_guard, mut c)) = cluster().await else {
        return;
    };
    start(&mut c, &["inv1"]).await;
    let hosts = c.apihosts();
    let (a, b) = (hosts[0].clone(), hosts[1].clone());
    call(
        &c,
        &a,
        "PUT",
        "/api/v1/namespaces/_/triggers/beat",
        json!({}),
    )
    .await;
    let rule = json!({"trigger": "beat", "action": "slow0"});
    call(&c, &a, "PUT", "/api/v1/namespaces/_/rules/beat-r", rule).await;
    let feed = json!({
        "lifecycleEvent": "CREATE", "triggerName": "/_/beat", "authKey": c.auth,
        "cron": "* * * * * *", "trigger_payload": {"ms": 1},
    });
    let path = "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true";
    let r = call(&c, &a, "POST", path, feed).await;
    assert_eq!(r["response"]["success"], true, "{r}");
    // Let it fire, kill both controllers' timers one at a time: the one that owns the
    // schedule goes first (whichever it is, the other takes over within the lease).
    tokio::time::sleep(Duration::from_secs(4)).await;
    c.kill("ctl1");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let seen = ticks(&c, &b, "beat").await;
    assert!(
        seen.len() >= 10,
        "fires went on after a controller died: {seen:?}"
    );
    let distinct: HashSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "a tick fired twice: {seen:?}");
    for pair in seen.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "a tick was missed: {seen:?}");
    }
}

/// The `data.n` of every record of action `name` (each record once), sorted.
async fn numbers(c: &Cluster, apihost: &str, name: &str) -> Vec<u64> {
    let path = format!("/api/v1/namespaces/_/activations?name={name}&docs=true&limit=200");
    let list = call(c, apihost, "GET", &path, Value::Null).await;
    let mut out: Vec<u64> = list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["response"]["result"]["params"]["data"]["n"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// Publishes `{"n": n}` for each of `ns` to JetStream subject `subject`, each acknowledged
/// by the stream.
async fn js_publish(url: &str, subject: &str, ns: std::ops::Range<u64>) {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    for n in ns {
        js.publish(subject.to_string(), json!({ "n": n }).to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_subscription_runs_in_one_controller_and_moves_when_it_dies() {
    let Some((_guard, mut c)) = cluster().await else {
        return;
    };
    start(&mut c, &["inv1"]).await;
    let hosts = c.apihosts();
    let nats = gust_testkit::nats_url().unwrap();
    let stream = format!("SRC{}", uuid::Uuid::new_v4().simple());
    let subject = format!("{}.in", stream.to_lowercase());
    let js = async_nats::jetstream::new(async_nats::connect(&nats).await.unwrap());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    let a = hosts[0].clone();
    let code = base64::engine::general_purpose::STANDARD.encode(gust_testkit::function("echo"));
    let echo = json!({ "exec": { "kind": "wasm", "code": code, "binary": true } });
    call(&c, &a, "PUT", "/api/v1/namespaces/_/actions/echo", echo).await;
    call(&c, &a, "PUT", "/api/v1/namespaces/_/triggers/js", json!({})).await;
    let rule = json!({"trigger": "js", "action": "echo"});
    call(&c, &a, "PUT", "/api/v1/namespaces/_/rules/js-r", rule).await;
    let feed = json!({
        "lifecycleEvent": "CREATE", "triggerName": "/_/js", "authKey": c.auth,
        "url": nats, "stream": stream, "consumer": "gust",
    });
    let path = "/api/v1/namespaces/whisk.system/actions/nats/jetstream?blocking=true";
    let r = call(&c, &a, "POST", path, feed).await;
    assert_eq!(r["response"]["success"], true, "{r}");
    js_publish(&nats, &subject, 0..5).await;
    let mut seen = Vec::new();
    for _ in 0..300 {
        seen = numbers(&c, &a, "echo").await;
        if seen.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    // One owner; kill it: the other controller takes the subscription over.
    let owned = |c: &Cluster, id: &str| {
        c.count(&format!(
            "SELECT COUNT(*) FROM subscriptions WHERE owner LIKE '{id}-%'"
        ))
    };
    let owner = if owned(&c, "ctl1") == 1 {
        "ctl1"
    } else {
        "ctl2"
    };
    let other = if owner == "ctl1" {
        &hosts[1]
    } else {
        &hosts[0]
    };
    assert_eq!(
        owned(&c, "ctl1") + owned(&c, "ctl2"),
        1,
        "exactly one controller runs it"
    );
    c.kill(owner);
    js_publish(&nats, &subject, 5..10).await;
    for _ in 0..300 {
        seen = numbers(&c, other, "echo").await;
        if seen.len() >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        numbers(&c, other, "echo").await,
        (0..10).collect::<Vec<u64>>(),
        "every message ran once after the move"
    );
    js.delete_stream(&stream).await.unwrap();
}

/// The execution `id` as `apihost` reads it, once it stopped running (or after 90 s).
async fn finished_execution(c: &Cluster, apihost: &str, id: &str) -> Value {
    let path = format!("/api/v1/namespaces/_/executions/{id}");
    for _ in 0..900 {
        let e = call(c, apihost, "GET", &path, Value::Null).await;
        if e["status"] != "RUNNING" {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {id} did not finish");
}

#[tokio::test]
async fn a_workflow_run_moves_to_another_controller_when_its_own_dies() {
    let Some((_guard, mut c)) = cluster().await else {
        return;
    };
    start(&mut c, &["inv1"]).await;
    let hosts = c.apihosts();
    let (a, b) = (hosts[0].clone(), hosts[1].clone());
    let definition = json!({"StartAt": "First", "States": {
        "First": {"Type": "Task", "Resource": "slow0", "Parameters": {"ms": 1}, "ResultPath": "$.first", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 3, "Next": "Ask"},
        "Ask": {"Type": "Task", "Resource": "slow1.waitForTaskToken", "Parameters": {"token.$": "$$.Task.Token", "ms": 1}, "ResultPath": "$.answer", "Next": "Last"},
        "Last": {"Type": "Task", "Resource": "slow2", "Parameters": {"ms": 1}, "ResultPath": "$.last", "End": true}
    }});
    let r = call(
        &c,
        &a,
        "PUT",
        "/api/v1/namespaces/_/workflows/moving",
        json!({"definition": definition}),
    )
    .await;
    assert_eq!(r["name"], "moving", "{r}");
    // Started through ctl1, which owns the run; ctl1 dies while the run waits.
    let started = call(
        &c,
        &a,
        "POST",
        "/api/v1/namespaces/_/workflows/moving/executions",
        json!({"input": {}}),
    )
    .await;
    let id = started["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.kill("ctl1");
    // ctl2 takes the run over once ctl1's lease runs out and reaches the callback.
    let history = format!("/api/v1/namespaces/_/executions/{id}/history?limit=1000");
    let mut token = None;
    for _ in 0..300 {
        let h = call(&c, &b, "GET", &history, Value::Null).await;
        token = h["events"].as_array().into_iter().flatten().find_map(|e| {
            let p: Value = serde_json::from_str(e["details"]["parameters"].as_str()?).ok()?;
            p["token"].as_str().map(str::to_string)
        });
        if token.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = token.expect("the callback step was reached on ctl2");
    let r = call(
        &c,
        &b,
        "POST",
        "/api/v1/namespaces/_/tasks/success",
        json!({"token": token, "output": "yes"}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    let e = finished_execution(&c, &b, &id).await;
    assert_eq!(e["status"], "SUCCEEDED", "{e}");
    assert_eq!(e["output"]["answer"], "yes");
    // Each step has one record, whichever controller ran it.
    let h = call(&c, &b, "GET", &history, Value::Null).await;
    let ids: Vec<String> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "TaskScheduled")
        .map(|e| e["details"]["activationId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "each task scheduled once: {h}");
    for id in &ids {
        let path = format!("/api/v1/namespaces/_/activations/{id}");
        let mut rec = Value::Null;
        for _ in 0..100 {
            rec = call(&c, &b, "GET", &path, Value::Null).await;
            if rec["activationId"] == json!(id) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(rec["activationId"], json!(id), "no record for step {id}");
    }
}

/// Creates action `name` from test function `function` through `apihost`.
async fn create_action(c: &Cluster, apihost: &str, name: &str, function: &str) {
    let code = base64::engine::general_purpose::STANDARD.encode(gust_testkit::function(function));
    let r = call(
        c,
        apihost,
        "PUT",
        &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
        json!({ "exec": { "kind": "wasm", "code": code, "binary": true } }),
    )
    .await;
    assert_eq!(r["name"], name, "{r}");
}

/// The records of action `name`, with their documents, read through `apihost`.
async fn records_of(c: &Cluster, apihost: &str, name: &str) -> Vec<Value> {
    let path = format!("/api/v1/namespaces/_/activations?name={name}&docs=true&limit=200");
    call(c, apihost, "GET", &path, Value::Null)
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn async_delivery_goes_on_when_a_controller_dies_and_publishes_to_a_subject() {
    let Some((_guard, mut c)) = cluster().await else {
        return;
    };
    c.add_invoker("inv1");
    let scale = ["--delivery-retry-scale", "0.01"];
    c.add_controller_with("ctl1", &scale);
    c.add_controller_with("ctl2", &scale);
    let (a, b) = (c.apihosts()[0].clone(), c.apihosts()[1].clone());
    create_action(&c, &a, "fail", "apperror").await;
    create_action(&c, &a, "sink", "echo").await;
    create_action(&c, &a, "ok", "reply").await;
    let r = call(
        &c,
        &a,
        "PUT",
        "/api/v1/namespaces/_/actions/fail/delivery",
        json!({"maximumRetryAttempts": 2, "onFailure": "action:sink"}),
    )
    .await;
    assert_eq!(r["maximumRetryAttempts"], 2, "{r}");

    // Accepted by ctl1, which dies before the retries: ctl2 takes the delivery over.
    let accepted = call(
        &c,
        &a,
        "POST",
        "/api/v1/namespaces/_/actions/fail",
        json!({"order": 7}),
    )
    .await;
    let id = accepted["activationId"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.kill("ctl1");
    let mut sunk = Vec::new();
    for _ in 0..600 {
        sunk = records_of(&c, &b, "sink").await;
        if !sunk.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = &sunk.first().expect("the failure reached sink")["response"]["result"]["params"];
    assert_eq!(
        record["requestContext"]["requestId"],
        id.as_str(),
        "{record}"
    );
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(record["requestPayload"], json!({"order": 7}));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        records_of(&c, &b, "fail").await.len(),
        3,
        "each attempt ran once"
    );
    assert_eq!(records_of(&c, &b, "sink").await.len(), 1, "delivered once");

    // With a NATS bus, a success's record can go to a subject: under the namespace's own
    // subtree, `<cluster>.destinations.<namespace>.<subject>`.
    let url = gust_testkit::nats_url().unwrap();
    let subject = format!("gust-test.delivery.{}", &id[..12]);
    let nats = async_nats::connect(url.as_str()).await.unwrap();
    let mut sub = nats
        .subscribe(format!("*.destinations.guest.{subject}"))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let r = call(
        &c,
        &b,
        "PUT",
        "/api/v1/namespaces/_/actions/ok/delivery",
        json!({"onSuccess": format!("subject:{subject}")}),
    )
    .await;
    assert_eq!(r["onSuccess"], format!("subject:{subject}"), "{r}");
    let accepted = call(
        &c,
        &b,
        "POST",
        "/api/v1/namespaces/_/actions/ok",
        json!({"reply": {"done": true}}),
    )
    .await;
    let ok_id = accepted["activationId"].as_str().unwrap().to_string();
    let message = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::StreamExt::next(&mut sub),
    )
    .await
    .expect("a message on the subject")
    .unwrap();
    assert!(
        message
            .subject
            .ends_with(&format!(".destinations.guest.{subject}")),
        "{}",
        message.subject
    );
    // With a message id: a JetStream stream over the subject stores it once.
    let msg_id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id"));
    assert!(msg_id.is_some(), "{:?}", message.headers);
    let published: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(
        published["requestContext"]["requestId"],
        ok_id.as_str(),
        "{published}"
    );
    assert_eq!(published["requestContext"]["condition"], "Success");
    assert_eq!(published["responsePayload"], json!({"done": true}));
}
