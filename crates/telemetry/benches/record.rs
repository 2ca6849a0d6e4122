//! What recording one invocation's metrics costs: every series one Wasm activation touches on
//! the invoke path (its record, its start, the journal and record writes, the bus publish and
//! the HTTP response), on a registry that already has the series, as in a running server.
//! And what reading the metrics costs: a namespace's (served from the shared snapshot, which
//! is rebuilt at most once a second) and the whole registry's (what a rebuild encodes), on a
//! registry of 100 namespaces with 20 actions each.

use std::hint::black_box;
use std::time::Duration;

mod common;

use common::record;
use criterion::{Criterion, criterion_group, criterion_main};
use gust_telemetry::metrics::{Metrics, Start};

fn one_invocation(c: &mut Criterion) {
    let m = Metrics::new();
    m.set_backends("sqlite", "memory");
    let r = record();
    let took = Duration::from_micros(150);
    c.bench_function("record one invocation's metrics", |b| {
        b.iter(|| {
            m.store_op("put_pending", took);
            m.start("guest", "wasm", Start::Warm);
            m.activation(black_box(&r), "hello", 999);
            m.store_op("put_activation", took);
            m.bus_op("publish", took);
            m.http_response(200);
        })
    });
}

fn reading(c: &mut Criterion) {
    let m = Metrics::new();
    let mut r = record();
    for ns in 0..100 {
        r.namespace = format!("tenant{ns}");
        for action in 0..20 {
            m.activation(&r, &format!("action{action}"), 999);
        }
    }
    let one = m.encode_namespace("tenant42");
    assert!(one.contains("action=\"action19\"") && !one.contains("tenant41"));
    println!("one namespace's text: {} bytes", one.len());
    c.bench_function("encode one namespace of 100 (snapshot)", |b| {
        b.iter(|| black_box(m.encode_namespace("tenant42")))
    });
    c.bench_function("encode the registry of 100 namespaces", |b| {
        b.iter(|| black_box(m.encode()))
    });
}

criterion_group!(benches, one_invocation, reading);
criterion_main!(benches);
