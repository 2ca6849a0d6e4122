//! What an invocation's spans cost on the invoke path: with export off (no endpoint: what
//! every invocation pays then), and with export on, building one invocation's `invoke` and
//! `run` spans and queueing them (the export task sends them to a collector that refuses
//! connections, so the queue keeps draining as it would with a live one).

use std::hint::black_box;

mod common;

use common::record;
use criterion::{Criterion, criterion_group, criterion_main};
use gust_model::{ActionLimits, Activation, InvocationMessage, TraceParent};
use gust_telemetry::spans::{self, Kind};

fn message(trace: TraceParent) -> InvocationMessage {
    let mut m = gust_model::message::InvocationHeader {
        activation_id: "0190b7a1c2d34e5f8a9b0c1d2e3f4a5b".into(),
        namespace: "guest".into(),
        action: "hello".into(),
        subject: "guest".into(),
        version: "0.0.1".into(),
        kind: "wasm".into(),
        blocking: true,
        reply_to: String::new(),
        accepted_at: 999,
        traceparent: None,
    }
    .to_message();
    m.limits = ActionLimits::default();
    m.traceparent = Some(trace);
    m
}

/// One invocation's spans as the controller and the invoker make them (its message made
/// beforehand: only its trace context is new).
fn one_invocation(incoming: &TraceParent, msg: &mut InvocationMessage, r: &Activation) {
    let own = TraceParent::continuing(Some(incoming));
    msg.traceparent = Some(own);
    let span = spans::begin(
        || format!("invoke {}/{}", msg.namespace, msg.action),
        Kind::Server,
        own,
        Some(incoming.span_id()),
        || spans::invocation_attributes(msg),
    );
    if spans::enabled() {
        let run = own.child();
        spans::export(spans::of_record(
            "run",
            Kind::Consumer,
            run,
            Some(own.span_id()),
            msg,
            r,
        ));
    }
    drop(black_box(span));
}

fn bench(c: &mut Criterion) {
    let incoming = TraceParent::new_root();
    let r = record();
    let mut msg = message(incoming);
    c.bench_function("an invocation's spans, export off", |b| {
        b.iter(|| one_invocation(black_box(&incoming), &mut msg, &r))
    });
    c.bench_function("a new trace context (TraceParent::continuing)", |b| {
        b.iter(|| black_box(TraceParent::continuing(Some(black_box(&incoming)))))
    });
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let _exporting = runtime
        .block_on(async { spans::start(&format!("http://{closed}"), "bench") })
        .expect("export starts");
    c.bench_function("an invocation's spans, export on", |b| {
        b.iter(|| one_invocation(black_box(&incoming), &mut msg, &r))
    });
    eprintln!("spans dropped (queue full): {}", spans::dropped());
}

criterion_group!(benches, bench);
criterion_main!(benches);
