//! Kit: what a REST request asks to do, in the words of a token's scope — a verb and an
//! entity. This is the one place a method and a path become them; the controller's `Grant`
//! decides. Imports nothing of the gateway.
//!
//! `GET`/`HEAD` read; `PUT`, `DELETE` and other `POST`s write; `POST` on an action invokes it
//! and on a trigger fires it. The entity is the path after `/api/v1/namespaces/{ns}/`,
//! percent-decoded (`actions/billing/charge`, `activations/<id>/logs`), a list is its kind
//! alone (`actions`), site blobs belong to `sites`, and `/api/v1/namespaces` is `namespaces`.
//! Executions and task tokens belong to `workflows` (their paths name no workflow: only a
//! scope covering every workflow reaches them); starting an execution writes
//! `workflows/{name}/executions`. Durable Functions' HTTP API ([`durable_access`]) is
//! `workflows` too: starting an orchestration writes `workflows/{name}`.

use axum::http::Method;
use gust_controller::tokens::Verb;

/// The verb and entity of a request to the REST API, or `None` for a path outside it (which
/// no token may use).
pub(crate) fn rest_access(method: &Method, path: &str) -> Option<(Verb, String)> {
    let rest = path.strip_prefix("/api/v1/namespaces")?;
    let rest = rest.trim_end_matches('/');
    let entity = if rest.is_empty() {
        "namespaces".to_string()
    } else {
        let rest = rest.strip_prefix('/')?;
        // Skip the namespace.
        let (_, entity) = rest.split_once('/')?;
        let entity = percent_encoding::percent_decode_str(entity)
            .decode_utf8()
            .ok()?
            .into_owned();
        match entity.split_once('/').map_or(entity.as_str(), |(k, _)| k) {
            "site-blobs" => "sites".to_string(),
            "executions" | "tasks" => "workflows".to_string(),
            _ => entity,
        }
    };
    let kind = entity.split('/').next().unwrap_or_default();
    let is_one = entity.contains('/');
    let verb = match *method {
        Method::GET | Method::HEAD => Verb::Read,
        Method::POST if is_one && kind == "actions" => Verb::Invoke,
        Method::POST if is_one && kind == "triggers" => Verb::Fire,
        _ => Verb::Write,
    };
    Some((verb, entity))
}

/// The verb and entity of a request to Durable Functions' HTTP API
/// (`/runtime/webhooks/durabletask/...`), or `None` for a path outside it.
pub(crate) fn durable_access(method: &Method, path: &str) -> Option<(Verb, String)> {
    let rest = path.strip_prefix("/runtime/webhooks/durabletask/")?;
    let verb = match *method {
        Method::GET | Method::HEAD => Verb::Read,
        _ => Verb::Write,
    };
    let mut segments = rest.split('/');
    let entity = match segments.next()? {
        "orchestrators" => {
            let name = percent_encoding::percent_decode_str(segments.next()?)
                .decode_utf8()
                .ok()?;
            format!("workflows/{name}")
        }
        "instances" => "workflows".to_string(),
        _ => return None,
    };
    Some((verb, entity))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: Method, path: &str, expected: Option<(Verb, &str)>) {
        assert_eq!(
            rest_access(&method, path),
            expected.map(|(v, e)| (v, e.to_string())),
            "{method} {path}"
        );
    }

    #[test]
    fn requests_map_to_verb_and_entity() {
        use Verb::*;
        check(
            Method::GET,
            "/api/v1/namespaces",
            Some((Read, "namespaces")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/_/actions",
            Some((Read, "actions")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/_/actions/",
            Some((Read, "actions")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/_/actions/p/a",
            Some((Read, "actions/p/a")),
        );
        check(
            Method::PUT,
            "/api/v1/namespaces/_/actions/a",
            Some((Write, "actions/a")),
        );
        check(
            Method::DELETE,
            "/api/v1/namespaces/ns/actions/a",
            Some((Write, "actions/a")),
        );
        check(
            Method::POST,
            "/api/v1/namespaces/_/actions/p/a",
            Some((Invoke, "actions/p/a")),
        );
        check(
            Method::POST,
            "/api/v1/namespaces/_/triggers/t",
            Some((Fire, "triggers/t")),
        );
        check(
            Method::PUT,
            "/api/v1/namespaces/_/triggers/t",
            Some((Write, "triggers/t")),
        );
        check(
            Method::POST,
            "/api/v1/namespaces/_/rules/r",
            Some((Write, "rules/r")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/_/activations",
            Some((Read, "activations")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/_/metrics",
            Some((Read, "metrics")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/_/mappings",
            Some((Read, "mappings")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/ns/mappings/r",
            Some((Read, "mappings/r")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/_/activations/0a1b/logs",
            Some((Read, "activations/0a1b/logs")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/_/limits",
            Some((Read, "limits")),
        );
        check(
            Method::PUT,
            "/api/v1/namespaces/_/apis",
            Some((Write, "apis")),
        );
        check(
            Method::PUT,
            "/api/v1/namespaces/_/site-blobs/ab12",
            Some((Write, "sites")),
        );
        check(
            Method::POST,
            "/api/v1/namespaces/_/site-blobs",
            Some((Write, "sites")),
        );
        check(
            Method::PUT,
            "/api/v1/namespaces/_/sites/docs",
            Some((Write, "sites/docs")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/_/actions/my%20a",
            Some((Read, "actions/my a")),
        );
        check(
            Method::PUT,
            "/api/v1/namespaces/_/workflows/orders",
            Some((Write, "workflows/orders")),
        );
        check(
            Method::POST,
            "/api/v1/namespaces/_/workflows/orders/executions",
            Some((Write, "workflows/orders/executions")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/_/workflows",
            Some((Read, "workflows")),
        );
        check(
            Method::GET,
            "/api/v1/namespaces/_/executions/0a1b/history",
            Some((Read, "workflows")),
        );
        check(
            Method::POST,
            "/api/v1/namespaces/_/executions/0a1b/stop",
            Some((Write, "workflows")),
        );
        check(
            Method::POST,
            "/api/v1/namespaces/_/tasks/success",
            Some((Write, "workflows")),
        );
        check(Method::GET, "/api/v1/namespaces/_", None);
        check(Method::GET, "/api/v1/web/guest/default/a", None);
        check(Method::GET, "/ping", None);
    }

    #[test]
    fn durable_functions_requests_map_to_workflows() {
        use Verb::*;
        let check = |method: Method, path: &str, expected: Option<(Verb, &str)>| {
            assert_eq!(
                durable_access(&method, path),
                expected.map(|(v, e)| (v, e.to_string())),
                "{method} {path}"
            );
        };
        check(
            Method::POST,
            "/runtime/webhooks/durabletask/orchestrators/orders",
            Some((Write, "workflows/orders")),
        );
        check(
            Method::POST,
            "/runtime/webhooks/durabletask/orchestrators/my%20flow/run-1",
            Some((Write, "workflows/my flow")),
        );
        check(
            Method::GET,
            "/runtime/webhooks/durabletask/instances/0a1b",
            Some((Read, "workflows")),
        );
        check(
            Method::POST,
            "/runtime/webhooks/durabletask/instances/0a1b/terminate",
            Some((Write, "workflows")),
        );
        check(
            Method::GET,
            "/runtime/webhooks/durabletask/entities/x",
            None,
        );
        check(Method::GET, "/api/v1/namespaces/_/workflows", None);
    }
}
