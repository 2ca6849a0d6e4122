//! What the invoker does with a message the bus delivers again: nothing twice, and never
//! silence. A bus that hands the test the invoker's handler stands in for NATS, so deliveries
//! can carry any attempt number.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use gust_bus::{Ack, Bus, BusError, Delivery, Handler, Subscription};
use gust_invoker::Invoker;
use gust_model::{
    ActionLimits, Activation, ActivationResponse, ActivationStatus, EncodedActivation, SystemLimits,
};
use gust_runtime_wasm::{EngineLimits, WasmRuntime};
use gust_store::ActivationStore;
use gust_store::sqlite::{Durability, SqliteStore};
use serde_json::json;

/// Keeps the handler the invoker registers and every message published.
#[derive(Default)]
struct CaptureBus {
    handler: Mutex<Option<Handler>>,
    published: Mutex<Vec<(String, Bytes)>>,
}

#[async_trait]
impl Bus for CaptureBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        self.published
            .lock()
            .unwrap()
            .push((subject.to_string(), payload));
        Ok(())
    }
    async fn subscribe(&self, _: &str) -> Result<Box<dyn Subscription>, BusError> {
        Err(BusError::Closed)
    }
    async fn consume(&self, _: &str, handler: Handler) -> Result<(), BusError> {
        *self.handler.lock().unwrap() = Some(handler);
        Ok(())
    }
}

struct Flag(Arc<AtomicBool>);

#[async_trait]
impl Ack for Flag {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    bus: Arc<CaptureBus>,
    _invoker: Arc<Invoker>,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(dir.path().join("gust.db"), Durability::Process).unwrap());
    let runtime =
        Arc::new(WasmRuntime::new(dir.path().join("cache"), EngineLimits::default()).unwrap());
    let bus = Arc::new(CaptureBus::default());
    let invoker = Invoker::new(
        "inv",
        runtime,
        store.clone(),
        bus.clone(),
        SystemLimits::default(),
    );
    invoker.start().await.unwrap();
    Rig {
        _dir: dir,
        store,
        bus,
        _invoker: invoker,
    }
}

fn message(id: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&json!({
            "activation_id": id, "namespace": "ns", "action": "never-compiled",
            "version": "0.0.1", "kind": "wasm", "code_hash": "no-such-code",
            "subject": "ns", "params": {}, "env": [], "limits": ActionLimits::default(),
            "blocking": false, "reply_to": "completed.ctl", "accepted_at": 1,
        }))
        .unwrap(),
    )
}

/// Delivers `payload` as attempt `attempt`; returns whether it was acknowledged.
async fn deliver(rig: &Rig, payload: Bytes, attempt: u64, last: bool) -> bool {
    let acked = Arc::new(AtomicBool::new(false));
    let delivery =
        Delivery::new(payload, Some(Box::new(Flag(acked.clone())))).with_attempt(attempt, last);
    let handler = rig.bus.handler.lock().unwrap().clone().unwrap();
    handler(delivery).unwrap();
    for _ in 0..200 {
        if acked.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn the_last_delivery_ends_as_an_internal_error_record_and_a_dead_letter() {
    let rig = rig().await;
    assert!(deliver(&rig, message("dead1"), 5, true).await);
    let rec = rig.store.activation("ns", "dead1").await.unwrap().unwrap();
    assert_eq!(rec.status_code, 3, "whisk internal error");
    let result = serde_json::to_value(&rec.response).unwrap();
    assert!(
        result["result"]["error"]
            .as_str()
            .unwrap()
            .contains("delivered 5 times without finishing"),
        "{result}"
    );
    let published = rig.bus.published.lock().unwrap().clone();
    let subjects: Vec<&str> = published.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(subjects, ["dead.inv", "completed.ctl"]);
    assert_eq!(
        published[0].1,
        message("dead1"),
        "the dead letter is the message"
    );
}

#[tokio::test]
async fn a_redelivered_invocation_that_was_recorded_is_acknowledged_not_run() {
    let rig = rig().await;
    let rec = Activation {
        namespace: "ns".into(),
        name: "never-compiled".into(),
        version: "0.0.1".into(),
        subject: "ns".into(),
        activation_id: "done1".into(),
        start: 7,
        end: 8,
        duration: 1,
        status_code: 0,
        response: ActivationResponse::new(ActivationStatus::Success, json!({})),
        logs: vec![],
        annotations: vec![],
        publish: false,
        cause: None,
    };
    rig.store
        .put_activation(&EncodedActivation::new(&rec).unwrap())
        .await
        .unwrap();
    assert!(deliver(&rig, message("done1"), 2, false).await);
    assert!(
        rig.bus.published.lock().unwrap().is_empty(),
        "no completion: the first run sent it"
    );
    // A first delivery of a copy sent again from the journal (a swept stale entry) is
    // checked the same way.
    let mut resent: serde_json::Value = serde_json::from_slice(&message("done1")).unwrap();
    resent["resent"] = json!(true);
    let resent = Bytes::from(serde_json::to_vec(&resent).unwrap());
    assert!(deliver(&rig, resent, 1, false).await);
    assert!(rig.bus.published.lock().unwrap().is_empty());
    let kept = rig.store.activation("ns", "done1").await.unwrap().unwrap();
    assert_eq!(kept.start, 7, "the stored record is untouched");
}
