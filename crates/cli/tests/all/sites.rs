//! Static sites: content-addressed deploys, serving with content types, entity tags, cache
//! headers, folders and single-page apps, and hostile deploys and requests.

use gust_testkit::Server;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server;

const SITES: &str = "/api/v1/namespaces/_/sites";
const BLOBS: &str = "/api/v1/namespaces/_/site-blobs";

fn sha(content: &[u8]) -> String {
    Sha256::digest(content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Uploads every file's content and puts the manifest; returns the PUT's answer.
async fn deploy(s: &Server, name: &str, files: &[(&str, &[u8])], extra: Value) -> Value {
    let hashes: Vec<String> = files.iter().map(|(_, c)| sha(c)).collect();
    let r = s
        .call("POST", BLOBS, Some(json!({ "hashes": hashes })))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let missing: Vec<String> = serde_json::from_value(r.body["missing"].clone()).unwrap();
    for (_, content) in files {
        let h = sha(content);
        if missing.contains(&h) {
            let r = s
                .call_raw("PUT", &format!("{BLOBS}/{h}"), content.to_vec())
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    let mut manifest = json!({ "files": {} });
    for (path, content) in files {
        manifest["files"][*path] = json!(sha(content));
    }
    if let Value::Object(m) = extra {
        for (k, v) in m {
            manifest[k] = v;
        }
    }
    let r = s
        .call("PUT", &format!("{SITES}/{name}"), Some(manifest))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Sends `GET {target}` as written (no client normalization); returns the status and the
/// whole answer.
async fn raw_get(s: &Server, target: &str) -> (u16, String) {
    let host = s.apihost.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn sites_serve_files_with_types_tags_and_folders() {
    let s = server();
    let index = b"<!doctype html><title>home</title>".as_slice();
    let app = b"console.log('app')".as_slice();
    let png = [0x89u8, b'P', b'N', b'G', 0, 1, 2, 255];
    let site = deploy(
        &s,
        "web",
        &[
            ("index.html", index),
            ("app.js", app),
            ("img/logo.png", &png),
            ("docs/index.html", b"docs"),
            ("404.html", b"gone"),
            ("copy.js", app),
            ("read me.txt", b"doc"),
        ],
        json!({ "cacheControl": "public, max-age=3600" }),
    )
    .await;
    assert_eq!(site["url"], "/sites/guest/web/");
    assert_eq!(site["files"], 7);
    assert_eq!(site["size"], 34 + 18 + 8 + 4 + 4 + 18 + 3);

    let r = s.web("GET", "/sites/guest/web/", &[], vec![]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.bytes, index);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    // Pages are always revalidated; other files take the site's cache control.
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=0, must-revalidate")
    );
    let etag = r.header("etag").unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", sha(index)));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    let r = s.web("GET", "/sites/guest/web/app.js", &[], vec![]).await;
    assert_eq!(r.bytes, app);
    // Paths are percent-decoded, as the router decodes its parameters.
    let r = s
        .web("GET", "/sites/guest/web/read%20me.txt", &[], vec![])
        .await;
    assert_eq!(r.bytes, b"doc");
    let r = s.web("GET", "/sites/gu%65st/web/app.js", &[], vec![]).await;
    assert_eq!(r.bytes, app);
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    let r = s
        .web("GET", "/sites/guest/web/img/logo.png", &[], vec![])
        .await;
    assert_eq!(r.bytes, png);
    assert_eq!(r.header("content-type"), Some("image/png"));

    // Conditional requests: 304 without a body for a matching tag (also weak, in a list).
    for inm in [etag.clone(), format!("\"x\", W/{etag}"), "*".into()] {
        let r = s
            .web(
                "GET",
                "/sites/guest/web/",
                &[("if-none-match", &inm)],
                vec![],
            )
            .await;
        assert_eq!(r.status, 304, "{inm}");
        assert!(r.bytes.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
    }
    let r = s
        .web(
            "GET",
            "/sites/guest/web/",
            &[("if-none-match", "\"old\"")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);

    // HEAD: the headers of GET, no body.
    let r = s.web("HEAD", "/sites/guest/web/app.js", &[], vec![]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("18"));
    assert!(r.bytes.is_empty());

    // Folders: index.html, and a redirect adding the slash (keeping the query).
    let r = s.web("GET", "/sites/guest/web/docs/", &[], vec![]).await;
    assert_eq!(r.bytes, b"docs");
    let (status, text) = raw_get(&s, "/sites/guest/web/docs?x=1").await;
    assert_eq!(status, 301, "{text}");
    assert!(
        text.to_lowercase()
            .contains("location: /sites/guest/web/docs/?x=1"),
        "{text}"
    );
    let (status, text) = raw_get(&s, "/sites/guest/web").await;
    assert_eq!(status, 301, "{text}");
    assert!(text.to_lowercase().contains("location: /sites/guest/web/"));

    // Unknown paths: the site's 404.html with 404; other verbs: 405.
    let r = s.web("GET", "/sites/guest/web/nope.css", &[], vec![]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.bytes, b"gone");
    let r = s.web("POST", "/sites/guest/web/app.js", &[], vec![]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    for missing in ["/sites/guest/nosite/", "/sites/nobody/web/"] {
        let r = s.web("GET", missing, &[], vec![]).await;
        assert_eq!(r.status, 404, "{missing}");
        assert_eq!(r.error(), "The requested resource does not exist.");
    }

    // The API shows it; a single-page app answers index.html for unknown paths.
    let r = s.call("GET", &format!("{SITES}/web"), None).await;
    assert_eq!(r.body["files"]["img/logo.png"]["contentType"], "image/png");
    assert_eq!(r.body["files"]["img/logo.png"]["size"], 8);
    deploy(
        &s,
        "app",
        &[("index.html", b"spa"), ("main.js", b"m")],
        json!({ "spa": true }),
    )
    .await;
    let r = s.web("GET", "/sites/guest/app/users/42", &[], vec![]).await;
    assert_eq!((r.status, r.bytes.as_slice()), (200, b"spa".as_slice()));
    let r = s.call("GET", SITES, None).await;
    let names: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "web"]);

    // Redeploying switches every file at once; deleting ends serving.
    deploy(&s, "web", &[("index.html", b"v2")], json!({})).await;
    let r = s.web("GET", "/sites/guest/web/", &[], vec![]).await;
    assert_eq!(r.bytes, b"v2");
    assert_eq!(
        s.web("GET", "/sites/guest/web/app.js", &[], vec![])
            .await
            .status,
        404
    );
    let r = s.call("DELETE", &format!("{SITES}/web"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.web("GET", "/sites/guest/web/", &[], vec![]).await.status,
        404
    );
    assert_eq!(
        s.call("DELETE", &format!("{SITES}/web"), None).await.status,
        404
    );
}

#[tokio::test]
async fn hostile_deploys_and_requests_change_nothing() {
    let s = server();
    deploy(&s, "web", &[("index.html", b"home")], json!({})).await;
    let good = sha(b"home");

    // Content that does not hash to its name, bad hashes, oversized files.
    let r = s
        .call_raw(
            "PUT",
            &format!("{BLOBS}/{}", sha(b"other")),
            b"home".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("SHA-256"), "{}", r.error());
    let r = s
        .call_raw("PUT", &format!("{BLOBS}/abc"), b"x".to_vec())
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let big = vec![7u8; 48 * 1024 * 1024 + 1];
    let r = s
        .call_raw("PUT", &format!("{BLOBS}/{}", sha(&big)), big)
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    let r = s
        .call(
            "POST",
            BLOBS,
            Some(json!({ "hashes": ["../../etc/passwd"] })),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Manifests naming content never uploaded, or paths that climb or are absolute.
    let web = format!("{SITES}/web");
    let put = |files: Value| s.call("PUT", &web, Some(json!({ "files": files })));
    let r = put(json!({ "index.html": sha(b"never uploaded") })).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.error().contains("index.html"), "{}", r.error());
    for path in ["../x", "/etc/passwd", "a//b", "a/./b", "a\\b", "a/", ""] {
        let r = put(json!({ path: good })).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
    }
    let r = s
        .call(
            "PUT",
            &format!("{SITES}/web"),
            Some(json!({ "files": {}, "cacheControl": "x\r\nSet-Cookie: a=b" })),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s
        .call(
            "PUT",
            &format!("{SITES}/web"),
            Some(json!({ "files": {}, "extra": 1 })),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // None of it changed the site.
    let r = s.web("GET", "/sites/guest/web/", &[], vec![]).await;
    assert_eq!(r.bytes, b"home");

    // Paths that try to climb out of the site are just names it does not have.
    for target in [
        "/sites/guest/web/../../api/v1/namespaces",
        "/sites/guest/web/%2e%2e/%2e%2e/api/v1",
        "/sites/guest/web/..%2f..%2fgust.db",
        "/sites/guest/web/%00",
        "/sites/guest/web//etc/passwd",
    ] {
        let (status, text) = raw_get(&s, target).await;
        assert!(status == 404 || status == 400, "{target}: {text}");
        assert!(!text.contains("guest\""), "{target}: {text}");
    }
    // A path that is not UTF-8 once decoded is refused, with the request id as every error.
    let (status, text) = raw_get(&s, "/sites/guest/web/%ff").await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("\"code\":"), "{text}");

    // Another tenant: cannot read or write this namespace's sites, nor name its content
    // without uploading it (contents are per namespace).
    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    let r = s
        .call_as(&b_auth, "GET", "/api/v1/namespaces/guest/sites/web", None)
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s
        .call_as(
            &b_auth,
            "DELETE",
            "/api/v1/namespaces/guest/sites/web",
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s
        .call_as(
            &b_auth,
            "POST",
            "/api/v1/namespaces/_/site-blobs",
            Some(json!({ "hashes": [good] })),
        )
        .await;
    assert_eq!(r.body["missing"], json!([good]));
    let r = s
        .call_as(
            &b_auth,
            "PUT",
            "/api/v1/namespaces/_/sites/stolen",
            Some(json!({ "files": { "index.html": good } })),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = s.call_as("", "GET", SITES, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
}
