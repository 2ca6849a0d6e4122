//! Resource: durable workflows over Gust's own API (decision 0028) —
//! `/api/v1/namespaces/{ns}/workflows[/{name}]` (PUT, GET, DELETE, list),
//! `/workflows/{name}/executions` (POST starts one, GET lists them),
//! `/executions[/{id}[/history|/stop|/events/{event}]]` and
//! `/tasks/{success|failure|heartbeat}`. JSON in and out, OpenWhisk's `{"error", "code"}`
//! errors; `{ns}` is the caller's own namespace or `_` (another is a 403, as everywhere).
//! Every call goes to [`gust_workflow::Workflows`]; a server without it answers 503.
//! Imports the kit only.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use gust_model::limits::{MAX_BLOCKING_WAIT, MAX_INVOKE_BODY, MAX_LIST};
use gust_model::{ExecutionStatus, HistoryEvent};
use gust_workflow::MAX_HISTORY_PAGE;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::extract::{
    Caller, QueryString, RawBody, TokenGrant, body, json_or_default, malformed, params,
    payload_body,
};
use crate::query::Params;
use crate::respond::{ApiResult, json_response};
use crate::{ApiError, Gateway};

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/api/v1/namespaces/{ns}/workflows", get(list_workflows))
        .route(
            "/api/v1/namespaces/{ns}/workflows/{name}",
            get(get_workflow).put(put_workflow).delete(delete_workflow),
        )
        .route(
            "/api/v1/namespaces/{ns}/workflows/{name}/executions",
            get(list_workflow_executions).post(start),
        )
        .route("/api/v1/namespaces/{ns}/executions", get(list_executions))
        .route(
            "/api/v1/namespaces/{ns}/executions/{id}",
            get(get_execution),
        )
        .route(
            "/api/v1/namespaces/{ns}/executions/{id}/history",
            get(history),
        )
        .route("/api/v1/namespaces/{ns}/executions/{id}/stop", post(stop))
        .route(
            "/api/v1/namespaces/{ns}/executions/{id}/events/{event}",
            post(raise_event),
        )
        .route("/api/v1/namespaces/{ns}/tasks/{outcome}", post(task))
        // Definitions, inputs, events and task outputs: the invoke body's bound.
        .layer(DefaultBodyLimit::max(MAX_INVOKE_BODY))
}

/// The body of a `PUT .../workflows/{name}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowPut {
    /// The ASL definition: a JSON object, or a string holding one.
    #[serde(default)]
    definition: Option<Value>,
}

/// The ASL definition a PUT gives: an object as it is, a string parsed as JSON.
fn definition_of(v: Option<Value>) -> Result<Value, ApiError> {
    match v {
        None | Some(Value::Null) => Err(ApiError::bad_request(
            "The request must give the workflow's definition (Amazon States Language) as \"definition\".",
        )),
        Some(Value::String(s)) => serde_json::from_str(&s)
            .map_err(|e| ApiError::bad_request(format!("The definition is not valid JSON: {e}"))),
        Some(v) => Ok(v),
    }
}

async fn put_workflow(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    TokenGrant(grant): TokenGrant,
    Path((ns, name)): Path<(String, String)>,
    q: QueryString,
    b: RawBody,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let overwrite = q.bool("overwrite")?;
    let b = body(b, MAX_INVOKE_BODY)?;
    let put: WorkflowPut = json_or_default(&b)?;
    let definition = definition_of(put.definition)?;
    if let Some(grant) = &grant {
        permit_targets(grant, &who.namespace, &definition)?;
    }
    let w = gw
        .workflows()?
        .put(&who, &name, definition, overwrite)
        .await?;
    Ok(json_response(StatusCode::OK, &w))
}

/// A token may write a workflow only if it may run what the workflow's tasks run: its runs
/// invoke as the namespace, and a token reaches nothing through what it writes that it
/// could not reach itself (decision 0023).
fn permit_targets(
    grant: &gust_controller::tokens::Grant,
    own: &str,
    definition: &serde_json::Value,
) -> Result<(), ApiError> {
    use gust_controller::tokens::Verb;
    use gust_workflow::Target;
    // A definition given as a string is checked as what it holds.
    let parsed;
    let definition = match definition {
        serde_json::Value::String(s) => {
            parsed = serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
            &parsed
        }
        v => v,
    };
    for target in gust_workflow::targets(definition) {
        match target {
            Target::Action(name) => grant.permit_reference(own, Verb::Invoke, "actions", &name)?,
            Target::AnyAction => grant.permit(Verb::Invoke, "actions")?,
            Target::Workflow(name) => {
                grant.permit(Verb::Write, &format!("workflows/{name}/executions"))?
            }
            Target::AnyWorkflow => grant.permit(Verb::Write, "workflows")?,
        }
    }
    Ok(())
}

async fn get_workflow(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    gw.controller.authorize(&who, &ns)?;
    let w = gw.workflows()?.get(&who, &name).await?;
    Ok(json_response(StatusCode::OK, &w))
}

async fn delete_workflow(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    gw.controller.authorize(&who, &ns)?;
    let w = gw.workflows()?.delete(&who, &name).await?;
    Ok(json_response(StatusCode::OK, &w))
}

async fn list_workflows(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    q: QueryString,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let skip = q.int("skip", "workflows")?.unwrap_or(0);
    let limit = q.limit(MAX_LIST, "workflows")?;
    let list = gw.workflows()?.list(&who, skip, limit).await?;
    Ok(json_response(StatusCode::OK, &list))
}

/// The body of a start: both optional; no input (or `null`) is `{}`, as Step Functions
/// starts an execution given none.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

/// How long a `?blocking=true` request waits: `timeout` ms, at most (and by default)
/// [`MAX_BLOCKING_WAIT`]; `None` when not blocking.
fn blocking_wait(q: &Params) -> Result<Option<Duration>, ApiError> {
    if !q.bool("blocking")? {
        return Ok(None);
    }
    match q.str("timeout").map(str::parse::<u64>) {
        None => Ok(Some(MAX_BLOCKING_WAIT)),
        Some(Ok(ms)) if ms > 0 && ms <= MAX_BLOCKING_WAIT.as_millis() as u64 => {
            Ok(Some(Duration::from_millis(ms)))
        }
        Some(_) => Err(ApiError::bad_request(format!(
            "Timeout must be number of milliseconds up to {}.",
            MAX_BLOCKING_WAIT.as_millis()
        ))),
    }
}

/// `POST .../workflows/{name}/executions`: 202 with the execution started (200 with the
/// running one an idempotent start named); blocking, 200 with it once it finished or 202
/// as it is when the wait ran out.
async fn start(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    q: QueryString,
    b: RawBody,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let wait = blocking_wait(&q)?;
    let b = payload_body(b, gw.controller.system_limits().max_payload)?;
    let StartBody { name: run, input } = json_or_default(&b)?;
    let workflows = gw.workflows()?;
    let input = input.unwrap_or_else(|| json!({}));
    let started = workflows.start(&who, &name, run.as_deref(), input).await?;
    let execution = match wait {
        Some(up_to) if started.execution.status.is_running() => {
            workflows.wait(&who, &started.execution.id, up_to).await?
        }
        _ => started.execution,
    };
    let status = match wait {
        Some(_) if !execution.status.is_running() => StatusCode::OK,
        Some(_) => StatusCode::ACCEPTED,
        None if !started.created => StatusCode::OK,
        None => StatusCode::ACCEPTED,
    };
    Ok(json_response(status, &execution))
}

/// `skip` and `limit` of an executions list, and its `status` filter.
fn execution_filter(q: &Params) -> Result<(Option<ExecutionStatus>, u64, u64), ApiError> {
    let status = match q.str("status") {
        None | Some("") => None,
        Some(s) => Some(ExecutionStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "The value '{s}' of parameter 'status' is not an execution status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED)."
            ))
        })?),
    };
    let skip = q.int("skip", "executions")?.unwrap_or(0);
    let limit = q.limit(MAX_LIST, "executions")?;
    Ok((status, skip, limit))
}

async fn list_workflow_executions(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    q: QueryString,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let (status, skip, limit) = execution_filter(&q)?;
    let workflows = gw.workflows()?;
    // A workflow that does not exist has no list (404), not an empty one.
    workflows.get(&who, &name).await?;
    let list = workflows
        .executions(&who, Some(&name), status, skip, limit)
        .await?;
    Ok(json_response(StatusCode::OK, &list))
}

async fn list_executions(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    q: QueryString,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let (status, skip, limit) = execution_filter(&q)?;
    let workflow = q.str("workflow").filter(|w| !w.is_empty());
    let list = gw
        .workflows()?
        .executions(&who, workflow, status, skip, limit)
        .await?;
    Ok(json_response(StatusCode::OK, &list))
}

async fn get_execution(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, id)): Path<(String, String)>,
) -> ApiResult {
    gw.controller.authorize(&who, &ns)?;
    let e = gw.workflows()?.execution(&who, &id).await?;
    Ok(json_response(StatusCode::OK, &e))
}

/// One page of a history and where the next starts.
#[derive(Debug, PartialEq)]
struct HistoryPage {
    events: Vec<HistoryEvent>,
    /// The cursor (`after`) of the next page; `None` after the last.
    next: Option<u64>,
}

/// Reads up to `limit` events of execution `id` after `after` (reverse: before it), one
/// more when it can to tell whether a next page exists.
async fn history_page(
    workflows: &gust_workflow::Workflows,
    who: &gust_model::Identity,
    id: &str,
    after: u64,
    limit: u64,
    reverse: bool,
) -> Result<HistoryPage, gust_workflow::WorkflowError> {
    let limit = limit.clamp(1, MAX_HISTORY_PAGE);
    let ask = (limit + 1).min(MAX_HISTORY_PAGE);
    let mut events = workflows.history(who, id, after, ask, reverse).await?;
    let more = events.len() as u64 > limit || (ask == limit && events.len() as u64 == limit);
    events.truncate(limit as usize);
    let next = if more {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(HistoryPage { events, next })
}

/// `GET .../executions/{id}/history?after=&limit=&reverse=`: `{"events", "next"}`, `next`
/// the `after` of the next page (or `null`).
async fn history(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, id)): Path<(String, String)>,
    q: QueryString,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let reverse = q.bool("reverse")?;
    let after = match q.int("after", "history")? {
        Some(n) => n,
        None if reverse => u64::MAX,
        None => 0,
    };
    let limit = match q.int("limit", "history")? {
        None => 100,
        Some(n) if (1..=MAX_HISTORY_PAGE).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "The value '{n}' is not in the range of 1 to {MAX_HISTORY_PAGE} for history."
            )));
        }
    };
    let page = history_page(gw.workflows()?, &who, &id, after, limit, reverse).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "events": page.events, "next": page.next }),
    ))
}

/// An optional `error` and `cause` (a stop, a task failure).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Failure {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cause: Option<String>,
}

async fn stop(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, id)): Path<(String, String)>,
    b: RawBody,
) -> ApiResult {
    gw.controller.authorize(&who, &ns)?;
    let b = body(b, MAX_INVOKE_BODY)?;
    let Failure { error, cause } = json_or_default(&b)?;
    let e = gw.workflows()?.stop(&who, &id, error, cause).await?;
    Ok(json_response(StatusCode::OK, &e))
}

/// `POST .../executions/{id}/events/{event}` with any JSON (empty: `null`): 202.
async fn raise_event(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, id, event)): Path<(String, String, String)>,
    b: RawBody,
) -> ApiResult {
    gw.controller.authorize(&who, &ns)?;
    let b = payload_body(b, gw.controller.system_limits().max_payload)?;
    let v: Value = json_or_default(&b)?;
    gw.workflows()?.raise_event(&who, &id, &event, v).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({ "execution": id, "event": event }),
    ))
}

/// The body of a task result: the token, and the output (success) or error and cause.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cause: Option<String>,
}

/// `POST .../tasks/{success|failure|heartbeat}`: ends (or keeps alive) the callback step of
/// `token`; 200 `{}`.
async fn task(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, outcome)): Path<(String, String)>,
    b: RawBody,
) -> ApiResult {
    gw.controller.authorize(&who, &ns)?;
    let b = payload_body(b, gw.controller.system_limits().max_payload)?;
    let t: TaskBody = json_or_default(&b)?;
    let token = t
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("the body must give the task's \"token\""))?;
    let workflows = gw.workflows()?;
    match outcome.as_str() {
        "success" => {
            let output = t
                .output
                .ok_or_else(|| malformed("a task success must give its \"output\""))?;
            workflows.send_task_success(&who, &token, output).await?;
        }
        "failure" => {
            workflows
                .send_task_failure(&who, &token, t.error, t.cause)
                .await?
        }
        "heartbeat" => workflows.send_task_heartbeat(&who, &token).await?,
        _ => return Err(ApiError::not_found()),
    }
    Ok(json_response(StatusCode::OK, &json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_is_an_object_or_a_string_holding_one() {
        let obj = json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}});
        assert_eq!(definition_of(Some(obj.clone())).unwrap(), obj);
        assert_eq!(
            definition_of(Some(Value::String(obj.to_string()))).unwrap(),
            obj
        );
        let e = definition_of(Some(json!("{nope"))).unwrap_err();
        assert!(e.message.starts_with("The definition is not valid JSON"));
        assert_eq!(definition_of(None).unwrap_err().status, 400);
        assert_eq!(definition_of(Some(Value::Null)).unwrap_err().status, 400);
    }

    #[test]
    fn blocking_waits_are_bounded() {
        let q = |pairs: &[(&str, &str)]| {
            Params(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert_eq!(blocking_wait(&q(&[])).unwrap(), None);
        assert_eq!(
            blocking_wait(&q(&[("blocking", "true")])).unwrap(),
            Some(MAX_BLOCKING_WAIT)
        );
        assert_eq!(
            blocking_wait(&q(&[("blocking", "true"), ("timeout", "1500")])).unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert!(blocking_wait(&q(&[("blocking", "true"), ("timeout", "0")])).is_err());
        assert!(blocking_wait(&q(&[("blocking", "true"), ("timeout", "60001")])).is_err());
        assert!(blocking_wait(&q(&[("blocking", "yes")])).is_err());
    }

    #[test]
    fn statuses_filter_by_step_functions_names() {
        let q = Params([("status".to_string(), "succeeded".to_string())].into());
        assert_eq!(
            execution_filter(&q).unwrap(),
            (Some(ExecutionStatus::Succeeded), 0, 30)
        );
        let q = Params([("status".to_string(), "DONE".to_string())].into());
        assert_eq!(execution_filter(&q).unwrap_err().status, 400);
    }
}
