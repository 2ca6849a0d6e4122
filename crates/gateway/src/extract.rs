//! Kit: what handlers take from a request — the authenticated [`Caller`] (by key or token;
//! [`KeyCaller`] by key only), the query
//! [`params`], the [`body`], the trace context ([`Trace`]) — and the 400s and 413s of reading
//! them. Imports the kit only.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, QueryRejection};
use axum::extract::{FromRequestParts, Query};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;
use gust_controller::tokens::{Grant, Verb};
use gust_controller::{ControllerError, Identity};
use gust_model::TraceParent;
use gust_model::limits::MAX_INVOKE_BODY;

use crate::access::rest_access;
use crate::query::Params;
use crate::{ApiError, Gateway};

/// The query string as a handler takes it: its rejection becomes OpenWhisk's 400 in
/// [`params`], after the extractors before it.
pub(crate) type QueryString = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The body as a handler takes it: its rejection becomes a 400 or 413 in [`body`].
pub(crate) type RawBody = Result<Bytes, BytesRejection>;

/// The authenticated caller, from HTTP Basic `uuid:key` or a bearer token; a token must
/// allow what the request does ([`rest_access`]), else 403 naming its scope.
pub(crate) struct Caller(pub(crate) Identity);

impl FromRequestParts<Gateway> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, ApiError> {
        let value = authorization(parts)?;
        let Some(token) = bearer(value) else {
            return Ok(Caller(basic_identity(gw, value).await?));
        };
        let (who, grant) = gw.controller.authenticate_token(token).await?;
        let path = parts.uri.path();
        let (verb, entity) = rest_access(&parts.method, path)
            .ok_or_else(|| ControllerError::Forbidden(path.to_string()))?;
        grant.permit(verb, &entity)?;
        // Another namespace (its published packages): a token only reads there.
        let ns = path
            .strip_prefix("/api/v1/namespaces/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("_");
        if ns != "_" && ns != who.namespace && verb != Verb::Read {
            return Err(ControllerError::OutOfScope {
                verb: verb.as_str(),
                entity: format!("/{ns}/{entity}"),
                scope: grant.scope.to_string(),
            }
            .into());
        }
        parts.extensions.insert(grant);
        Ok(Caller(who))
    }
}

/// The [`Grant`] of the token the [`Caller`] (extracted before it) authenticated with;
/// `None` for a key. Handlers that write references to other entities (sequences, rules,
/// bindings) check them with it.
pub(crate) struct TokenGrant(pub(crate) Option<Grant>);

impl FromRequestParts<Gateway> for TokenGrant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Gateway) -> Result<Self, ApiError> {
        Ok(TokenGrant(parts.extensions.get::<Grant>().cloned()))
    }
}

/// The caller authenticated with its namespace's key (HTTP Basic) only: what a token may
/// never do (mint tokens) asks for this; a token gets a 403.
pub(crate) struct KeyCaller(pub(crate) Identity);

impl FromRequestParts<Gateway> for KeyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, ApiError> {
        let value = authorization(parts)?;
        if let Some(token) = bearer(value) {
            // A valid token is refused as a token, anything else as bad credentials.
            gw.controller.authenticate_token(token).await?;
            return Err(ControllerError::TokenCannotMint.into());
        }
        Ok(KeyCaller(basic_identity(gw, value).await?))
    }
}

/// The `Authorization` header's value; 401 when there is none or it is not text.
fn authorization(parts: &Parts) -> Result<&str, ControllerError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(ControllerError::AuthenticationMissing)?
        .to_str()
        .map_err(|_| ControllerError::Unauthenticated)
}

/// The token of an `Authorization: Bearer <token>` header value, if it is one.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// The identity an `Authorization` header value (a key or a token) still names, for a
/// request that lasts (a live stream checks its caller again while it runs): a rotated key,
/// an expired token or a deleted namespace no longer do. A token's scope was checked when
/// the request began and cannot change.
pub(crate) async fn identity_of(gw: &Gateway, value: &str) -> Result<Identity, ApiError> {
    match bearer(value) {
        Some(token) => Ok(gw.controller.authenticate_token(token).await?.0),
        None => basic_identity(gw, value).await,
    }
}

/// The identity an `Authorization: Basic uuid:key` header value names; 401 if it names none.
pub(crate) async fn basic_identity(gw: &Gateway, value: &str) -> Result<Identity, ApiError> {
    let invalid = || ControllerError::Unauthenticated;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or_else(invalid)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (uuid, key) = text.split_once(':').ok_or_else(invalid)?;
    Ok(gw.controller.authenticate(uuid, key).await?)
}

/// The query parameters, or OpenWhisk's 400 for a query string that does not decode.
pub(crate) fn params(q: QueryString) -> Result<Params, ApiError> {
    q.map(|Query(m)| Params(m))
        .map_err(|e| ApiError::bad_request(format!("The query string is malformed: {e}")))
}

/// The body, or a 413 naming `limit` when it was longer than the router's body limit, or a
/// 400. `limit` only names the limit in the message: what is read is bounded by the route's
/// `DefaultBodyLimit`.
pub(crate) fn body(b: RawBody, limit: usize) -> Result<Bytes, ApiError> {
    b.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            too_long(limit)
        }
        other => ApiError::bad_request(format!("Failed extracting request body: {other}")),
    })
}

/// OpenWhisk's 413 for a body longer than `limit` bytes, read no further.
pub(crate) fn too_long(limit: usize) -> ApiError {
    ControllerError::BodyTooLarge { max: limit as u64 }.into()
}

/// The body of an invoke or a fire: read up to `MAX_INVOKE_BODY` (413 past it), and at most
/// `max_payload` bytes (the system's limit on what an action takes; 413 past it).
pub(crate) fn payload_body(b: RawBody, max_payload: u64) -> Result<Bytes, ApiError> {
    let b = body(b, MAX_INVOKE_BODY)?;
    if b.len() as u64 > max_payload {
        return Err(payload_too_large(b.len(), max_payload));
    }
    Ok(b)
}

/// OpenWhisk's 413 for a payload of `size` bytes, over the system's `max_payload`.
pub(crate) fn payload_too_large(size: usize, max: u64) -> ApiError {
    ControllerError::RequestTooLarge {
        size: size as u64,
        max,
    }
    .into()
}

/// A JSON body that may be empty (or only whitespace): then `T::default()`; otherwise
/// OpenWhisk's 400 when it is not a `T`.
pub(crate) fn json_or_default<T: serde::de::DeserializeOwned + Default>(
    b: &[u8],
) -> Result<T, ApiError> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(b).map_err(malformed)
}

/// OpenWhisk's 400 for a body that is not what the resource reads, saying why.
pub(crate) fn malformed(e: impl std::fmt::Display) -> ApiError {
    ControllerError::malformed(e).into()
}

/// The W3C trace context's header (decision 0026).
pub(crate) const TRACEPARENT: &str = "traceparent";

/// The trace context a request that produces invocations passes on: exactly one
/// `traceparent` that parses, or none. A missing, repeated or malformed header is ignored
/// (the invocation starts a new trace), as the W3C recommendation says; never a reason to
/// refuse a request.
pub(crate) struct Trace(pub(crate) Option<TraceParent>);

impl<S: Send + Sync> FromRequestParts<S> for Trace {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(Trace(trace_of(&parts.headers)))
    }
}

/// The trace context in `headers` ([`Trace`]).
pub(crate) fn trace_of(headers: &axum::http::HeaderMap) -> Option<TraceParent> {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    TraceParent::from_header(value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn one_valid_traceparent_is_taken_anything_else_ignored() {
        const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut h = HeaderMap::new();
        assert_eq!(trace_of(&h), None);
        h.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(trace_of(&h).map(|t| t.to_string()).as_deref(), Some(VALID));
        h.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(trace_of(&h), None, "two headers are ambiguous");
        h.insert(TRACEPARENT, HeaderValue::from_static("00-zz"));
        assert_eq!(trace_of(&h), None);
        h.insert(TRACEPARENT, HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(trace_of(&h), None);
    }
}
