//! What the sources' tests share (feature `testing`, turned on only by their
//! dev-dependencies): a [`TestSink`] that records what it is given and answers as a test
//! says, a feed's configuration as JSON ([`configure`]), a source run as a task that a test
//! can drop ([`start`]), a bounded wait ([`wait_until`]), the gate on a test server's URL ([`server_url`]) and the check that a
//! feed documents the parameters it takes ([`assert_documents`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

use crate::{Delivery, Event, FeedDoc, Sink, Source, SourceError};

/// What a [`TestSink`] answers.
enum Answer {
    Accept,
    /// Moves aside an event whose `data` is this string.
    MoveAside(String),
    /// Records the event and never returns (the fire is pending when the run is dropped).
    Hold,
}

/// A sink that records the events, the moves aside and the connections it is told of.
pub struct TestSink {
    answer: Answer,
    events: Mutex<Vec<Event>>,
    moved: Mutex<Vec<String>>,
    connected: AtomicUsize,
}

/// A lock that a panicking test left poisoned still holds what was recorded.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Accepts every event.
    pub fn new() -> Arc<TestSink> {
        Self::with(Answer::Accept)
    }

    /// Moves aside the events whose `data` is the string `data`, accepts the others.
    pub fn moving_aside(data: &str) -> Arc<TestSink> {
        Self::with(Answer::MoveAside(data.to_string()))
    }

    /// Records every event and never returns from [`Sink::deliver`].
    pub fn holding() -> Arc<TestSink> {
        Self::with(Answer::Hold)
    }

    /// The events delivered so far, in order.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// Why each message moved aside so far was.
    pub fn moved(&self) -> Vec<String> {
        lock(&self.moved).clone()
    }

    /// How many times the run said it was connected.
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Sink for TestSink {
    async fn deliver(&self, event: Event) -> Delivery {
        let data = event.payload.get("data").cloned();
        lock(&self.events).push(event);
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
        lock(&self.moved).push(why.to_string());
    }
}

/// A JSON object as a parameter map.
pub fn config(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// What `source` keeps of `params` (a JSON object) for `feed`, as JSON.
pub fn configure(
    source: &(impl Source + ?Sized),
    feed: &str,
    params: Value,
) -> Result<Value, String> {
    let Value::Object(params) = params else {
        return Err("not an object".into());
    };
    source.configure(feed, &params).map(Value::Object)
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

/// The URL of the server a test runs against, from environment variable `var`; `None`, and
/// the test says it is skipped, when it is not set.
pub fn server_url(var: &str) -> Option<String> {
    let url = std::env::var(var).ok();
    if url.is_none() {
        eprintln!("skipped: {var} is not set");
    }
    url
}

/// Asserts that `feed` documents exactly the parameters `known` (in any order).
pub fn assert_documents(feed: &FeedDoc, known: &[&str]) {
    let params: Value = serde_json::from_str(feed.parameters).unwrap_or_default();
    let mut names: Vec<&str> = params
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    names.sort_unstable();
    let mut known = known.to_vec();
    known.sort_unstable();
    assert_eq!(names, known, "{}", feed.name);
}
