//! Resource: the system — `/ping` and the platform's description at `/` and `/api/v1`
//! (runtimes and system limits). Imports the kit only.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gust_model::ActionLimits;
use gust_model::limits::MB;
use serde_json::{Value, json};

use crate::Gateway;
use crate::respond::json_response;

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/ping", get(ping))
        .route("/", get(info))
        .route("/api/v1", get(info))
}

async fn ping() -> Response {
    (StatusCode::OK, "pong").into_response()
}

async fn info(State(gw): State<Gateway>) -> Response {
    let sys = gw.controller.system_limits();
    json_response(
        StatusCode::OK,
        &json!({
            "description": "Gust serverless functions platform (OpenWhisk API)",
            "api_paths": ["/api/v1"],
            "runtimes": runtimes(gw.controller.kinds()),
            "limits": {
                "min_action_duration": ActionLimits::TIMEOUT.0,
                "max_action_duration": ActionLimits::TIMEOUT.1,
                "min_action_memory": ActionLimits::MEMORY.0 * MB,
                "max_action_memory": ActionLimits::MEMORY.1 * MB,
                "min_action_logs": ActionLimits::LOGS.0 * MB,
                "max_action_logs": ActionLimits::LOGS.1 * MB,
                "max_action_code": sys.max_code,
                "max_payload": sys.max_payload,
                "max_parameters": sys.max_parameters,
                "max_result": sys.max_result,
            }
        }),
    )
}

/// OpenWhisk's runtime manifest: kinds grouped by language, the default of each marked.
fn runtimes(kinds: &gust_runtime_process::kinds::Kinds) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(
        "wasm".into(),
        json!([{ "kind": "wasm", "default": true, "deprecated": false, "attached": true,
                 "image": "wasm32-wasip1 module or wasm32-wasip2 command component" }]),
    );
    for k in kinds.all() {
        let entry = json!({
            "kind": k.name,
            "default": k.default,
            "deprecated": false,
            "attached": false,
            "image": k.interpreter.as_ref().map_or("x86-64 Linux executable".to_string(), |p| p.display().to_string()),
        });
        if let Some(Value::Array(list)) = out.get_mut(k.family.name()) {
            list.push(entry);
        } else {
            out.insert(k.family.name().into(), json!([entry]));
        }
    }
    // Lambda functions (decision 0025): any `python3.N` or `nodejsN.x` on the family's
    // interpreter, `provided*` as the zip's own bootstrap.
    let lambda: Vec<Value> = kinds
        .lambda_examples()
        .into_iter()
        .map(|k| {
            json!({ "kind": k, "default": false, "deprecated": false, "attached": false,
                         "image": "AWS Lambda function (zip, Runtime API)" })
        })
        .collect();
    if !lambda.is_empty() {
        out.insert("lambda".into(), Value::Array(lambda));
    }
    Value::Object(out)
}
