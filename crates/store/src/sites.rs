//! Static sites: their manifests and the content-addressed blobs the manifests name.

use std::collections::HashMap;

use async_trait::async_trait;
use gust_model::Site;

use crate::Result;

#[async_trait]
pub trait SiteStore: Send + Sync + 'static {
    /// Stores the content of a site file under `hash` (its SHA-256, checked by the caller),
    /// keeping the stored copy if there is one; marks it used now.
    async fn put_site_blob(&self, namespace: &str, hash: &str, content: Vec<u8>) -> Result<()>;
    /// The sizes of those of `hashes` that are stored, each marked used now (so a sweep
    /// leaves them for a deploy about to name them).
    async fn touch_site_blobs(
        &self,
        namespace: &str,
        hashes: &[String],
    ) -> Result<HashMap<String, u64>>;
    async fn site_blob(&self, namespace: &str, hash: &str) -> Result<Option<Vec<u8>>>;
    /// Bytes of site content a namespace stores (named by a site or not).
    async fn site_blob_bytes(&self, namespace: &str) -> Result<u64>;
    /// Deletes the blobs of `namespace` that no site names and that were last used before
    /// `before` (ms); returns how many.
    async fn sweep_site_blobs(&self, namespace: &str, before: u64) -> Result<u64>;
    async fn site(&self, namespace: &str, name: &str) -> Result<Option<Site>>;
    /// Writes a site, replacing the one of the same name.
    async fn put_site(&self, site: &Site) -> Result<()>;
    /// Deletes and returns the site (its blobs stay until swept).
    async fn delete_site(&self, namespace: &str, name: &str) -> Result<Option<Site>>;
    /// The sites of a namespace by name.
    async fn list_sites(&self, namespace: &str) -> Result<Vec<Site>>;
}
