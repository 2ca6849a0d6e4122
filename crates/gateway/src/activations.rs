//! Resource: activations — listing and counting them, reading one record, its logs or its
//! result (`/api/v1/namespaces/{ns}/activations[/{id}[/{part}]]`), and following new records
//! live (`.../activations/stream`, Server-Sent Events, decision 0026). Imports the kit only.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::{self, StreamExt as _};
use gust_controller::{ActivationQuery, Follow, FollowFrom};
use gust_model::ActivationSummary;
use gust_model::limits::MAX_LIST;
use serde_json::json;

use crate::extract::{Caller, QueryString, identity_of, params};
use crate::query::Params;
use crate::respond::{ApiResult, internal, json_response};
use crate::{ApiError, Gateway};

/// A comment line this often keeps a quiet stream open through proxies.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often an open stream checks its caller's key or token again.
const RECHECK: Duration = Duration::from_secs(5);

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/api/v1/namespaces/{ns}/activations", get(list_activations))
        .route(
            "/api/v1/namespaces/{ns}/activations/stream",
            get(stream_activations),
        )
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
    let name = action_name(&q)?;
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

/// The `name` filter: an action's simple name or `package/action`.
fn action_name(q: &Params) -> Result<Option<String>, ApiError> {
    let Some(n) = q.str("name") else {
        return Ok(None);
    };
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
    Ok(Some(n.to_string()))
}

/// `GET .../activations/stream`: each record written from now on (or since `since`, or
/// after the record named by `Last-Event-ID`) as an `activation` event whose id is the
/// activation id and whose data is the record, logs included. Ends with an `error` event
/// when the store cannot be read.
async fn stream_activations(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    headers: HeaderMap,
    q: QueryString,
) -> Result<Response, ApiError> {
    let q = params(q)?;
    let ns = gw.controller.authorize(&who, &ns)?;
    let name = action_name(&q)?;
    let from = FollowFrom {
        since: q.int("since", "activations")?,
        after: headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let follow = gw.controller.follow_activations(ns, name, from).await?;
    let live = Live {
        follow,
        credential: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        checked: Instant::now(),
    };
    let closed = gw.closed();
    let events = stream::unfold(Some((gw, live)), |state| async move {
        let (gw, mut live) = state?;
        Some(match live.next(&gw).await {
            Ok(batch) => (batch, Some((gw, live))),
            Err(e) => {
                tracing::debug!(error = %e.message, "live activations stream ended");
                let end = Event::default()
                    .event("error")
                    .data(json!({ "error": e.message }).to_string());
                (vec![end], None)
            }
        })
    })
    .flat_map(|batch: Vec<Event>| stream::iter(batch.into_iter().map(Ok::<_, Infallible>)))
    // A stream never ends on its own: it ends when the listener stops.
    .take_until(closed);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// One open live stream and the credential it was opened with.
struct Live {
    follow: Follow,
    /// The `Authorization` header's value, checked again every [`RECHECK`].
    credential: String,
    checked: Instant,
}

impl Live {
    /// The next events; fails once the caller may no longer read the namespace (a rotated
    /// key, an expired token, a deleted namespace) or the store cannot be read.
    async fn next(&mut self, gw: &Gateway) -> Result<Vec<Event>, ApiError> {
        if self.checked.elapsed() >= RECHECK {
            let who = identity_of(gw, &self.credential).await?;
            gw.controller.authorize(&who, self.follow.namespace())?;
            self.checked = Instant::now();
        }
        // Waits no longer than until the next check is due.
        let batch = self
            .follow
            .next(RECHECK.saturating_sub(self.checked.elapsed()))
            .await?;
        Ok(batch.into_iter().filter_map(event).collect())
    }
}

/// A record as an `activation` event; `None` for an id an event id cannot carry (ours never
/// hold a line break, but a stored document is not trusted to).
fn event((id, record): (String, Box<serde_json::value::RawValue>)) -> Option<Event> {
    if !gust_model::names::is_activation_id(&id) {
        return None;
    }
    Some(
        Event::default()
            .event("activation")
            .id(id)
            .data(record.get()),
    )
}
