//! Kit: serving an action over HTTP, as web actions (`web`) and API routes (`apis`) both do —
//! the request becomes the action's parameters (`__ow_method`, `__ow_headers`, `__ow_path`,
//! and the query and body, or with `raw-http` the raw `__ow_query` and `__ow_body`), the
//! result becomes the response, chosen by the [`Extension`]; `require-whisk-auth` and CORS
//! are checked and added here. A wasi:http handler gets the request itself. Semantics are
//! OpenWhisk's, except for a Lambda function (`lambda:<runtime>` kinds): its input is Lambda's
//! HTTP payload format 2.0 event and, with `.http` (or no extension), its response is read as
//! Lambda's function URLs read it (`lambda_http`); another extension renders the function's
//! response (`gust_model::lambda::payload`) as it renders an OpenWhisk action's result.
//! Imports the kit only.
//!
//! **Invariant:** an action is served here only if its `web-export` annotation is truthy;
//! otherwise the answer is the same 404 as for an action that does not exist. A request can
//! never set a `__ow_` parameter, nor (for a `final` action) one the action defines: the
//! controller's invoke API refuses those.

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use gust_controller::{
    ControllerError, HandlerOutcome, Identity, Invocation, InvokeOutcome, MAX_BLOCKING_WAIT,
    Resolved, Wait,
};
use gust_model::entity::{annotation, truthy};
use gust_model::limits::MAX_WEB_BODY;
use gust_model::{ActivationStatus, annotations};
use serde_json::{Map, Value, json};

use crate::extract::trace_of;
use crate::extract::{basic_identity, bearer, malformed, payload_too_large, too_long};
use crate::lambda_http::{self, Credentials};
use crate::respond::{Finished, accepted, internal, with_activation_id};
use crate::{ApiError, Gateway};

/// Methods a preflight answer allows.
const CORS_METHODS: &str = "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH";
/// Headers a preflight answer allows when the request does not name any.
const CORS_HEADERS: &str =
    "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent";
/// Headers a function's response may not set: they frame the message or manage the
/// connection, which only the server does.
pub(crate) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
/// OpenWhisk's answer when a projected property is missing from the result.
const NO_PROPERTY: &str = "Response does not include requested property.";

/// How the result becomes the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extension {
    Json,
    Html,
    Http,
    Svg,
    Text,
}

impl Extension {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "json" => Extension::Json,
            "html" => Extension::Html,
            "http" => Extension::Http,
            "svg" => Extension::Svg,
            "text" => Extension::Text,
            _ => return None,
        })
    }

    /// The result field a text extension shows when no path projects another.
    fn default_field(self) -> Option<&'static str> {
        match self {
            Extension::Html => Some("html"),
            Extension::Svg => Some("svg"),
            Extension::Text => Some("text"),
            Extension::Json | Extension::Http => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Extension::Html => "text/html; charset=UTF-8",
            Extension::Svg => "image/svg+xml",
            Extension::Text => "text/plain; charset=UTF-8",
            Extension::Json | Extension::Http => "application/json",
        }
    }
}

/// One request to serve with a resolved action.
pub(crate) struct Call<'a> {
    /// Whom the action runs as: the owner of the namespace it is served from.
    pub(crate) owner: &'a Identity,
    pub(crate) action: &'a Resolved,
    pub(crate) ext: Extension,
    /// What a `.json` or text extension selects from the result (`/a/b`, or empty).
    pub(crate) projection: &'a str,
    /// The action's `__ow_path`, and the path a wasi:http handler sees.
    pub(crate) ow_path: &'a str,
    /// Added to the action's parameters (an API route's path parameters).
    pub(crate) path_params: Vec<(String, String)>,
    /// The API route that serves the request (`/base/path` as declared), if one does: a
    /// token restricted to it may call it.
    pub(crate) route: Option<String>,
    /// What a Lambda function's event says served the request (`routeKey`, `rawPath`).
    pub(crate) lambda_route: lambda_http::Route,
    pub(crate) req: Request,
}

/// Whose conventions the action is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    OpenWhisk,
    /// A Lambda function: payload format 2.0.
    Lambda,
}

/// Whether the platform adds OpenWhisk's CORS headers to an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cors {
    Add,
    /// The action answers `OPTIONS` itself, or an API route has CORS off.
    Omit,
}

/// The answer to one request an action serves.
pub(crate) struct Answer {
    pub(crate) result: Result<Response, ApiError>,
    pub(crate) cors: Cors,
}

impl Answer {
    pub(crate) fn new(result: Result<Response, ApiError>, cors: Cors) -> Self {
        Answer { result, cors }
    }

    /// The response, with OpenWhisk's CORS headers when they belong on it; `requested` is
    /// the request's [`requested_headers`], which they echo.
    pub(crate) fn into_response(self, requested: Option<HeaderValue>) -> Response {
        let mut res = self.result.unwrap_or_else(IntoResponse::into_response);
        if self.cors == Cors::Add {
            cors(res.headers_mut(), requested);
        }
        res
    }
}

/// The request's `Access-Control-Request-Headers`, which the CORS headers of an [`Answer`]
/// echo.
pub(crate) fn requested_headers(request: &HeaderMap) -> Option<HeaderValue> {
    request.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned()
}

/// Adds OpenWhisk's CORS headers (unless the response has its own); `requested` is the
/// request's [`requested_headers`].
fn cors(headers: &mut HeaderMap, requested: Option<HeaderValue>) {
    let allow_headers = requested.unwrap_or(HeaderValue::from_static(CORS_HEADERS));
    headers
        .entry(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .or_insert(HeaderValue::from_static("*"));
    headers
        .entry(header::ACCESS_CONTROL_ALLOW_METHODS)
        .or_insert(HeaderValue::from_static(CORS_METHODS));
    headers
        .entry(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .or_insert(allow_headers);
}

/// Serves `call`: a 404 unless the action is web-exported, the platform's answer to
/// `OPTIONS` unless the action answers it itself, else the action's answer.
pub(crate) async fn serve(gw: &Gateway, call: Call<'_>) -> Answer {
    let action = &call.action.action;
    if !action.annotation_is_truthy(annotations::WEB_EXPORT) {
        return Answer::new(Err(ApiError::not_found()), Cors::Add);
    }
    let cors = if action.annotation_is_truthy(annotations::WEB_CUSTOM_OPTIONS) {
        Cors::Omit
    } else {
        Cors::Add
    };
    if call.req.method() == Method::OPTIONS && cors == Cors::Add {
        return Answer::new(Ok(StatusCode::OK.into_response()), Cors::Add);
    }
    Answer::new(run(gw, call).await, cors)
}

/// Runs the action of `call` for its request, once authenticated.
async fn run(gw: &Gateway, call: Call<'_>) -> Result<Response, ApiError> {
    let Call {
        owner,
        action: resolved,
        ext,
        projection,
        ow_path,
        path_params,
        route,
        lambda_route,
        req,
    } = call;
    let action = &resolved.action;
    let user = check_auth(gw, owner, action, route.as_deref(), req.headers()).await?;
    if action.exec.http {
        return serve_handler(gw, owner, resolved, ow_path, user, req).await;
    }
    let served = if gust_model::lambda::is_lambda_kind(&action.exec.kind) {
        Served::Lambda
    } else {
        Served::OpenWhisk
    };
    let max = gw.controller.system_limits().max_payload;
    let trace = trace_of(req.headers());
    let params = match served {
        Served::Lambda => {
            let credentials = if truthy(annotation(
                &action.annotations,
                annotations::REQUIRE_WHISK_AUTH,
            )) {
                Credentials::Platform
            } else {
                Credentials::Function
            };
            let (parts, body) = read_request(req, max).await?;
            lambda_http::event(
                &parts,
                &body,
                &lambda_route,
                &path_params,
                credentials,
                user.as_deref(),
                std::time::SystemTime::now(),
            )
        }
        Served::OpenWhisk => {
            let input = if action.annotation_is_truthy(annotations::RAW_HTTP) {
                Input::Raw
            } else {
                Input::Parsed
            };
            let mut params = request_params(req, input, ow_path, user, max).await?;
            for (k, v) in path_params {
                params.insert(k, Value::String(v));
            }
            params
        }
    };
    let outcome = gw
        .controller
        .invoke(Invocation {
            caller: owner,
            action: resolved,
            params,
            wait: Wait::UpTo(MAX_BLOCKING_WAIT),
            cause: None,
            secrets: Vec::new(),
            activation_id: None,
            trace,
        })
        .await?;
    match (outcome, served, ext) {
        (InvokeOutcome::Accepted(id) | InvokeOutcome::Waiting(id), Served::Lambda, _) => {
            Ok(lambda_http::unfinished_response(&id))
        }
        (InvokeOutcome::Accepted(id) | InvokeOutcome::Waiting(id), Served::OpenWhisk, _) => {
            Ok(accepted(&id))
        }
        (InvokeOutcome::Completed(record), Served::Lambda, Extension::Http) => {
            lambda_http::finished_response(record.get())
        }
        (InvokeOutcome::Completed(record), served, _) => {
            finished_response(record.get(), served, ext, projection)
        }
    }
}

/// Checks `require-whisk-auth`: `true` asks for any valid API key (the caller's namespace is
/// then `__ow_user`) or a token of the action's namespace that may call it (its web action or
/// API route, or in its scope), a string or number for that secret in `X-Require-Whisk-Auth`.
async fn check_auth(
    gw: &Gateway,
    owner: &Identity,
    action: &gust_model::Action,
    route: Option<&str>,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let annotations = &action.annotations;
    let missing = || ControllerError::AuthenticationMissing;
    let invalid = || ControllerError::Unauthenticated;
    match annotation(annotations, annotations::REQUIRE_WHISK_AUTH) {
        Some(Value::Bool(true)) => {
            let value = headers
                .get(header::AUTHORIZATION)
                .ok_or_else(missing)?
                .to_str()
                .map_err(|_| invalid())?;
            let who: Identity = match bearer(value) {
                Some(token) => {
                    let (who, grant) = gw.controller.authenticate_token(token).await?;
                    grant.permit_web(&who.namespace, &owner.namespace, &action.name, route)?;
                    who
                }
                None => basic_identity(gw, value).await?,
            };
            Ok(Some(who.namespace))
        }
        Some(v @ (Value::String(_) | Value::Number(_))) if truthy(Some(v)) => {
            let secret = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let given = headers
                .get("x-require-whisk-auth")
                .ok_or_else(missing)?
                .as_bytes();
            if gust_controller::constant_time_eq(given, secret.as_bytes()) {
                Ok(None)
            } else {
                Err(invalid().into())
            }
        }
        _ => Ok(None),
    }
}

/// How the query and body reach the action.
#[derive(Debug, Clone, Copy)]
enum Input {
    /// Merged into the parameters (a JSON object's or a form's fields), else `__ow_body`.
    Parsed,
    /// As they came: `__ow_query` and `__ow_body` (annotation `raw-http`).
    Raw,
}

/// The request's head and whole body, at most `MAX_WEB_BODY` and `max_payload` bytes of it.
async fn read_request(
    req: Request,
    max_payload: u64,
) -> Result<(axum::http::request::Parts, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_WEB_BODY)
        .await
        .map_err(|_| too_long(MAX_WEB_BODY))?;
    // The body is what a caller controls in size: headers and query are bounded by the
    // server's own limits.
    if body.len() as u64 > max_payload {
        return Err(payload_too_large(body.len(), max_payload));
    }
    Ok((parts, body))
}

/// The action's parameters from the request; `ow_path` is its `__ow_path`, `user` its
/// `__ow_user`.
async fn request_params(
    req: Request,
    input: Input,
    ow_path: &str,
    user: Option<String>,
    max_payload: u64,
) -> Result<Map<String, Value>, ApiError> {
    let (parts, body) = read_request(req, max_payload).await?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let query = parts.uri.query().unwrap_or("");
    let mut params = Map::new();
    match input {
        Input::Raw => {
            params.insert("__ow_query".into(), json!(query));
            if !body.is_empty() {
                params.insert("__ow_body".into(), body_value(&body, &content_type));
            }
        }
        Input::Parsed => {
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                reject_reserved(&k)?;
                params.insert(k.into_owned(), Value::String(v.into_owned()));
            }
            if !body.is_empty() {
                merge_body(&mut params, &body, &content_type)?;
            }
        }
    }
    let mut headers = Map::new();
    for (k, v) in &parts.headers {
        // Credentials stay with the platform.
        if k == header::AUTHORIZATION {
            continue;
        }
        headers.insert(
            k.as_str().to_string(),
            Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
        );
    }
    params.insert(
        "__ow_method".into(),
        json!(parts.method.as_str().to_ascii_lowercase()),
    );
    params.insert("__ow_headers".into(), Value::Object(headers));
    params.insert("__ow_path".into(), json!(ow_path));
    if let Some(u) = user {
        params.insert("__ow_user".into(), json!(u));
    }
    Ok(params)
}

/// OpenWhisk's 400 for a request parameter the platform reserves.
fn reject_reserved(key: &str) -> Result<(), ApiError> {
    if key.starts_with("__ow_") {
        return Err(ControllerError::ReservedParameters.into());
    }
    Ok(())
}

/// Whether a response body of this content type is text (sent as the action wrote it)
/// rather than bytes (which the action writes base64-encoded).
pub(crate) fn is_text(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    let ct = ct.split(';').next().unwrap_or("").trim();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct.ends_with("+json")
        || ct.ends_with("+xml")
        || matches!(
            ct,
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
        )
}

/// Whether a request body of this content type reaches the action as a string rather than
/// base64: as OpenWhisk (after spray) decides it, JSON counts as bytes.
fn is_text_request(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    let ct = ct.split(';').next().unwrap_or("").trim();
    is_text(ct) && ct != "application/json" && !ct.ends_with("+json")
}

/// A body as a parameter value: text as a string, bytes base64-encoded.
fn body_value(body: &Bytes, content_type: &str) -> Value {
    match std::str::from_utf8(body) {
        Ok(s) if is_text_request(content_type) => Value::String(s.to_string()),
        _ => Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
    }
}

/// Merges a JSON object or form body into the parameters; any other body is `__ow_body`.
fn merge_body(params: &mut Map<String, Value>, body: &Bytes, ct: &str) -> Result<(), ApiError> {
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || mime.ends_with("+json") {
        let v: Value = serde_json::from_slice(body).map_err(malformed)?;
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    reject_reserved(&k)?;
                    params.insert(k, v);
                }
            }
            other => {
                params.insert("__ow_body".into(), other);
            }
        }
    } else if mime == "application/x-www-form-urlencoded" {
        for (k, v) in form_urlencoded::parse(body) {
            reject_reserved(&k)?;
            params.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    } else {
        params.insert("__ow_body".into(), body_value(body, ct));
    }
    Ok(())
}

/// Hands a web request to a wasi:http handler: the path it sees is `ow_path` (what follows
/// the action, or an API route's path) with the query; the response streams back as written.
async fn serve_handler(
    gw: &Gateway,
    owner: &Identity,
    resolved: &Resolved,
    ow_path: &str,
    user: Option<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    // `ow_path` arrives decoded: encode again what a URI path cannot hold as it is.
    let mut path = String::with_capacity(ow_path.len() + 1);
    if !ow_path.starts_with('/') {
        path.push('/');
    }
    for b in ow_path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    let target = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    // Credentials stay with the platform; the handler learns only who called (when the
    // action requires authentication), from a header no client can set.
    parts.headers.remove(header::AUTHORIZATION);
    parts.headers.remove("x-require-whisk-auth");
    parts.headers.remove("x-ow-user");
    if let Some(ns) = user
        && let Ok(v) = HeaderValue::from_str(&ns)
    {
        parts.headers.insert("x-ow-user", v);
    }
    parts.uri = target
        .parse()
        .map_err(|_| ApiError::bad_request("The request path is not a valid URI."))?;
    if !parts.headers.contains_key(header::HOST) {
        parts
            .headers
            .insert(header::HOST, HeaderValue::from_static("localhost"));
    }
    let req = Request::from_parts(parts, body);
    let (id, outcome) = gw.controller.serve_handler(owner, resolved, req).await?;
    let res = match outcome {
        HandlerOutcome::Response(r) => {
            let (parts, body) = r.into_parts();
            Response::from_parts(parts, axum::body::Body::new(body))
        }
        HandlerOutcome::Failed(why) => ApiError::new(StatusCode::BAD_GATEWAY, why).into_response(),
    };
    Ok(with_activation_id(res, &id))
}

/// The response for a finished activation; `projection` selects from its result (a Lambda
/// function's: from its response).
fn finished_response(
    record: &str,
    served: Served,
    ext: Extension,
    projection: &str,
) -> Result<Response, ApiError> {
    let record = Finished::read(record)?;
    let id = record.activation_id;
    let raw = record.response.result;
    // The common case answers with the result's text as stored: no value is built.
    if record.response.status == ActivationStatus::Success
        && served == Served::OpenWhisk
        && ext == Extension::Json
        && projection.trim_matches('/').is_empty()
    {
        return Ok(with_activation_id(json_answer(raw.get().to_owned()), &id));
    }
    let mut result: Value = serde_json::from_str(raw.get()).map_err(internal)?;
    if served == Served::Lambda && record.response.status == ActivationStatus::Success {
        result = gust_model::lambda::payload(&result).clone();
    }
    let res = match record.response.status {
        ActivationStatus::Success => render(result, ext, projection, StatusCode::OK),
        ActivationStatus::ApplicationError => {
            // The error is the response: `.http` renders an error object as it would a
            // result (status 400 unless it says otherwise).
            let error = match result {
                Value::Object(mut m) => m.remove("error").unwrap_or(Value::Null),
                other => other,
            };
            if ext == Extension::Http && error.is_object() {
                render(error, ext, "", StatusCode::BAD_REQUEST)
            } else {
                let message = match error {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                Err(ApiError::bad_request(message))
            }
        }
        ActivationStatus::DeveloperError => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            error_text(&result, "The action did not produce a valid response."),
        )),
        ActivationStatus::InternalError => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            error_text(&result, "whisk internal error"),
        )),
    };
    Ok(with_activation_id(
        res.unwrap_or_else(|e| e.into_response()),
        &id,
    ))
}

/// A `.json` answer: 200 with the (projected) result's JSON text.
fn json_answer(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, Extension::Json.content_type())],
        body,
    )
        .into_response()
}

fn error_text(result: &Value, default: &str) -> String {
    result
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string()
}

/// Follows `/a/b` into a JSON value.
fn project(mut v: Value, path: &str) -> Option<Value> {
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        v = match v {
            Value::Object(mut m) => m.remove(seg)?,
            Value::Array(mut a) => {
                let i: usize = seg.parse().ok()?;
                if i >= a.len() {
                    return None;
                }
                a.swap_remove(i)
            }
            _ => return None,
        };
    }
    Some(v)
}

fn render(
    result: Value,
    ext: Extension,
    projection: &str,
    default_status: StatusCode,
) -> Result<Response, ApiError> {
    match ext {
        Extension::Json => {
            let v = project(result, projection)
                .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, NO_PROPERTY))?;
            Ok(json_answer(v.to_string()))
        }
        Extension::Html | Extension::Svg | Extension::Text => {
            let v = if projection.trim_matches('/').is_empty() {
                ext.default_field().and_then(|f| project(result, f))
            } else {
                project(result, projection)
            }
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, NO_PROPERTY))?;
            let Value::String(text) = v else {
                return Err(ApiError::bad_request(format!(
                    "The response is not valid '{}': the projected property must be a string.",
                    ext.content_type()
                )));
            };
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, ext.content_type())],
                text,
            )
                .into_response())
        }
        // `.http` projects nothing: its path is the action's to route (`__ow_path`).
        Extension::Http => http_response(result, default_status),
    }
}

fn invalid_http(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        format!("The action did not produce a valid HTTP response: {reason}"),
    )
}

/// A result `{statusCode, headers, body}` as an HTTP response.
fn http_response(v: Value, default_status: StatusCode) -> Result<Response, ApiError> {
    let Value::Object(mut m) = v else {
        return Err(invalid_http("the result is not an object"));
    };
    let body = m.remove("body");
    let status = match m.remove("statusCode").or_else(|| m.remove("code")) {
        None if body.is_none() && default_status == StatusCode::OK => StatusCode::NO_CONTENT,
        None => default_status,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .and_then(|n| StatusCode::from_u16(n).ok())
            // A final response: informational statuses are the server's to send.
            .filter(|s| (200..=599).contains(&s.as_u16()))
            .ok_or_else(|| invalid_http(format!("statusCode {n} is not an HTTP status")))?,
        Some(other) => return Err(invalid_http(format!("statusCode {other} is not a number"))),
    };
    let mut headers = HeaderMap::new();
    match m.remove("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (k, v) in h {
                let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                    invalid_http(format!("'{}' is not a header name", k.escape_debug()))
                })?;
                if HOP_BY_HOP.contains(&name.as_str()) {
                    // Framing and connection handling are the server's, never a function's.
                    continue;
                }
                let values = match v {
                    Value::Array(a) => a,
                    one => vec![one],
                };
                for v in values {
                    let text = match v {
                        Value::String(s) => s,
                        Value::Number(_) | Value::Bool(_) => v.to_string(),
                        _ => return Err(invalid_http(format!("header '{k}' is not a string"))),
                    };
                    let value = HeaderValue::from_str(&text)
                        .map_err(|_| invalid_http(format!("header '{k}' has an invalid value")))?;
                    headers.append(name.clone(), value);
                }
            }
        }
        Some(_) => return Err(invalid_http("headers is not an object")),
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes: Vec<u8> = match body {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => match &content_type {
            Some(ct) if !is_text(ct) => base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| {
                    invalid_http(format!(
                        "the body is not valid base64 for content type '{ct}'"
                    ))
                })?,
            Some(_) => s.into_bytes(),
            None => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=UTF-8"),
                );
                s.into_bytes()
            }
        },
        Some(other) => {
            if content_type.is_none() {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            other.to_string().into_bytes()
        }
    };
    let mut res = (status, bytes).into_response();
    res.headers_mut().extend(headers);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection() {
        let v = json!({"a": {"b": [1, {"c": 2}]}});
        assert_eq!(project(v.clone(), "/a/b/1/c"), Some(json!(2)));
        assert_eq!(project(v.clone(), ""), Some(v.clone()));
        assert_eq!(project(v, "/a/x"), None);
    }

    #[test]
    fn text_types() {
        assert!(is_text("text/plain"));
        assert!(is_text("application/json; charset=utf-8"));
        assert!(!is_text("image/png"));
        assert!(!is_text("application/octet-stream"));
        assert!(is_text_request("text/plain"));
        assert!(!is_text_request("application/json"));
    }
}
