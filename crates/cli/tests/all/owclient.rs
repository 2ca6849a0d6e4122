//! The official OpenWhisk JavaScript client (`openwhisk` on npm, `tests/ow-client`) drives a
//! real server through what its own integration tests expect of an OpenWhisk: actions,
//! packages, namespaces, triggers, rules, fires, feeds and the `/whisk.system` catalog
//! (`tests/ow-client/test.js` holds the checks). Skipped when the client is not installed
//! (`npm ci --prefix tests/ow-client`).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gust_testkit::{Server, function, workspace_root};
use serde_json::json;

/// Whether this process runs as root (the process sandbox of Node.js actions needs it).

#[tokio::test]
async fn the_openwhisk_npm_client_drives_gust() {
    let dir = workspace_root().join("tests/ow-client");
    if !dir.join("node_modules/openwhisk").exists() {
        eprintln!(
            "skipped: the openwhisk npm client is not installed (npm ci --prefix tests/ow-client)"
        );
        return;
    }
    // Without root the server offers no Node.js kind, and the script's nodejs:20 check says
    // it skipped (the server answers 400).
    let args: &[&str] = if gust_testkit::is_root() {
        &[]
    } else {
        &["--no-process-runtimes"]
    };
    let s = Server::start_with(env!("CARGO_BIN_EXE_gust"), args);
    s.create("owc_hello", &function("hello"), json!({})).await;

    let mut child = Command::new("node")
        .arg(dir.join("test.js"))
        .current_dir(&dir)
        .env("OW_APIHOST", &s.apihost)
        .env("OW_AUTH", &s.auth)
        .env("OW_ACTION", "owc_hello")
        .env("OW_NAMESPACE", "guest")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run node");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = r.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    println!("{stdout}");
    assert!(
        status.is_some_and(|s| s.success()),
        "tests/ow-client/test.js {}:\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        match status {
            Some(s) => format!("failed ({s})"),
            None => "did not finish within 300 s".to_string(),
        }
    );
}
