//! Resource: scoped tokens — minting one (`POST /api/v1/namespaces/{ns}/tokens`) with the
//! namespace's key; a token may not mint. `web` names one web action or API route. Body `{"ttl", "scope", "web"}`, all optional but a
//! scope or a web action; answer `{"token", "expires" (ms since the epoch), "scope"[, "web"]}`.
//! Imports the kit only.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use gust_controller::ControllerError;
use gust_controller::tokens::{DEFAULT_TTL, Scope, TokenRequest, parse_ttl};
use gust_model::limits::MAX_BODY;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Gateway;
use crate::extract::{KeyCaller, RawBody, body, json_or_default};
use crate::respond::{ApiResult, json_response};

pub(crate) fn router() -> Router<Gateway> {
    Router::new().route("/api/v1/namespaces/{ns}/tokens", post(mint))
}

/// The body of a mint request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    /// Seconds, or a number with `s`, `m` or `h`.
    #[serde(default)]
    ttl: Option<Value>,
    #[serde(default)]
    scope: Vec<String>,
    #[serde(default)]
    web: Option<String>,
}

async fn mint(
    State(gw): State<Gateway>,
    KeyCaller(who): KeyCaller,
    Path(ns): Path<String>,
    b: RawBody,
) -> ApiResult {
    gw.controller.authorize(&who, &ns)?;
    let req: MintBody = json_or_default(&body(b, MAX_BODY)?)?;
    let bad = |e: String| ControllerError::BadRequest(e);
    let ttl = match &req.ttl {
        None => DEFAULT_TTL,
        Some(v) => parse_ttl(v).map_err(bad)?,
    };
    let scope = Scope::parse(&req.scope).map_err(|e| bad(e.to_string()))?;
    let minted = gw
        .controller
        .mint_token(
            &who,
            TokenRequest {
                ttl,
                scope,
                web: req.web,
            },
        )
        .await?;
    let mut answer = json!({
        "token": minted.token,
        "expires": minted.expires,
        "scope": minted.scope,
    });
    if let Some(web) = minted.web {
        answer["web"] = json!(web);
    }
    Ok(json_response(StatusCode::OK, &answer))
}
