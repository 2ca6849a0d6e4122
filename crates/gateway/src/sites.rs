//! Resource: static sites — deploying them (`/api/v1/namespaces/{ns}/sites`, `.../site-blobs`,
//! a Gust extension) and serving them publicly at `/sites/{ns}/{name}/{path}`, on the same
//! origin as the namespace's API routes (`/api/{ns}/...`), so a page calls its functions
//! without CORS. Public serving skips the router: it is the [`Ahead`] of `request_id`.
//! Imports the kit only.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use gust_model::Site;
use gust_model::limits::{MAX_MANIFEST, MAX_SITE_FILE};
use gust_sites::{REVALIDATE, SitePut};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::extract::{Caller, RawBody, body, malformed};
use crate::request_id::Ahead;
use crate::respond::{ApiResult, json_response};
use crate::{ApiError, Gateway};

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/api/v1/namespaces/{ns}/sites", get(list_sites))
        .route(
            "/api/v1/namespaces/{ns}/sites/{name}",
            get(get_site).put(put_site).delete(delete_site),
        )
        .route("/api/v1/namespaces/{ns}/site-blobs", post(missing_blobs))
        .route("/api/v1/namespaces/{ns}/site-blobs/{hash}", put(put_blob))
}

/// Public serving of static sites (`/sites/...`), ahead of the router.
#[derive(Debug, Clone)]
pub struct Public(pub Gateway);

impl Ahead for Public {
    fn takes(&self, req: &Request) -> bool {
        req.uri().path().starts_with("/sites/")
    }

    fn answer(&self, req: Request) -> impl Future<Output = Response> + Send + 'static {
        let gw = self.0.clone();
        async move { serve_site(&gw, req).await }
    }
}

/// How much of a site the API shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// Its files as a count, with their total size.
    Summary,
    /// Every file.
    Full,
}

/// The public URL path of a site.
fn site_path(ns: &str, name: &str) -> String {
    format!("/sites/{ns}/{name}/")
}

/// A site as the API shows it: with its URL, and its files as `view` says.
fn site_json(site: &Site, view: View) -> Value {
    let mut v = json!(site);
    v["url"] = json!(site_path(&site.namespace, &site.name));
    if view == View::Summary {
        v["files"] = json!(site.files.len());
        v["size"] = json!(site.files.values().map(|f| f.size).sum::<u64>());
    }
    v
}

/// The body of `POST .../site-blobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlobQuery {
    hashes: Vec<String>,
}

/// `POST /api/v1/namespaces/{ns}/site-blobs`: which of these contents are not stored.
async fn missing_blobs(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
    b: RawBody,
) -> ApiResult {
    let b = body(b, MAX_MANIFEST)?;
    let q: BlobQuery = serde_json::from_slice(&b).map_err(malformed)?;
    let missing = gw.sites.missing_site_blobs(&who, &ns, q.hashes).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "missing": missing }),
    ))
}

/// `PUT /api/v1/namespaces/{ns}/site-blobs/{hash}`: one file's content, raw.
async fn put_blob(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, hash)): Path<(String, String)>,
    b: RawBody,
) -> ApiResult {
    let b = body(b, MAX_SITE_FILE as usize)?;
    let size = b.len();
    gw.sites.put_site_blob(&who, &ns, &hash, b).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "hash": hash, "size": size }),
    ))
}

/// `GET /api/v1/namespaces/{ns}/sites`.
async fn list_sites(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path(ns): Path<String>,
) -> ApiResult {
    let sites = gw.sites.list_sites(&who, &ns).await?;
    let list: Vec<Value> = sites.iter().map(|s| site_json(s, View::Summary)).collect();
    Ok(json_response(StatusCode::OK, &list))
}

/// `GET /api/v1/namespaces/{ns}/sites/{name}`.
async fn get_site(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let site = gw.sites.get_site(&who, &ns, &name).await?;
    Ok(json_response(StatusCode::OK, &site_json(&site, View::Full)))
}

/// `PUT /api/v1/namespaces/{ns}/sites/{name}`: the manifest; switches the site at once.
async fn put_site(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
    b: RawBody,
) -> ApiResult {
    let b = body(b, MAX_MANIFEST)?;
    let put: SitePut = serde_json::from_slice(&b).map_err(malformed)?;
    let site = gw.sites.put_site(&who, &ns, &name, put).await?;
    Ok(json_response(
        StatusCode::OK,
        &site_json(&site, View::Summary),
    ))
}

/// `DELETE /api/v1/namespaces/{ns}/sites/{name}`.
async fn delete_site(
    State(gw): State<Gateway>,
    Caller(who): Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let site = gw.sites.delete_site(&who, &ns, &name).await?;
    Ok(json_response(
        StatusCode::OK,
        &site_json(&site, View::Summary),
    ))
}

/// What a site path names.
#[derive(Debug, PartialEq, Eq)]
enum Lookup<'a> {
    /// This file, with this status (200; 404 for the site's `404.html`).
    File(&'a str, StatusCode),
    /// A folder named without its trailing slash: redirect to it.
    Folder,
    NotFound,
}

/// Finds the file `path` (relative, no leading `/`) names in `site`: the file itself,
/// `index.html` of a folder, the app's `index.html` for a single-page app, else `404.html`.
fn lookup<'a>(site: &'a Site, path: &str) -> Lookup<'a> {
    let file = |p: &str| site.files.get_key_value(p).map(|(k, _)| k.as_str());
    let wanted = if path.is_empty() || path.ends_with('/') {
        file(&format!("{path}index.html"))
    } else {
        file(path)
    };
    if let Some(f) = wanted {
        return Lookup::File(f, StatusCode::OK);
    }
    if !path.is_empty() && !path.ends_with('/') && file(&format!("{path}/index.html")).is_some() {
        return Lookup::Folder;
    }
    if site.spa
        && let Some(f) = file("index.html")
    {
        return Lookup::File(f, StatusCode::OK);
    }
    match file("404.html") {
        Some(f) => Lookup::File(f, StatusCode::NOT_FOUND),
        None => Lookup::NotFound,
    }
}

/// Whether `If-None-Match` names entity tag `etag` (weakly compared, as RFC 9110 asks).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// `/sites/{ns}/{name}[/{path}]`: serves a file of a site (GET and HEAD). Called for every
/// request whose path starts with `/sites/`, ahead of the router (see [`Public`]): the path
/// is split and percent-decoded here as the router would split and decode
/// `/sites/{ns}/{*rest}`.
async fn serve_site(gw: &Gateway, req: Request) -> Response {
    // The body is not read, and it is not `Sync`: only the head crosses the awaits.
    let (head, _body) = req.into_parts();
    serve_site_file(gw, &head)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// One segment of a site URL, percent-decoded.
fn decoded(segment: &str) -> Result<std::borrow::Cow<'_, str>, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("Invalid URL: the path is not UTF-8 once decoded."))
}

async fn serve_site_file(gw: &Gateway, req: &Parts) -> ApiResult {
    let target = req.uri.path().strip_prefix("/sites/").unwrap_or("");
    // Both the namespace and what follows it must be there (the router's `{ns}/{*rest}`).
    let (ns, rest) = match target.split_once('/') {
        Some((ns, rest)) if !ns.is_empty() && !rest.is_empty() => (decoded(ns)?, decoded(rest)?),
        _ => return Err(ApiError::not_found()),
    };
    let (name, path) = match rest.split_once('/') {
        Some((name, path)) => (name, Some(path)),
        None => (&*rest, None),
    };
    if req.method != Method::GET && req.method != Method::HEAD {
        let mut res = ApiError::method_not_allowed(&["GET", "HEAD"]).into_response();
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(res);
    }
    let site = gw
        .sites
        .served_site(&ns, name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let Some(path) = path else {
        return Ok(redirect_to_folder(&req.uri));
    };
    let (file, status) = match lookup(&site, path) {
        Lookup::File(f, status) => (f, status),
        Lookup::Folder => return Ok(redirect_to_folder(&req.uri)),
        Lookup::NotFound => return Err(ApiError::not_found()),
    };
    let meta = &site.files[file];
    let etag = format!("\"{}\"", meta.hash);
    let cache_control = if meta.content_type.starts_with("text/html") {
        REVALIDATE
    } else {
        site.cache_control.as_deref().unwrap_or(REVALIDATE)
    };
    let mut headers = HeaderMap::new();
    let value = |s: &str| {
        HeaderValue::from_str(s)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    };
    headers.insert(header::ETAG, value(&etag)?);
    headers.insert(header::CACHE_CONTROL, value(cache_control)?);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if status == StatusCode::OK && not_modified(&req.headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    headers.insert(header::CONTENT_TYPE, value(&meta.content_type)?);
    let content = gw
        .sites
        .site_content(&ns, &meta.hash)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("The content of '{file}' is missing from the store."),
            )
        })?;
    Ok((status, headers, Body::from(content)).into_response())
}

/// A 301 to the same path with a trailing slash (relative links of a folder's `index.html`
/// resolve inside the folder), keeping the query.
fn redirect_to_folder(uri: &axum::http::Uri) -> Response {
    let location = match uri.query() {
        Some(q) => format!("{}/?{q}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, v)]).into_response(),
        Err(_) => ApiError::not_found().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gust_model::SiteFile;

    use super::*;

    fn site(paths: &[&str], spa: bool) -> Site {
        let files: BTreeMap<String, SiteFile> = paths
            .iter()
            .map(|p| {
                let f = SiteFile {
                    hash: "h".into(),
                    size: 1,
                    content_type: "text/html".into(),
                };
                (p.to_string(), f)
            })
            .collect();
        Site {
            namespace: "ns".into(),
            name: "web".into(),
            files,
            spa,
            cache_control: None,
            updated: 0,
        }
    }

    #[test]
    fn lookups() {
        let s = site(
            &["index.html", "docs/index.html", "app.js", "404.html"],
            false,
        );
        assert_eq!(lookup(&s, ""), Lookup::File("index.html", StatusCode::OK));
        assert_eq!(lookup(&s, "app.js"), Lookup::File("app.js", StatusCode::OK));
        assert_eq!(
            lookup(&s, "docs/"),
            Lookup::File("docs/index.html", StatusCode::OK)
        );
        assert_eq!(lookup(&s, "docs"), Lookup::Folder);
        assert_eq!(
            lookup(&s, "nope"),
            Lookup::File("404.html", StatusCode::NOT_FOUND)
        );
        assert_eq!(
            lookup(&s, "../index.html"),
            Lookup::File("404.html", StatusCode::NOT_FOUND)
        );
        let spa = site(&["index.html", "app.js"], true);
        assert_eq!(
            lookup(&spa, "users/42"),
            Lookup::File("index.html", StatusCode::OK)
        );
        let bare = site(&["a.txt"], false);
        assert_eq!(lookup(&bare, ""), Lookup::NotFound);
        assert_eq!(lookup(&bare, "b.txt"), Lookup::NotFound);
    }

    #[test]
    fn conditional_requests() {
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, "\"abc\""));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(not_modified(&h, "\"abc\""));
        assert!(!not_modified(&h, "\"abd\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&h, "\"abc\""));
    }
}
