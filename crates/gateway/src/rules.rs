//! Resource: rules — listing, reading, writing and deleting them, and enabling or disabling
//! them (`POST {"status": ...}`) (`/api/v1/namespaces/{ns}/rules[/{name}]`). Imports the kit
//! only.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use gust_events::RulePut;
use gust_model::Rule;
use gust_model::limits::{MAX_BODY, MAX_LIST};
use serde_json::{Value, json};

use crate::Gateway;
use crate::extract::{Caller, QueryString, RawBody, TokenGrant, body, json_or_default, params};
use crate::query::Listing;
use crate::respond::{ApiResult, json_response};
use gust_controller::tokens::Verb;

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/api/v1/namespaces/{ns}/rules", get(list_rules))
        .route(
            "/api/v1/namespaces/{ns}/rules/{name}",
            get(get_rule)
                .put(put_rule)
                .delete(delete_rule)
                .post(set_status),
        )
}

/// A rule as listed: OpenWhisk's rows have no status (its trigger is not read).
fn rule_summary(r: &Rule) -> Value {
    let mut v = json!(r);
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    v
}

async fn list_rules(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    q: QueryString,
) -> ApiResult {
    match params(q)?.listing(MAX_LIST, "rules")? {
        Listing::Count => {
            let n = gw.events.count_rules(&who, &ns).await?;
            Ok(json_response(StatusCode::OK, &json!({ "rules": n })))
        }
        Listing::Page { skip, limit } => {
            let list = gw.events.list_rules(&who, &ns, skip, limit).await?;
            let out: Vec<Value> = list.iter().map(rule_summary).collect();
            Ok(json_response(StatusCode::OK, &out))
        }
    }
}

async fn get_rule(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let r = gw.events.get_rule(&who, &ns, &name).await?;
    Ok(json_response(StatusCode::OK, &r))
}

async fn put_rule(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    TokenGrant(grant): TokenGrant,
    Path((ns, name)): Path<(String, String)>,
    q: QueryString,
    b: RawBody,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let b = body(b, MAX_BODY)?;
    let put: RulePut = json_or_default(&b)?;
    if let Some(grant) = &grant {
        // A rule lets its trigger's fires invoke its action: a token must be able to
        // invoke the action itself. An update that leaves the action out keeps the one set
        // by whoever wrote it.
        if let Some(action) = put.action.as_ref().map(reference) {
            grant.permit_reference(&who.namespace, Verb::Invoke, "actions", &action)?;
        }
    }
    let overwrite = q.bool("overwrite")?;
    let r = gw.events.put_rule(&who, &name, put, overwrite).await?;
    Ok(json_response(StatusCode::OK, &r))
}

async fn delete_rule(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let r = gw.events.delete_rule(&who, &ns, &name).await?;
    Ok(json_response(StatusCode::OK, &r))
}

/// `POST .../rules/{name}` with `{"status": "active" | "inactive"}`: answers the rule.
async fn set_status(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    b: RawBody,
) -> ApiResult {
    let b = body(b, MAX_BODY)?;
    let v: Value = json_or_default(&b)?;
    let r = gw
        .events
        .set_rule_status(&who, &ns, &name, v.get("status"))
        .await?;
    Ok(json_response(StatusCode::OK, &r))
}

/// The path a rule's `action` names (`/ns/a`, `a`, or `{path, name}` with `path` the
/// namespace or `ns/pkg`), as written.
fn reference(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => {
            let path = o.get("path").and_then(|p| p.as_str()).unwrap_or_default();
            let name = o.get("name").and_then(|n| n.as_str()).unwrap_or_default();
            format!("/{}/{name}", path.trim_matches('/'))
        }
        other => other.to_string(),
    }
}
