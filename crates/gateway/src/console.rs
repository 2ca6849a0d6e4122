//! Resource: the web console (`/console`, decision 0026) — static HTML, CSS and JavaScript
//! built into the binary from `crates/gateway/console/`, which call the REST API from the
//! browser with the key or token given at log-in. The server side only serves files: it
//! holds no session and reads no credentials.
//!
//! Every answer carries the console's `Content-Security-Policy` ([`CSP`]: scripts, styles and
//! requests to its own origin only, no inline script, no framing) and `X-Frame-Options: DENY`,
//! so the guard, which adds `X-Frame-Options: SAMEORIGIN` only to answers without a CSP, and
//! the CSP agree. Files are revalidated (`Cache-Control: no-cache`) against an `ETag` of their
//! content: a new binary's console is never mixed with an old one's cached script. Imports
//! the kit only.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::{ApiError, Gateway};

/// The console's Content-Security-Policy: nothing but its own files and its own API.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

pub(crate) fn router() -> Router<Gateway> {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/{file}", get(file))
}

/// One built-in file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// A file of `crates/gateway/console/`, built in, with its `Content-Type`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../console/", $name)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// The console's files; `index.html` is the page, the others are what it loads.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("console.css", CSS),
    asset!("console.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("metrics.js", JS),
];

/// Each asset's `ETag` (a quoted prefix of its SHA-256), in the order of [`ASSETS`].
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let tag = format!("\"{}\"", hex::encode(&digest[..16]));
            HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"0\""))
        })
        .collect()
});

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

/// The asset `name`, or a 304 when the request's `If-None-Match` names its tag, or OpenWhisk's
/// 404 when there is no such asset.
fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return ApiError::not_found().into_response();
    };
    let asset = &ASSETS[i];
    let etag = ETAGS[i].clone();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().as_bytes() == etag.as_bytes()));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_loads_is_served() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        for a in &ASSETS[1..] {
            if a.name.ends_with(".css") || a.name == "console.js" {
                assert!(page.contains(&format!("/console/{}", a.name)), "{}", a.name);
            }
        }
        // Every module a script imports is built in.
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for import in text.split("from \"./").skip(1) {
                let name = import.split('"').next().unwrap();
                assert!(
                    ASSETS.iter().any(|b| b.name == name),
                    "{} imports {name}",
                    a.name
                );
            }
        }
        // No inline script or style: the CSP would refuse them.
        assert!(!page.contains("<script>"));
        assert!(!page.contains("style="));
        assert!(!page.contains("<style"));
    }

    #[test]
    fn a_matching_tag_is_answered_304_and_unknown_names_404() {
        let res = serve("console.js", &HeaderMap::new());
        assert_eq!(res.status(), StatusCode::OK);
        let tag = res.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(serve("console.js", &h).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            serve("../Cargo.toml", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
