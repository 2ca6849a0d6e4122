//! The web console (`/console`): its files and headers over HTTP, and a real headless
//! Chromium driven through WebDriver (chromedriver, both from Debian's packages): log in, a
//! wrong key refused, an action created in the editor, invoked, its record and logs, the live
//! tail showing an activation made from outside, a hostile action's logs and result shown as
//! text, a sequence's components and a component's cause, the action edited into a web action,
//! packages and API routes listed, a route deleted, a trigger fired, a rule disabled and
//! deleted, the page's parsers on awkward input, the metrics' charts, log-out, and a log-in
//! with a scoped token. A screenshot after each step goes to
//! `target/console-screenshots/<step>.png`.
//!
//! Without chromedriver on the PATH the browser test says so on stderr and skips; CI
//! installs it (`.ci/run`). It also needs the process sandbox (root, node) for a JavaScript
//! action, whose code is typed into the console.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::{process_server, server};

#[tokio::test]
async fn console_files_are_served_with_their_types_tags_and_policy() {
    let s = server();
    for (path, ty) in [
        ("/console", "text/html"),
        ("/console/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/api.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let r = s.web("GET", path, &[], Vec::new()).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").unwrap().starts_with(ty), "{path}");
        let csp = r.header("content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        // The guard's default (SAMEORIGIN) does not contradict the policy.
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        let tag = r.header("etag").unwrap().to_string();
        let again = s
            .web("GET", path, &[("if-none-match", &tag)], Vec::new())
            .await;
        assert_eq!(again.status, 304, "{path}");
    }
    let page = s.web("GET", "/console", &[], Vec::new()).await;
    let html = String::from_utf8_lossy(&page.bytes);
    assert!(html.contains("/console/console.js"));
    // Anything else under /console is OpenWhisk's 404, never a file of the host.
    for path in [
        "/console/nothing.js",
        "/console/..%2FCargo.toml",
        "/console/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let r = s.web("GET", path, &[], Vec::new()).await;
        assert_eq!(r.status, 404, "{path}");
    }
}

/// A chromedriver started on a free port in a process group of its own, which holds the
/// Chromium it starts: the whole group is killed when dropped, so a failed test (whose session
/// was never closed) leaves no browser behind.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromedriver"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver and a headless Chromium session; `None` (said on stderr) without
/// chromedriver.
async fn browser(test: &str) -> Option<(Driver, Client)> {
    let Some(bin) = chromedriver() else {
        eprintln!(
            "SKIPPED {test}: chromedriver not found on the PATH (apt-get install chromium chromium-driver)"
        );
        return None;
    };
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver { child, port };
    let url = format!("http://127.0.0.1:{}", driver.port);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "args": [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
            "--window-size=1280,900", "--disable-gpu", "--disable-crash-reporter",
            "--disable-breakpad",
        ]}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => break c,
            // chromedriver is still starting.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no WebDriver session from chromedriver: {e}"),
        }
    };
    Some((driver, client))
}

/// Where the screenshots go: `target/console-screenshots` of the workspace, emptied first so
/// it holds this run's only.
fn shots_dir() -> PathBuf {
    let dir = gust_testkit::workspace_root().join("target/console-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, dir: &Path, step: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{step}.png")), png).unwrap();
}

/// Waits until the text of the element `css` satisfies `ok`; panics with the last text seen
/// after 30 s (a bound on a hung page, not a measure of speed).
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(t) = el.text().await
        {
            if ok(&t) {
                return t;
            }
            last = t;
        }
        if Instant::now() > deadline {
            panic!("{css}: its text never matched; last: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let el = c.wait().for_element(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    let el = c.wait().for_element(Locator::Css(css)).await.unwrap();
    el.click().await.unwrap();
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, Vec::new()).await.unwrap()
}

const HELLO: &str = "function main(p) {\nconsole.log('hello from ' + p.name);\nreturn { greeting: 'Hello ' + p.name };\n}";

/// Logs and a result full of markup that runs script if a page parses it as HTML.
const HOSTILE: &str = r#"function main() {
  console.log('<img src=x onerror="window.__pwned=1">');
  console.log('<script>window.__pwned=2</script>');
  return { html: '<img src=y onerror="window.__pwned=3"><script>window.__pwned=4</script>' };
}"#;

/// Runs the console's SSE and Prometheus parsers on awkward input; answers what they read.
const PARSERS: &str = r##"
const done = arguments[arguments.length - 1];
Promise.all([import("/console/api.js"), import("/console/metrics.js")]).then(([api, m]) => {
  const stream = ": hello\r\nevent: activation\r\nid: a1\r\ndata: {\"x\":\r\ndata: 1}\r\n\r\n"
    + "retry: 10\nevent: activation\nid:a2\ndata: <b>\n\ndata\n";
  const sse = [];
  for (let n = 1; n <= stream.length; n++) {
    const events = [];
    const feed = api.sseParser((e) => events.push(e));
    for (let i = 0; i < stream.length; i += n) feed(stream.slice(i, i + n));
    sse.push(events);
  }
  const text = [
    "# HELP gust_invocations Activation records written.",
    "# TYPE gust_invocations counter",
    'gust_invocations_total{namespace="ns",action="a\\"b\\\\c",outcome="success"} 3',
    'gust_invocations_total{namespace="ns",action="b",outcome="success"} 2 1700000000000',
    'gust_starts_total{namespace="ns",kind="nodejs",start="cold"} 2',
    'gust_starts_total{namespace="ns",kind="nodejs",start="warm"} 7',
    'gust_activation_total_seconds_bucket{namespace="ns",kind="nodejs",le="+Inf"} 5',
    "<script>alert(1)</script>",
    "gust_broken{ 1",
  ].join("\n");
  const samples = m.parse(text);
  const r = m.reduce(samples);
  done({ sse, prom: { invocations: r.invocations, cold: r.cold, latency: r.latencyName,
    label: samples[0].labels.action } });
}, (e) => done({ error: String(e) }));
"##;

#[tokio::test]
async fn console_in_a_headless_browser() {
    let test = "console_in_a_headless_browser";
    let Some(s) = process_server(test, &[]).await else {
        return;
    };
    let Some((_driver, c)) = browser(test).await else {
        return;
    };
    let dir = shots_dir();
    eprintln!("{test}: screenshots in {}", dir.display());
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/hostile?overwrite=true",
            Some(json!({ "exec": { "kind": "nodejs:default", "code": HOSTILE } })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Log in: a wrong key is refused and nothing is kept.
    c.goto(&s.url("/console")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#login-key"))
        .await
        .unwrap();
    shot(&c, &dir, "01-login").await;
    let (uuid, _) = s.auth.split_once(':').unwrap();
    type_into(&c, "#login-key", &format!("{uuid}:not-the-secret")).await;
    click(&c, "#login-submit").await;
    wait_text(&c, "#login-error", |t| t.contains("refused")).await;
    assert_eq!(
        js(&c, "return sessionStorage.length").await,
        json!(0),
        "a refused key is not kept"
    );
    assert_eq!(
        js(&c, "return document.getElementById('nav').hidden").await,
        json!(true)
    );
    shot(&c, &dir, "02-wrong-key").await;
    type_into(&c, "#login-key", &s.auth).await;
    click(&c, "#login-submit").await;
    wait_text(&c, "#view h2", |t| t == "Actions").await;
    wait_text(&c, "#view", |t| t.contains("hostile")).await;
    shot(&c, &dir, "03-logged-in").await;

    // Create an action with its code typed into the editor.
    click(&c, "#new-action").await;
    type_into(&c, "#action-name", "hello").await;
    type_into(&c, "#action-kind", "nodejs:default").await;
    type_into(&c, "#action-code", HELLO).await;
    type_into(&c, "#action-params", r#"{"name": "default"}"#).await;
    shot(&c, &dir, "04-action-editor").await;
    click(&c, "#action-save").await;
    wait_text(&c, "#view h2", |t| t == "Invoke hello").await;
    let stored = s
        .call("GET", "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body["exec"]["code"], HELLO);

    // Invoke it: invalid JSON is flagged and not sent; then the record and its logs.
    type_into(&c, "#invoke-params", "{\"name\": ").await;
    click(&c, "#invoke-submit").await;
    wait_text(&c, "#invoke-params-error", |t| t.contains("Not valid JSON")).await;
    assert_eq!(
        js(&c, "return document.getElementById('record')").await,
        Value::Null
    );
    type_into(&c, "#invoke-params", r#"{"name": "console"}"#).await;
    click(&c, "#invoke-submit").await;
    wait_text(&c, "#record-status", |t| t == "success").await;
    wait_text(&c, "#record-result", |t| t.contains("Hello console")).await;
    wait_text(&c, "#record-logs", |t| t.contains("hello from console")).await;
    shot(&c, &dir, "05-invoked").await;

    // The record's own page, and the activations list with a filter.
    click(&c, "#record .activation-id").await;
    wait_text(&c, "#view h2", |t| t == "Activation of hello").await;
    wait_text(&c, "#record-logs", |t| t.contains("hello from console")).await;
    wait_text(&c, "#cause-chain", |t| t.contains("hello")).await;
    shot(&c, &dir, "06-record").await;
    c.goto(&s.url("/console/#/activations/hello"))
        .await
        .unwrap();
    wait_text(&c, "#activations-list", |t| t.contains("success")).await;
    shot(&c, &dir, "07-activations").await;

    // The live tail shows an activation made from outside the browser.
    c.goto(&s.url("/console/#/live")).await.unwrap();
    wait_text(&c, "#live-state", |t| t == "live").await;
    let r = s.invoke("hello", json!({ "name": "outside" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["activationId"].as_str().unwrap().to_string();
    wait_text(&c, "#live-list", |t| t.contains(&id)).await;
    wait_text(
        &c,
        &format!("#live-list li[data-id='{id}'] .live-logs"),
        |t| t.contains("hello from outside"),
    )
    .await;
    shot(&c, &dir, "08-live").await;

    // A hostile action's logs and result are text: no element is made of them, no script ran.
    c.goto(&s.url("/console/#/invoke/hostile")).await.unwrap();
    click(&c, "#invoke-submit").await;
    wait_text(&c, "#record-status", |t| t == "success").await;
    let logs = wait_text(&c, "#record-logs", |t| t.contains("onerror")).await;
    assert!(
        logs.contains(r#"<img src=x onerror="window.__pwned=1">"#),
        "{logs}"
    );
    assert!(logs.contains("<script>window.__pwned=2</script>"), "{logs}");
    let result = wait_text(&c, "#record-result", |t| t.contains("onerror")).await;
    assert!(result.contains("<script>"), "{result}");
    let found = js(
        &c,
        "return [document.querySelectorAll('#record img, #record script').length, \
         window.__pwned === undefined]",
    )
    .await;
    assert_eq!(found, json!([0, true]));
    shot(&c, &dir, "09-hostile").await;

    // A failed run (answered 502 with its record) shows its record too.
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/fails?overwrite=true",
            Some(json!({ "exec": { "kind": "nodejs:default",
                "code": "function main() { console.log('giving up'); return { error: 'no luck' }; }" } })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.goto(&s.url("/console/#/invoke/fails")).await.unwrap();
    click(&c, "#invoke-submit").await;
    wait_text(&c, "#record-status", |t| t == "application error").await;
    wait_text(&c, "#record-result", |t| t.contains("no luck")).await;
    wait_text(&c, "#record-logs", |t| t.contains("giving up")).await;

    // A sequence's record links its components, and a component's record its cause.
    let ns = s.call("GET", "/api/v1/namespaces", None).await.body[0]
        .as_str()
        .unwrap()
        .to_string();
    let hello = format!("/{ns}/hello");
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/actions/twice?overwrite=true",
            Some(json!({ "exec": { "kind": "sequence", "components": [hello, hello] } })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.invoke("twice", json!({ "name": "seq" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seq = r.body["activationId"].as_str().unwrap().to_string();
    c.goto(&s.url(&format!("/console/#/activation/{seq}")))
        .await
        .unwrap();
    wait_text(&c, "#view h2", |t| t == "Activation of twice").await;
    let components = c
        .wait()
        .for_element(Locator::Css("#components"))
        .await
        .unwrap()
        .find_all(Locator::Css("a"))
        .await
        .unwrap();
    assert_eq!(components.len(), 2);
    shot(&c, &dir, "10-sequence").await;
    components[1].click().await.unwrap();
    wait_text(&c, "#view h2", |t| t == "Activation of hello").await;
    let chain = wait_text(&c, "#cause-chain", |t| t.contains("twice")).await;
    assert!(chain.contains(&seq[..8]), "{chain}");
    shot(&c, &dir, "11-cause").await;

    // Edit the action's code; fire a trigger, disable its rule, delete the rule.
    c.goto(&s.url("/console/#/action/hello")).await.unwrap();
    wait_text(&c, "#view h2", |t| t == "Action hello").await;
    let code = HELLO.replace("'Hello '", "'Hi '");
    type_into(&c, "#action-code", &code).await;
    click(&c, "#action-web").await;
    click(&c, "#action-save").await;
    wait_text(&c, "#view h2", |t| t == "Invoke hello").await;
    let stored = s
        .call("GET", "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(stored.body["exec"]["code"], code);
    assert_eq!(crate::annotation(&stored.body, "web-export"), &json!(true));
    // The web action behind an API route, and a package: listed; the route deleted.
    let route = json!({ "basePath": "/shop", "path": "/hi", "method": "GET", "action": "hello" });
    let r = s
        .call("PUT", "/api/v1/namespaces/_/apis", Some(route))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/packages/tools",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.goto(&s.url("/console/#/packages")).await.unwrap();
    wait_text(&c, "#view", |t| t.contains("tools")).await;
    c.goto(&s.url("/console/#/apis")).await.unwrap();
    wait_text(&c, "#view", |t| t.contains("/shop/hi")).await;
    shot(&c, &dir, "12-apis").await;
    click(&c, "#view button.danger").await;
    c.accept_alert().await.unwrap();
    wait_text(&c, "#view", |t| t.contains("No API routes.")).await;
    let apis = s.call("GET", "/api/v1/namespaces/_/apis", None).await;
    assert_eq!(apis.body, json!({ "apis": [] }));
    for (path, body) in [
        ("triggers/tick", json!({})),
        (
            "rules/on-tick",
            json!({ "trigger": "/_/tick", "action": "/_/hello" }),
        ),
    ] {
        let r = s
            .call("PUT", &format!("/api/v1/namespaces/_/{path}"), Some(body))
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    c.goto(&s.url("/console/#/triggers")).await.unwrap();
    type_into(&c, "#fire-tick", r#"{"name": "tick"}"#).await;
    click(&c, "tr[data-name='tick'] button:not(.danger)").await;
    let fired = wait_text(&c, "#trigger-out", |t| t.contains("activation")).await;
    let trigger_id = fired.rsplit(' ').next().unwrap();
    assert_eq!(s.wait_for_record(trigger_id).await["name"], "tick");
    shot(&c, &dir, "13-trigger").await;
    c.goto(&s.url("/console/#/rules")).await.unwrap();
    wait_text(&c, "tr[data-name='on-tick']", |t| t.contains("active")).await;
    click(&c, "tr[data-name='on-tick'] button.secondary").await;
    wait_text(&c, "tr[data-name='on-tick']", |t| t.contains("inactive")).await;
    let rule = s
        .call("GET", "/api/v1/namespaces/_/rules/on-tick", None)
        .await;
    assert_eq!(rule.body["status"], "inactive");
    click(&c, "tr[data-name='on-tick'] button.danger").await;
    c.accept_alert().await.unwrap();
    wait_text(&c, "#view", |t| t.contains("No rules.")).await;
    let rule = s
        .call("GET", "/api/v1/namespaces/_/rules/on-tick", None)
        .await;
    assert_eq!(rule.status, 404);
    shot(&c, &dir, "14-rules").await;

    // Charts from the metrics: totals parsed from the text format, then a line once a
    // second scrape gives a rate.
    c.goto(&s.url("/console/#/metrics")).await.unwrap();
    let totals = wait_text(&c, "#metrics-totals", |t| t.contains("invocations")).await;
    let invocations: u64 = totals
        .split_whitespace()
        .find_map(|w| w.trim_end_matches(',').parse().ok())
        .unwrap();
    assert!(invocations >= 5, "{totals}");
    s.invoke("hello", json!({ "name": "chart" })).await;
    c.wait()
        .for_element(Locator::Css("#chart-rate path.line"))
        .await
        .unwrap();
    shot(&c, &dir, "15-metrics").await;

    // The page's parsers, fed hostile and split input in the browser itself: the event
    // stream cut at every byte (a CRLF split in two, a comment, multi-line data), and
    // Prometheus text with escaped labels and lines that are not samples.
    let parsed = c.execute_async(PARSERS, Vec::new()).await.unwrap();
    let want_events = json!([
        {"event": "activation", "id": "a1", "data": "{\"x\":\n1}"},
        {"event": "activation", "id": "a2", "data": "<b>"},
    ]);
    for (i, events) in parsed["sse"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            events,
            &want_events,
            "stream cut every {} characters",
            i + 1
        );
    }
    assert_eq!(
        parsed["prom"],
        json!({"invocations": 5, "cold": 2, "latency": "gust_activation_total_seconds",
               "label": "a\"b\\c"})
    );

    // Log out, which forgets the key; then a token (that may read, not list namespaces).
    click(&c, "#logout").await;
    c.wait()
        .for_element(Locator::Css("#login-key"))
        .await
        .unwrap();
    assert_eq!(js(&c, "return sessionStorage.length").await, json!(0));
    shot(&c, &dir, "16-logged-out").await;
    let r = s
        .call(
            "POST",
            "/api/v1/namespaces/_/tokens",
            Some(json!({ "ttl": "1h", "scope": ["read:actions", "read:activations"] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    type_into(&c, "#login-key", r.body["token"].as_str().unwrap()).await;
    click(&c, "#login-submit").await;
    wait_text(&c, "#view", |t| t.contains("twice")).await;
    let auth = js(&c, "return sessionStorage.getItem('gust.credentials')").await;
    assert!(auth.as_str().unwrap().starts_with("Bearer "), "{auth}");
    shot(&c, &dir, "17-token").await;
    c.close().await.unwrap();
}
