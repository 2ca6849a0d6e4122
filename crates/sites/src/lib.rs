//! Static sites: a namespace's folders of files, deployed content-addressed (only files whose
//! content the store lacks travel) and served publicly by the gateway.
//!
//! **Invariant:** a site only ever names content that is stored: `put_site` checks every
//! hash (and marks it used, so a sweep leaves it) before switching the site in one write, and
//! a sweep deletes only blobs that no site names and that nobody used for [`BLOB_GRACE_MS`].
//!
//! **May not:** invoke actions or see the bus: this crate depends on the model and the store
//! only.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use gust_model::limits::MB;
use gust_model::time::now_ms;
use gust_model::{Identity, Site, SiteFile, names};
use gust_store::cache::EntityCache;
use gust_store::{SiteStore, StoreError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use gust_model::limits::{
    MAX_NAMESPACE_SITE_BYTES, MAX_SITE_BYTES, MAX_SITE_FILE, MAX_SITE_FILES, MAX_SITE_PATH,
    SITE_BLOB_GRACE_MS as BLOB_GRACE_MS,
};
/// Bytes of file contents kept in memory for serving.
const CONTENT_CACHE_BYTES: u64 = 256 * MB;
/// Files larger than this are read from the store each time instead of cached.
const MAX_CACHED_FILE: u64 = 8 * MB;
/// `Cache-Control` of a site's files unless it sets its own (and always of HTML pages): cache,
/// but ask again (a 304 when unchanged) before reusing.
pub const REVALIDATE: &str = "public, max-age=0, must-revalidate";

/// Every way a site request can fail; all but `Store` are caused by the caller.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum SiteError {
    /// The caller may not use namespace `{0}`.
    Forbidden(String),
    /// No such site.
    NotFound,
    /// '{0}' is not a SHA-256 content hash (64 lower-case hex digits).
    NotAHash(String),
    /// The file path '{path}' must be relative, with '/' between non-empty segments, no '.' or '..' segments, no '\' or control characters, and at most {max} bytes.
    BadPath { path: String, max: usize },
    /// {0}
    BadName(#[from] names::NameError),
    /// A site holds at most {max} files; this one has {count}.
    TooManyFiles { count: usize, max: usize },
    /// A site holds at most {max} files; {count} hashes were sent.
    TooManyHashes { count: usize, max: usize },
    /// The cache control must be 1 to 256 visible ASCII characters, e.g. 'public, max-age=3600'.
    BadCacheControl,
    /// The content's SHA-256 is {actual}, not {hash}.
    WrongHash { actual: String, hash: String },
    /// The content of {count} file(s) has not been uploaded: {shown}.
    NotUploaded { count: usize, shown: String },
    /// The file is {size} bytes; a site file may have at most {max} bytes.
    FileTooLarge { size: u64, max: u64 },
    /// The site's files have {size} bytes together; a site may have at most {max}.
    SiteTooLarge { size: u64, max: u64 },
    /// The namespace's site contents would take {size} bytes; at most {max} are kept (delete sites, or wait {grace_minutes} minutes for unused uploads to be swept).
    NamespaceFull {
        size: u64,
        max: u64,
        grace_minutes: u64,
    },
    /// {0}
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, SiteError>;

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
type ContentCache = quick_cache::sync::Cache<(String, String), Bytes, ByLength>;

#[derive(Debug, Clone, Copy)]
struct ByLength;

impl quick_cache::Weighter<(String, String), Bytes> for ByLength {
    fn weight(&self, _: &(String, String), v: &Bytes) -> u64 {
        v.len().max(1) as u64
    }
}

/// Checks a content hash: 64 lower-case hex digits.
pub fn check_hash(hash: &str) -> Result<()> {
    if hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(SiteError::NotAHash(hash.to_string()))
    }
}

/// Checks a file path inside a site: relative, `/`-separated, no empty, `.` or `..`
/// segments, no backslashes or control characters.
pub fn check_site_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.len() <= MAX_SITE_PATH
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && !path.chars().any(|c| c == '\\' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(SiteError::BadPath {
            path: path.escape_debug().to_string(),
            max: MAX_SITE_PATH,
        })
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

fn check_site_name(name: &str) -> Result<()> {
    Ok(names::check_entity(name)?)
}

/// The namespace `ns` names if `who` may use it.
fn authorize<'a>(who: &'a Identity, ns: &'a str) -> Result<&'a str> {
    who.own_namespace(ns)
        .ok_or_else(|| SiteError::Forbidden(ns.to_string()))
}

/// Static sites over the site part of the store, with the caches that serving them needs.
pub struct Sites {
    store: Arc<dyn SiteStore>,
    /// Sites by (namespace, name).
    sites: EntityCache<(String, String), Site>,
    /// File contents by (namespace, hash).
    contents: ContentCache,
}

impl std::fmt::Debug for Sites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sites").finish_non_exhaustive()
    }
}

impl Sites {
    pub fn new(store: Arc<dyn SiteStore>) -> Self {
        Sites {
            store,
            sites: EntityCache::default(),
            contents: ContentCache::with_weighter(10_000, CONTENT_CACHE_BYTES, ByLength),
        }
    }

    /// `POST .../site-blobs`: those of `hashes` whose content is not stored in the caller's
    /// namespace (the others are marked used, so they stay for the deploy).
    pub async fn missing_site_blobs(
        &self,
        who: &Identity,
        ns: &str,
        hashes: Vec<String>,
    ) -> Result<Vec<String>> {
        let ns = authorize(who, ns)?;
        if hashes.len() > MAX_SITE_FILES {
            return Err(SiteError::TooManyHashes {
                count: hashes.len(),
                max: MAX_SITE_FILES,
            });
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
    ) -> Result<()> {
        let ns = authorize(who, ns)?;
        check_hash(hash)?;
        if content.len() as u64 > MAX_SITE_FILE {
            return Err(SiteError::FileTooLarge {
                size: content.len() as u64,
                max: MAX_SITE_FILE,
            });
        }
        let actual = sha256_hex(&content);
        if actual != hash {
            return Err(SiteError::WrongHash {
                actual,
                hash: hash.to_string(),
            });
        }
        // Uploads no site names yet count too: a tenant cannot fill the store with them.
        self.sweep_site_blobs(ns).await;
        let stored = self.store.site_blob_bytes(ns).await?;
        if stored + content.len() as u64 > MAX_NAMESPACE_SITE_BYTES {
            return Err(SiteError::NamespaceFull {
                size: stored + content.len() as u64,
                max: MAX_NAMESPACE_SITE_BYTES,
                grace_minutes: BLOB_GRACE_MS / 60_000,
            });
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
    ) -> Result<Site> {
        let ns = authorize(who, ns)?;
        check_site_name(name)?;
        if put.files.len() > MAX_SITE_FILES {
            return Err(SiteError::TooManyFiles {
                count: put.files.len(),
                max: MAX_SITE_FILES,
            });
        }
        for (path, hash) in &put.files {
            check_site_path(path)?;
            check_hash(hash)?;
        }
        if let Some(cc) = &put.cache_control
            && (cc.is_empty() || cc.len() > 256 || !cc.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            return Err(SiteError::BadCacheControl);
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
            let more = if missing.len() > shown.len() {
                ", ..."
            } else {
                ""
            };
            return Err(SiteError::NotUploaded {
                count: missing.len(),
                shown: format!("{}{more}", shown.join(", ")),
            });
        }
        let total: u64 = put.files.values().map(|h| sizes[h]).sum();
        if total > MAX_SITE_BYTES {
            return Err(SiteError::SiteTooLarge {
                size: total,
                max: MAX_SITE_BYTES,
            });
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
    pub async fn get_site(&self, who: &Identity, ns: &str, name: &str) -> Result<Site> {
        let ns = authorize(who, ns)?;
        check_site_name(name)?;
        self.store.site(ns, name).await?.ok_or(SiteError::NotFound)
    }

    /// The caller's sites by name.
    pub async fn list_sites(&self, who: &Identity, ns: &str) -> Result<Vec<Site>> {
        let ns = authorize(who, ns)?;
        Ok(self.store.list_sites(ns).await?)
    }

    /// Deletes and returns the caller's site `name`; content no other site names goes with
    /// the next sweep.
    pub async fn delete_site(&self, who: &Identity, ns: &str, name: &str) -> Result<Site> {
        let ns = authorize(who, ns)?;
        check_site_name(name)?;
        let site = self
            .store
            .delete_site(ns, name)
            .await?
            .ok_or(SiteError::NotFound)?;
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
    pub async fn served_site(&self, ns: &str, name: &str) -> Result<Option<Arc<Site>>> {
        let key = (ns.to_string(), name.to_string());
        self.sites
            .get_or_fetch(&key, async {
                Ok::<_, SiteError>(self.store.site(ns, name).await?)
            })
            .await
    }

    /// The content `hash` of namespace `ns` (cached: content never changes under its hash).
    pub async fn site_content(&self, ns: &str, hash: &str) -> Result<Option<Bytes>> {
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

    #[test]
    fn messages_name_what_is_wrong() {
        let path = check_site_path("a\nb").unwrap_err().to_string();
        assert!(
            path.starts_with("The file path 'a\\nb' must be relative"),
            "{path}"
        );
        assert!(path.ends_with("no '\\' or control characters, and at most 1024 bytes."));
        let e = SiteError::TooManyFiles {
            count: 10_001,
            max: MAX_SITE_FILES,
        };
        assert_eq!(
            e.to_string(),
            "A site holds at most 10000 files; this one has 10001."
        );
    }
}
