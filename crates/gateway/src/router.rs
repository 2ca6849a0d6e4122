//! Wiring: the router of the whole API but public static sites (which `request_id` serves
//! ahead of it). It only merges one router per resource and adds what applies to all of
//! them: the 404 and 405 fallbacks and the body limit. Imports the resources and the kit.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use gust_model::limits::MAX_BODY;

use crate::{ApiError, Gateway};
use crate::{
    actions, activations, apis, console, deadletters, durable, hooks, lambda, mappings, metrics,
    namespaces, packages, rules, sites, states, system, tokens, triggers, web, workflows,
};

/// The methods OpenWhisk's 405 names, whichever methods the path has.
const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE"];

pub(crate) fn router(gw: Gateway) -> Router {
    Router::new()
        .merge(system::router())
        .merge(namespaces::router())
        .merge(actions::router())
        .merge(packages::router())
        .merge(triggers::router())
        .merge(hooks::router())
        .merge(rules::router())
        .merge(mappings::router())
        .merge(deadletters::router())
        .merge(apis::router())
        .merge(sites::router())
        .merge(activations::router())
        .merge(metrics::router())
        .merge(tokens::router())
        .merge(web::router())
        .merge(workflows::router())
        .merge(lambda::router())
        // `POST /` beside the system's `GET /`.
        .merge(states::router())
        .merge(durable::router())
        .merge(console::router())
        .fallback(|| async { ApiError::not_found() })
        // Applies to the routes merged above, not to any added later.
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed(METHODS) })
        // Outside every route's own layers: a route's `DefaultBodyLimit` (the invoke's) is set
        // on the request after this one and wins.
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(gw)
}
