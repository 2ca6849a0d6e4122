//! The gateway's guard, from outside: guessing keys is throttled per client address, and the
//! public paths carry the security headers a browser needs without overriding what a
//! function sets on purpose.

use gust_testkit::function;
use serde_json::json;

use crate::server;

#[tokio::test]
async fn guessing_keys_is_throttled_per_address_and_other_callers_are_not() {
    let s = server();
    let (uuid, _) = s.auth.split_once(':').unwrap();
    let mut refused_at = None;
    for attempt in 1..=40 {
        let r = s
            .call_as(
                &format!("{uuid}:guess{attempt}"),
                "GET",
                "/api/v1/namespaces",
                None,
            )
            .await;
        match r.status {
            401 => {}
            429 => {
                refused_at = Some(attempt);
                assert!(
                    r.error().contains("Too many failed authentications"),
                    "{}",
                    r.error()
                );
                let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
                assert!(r.header("x-request-id").is_some());
                break;
            }
            other => panic!("attempt {attempt}: {other}"),
        }
    }
    assert_eq!(
        refused_at,
        Some(21),
        "20 failures are answered 401, the 21st attempt 429"
    );
    // While the address is throttled even the right key is refused from it: a guess that
    // happens to be right learns nothing.
    let r = s.call("GET", "/api/v1/namespaces", None).await;
    assert_eq!(r.status, 429);
    // Requests without credentials (public web actions, sites) still pass.
    let r = s
        .web("GET", "/api/v1/web/guest/default/none.json", &[], vec![])
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
}

#[tokio::test]
async fn public_answers_carry_security_headers_unless_the_function_sets_its_own() {
    let s = server();
    let reply = |v: serde_json::Value| json!([{ "key": "reply", "value": v }]);
    let web = json!([{ "key": "web-export", "value": true }]);
    s.create(
        "plain",
        &function("reply"),
        json!({ "annotations": web, "parameters": reply(json!({ "body": "<p>hi</p>" })) }),
    )
    .await;
    s.create(
        "framed",
        &function("reply"),
        json!({
            "annotations": web,
            "parameters": reply(json!({
                "headers": { "x-frame-options": "ALLOW-FROM https://example.com", "referrer-policy": "no-referrer" },
                "body": "<p>frame me</p>"
            }))
        }),
    )
    .await;
    let r = s
        .web("GET", "/api/v1/web/guest/default/plain.http", &[], vec![])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(
        r.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    // Plain HTTP: no HSTS.
    assert_eq!(r.header("strict-transport-security"), None);
    let r = s
        .web("GET", "/api/v1/web/guest/default/framed.http", &[], vec![])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-frame-options"),
        Some("ALLOW-FROM https://example.com")
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // The management API's answers are never cached.
    let r = s.call("GET", "/api/v1/namespaces/_/actions", None).await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
}
