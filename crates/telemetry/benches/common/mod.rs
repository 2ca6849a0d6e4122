//! The fixture the benchmarks share: a Wasm activation's record as the invoker writes it.

use gust_model::record::annotation;
use gust_model::{Activation, ActivationResponse, ActivationStatus};
use serde_json::json;

pub fn record() -> Activation {
    Activation {
        namespace: "guest".into(),
        name: "hello".into(),
        version: "0.0.1".into(),
        subject: "guest".into(),
        activation_id: "0190b7a1c2d34e5f8a9b0c1d2e3f4a5b".into(),
        start: 1_000,
        end: 1_002,
        duration: 2,
        status_code: 0,
        response: ActivationResponse::new(ActivationStatus::Success, json!({"ok": true})),
        logs: Vec::new(),
        annotations: vec![
            annotation("path", json!("guest/hello")),
            annotation("waitTime", json!(1)),
            annotation("kind", json!("wasm")),
            annotation(
                "limits",
                json!({"timeout": 60000, "memory": 256, "logs": 10}),
            ),
            annotation("initTime", json!(0)),
        ],
        publish: false,
        cause: None,
    }
}
