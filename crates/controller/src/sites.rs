//! Static sites: a namespace's folders of files, deployed content-addressed (only files whose
//! content the store lacks travel) and served publicly by the gateway.
//!
//! **Invariant:** a site only ever names content that is stored: `put_site` checks every
//! hash (and marks it used, so a sweep leaves it) before switching the site in one write, and
//! a sweep deletes only blobs that no site names and that nobody used for [`BLOB_GRACE_MS`].

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use gust_model::limits::MB;
use gust_model::time::now_ms;
use gust_model::{Site, SiteFile, names};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Controller, ControllerError, Identity};

/// Most files a site holds.
pub const MAX_SITE_FILES: usize = 10_000;
/// Largest file of a site.
pub const MAX_SITE_FILE: u64 = 48 * MB;
/// Largest site, all files together.
pub const MAX_SITE_BYTES: u64 = 1024 * MB;
/// Most site content a namespace keeps, named by its sites or uploaded for a deploy.
pub const MAX_NAMESPACE_SITE_BYTES: u64 = 2 * MAX_SITE_BYTES;
/// Longest file path inside a site.
const MAX_SITE_PATH: usize = 1024;
/// How long an unnamed blob is kept after its last use (a deploy in progress names it soon).
pub const BLOB_GRACE_MS: u64 = 10 * 60 * 1000;
/// Bytes of file contents the controller keeps in memory for serving.
const CONTENT_CACHE_BYTES: u64 = 256 * MB;
/// Files larger than this are read from the store each time instead of cached.
const MAX_CACHED_FILE: u64 = 8 * MB;
/// `Cache-Control` of a site's files unless it sets its own (and always of HTML pages): cache,
/// but ask again (a 304 when unchanged) before reusing.
pub const REVALIDATE: &str = "public, max-age=0, must-revalidate";

/// The body of `PUT .../sites/{name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SitePut {
    /// Relative path -> SHA-256 of the content (lower-case hex).
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub spa: bool,
    #[serde(default)]
    pub cache_control: Option<String>,
}

/// File contents by (namespace, hash), weighed in bytes.
pub(crate) type ContentCache = quick_cache::sync::Cache<(String, String), Bytes, ByLength>;

#[derive(Debug, Clone, Copy)]
pub(crate) struct ByLength;

impl quick_cache::Weighter<(String, String), Bytes> for ByLength {
    fn weight(&self, _: &(String, String), v: &Bytes) -> u64 {
        v.len().max(1) as u64
    }
}

pub(crate) fn content_cache() -> ContentCache {
    ContentCache::with_weighter(10_000, CONTENT_CACHE_BYTES, ByLength)
}

fn bad(msg: impl Into<String>) -> ControllerError {
    ControllerError::BadRequest(msg.into())
}

/// Checks a content hash: 64 lower-case hex digits.
pub fn check_hash(hash: &str) -> Result<(), ControllerError> {
    if hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(bad(format!(
            "'{hash}' is not a SHA-256 content hash (64 lower-case hex digits)."
        )))
    }
}

/// Checks a file path inside a site: relative, `/`-separated, no empty, `.` or `..`
/// segments, no backslashes or control characters.
pub fn check_site_path(path: &str) -> Result<(), ControllerError> {
    let ok = !path.is_empty()
        && path.len() <= MAX_SITE_PATH
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && !path.chars().any(|c| c == '\\' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "The file path '{}' must be relative, with '/' between non-empty segments, no '.' or '..' segments, no '\\' or control characters, and at most {MAX_SITE_PATH} bytes.",
            path.escape_debug()
        )))
    }
}

/// The content type of a file, by its extension; text types are UTF-8.
pub fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.essence_str(),
            "application/javascript" | "application/json" | "image/svg+xml" | "application/xml"
        );
    if text && mime.get_param("charset").is_none() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.to_string()
    }
}

/// Lower-case hex SHA-256 of `content`.
pub fn sha256_hex(content: &[u8]) -> String {
    Sha256::digest(content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_site_name(name: &str) -> Result<(), ControllerError> {
    names::check_entity(name).map_err(|e| bad(e.to_string()))
}

impl Controller {
    /// `POST .../site-blobs`: those of `hashes` whose content is not stored in the caller's
    /// namespace (the others are marked used, so they stay for the deploy).
    pub async fn missing_site_blobs(
        &self,
        who: &Identity,
        ns: &str,
        hashes: Vec<String>,
    ) -> Result<Vec<String>, ControllerError> {
        let ns = self.authorize(who, ns)?;
        if hashes.len() > MAX_SITE_FILES {
            return Err(bad(format!(
                "A site holds at most {MAX_SITE_FILES} files; {} hashes were sent.",
                hashes.len()
            )));
        }
        for h in &hashes {
            check_hash(h)?;
        }
        let present = self.store.touch_site_blobs(ns, &hashes).await?;
        let mut missing: Vec<String> = hashes
            .into_iter()
            .filter(|h| !present.contains_key(h))
            .collect();
        missing.sort();
        missing.dedup();
        Ok(missing)
    }

    /// `PUT .../site-blobs/{hash}`: stores one file's content, which must hash to `hash`.
    pub async fn put_site_blob(
        &self,
        who: &Identity,
        ns: &str,
        hash: &str,
        content: Bytes,
    ) -> Result<(), ControllerError> {
        let ns = self.authorize(who, ns)?;
        check_hash(hash)?;
        if content.len() as u64 > MAX_SITE_FILE {
            return Err(ControllerError::TooLarge(format!(
                "The file is {} bytes; a site file may have at most {MAX_SITE_FILE} bytes.",
                content.len()
            )));
        }
        let actual = sha256_hex(&content);
        if actual != hash {
            return Err(bad(format!(
                "The content's SHA-256 is {actual}, not {hash}."
            )));
        }
        // Uploads no site names yet count too: a tenant cannot fill the store with them.
        self.sweep_site_blobs(ns).await;
        let stored = self.store.site_blob_bytes(ns).await?;
        if stored + content.len() as u64 > MAX_NAMESPACE_SITE_BYTES {
            return Err(ControllerError::TooLarge(format!(
                "The namespace's site contents would take {} bytes; at most {MAX_NAMESPACE_SITE_BYTES} are kept (delete sites, or wait {} minutes for unused uploads to be swept).",
                stored + content.len() as u64,
                BLOB_GRACE_MS / 60_000
            )));
        }
        self.store.put_site_blob(ns, hash, content.to_vec()).await?;
        Ok(())
    }

    /// `PUT .../sites/{name}`: creates or replaces a site, every file at once. 409 naming
    /// the files whose content is not stored.
    pub async fn put_site(
        &self,
        who: &Identity,
        ns: &str,
        name: &str,
        put: SitePut,
    ) -> Result<Site, ControllerError> {
        let ns = self.authorize(who, ns)?;
        check_site_name(name)?;
        if put.files.len() > MAX_SITE_FILES {
            return Err(bad(format!(
                "A site holds at most {MAX_SITE_FILES} files; this one has {}.",
                put.files.len()
            )));
        }
        for (path, hash) in &put.files {
            check_site_path(path)?;
            check_hash(hash)?;
        }
        if let Some(cc) = &put.cache_control
            && (cc.is_empty() || cc.len() > 256 || !cc.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            return Err(bad(
                "The cache control must be 1 to 256 visible ASCII characters, e.g. 'public, max-age=3600'.",
            ));
        }
        let hashes: Vec<String> = put.files.values().cloned().collect();
        let sizes = self.store.touch_site_blobs(ns, &hashes).await?;
        let missing: Vec<&str> = put
            .files
            .iter()
            .filter(|(_, h)| !sizes.contains_key(*h))
            .map(|(p, _)| p.as_str())
            .collect();
        if !missing.is_empty() {
            let shown: Vec<&str> = missing.iter().take(5).copied().collect();
            return Err(ControllerError::Incomplete(format!(
                "The content of {} file(s) has not been uploaded: {}{}.",
                missing.len(),
                shown.join(", "),
                if missing.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            )));
        }
        let total: u64 = put.files.values().map(|h| sizes[h]).sum();
        if total > MAX_SITE_BYTES {
            return Err(ControllerError::TooLarge(format!(
                "The site's files have {total} bytes together; a site may have at most {MAX_SITE_BYTES}."
            )));
        }
        let files = put
            .files
            .into_iter()
            .map(|(path, hash)| {
                let file = SiteFile {
                    size: sizes[&hash],
                    content_type: content_type(&path),
                    hash,
                };
                (path, file)
            })
            .collect();
        let site = Site {
            namespace: ns.to_string(),
            name: name.to_string(),
            files,
            spa: put.spa,
            cache_control: put.cache_control,
            updated: now_ms(),
        };
        self.store.put_site(&site).await?;
        self.sites.forget(&(ns.to_string(), name.to_string()));
        self.sweep_site_blobs(ns).await;
        Ok(site)
    }

    /// The caller's site `name`.
    pub async fn get_site(
        &self,
        who: &Identity,
        ns: &str,
        name: &str,
    ) -> Result<Site, ControllerError> {
        let ns = self.authorize(who, ns)?;
        check_site_name(name)?;
        self.store
            .site(ns, name)
            .await?
            .ok_or(ControllerError::NotFound)
    }

    /// The caller's sites by name.
    pub async fn list_sites(&self, who: &Identity, ns: &str) -> Result<Vec<Site>, ControllerError> {
        let ns = self.authorize(who, ns)?;
        Ok(self.store.list_sites(ns).await?)
    }

    /// Deletes and returns the caller's site `name`; content no other site names goes with
    /// the next sweep.
    pub async fn delete_site(
        &self,
        who: &Identity,
        ns: &str,
        name: &str,
    ) -> Result<Site, ControllerError> {
        let ns = self.authorize(who, ns)?;
        check_site_name(name)?;
        let site = self
            .store
            .delete_site(ns, name)
            .await?
            .ok_or(ControllerError::NotFound)?;
        self.sites.forget(&(ns.to_string(), name.to_string()));
        self.sweep_site_blobs(ns).await;
        Ok(site)
    }

    /// Deletes content of `ns` no site names and nobody used lately; a failure is only
    /// logged (the next write sweeps again).
    async fn sweep_site_blobs(&self, ns: &str) {
        let before = now_ms().saturating_sub(BLOB_GRACE_MS);
        match self.store.sweep_site_blobs(ns, before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(namespace = ns, blobs = n, "swept unnamed site content"),
            Err(e) => tracing::warn!(namespace = ns, error = %e, "sweeping site content failed"),
        }
    }

    /// Site `name` of `ns` as served (through a short-lived cache: this is on every site
    /// request's path); `None` if there is none.
    pub async fn served_site(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<Site>>, ControllerError> {
        let key = (ns.to_string(), name.to_string());
        self.sites
            .get_or_fetch(&key, async { Ok(self.store.site(ns, name).await?) })
            .await
    }

    /// The content `hash` of namespace `ns` (cached: content never changes under its hash).
    pub async fn site_content(
        &self,
        ns: &str,
        hash: &str,
    ) -> Result<Option<Bytes>, ControllerError> {
        let key = (ns.to_string(), hash.to_string());
        if let Some(b) = self.contents.get(&key) {
            return Ok(Some(b));
        }
        let Some(content) = self.store.site_blob(ns, hash).await? else {
            return Ok(None);
        };
        let content = Bytes::from(content);
        if content.len() as u64 <= MAX_CACHED_FILE {
            self.contents.insert(key, content.clone());
        }
        Ok(Some(content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_paths() {
        for ok in [
            "index.html",
            "a/b/c.js",
            "with space.txt",
            "ünï.css",
            ".well-known/x",
        ] {
            assert!(check_site_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/index.html",
            "a/",
            "a//b",
            "../x",
            "a/../../x",
            "./a",
            "a\\b",
            "a\nb",
            "a\u{0}b",
        ] {
            assert!(check_site_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_site_path(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn hashes_and_types() {
        assert!(check_hash(&sha256_hex(b"x")).is_ok());
        assert!(check_hash(&sha256_hex(b"x").to_uppercase()).is_err());
        assert!(check_hash("abc").is_err());
        assert_eq!(content_type("a/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("logo.png"), "image/png");
        assert_eq!(content_type("data.json"), "application/json; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
