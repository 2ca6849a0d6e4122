//! Issue 22: instances admitted by what they really use, stopped under memory pressure
//! without touching busy ones that stay within their admission, and Python instances forked
//! from a zygote without seeing its other children.

use std::sync::Arc;
use std::time::Duration;

use crate::{annotation, process_server};
use gust_testkit::{Response, Server};
use serde_json::{Value, json};

async fn create(s: &Server, auth: Option<&str>, name: &str, kind: &str, code: &str, extra: Value) {
    let mut body = json!({"exec": {"kind": kind, "code": code}});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    let path = format!("/api/v1/namespaces/_/actions/{name}?overwrite=true");
    let r = match auth {
        Some(a) => s.call_as(a, "PUT", &path, Some(body)).await,
        None => s.call("PUT", &path, Some(body)).await,
    };
    assert_eq!(r.status, 200, "creating {name}: {}", r.body);
}

async fn invoke_as(s: &Server, auth: Option<&str>, name: &str) -> Response {
    let path = format!("/api/v1/namespaces/_/actions/{name}?blocking=true");
    match auth {
        Some(a) => s.call_as(a, "POST", &path, Some(json!({}))).await,
        None => s.call("POST", &path, Some(json!({}))).await,
    }
}

fn result(r: &Response) -> &Value {
    &r.body["response"]["result"]
}

/// Bytes charged now to each instance group of server `s` (`/sys/fs/cgroup/.../srv-<pid>/i*`).
fn instance_memory(s: &Server) -> Vec<u64> {
    let pid = s.child.id();
    let mut used = Vec::new();
    for (base, file) in [
        ("/sys/fs/cgroup/memory/gust", "memory.usage_in_bytes"),
        ("/sys/fs/cgroup/gust", "memory.current"),
    ] {
        let Ok(groups) = std::fs::read_dir(format!("{base}/srv-{pid}")) else {
            continue;
        };
        for g in groups.flatten() {
            if !g.file_name().to_string_lossy().starts_with('i') {
                continue;
            }
            if let Some(n) = std::fs::read_to_string(g.path().join(file))
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                used.push(n);
            }
        }
    }
    used
}

const PY_HELLO: &str = "def main(a):\n    return {'hello': a.get('n', 0)}\n";
const NODE_HELLO: &str = "function main(a) { return { hello: a.n || 0 }; }";

#[tokio::test]
async fn a_memory_bomb_among_many_idle_instances_is_stopped_at_its_own_limit() {
    let Some(s) = process_server("memory_bomb_among_idle", &[]).await else {
        return;
    };
    let mut idle = Vec::new();
    for i in 0..6 {
        for (kind, code) in [("python:default", PY_HELLO), ("nodejs:default", NODE_HELLO)] {
            let name = format!("idle{}{i}", &kind[..2]);
            create(
                &s,
                None,
                &name,
                kind,
                code,
                json!({"limits": {"memory": 256}}),
            )
            .await;
            let r = invoke_as(&s, None, &name).await;
            assert_eq!(r.status, 200, "{}", r.body);
            idle.push(name);
        }
    }
    create(
        &s,
        None,
        "bomb",
        "python:default",
        "def main(a):\n    b = []\n    while True:\n        b.append(bytearray(8 * 1024 * 1024))\n",
        json!({"limits": {"memory": 128}}),
    )
    .await;
    let r = invoke_as(&s, None, "bomb").await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(
        result(&r)["error"],
        "The action exhausted its memory and was aborted.",
        "{}",
        r.body
    );
    // Every idle instance is still there, warm.
    for name in &idle {
        let r = invoke_as(&s, None, name).await;
        assert_eq!(result(&r), &json!({"hello": 0}), "{name}: {}", r.body);
        assert_eq!(annotation(&r.body, "start"), "warm", "{name}: {}", r.body);
    }
}

#[tokio::test]
async fn under_pressure_a_busy_instance_within_its_admission_is_never_stopped() {
    let Some(s) = process_server(
        "pressure_spares_busy",
        &[
            "--process-memory",
            "256",
            "--instance-headroom",
            "96",
            "--stem-cells",
            "0",
        ],
    )
    .await
    else {
        return;
    };
    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    // tenantb: a busy instance that uses 40 MB, well within what it is admitted with.
    let steady = "import time\ndef main(a):\n    x = bytearray(40 * 1024 * 1024)\n    time.sleep(3)\n    return {'steady': len(x) // (1024 * 1024)}\n";
    create(
        &s,
        Some(&b_auth),
        "steady",
        "python:default",
        steady,
        json!({"limits": {"memory": 128}}),
    )
    .await;
    // guest: one that keeps growing past its admission.
    let grower = "import time\ndef main(a):\n    b = []\n    for _ in range(23):\n        b.append(bytearray(10 * 1024 * 1024))\n        time.sleep(0.05)\n    time.sleep(3)\n    return {'grew': len(b)}\n";
    create(
        &s,
        None,
        "grower",
        "python:default",
        grower,
        json!({"limits": {"memory": 256}}),
    )
    .await;
    let s = Arc::new(s);
    let steady_call = {
        let (s, auth) = (s.clone(), b_auth.clone());
        tokio::spawn(async move { invoke_as(&s, Some(&auth), "steady").await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = invoke_as(&s, None, "grower").await;
    assert_eq!(r.status, 502, "{}", r.body);
    let e = result(&r)["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("ran short of memory for its instances") && e.contains("past the"),
        "{}",
        r.body
    );
    let r = steady_call.await.unwrap();
    assert_eq!(result(&r), &json!({"steady": 40}), "{}", r.body);
}

#[tokio::test]
async fn the_pool_never_uses_more_than_its_budget_with_many_actions() {
    let Some(s) = process_server(
        "pool_within_budget",
        &[
            "--process-memory",
            "160",
            "--instance-headroom",
            "16",
            "--stem-cells",
            "0",
        ],
    )
    .await
    else {
        return;
    };
    let names: Vec<String> = (0..24).map(|i| format!("many{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let (kind, code) = if i % 2 == 0 {
            ("python:default", PY_HELLO)
        } else {
            ("nodejs:default", NODE_HELLO)
        };
        // Each declares 128 MB: by declared memory one instance at a time would fit.
        create(
            &s,
            None,
            name,
            kind,
            code,
            json!({"limits": {"memory": 128}}),
        )
        .await;
    }
    let s = Arc::new(s);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (s, done) = (s.clone(), done.clone());
        tokio::spawn(async move {
            let (mut most, mut most_live) = (0u64, 0usize);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let used = instance_memory(&s);
                most = most.max(used.iter().sum());
                most_live = most_live.max(used.len());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (most, most_live)
        })
    };
    let mut clients = Vec::new();
    for c in 0..4 {
        let (s, names) = (s.clone(), names.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for k in 0..18 {
                let name = &names[(c * 7 + k * 5) % names.len()];
                let r = invoke_as(&s, None, name).await;
                if r.status != 200 {
                    failures.push(format!("{name}: {}", r.body));
                }
            }
            failures
        }));
    }
    for c in clients {
        let failures = c.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (most, most_live) = sampler.await.unwrap();
    // A stopped instance's memory is given back as the kernel ends its process: one small
    // instance's worth of slack for that.
    assert!(
        most <= (160 + 16) << 20,
        "the instances used {} MB together",
        most >> 20
    );
    assert!(
        most_live >= 3,
        "admitted by real use, more than one 128 MB instance fits: {most_live} at most"
    );
}

#[tokio::test]
async fn a_forked_python_instance_sees_and_signals_nothing_of_its_zygotes_other_children() {
    let Some(s) = process_server("zygote_isolation", &["--stem-cells", "0"]).await else {
        return;
    };
    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    let victim = "import os, time\ndef main(a):\n    time.sleep(2)\n    return {'alive': True, 'pid': os.getpid()}\n";
    create(
        &s,
        Some(&b_auth),
        "victim",
        "python:default",
        victim,
        json!({}),
    )
    .await;
    let spy = r#"
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)

def main(a):
    pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
    signalled = []
    for p in range(1, 4096):
        if p == os.getpid():
            continue
        try:
            os.kill(p, 0)
            signalled.append(p)
        except OSError:
            pass
    traced = [p for p in range(1, 64) if libc.ptrace(16, p, None, None) == 0]
    return {
        'pids': pids,
        'signalled': signalled,
        'traced': traced,
        'uid': os.getuid(),
        'pid': os.getpid(),
        'fds': sorted(int(f) for f in os.listdir('/proc/self/fd')),
        'unshare': libc.unshare(0x10000000),
        'seccomp': open('/proc/self/status').read().split('Seccomp:')[1].split()[0],
        'caps': [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')],
    }
"#;
    create(&s, None, "spy", "python:default", spy, json!({})).await;
    let s = Arc::new(s);
    let victim_call = {
        let (s, auth) = (s.clone(), b_auth.clone());
        tokio::spawn(async move { invoke_as(&s, Some(&auth), "victim").await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = invoke_as(&s, None, "spy").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(annotation(&r.body, "start"), "forked", "{}", r.body);
    let got = result(&r);
    assert_eq!(got["pid"], 1, "PID 1 of its own namespace: {got}");
    assert_eq!(got["pids"], json!([1]), "{got}");
    assert_eq!(got["signalled"], json!([]), "{got}");
    assert_eq!(got["traced"], json!([]), "{got}");
    assert_eq!(got["uid"], 1000, "{got}");
    // stdin, stdout, stderr, fd 3 and the listing's own: nothing of the zygote's.
    assert_eq!(got["fds"], json!([0, 1, 2, 3, 4]), "{got}");
    assert_eq!(got["unshare"], -1, "{got}");
    assert_eq!(got["seccomp"], "2", "{got}");
    assert_eq!(got["caps"], json!(["0000000000000000"]), "{got}");
    let v = victim_call.await.unwrap();
    assert_eq!(result(&v)["alive"], true, "{}", v.body);
    assert_eq!(annotation(&v.body, "start"), "forked", "{}", v.body);
}
