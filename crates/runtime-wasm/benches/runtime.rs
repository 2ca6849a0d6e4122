#![allow(clippy::unwrap_used)]
//! Compile and instantiate+run of the hello function, against an empty module as the floor.
//! Run: `cargo bench -p gust-runtime-wasm`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gust_runtime_wasm::{EngineLimits, RunRequest, WasmRuntime};

fn request() -> RunRequest {
    RunRequest {
        input: br#"{"name":"bench"}"#.to_vec(),
        env: vec![("__OW_ACTIVATION_ID".into(), "0".repeat(32))],
        program: "hello".into(),
        timeout: Duration::from_secs(60),
        memory_limit: 256 << 20,
        log_limit: 10 << 20,
        result_limit: 1 << 20,
    }
}

fn benches(c: &mut Criterion) {
    let hello = gust_testkit::function("hello");
    let hello_p2 = gust_testkit::component("hello");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("hello_p1_module", |b| {
        b.iter(|| {
            // A new cache directory each time so the compiler really runs.
            let dir = tempfile_dir();
            let runtime = WasmRuntime::new(&dir, EngineLimits::default()).expect("runtime");
            runtime.compile(&hello).expect("compile");
            let _ = std::fs::remove_dir_all(&dir);
        })
    });
    g.finish();

    let dir = tempfile_dir();
    let runtime = WasmRuntime::new(&dir, EngineLimits::default()).expect("runtime");
    let h1 = runtime.compile(&hello).expect("compile");
    let h2 = runtime.compile(&hello_p2).expect("compile");
    // The floor: a module whose `_start` does nothing, through the same sandbox set-up.
    let empty = wat::parse_str(r#"(module (memory 1) (func (export "_start")))"#).expect("wat");
    let h0 = runtime.compile(&empty).expect("compile");
    let mut g = c.benchmark_group("instantiate_and_run");
    g.bench_function("empty_module_baseline", |b| {
        b.iter(|| {
            let out = rt.block_on(runtime.run(&h0, request()));
            assert_eq!(out.exit, gust_runtime_wasm::Exit::Ok);
        })
    });
    g.bench_function("hello_p1_module", |b| {
        b.iter(|| {
            let out = rt.block_on(runtime.run(&h1, request()));
            assert_eq!(out.exit, gust_runtime_wasm::Exit::Ok);
        })
    });
    g.bench_function("hello_p2_component", |b| {
        b.iter(|| {
            let out = rt.block_on(runtime.run(&h2, request()));
            assert_eq!(out.exit, gust_runtime_wasm::Exit::Ok);
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "gust-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

criterion_group!(runtime, benches);
criterion_main!(runtime);
