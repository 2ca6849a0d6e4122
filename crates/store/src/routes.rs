//! API routes: a base path, a relative path and a method mapped to a web action (the API
//! gateway's routes, not the REST router's).

use async_trait::async_trait;
use gust_model::Route;

use crate::Result;

#[async_trait]
pub trait RouteStore: Send + Sync + 'static {
    /// Writes an API route, replacing the one with the same base path, path and method.
    async fn put_route(&self, route: &Route) -> Result<()>;
    /// Deletes the routes of API `base_path`: every one, or those of `path` (and `method`);
    /// returns how many.
    async fn delete_routes(
        &self,
        namespace: &str,
        base_path: &str,
        path: Option<&str>,
        method: Option<&str>,
    ) -> Result<u64>;
    /// The routes of a namespace, or of its API `base_path`, by base path, path and method.
    async fn list_routes(&self, namespace: &str, base_path: Option<&str>) -> Result<Vec<Route>>;
}
