//! The baseline of `bench/stream.sh`: JetStream's own rates on this machine, through the
//! same client and the same reader the `nats/stream` feed's mappings use.
//!
//! - `stream_rate publish URL STREAM N`: creates stream STREAM (subjects `STREAM.>`) if it is
//!   missing and publishes N small JSON records to `STREAM.k<i % 16>`, acknowledged;
//! - `stream_rate read URL STREAM`: reads every record from the first, 1,000 at a time, and
//!   prints how many per second (no function runs: the ceiling of a mapping);
//! - `stream_rate delete URL STREAM`: deletes the stream.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use async_nats::jetstream;
use gust_source::Source;
use gust_source_nats::Nats;
use serde_json::{Map, Value, json};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, url, stream) = match args.as_slice() {
        [_, mode, url, stream, ..] => (mode.as_str(), url.clone(), stream.clone()),
        _ => {
            eprintln!("usage: stream_rate publish|read URL STREAM [N]");
            std::process::exit(2);
        }
    };
    match mode {
        "publish" => {
            let n: u64 = args.get(4).and_then(|n| n.parse().ok()).unwrap_or(10_000);
            let js = jetstream::new(async_nats::connect(&url).await.unwrap());
            js.get_or_create_stream(jetstream::stream::Config {
                name: stream.clone(),
                subjects: vec![format!("{stream}.>")],
                ..Default::default()
            })
            .await
            .unwrap();
            let started = Instant::now();
            let mut acks = Vec::with_capacity(1024);
            for i in 0..n {
                let body = json!({ "n": i, "text": "a small record" }).to_string();
                acks.push(
                    js.publish(format!("{stream}.k{}", i % 16), body.into())
                        .await
                        .unwrap(),
                );
                if acks.len() == 1024 {
                    for ack in acks.drain(..) {
                        ack.await.unwrap();
                    }
                }
            }
            for ack in acks {
                ack.await.unwrap();
            }
            let s = started.elapsed().as_secs_f64();
            println!("published {n} records in {s:.2} s: {:.0}/s", n as f64 / s);
        }
        "read" => {
            let mut params = Map::new();
            params.insert("url".into(), Value::String(url));
            params.insert("stream".into(), Value::String(stream));
            let source = Nats::default();
            let config = source.configure("stream", &params).unwrap();
            let mut reader = source.open_stream("stream", &config).await.unwrap();
            let last = reader.last_sequence().await.unwrap();
            let started = Instant::now();
            let (mut after, mut n) = (0, 0u64);
            while after < last {
                let records = reader
                    .read(after, 1000, Duration::from_secs(1))
                    .await
                    .unwrap();
                let Some(r) = records.last() else { break };
                after = r.sequence;
                n += records.len() as u64;
            }
            let s = started.elapsed().as_secs_f64();
            println!("read {n} records in {s:.2} s: {:.0}/s", n as f64 / s);
        }
        "delete" => {
            let js = jetstream::new(async_nats::connect(&url).await.unwrap());
            js.delete_stream(&stream).await.unwrap();
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}
