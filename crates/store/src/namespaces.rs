//! Namespaces: a tenant's name, its key and its limits.

use async_trait::async_trait;
use gust_model::{Namespace, NamespaceLimits};

use crate::Result;

#[async_trait]
pub trait NamespaceStore: Send + Sync + 'static {
    /// Creates a namespace; `Conflict` if the name or uuid is taken.
    async fn create_namespace(&self, ns: &Namespace) -> Result<()>;
    async fn namespace_by_uuid(&self, uuid: &str) -> Result<Option<Namespace>>;
    async fn namespace(&self, name: &str) -> Result<Option<Namespace>>;
    /// Every namespace, by name.
    async fn list_namespaces(&self) -> Result<Vec<Namespace>>;
    async fn set_namespace_key(&self, name: &str, uuid: &str, key: &str) -> Result<()>;
    async fn set_namespace_limits(&self, name: &str, limits: NamespaceLimits) -> Result<()>;
    /// Deletes a namespace with everything it holds (actions, packages, routes, sites and
    /// activation records), in one transaction.
    async fn delete_namespace(&self, name: &str) -> Result<()>;
}
