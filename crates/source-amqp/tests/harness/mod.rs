//! A sink that records what it is given, and a source run as a task that a test can drop.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gust_source::{Delivery, Event, Sink, Source, SourceError};
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

/// What a [`TestSink`] answers.
enum Answer {
    Accept,
    /// Moves aside an event whose `data` is this string.
    MoveAside(String),
    /// Records the event and never returns (the fire is pending when the run is dropped).
    Hold,
}

pub struct TestSink {
    answer: Answer,
    events: Mutex<Vec<Event>>,
    moved: Mutex<Vec<String>>,
    connected: AtomicUsize,
}

impl TestSink {
    fn with(answer: Answer) -> Arc<TestSink> {
        Arc::new(TestSink {
            answer,
            events: Mutex::default(),
            moved: Mutex::default(),
            connected: AtomicUsize::new(0),
        })
    }

    pub fn new() -> Arc<TestSink> {
        Self::with(Answer::Accept)
    }

    pub fn moving_aside(data: &str) -> Arc<TestSink> {
        Self::with(Answer::MoveAside(data.to_string()))
    }

    pub fn holding() -> Arc<TestSink> {
        Self::with(Answer::Hold)
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn moved(&self) -> Vec<String> {
        self.moved.lock().unwrap().clone()
    }

    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Sink for TestSink {
    async fn deliver(&self, event: Event) -> Delivery {
        let data = event.payload.get("data").cloned();
        self.events.lock().unwrap().push(event);
        match &self.answer {
            Answer::Accept => Delivery::Accepted,
            Answer::MoveAside(poison) if data.as_ref().and_then(Value::as_str) == Some(poison) => {
                Delivery::MoveAside(format!("test says {poison}"))
            }
            Answer::MoveAside(_) => Delivery::Accepted,
            Answer::Hold => std::future::pending().await,
        }
    }

    fn connected(&self, _detail: &str) {
        self.connected.fetch_add(1, Ordering::SeqCst);
    }

    fn moved_aside(&self, why: &str) {
        self.moved.lock().unwrap().push(why.to_string());
    }
}

/// A JSON object as a parameter map.
pub fn config(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Runs `feed` until the task is aborted (which drops the run) or the run returns.
pub fn start<S: Source>(
    source: S,
    feed: &'static str,
    config: Map<String, Value>,
    sink: Arc<TestSink>,
) -> JoinHandle<Result<(), SourceError>> {
    tokio::spawn(async move {
        let result = source.run(feed, &config, &*sink).await;
        if let Err(e) = &result {
            eprintln!("run ended: {e}");
        }
        result
    })
}

/// Whether `done` holds within a generous bound (not a timing assertion: a test fails only
/// when what it waits for never happens).
pub async fn wait_until(done: impl Fn() -> bool) -> bool {
    for _ in 0..400 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}
