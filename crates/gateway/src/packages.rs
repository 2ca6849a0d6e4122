//! Resource: packages — listing, reading, writing and deleting them
//! (`/api/v1/namespaces/{ns}/packages[/{name}]`). Imports the kit only.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use gust_controller::PackagePut;
use gust_model::Package;
use gust_model::limits::{MAX_BODY, MAX_LIST};
use serde_json::{Value, json};

use crate::Gateway;
use crate::extract::{Caller, QueryString, RawBody, TokenGrant, body, json_or_default, params};
use crate::query::Listing;
use crate::respond::{ApiResult, json_response};
use gust_controller::tokens::Verb;

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/api/v1/namespaces/{ns}/packages", get(list_packages))
        .route(
            "/api/v1/namespaces/{ns}/packages/{name}",
            get(get_package).put(put_package).delete(delete_package),
        )
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
    q: QueryString,
) -> ApiResult {
    match params(q)?.listing(MAX_LIST, "packages")? {
        Listing::Count => {
            let n = gw.controller.count_packages(&who, &ns).await?;
            Ok(json_response(StatusCode::OK, &json!({ "packages": n })))
        }
        Listing::Page { skip, limit } => {
            let list = gw.controller.list_packages(&who, &ns, skip, limit).await?;
            let out: Vec<Value> = list.iter().map(package_summary).collect();
            Ok(json_response(StatusCode::OK, &out))
        }
    }
}

async fn get_package(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let (package, actions) = gw.controller.get_package(&who, &ns, &name).await?;
    let mut v = json!(package);
    let row = |a: &gust_model::Action| {
        json!({
            "name": a.simple_name(),
            "version": a.version,
            "annotations": a.annotations,
        })
    };
    v["actions"] = actions.iter().map(row).collect();
    v["feeds"] = actions
        .iter()
        .filter(|a| a.annotation_is_truthy(gust_model::annotations::FEED))
        .map(row)
        .collect();
    Ok(json_response(StatusCode::OK, &v))
}

async fn put_package(
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
    let put: PackagePut = json_or_default(&b)?;
    // A binding reaches its package's actions under its own name: a token must be able to
    // invoke all of them itself.
    if let (Some(grant), Some(bound)) = (&grant, put.binding.as_ref()) {
        let target = |k: &str| bound.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        if !target("name").is_empty() {
            let reference = format!("/{}/{}", target("namespace"), target("name"));
            grant.permit_reference(&who.namespace, Verb::Invoke, "actions", &reference)?;
        }
    }
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
    q: QueryString,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let force = q.bool("force")?;
    let package = gw.controller.delete_package(&who, &name, force).await?;
    Ok(json_response(StatusCode::OK, &package))
}
