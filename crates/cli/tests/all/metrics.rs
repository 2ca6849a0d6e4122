//! Metrics (decision 0026): the text parses as Prometheus text (`promtool check metrics` is
//! the judge where it is installed: `.ci/run` installs it, a machine without it skips that
//! check only, saying so on stderr), counters and histograms move by exactly the invocations
//! made, a namespace reads only its own series, the metrics listener serves `/metrics` and
//! nothing else, and a throttled invoke is counted.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use gust_testkit::{Server, function};
use serde_json::json;

const METRICS_ADDR: [&str; 2] = ["--metrics-addr", "127.0.0.1:0"];

fn server_with_metrics() -> Server {
    Server::start_with(env!("CARGO_BIN_EXE_gust"), &METRICS_ADDR)
}

/// The metrics listener's URL, as the server printed it before its API host.
fn metrics_url(s: &Server) -> String {
    s.output()
        .lines()
        .find_map(|l| l.strip_prefix("gust: metrics on "))
        .expect("the server prints its metrics URL")
        .trim()
        .to_string()
}

/// `GET /api/v1/namespaces/{ns}/metrics` with `auth` (a key `uuid:key`, `Bearer <token>`,
/// or nothing when empty): status and text.
async fn namespace_metrics(s: &Server, auth: &str, ns: &str) -> (u16, String) {
    let path = format!("/api/v1/namespaces/{ns}/metrics");
    let r = if let Some(token) = auth.strip_prefix("Bearer ") {
        let value = format!("Bearer {token}");
        s.web(
            "GET",
            &path,
            &[("authorization", value.as_str())],
            Vec::new(),
        )
        .await
    } else {
        s.call_as(auth, "GET", &path, None).await
    };
    (r.status, String::from_utf8_lossy(&r.bytes).into_owned())
}

/// Fails unless `promtool check metrics` accepts `text` (parse and lint); without promtool
/// on the PATH, says on stderr that `test`'s check was skipped (the rest of the test runs).
fn promtool_accepts(test: &str, text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "SKIPPED {test}: promtool not installed (Debian package `prometheus`; .ci/run installs it)"
            );
            return;
        }
        Err(e) => panic!("promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool refused the metrics:\n{}{}\n--- text ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sample: its metric's name, its labels (unescaped) and its value.
type Sample<'a> = (&'a str, Vec<(String, String)>, f64);

/// The sample of a line `name{k="v",...} value`.
fn sample(line: &str) -> Option<Sample<'_>> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, labels)) = series.split_once('{') else {
        return Some((series, Vec::new(), value));
    };
    let mut out = Vec::new();
    let mut rest = labels.strip_suffix('}')?;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut v = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => v.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => v.push(c),
            }
        };
        out.push((key.trim_start_matches(',').to_string(), v));
        rest = &after[end + 1..];
    }
    Some((name, out, value))
}

/// The sum of the samples of `name` that carry every label of `labels`.
fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(sample)
        .filter(|(n, ls, _)| {
            *n == name
                && labels
                    .iter()
                    .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// The caller's metrics once `ready` holds for them (the invoker counts a record just after
/// writing it, so a reader of the record may be a moment ahead, and a namespace reads a
/// snapshot up to a second old), or after 10 s as they are.
async fn metrics_when(s: &Server, ready: impl Fn(&str) -> bool) -> String {
    metrics_of_when(s, &s.auth, "_", ready).await
}

/// [`metrics_when`] for `ns`'s metrics read with `auth`.
async fn metrics_of_when(s: &Server, auth: &str, ns: &str, ready: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        let (status, t) = namespace_metrics(s, auth, ns).await;
        assert_eq!(status, 200, "{t}");
        text = t;
        if ready(&text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    text
}

#[tokio::test]
async fn invocations_are_counted_once_each_and_the_text_parses() {
    let s = server_with_metrics();
    s.create("echo", &function("echo"), json!({})).await;
    s.create("apperror", &function("apperror"), json!({})).await;
    for i in 0..2 {
        let r = s.invoke("echo", json!({ "i": i })).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/echo",
            Some(json!({"i": 2})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    s.wait_for_record(r.body["activationId"].as_str().unwrap())
        .await;
    let r = s.invoke("apperror", json!({})).await;
    assert_eq!(r.status, 502, "{}", r.body);

    let guest = [("namespace", "guest")];
    let text = metrics_when(&s, |t| sum(t, "gust_invocations_total", &guest) >= 4.0).await;
    const TEST: &str = "invocations_are_counted_once_each_and_the_text_parses";
    promtool_accepts(TEST, &text);
    let echo = [("namespace", "guest"), ("action", "echo"), ("kind", "wasm")];
    let count = |labels: &[(&str, &str)]| sum(&text, "gust_invocations_total", labels);
    assert_eq!(
        count(&[echo.as_slice(), &[("outcome", "success")]].concat()),
        3.0,
        "{text}"
    );
    assert_eq!(count(&echo), 3.0, "{text}");
    assert_eq!(
        count(&[
            ("action", "apperror"),
            ("kind", "wasm"),
            ("outcome", "application_error")
        ]),
        1.0,
        "{text}"
    );
    assert_eq!(count(&guest), 4.0, "{text}");
    let wasm = [("namespace", "guest"), ("kind", "wasm")];
    for histogram in ["wait", "run", "total"] {
        let name = format!("gust_activation_{histogram}_seconds_count");
        assert_eq!(sum(&text, &name, &wasm), 4.0, "{name}: {text}");
        // Every observation is in the +Inf bucket.
        let inf = [wasm.as_slice(), &[("le", "+Inf")]].concat();
        let bucket = format!("gust_activation_{histogram}_seconds_bucket");
        assert_eq!(sum(&text, &bucket, &inf), 4.0, "{bucket}: {text}");
    }
    // Each run found its compiled code: in memory (warm) or not yet (cold, at most once per
    // action's code in a fresh process).
    let cold = sum(&text, "gust_starts_total", &[("start", "cold")]);
    let warm = sum(&text, "gust_starts_total", &[("start", "warm")]);
    assert_eq!(cold + warm, 4.0, "{text}");
    assert!(cold <= 2.0, "{text}");
    // The store write of every record was timed, labelled with the store the suite runs on.
    let backend = match gust_testkit::store_under_test() {
        gust_testkit::StoreUnderTest::Postgres(_) => "postgres",
        gust_testkit::StoreUnderTest::Sqlite => "sqlite",
    };
    let puts = [("op", "put_activation"), ("backend", backend)];
    let all = reqwest::get(metrics_url(&s)).await.unwrap();
    assert_eq!(all.status(), 200);
    assert_eq!(
        all.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let all = all.text().await.unwrap();
    promtool_accepts(TEST, &all);
    assert_eq!(
        sum(&all, "gust_store_operation_seconds_count", &puts),
        4.0,
        "{all}"
    );
    assert!(sum(&all, "gust_http_responses_total", &[("class", "2xx")]) >= 6.0);
    // Nothing runs once the non-blocking run's handler has published its completion (it may
    // still be at it when its count shows): the probes read the invoker's gauges at the
    // scrape.
    let mut all = all;
    for _ in 0..100 {
        if sum(&all, "gust_invocations_in_flight", &[]) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        all = reqwest::get(metrics_url(&s))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    assert!(
        all.contains("# TYPE gust_invocations_in_flight gauge"),
        "{all}"
    );
    assert_eq!(sum(&all, "gust_invocations_in_flight", &[]), 0.0, "{all}");
    let wasm_busy = [("runtime", "wasm"), ("state", "busy")];
    assert!(
        all.lines()
            .filter_map(sample)
            .any(|(n, ls, v)| n == "gust_instances"
                && v == 0.0
                && wasm_busy
                    .iter()
                    .all(|(k, v)| ls.contains(&(k.to_string(), v.to_string())))),
        "{all}"
    );
}

#[test]
fn every_process_role_takes_the_metrics_flag() {
    for role in ["serve", "controller", "invoker"] {
        let out = Command::new(env!("CARGO_BIN_EXE_gust"))
            .args([role, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--metrics-addr <ADDR>"), "{role}: {help}");
        assert!(help.contains("GUST_METRICS_ADDR"), "{role}: {help}");
    }
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_only_and_without_a_key() {
    let s = server_with_metrics();
    let url = metrics_url(&s);
    let base = url.strip_suffix("/metrics").unwrap();
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    promtool_accepts(
        "the_metrics_listener_serves_metrics_only_and_without_a_key",
        &r.text().await.unwrap(),
    );
    for path in [
        "/",
        "/metricsx",
        "/api/v1/namespaces/_/metrics",
        "/metrics/",
    ] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // The API listener has no /metrics: its series are behind a namespace's key there.
    let r = s.call("GET", "/metrics", None).await;
    assert_eq!(r.status, 404);
    // Without the flag there is no listener at all.
    let plain = crate::server();
    assert!(!plain.output().contains("gust: metrics on"));
}

#[tokio::test]
async fn a_namespace_reads_only_its_own_series() {
    let s = crate::server();
    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    s.create("echo", &function("echo"), json!({})).await;
    assert_eq!(s.invoke("echo", json!({})).await.status, 200);
    let code = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, function("echo"));
    let body = json!({"exec": {"kind": "wasm", "code": code, "binary": true}});
    let r = s
        .call_as(
            &b_auth,
            "PUT",
            "/api/v1/namespaces/_/actions/secret-name",
            Some(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call_as(
            &b_auth,
            "POST",
            "/api/v1/namespaces/_/actions/secret-name?blocking=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let mine = metrics_when(&s, |t| sum(t, "gust_invocations_total", &[]) >= 1.0).await;
    promtool_accepts("a_namespace_reads_only_its_own_series", &mine);
    assert!(
        !mine.contains("tenantb") && !mine.contains("secret-name"),
        "{mine}"
    );
    assert_eq!(
        sum(&mine, "gust_invocations_total", &[("namespace", "guest")]),
        1.0
    );
    for line in mine.lines().filter(|l| !l.starts_with('#')) {
        let (_, labels, _) = sample(line).unwrap();
        assert!(
            labels.contains(&("namespace".into(), "guest".into())),
            "{line}"
        );
    }
    let theirs = metrics_of_when(&s, &b_auth, "tenantb", |t| {
        sum(t, "gust_invocations_total", &[]) >= 1.0
    })
    .await;
    assert!(
        theirs.contains("secret-name") && !theirs.contains("\"guest\""),
        "{theirs}"
    );

    // Another namespace's metrics, by name, are refused like its other entities.
    let (status, body) = namespace_metrics(&s, &s.auth, "tenantb").await;
    assert_eq!(status, 403, "{body}");
    // No key, a wrong key.
    assert_eq!(namespace_metrics(&s, "", "_").await.0, 401);
    let wrong = format!("{}:{}", s.auth.split(':').next().unwrap(), "0".repeat(64));
    assert_eq!(namespace_metrics(&s, &wrong, "_").await.0, 401);
    // A token that may read the namespace reads them; one that may not is refused.
    let mint = |scope: serde_json::Value| {
        let s = &s;
        async move {
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
    };
    let reader = mint(json!(["read:*"])).await;
    let (status, text) = namespace_metrics(&s, &reader, "_").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("gust_invocations_total"));
    let metrics_only = mint(json!(["read:metrics"])).await;
    let (status, text) = namespace_metrics(&s, &metrics_only, "_").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("gust_invocations_total"));
    // `read:metrics` reads nothing else.
    let r = s
        .web(
            "GET",
            "/api/v1/namespaces/_/actions",
            &[("authorization", metrics_only.as_str())],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 403);
    let narrow = mint(json!(["read:actions"])).await;
    assert_eq!(namespace_metrics(&s, &narrow, "_").await.0, 403);
    assert_eq!(namespace_metrics(&s, &reader, "tenantb").await.0, 403);
}

#[tokio::test]
async fn a_throttled_invoke_moves_the_throttle_counter() {
    let s = crate::server();
    s.admin(&["limits", "set", "guest", "--invocations-per-minute", "1"]);
    // The controller reads a namespace's limits through a one-second cache.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.create("echo", &function("echo"), json!({})).await;
    // A minute may turn between two calls: invoke until refused (twice at most, then).
    let mut refused = 0;
    for _ in 0..3 {
        if s.invoke("echo", json!({})).await.status == 429 {
            refused += 1;
            break;
        }
    }
    assert_eq!(refused, 1, "no invoke was refused");
    let text = metrics_when(&s, |t| sum(t, "gust_throttles_total", &[]) >= 1.0).await;
    promtool_accepts("a_throttled_invoke_moves_the_throttle_counter", &text);
    let throttled = [("namespace", "guest"), ("reason", "per_minute")];
    assert_eq!(
        sum(&text, "gust_throttles_total", &throttled),
        1.0,
        "{text}"
    );
    assert_eq!(sum(&text, "gust_throttles_total", &[]), 1.0, "{text}");
}

#[tokio::test]
async fn a_fire_counts_the_fire_its_rule_invocation_and_the_record() {
    let s = crate::server();
    s.create("echo", &function("echo"), json!({})).await;
    let ns = "/api/v1/namespaces/_";
    let r = s
        .call("PUT", &format!("{ns}/triggers/t"), Some(json!({})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rule = json!({ "trigger": "/_/t", "action": "/_/echo" });
    let r = s.call("PUT", &format!("{ns}/rules/r"), Some(rule)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call("POST", &format!("{ns}/triggers/t"), Some(json!({"x": 1})))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);

    let echo = [("action", "echo"), ("outcome", "success")];
    let text = metrics_when(&s, |t| sum(t, "gust_invocations_total", &echo) >= 1.0).await;
    promtool_accepts(
        "a_fire_counts_the_fire_its_rule_invocation_and_the_record",
        &text,
    );
    let guest = [("namespace", "guest")];
    assert_eq!(
        sum(&text, "gust_trigger_fires_total", &guest),
        1.0,
        "{text}"
    );
    assert_eq!(
        sum(&text, "gust_rule_invocations_total", &guest),
        1.0,
        "{text}"
    );
    assert_eq!(sum(&text, "gust_invocations_total", &echo), 1.0, "{text}");
}

/// The metrics URL among the lines a cluster process printed before it was ready.
fn metrics_url_in(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("gust: metrics on "))
        .expect("the process prints its metrics URL")
        .trim()
        .to_string()
}

#[tokio::test]
async fn in_a_cluster_each_process_serves_what_it_did() {
    let (Some(pg), Some(nats)) = (gust_testkit::postgres_url(), gust_testkit::nats_url()) else {
        eprintln!("skipped: the cluster tests need GUST_TEST_POSTGRES_URL and GUST_TEST_NATS_URL");
        return;
    };
    let mut c = gust_testkit::Cluster::new(env!("CARGO_BIN_EXE_gust"), &pg, &nats);
    let controller = metrics_url_in(&c.add_controller_with("c1", &METRICS_ADDR));
    let invoker = metrics_url_in(&c.add_invoker_with("i1", &METRICS_ADDR));
    let host = c.apihosts()[0].clone();
    let http = reqwest::Client::new();
    let (uuid, key) = c.auth.split_once(':').unwrap();
    let code = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, function("echo"));
    let r = http
        .put(format!("{host}/api/v1/namespaces/_/actions/echo"))
        .basic_auth(uuid, Some(key))
        .json(&json!({ "exec": { "kind": "wasm", "code": code } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for blocking in ["true", "false"] {
        let r = http
            .post(format!(
                "{host}/api/v1/namespaces/_/actions/echo?blocking={blocking}"
            ))
            .basic_auth(uuid, Some(key))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let scrape =
        |url: String| async move { reqwest::get(url).await.unwrap().text().await.unwrap() };
    // The invoker ran and recorded both; the non-blocking one may still be running, and a
    // completion is published (and timed) just after its record is written.
    let mut ran = String::new();
    let completions = [("op", "publish"), ("backend", "nats")];
    for _ in 0..100 {
        ran = scrape(invoker.clone()).await;
        if sum(&ran, "gust_invocations_total", &[("namespace", "guest")]) >= 2.0
            && sum(&ran, "gust_bus_operation_seconds_count", &completions) >= 2.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    const TEST: &str = "in_a_cluster_each_process_serves_what_it_did";
    promtool_accepts(TEST, &ran);
    assert_eq!(
        sum(&ran, "gust_invocations_total", &[("action", "echo")]),
        2.0,
        "{ran}"
    );
    let record_writes = [("op", "put_activation"), ("backend", "postgres")];
    assert_eq!(
        sum(&ran, "gust_store_operation_seconds_count", &record_writes),
        2.0,
        "{ran}"
    );
    assert_eq!(
        sum(&ran, "gust_bus_operation_seconds_count", &completions),
        2.0,
        "{ran}"
    );
    // The controller admitted, journaled and published both, and ran nothing itself.
    let accepted = scrape(controller).await;
    promtool_accepts(TEST, &accepted);
    assert_eq!(
        sum(&accepted, "gust_invocations_total", &[]),
        0.0,
        "{accepted}"
    );
    let admits = [("op", "admit"), ("backend", "postgres")];
    assert_eq!(
        sum(&accepted, "gust_store_operation_seconds_count", &admits),
        2.0,
        "{accepted}"
    );
    assert_eq!(
        sum(&accepted, "gust_bus_operation_seconds_count", &completions),
        2.0,
        "{accepted}"
    );
    assert!(sum(&accepted, "gust_http_responses_total", &[("class", "2xx")]) >= 3.0);
}
