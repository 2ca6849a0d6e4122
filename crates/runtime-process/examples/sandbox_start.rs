//! How long a sandbox takes to start, against the same program started bare: runs
//! `python3 -I -c pass` N times each way and prints the medians. Needs root.
//!     cargo run --release -p gust-runtime-process --example sandbox_start [N]
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gust_runtime_process::cgroup::Cgroups;
use gust_runtime_process::sandbox::{Spawner, Spec};

fn median(mut xs: Vec<Duration>) -> f64 {
    xs.sort();
    xs[xs.len() / 2].as_secs_f64() * 1000.0
}

fn spec(root: &std::path::Path, network: bool) -> Spec {
    Spec {
        argv: vec![
            "/usr/bin/python3".into(),
            "-I".into(),
            "-c".into(),
            "pass".into(),
        ],
        env: vec![("PATH".into(), "/usr/bin".into())],
        binds: [
            "/usr",
            "/bin",
            "/sbin",
            "/lib",
            "/lib64",
            "/etc/ld.so.cache",
        ]
        .iter()
        .map(Into::into)
        .collect(),
        files: vec![],
        code: None,
        tmp_bytes: 64 << 20,
        network,
        runtime_api: false,
        host_id: 210_000,
        setup_id: 260_000,
        root: root.to_path_buf(),
        max_files: 1024,
        max_file_size: 64 << 20,
        max_processes: libc::RLIM_INFINITY,
        cwd: "/tmp".into(),
        zygote: None,
    }
}

async fn wait(pid: i32) {
    tokio::task::spawn_blocking(move || {
        // SAFETY: our own child, reaped once.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    })
    .await
    .unwrap();
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let root = tempfile::tempdir().unwrap();
    let spawner = Spawner::new(gust_runtime_process::sandbox::Filters {
        instance: Vec::new(),
        zygote: Vec::new(),
    })
    .unwrap();
    let cgroups = Cgroups::new().ok();
    let mut bare = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        std::process::Command::new("/usr/bin/python3")
            .args(["-I", "-c", "pass"])
            .env_clear()
            .status()
            .unwrap();
        bare.push(t.elapsed());
    }
    println!("bare exec to exit: {:.2} ms", median(bare));
    for (label, network, with_cgroup) in [
        ("sandbox, no cgroup", false, false),
        ("sandbox, host network, no cgroup", true, false),
        ("sandbox with cgroup", false, true),
    ] {
        let mut starts = Vec::new();
        let mut totals = Vec::new();
        let mut groups = Vec::new();
        for i in 0..n {
            let t = Instant::now();
            let cg = match (&cgroups, with_cgroup) {
                (Some(c), true) => Some(c.create(&format!("b{i}"), 256 << 20, 256, 1024).unwrap()),
                _ => None,
            };
            let started = spawner
                .spawn(spec(root.path(), network), cg.as_ref())
                .await
                .unwrap();
            starts.push(t.elapsed());
            wait(started.pid).await;
            totals.push(t.elapsed());
            groups.extend(cg);
        }
        for g in groups {
            g.remove();
        }
        println!(
            "{label}: start (to exec) {:.2} ms, to exit {:.2} ms",
            median(starts),
            median(totals)
        );
    }
}
