//! The gateway: Gust's HTTP front door. It speaks OpenWhisk's REST API (`/api/v1`), turns
//! requests into typed calls on the [`Controller`] and turns every [`ControllerError`] into
//! one status code and OpenWhisk's JSON error body, in one place ([`error`]).
//!
//! Modules come in three kinds. **Resources** (`system`, `namespaces`, `actions`, `packages`,
//! `triggers`, `rules`, `activations`, `apis`, `sites`, `web`) each hold one REST resource's handlers and its
//! `router()`. The **kit** (`extract`, `respond`, `error`, `query`, `request_id`,
//! `http_action`) is what resources share. **Wiring** (`router`, this file) puts them
//! together.
//!
//! **Invariant:** a resource module imports the kit, never another resource; the kit imports
//! no resource. Only the wiring names several resources.
//!
//! **API boundary:** paths, query parameters, JSON shapes, status codes and messages are
//! OpenWhisk's, so `wsk`-style clients work unchanged. Every response carries `X-Request-ID`;
//! error bodies are `{"error": ..., "code": <request id>}`.
//!
//! [`Controller`]: gust_controller::Controller
//! [`ControllerError`]: gust_controller::ControllerError

#![cfg_attr(test, allow(clippy::unwrap_used))]

// The kit.
mod access;
mod error;
mod extract;
mod http_action;
mod query;
mod request_id;
mod respond;

// The resources.
mod actions;
mod activations;
mod apis;
mod hooks;
mod namespaces;
mod packages;
mod rules;
mod sites;
mod system;
mod tokens;
mod triggers;
mod web;

// The wiring.
mod router;

use std::sync::Arc;

use axum::Router;
use gust_controller::Controller;
use gust_events::Events;
use gust_sites::Sites;

pub use error::ApiError;
pub use request_id::WithRequestId;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub controller: Arc<Controller>,
    /// Triggers, rules and fires.
    pub events: Arc<Events>,
    /// Static sites, served publicly and deployed through the API.
    pub sites: Arc<Sites>,
    /// Requests counted against API routes' rate limits (per gateway process).
    pub rate_limits: Arc<apis::RateLimits>,
}

impl Gateway {
    pub fn new(controller: Arc<Controller>, events: Arc<Events>, sites: Arc<Sites>) -> Self {
        Gateway {
            controller,
            events,
            sites,
            rate_limits: Arc::default(),
        }
    }
}

/// The whole HTTP service: every request gets an id, and static sites are served ahead of the
/// router.
pub fn service(gw: Gateway) -> WithRequestId<Router, impl request_id::Ahead> {
    WithRequestId::new(router::router(gw.clone()), sites::Public(gw))
}

/// Serves the gateway's router on `listener` until `shutdown` completes. Every connection
/// sends what it writes at once (`TCP_NODELAY`): a response written in pieces (headers, then
/// a streamed body, as a wasi:http handler answers) would otherwise wait for the client's
/// delayed ACK, about 40 ms, before its second piece leaves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let service = axum::ServiceExt::<axum::extract::Request>::into_make_service(service(gateway));
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}
