//! Kit: the service around the router that gives every request an id, and lets the requests
//! of an [`Ahead`] (static sites) skip routing. Imports the kit only; the wiring (`lib.rs`)
//! says who is ahead.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorBody, error_body};
use crate::guard::Guard;

/// Largest body of a plain-text error that axum writes itself (a rejection), read to put its
/// text in the JSON error shape.
const MAX_PLAIN_ERROR: usize = 64 * 1024;

/// Answers some requests ahead of the router, without routing.
pub trait Ahead: Clone {
    /// Whether `req` is answered here rather than routed.
    fn takes(&self, req: &Request) -> bool;

    /// The answer to a request it [`takes`](Ahead::takes).
    fn answer(&self, req: Request) -> impl Future<Output = Response> + Send + 'static;
}

/// Gives every request an id: in `X-Request-ID` of the response and as `code` of an error.
/// It wraps the router (rather than being one of its layers, which run after routing, or
/// `middleware::from_fn`, which clones and boxes the inner service for every request), and
/// hands what `A` takes (static sites, `/sites/...`) to it without routing: matching,
/// extracting and boxing through axum's routes was a few per cent of a static file's CPU time.
/// The [`Guard`] sees every request before and every answer after.
#[derive(Debug, Clone)]
pub struct WithRequestId<S, A> {
    inner: S,
    ahead: A,
    guard: Arc<Guard>,
}

impl<S, A> WithRequestId<S, A> {
    pub(crate) fn new(inner: S, ahead: A, guard: Arc<Guard>) -> Self {
        WithRequestId {
            inner,
            ahead,
            guard,
        }
    }
}

impl<S, A> tower_service::Service<Request> for WithRequestId<S, A>
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
    A: Ahead,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let guard = self.guard.clone();
        let id = RequestId::new();
        req.extensions_mut().insert(id.clone());
        let seen = Guard::before(&req);
        if let Some(refused) = guard.refuse(&req) {
            return Box::pin(async move { Ok(guarded(&guard, seen, refused, id).await) });
        }
        if self.ahead.takes(&req) {
            let answer = self.ahead.answer(req);
            return Box::pin(async move { Ok(guarded(&guard, seen, answer.await, id).await) });
        }
        let response = self.inner.call(req);
        Box::pin(async move {
            let res = response.await?;
            Ok(guarded(&guard, seen, res, id).await)
        })
    }
}

/// A request's id: in the request's extensions from before routing (a Lambda function's
/// event names it as `requestContext.requestId`), and in the response's `X-Request-ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestId(pub(crate) String);

impl RequestId {
    fn new() -> Self {
        RequestId(uuid::Uuid::new_v4().simple().to_string())
    }
}

async fn guarded(
    guard: &Guard,
    seen: crate::guard::Seen,
    res: Response,
    id: RequestId,
) -> Response {
    let refused = Guard::refused(&res);
    let mut res = with_request_id(res, &id.0).await;
    guard.answered(seen, refused, &mut res);
    gust_telemetry::metrics::get().http_response(res.status().as_u16());
    res
}

/// Names the response's request in `X-Request-ID`, and writes an error's body with that id
/// as `code`.
async fn with_request_id(mut res: Response, id: &str) -> Response {
    let plain_error = res.status().as_u16() >= 400
        && res.extensions().get::<ErrorBody>().is_none()
        && res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if plain_error {
        // A rejection written by axum itself (a path segment that does not decode, ...):
        // the same JSON error shape as every other error.
        let (parts, body) = res.into_parts();
        let text = axum::body::to_bytes(body, MAX_PLAIN_ERROR)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        res = Response::from_parts(parts, axum::body::Body::empty());
        res.extensions_mut().insert(ErrorBody(text));
    }
    if let Some(ErrorBody(message)) = res.extensions_mut().remove::<ErrorBody>() {
        let status = res.status();
        let headers = std::mem::take(res.headers_mut());
        res = (status, error_body(&message, id)).into_response();
        for (k, v) in headers.iter() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                res.headers_mut().insert(k, v.clone());
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}
