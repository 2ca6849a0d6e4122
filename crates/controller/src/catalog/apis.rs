//! API routes (the API gateway): a namespace's APIs, each a base path with routes
//! (`method` + `path`, with `{name}` parameters) that run web actions.
//!
//! **Invariant:** a route only ever names a web action (`web-export`) its namespace may
//! invoke; the check is made when the route is written and again when it is served.

use std::sync::Arc;

use gust_model::time::now_ms;
use gust_model::{Route, names};
use serde::Deserialize;

use crate::catalog::packages::path_namespace;
use crate::{Controller, ControllerError, Identity};

/// Methods a route may serve.
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

/// The body of `PUT .../apis`: one route.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutePut {
    pub base_path: String,
    pub path: String,
    pub method: String,
    /// `/namespace/[package/]action`, or `action` / `package/action` of the caller's.
    pub action: String,
    #[serde(default)]
    pub response_type: Option<String>,
    #[serde(default)]
    pub cors: Option<bool>,
    #[serde(default)]
    pub rate_limit: Option<u64>,
}

fn bad(msg: impl Into<String>) -> ControllerError {
    ControllerError::BadRequest(msg.into())
}

/// Whether `s` is a literal path segment a route may use.
fn literal(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
}

/// Checks a base path: `/` and one literal segment.
pub fn check_base_path(base: &str) -> Result<(), ControllerError> {
    match base.strip_prefix('/') {
        Some(seg) if literal(seg) => Ok(()),
        _ => Err(bad(format!(
            "The base path '{base}' must be '/' and one segment of letters, digits, '-', '_', '.' or '~'."
        ))),
    }
}

/// Checks a route path: `/`, or segments that are literals or `{name}` parameters (each
/// name once).
pub fn check_route_path(path: &str) -> Result<(), ControllerError> {
    let invalid = || {
        bad(format!(
            "The path '{path}' must start with '/' and hold segments of letters, digits, '-', '_', '.', '~' or {{parameter}}."
        ))
    };
    let rest = path.strip_prefix('/').ok_or_else(invalid)?;
    if rest.is_empty() {
        return Ok(());
    }
    let mut names = Vec::new();
    for seg in rest.split('/') {
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name)
                if !name.is_empty()
                    && !name.starts_with("__ow_")
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                if names.contains(&name) {
                    return Err(bad(format!(
                        "The path '{path}' names parameter '{name}' twice."
                    )));
                }
                names.push(name);
            }
            Some(_) => return Err(invalid()),
            None if literal(seg) => {}
            None => return Err(invalid()),
        }
    }
    Ok(())
}

/// Matches a request path (relative to the base path) against a route's path; returns the
/// path parameters.
pub fn match_path(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut params = Vec::new();
    for (t, p) in t.iter().zip(&p) {
        match t.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) if !p.is_empty() => params.push((name.to_string(), p.to_string())),
            Some(_) => return None,
            None if t == p => {}
            None => return None,
        }
    }
    Some(params)
}

impl Controller {
    /// Writes a route of `who`'s namespace.
    pub async fn put_route(&self, who: &Identity, put: RoutePut) -> Result<Route, ControllerError> {
        let ns = who.namespace.as_str();
        if ns == "v1" {
            return Err(bad(
                "The namespace 'v1' cannot serve APIs: its URLs would be the REST API's.",
            ));
        }
        check_base_path(&put.base_path)?;
        check_route_path(&put.path)?;
        let method = put.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(bad(format!(
                "The method '{}' is not one of {}.",
                put.method,
                METHODS.join(", ")
            )));
        }
        let response_type = put.response_type.unwrap_or_else(|| "json".into());
        if response_type != "json" && response_type != "http" {
            return Err(bad(format!(
                "The response type '{response_type}' is not 'json' or 'http'."
            )));
        }
        if put.rate_limit == Some(0) {
            return Err(bad("The rate limit must be at least 1 request per minute."));
        }
        let action = if put.action.starts_with('/') {
            put.action.clone()
        } else {
            format!("/{ns}/{}", put.action)
        };
        let (ans, apath) = action
            .trim_start_matches('/')
            .split_once('/')
            .ok_or_else(|| bad(format!("'{}' is not an action name.", put.action)))?;
        names::check_namespace(ans).map_err(|e| bad(e.to_string()))?;
        let ans = if ans == "_" { ns } else { ans };
        let action = format!("/{ans}/{apath}");
        let resolved = match self.resolve(who, ans, apath).await {
            Ok(r) => r,
            Err(ControllerError::NotFound) => {
                return Err(bad(format!("The action '{action}' does not exist.")));
            }
            Err(e) => return Err(e),
        };
        if !resolved
            .action
            .annotation_is_truthy(gust_model::annotations::WEB_EXPORT)
        {
            return Err(bad(format!(
                "The action '{action}' is not a web action: update it with --web true."
            )));
        }
        let route = Route {
            namespace: ns.to_string(),
            base_path: put.base_path,
            path: put.path,
            method,
            action,
            response_type,
            cors: put.cors.unwrap_or(true),
            rate_limit: put.rate_limit,
            updated: now_ms(),
        };
        self.store.put_route(&route).await?;
        self.routes
            .forget(&(ns.to_string(), route.base_path.clone()));
        Ok(route)
    }

    /// The routes of `ns` (the caller's own), or of its API `base_path`.
    pub async fn list_routes(
        &self,
        who: &Identity,
        ns: &str,
        base_path: Option<&str>,
    ) -> Result<Vec<Route>, ControllerError> {
        let (ns, own) = path_namespace(who, ns);
        if !own {
            return Err(ControllerError::Forbidden(ns.to_string()));
        }
        if let Some(b) = base_path {
            check_base_path(b)?;
        }
        Ok(self.store.list_routes(ns, base_path).await?)
    }

    /// Deletes routes of `who`'s API `base_path` (all, or of `path`, or of `path` and
    /// `method`); 404 if none matched.
    pub async fn delete_routes(
        &self,
        who: &Identity,
        base_path: &str,
        path: Option<&str>,
        method: Option<&str>,
    ) -> Result<u64, ControllerError> {
        check_base_path(base_path)?;
        let ns = who.namespace.as_str();
        let method = method.map(str::to_ascii_uppercase);
        let n = self
            .store
            .delete_routes(ns, base_path, path, method.as_deref())
            .await?;
        self.routes.forget(&(ns.to_string(), base_path.to_string()));
        if n == 0 {
            return Err(ControllerError::NotFound);
        }
        Ok(n)
    }

    /// The routes that serve namespace `ns`'s API `base_path` (through a short-lived cache:
    /// this is on every API request's path).
    pub async fn served_routes(
        &self,
        ns: &str,
        base_path: &str,
    ) -> Result<Arc<Vec<Route>>, ControllerError> {
        let key = (ns.to_string(), base_path.to_string());
        Ok(self
            .routes
            .get_or_fetch(&key, async {
                Ok::<_, ControllerError>(Some(self.store.list_routes(ns, Some(base_path)).await?))
            })
            .await?
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(check_route_path("/").is_ok());
        assert!(check_route_path("/users/{id}").is_ok());
        assert!(check_route_path("/a/{x}/b/{y}").is_ok());
        for bad in [
            "",
            "users",
            "/a//b",
            "/../etc",
            "/a/{x}/{x}",
            "/{}",
            "/a b",
            "/%2e%2e",
            "/{__ow_method}",
        ] {
            assert!(check_route_path(bad).is_err(), "{bad}");
        }
        assert!(check_base_path("/shop").is_ok());
        for bad in ["/", "shop", "/a/b", "/..", "/a\r\nb"] {
            assert!(check_base_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        assert_eq!(
            match_path("/users/{id}", "/users/42"),
            Some(vec![("id".to_string(), "42".to_string())])
        );
        assert_eq!(match_path("/users/{id}", "/users"), None);
        assert_eq!(match_path("/users/{id}", "/users/42/x"), None);
        assert_eq!(match_path("/", "/"), Some(vec![]));
        assert_eq!(match_path("/", ""), Some(vec![]));
        assert_eq!(match_path("/a", "/b"), None);
    }
}
