//! Resource: activations — listing and counting them, and reading one record, its logs or
//! its result (`/api/v1/namespaces/{ns}/activations[/{id}[/{part}]]`). Imports the kit only.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use gust_controller::ActivationQuery;
use gust_model::ActivationSummary;
use gust_model::limits::MAX_LIST;
use serde_json::json;

use crate::extract::{Caller, QueryString, params};
use crate::respond::{ApiResult, internal, json_response};
use crate::{ApiError, Gateway};

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/api/v1/namespaces/{ns}/activations", get(list_activations))
        .route(
            "/api/v1/namespaces/{ns}/activations/{id}",
            get(get_activation),
        )
        .route(
            "/api/v1/namespaces/{ns}/activations/{id}/{part}",
            get(activation_part),
        )
}

async fn list_activations(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    q: QueryString,
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
            .map_err(internal)?;
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
