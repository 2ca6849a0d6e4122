//! Resource: API routes — managing a namespace's APIs (`/api/v1/namespaces/{ns}/apis`, a Gust
//! extension in the spirit of OpenWhisk's apimgmt) and serving them at
//! `/api/{ns}/{base}/{path}`, each route running a web action (with `http_action`) with its
//! path parameters, CORS and rate limit. Imports the kit only.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gust_controller::apis::{RoutePut, match_path};
use gust_controller::tokens::route_name;
use gust_controller::{ControllerError, Identity};
use gust_model::Route;
use gust_model::limits::MAX_ROUTE_BODY;
use gust_model::time::now_ms;
use serde_json::{Value, json};

use crate::extract::{Caller, QueryString, RawBody, body, malformed, params};
use crate::http_action::{self, Answer, Call, Cors, Extension, requested_headers};
use crate::lambda_http;
use crate::respond::{ApiResult, json_response};
use crate::{ApiError, Gateway};

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route(
            "/api/v1/namespaces/{ns}/apis",
            get(list_apis).put(put_route),
        )
        .route(
            "/api/v1/namespaces/{ns}/apis/{base}",
            get(get_api).delete(delete_api),
        )
        .route("/api/{ns}/{*rest}", axum::routing::any(serve_api))
}

/// A route: namespace, base path, path, method.
type RouteKey = (String, String, String, String);

/// Requests served per route in the current minute: route -> (minute, count).
#[derive(Debug, Default)]
pub struct RateLimits(Mutex<HashMap<RouteKey, (u64, u64)>>);

impl RateLimits {
    /// Counts a request to `route`; false if its limit for this minute is used up.
    fn admit(&self, route: &Route) -> bool {
        let Some(limit) = route.rate_limit else {
            return true;
        };
        let minute = now_ms() / 60_000;
        let key = (
            route.namespace.clone(),
            route.base_path.clone(),
            route.path.clone(),
            route.method.clone(),
        );
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (m, _)| *m == minute);
        }
        let entry = map.entry(key).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= limit {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// The public URL path of an API (`/api/{ns}{base}`).
fn api_path(ns: &str, base: &str) -> String {
    format!("/api/{ns}{base}")
}

/// Groups routes by API.
fn apis_json(routes: &[Route]) -> Value {
    let mut apis: Vec<Value> = Vec::new();
    for r in routes {
        let route = json!({
            "path": r.path,
            "method": r.method,
            "action": r.action,
            "responseType": r.response_type,
            "cors": r.cors,
            "rateLimit": r.rate_limit,
        });
        match apis.last_mut() {
            Some(a) if a["basePath"] == r.base_path => {
                if let Some(list) = a["routes"].as_array_mut() {
                    list.push(route);
                }
            }
            _ => apis.push(json!({
                "basePath": r.base_path,
                "url": api_path(&r.namespace, &r.base_path),
                "routes": [route],
            })),
        }
    }
    json!({ "apis": apis })
}

/// An API as an OpenAPI 3 document.
fn openapi(ns: &str, base: &str, routes: &[Route]) -> Value {
    let mut paths = serde_json::Map::new();
    for r in routes {
        let parameters: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
            })
            .collect();
        let op = json!({
            "operationId": format!("{} {}", r.method.to_ascii_lowercase(), r.path),
            "parameters": parameters,
            "x-gust-action": r.action,
            "x-gust-response-type": r.response_type,
            "responses": { "default": { "description": format!("The result of {}", r.action) } },
        });
        let entry = paths.entry(r.path.clone()).or_insert_with(|| json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": base, "version": "1.0.0" },
        "servers": [{ "url": api_path(ns, base) }],
        "paths": paths,
    })
}

/// `PUT /api/v1/namespaces/{ns}/apis`: creates or replaces one route.
async fn put_route(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    b: RawBody,
) -> ApiResult {
    gw.controller.authorize(&who, &ns)?;
    let b = body(b, MAX_ROUTE_BODY)?;
    let put: RoutePut = serde_json::from_slice(&b).map_err(malformed)?;
    let route = gw.controller.put_route(&who, put).await?;
    let mut v = json!(route);
    v["url"] = json!(format!(
        "{}{}",
        api_path(&route.namespace, &route.base_path),
        route.path.trim_end_matches('/')
    ));
    Ok(json_response(StatusCode::OK, &v))
}

/// `GET /api/v1/namespaces/{ns}/apis`.
async fn list_apis(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
) -> ApiResult {
    let routes = gw.controller.list_routes(&who, &ns, None).await?;
    Ok(json_response(StatusCode::OK, &apis_json(&routes)))
}

/// `GET /api/v1/namespaces/{ns}/apis/{base}[?format=openapi]`.
async fn get_api(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, base)): Path<(String, String)>,
    q: QueryString,
) -> ApiResult {
    let q = params(q)?;
    let base = format!("/{base}");
    let routes = gw.controller.list_routes(&who, &ns, Some(&base)).await?;
    if routes.is_empty() {
        return Err(ApiError::not_found());
    }
    match q.str("format") {
        None | Some("json") => Ok(json_response(
            StatusCode::OK,
            &apis_json(&routes)["apis"][0],
        )),
        Some("openapi") => Ok(json_response(
            StatusCode::OK,
            &openapi(&who.namespace, &base, &routes),
        )),
        Some(other) => Err(ApiError::bad_request(format!(
            "The format '{other}' is not 'json' or 'openapi'."
        ))),
    }
}

/// `DELETE /api/v1/namespaces/{ns}/apis/{base}[?path=P[&method=M]]`.
async fn delete_api(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, base)): Path<(String, String)>,
    q: QueryString,
) -> ApiResult {
    let q = params(q)?;
    gw.controller.authorize(&who, &ns)?;
    let base = format!("/{base}");
    let n = gw
        .controller
        .delete_routes(&who, &base, q.str("path"), q.str("method"))
        .await?;
    Ok(json_response(StatusCode::OK, &json!({ "deleted": n })))
}

/// `/api/{ns}/{base}/{*path}`: serves a route.
async fn serve_api(
    State(gw): State<Gateway>,
    Path((ns, rest)): Path<(String, String)>,
    req: Request,
) -> Response {
    let requested = requested_headers(req.headers());
    serve(&gw, &ns, &rest, req).await.into_response(requested)
}

/// Whether a route's answers carry CORS headers.
fn cors_of(route: &Route) -> Cors {
    if route.cors { Cors::Add } else { Cors::Omit }
}

/// Serves one API request: the route that its path and method name runs its action as the
/// namespace's owner.
async fn serve(gw: &Gateway, ns: &str, rest: &str, req: Request) -> Answer {
    let (base, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let base = format!("/{base}");
    let routes = match gw.controller.served_routes(ns, &base).await {
        Ok(r) => r,
        Err(e) => return Answer::new(Err(e.into()), Cors::Omit),
    };
    let method = req.method().as_str().to_ascii_uppercase();
    let matching: Vec<(&Route, Vec<(String, String)>)> = routes
        .iter()
        .filter_map(|r| match_path(&r.path, path).map(|p| (r, p)))
        .collect();
    if matching.is_empty() {
        return Answer::new(Err(ApiError::not_found()), Cors::Omit);
    }
    let Some((route, path_params)) = matching.iter().find(|(r, _)| r.method == method).cloned()
    else {
        let cors = if matching.iter().any(|(r, _)| r.cors) {
            Cors::Add
        } else {
            Cors::Omit
        };
        if req.method() == Method::OPTIONS && cors == Cors::Add {
            return Answer::new(Ok(StatusCode::OK.into_response()), Cors::Add);
        }
        let allowed: Vec<&str> = matching.iter().map(|(r, _)| r.method.as_str()).collect();
        return Answer::new(Err(ApiError::method_not_allowed(&allowed)), cors);
    };
    let cors = cors_of(route);
    if !gw.rate_limits.admit(route) {
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many requests for {} {}{}: its limit is {} per minute.",
                route.method,
                route.base_path,
                route.path,
                route.rate_limit.unwrap_or(0)
            ),
        );
        return Answer::new(Err(error), cors);
    }
    let owner: Identity = match gw.controller.owner(ns).await {
        Ok(Some(o)) => o,
        Ok(None) => return Answer::new(Err(ApiError::not_found()), Cors::Omit),
        Err(e) => return Answer::new(Err(e.into()), Cors::Omit),
    };
    let resolved = match route
        .action
        .trim_start_matches('/')
        .split_once('/')
        .map(|(ans, apath)| (ans.to_string(), apath.to_string()))
    {
        Some((ans, apath)) => gw.controller.resolve(&owner, &ans, &apath).await,
        None => Err(ControllerError::NotFound),
    };
    let resolved = match resolved {
        Ok(r) => r,
        Err(ControllerError::NotFound | ControllerError::BadRequest(_)) => {
            return Answer::new(Err(ApiError::not_found()), cors);
        }
        Err(e) => return Answer::new(Err(e.into()), cors),
    };
    // A Lambda function answers by payload format 2.0's rules whatever the route's response
    // type, as behind an HTTP API: they already answer a response without a `statusCode` as
    // `json` would.
    let ext = if route.response_type == "http"
        || gust_model::lambda::is_lambda_kind(&resolved.action.exec.kind)
    {
        Extension::Http
    } else {
        Extension::Json
    };
    // The route's own path is the action's `__ow_path`; a `.json` route projects nothing.
    let lambda_route = lambda_http::Route::api(
        &route.method,
        &route.path,
        req.uri().path(),
        &route.base_path,
    );
    let call = Call {
        owner: &owner,
        action: &resolved,
        ext,
        projection: "",
        ow_path: path,
        path_params,
        route: Some(route_name(&route.base_path, &route.path)),
        lambda_route,
        req,
    };
    // The route, not the action, decides CORS.
    let answer = http_action::serve(gw, call).await;
    Answer::new(answer.result, cors)
}
