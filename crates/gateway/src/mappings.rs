//! Resource: event source mappings, read only (`/api/v1/namespaces/{ns}/mappings[/{rule}]`,
//! decision 0027) — each rule of a stream trigger with its checkpoint and what its runner
//! last said, read from the store as they are. Their runners write them; nothing here does. Authenticated like every
//! namespace read (a key, or a token that may read `mappings`); another namespace is refused
//! as everywhere else. Imports the kit only.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use gust_controller::ControllerError;
use gust_model::Mapping;
use serde_json::{Map, Value, json};

use crate::Gateway;
use crate::extract::Caller;
use crate::respond::{ApiResult, json_response};

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/api/v1/namespaces/{ns}/mappings", get(list_mappings))
        .route("/api/v1/namespaces/{ns}/mappings/{rule}", get(get_mapping))
}

/// A mapping as the API shows it: its five fixed fields, then the keys of its runner's state
/// that do not repeat one of them.
fn mapping_json(m: &Mapping) -> Value {
    let mut out = Map::new();
    out.insert("namespace".into(), json!(m.namespace));
    out.insert("rule".into(), json!(m.rule));
    out.insert("trigger".into(), json!(m.trigger));
    // A string, as `sequenceNumber` is: a Redis sequence passes 2^53.
    out.insert("checkpoint".into(), json!(m.checkpoint.to_string()));
    out.insert("updatedAt".into(), json!(m.updated_ms));
    for (k, v) in &m.state {
        if !out.contains_key(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

async fn list_mappings(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
) -> ApiResult {
    let ns = gw.controller.authorize(&who, &ns)?;
    let list = gw
        .controller
        .store()
        .mappings(ns)
        .await
        .map_err(ControllerError::from)?;
    let out: Vec<Value> = list.iter().map(mapping_json).collect();
    Ok(json_response(StatusCode::OK, &out))
}

async fn get_mapping(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, rule)): Path<(String, String)>,
) -> ApiResult {
    let ns = gw.controller.authorize(&who, &ns)?;
    let m = gw
        .controller
        .store()
        .mapping(ns, &rule)
        .await
        .map_err(ControllerError::from)?
        .ok_or(ControllerError::NotFound)?;
    Ok(json_response(StatusCode::OK, &mapping_json(&m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_flattened_in_without_overriding_the_fixed_fields() {
        let state = json!({
            "state": "running",
            "lag": 3,
            "rule": "not this",
            "checkpoint": "nor this",
            "updatedAt": 0,
        });
        let m = Mapping {
            namespace: "ns".into(),
            rule: "r".into(),
            trigger: "/ns/t".into(),
            checkpoint: 42,
            state: state.as_object().unwrap().clone(),
            updated_ms: 1_700_000_000_000,
        };
        assert_eq!(
            mapping_json(&m),
            json!({
                "namespace": "ns",
                "rule": "r",
                "trigger": "/ns/t",
                "checkpoint": "42",
                "updatedAt": 1_700_000_000_000u64,
                "state": "running",
                "lag": 3,
            })
        );
    }
}
