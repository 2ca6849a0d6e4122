//! Resource: actions — listing, reading, writing and deleting them
//! (`/api/v1/namespaces/{ns}/actions[/{name}]`, and `.../actions/{pkg}/` for a package's),
//! and invoking them (`POST`, once per `Idempotency-Key` header), and their async delivery
//! configs ([`delivery`]). Imports the kit only.

mod delivery;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use gust_controller::{
    ActionPut, Idempotent, Identity, Invocation, InvokeOutcome, MAX_BLOCKING_WAIT, Wait,
};
use gust_model::limits::{MAX_BODY, MAX_INVOKE_BODY, MAX_LIST};
use gust_model::{Action, ActivationStatus, annotations};
use serde_json::{Map, Value, json};

use crate::extract::Trace;
use crate::extract::{
    Caller, QueryString, RawBody, TokenGrant, body, malformed, params, payload_body,
};
use crate::query::Params;
use crate::respond::{ApiResult, Finished, accepted, json_response, with_activation_id};
use crate::{ApiError, Gateway};

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/api/v1/namespaces/{ns}/actions", get(list_actions))
        .route(
            "/api/v1/namespaces/{ns}/actions/{*name}",
            get(get_action)
                .put(put_action)
                .delete(delete_action)
                // Inside the router's `DefaultBodyLimit::max(MAX_BODY)`: this one, set later on
                // the request, is the one the body extractor reads.
                .post(invoke.layer(DefaultBodyLimit::max(MAX_INVOKE_BODY))),
        )
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
    q: QueryString,
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
    q: QueryString,
) -> ApiResult {
    let q = params(q)?;
    if let Some(action) = delivery::target(&gw, &who, &ns, &name).await? {
        return delivery::get(&gw, &who, &ns, &action).await;
    }
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
    TokenGrant(grant): TokenGrant,
    Path((ns, name)): Path<(String, String)>,
    q: QueryString,
    b: RawBody,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    if let Some(action) = delivery::target(&gw, &who, &ns, &name).await? {
        return delivery::put(&gw, &who, grant.as_ref(), &ns, &action, b).await;
    }
    let b = body(b, MAX_BODY)?;
    let put: ActionPut = serde_json::from_slice(&b).map_err(malformed)?;
    if let Some(grant) = &grant {
        let components = put.exec.as_ref().and_then(|e| e.components.as_deref());
        grant.permit_action_write(
            &who.namespace,
            put.annotations.as_deref().unwrap_or_default(),
            components.unwrap_or_default(),
        )?;
    }
    let overwrite = q.bool("overwrite")?;
    // Answered with the code stored, as OpenWhisk answers.
    let action = gw
        .controller
        .put_action(&who, &name, put, overwrite)
        .await?;
    Ok(json_response(StatusCode::OK, &shown(action)))
}

async fn delete_action(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    if let Some(action) = delivery::target(&gw, &who, &ns, &name).await? {
        return delivery::delete(&gw, &who, &ns, &action).await;
    }
    let ns = gw.controller.authorize(&who, &ns)?;
    let action = gw.controller.delete_action(ns, &name).await?;
    Ok(json_response(StatusCode::OK, &shown(action)))
}

/// What an invoke's query asks for.
struct InvokeQuery {
    wait: Wait,
    /// `result=true`: the body is the result alone, not the whole record.
    result_only: bool,
}

impl InvokeQuery {
    fn read(q: &Params) -> Result<Self, ApiError> {
        let blocking = q.bool("blocking")?;
        let result_only = q.bool("result")?;
        let up_to = match q.str("timeout").map(str::parse::<u64>) {
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
        let wait = if blocking {
            Wait::UpTo(up_to)
        } else {
            Wait::No
        };
        Ok(InvokeQuery { wait, result_only })
    }
}

async fn invoke(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    Trace(trace): Trace,
    headers: HeaderMap,
    q: QueryString,
    b: RawBody,
) -> ApiResult {
    let q = params(q)?;
    let key = idempotency_key(&headers)?;
    let b = payload_body(b, gw.controller.system_limits().max_payload)?;
    let input: Map<String, Value> = if b.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&b).map_err(malformed)? {
            Value::Object(m) => m,
            _ => return Err(malformed("the parameters must be a JSON object")),
        }
    };
    let InvokeQuery { wait, result_only } = InvokeQuery::read(&q)?;
    let resolved = gw.controller.resolve(&who, &ns, &name).await?;
    // A repeated key answers its first activation and runs nothing.
    let claimed = match &key {
        None => None,
        Some(key) => match gw
            .controller
            .claim_idempotency_key(&who, key, &resolved, &input)
            .await?
        {
            Idempotent::Repeated(first) => {
                return repeated(&gw, &who, &first, wait, result_only).await;
            }
            Idempotent::New(id) => Some((key, id)),
        },
    };
    let invoked = gw
        .controller
        .invoke(Invocation {
            caller: &who,
            action: &resolved,
            params: input,
            wait,
            cause: None,
            secrets: Vec::new(),
            activation_id: claimed.as_ref().map(|(_, id)| id.clone()),
            trace,
        })
        .await;
    let outcome = match invoked {
        Ok(outcome) => outcome,
        Err(e) => {
            // Refused: a retry of the request may run.
            if let Some((key, id)) = &claimed {
                gw.controller.release_idempotency_key(&who, key, id).await;
            }
            return Err(e.into());
        }
    };
    Ok(match outcome {
        InvokeOutcome::Accepted(id) | InvokeOutcome::Waiting(id) => accepted(&id),
        InvokeOutcome::Completed(record) => completed(record.get(), result_only)?,
    })
}

/// The `Idempotency-Key` header, if the request has one (checked: 400 when it is not 1 to
/// 256 visible ASCII characters).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    // A value that is not ASCII text is refused as an empty one is.
    let key = v.to_str().unwrap_or_default();
    gust_controller::check_idempotency_key(key)?;
    Ok(Some(key.to_string()))
}

/// The answer to a request whose idempotency key names activation `first`: its stored
/// record when the request blocks and there is one, else 202 with its id.
async fn repeated(
    gw: &Gateway,
    who: &Identity,
    first: &str,
    wait: Wait,
    result_only: bool,
) -> ApiResult {
    if wait != Wait::No
        && let Some(record) = gw
            .controller
            .store()
            .activation(&who.namespace, first)
            .await
            .map_err(gust_controller::ControllerError::from)?
    {
        let record = serde_json::to_string(&record).map_err(crate::respond::internal)?;
        return completed(&record, result_only);
    }
    Ok(accepted(first))
}

/// The answer to a blocking invocation that finished: its stored record (JSON text), or its
/// result alone, with the status its outcome gives.
fn completed(record: &str, result_only: bool) -> ApiResult {
    // Read only what the response needs; the body is the stored JSON as it is.
    let finished = Finished::read(record)?;
    let status = match finished.response.status {
        ActivationStatus::Success => StatusCode::OK,
        ActivationStatus::ApplicationError | ActivationStatus::DeveloperError => {
            StatusCode::BAD_GATEWAY
        }
        ActivationStatus::InternalError if overloaded(record) => StatusCode::SERVICE_UNAVAILABLE,
        ActivationStatus::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = if result_only {
        finished.response.result.get()
    } else {
        record
    };
    let res = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_owned(),
    )
        .into_response();
    Ok(with_activation_id(res, &finished.activation_id))
}

/// Whether a record says no instance could take its invocation (annotation `overloaded`).
fn overloaded(record: &str) -> bool {
    serde_json::from_str::<Value>(record)
        .ok()
        .and_then(|r| {
            r["annotations"].as_array().map(|a| {
                a.iter()
                    .any(|kv| kv["key"] == annotations::OVERLOADED && kv["value"] == true)
            })
        })
        .unwrap_or(false)
}
