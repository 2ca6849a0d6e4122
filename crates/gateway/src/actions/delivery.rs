//! An action's async delivery config (decision 0028), a part of the action resource:
//! `GET|PUT|DELETE /api/v1/namespaces/{ns}/actions/{name}/delivery`. The body is the config's
//! camelCase fields (`maximumRetryAttempts`, `maximumEventAgeInSeconds`, `onSuccess`,
//! `onFailure`); a PUT replaces the config, absent fields taking Lambda's defaults. A token
//! needs `read` on the action to read it, `write` to change it.
//!
//! The action's path ends with `/delivery` under the actions' one wildcard route:
//! `a/delivery` is action `a`'s config unless a package `a` exists (then it is that
//! package's action `delivery`); `p/a/delivery` is always `p/a`'s.

use axum::http::StatusCode;
use gust_controller::tokens::Grant;
use gust_controller::{ControllerError, Identity};
use gust_events::DeliveryPut;
use serde_json::{Map, Value};

use crate::Gateway;
use crate::extract::{RawBody, body, malformed};
use crate::respond::{ApiResult, json_response};

/// The path's last segment that names the config.
const SUFFIX: &str = "/delivery";
/// Longest config body.
const MAX_BODY: usize = 16 * 1024;

/// The action whose delivery config `name` (a path under `.../actions/`) names, if it names
/// one.
pub(super) async fn target(
    gw: &Gateway,
    who: &Identity,
    ns: &str,
    name: &str,
) -> Result<Option<String>, ControllerError> {
    let Some(action) = name.strip_suffix(SUFFIX) else {
        return Ok(None);
    };
    if action.is_empty() || action.ends_with('/') || action.split('/').count() > 2 {
        return Ok(None);
    }
    if !action.contains('/') {
        // `pkg/delivery` is an action of package `pkg` when there is such a package.
        let ns = who.namespace_named(ns);
        if gw.controller.store().package(ns, action).await?.is_some() {
            return Ok(None);
        }
    }
    Ok(Some(action.to_string()))
}

pub(super) async fn get(gw: &Gateway, who: &Identity, ns: &str, action: &str) -> ApiResult {
    let config = gw
        .events
        .delivery_config(who, ns, action)
        .await?
        .ok_or(ControllerError::NotFound)?;
    Ok(json_response(StatusCode::OK, &config))
}

pub(super) async fn put(
    gw: &Gateway,
    who: &Identity,
    grant: Option<&Grant>,
    ns: &str,
    action: &str,
    b: RawBody,
) -> ApiResult {
    let b = body(b, MAX_BODY)?;
    let fields: Map<String, Value> = if b.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&b).map_err(malformed)? {
            Value::Object(m) => m,
            _ => return Err(malformed("a delivery config must be a JSON object")),
        }
    };
    let put = DeliveryPut::read(&fields)?;
    let config = gw
        .events
        .put_delivery_config(who, grant, ns, action, put)
        .await?;
    Ok(json_response(StatusCode::OK, &config))
}

pub(super) async fn delete(gw: &Gateway, who: &Identity, ns: &str, action: &str) -> ApiResult {
    let config = gw
        .events
        .delivery_config(who, ns, action)
        .await?
        .ok_or(ControllerError::NotFound)?;
    gw.events.delete_delivery_config(who, ns, action).await?;
    Ok(json_response(StatusCode::OK, &config))
}
