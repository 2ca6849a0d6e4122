//! Resource: webhooks — `POST /hooks/{namespace}/{trigger}`, where a trigger whose feed is a
//! webhook source (`/whisk.system/webhooks/*`) receives its events. No key: the request's
//! signature, which the source checks, is its authentication; a bad one is a 401 that fires
//! nothing. Imports the kit only.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use gust_events::{Fired, HookRequest, Hooked};
use gust_model::limits::MAX_INVOKE_BODY;
use gust_model::time::now_ms;

use crate::Gateway;
use crate::extract::{RawBody, payload_body};
use crate::respond::{ApiResult, accepted};

pub(crate) fn router() -> Router<Gateway> {
    Router::new().route(
        "/hooks/{ns}/{trigger}",
        post(receive.layer(DefaultBodyLimit::max(MAX_INVOKE_BODY))),
    )
}

async fn receive(
    State(gw): State<Gateway>,
    Path((ns, trigger)): Path<(String, String)>,
    headers: HeaderMap,
    b: RawBody,
) -> ApiResult {
    let b = payload_body(b, gw.controller.system_limits().max_payload)?;
    let request = HookRequest {
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_string(), v.to_string()))
            })
            .collect(),
        body: b,
        now_ms: now_ms(),
    };
    match gw.events.hook(&ns, &trigger, request).await? {
        Hooked::Fired(Fired::Activation(id)) => Ok(accepted(&id)),
        Hooked::Fired(Fired::NoActiveRule) => Ok(StatusCode::NO_CONTENT.into_response()),
        Hooked::Reply { content_type, body } => {
            Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
        }
    }
}
