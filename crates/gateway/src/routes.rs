//! Routes of `/api/v1` and their handlers.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use gust_controller::ActivationQuery;
use gust_controller::{
    ActionPut, ControllerError, Identity, Invocation, InvokeOutcome, MAX_BLOCKING_WAIT, PackagePut,
    Wait,
};
use gust_model::limits::MB;
use gust_model::{Action, ActionLimits, ActivationStatus, ActivationSummary, Package};
use serde_json::{Map, Value, json};

use crate::error::{ErrorBody, error_body};
use crate::query::Params;
use crate::{ApiError, Gateway};

type ApiResult = Result<Response, ApiError>;

/// Longest list page.
const MAX_LIST: u64 = 200;
/// Largest request body read at all (a PUT carries up to 48 MB of code, base64-encoded; a
/// site file up to 48 MB raw).
const MAX_BODY: usize = 70 * 1024 * 1024;
/// Largest invoke body read at all: the payload limit (1 MB) with room for the exact 413.
const MAX_INVOKE_BODY: usize = 2 * 1024 * 1024;

/// The whole HTTP service: every request gets an id, and static sites are served ahead of the
/// router.
pub fn service(gw: Gateway) -> WithRequestId<Router> {
    WithRequestId {
        inner: router(gw.clone()),
        gw,
    }
}

/// The router of the whole API but static sites.
fn router(gw: Gateway) -> Router {
    let ns = "/api/v1/namespaces/{ns}";
    Router::new()
        .route("/ping", get(ping))
        .route("/", get(info))
        .route("/api/v1", get(info))
        .route("/api/v1/namespaces", get(namespaces))
        .route(&format!("{ns}/limits"), get(limits))
        .route(&format!("{ns}/actions"), get(list_actions))
        .route(
            &format!("{ns}/actions/{{*name}}"),
            get(get_action)
                .put(put_action)
                .delete(delete_action)
                .post(invoke.layer(DefaultBodyLimit::max(MAX_INVOKE_BODY))),
        )
        .route(&format!("{ns}/packages"), get(list_packages))
        .route(
            &format!("{ns}/packages/{{name}}"),
            get(get_package).put(put_package).delete(delete_package),
        )
        .route(
            &format!("{ns}/apis"),
            get(crate::apis::list_apis).put(crate::apis::put_route),
        )
        .route(
            &format!("{ns}/apis/{{base}}"),
            get(crate::apis::get_api).delete(crate::apis::delete_api),
        )
        .route(
            "/api/{ns}/{*rest}",
            axum::routing::any(crate::apis::serve_api),
        )
        .route(&format!("{ns}/sites"), get(crate::sites::list_sites))
        .route(
            &format!("{ns}/sites/{{name}}"),
            get(crate::sites::get_site)
                .put(crate::sites::put_site)
                .delete(crate::sites::delete_site),
        )
        .route(
            &format!("{ns}/site-blobs"),
            axum::routing::post(crate::sites::missing_blobs),
        )
        .route(
            &format!("{ns}/site-blobs/{{hash}}"),
            axum::routing::put(crate::sites::put_blob),
        )
        .route(&format!("{ns}/activations"), get(list_activations))
        .route(&format!("{ns}/activations/{{id}}"), get(get_activation))
        .route(
            &format!("{ns}/activations/{{id}}/{{part}}"),
            get(activation_part),
        )
        .route(
            "/api/v1/web/{ns}/{pkg}/{*rest}",
            axum::routing::any(crate::web::web_action),
        )
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "HTTP method not allowed, supported methods: GET, PUT, POST, DELETE.",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(gw)
}

/// Gives every request an id: in `X-Request-ID` of the response and as `code` of an error.
/// It wraps the router (rather than being one of its layers, which run after routing, or
/// `middleware::from_fn`, which clones and boxes the inner service for every request), and
/// serves static sites (`/sites/...`) itself, without routing: matching, extracting and
/// boxing through axum's routes was a few per cent of a static file's CPU time.
#[derive(Debug, Clone)]
pub struct WithRequestId<S> {
    inner: S,
    gw: Gateway,
}

impl<S> tower_service::Service<Request> for WithRequestId<S>
where
    S: tower_service::Service<Request, Response = Response, Error = std::convert::Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.uri().path().starts_with("/sites/") {
            let gw = self.gw.clone();
            return Box::pin(async move {
                let res = crate::sites::serve_site(&gw, req).await;
                Ok(with_request_id(res).await)
            });
        }
        let response = self.inner.call(req);
        Box::pin(async move {
            let res = response.await?;
            Ok(with_request_id(res).await)
        })
    }
}

/// Names the response's request in `X-Request-ID`, and writes an error's body with that id
/// as `code`.
async fn with_request_id(mut res: Response) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
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
        let text = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        res = Response::from_parts(parts, axum::body::Body::empty());
        res.extensions_mut().insert(ErrorBody(text));
    }
    if let Some(ErrorBody(message)) = res.extensions_mut().remove::<ErrorBody>() {
        let status = res.status();
        let headers = std::mem::take(res.headers_mut());
        res = (status, error_body(&message, &id)).into_response();
        for (k, v) in headers.iter() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                res.headers_mut().insert(k, v.clone());
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

/// The authenticated caller, from HTTP Basic `uuid:key`.
pub(crate) struct Caller(pub(crate) Identity);

impl FromRequestParts<Gateway> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, ApiError> {
        let missing = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "The resource requires authentication, which was not supplied with the request",
            )
        };
        let invalid = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "The supplied authentication is invalid.",
            )
        };
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(missing)?
            .to_str()
            .map_err(|_| invalid())?;
        Ok(Caller(basic_identity(gw, value).await?))
    }
}

/// The identity an `Authorization: Basic uuid:key` header value names; 401 if it names none.
pub(crate) async fn basic_identity(gw: &Gateway, value: &str) -> Result<Identity, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The supplied authentication is invalid.",
        )
    };
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

pub(crate) fn params(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Params, ApiError> {
    q.map(|Query(m)| Params(m))
        .map_err(|e| ApiError::bad_request(format!("The query string is malformed: {e}")))
}

pub(crate) fn body(b: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    use axum::extract::rejection::FailedToBufferBody;
    b.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request larger than allowed: more than {limit} bytes."),
            )
        }
        other => ApiError::bad_request(format!("Failed extracting request body: {other}")),
    })
}

pub(crate) fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response {
    (status, Json(v)).into_response()
}

pub(crate) fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("The request content was malformed:\n{e}"))
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

/// Whether a record says no instance could take its invocation (annotation `overloaded`).
fn overloaded(record: &str) -> bool {
    serde_json::from_str::<Value>(record)
        .ok()
        .and_then(|r| {
            r["annotations"].as_array().map(|a| {
                a.iter()
                    .any(|kv| kv["key"] == "overloaded" && kv["value"] == true)
            })
        })
        .unwrap_or(false)
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
    Value::Object(out)
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
            "minActionTimeout": ActionLimits::TIMEOUT.0,
            "maxActionTimeout": ActionLimits::TIMEOUT.1,
            "minActionMemory": ActionLimits::MEMORY.0 * MB,
            "maxActionMemory": ActionLimits::MEMORY.1 * MB,
            "minActionLogs": ActionLimits::LOGS.0 * MB,
            "maxActionLogs": ActionLimits::LOGS.1 * MB,
        }),
    ))
}

/// An action as OpenWhisk shows it: one in package `p` of namespace `ns` (stored as `p/a`)
/// has `namespace: "ns/p"` and `name: "a"`.
fn shown(mut a: Action) -> Action {
    if let Some((p, n)) = a.name.split_once('/') {
        a.namespace = format!("{}/{p}", a.namespace);
        a.name = n.to_string();
    }
    a
}

/// An action as listed: no code, `exec` reduced to `binary`.
fn action_summary(a: &Action) -> Value {
    let (namespace, name) = match a.name.split_once('/') {
        Some((p, n)) => (format!("{}/{p}", a.namespace), n),
        None => (a.namespace.clone(), a.name.as_str()),
    };
    json!({
        "namespace": namespace,
        "name": name,
        "version": a.version,
        "publish": a.publish,
        "annotations": a.annotations,
        "limits": a.limits,
        "exec": { "binary": a.exec.binary },
        "updated": a.updated,
    })
}

async fn list_actions(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    list_actions_in(&gw, &who, &ns, None, params(q)?).await
}

/// The actions of a namespace, or (`pkg`) of one of its packages.
async fn list_actions_in(
    gw: &Gateway,
    who: &Identity,
    ns: &str,
    pkg: Option<&str>,
    q: Params,
) -> ApiResult {
    if q.bool("count")? {
        let n = gw.controller.count_actions(who, ns, pkg).await?;
        return Ok(json_response(StatusCode::OK, &json!({ "actions": n })));
    }
    let skip = q.int("skip", "actions")?.unwrap_or(0);
    let limit = q.limit(MAX_LIST, "actions")?;
    let list = gw
        .controller
        .list_actions(who, ns, pkg, skip, limit)
        .await?;
    let out: Vec<Value> = list.iter().map(action_summary).collect();
    Ok(json_response(StatusCode::OK, &out))
}

async fn get_action(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    let q = params(q)?;
    // `.../actions/pkg/` lists the package's actions.
    if let Some(pkg) = name.strip_suffix('/')
        && !pkg.contains('/')
    {
        return list_actions_in(&gw, &who, &ns, Some(pkg), q).await;
    }
    let code = q.str("code") != Some("false");
    let action = gw.controller.get_action(&who, &ns, &name, code).await?;
    Ok(json_response(StatusCode::OK, &shown(action)))
}

async fn put_action(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let b = body(b, MAX_BODY)?;
    let put: ActionPut = serde_json::from_slice(&b).map_err(malformed)?;
    let overwrite = q.bool("overwrite")?;
    let mut action = gw
        .controller
        .put_action(&who, &name, put, overwrite)
        .await?;
    action.exec.code = None;
    Ok(json_response(StatusCode::OK, &shown(action)))
}

async fn delete_action(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let ns = gw.controller.authorize(&who, &ns)?;
    let action = gw.controller.delete_action(ns, &name).await?;
    Ok(json_response(StatusCode::OK, &shown(action)))
}

/// A package as listed: no parameters.
fn package_summary(p: &Package) -> Value {
    json!({
        "namespace": p.namespace,
        "name": p.name,
        "version": p.version,
        "publish": p.publish,
        "annotations": p.annotations,
        "binding": p.binding.as_ref().map_or_else(|| json!({}), |b| json!(b)),
        "updated": p.updated,
    })
}

async fn list_packages(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    let q = params(q)?;
    if q.bool("count")? {
        let n = gw.controller.count_packages(&who, &ns).await?;
        return Ok(json_response(StatusCode::OK, &json!({ "packages": n })));
    }
    let skip = q.int("skip", "packages")?.unwrap_or(0);
    let limit = q.limit(MAX_LIST, "packages")?;
    let list = gw.controller.list_packages(&who, &ns, skip, limit).await?;
    let out: Vec<Value> = list.iter().map(package_summary).collect();
    Ok(json_response(StatusCode::OK, &out))
}

async fn get_package(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let (package, actions) = gw.controller.get_package(&who, &ns, &name).await?;
    let mut v = json!(package);
    v["actions"] = actions
        .iter()
        .map(|a| {
            json!({
                "name": a.simple_name(),
                "version": a.version,
                "annotations": a.annotations,
            })
        })
        .collect();
    v["feeds"] = json!([]);
    Ok(json_response(StatusCode::OK, &v))
}

async fn put_package(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let b = body(b, MAX_BODY)?;
    let put: PackagePut = if b.iter().all(u8::is_ascii_whitespace) {
        PackagePut::default()
    } else {
        serde_json::from_slice(&b).map_err(malformed)?
    };
    let overwrite = q.bool("overwrite")?;
    let package = gw
        .controller
        .put_package(&who, &name, put, overwrite)
        .await?;
    Ok(json_response(StatusCode::OK, &package))
}

async fn delete_package(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let force = q.bool("force")?;
    let package = gw.controller.delete_package(&who, &name, force).await?;
    Ok(json_response(StatusCode::OK, &package))
}

fn with_activation_id(mut res: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        res.headers_mut().insert("x-openwhisk-activation-id", v);
    }
    res
}

async fn invoke(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let q = params(q)?;
    let b = body(b, MAX_INVOKE_BODY)?;
    let max = gw.controller.system_limits().max_payload;
    if b.len() as u64 > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request larger than allowed: {} > {max} bytes.", b.len()),
        ));
    }
    let input: Map<String, Value> = if b.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&b).map_err(malformed)? {
            Value::Object(m) => m,
            _ => return Err(malformed("the parameters must be a JSON object")),
        }
    };
    let blocking = q.bool("blocking")?;
    let result_only = q.bool("result")?;
    let wait = match q.str("timeout").map(str::parse::<u64>) {
        None => MAX_BLOCKING_WAIT,
        Some(Ok(ms)) if ms > 0 && ms <= MAX_BLOCKING_WAIT.as_millis() as u64 => {
            Duration::from_millis(ms)
        }
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "Timeout must be number of milliseconds up to {}.",
                MAX_BLOCKING_WAIT.as_millis()
            )));
        }
    };
    let resolved = gw.controller.resolve(&who, &ns, &name).await?;
    let outcome = gw
        .controller
        .invoke(Invocation {
            caller: &who,
            action: &resolved,
            params: input,
            wait: if blocking { Wait::UpTo(wait) } else { Wait::No },
            cause: None,
        })
        .await?;
    Ok(match outcome {
        InvokeOutcome::Accepted(id) | InvokeOutcome::Waiting(id) => with_activation_id(
            json_response(StatusCode::ACCEPTED, &json!({ "activationId": id })),
            &id,
        ),
        InvokeOutcome::Completed(record) => {
            // Read only what the response needs; the body is the stored JSON as it is.
            let outcome: Outcome<'_> = serde_json::from_str(record.get())
                .map_err(|e| ApiError::from(ControllerError::Internal(e.to_string())))?;
            let status = match outcome.response.status {
                ActivationStatus::Success => StatusCode::OK,
                ActivationStatus::ApplicationError | ActivationStatus::DeveloperError => {
                    StatusCode::BAD_GATEWAY
                }
                ActivationStatus::InternalError if overloaded(record.get()) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ActivationStatus::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let body = if result_only {
                outcome.response.result.get()
            } else {
                record.get()
            };
            let res = (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_owned(),
            )
                .into_response();
            with_activation_id(res, &outcome.activation_id)
        }
    })
}

/// The parts of a stored record that decide an invoke response.
#[derive(serde::Deserialize)]
struct Outcome<'a> {
    #[serde(rename = "activationId")]
    activation_id: String,
    #[serde(borrow)]
    response: OutcomeResponse<'a>,
}

#[derive(serde::Deserialize)]
struct OutcomeResponse<'a> {
    status: ActivationStatus,
    #[serde(borrow)]
    result: &'a serde_json::value::RawValue,
}

async fn list_activations(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    let q = params(q)?;
    let ns = gw.controller.authorize(&who, &ns)?;
    let name = match q.str("name") {
        Some(n) => {
            let valid = |s: &str| gust_model::names::check_entity(s).is_ok();
            let ok = match n.split_once('/') {
                Some((pkg, simple)) => valid(pkg) && valid(simple),
                None => valid(n),
            };
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "Parameter may be a 'simple' name or 'package-name/simple' name: {n}"
                )));
            }
            Some(n.to_string())
        }
        None => None,
    };
    let query = ActivationQuery {
        namespace: ns.to_string(),
        name,
        since: q.int("since", "activations")?,
        upto: q.int("upto", "activations")?,
        skip: q.int("skip", "activations")?.unwrap_or(0),
        limit: q.limit(MAX_LIST, "activations")?,
    };
    let docs = q.bool("docs")?;
    if q.bool("count")? {
        if docs {
            return Err(ApiError::bad_request(
                "The parameter 'docs' is not permitted with 'count'.",
            ));
        }
        let n = gw.controller.count_activations(&query).await?;
        return Ok(json_response(StatusCode::OK, &json!({ "activations": n })));
    }
    let list = gw.controller.list_activations(&query).await?;
    if docs {
        // The stored documents as they are.
        Ok(json_response(StatusCode::OK, &list))
    } else {
        let out = list
            .iter()
            .map(|doc| serde_json::from_str::<ActivationSummary>(doc.get()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::from(ControllerError::Internal(e.to_string())))?;
        Ok(json_response(StatusCode::OK, &out))
    }
}

async fn get_activation(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, id)): Path<(String, String)>,
) -> ApiResult {
    let ns = gw.controller.authorize(&who, &ns)?;
    let record = gw.controller.activation(ns, &id).await?;
    Ok(json_response(StatusCode::OK, &record))
}

/// `.../activations/{id}/logs` and `.../activations/{id}/result`.
async fn activation_part(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, id, part)): Path<(String, String, String)>,
) -> ApiResult {
    let ns = gw.controller.authorize(&who, &ns)?;
    if part != "logs" && part != "result" {
        return Err(ApiError::not_found());
    }
    let record = gw.controller.activation(ns, &id).await?;
    Ok(if part == "logs" {
        json_response(StatusCode::OK, &json!({ "logs": record.logs }))
    } else {
        json_response(StatusCode::OK, &record.response)
    })
}
