//! The gateway: Gust's HTTP front door. It speaks OpenWhisk's REST API (`/api/v1`), AWS
//! Lambda's (`/2015-03-31/functions...`), Step Functions' (`POST /` with
//! `X-Amz-Target: AWSStepFunctions.*`) and Durable Functions' HTTP API
//! (`/runtime/webhooks/durabletask`), turns requests into typed calls on the [`Controller`]
//! (workflows: on [`Workflows`]) and turns every [`ControllerError`] and [`WorkflowError`]
//! into one status code and OpenWhisk's JSON error body, in one place ([`error`]; Lambda's
//! own shape in `lambda::error`, Step Functions' in `states::error`).
//!
//! Modules come in three kinds. **Resources** (`system`, `namespaces`, `actions`, `packages`,
//! `triggers`, `rules`, `mappings`, `activations`, `apis`, `sites`, `web`, `console`, the web
//! console's files, `workflows`, `lambda`, AWS Lambda's API, `states`, Step Functions' API,
//! and `durable`, Durable Functions' HTTP API) each hold one REST resource's handlers and its
//! `router()`. The **kit** (`extract`, `respond`, `error`, `query`, `request_id`,
//! `http_action`, `lambda_http`) is what resources share. **Wiring** (`router`, this file)
//! puts them together.
//!
//! **Invariant:** a resource module imports the kit, never another resource; the kit imports
//! no resource. Only the wiring names several resources. One exception: `states` checks
//! AWS Signature Version 4 with `lambda`'s `sigv4` (the same check, for another service
//! name) rather than keep a second copy of it.
//!
//! **API boundary:** paths, query parameters, JSON shapes, status codes and messages are
//! OpenWhisk's, so `wsk`-style clients work unchanged (under `/2015-03-31/` and
//! `/2021-10-31/` they are Lambda's, for boto3 and the AWS CLI). Every response carries
//! `X-Request-ID`; OpenWhisk's error bodies are `{"error": ..., "code": <request id>}`.
//!
//! [`Controller`]: gust_controller::Controller
//! [`ControllerError`]: gust_controller::ControllerError
//! [`Workflows`]: gust_workflow::Workflows
//! [`WorkflowError`]: gust_workflow::WorkflowError

#![cfg_attr(test, allow(clippy::unwrap_used))]

// The kit.
mod access;
mod error;
mod extract;
pub mod guard;
mod http_action;
mod lambda_http;
mod query;
mod request_id;
mod respond;

// The resources.
mod actions;
mod activations;
mod apis;
mod console;
mod deadletters;
mod durable;
mod hooks;
mod lambda;
mod mappings;
mod metrics;
mod namespaces;
mod packages;
mod rules;
mod sites;
mod states;
mod system;
mod tokens;
mod triggers;
mod web;
mod workflows;

// The wiring.
mod router;
pub use metrics::serve_metrics;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use gust_controller::Controller;
use gust_events::Events;
use gust_sites::Sites;
use gust_workflow::Workflows;

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
    /// Failed authentications per client address, and the security headers of every answer.
    pub guard: Arc<guard::Guard>,
    /// Set when the listener stops: answers that would never end on their own (live
    /// streams) end then, so a graceful shutdown does not wait for them.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// Durable workflows (decision 0028); without them, the workflow APIs answer 503.
    pub workflows: Option<Workflows>,
}

impl Gateway {
    pub fn new(controller: Arc<Controller>, events: Arc<Events>, sites: Arc<Sites>) -> Self {
        Gateway {
            controller,
            events,
            sites,
            rate_limits: Arc::default(),
            guard: Arc::default(),
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
            workflows: None,
        }
    }

    /// The same gateway, serving the workflow APIs (Gust's, Step Functions' and Durable
    /// Functions') over `workflows`.
    pub fn with_workflows(mut self, workflows: Workflows) -> Self {
        self.workflows = Some(workflows);
        self
    }

    /// The workflows service, or the 503 of a server that runs none.
    pub(crate) fn workflows(&self) -> Result<&Workflows, ApiError> {
        self.workflows.as_ref().ok_or_else(ApiError::no_workflows)
    }

    /// Completes once the listener has stopped taking connections.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// The same gateway, its answers saying `Strict-Transport-Security` (it serves TLS with
    /// a certificate browsers trust).
    pub fn with_hsts(mut self) -> Self {
        self.guard = Arc::new(guard::Guard::new(true));
        self
    }
}

/// The whole HTTP service: every request gets an id and passes the guard, and static sites
/// are served ahead of the router.
pub fn service(gw: Gateway) -> WithRequestId<Router, impl request_id::Ahead> {
    let guard = gw.guard.clone();
    WithRequestId::new(router::router(gw.clone()), sites::Public(gw), guard)
}

/// Most time a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Most time a graceful shutdown waits for the requests in flight: a blocking invocation
/// waits at most 60 s for its result before it is answered 202.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(65);

/// Serves the gateway on `listener` until `shutdown` completes, then lets the requests in
/// flight finish. With `tls`, every connection is TLS (HTTP/2 or HTTP/1.1 by ALPN); without,
/// plain HTTP/1.1 (and HTTP/2 with prior knowledge). Every connection sends what it writes at
/// once (`TCP_NODELAY`): a response written in pieces (headers, then a streamed body, as a
/// wasi:http handler answers) would otherwise wait for the client's delayed ACK, about 40 ms,
/// before its second piece leaves. Each request carries its client's address
/// (`ConnectInfo<SocketAddr>`) for the guard.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;

    let closing = gateway.closing.clone();
    let service = service(gateway);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // With a timer, HTTP/1.1 closes a connection whose request head does not arrive within
    // 30 s (hyper's default header read timeout), so a slow client cannot hold a connection
    // or a graceful shutdown for ever.
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(hyper_util::rt::TokioTimer::new());
    builder.http2().timer(hyper_util::rt::TokioTimer::new());
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let hyper_service = connection_service(service.clone(), peer, acceptor.is_some());
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let served = match acceptor {
                None => {
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(tcp), hyper_service)
                        .into_owned();
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), hyper_service)
                        .into_owned();
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    closing.send_replace(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}: stopping anyway");
    }
    Ok(())
}

/// Whether a request came over TLS: what the URLs the gateway hands out (a Lambda function
/// URL) start with. A request handed to [`service`] without it came over plain HTTP.
#[derive(Debug, Clone, Copy)]
pub struct ServedOverTls(pub bool);

/// The service of one connection: each request gets the client's address and whether the
/// connection is TLS, then goes to the gateway's service.
fn connection_service<S>(
    service: S,
    peer: std::net::SocketAddr,
    tls: bool,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>>
             + Send
             + 'static,
> + Clone
+ Send
+ 'static
where
    S: tower_service::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req.extensions_mut().insert(ServedOverTls(tls));
        let mut service = service.clone();
        async move {
            std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
            service.call(req).await
        }
    })
}
