//! Resource: triggers — listing, reading, writing and deleting them, and firing them
//! (`POST`) (`/api/v1/namespaces/{ns}/triggers[/{name}]`). Imports the kit only.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use gust_events::{Fired, TriggerPut, forwarded_headers};
use gust_model::Trigger;
use gust_model::limits::{MAX_BODY, MAX_INVOKE_BODY, MAX_LIST};
use serde_json::{Map, Value, json};

use crate::Gateway;
use crate::extract::{
    Caller, QueryString, RawBody, body, json_or_default, malformed, params, payload_body,
};
use crate::query::Listing;
use crate::respond::{ApiResult, accepted, json_response};

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/api/v1/namespaces/{ns}/triggers", get(list_triggers))
        .route(
            "/api/v1/namespaces/{ns}/triggers/{name}",
            get(get_trigger)
                .put(put_trigger)
                .delete(delete_trigger)
                .post(fire.layer(DefaultBodyLimit::max(MAX_INVOKE_BODY))),
        )
}

/// A trigger as listed: OpenWhisk's rows have no parameters, limits or rules.
fn trigger_summary(t: &Trigger) -> Value {
    json!({
        "namespace": t.namespace,
        "name": t.name,
        "version": t.version,
        "publish": t.publish,
        "annotations": t.annotations,
        "updated": t.updated,
    })
}

async fn list_triggers(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    q: QueryString,
) -> ApiResult {
    match params(q)?.listing(MAX_LIST, "triggers")? {
        Listing::Count => {
            let n = gw.events.count_triggers(&who, &ns).await?;
            Ok(json_response(StatusCode::OK, &json!({ "triggers": n })))
        }
        Listing::Page { skip, limit } => {
            let list = gw.events.list_triggers(&who, &ns, skip, limit).await?;
            let out: Vec<Value> = list.iter().map(trigger_summary).collect();
            Ok(json_response(StatusCode::OK, &out))
        }
    }
}

async fn get_trigger(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let t = gw.events.get_trigger(&who, &ns, &name).await?;
    Ok(json_response(StatusCode::OK, &t))
}

async fn put_trigger(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    q: QueryString,
    b: RawBody,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let b = body(b, MAX_BODY)?;
    let put: TriggerPut = json_or_default(&b)?;
    let overwrite = q.bool("overwrite")?;
    let t = gw.events.put_trigger(&who, &name, put, overwrite).await?;
    Ok(json_response(StatusCode::OK, &t))
}

async fn delete_trigger(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let t = gw.events.delete_trigger(&who, &ns, &name).await?;
    Ok(json_response(StatusCode::OK, &t))
}

/// `POST .../triggers/{name}`: the body (a JSON object, or nothing) is the payload.
async fn fire(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    b: RawBody,
) -> ApiResult {
    let b = payload_body(b, gw.controller.system_limits().max_payload)?;
    let payload = match json_or_default(&b)? {
        Value::Null => Map::new(),
        Value::Object(m) => m,
        _ => return Err(malformed("the payload must be a JSON object")),
    };
    let headers = forwarded_headers(
        headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))),
    );
    match gw.events.fire(&who, &ns, &name, payload, headers).await? {
        Fired::Activation(id) => Ok(accepted(&id)),
        Fired::NoActiveRule => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}
