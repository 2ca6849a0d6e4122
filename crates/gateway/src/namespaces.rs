//! Resource: namespaces — the caller's namespaces (`/api/v1/namespaces`) and a namespace's
//! limits (`.../{ns}/limits`). Imports the kit only.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use gust_model::ActionLimits;
use gust_model::limits::MB;
use serde_json::json;

use crate::Gateway;
use crate::extract::Caller;
use crate::respond::{ApiResult, json_response};

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/api/v1/namespaces", get(namespaces))
        .route("/api/v1/namespaces/{ns}/limits", get(limits))
}

async fn namespaces(Caller(who): Caller) -> Response {
    json_response(StatusCode::OK, &json!([who.namespace]))
}

async fn limits(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
) -> ApiResult {
    let ns = gw.controller.authorize(&who, &ns)?;
    let namespace = gw.controller.namespace(ns).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "invocationsPerMinute": namespace.limits.invocations_per_minute,
            "concurrentInvocations": namespace.limits.concurrent_invocations,
            "firesPerMinute": namespace.limits.fires_per_minute,
            "minActionTimeout": ActionLimits::TIMEOUT.0,
            "maxActionTimeout": ActionLimits::TIMEOUT.1,
            "minActionMemory": ActionLimits::MEMORY.0 * MB,
            "maxActionMemory": ActionLimits::MEMORY.1 * MB,
            "minActionLogs": ActionLimits::LOGS.0 * MB,
            "maxActionLogs": ActionLimits::LOGS.1 * MB,
        }),
    ))
}
