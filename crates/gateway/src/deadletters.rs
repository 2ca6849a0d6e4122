//! Resource: a namespace's dead letters (decision 0028) — the async invocations that failed
//! with no `onFailure` destination, each with Lambda's destination record
//! (`/api/v1/namespaces/{ns}/deadletters[/{id}]`): listed newest first (`skip`, `limit`),
//! read, deleted, and redriven (`POST .../{id}/redrive`: the action invoked again,
//! non-blocking, with the request's parameters; the letter removed; the answer is the new
//! activation's id). A token needs `read:deadletters` to read them, `write:deadletters` to
//! delete or redrive one (and, to redrive, `invoke` on its action). Another namespace's are
//! refused as everywhere else. Imports the kit only.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use gust_model::limits::MAX_LIST;

use crate::Gateway;
use crate::extract::{Caller, QueryString, TokenGrant, params};
use crate::respond::{ApiResult, accepted, json_response};

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/api/v1/namespaces/{ns}/deadletters", get(list))
        .route(
            "/api/v1/namespaces/{ns}/deadletters/{id}",
            get(get_one).delete(delete),
        )
        .route(
            "/api/v1/namespaces/{ns}/deadletters/{id}/redrive",
            post(redrive),
        )
}

async fn list(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    q: QueryString,
) -> ApiResult {
    let q = params(q)?;
    let skip = q.int("skip", "deadletters")?.unwrap_or(0);
    let limit = q.limit(MAX_LIST, "deadletters")?;
    let mut list = gw.events.dead_letters(&who, &ns, skip, limit).await?;
    list.iter_mut().for_each(|l| l.secrets.clear());
    Ok(json_response(StatusCode::OK, &list))
}

async fn get_one(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, id)): Path<(String, String)>,
) -> ApiResult {
    let mut letter = gw.events.dead_letter(&who, &ns, &id).await?;
    letter.secrets.clear();
    Ok(json_response(StatusCode::OK, &letter))
}

async fn delete(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, id)): Path<(String, String)>,
) -> ApiResult {
    let mut letter = gw.events.dead_letter(&who, &ns, &id).await?;
    gw.events.delete_dead_letter(&who, &ns, &id).await?;
    letter.secrets.clear();
    Ok(json_response(StatusCode::OK, &letter))
}

async fn redrive(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    TokenGrant(grant): TokenGrant,
    Path((ns, id)): Path<(String, String)>,
) -> ApiResult {
    let activation = gw.events.redrive(&who, grant.as_ref(), &ns, &id).await?;
    Ok(accepted(&activation))
}
