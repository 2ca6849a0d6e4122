//! Resource: web actions — `/api/v1/web/{ns}/{pkg|default}/{action}.{json|html|http|svg|text}[/path]`,
//! any verb, without an API key unless the action asks for one. Finds the action the path
//! names and serves it with `http_action`. Imports the kit only.
//!
//! **Invariant:** a namespace or action that does not exist and an action that is not
//! web-exported get the same 404.

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use gust_controller::ControllerError;

use crate::http_action::{self, Answer, Call, Cors, Extension, requested_headers};
use crate::lambda_http;
use crate::{ApiError, Gateway};

pub(crate) fn router() -> Router<Gateway> {
    Router::new().route(
        "/api/v1/web/{ns}/{pkg}/{*rest}",
        axum::routing::any(web_action),
    )
}

/// Splits `action.ext/extra/path` into the action's name, its extension (`.http` when
/// absent) and the rest of the path (`/extra/path`, or empty).
fn split_target(rest: &str) -> (&str, Extension, &str) {
    let (first, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    match first.rsplit_once('.') {
        Some((name, ext)) => match Extension::parse(ext) {
            Some(e) => (name, e, path),
            None => (first, Extension::Http, path),
        },
        None => (first, Extension::Http, path),
    }
}

/// What follows the action's segment of a web request's path, undecoded: `/a%20b` of
/// `/api/v1/web/{ns}/{pkg}/{action}/a%20b` (empty when nothing does).
fn raw_extra_path(uri_path: &str) -> &str {
    let mut rest = uri_path;
    // `api`, `v1`, `web`, the namespace, the package and the action.
    for _ in 0..6 {
        match rest.get(1..).and_then(|r| r.find('/')) {
            Some(i) => rest = &rest[i + 1..],
            None => return "",
        }
    }
    rest
}

/// `/api/v1/web/{ns}/{pkg}/{*rest}`.
async fn web_action(
    State(gw): State<Gateway>,
    Path((ns, pkg, rest)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let requested = requested_headers(req.headers());
    serve(&gw, &ns, &pkg, &rest, req)
        .await
        .into_response(requested)
}

/// Serves one web request: the action runs as the namespace's owner, and what follows its
/// name is both its `__ow_path` and the projection of its result.
async fn serve(gw: &Gateway, ns: &str, pkg: &str, rest: &str, req: Request) -> Answer {
    let not_found = || Answer::new(Err(ApiError::not_found()), Cors::Add);
    let (name, ext, extra_path) = split_target(rest);
    let owner = match gw.controller.owner(ns).await {
        Ok(Some(o)) => o,
        Ok(None) => return not_found(),
        Err(e) => return Answer::new(Err(e.into()), Cors::Add),
    };
    let path = if pkg == "default" {
        name.to_string()
    } else {
        format!("{pkg}/{name}")
    };
    let resolved = match gw.controller.resolve(&owner, ns, &path).await {
        Ok(r) => r,
        Err(ControllerError::BadRequest(_) | ControllerError::Forbidden(_)) => {
            return not_found();
        }
        Err(e) => return Answer::new(Err(e.into()), Cors::Add),
    };
    // A Lambda function's web action is its function URL.
    let lambda_route = lambda_http::Route::function_url(raw_extra_path(req.uri().path()));
    let call = Call {
        owner: &owner,
        action: &resolved,
        ext,
        projection: extra_path,
        ow_path: extra_path,
        path_params: Vec::new(),
        route: None,
        lambda_route,
        req,
    };
    http_action::serve(gw, call).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(split_target("hello.json"), ("hello", Extension::Json, ""));
        assert_eq!(split_target("hello"), ("hello", Extension::Http, ""));
        assert_eq!(
            split_target("hello.http/a/b"),
            ("hello", Extension::Http, "/a/b")
        );
        assert_eq!(split_target("v1.2"), ("v1.2", Extension::Http, ""));
    }

    #[test]
    fn raw_extra_paths() {
        assert_eq!(raw_extra_path("/api/v1/web/ns/default/fn"), "");
        assert_eq!(raw_extra_path("/api/v1/web/ns/default/fn/"), "/");
        assert_eq!(
            raw_extra_path("/api/v1/web/ns/pkg/fn.http/a%2Fb/c%20d"),
            "/a%2Fb/c%20d"
        );
    }
}
