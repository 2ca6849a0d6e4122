//! AWS Lambda's control and invoke API driven by boto3 itself (`tests/lambda/boto3_flow.py`,
//! run with `tests/lambda/.venv/bin/python`), with only its endpoint URL pointed at Gust and
//! the namespace key as its credentials: signatures checked and refused, then functions
//! created (Python and Node.js), listed, updated, invoked (RequestResponse, Event, DryRun,
//! log tail, a function error, a timeout, a failed import), served at their function URL and
//! deleted. Skipped, saying so, without boto3 (`.ci/run` installs it); the
//! functions part also needs root (the process sandbox), like every process-kind test.

use std::process::Command;

use gust_testkit::{Server, workspace_root};
use serde_json::Value;

fn python() -> Option<std::path::PathBuf> {
    let python = workspace_root().join("tests/lambda/.venv/bin/python");
    let has_boto3 = Command::new(&python)
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    has_boto3.then_some(python)
}

/// Runs `boto3_flow.py <part>` against `s` with the guest key; panics with its output unless
/// it succeeds; returns the JSON object of its last line.
fn boto3(python: &std::path::Path, s: &Server, part: &str) -> Value {
    let (key_id, secret) = s.auth.split_once(':').expect("uuid:key");
    let script = workspace_root().join("tests/lambda/boto3_flow.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(part)
        .env("GUST_ENDPOINT", &s.apihost)
        .env("GUST_KEY_ID", key_id)
        .env("GUST_SECRET", secret)
        // boto3 must find nothing of the machine's own AWS setup.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_LAMBDA")
        .output()
        .expect("cannot run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "boto3_flow.py {part} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

#[tokio::test]
async fn boto3_signatures_are_verified_and_refusals_change_nothing() {
    let Some(python) = python() else {
        eprintln!("SKIPPED: boto3 is not installed in tests/lambda/.venv (.ci/run installs it)");
        return;
    };
    let s = Server::start_with(env!("CARGO_BIN_EXE_gust"), &["--no-process-runtimes"]);
    let out = boto3(&python, &s, "auth");
    assert_eq!(out["functions"], serde_json::json!([]));
    // Nothing reached the namespace's actions either.
    let actions = s.call("GET", "/api/v1/namespaces/_/actions", None).await;
    assert_eq!(actions.body, serde_json::json!([]));
}

#[tokio::test]
async fn unsigned_requests_are_refused_as_lambda_refuses_them() {
    let s = crate::server();
    let url = s.url("/2015-03-31/functions/f/invocations");
    // No Authorization at all.
    let r = s.client.post(&url).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );
    // Lambda's answers hold environments and results: no cache keeps them.
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["Type"], "User");
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("Signature Version 4")
    );
    // The namespace key as HTTP Basic, which the OpenWhisk API takes, is not a signature.
    let (u, k) = s.auth.split_once(':').unwrap();
    let r = s
        .client
        .get(s.url("/2015-03-31/functions"))
        .basic_auth(u, Some(k))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["x-amzn-errortype"],
        "IncompleteSignatureException"
    );
    // A signature of the right shape, dated now, that the key does not give; forging them is
    // throttled like guessing keys.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let date = amz_date(now);
    let forged = format!(
        "AWS4-HMAC-SHA256 Credential={u}/{}/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
        &date[..8],
        "0".repeat(64)
    );
    let max = gust_gateway::guard::MAX_FAILURES;
    for attempt in 1..=max + 1 {
        let r = s
            .client
            .get(s.url("/2015-03-31/functions"))
            .header("authorization", &forged)
            .header("x-amz-date", &date)
            .send()
            .await
            .unwrap();
        if attempt <= max {
            assert_eq!(r.status(), 403, "attempt {attempt}");
            assert_eq!(r.headers()["x-amzn-errortype"], "InvalidSignatureException");
            let body: Value = r.json().await.unwrap();
            assert!(
                body["Message"].as_str().unwrap().contains("does not match"),
                "{body}"
            );
        } else {
            assert_eq!(r.status(), 429, "attempt {attempt}");
            assert_eq!(r.headers()["x-amzn-errortype"], "TooManyRequestsException");
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    // A signature dated 20 minutes ago has expired (checked before the key is). Another
    // server: this one now throttles this address.
    let old = amz_date(now - 20 * 60);
    let fresh = crate::server();
    let expired = forged.replace(&date[..8], &old[..8]);
    let r = fresh
        .client
        .get(fresh.url("/2015-03-31/functions"))
        .header("authorization", expired)
        .header("x-amz-date", &old)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-amzn-errortype"], "InvalidSignatureException");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired"),
        "{body}"
    );
}

/// `secs` since the epoch as an `X-Amz-Date`.
fn amz_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::test]
async fn boto3_creates_invokes_updates_and_deletes_functions() {
    let Some(python) = python() else {
        eprintln!("SKIPPED: boto3 is not installed in tests/lambda/.venv (.ci/run installs it)");
        return;
    };
    if !gust_testkit::is_root() {
        eprintln!("SKIPPED: the process sandbox that runs Lambda functions needs root");
        return;
    }
    let s = crate::server();
    let out = boto3(&python, &s, "functions");
    // The function was an action, its invocations activations: the records outlive it.
    for key in ["request_id", "event_id"] {
        let id = out[key].as_str().unwrap();
        let record = s.wait_for_record(id).await;
        assert_eq!(record["name"], "hello", "{record}");
        assert_eq!(
            crate::annotation(&record, "kind"),
            "lambda:python3.11",
            "{record}"
        );
    }
    // `second` is still there, as an action of kind lambda:python3.11.
    let a = s
        .call("GET", "/api/v1/namespaces/_/actions/second", None)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["exec"]["kind"], "lambda:python3.11");
    assert_eq!(a.body["exec"]["main"], "app.handler");
}
