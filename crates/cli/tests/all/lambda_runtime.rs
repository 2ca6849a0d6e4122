//! Lambda functions in the process sandbox (issue 26, decision 0025): Python and Node.js
//! handlers run by Gust's runtime clients, a `provided` custom runtime running the stock
//! `awslambdaric`, all through the Lambda Runtime API served inside each sandbox; and what a
//! hostile Lambda function cannot reach.
//!
//! Needs root and node/python3 (skipped by name otherwise, as the process tests are);
//! the `awslambdaric` test needs `tests/lambda/ric`, which `.ci/run` installs.

use std::io::Write;

use base64::Engine as _;
use gust_testkit::{Response, Server};

use crate::process_server;
use serde_json::{Value, json};

/// A zip of `files` (name, content, executable), in base64.
fn zip(files: &[(&str, &[u8], bool)]) -> String {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content, exec) in files {
        let mode = if *exec { 0o755 } else { 0o644 };
        let options = zip::write::SimpleFileOptions::default().unix_permissions(mode);
        w.start_file(*name, options).unwrap();
        w.write_all(content).unwrap();
    }
    base64::engine::general_purpose::STANDARD.encode(w.finish().unwrap().into_inner())
}

async fn put(s: &Server, name: &str, kind: &str, handler: Option<&str>, code: &str) -> Response {
    let mut exec = json!({"kind": kind, "code": code, "binary": true});
    if let Some(h) = handler {
        exec["main"] = json!(h);
    }
    s.call(
        "PUT",
        &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
        Some(json!({"exec": exec, "parameters": [{"key": "GREETING", "value": "hej", "init": true}]})),
    )
    .await
}

async fn create(s: &Server, name: &str, kind: &str, handler: Option<&str>, code: &str) {
    let r = put(s, name, kind, handler, code).await;
    assert_eq!(r.status, 200, "creating {name}: {}", r.body);
}

fn result(r: &Response) -> &Value {
    &r.body["response"]["result"]
}

const PY_APP: &str = r#"
import os
calls = 0

def handler(event, context):
    global calls
    calls += 1
    print("event for", context.function_name)
    return {
        "event": event,
        "calls": calls,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
        "greeting": os.environ.get("GREETING"),
        "api": os.environ["AWS_LAMBDA_RUNTIME_API"],
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "region": os.environ["AWS_REGION"],
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }

def text(event, context):
    return "just text"

def fail(event, context):
    raise ValueError("no good: " + str(event.get("why")))
"#;

#[tokio::test]
async fn a_python_handler_runs_through_the_runtime_api_and_stays_warm() {
    let Some(s) = process_server(
        "a_python_handler_runs_through_the_runtime_api_and_stays_warm",
        &[],
    )
    .await
    else {
        return;
    };
    // The platform's description lists the Lambda runtimes beside OpenWhisk's.
    let info = s.call("GET", "/api/v1", None).await.body;
    let lambda = info["runtimes"]["lambda"].to_string();
    assert!(
        lambda.contains("lambda:python3.x") && lambda.contains("lambda:nodejsN.x"),
        "{info}"
    );
    let code = zip(&[("app.py", PY_APP.as_bytes(), false)]);
    create(&s, "py", "lambda:python3.11", Some("app.handler"), &code).await;
    let r = s.invoke("py", json!({"name": "x"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let out = result(&r);
    assert_eq!(out["event"], json!({"name": "x"}));
    assert_eq!(out["calls"], 1);
    assert_eq!(out["request_id"], r.body["activationId"]);
    assert_eq!(
        out["arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:py"
    );
    assert_eq!(out["memory"], "256");
    assert!(out["remaining"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(out["greeting"], "hej");
    assert_eq!(out["api"], "127.0.0.1:9001");
    assert_eq!(out["task_root"], "/action");
    assert!(
        out["trace"].as_str().unwrap().starts_with("Root=1-"),
        "{out}"
    );
    let logs = r.body["logs"].to_string();
    assert!(logs.contains("event for py"), "{logs}");
    // The same instance answers again, after being frozen while idle (500 ms): its global
    // state is still there.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let r = s.invoke("py", json!({})).await;
    assert_eq!(result(&r)["calls"], 2, "{}", r.body);
    assert!(!r.body["logs"].to_string().contains("name"), "{}", r.body);

    // A response that is not an object is kept whole, under `lambda-payload`.
    create(&s, "text", "lambda:python3.12", Some("app.text"), &code).await;
    let r = s.invoke("text", json!({})).await;
    assert_eq!(
        result(&r),
        &json!({"lambda-payload": "just text"}),
        "{}",
        r.body
    );

    // An exception is the runtime's error body, an application error.
    create(&s, "fail", "lambda:python3.11", Some("app.fail"), &code).await;
    let r = s.invoke("fail", json!({"why": "testing"})).await;
    assert_eq!(
        r.body["response"]["status"], "application error",
        "{}",
        r.body
    );
    let e = &result(&r)["error"];
    assert_eq!(e["errorType"], "ValueError", "{e}");
    assert_eq!(e["errorMessage"], "no good: testing", "{e}");
    assert!(
        r.body["logs"].to_string().contains("Traceback"),
        "{}",
        r.body
    );
    // The instance is still fine.
    let r = s.invoke("fail", json!({"why": "again"})).await;
    assert_eq!(result(&r)["error"]["errorMessage"], "no good: again");
}

#[tokio::test]
async fn a_handler_that_cannot_load_fails_its_init_with_lambdas_error_type() {
    let Some(s) = process_server(
        "a_handler_that_cannot_load_fails_its_init_with_lambdas_error_type",
        &[],
    )
    .await
    else {
        return;
    };
    let code = zip(&[("app.py", PY_APP.as_bytes(), false)]);
    create(
        &s,
        "nomod",
        "lambda:python3.11",
        Some("missing.handler"),
        &code,
    )
    .await;
    let r = s.invoke("nomod", json!({})).await;
    assert_eq!(
        r.body["response"]["status"], "action developer error",
        "{}",
        r.body
    );
    let e = result(&r)["error"].as_str().unwrap().to_string();
    assert!(e.contains("Runtime.ImportModuleError"), "{e}");
    assert!(e.contains("missing"), "{e}");
    // What the runtime logged while it failed is in the record.
    let logs = r.body["logs"].to_string();
    assert!(logs.contains("ModuleNotFoundError"), "{logs}");

    // Bad input changes nothing: no zip, no handler, a provided zip without bootstrap.
    let r = put(
        &s,
        "bad",
        "lambda:python3.11",
        Some("app.handler"),
        "cHJpbnQoMSk=",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = put(&s, "bad", "lambda:python3.11", None, &code).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["error"].as_str().unwrap().contains("handler"),
        "{}",
        r.body
    );
    let r = put(&s, "bad", "lambda:provided.al2023", None, &code).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["error"].as_str().unwrap().contains("bootstrap"),
        "{}",
        r.body
    );
    let r = put(&s, "bad", "lambda:java21", Some("a.b"), &code).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/bad", None)
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn node_handlers_run_as_commonjs_esm_and_with_a_callback() {
    let Some(s) =
        process_server("node_handlers_run_as_commonjs_esm_and_with_a_callback", &[]).await
    else {
        return;
    };
    let code = zip(&[
        (
            "index.js",
            b"exports.handler = async (event, context) => { console.log('cjs says hi'); return { kind: 'cjs', event, id: context.awsRequestId, fn: context.functionName, left: context.getRemainingTimeInMillis() > 0 }; };\n\
              exports.cb = (event, context, callback) => { setTimeout(() => callback(null, { kind: 'callback', n: event.n + 1 }), 5); };\n\
              exports.bad = async () => { throw new TypeError('broken'); };\n",
            false,
        ),
        (
            "esm.mjs",
            b"export const handler = async (event) => ({ kind: 'esm', greeting: process.env.GREETING });\n",
            false,
        ),
    ]);
    create(&s, "cjs", "lambda:nodejs20.x", Some("index.handler"), &code).await;
    let r = s.invoke("cjs", json!({"a": 1})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let out = result(&r);
    assert_eq!(out["kind"], "cjs");
    assert_eq!(out["event"], json!({"a": 1}));
    assert_eq!(out["id"], r.body["activationId"]);
    assert_eq!(out["fn"], "cjs");
    assert_eq!(out["left"], true);
    assert!(
        r.body["logs"].to_string().contains("cjs says hi"),
        "{}",
        r.body
    );

    create(&s, "esm", "lambda:nodejs22.x", Some("esm.handler"), &code).await;
    let r = s.invoke("esm", json!({})).await;
    assert_eq!(
        result(&r),
        &json!({"kind": "esm", "greeting": "hej"}),
        "{}",
        r.body
    );

    create(&s, "cb", "lambda:nodejs20.x", Some("index.cb"), &code).await;
    let r = s.invoke("cb", json!({"n": 41})).await;
    assert_eq!(
        result(&r),
        &json!({"kind": "callback", "n": 42}),
        "{}",
        r.body
    );

    create(&s, "bad", "lambda:nodejs20.x", Some("index.bad"), &code).await;
    let r = s.invoke("bad", json!({})).await;
    assert_eq!(
        r.body["response"]["status"], "application error",
        "{}",
        r.body
    );
    assert_eq!(result(&r)["error"]["errorType"], "TypeError", "{}", r.body);
    assert_eq!(result(&r)["error"]["errorMessage"], "broken", "{}", r.body);
}

/// The stock Python runtime client (`awslambdaric`, from PyPI) as a custom runtime: the zip
/// brings it, its `bootstrap` starts it, and Gust changes nothing of it.
#[tokio::test]
async fn the_stock_awslambdaric_runs_unchanged_as_a_custom_runtime() {
    let ric = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lambda/ric");
    if !ric.join("awslambdaric").is_dir() {
        eprintln!(
            "SKIPPED the_stock_awslambdaric_runs_unchanged_as_a_custom_runtime: tests/lambda/ric is not installed (.ci/run installs it)"
        );
        return;
    }
    let Some(s) = process_server(
        "the_stock_awslambdaric_runs_unchanged_as_a_custom_runtime",
        &[],
    )
    .await
    else {
        return;
    };
    let mut files: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for entry in walk(&ric) {
        let rel = entry
            .strip_prefix(&ric)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if rel.contains("__pycache__") {
            continue;
        }
        files.push((rel, std::fs::read(&entry).unwrap(), false));
    }
    files.push((
        "bootstrap".into(),
        b"#!/bin/sh\ncd \"$LAMBDA_TASK_ROOT\"\nexec python3 -m awslambdaric \"$_HANDLER\"\n"
            .to_vec(),
        true,
    ));
    files.push((
        "app.py".into(),
        b"def handler(event, context):\n    print('from the stock client')\n    return {'ric': True, 'event': event, 'id': context.aws_request_id}\n\ndef fail(event, context):\n    raise KeyError('k')\n".to_vec(),
        false,
    ));
    let refs: Vec<(&str, &[u8], bool)> = files
        .iter()
        .map(|(n, c, x)| (n.as_str(), c.as_slice(), *x))
        .collect();
    let code = zip(&refs);
    create(
        &s,
        "ric",
        "lambda:provided.al2023",
        Some("app.handler"),
        &code,
    )
    .await;
    let r = s.invoke("ric", json!({"via": "awslambdaric"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let out = result(&r);
    assert_eq!(out["ric"], true, "{}", r.body);
    assert_eq!(out["event"], json!({"via": "awslambdaric"}));
    assert_eq!(out["id"], r.body["activationId"]);
    let r = s.invoke("ric", json!({"n": 2})).await;
    assert_eq!(result(&r)["event"], json!({"n": 2}), "{}", r.body);

    create(
        &s,
        "ricfail",
        "lambda:provided.al2023",
        Some("app.fail"),
        &code,
    )
    .await;
    let r = s.invoke("ricfail", json!({})).await;
    assert_eq!(
        r.body["response"]["status"], "application error",
        "{}",
        r.body
    );
    assert_eq!(result(&r)["error"]["errorType"], "KeyError", "{}", r.body);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

const PY_HOSTILE: &str = r#"
import json, os, socket, urllib.request

def probe(event, context):
    out = {}
    # The network: none (nothing but its own loopback, where only its Runtime API listens).
    for name, addr in (("outside", ("1.1.1.1", 80)), ("server", ("127.0.0.1", event["port"]))):
        s = socket.socket()
        s.settimeout(1)
        try:
            s.connect(addr)
            out[name] = "reached"
        except OSError as e:
            out[name] = "refused"
        finally:
            s.close()
    # Files outside its task root: the host's are not there.
    out["shadow"] = os.path.exists("/etc/shadow")
    out["data_dir"] = os.path.exists(event["data_dir"])
    # Another function's invocation cannot be answered: its request id is unknown here.
    req = urllib.request.Request(
        "http://%s/2018-06-01/runtime/invocation/%s/response" % (os.environ["AWS_LAMBDA_RUNTIME_API"], event["other"]),
        data=b'{"forged": true}', method="POST")
    try:
        urllib.request.urlopen(req, timeout=2)
        out["forged"] = "accepted"
    except urllib.error.HTTPError as e:
        out["forged"] = json.loads(e.read())["errorType"]
    return out

def slow(event, context):
    import time
    time.sleep(3)
    return {"slow": True}

def flood(event, context):
    # Connections to its own Runtime API beyond what a runtime needs are closed, not served.
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
    held, closed = [], 0
    for _ in range(40):
        s = socket.create_connection((host, int(port)), timeout=2)
        held.append(s)
    for s in held:
        s.settimeout(0.5)
        try:
            s.sendall(b"GET /2018-06-01/runtime/invocation/none HTTP/1.1\r\nHost: x\r\n\r\n")
            if s.recv(100) == b"":
                closed += 1
        except OSError:
            closed += 1
    return {"closed": closed}
"#;

#[tokio::test]
async fn a_hostile_lambda_function_reaches_no_network_no_host_files_and_no_other_invocation() {
    let Some(s) = process_server(
        "a_hostile_lambda_function_reaches_no_network_no_host_files_and_no_other_invocation",
        &[],
    )
    .await
    else {
        return;
    };
    let code = zip(&[("app.py", PY_HOSTILE.as_bytes(), false)]);
    create(&s, "slow", "lambda:python3.11", Some("app.slow"), &code).await;
    create(&s, "probe", "lambda:python3.11", Some("app.probe"), &code).await;
    // Another function's invocation in flight, whose id the hostile one is given.
    let slow = s
        .call("POST", "/api/v1/namespaces/_/actions/slow", Some(json!({})))
        .await;
    let other = slow.body["activationId"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let port = s
        .apihost
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let data_dir = s.data_dir.to_string_lossy().to_string();
    let r = s
        .invoke(
            "probe",
            json!({"port": port, "other": other, "data_dir": data_dir}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let out = result(&r);
    assert_eq!(out["outside"], "refused", "{out}");
    assert_eq!(out["server"], "refused", "{out}");
    assert_eq!(out["shadow"], false, "{out}");
    assert_eq!(out["data_dir"], false, "{out}");
    assert_eq!(out["forged"], "InvalidRequestID", "{out}");
    // The other function's answer is its own.
    let record = s.wait_for_record(&other).await;
    assert_eq!(
        record["response"]["result"],
        json!({"slow": true}),
        "{record}"
    );
}

#[tokio::test]
async fn with_the_hosts_network_the_runtime_api_serves_its_own_instance_only() {
    let Some(s) = process_server(
        "with_the_hosts_network_the_runtime_api_serves_its_own_instance_only",
        &["--network-namespace", "guest"],
    )
    .await
    else {
        return;
    };
    let code = zip(&[("app.py", PY_APP.as_bytes(), false)]);
    create(&s, "py", "lambda:python3.11", Some("app.handler"), &code).await;
    let r = s.invoke("py", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let api = result(&r)["api"].as_str().unwrap().to_string();
    assert!(
        api.starts_with("127.0.0.1:") && api != "127.0.0.1:9001",
        "{api}"
    );
    // Another process of the host (this test, as root) connects and is not served.
    let mut stream = tokio::net::TcpStream::connect(&api).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream
        .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut buf),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "{read:?} {:?}",
        String::from_utf8_lossy(&buf)
    );
    // The function still runs.
    let r = s.invoke("py", json!({})).await;
    assert_eq!(result(&r)["calls"], 2, "{}", r.body);
}

/// A bootstrap built with AWS's Rust `lambda_runtime` crate, unchanged (it panics at start
/// without the function's name, version and memory in its environment, and on an event
/// without a deadline).
#[tokio::test]
async fn a_rust_lambda_runtime_bootstrap_runs_unchanged() {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        eprintln!("SKIPPED a_rust_lambda_runtime_bootstrap_runs_unchanged: x86-64 Linux only");
        return;
    }
    // Built before the server starts: a build of a minute would outlast the server's idle
    // keep-alive (30 s) and the client's pooled connection with it.
    let bootstrap = gust_testkit::lambda_rust_bootstrap();
    let Some(s) = process_server("a_rust_lambda_runtime_bootstrap_runs_unchanged", &[]).await
    else {
        return;
    };
    let code = zip(&[("bootstrap", &bootstrap, true)]);
    create(&s, "rust", "lambda:provided.al2023", None, &code).await;
    let r = s.invoke("rust", json!({"n": 1})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let out = result(&r);
    assert_eq!(out["runtime"], "rust lambda_runtime", "{}", r.body);
    assert_eq!(out["event"], json!({"n": 1}));
    assert_eq!(out["request_id"], r.body["activationId"]);
    assert_eq!(out["function"], "rust");
    assert_eq!(out["memory"], 256);
    assert!(
        r.body["logs"].to_string().contains("rust handler saw"),
        "{}",
        r.body
    );
    let r = s.invoke("rust", json!({"fail": true})).await;
    assert_eq!(
        r.body["response"]["status"], "application error",
        "{}",
        r.body
    );
    assert_eq!(
        result(&r)["error"]["errorMessage"],
        "asked to fail",
        "{}",
        r.body
    );
}

/// `gust action create NAME function.zip --kind lambda:... --main HANDLER --env K V`.
#[tokio::test]
async fn the_gust_client_creates_a_lambda_function_with_its_environment() {
    let Some(s) = process_server(
        "the_gust_client_creates_a_lambda_function_with_its_environment",
        &[],
    )
    .await
    else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let zip_path = home.path().join("function.zip");
    let code = zip(&[("app.py", PY_APP.as_bytes(), false)]);
    std::fs::write(
        &zip_path,
        base64::engine::general_purpose::STANDARD
            .decode(code)
            .unwrap(),
    )
    .unwrap();
    let gust = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gust"))
            .args(args)
            .env("HOME", home.path())
            .env("GUST_CONFIG_DIR", home.path().join("config"))
            .env("GUST_APIHOST", &s.apihost)
            .env("GUST_AUTH", &s.auth)
            .output()
            .unwrap()
    };
    let zip_arg = zip_path.to_str().unwrap();
    let out = gust(&[
        "action",
        "create",
        "viacli",
        zip_arg,
        "--kind",
        "lambda:python3.11",
        "--main",
        "app.handler",
        "--env",
        "GREETING",
        "from the cli",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gust(&["action", "invoke", "viacli", "-p", "k", "v", "--result"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["greeting"], "from the cli", "{result}");
    assert_eq!(result["event"], json!({"k": "v"}));
    let list = gust(&["action", "list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("lambda:python3.11"),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );
}
