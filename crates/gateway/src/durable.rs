//! Resource: Azure Durable Functions' HTTP API (`/runtime/webhooks/durabletask`, decision
//! 0028) over workflows, so that clients of its async HTTP pattern work unchanged: an
//! orchestrator is a workflow, an instance one of its executions.
//!
//! - `POST /orchestrators/{workflow}[/{instanceId}]`, body the input (JSON; empty is `null`):
//!   starts an execution named `instanceId` (else its id) and answers 202 with the
//!   check-status payload (`id`, `statusQueryGetUri`, `sendEventPostUri`,
//!   `terminatePostUri`), `Location` (the status URI) and `Retry-After: 10`; with
//!   `?timeout=<seconds>` it waits that long (at most 60 s) and answers 200 with the output of
//!   an execution that completed. Bad JSON is 400 "Invalid JSON content".
//! - `GET /instances/{id}`: the status (`name`, `instanceId`, `runtimeStatus`, `input`,
//!   `customStatus`, `output`, `createdTime`, `lastUpdatedTime`); 202 with `Location` and
//!   `Retry-After: 5` while it runs, 200 once it ended (failed too), 404 when there is none.
//!   `?showInput=false` leaves the input out.
//! - `POST /instances/{id}/raiseEvent/{eventName}`, JSON body: 202; 404; 410 once the
//!   instance ended; 400 "Only application/json request content is supported" for another
//!   content type.
//! - `POST /instances/{id}/terminate?reason=`: stops it (ABORTED, the reason as its cause):
//!   202; 404; 410 once it ended.
//!
//! An instance is named by its execution's id everywhere (`id`, `instanceId`, the URIs): the
//! status, event and terminate calls name no orchestrator. Runtime statuses: RUNNING is
//! `Running`, SUCCEEDED `Completed`, FAILED and TIMED_OUT `Failed`, ABORTED `Terminated`.
//! A failed instance's `output` is its error and cause as one text, a terminated one's the
//! reason. Not offered: purging (`DELETE /instances/{id}`, so no `purgeHistoryDeleteUri`),
//! listing instances, restart, suspend, resume, rewind, entities, `showHistory`.
//!
//! Authenticated with the namespace's key (HTTP Basic, as `/api/v1`, or `?code=<uuid>:<key>`,
//! as Azure's function keys; the URIs handed back carry the same `code`), or a token whose
//! scope reads or writes `workflows` (`access::durable_access`). Imports the kit only.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use gust_controller::ControllerError;
use gust_model::limits::{MAX_BLOCKING_WAIT, MAX_INVOKE_BODY};
use gust_model::{Execution, ExecutionStatus, Identity};
use gust_workflow::WorkflowError;
use serde_json::{Value, json};

use crate::access::durable_access;
use crate::extract::{QueryString, RawBody, basic_identity, bearer, params, payload_body};
use crate::respond::ApiResult;
use crate::{ApiError, Gateway, ServedOverTls};

/// Where the API lives.
const BASE: &str = "/runtime/webhooks/durabletask";

/// `Retry-After` of a start, and of a status while running (seconds), as Azure answers.
const START_RETRY_AFTER: &str = "10";
const STATUS_RETRY_AFTER: &str = "5";

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route(
            "/runtime/webhooks/durabletask/orchestrators/{workflow}",
            post(start),
        )
        .route(
            "/runtime/webhooks/durabletask/orchestrators/{workflow}/{instance}",
            post(start_named),
        )
        .route("/runtime/webhooks/durabletask/instances/{id}", get(status))
        .route(
            "/runtime/webhooks/durabletask/instances/{id}/raiseEvent/{event}",
            post(raise_event),
        )
        .route(
            "/runtime/webhooks/durabletask/instances/{id}/terminate",
            post(terminate),
        )
        .layer(DefaultBodyLimit::max(MAX_INVOKE_BODY))
}

/// The authenticated caller: HTTP Basic `uuid:key`, a bearer token allowed what the request
/// does, or `?code=uuid:key`; and the `code` given, to hand back in the URIs.
struct DurableCaller {
    who: Identity,
    code: Option<String>,
}

impl FromRequestParts<Gateway> for DurableCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, ApiError> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let value = value
                .to_str()
                .map_err(|_| ControllerError::Unauthenticated)?;
            let who = match bearer(value) {
                Some(token) => {
                    let (who, grant) = gw.controller.authenticate_token(token).await?;
                    let path = parts.uri.path();
                    let (verb, entity) = durable_access(&parts.method, path)
                        .ok_or_else(|| ControllerError::Forbidden(path.to_string()))?;
                    grant.permit(verb, &entity)?;
                    who
                }
                None => basic_identity(gw, value).await?,
            };
            return Ok(DurableCaller { who, code: None });
        }
        let code = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        });
        let Some(code) = code else {
            return Err(ControllerError::AuthenticationMissing.into());
        };
        let (uuid, key) = code
            .split_once(':')
            .ok_or(ControllerError::Unauthenticated)?;
        let who = gw.controller.authenticate(uuid, key).await?;
        Ok(DurableCaller {
            who,
            code: Some(code),
        })
    }
}

/// `<scheme>://<host>` of the request: what the URIs handed back start with.
fn origin(parts_headers: &HeaderMap, uri: &axum::http::Uri, tls: bool) -> String {
    let host = parts_headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// The request's origin, as an extractor.
struct Origin(String);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let tls = parts.extensions.get::<ServedOverTls>().is_some_and(|t| t.0);
        Ok(Origin(origin(&parts.headers, &parts.uri, tls)))
    }
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The status URI of instance `id`.
fn status_uri(origin: &str, id: &str, code: Option<&str>) -> String {
    let mut uri = format!("{origin}{BASE}/instances/{}", encode(id));
    if let Some(c) = code {
        uri.push_str(&format!("?code={}", encode(c)));
    }
    uri
}

/// The check-status payload of instance `id`: its id and the URIs that manage it.
fn check_status(origin: &str, id: &str, code: Option<&str>) -> Value {
    let instance = format!("{origin}{BASE}/instances/{}", encode(id));
    let code_param = code.map(|c| format!("code={}", encode(c)));
    let with_query = |url: String, first: Option<&str>| {
        let query: Vec<&str> = first.into_iter().chain(code_param.as_deref()).collect();
        if query.is_empty() {
            url
        } else {
            format!("{url}?{}", query.join("&"))
        }
    };
    json!({
        "id": id,
        "statusQueryGetUri": with_query(instance.clone(), None),
        "sendEventPostUri": with_query(format!("{instance}/raiseEvent/{{eventName}}"), None),
        "terminatePostUri": with_query(format!("{instance}/terminate"), Some("reason={text}")),
    })
}

/// A header value for one we write ourselves (a URI of the request's host).
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A request body as JSON: empty is `null`; anything else must parse.
fn json_body(b: &[u8]) -> Result<Value, ApiError> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(b).map_err(|_| ApiError::bad_request("Invalid JSON content"))
}

async fn start(
    State(gw): State<Gateway>,
    caller: DurableCaller,
    Origin(origin): Origin,
    Path(workflow): Path<String>,
    q: QueryString,
    b: RawBody,
) -> ApiResult {
    start_instance(gw, caller, origin, workflow, None, q, b).await
}

async fn start_named(
    State(gw): State<Gateway>,
    caller: DurableCaller,
    Origin(origin): Origin,
    Path((workflow, instance)): Path<(String, String)>,
    q: QueryString,
    b: RawBody,
) -> ApiResult {
    start_instance(gw, caller, origin, workflow, Some(instance), q, b).await
}

/// `?timeout=<seconds>` of a start: how long to wait for the instance to end.
fn start_wait(timeout: Option<&str>) -> Result<Option<Duration>, ApiError> {
    let Some(t) = timeout else {
        return Ok(None);
    };
    let secs: u64 = t.parse().map_err(|_| {
        ApiError::bad_request(format!("The timeout '{t}' is not a number of seconds."))
    })?;
    Ok(Some(Duration::from_secs(secs).min(MAX_BLOCKING_WAIT)))
}

async fn start_instance(
    gw: Gateway,
    DurableCaller { who, code }: DurableCaller,
    origin: String,
    workflow: String,
    instance: Option<String>,
    q: QueryString,
    b: RawBody,
) -> ApiResult {
    let q = params(q)?;
    let wait = start_wait(q.str("timeout"))?;
    let b = payload_body(b, gw.controller.system_limits().max_payload)?;
    let input = json_body(&b)?;
    let workflows = gw.workflows()?;
    let started = workflows
        .start(&who, &workflow, instance.as_deref(), input)
        .await?;
    let mut execution = started.execution;
    if let Some(up_to) = wait
        && execution.status.is_running()
    {
        execution = workflows.wait(&who, &execution.id, up_to).await?;
        if execution.status == ExecutionStatus::Succeeded {
            let output = execution.output.clone().unwrap_or(Value::Null);
            return Ok((StatusCode::OK, axum::Json(output)).into_response());
        }
    }
    let payload = check_status(&origin, &execution.id, code.as_deref());
    let location = status_uri(&origin, &execution.id, code.as_deref());
    let mut res = (StatusCode::ACCEPTED, axum::Json(payload)).into_response();
    res.headers_mut()
        .insert(header::LOCATION, header_value(&location));
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(START_RETRY_AFTER),
    );
    Ok(res)
}

/// Durable Functions' `runtimeStatus` of `s`.
fn runtime_status(s: ExecutionStatus) -> &'static str {
    match s {
        ExecutionStatus::Running => "Running",
        ExecutionStatus::Succeeded => "Completed",
        ExecutionStatus::Failed | ExecutionStatus::TimedOut => "Failed",
        ExecutionStatus::Aborted => "Terminated",
    }
}

/// `ms` since the epoch as Azure writes these times: `2026-12-06T10:00:00Z`.
fn iso_time(ms: u64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// What a failed or terminated instance shows as its output: its error and cause (an empty
/// one is none).
fn failure_text(e: &Execution) -> Value {
    let given = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    match (given(&e.error), given(&e.cause)) {
        (Some(error), Some(cause)) => json!(format!("{error}: {cause}")),
        (Some(only), None) | (None, Some(only)) => json!(only),
        (None, None) => Value::Null,
    }
}

/// The status payload of `e`, last updated at `updated` (ms).
fn status_payload(e: &Execution, updated: u64, show_input: bool) -> Value {
    let output = match e.status {
        ExecutionStatus::Running => Value::Null,
        ExecutionStatus::Succeeded => e.output.clone().unwrap_or(Value::Null),
        _ => failure_text(e),
    };
    json!({
        "name": e.workflow,
        "instanceId": e.id,
        "runtimeStatus": runtime_status(e.status),
        "input": if show_input { e.input.clone() } else { Value::Null },
        "customStatus": Value::Null,
        "output": output,
        "createdTime": iso_time(e.start),
        "lastUpdatedTime": iso_time(updated),
    })
}

async fn status(
    State(gw): State<Gateway>,
    DurableCaller { who, code }: DurableCaller,
    Origin(origin): Origin,
    Path(id): Path<String>,
    q: QueryString,
) -> ApiResult {
    let q = params(q)?;
    let show_input = match q.str("showInput") {
        None => true,
        Some(_) => q.bool("showInput")?,
    };
    let workflows = gw.workflows()?;
    let e = workflows.execution(&who, &id).await?;
    let updated = match e.stop {
        Some(stop) => stop,
        None => workflows
            .history(&who, &id, u64::MAX, 1, true)
            .await?
            .first()
            .map_or(e.start, |ev| ev.ts),
    };
    let body = status_payload(&e, updated, show_input);
    if !e.status.is_running() {
        return Ok((StatusCode::OK, axum::Json(body)).into_response());
    }
    let mut res = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    res.headers_mut().insert(
        header::LOCATION,
        header_value(&status_uri(&origin, &id, code.as_deref())),
    );
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(STATUS_RETRY_AFTER),
    );
    Ok(res)
}

/// The execution `id`, running: 404 when there is none, 410 once it ended.
async fn running(gw: &Gateway, who: &Identity, id: &str) -> Result<Execution, ApiError> {
    let e = gw.workflows()?.execution(who, id).await?;
    if !e.status.is_running() {
        return Err(WorkflowError::NotRunning(id.to_string()).into());
    }
    Ok(e)
}

/// Whether a `Content-Type` is JSON's (`application/json`, parameters allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

async fn raise_event(
    State(gw): State<Gateway>,
    DurableCaller { who, .. }: DurableCaller,
    Path((id, event)): Path<(String, String)>,
    headers: HeaderMap,
    b: RawBody,
) -> ApiResult {
    if !is_json(&headers) {
        return Err(ApiError::bad_request(
            "Only application/json request content is supported",
        ));
    }
    let b = payload_body(b, gw.controller.system_limits().max_payload)?;
    let body = json_body(&b)?;
    running(&gw, &who, &id).await?;
    gw.workflows()?.raise_event(&who, &id, &event, body).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn terminate(
    State(gw): State<Gateway>,
    DurableCaller { who, .. }: DurableCaller,
    Path(id): Path<String>,
    q: QueryString,
) -> ApiResult {
    let q = params(q)?;
    let reason = q
        .str("reason")
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    running(&gw, &who, &id).await?;
    gw.workflows()?.stop(&who, &id, None, reason).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_status_payload_names_every_uri_of_the_instance() {
        let p = check_status("http://h:1", "0a1b", None);
        assert_eq!(
            p,
            json!({
                "id": "0a1b",
                "statusQueryGetUri": "http://h:1/runtime/webhooks/durabletask/instances/0a1b",
                "sendEventPostUri": "http://h:1/runtime/webhooks/durabletask/instances/0a1b/raiseEvent/{eventName}",
                "terminatePostUri": "http://h:1/runtime/webhooks/durabletask/instances/0a1b/terminate?reason={text}",
            })
        );
        let p = check_status("https://h", "x", Some("u:k"));
        assert_eq!(
            p["terminatePostUri"],
            "https://h/runtime/webhooks/durabletask/instances/x/terminate?reason={text}&code=u%3Ak"
        );
        assert_eq!(
            p["statusQueryGetUri"],
            "https://h/runtime/webhooks/durabletask/instances/x?code=u%3Ak"
        );
    }

    #[test]
    fn statuses_and_times_read_as_durable_functions_writes_them() {
        assert_eq!(runtime_status(ExecutionStatus::Running), "Running");
        assert_eq!(runtime_status(ExecutionStatus::Succeeded), "Completed");
        assert_eq!(runtime_status(ExecutionStatus::TimedOut), "Failed");
        assert_eq!(runtime_status(ExecutionStatus::Aborted), "Terminated");
        assert_eq!(iso_time(1_440_938_160_999), "2015-08-30T12:36:00Z");
        let e = Execution {
            namespace: "ns".into(),
            id: "0a1b".into(),
            name: "run".into(),
            workflow: "orders".into(),
            status: ExecutionStatus::Failed,
            input: json!({"n": 1}),
            output: None,
            error: Some("States.TaskFailed".into()),
            cause: Some("boom".into()),
            start: 1_440_938_160_000,
            stop: Some(1_440_938_161_000),
            parent: None,
        };
        assert_eq!(
            status_payload(&e, 1_440_938_161_000, true),
            json!({
                "name": "orders", "instanceId": "0a1b", "runtimeStatus": "Failed",
                "input": {"n": 1}, "customStatus": null, "output": "States.TaskFailed: boom",
                "createdTime": "2015-08-30T12:36:00Z", "lastUpdatedTime": "2015-08-30T12:36:01Z",
            })
        );
        assert_eq!(status_payload(&e, 0, false)["input"], Value::Null);
    }

    #[test]
    fn bodies_and_content_types_are_checked() {
        assert_eq!(json_body(b"").unwrap(), Value::Null);
        assert_eq!(json_body(b" {\"a\": 1} ").unwrap(), json!({"a": 1}));
        assert_eq!(
            json_body(b"{nope").unwrap_err().message,
            "Invalid JSON content"
        );
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&h));
        assert_eq!(start_wait(None).unwrap(), None);
        assert_eq!(start_wait(Some("5")).unwrap(), Some(Duration::from_secs(5)));
        assert_eq!(start_wait(Some("600")).unwrap(), Some(MAX_BLOCKING_WAIT));
        assert!(start_wait(Some("x")).is_err());
    }
}
