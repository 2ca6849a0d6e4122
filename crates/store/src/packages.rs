//! Packages and package bindings.

use async_trait::async_trait;
use gust_model::Package;

use crate::{PutMode, Result};

#[async_trait]
pub trait PackageStore: Send + Sync + 'static {
    async fn package(&self, namespace: &str, name: &str) -> Result<Option<Package>>;
    /// Writes a package or binding (`Replace` compares versions like `put_action`).
    async fn put_package(&self, package: &Package, mode: PutMode) -> Result<()>;
    /// Deletes and returns the package, with every action in it, in one transaction.
    async fn delete_package(&self, namespace: &str, name: &str) -> Result<Option<Package>>;
    /// The packages of a namespace by name; only the published ones when `public_only`.
    async fn list_packages(
        &self,
        namespace: &str,
        public_only: bool,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Package>>;
    async fn count_packages(&self, namespace: &str, public_only: bool) -> Result<u64>;
}
