//! Resource: a namespace's metrics (`GET /api/v1/namespaces/{ns}/metrics`, decision 0026) —
//! the series of the process's registry whose `namespace` label is the caller's, in
//! Prometheus' text format. The browser console polls it for its charts. Authenticated like
//! every namespace read (a key, or a token that may read `metrics`); another namespace is
//! refused as everywhere else. Imports the kit only.
//!
//! Also the metrics listener (`--metrics-addr`, [`serve_metrics`]): `GET /metrics`, every
//! series of the process, without authentication (it is bound to a private address); any
//! other path is 404. It is a router of its own, on a listener of its own, so the API's
//! routes, keys and TLS never reach it.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use gust_telemetry::metrics;
use tokio::net::TcpListener;

use crate::Gateway;
use crate::extract::Caller;
use crate::respond::ApiResult;

pub(crate) fn router() -> Router<Gateway> {
    Router::new().route("/api/v1/namespaces/{ns}/metrics", get(namespace_metrics))
}

async fn namespace_metrics(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
) -> ApiResult {
    let ns = gw.controller.authorize(&who, &ns)?;
    let text = metrics::get().encode_namespace(ns);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        text,
    )
        .into_response())
}

/// Serves `GET /metrics` (every series) on `listener` until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/metrics", get(all_metrics))
        .fallback(|| async { StatusCode::NOT_FOUND });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn all_metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::get().encode(),
    )
}
