//! Node.js, Python and native actions in sandboxed processes: OpenWhisk's code conventions,
//! warm reuse, stem cells, scale-out, and hostile functions stopped at their limits.
//!
//! The sandbox needs root (user namespaces with mapped ids, cgroups); without it, or without
//! node and python3 in /usr/bin or /usr/local/bin, these tests say so and skip.

use crate::{annotation, process_server};
use std::io::Write;
use std::time::Duration;

use base64::Engine as _;
use gust_testkit::{Response, Server};
use serde_json::{Value, json};

async fn put(s: &Server, name: &str, exec: Value, extra: Value) -> Response {
    let mut body = json!({ "exec": exec });
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    s.call(
        "PUT",
        &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
        Some(body),
    )
    .await
}

async fn create(s: &Server, name: &str, kind: &str, code: &str, extra: Value) {
    let r = put(s, name, json!({"kind": kind, "code": code}), extra).await;
    assert_eq!(r.status, 200, "creating {name}: {}", r.body);
}

fn result(r: &Response) -> &Value {
    &r.body["response"]["result"]
}

fn zip(files: &[(&str, &str)]) -> String {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(content.as_bytes()).unwrap();
    }
    let bytes = w.finish().unwrap().into_inner();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

const NODE_HELLO: &str = "function main(p) { console.log('hello from node'); return { greeting: 'Hello ' + (p.name || 'world') }; }";
const PYTHON_HELLO: &str = "def main(args):\n    print('hello from python')\n    return {'greeting': 'Hello ' + args.get('name', 'world')}\n";

/// After something hostile: the server still runs a friendly function.
async fn still_serves(s: &Server) {
    create(s, "friendly", "nodejs:default", NODE_HELLO, json!({})).await;
    let r = s.invoke("friendly", json!({"name": "again"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(result(&r)["greeting"], "Hello again");
}

#[tokio::test]
async fn node_and_python_hello_run_and_warm_instances_are_reused() {
    let Some(s) = process_server("node_and_python_hello", &[]).await else {
        return;
    };
    create(&s, "node", "nodejs:default", NODE_HELLO, json!({})).await;
    create(&s, "py", "python:default", PYTHON_HELLO, json!({})).await;
    let got = s
        .call("GET", "/api/v1/namespaces/_/actions/node", None)
        .await;
    assert!(
        got.body["exec"]["kind"]
            .as_str()
            .unwrap()
            .starts_with("nodejs:"),
        "{}",
        got.body
    );
    assert_eq!(
        got.body["exec"]["code"], NODE_HELLO,
        "source comes back as text"
    );
    // A new Python instance is forked from the kind's zygote (decision 0029).
    for (name, log, start) in [
        ("node", "hello from node", "cold"),
        ("py", "hello from python", "forked"),
    ] {
        let first = s.invoke(name, json!({"name": "Ada"})).await;
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(result(&first), &json!({"greeting": "Hello Ada"}));
        assert_eq!(annotation(&first.body, "start"), start);
        assert!(annotation(&first.body, "initTime").is_u64());
        let logs = first.body["logs"].as_array().unwrap();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(
            logs[0]
                .as_str()
                .unwrap()
                .ends_with(&format!(" stdout: {log}"))
        );
        let second = s.invoke(name, json!({})).await;
        assert_eq!(result(&second), &json!({"greeting": "Hello world"}));
        assert_eq!(annotation(&second.body, "start"), "warm");
        assert!(
            annotation(&second.body, "initTime").is_null(),
            "no initTime when warm"
        );
        assert_eq!(second.body["logs"].as_array().unwrap().len(), 1);
    }
    // The environment carries OpenWhisk's context.
    create(
        &s,
        "env",
        "python:default",
        "import os\ndef main(args):\n    return {k: os.environ.get(k) for k in ['__OW_ACTIVATION_ID', '__OW_ACTION_NAME', '__OW_NAMESPACE']}\n",
        json!({}),
    )
    .await;
    let r = s.invoke("env", json!({})).await;
    assert_eq!(result(&r)["__OW_ACTION_NAME"], "/guest/env");
    assert_eq!(result(&r)["__OW_NAMESPACE"], "guest");
    assert_eq!(
        result(&r)["__OW_ACTIVATION_ID"],
        r.body["activationId"],
        "{}",
        r.body
    );
    // The instance was born in its own cgroup (its thread visits it to clone) and no thread
    // of the server stayed in an instance's group.
    let tasks = format!("/proc/{}/task", s.child.id());
    for task in std::fs::read_dir(&tasks).unwrap().flatten() {
        let groups = std::fs::read_to_string(task.path().join("cgroup")).unwrap_or_default();
        assert!(
            !groups.contains("/gust/srv-"),
            "a server thread in {groups}"
        );
    }
}

#[tokio::test]
async fn entry_points_promises_errors_and_non_dictionaries() {
    let Some(s) = process_server("entry_points_promises_errors", &[]).await else {
        return;
    };
    create(
        &s,
        "exported",
        "nodejs:default",
        "exports.handler = async (p) => new Promise(r => setTimeout(() => r({ doubled: p.n * 2 }), 20));",
        json!({"exec": {"kind": "nodejs:default", "main": "handler", "code": "exports.handler = async (p) => new Promise(r => setTimeout(() => r({ doubled: p.n * 2 }), 20));"}}),
    )
    .await;
    let r = s.invoke("exported", json!({"n": 21})).await;
    assert_eq!(result(&r), &json!({"doubled": 42}), "{}", r.body);
    let r = put(
        &s,
        "pymain",
        json!({"kind": "python:default", "main": "run", "code": "def run(a):\n    return {'ran': True}\n"}),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        result(&s.invoke("pymain", json!({})).await),
        &json!({"ran": true})
    );

    create(
        &s,
        "string",
        "nodejs:default",
        "function main() { return 'not an object'; }",
        json!({}),
    )
    .await;
    let r = s.invoke("string", json!({})).await;
    assert_eq!(r.status, 502);
    assert_eq!(
        result(&r)["error"],
        "The action did not return a dictionary."
    );
    assert_eq!(r.body["response"]["status"], "action developer error");

    create(
        &s,
        "throws",
        "nodejs:default",
        "function main() { throw new Error('boom'); }",
        json!({}),
    )
    .await;
    let r = s.invoke("throws", json!({})).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.body["response"]["status"], "application error");
    assert!(
        result(&r)["error"].as_str().unwrap().contains("boom"),
        "{}",
        r.body
    );

    create(
        &s,
        "rejects",
        "nodejs:default",
        "function main(p) { return p.how === 'object' ? Promise.reject({ reason: 'nope' })\n\
           : p.how === 'error' ? Promise.reject(new TypeError('bad input'))\n\
           : p.how === 'nothing' ? Promise.reject() : Promise.reject('plain'); }",
        json!({}),
    )
    .await;
    // As OpenWhisk's Node.js runtime: a rejection is the result `{error: <value>}`.
    for (how, error) in [
        ("object", json!({"reason": "nope"})),
        ("string", json!("plain")),
        ("nothing", json!({})),
    ] {
        let r = s.invoke("rejects", json!({ "how": how })).await;
        assert_eq!(r.body["response"]["status"], "application error", "{how}");
        assert_eq!(result(&r)["error"], error, "{how}");
    }
    let r = s.invoke("rejects", json!({"how": "error"})).await;
    assert_eq!(result(&r)["error"]["name"], "TypeError", "{}", r.body);
    assert_eq!(result(&r)["error"]["message"], "bad input", "{}", r.body);

    create(
        &s,
        "syntax",
        "nodejs:default",
        "function main( {",
        json!({}),
    )
    .await;
    let r = s.invoke("syntax", json!({})).await;
    assert_eq!(r.status, 502);
    let e = result(&r)["error"].as_str().unwrap();
    assert!(
        e.starts_with("Initialization has failed due to: SyntaxError"),
        "{e}"
    );

    create(
        &s,
        "nomain",
        "python:default",
        "def other(a):\n    return {}\n",
        json!({}),
    )
    .await;
    let r = s.invoke("nomain", json!({})).await;
    let e = result(&r)["error"].as_str().unwrap();
    assert!(e.contains("no function named 'main'"), "{e}");

    create(
        &s,
        "exits",
        "python:default",
        "import os\ndef main(a):\n    os._exit(3)\n",
        json!({}),
    )
    .await;
    let r = s.invoke("exits", json!({})).await;
    assert_eq!(r.body["response"]["status"], "action developer error");
    assert!(
        result(&r)["error"]
            .as_str()
            .unwrap()
            .contains("exited with status 3"),
        "{}",
        r.body
    );
    // The crashed instance is not reused: the next one starts cold.
    create(
        &s,
        "exits",
        "python:default",
        "def main(a):\n    return {'ok': 1}\n",
        json!({}),
    )
    .await;
    assert_eq!(
        result(&s.invoke("exits", json!({})).await),
        &json!({"ok": 1})
    );

    // A script that starts with `#!` is still source of its kind, not an executable.
    create(
        &s,
        "shebang",
        "python:default",
        "#!/usr/bin/env python3\ndef main(a):\n    return {'shebang': True}\n",
        json!({}),
    )
    .await;
    let r = s.invoke("shebang", json!({})).await;
    assert_eq!(result(&r), &json!({"shebang": true}), "{}", r.body);
}

#[tokio::test]
async fn bad_process_actions_are_refused_and_change_nothing() {
    let Some(s) = process_server("bad_process_actions", &[]).await else {
        return;
    };
    let cases = [
        (
            json!({"kind": "nodejs:99", "code": NODE_HELLO}),
            "kind 'nodejs:99' is not supported",
        ),
        (json!({"kind": "nodejs:default"}), "exec.code is required"),
        (
            json!({"kind": "nodejs:default", "code": NODE_HELLO, "main": "x; process.exit()"}),
            "is not a function name",
        ),
        (
            json!({"kind": "python:default", "code": "not a zip", "binary": true}),
            "not valid base64",
        ),
        (
            json!({"kind": "python:default", "code": zip(&[("main.py", "x")]), "binary": true}),
            "no __main__.py",
        ),
        (
            json!({"kind": "nodejs:default", "code": zip(&[("../evil.js", "x"), ("index.js", "")]), "binary": true}),
            "outside its folder",
        ),
        (
            json!({"kind": "native", "code": base64::engine::general_purpose::STANDARD.encode(b"\x00\x01garbage"), "binary": true}),
            "x86-64 Linux executable",
        ),
    ];
    for (exec, want) in cases {
        let r = put(&s, "bad", exec.clone(), json!({})).await;
        assert_eq!(r.status, 400, "{exec}: {}", r.body);
        assert!(r.error().contains(want), "{exec}: {}", r.error());
    }
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/bad", None)
        .await;
    assert_eq!(r.status, 404, "nothing was stored");
}

#[tokio::test]
async fn zips_with_dependencies_and_native_executables_run() {
    let Some(s) = process_server("zips_and_native", &[]).await else {
        return;
    };
    let node_zip = zip(&[
        ("package.json", r#"{"name": "app", "main": "lib/app.js"}"#),
        (
            "lib/app.js",
            "const pad = require('leftpad'); exports.main = (p) => ({ padded: pad(p.s, 5) });",
        ),
        (
            "node_modules/leftpad/index.js",
            "module.exports = (s, n) => ' '.repeat(Math.max(0, n - s.length)) + s;",
        ),
    ]);
    let r = put(
        &s,
        "nodezip",
        json!({"kind": "nodejs:default", "code": node_zip, "binary": true}),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.invoke("nodezip", json!({"s": "ab"})).await;
    assert_eq!(result(&r), &json!({"padded": "   ab"}), "{}", r.body);
    // As the openwhisk npm client sends it: base64 without `binary`. OpenWhisk's rule takes
    // it as binary, and the answer carries the code stored.
    let r = put(
        &s,
        "nodezip2",
        json!({"kind": "nodejs:default", "code": node_zip}),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["exec"]["binary"], true);
    assert_eq!(r.body["exec"]["code"], json!(node_zip));
    let r = s.invoke("nodezip2", json!({"s": "ab"})).await;
    assert_eq!(result(&r), &json!({"padded": "   ab"}), "{}", r.body);
    // Source text answers with its text.
    let source = "function main() { return {}; }";
    let r = put(
        &s,
        "src",
        json!({"kind": "nodejs:default", "code": source}),
        json!({}),
    )
    .await;
    assert_eq!(
        (
            r.body["exec"]["code"].as_str(),
            r.body["exec"]["binary"].as_bool()
        ),
        (Some(source), Some(false))
    );

    let py_zip = zip(&[
        (
            "__main__.py",
            "import helper\ndef main(args):\n    return {'shout': helper.shout(args['s'])}\n",
        ),
        (
            "virtualenv/lib/python3.11/site-packages/helper.py",
            "def shout(s):\n    return s.upper() + '!'\n",
        ),
    ]);
    let r = put(
        &s,
        "pyzip",
        json!({"kind": "python:default", "code": py_zip, "binary": true}),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.invoke("pyzip", json!({"s": "hi"})).await;
    assert_eq!(result(&r), &json!({"shout": "HI!"}), "{}", r.body);

    // A native executable speaks the action loop itself: a line in, a line out on fd 3.
    let script = "#!/bin/sh\nwhile read -r line; do echo \"native got a line\"; echo '{\"native\": true}' >&3; done\n";
    let code = base64::engine::general_purpose::STANDARD.encode(script);
    let r = put(
        &s,
        "native",
        json!({"kind": "native", "code": code, "binary": true}),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for start in ["cold", "warm"] {
        let r = s.invoke("native", json!({})).await;
        assert_eq!(result(&r), &json!({"native": true}), "{}", r.body);
        assert_eq!(annotation(&r.body, "start"), start);
        let logs = r.body["logs"].as_array().unwrap();
        assert!(
            logs.iter()
                .any(|l| l.as_str().unwrap().ends_with("stdout: native got a line")),
            "{logs:?}"
        );
    }
}

#[tokio::test]
async fn a_prewarmed_stem_cell_serves_a_first_invocation() {
    let Some(s) = process_server("prewarmed_stem_cell", &["--stem-cells", "1"]).await else {
        return;
    };
    // Stem cells start in the background: each new action takes one if it is ready.
    let mut prewarmed = None;
    for i in 0..100 {
        let name = format!("fresh{i}");
        create(&s, &name, "nodejs:default", NODE_HELLO, json!({})).await;
        let r = s.invoke(&name, json!({})).await;
        assert_eq!(result(&r)["greeting"], "Hello world", "{}", r.body);
        if annotation(&r.body, "start") == "prewarmed" {
            prewarmed = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = prewarmed.expect("a stem cell was used");
    assert!(annotation(&r.body, "initTime").is_u64());
}

#[tokio::test]
async fn parallel_invocations_scale_out_up_to_the_action_limit() {
    let Some(s) = process_server("scale_out", &[]).await else {
        return;
    };
    let code = "const id = Math.random().toString(36); function main() { return new Promise(r => setTimeout(() => r({ id }), 400)); }";
    create(
        &s,
        "slow",
        "nodejs:default",
        code,
        json!({"limits": {"instances": 3}}),
    )
    .await;
    let s = std::sync::Arc::new(s);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let s = s.clone();
        calls.spawn(async move { s.invoke("slow", json!({})).await });
    }
    let answers = calls.join_all().await;
    let mut ids: Vec<String> = Vec::new();
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.body);
        ids.push(result(r)["id"].as_str().unwrap().to_string());
    }
    ids.sort();
    ids.dedup();
    assert!(ids.len() >= 2, "scaled out: {ids:?}");
    assert!(ids.len() <= 3, "no further than the limit: {ids:?}");
}

#[tokio::test]
async fn hostile_loops_memory_forks_and_log_floods_stop_at_their_limits() {
    let Some(s) = process_server("hostile_limits", &[]).await else {
        return;
    };
    create(
        &s,
        "spin",
        "nodejs:default",
        "function main() { while (true) {} }",
        json!({"limits": {"timeout": 500}}),
    )
    .await;
    let r = s.invoke("spin", json!({})).await;
    assert_eq!(r.status, 502);
    assert_eq!(
        result(&r)["error"],
        "The action exceeded its time limits of 500 milliseconds."
    );
    assert_eq!(annotation(&r.body, "timeout"), &json!(true));
    still_serves(&s).await;

    create(
        &s,
        "hog",
        "python:default",
        "def main(a):\n    b = []\n    while True:\n        b.append(bytearray(8 * 1024 * 1024))\n",
        json!({"limits": {"memory": 128}}),
    )
    .await;
    let r = s.invoke("hog", json!({})).await;
    assert_eq!(r.status, 502);
    assert_eq!(
        result(&r)["error"],
        "The action exhausted its memory and was aborted.",
        "{}",
        r.body
    );
    still_serves(&s).await;

    let bomb = "import os, time\ndef main(a):\n    n = 0\n    try:\n        while True:\n            if os.fork() == 0:\n                time.sleep(30)\n                os._exit(0)\n            n += 1\n    except OSError as e:\n        return {'forked': n, 'error': str(e)}\n";
    create(&s, "forkbomb", "python:default", bomb, json!({})).await;
    let r = s.invoke("forkbomb", json!({})).await;
    assert_eq!(
        r.body["response"]["status"], "application error",
        "{}",
        r.body
    );
    let forked = result(&r)["forked"].as_u64().unwrap();
    assert!(
        forked < 300,
        "stopped by the process limit after {forked} forks"
    );
    still_serves(&s).await;

    create(
        &s,
        "flood",
        "nodejs:default",
        "function main() { for (let i = 0; i < 200000; i++) console.log('flood line ' + i); return { done: true }; }",
        json!({"limits": {"logs": 1}}),
    )
    .await;
    let r = s.invoke("flood", json!({})).await;
    assert_eq!(result(&r), &json!({"done": true}), "{}", r.body);
    let logs = r.body["logs"].as_array().unwrap();
    let bytes: usize = logs.iter().map(|l| l.as_str().unwrap().len()).sum();
    assert!(bytes < 1024 * 1024 + 200, "{bytes}");
    let last = logs.last().unwrap().as_str().unwrap();
    assert!(
        last.contains("Logs were truncated"),
        "{} lines, {bytes} bytes, first {:?}, last {last}",
        logs.len(),
        logs.first()
    );
    // The next activation's logs are its own.
    let r = s.invoke("friendly", json!({})).await;
    assert_eq!(r.body["logs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn hostile_escapes_are_contained() {
    let Some(s) = process_server("hostile_escapes", &[]).await else {
        return;
    };
    // Another action's code, unpacked on the host.
    let other = zip(&[(
        "__main__.py",
        "SECRET = 'other tenant'\ndef main(a):\n    return {}\n",
    )]);
    let r = put(
        &s,
        "other",
        json!({"kind": "python:default", "code": other, "binary": true}),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200);
    s.invoke("other", json!({})).await;
    let code_dir = s.data_dir.join("processes").join("code");
    let other_dir = std::fs::read_dir(&code_dir)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .expect("unpacked code")
        .path();
    assert!(other_dir.join("__main__.py").exists());

    let probe = r#"
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)

def attempt(f):
    try:
        f()
        return 'allowed'
    except Exception as e:
        return 'denied: %s' % type(e).__name__

def call(f, *args):
    r = f(*args)
    return 'allowed' if r == 0 else 'denied: errno %d' % ctypes.get_errno()

def connect(port):
    s = socket.socket()
    s.settimeout(1)
    s.connect(('127.0.0.1', port))

def main(a):
    return {
        'shadow': attempt(lambda: open('/etc/shadow').read()),
        'data_dir': attempt(lambda: os.listdir(a['data_dir'])),
        'other_code': attempt(lambda: open(a['other'] + '/__main__.py').read()),
        'postgres': attempt(lambda: connect(5432)),
        'gust': attempt(lambda: connect(a['port'])),
        'write_root': attempt(lambda: open('/escape', 'w').write('x')),
        'write_usr': attempt(lambda: open('/usr/escape', 'w').write('x')),
        'write_tmp': attempt(lambda: open('/tmp/ok', 'w').write('x')),
        'ptrace': call(libc.ptrace, 0, 0, None, None),
        'mount': call(libc.mount, b'none', b'/tmp', b'tmpfs', 0, None),
        'unshare': call(libc.unshare, 0x10000000),
        'setuid0': call(libc.setuid, 0),
        'uid': os.getuid(),
        'pid': os.getpid(),
        'hostname': socket.gethostname(),
        'root': sorted(os.listdir('/')),
    }
"#;
    create(&s, "probe", "python:default", probe, json!({})).await;
    let port: u64 = s.apihost.rsplit(':').next().unwrap().parse().unwrap();
    let r = s
        .invoke(
            "probe",
            json!({
                "data_dir": s.data_dir.to_string_lossy(),
                "other": other_dir.to_string_lossy(),
                "port": port,
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = result(&r);
    for key in [
        "shadow",
        "data_dir",
        "other_code",
        "postgres",
        "gust",
        "write_root",
        "write_usr",
    ] {
        assert!(
            got[key].as_str().unwrap().starts_with("denied"),
            "{key}: {got}"
        );
    }
    assert_eq!(got["write_tmp"], "allowed", "{got}");
    for key in ["ptrace", "mount", "unshare", "setuid0"] {
        assert!(
            got[key].as_str().unwrap().starts_with("denied: errno"),
            "{key}: {got}"
        );
    }
    assert_eq!(got["uid"], 1000);
    assert_eq!(got["pid"], 1, "alone in its PID namespace");
    assert_eq!(got["hostname"], "gust");
    let root: Vec<&str> = got["root"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !root.contains(&"root") && !root.contains(&"home") && !root.contains(&"work"),
        "{root:?}"
    );
    still_serves(&s).await;
}

fn sleepers(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(marker)
                })
                .unwrap_or(false)
        })
        .count()
}

#[tokio::test]
async fn background_processes_die_with_their_instance() {
    let Some(s) = process_server("background_processes", &["--idle-timeout-secs", "1"]).await
    else {
        return;
    };
    let marker = "314159";
    let code = format!(
        "const cp = require('child_process'); function main() {{ cp.spawn('/bin/sleep', ['{marker}'], {{ detached: true, stdio: 'ignore' }}).unref(); return {{ left: true }}; }}"
    );
    create(&s, "leaver", "nodejs:default", &code, json!({})).await;
    let r = s.invoke("leaver", json!({})).await;
    assert_eq!(result(&r), &json!({"left": true}), "{}", r.body);
    assert!(
        sleepers(&format!("sleep {marker}")) >= 1,
        "the background process runs while its instance lives"
    );
    // Idle past the timeout, the instance is stopped, and everything it started with it.
    let mut gone = false;
    for _ in 0..100 {
        if sleepers(&format!("sleep {marker}")) == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the background process outlived its instance");
    // Its code, unused past the idle timeout too, leaves the invoker's disk; a later call
    // fetches it again from the store.
    let code_dir = s.data_dir.join("processes").join("code");
    let mut cleaned = false;
    for _ in 0..100 {
        let left = std::fs::read_dir(&code_dir).map_or(0, |d| d.count());
        if left == 0 {
            cleaned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cleaned, "unused code stays in {}", code_dir.display());
    let r = s.invoke("leaver", json!({})).await;
    assert_eq!(result(&r), &json!({"left": true}), "{}", r.body);
    still_serves(&s).await;
}

#[tokio::test]
async fn past_the_instance_limit_and_queue_a_blocking_call_gets_503_naming_the_limit() {
    let Some(s) = process_server("instance_queue_full", &["--instance-queue", "0"]).await else {
        return;
    };
    let code =
        "function main() { return new Promise(r => setTimeout(() => r({ done: true }), 1500)); }";
    create(
        &s,
        "single",
        "nodejs:default",
        code,
        json!({"limits": {"instances": 1}}),
    )
    .await;
    let (a, b) = tokio::join!(s.invoke("single", json!({})), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.invoke("single", json!({})).await
    });
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(b.status, 503, "{}", b.body);
    assert_eq!(b.body["response"]["status"], "whisk internal error");
    let e = result(&b)["error"].as_str().unwrap();
    assert!(e.contains("all 1 instances of the action are busy"), "{e}");
}

#[tokio::test]
async fn callers_of_a_shared_action_never_share_an_instance() {
    let Some(s) = process_server("callers_never_share_an_instance", &[]).await else {
        return;
    };
    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    let r = s
        .call(
            "PUT",
            "/api/v1/namespaces/_/packages/lib",
            Some(json!({"publish": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Globals and /tmp outlive an activation in a warm instance: a caller must never see
    // what another caller left there.
    let code = "const fs = require('fs'); const id = Math.random().toString(36);\n\
        function main() { let seen = null; try { seen = fs.readFileSync('/tmp/caller', 'utf8'); } catch (e) {}\n\
        fs.writeFileSync('/tmp/caller', process.env.__OW_NAMESPACE); return { id, seen }; }";
    create(&s, "lib/who", "nodejs:default", code, json!({})).await;
    let path = "/api/v1/namespaces/guest/actions/lib/who?blocking=true";
    let guest = s.call("POST", path, Some(json!({}))).await;
    assert_eq!(guest.status, 200, "{}", guest.body);
    let b = s.call_as(&b_auth, "POST", path, Some(json!({}))).await;
    assert_eq!(b.status, 200, "{}", b.body);
    assert_ne!(
        result(&guest)["id"],
        result(&b)["id"],
        "one instance per caller"
    );
    assert_eq!(result(&b)["seen"], Value::Null, "{}", b.body);
    // Each caller's own instance is reused warm.
    let again = s.call("POST", path, Some(json!({}))).await;
    assert_eq!(result(&again)["id"], result(&guest)["id"]);
    assert_eq!(result(&again)["seen"], "guest");
}

#[tokio::test]
async fn a_node_instance_runs_up_to_its_concurrency_with_each_activation_keeping_its_logs() {
    let Some(s) = process_server("node_concurrency", &[]).await else {
        return;
    };
    // Counts the activations in flight in this instance; each logs its own lines, one
    // written in two pieces across an await.
    let code = "const id = Math.random().toString(36); let inflight = 0;\n\
        async function main(p) { inflight++; const seen = inflight; console.log('start', p.n);\n\
          process.stdout.write('half ' + p.n); await new Promise(r => setTimeout(r, 300));\n\
          process.stdout.write(' whole\\n'); console.error('end', p.n); inflight--;\n\
          return { id, seen, n: p.n }; }";
    create(
        &s,
        "conc",
        "nodejs:default",
        code,
        json!({"limits": {"concurrency": 3, "instances": 1}}),
    )
    .await;
    let got = s
        .call("GET", "/api/v1/namespaces/_/actions/conc", None)
        .await;
    assert_eq!(got.body["limits"]["concurrency"], 3, "{}", got.body);
    let s = std::sync::Arc::new(s);
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..8 {
        let s = s.clone();
        calls.spawn(async move { (n, s.invoke("conc", json!({ "n": n })).await) });
    }
    let mut ids = Vec::new();
    let mut most = 0;
    for (n, r) in calls.join_all().await {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(result(&r)["n"], n);
        ids.push(result(&r)["id"].clone());
        most = most.max(result(&r)["seen"].as_u64().unwrap());
        let logs: Vec<&str> = r.body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert_eq!(logs.len(), 3, "its own lines only: {logs:?}");
        assert!(logs[0].ends_with(&format!("stdout: start {n}")), "{logs:?}");
        assert!(
            logs.iter()
                .any(|l| l.ends_with(&format!("stdout: half {n} whole"))),
            "{logs:?}"
        );
        assert!(
            logs.iter()
                .any(|l| l.ends_with(&format!("stderr: end {n}"))),
            "{logs:?}"
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one instance (limits.instances 1)");
    assert!(most >= 2, "activations overlapped in the instance");
    assert!(
        most <= 3,
        "never more than limits.concurrency at once: {most}"
    );

    // An answer over the result limit is refused, but it was read whole: the instance it
    // came from goes on serving.
    create(
        &s,
        "big",
        "nodejs:default",
        "const id = Math.random().toString(36);\n\
         function main(p) { return p.big ? { x: 'a'.repeat(1100000) } : { id }; }",
        json!({"limits": {"concurrency": 2, "instances": 1}}),
    )
    .await;
    let before = s.invoke("big", json!({})).await;
    let big = s.invoke("big", json!({"big": true})).await;
    assert_eq!(big.status, 502, "{}", big.body);
    assert!(
        result(&big)["error"]
            .as_str()
            .unwrap()
            .contains("exceeded the allowed length"),
        "{}",
        big.body
    );
    let after = s.invoke("big", json!({})).await;
    assert_eq!(result(&after)["id"], result(&before)["id"], "same instance");

    // An activation that hangs its shared instance is stopped at its timeout with the
    // whole instance; the next call gets a fresh one.
    create(
        &s,
        "hangs",
        "nodejs:default",
        "function main(p) { if (p.hang) { for (;;) {} } return { ok: true }; }",
        json!({"limits": {"concurrency": 4, "instances": 1, "timeout": 1000}}),
    )
    .await;
    let hang = {
        let s = s.clone();
        tokio::spawn(async move { s.invoke("hangs", json!({"hang": true})).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let beside = s.invoke("hangs", json!({})).await;
    let hang = hang.await.unwrap();
    assert_eq!(hang.status, 502, "{}", hang.body);
    assert_eq!(
        result(&hang)["error"],
        "The action exceeded its time limits of 1000 milliseconds."
    );
    // The one beside it shared the stuck instance: it failed with it, and says why.
    assert_eq!(beside.status, 502, "{}", beside.body);
    let why = result(&beside)["error"].as_str().unwrap_or_default();
    assert!(why.contains("exceeded its time limit"), "{}", beside.body);
    let after = s.invoke("hangs", json!({})).await;
    assert_eq!(result(&after), &json!({"ok": true}), "{}", after.body);

    // Only Node.js runs activations concurrently; out of range is refused too.
    for (exec, limits, error) in [
        (
            json!({"kind": "python:default", "code": PYTHON_HELLO}),
            json!({"concurrency": 2}),
            "limits.concurrency must be 1 for kind 'python:",
        ),
        (
            json!({"kind": "nodejs:default", "code": NODE_HELLO}),
            json!({"concurrency": 501}),
            "concurrency must be between 1 and 500",
        ),
    ] {
        let r = put(&s, "refused", exec, json!({ "limits": limits })).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.error().contains(error), "{}", r.body);
    }
    let r = s
        .call("GET", "/api/v1/namespaces/_/actions/refused", None)
        .await;
    assert_eq!(r.status, 404, "nothing stored");
}

#[tokio::test]
async fn a_namespace_cannot_take_more_than_its_share_of_instance_memory() {
    let Some(s) = process_server(
        "namespace_memory_share",
        &["--namespace-process-memory", "256", "--instance-queue", "0"],
    )
    .await
    else {
        return;
    };
    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    // Shares count what instances really use: this one holds 200 MB while it runs.
    let slow = "function main() { const b = Buffer.alloc(200 * 1024 * 1024, 1); return new Promise(r => setTimeout(() => r({ done: b.length > 0 }), 1500)); }";
    let quick = "function main() { return { quick: true }; }";
    create(
        &s,
        "slow",
        "nodejs:default",
        slow,
        json!({"limits": {"memory": 256}}),
    )
    .await;
    create(
        &s,
        "quick",
        "nodejs:default",
        quick,
        json!({"limits": {"memory": 128}}),
    )
    .await;
    let r = s
        .call_as(
            &b_auth,
            "PUT",
            "/api/v1/namespaces/_/actions/quick",
            Some(json!({"exec": {"kind": "nodejs:default", "code": quick}, "limits": {"memory": 128}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = std::sync::Arc::new(s);
    let slow_call = {
        let s = s.clone();
        tokio::spawn(async move { s.invoke("slow", json!({})).await })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    // guest's busy instance holds its whole share: another of its actions cannot start...
    let r = s.invoke("quick", json!({})).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let e = result(&r)["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("share of this invoker's memory (256 MB)"),
        "{}",
        r.body
    );
    // ...while another namespace runs as usual.
    let r = s
        .call_as(
            &b_auth,
            "POST",
            "/api/v1/namespaces/_/actions/quick?blocking=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(result(&r), &json!({"quick": true}), "{}", r.body);
    let done = slow_call.await.unwrap();
    assert_eq!(result(&done), &json!({"done": true}), "{}", done.body);
    // Once guest's instance is idle it makes room for guest's next action.
    let r = s.invoke("quick", json!({})).await;
    assert_eq!(result(&r), &json!({"quick": true}), "{}", r.body);
}
