//! Kit: what the gateway does to every request and answer, whatever the route. Failed
//! authentication is counted per client address and, past [`MAX_FAILURES`] in
//! [`WINDOW`], every request of that address that carries credentials is answered 429 until
//! the window ends (requests without credentials, such as public web actions and sites, still
//! pass). Every answer gets the security headers a browser needs, each only if the answer
//! does not set it itself (a web action or a site may set its own on purpose). Imports the
//! kit only.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// Failed authentications an address may make in one [`WINDOW`].
pub const MAX_FAILURES: u32 = 20;
/// The window failures are counted in, from an address's first failure.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most addresses tracked at once; past it, windows that ended are dropped, then the oldest.
const MAX_TRACKED: usize = 100_000;

/// Per-process state of the guard.
#[derive(Debug, Default)]
pub struct Guard {
    failures: Mutex<HashMap<IpAddr, Window>>,
    /// How many addresses `failures` holds: requests skip the lock while it is 0.
    tracked: AtomicUsize,
    /// Whether to send `Strict-Transport-Security` (the listener serves TLS with a real
    /// certificate).
    pub hsts: bool,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    since: Instant,
    failures: u32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Guard {
    /// A guard that also sends `Strict-Transport-Security` when `hsts`.
    pub fn new(hsts: bool) -> Guard {
        Guard {
            hsts,
            ..Guard::default()
        }
    }

    /// The 429 for `req` if its address is throttled and it carries credentials.
    pub(crate) fn refuse(&self, req: &Request) -> Option<Response> {
        if self.tracked.load(Ordering::Relaxed) == 0 || !carries_credentials(req) {
            return None;
        }
        let ip = peer(req)?;
        let window = *lock(&self.failures).get(&ip)?;
        let elapsed = window.since.elapsed();
        if window.failures < MAX_FAILURES || elapsed >= WINDOW {
            return None;
        }
        let retry = (WINDOW - elapsed).as_secs().max(1);
        let mut res = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed authentications from this address; retry in {retry} seconds."),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        Some(res)
    }

    /// Counts a failed authentication of `ip`.
    pub(crate) fn failed(&self, ip: IpAddr) {
        let mut map = lock(&self.failures);
        let now = Instant::now();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, w| now.duration_since(w.since) < WINDOW);
            if map.len() >= MAX_TRACKED
                && let Some(oldest) = map.iter().min_by_key(|(_, w)| w.since).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let w = map.entry(ip).or_insert(Window {
            since: now,
            failures: 0,
        });
        if now.duration_since(w.since) >= WINDOW {
            *w = Window {
                since: now,
                failures: 0,
            };
        }
        w.failures += 1;
        self.tracked.store(map.len(), Ordering::Relaxed);
    }

    /// What the guard notes of a request before it is routed: its address, if it carries
    /// credentials (for [`answered`](Self::answered)).
    pub(crate) fn before(req: &Request) -> Seen {
        Seen {
            credentials_from: carries_credentials(req).then(|| peer(req)).flatten(),
            api: req.uri().path().starts_with("/api/v1/namespaces"),
        }
    }

    /// Counts a failed authentication and adds the security headers.
    pub(crate) fn answered(&self, seen: Seen, res: &mut Response) {
        if res.status() == StatusCode::UNAUTHORIZED
            && let Some(ip) = seen.credentials_from
        {
            self.failed(ip);
        }
        let headers = res.headers_mut();
        let framing_set = headers.contains_key(header::CONTENT_SECURITY_POLICY);
        let mut set = |name: HeaderName, value: &'static str| {
            if !headers.contains_key(&name) {
                headers.insert(name, HeaderValue::from_static(value));
            }
        };
        set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        set(header::REFERRER_POLICY, "strict-origin-when-cross-origin");
        if !framing_set {
            set(header::X_FRAME_OPTIONS, "SAMEORIGIN");
        }
        if seen.api {
            // Answers of the management API hold records and parameters: no cache keeps them.
            set(header::CACHE_CONTROL, "no-store");
        }
        if self.hsts {
            set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
        }
    }
}

/// What [`Guard::before`] noted of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    credentials_from: Option<IpAddr>,
    api: bool,
}

fn carries_credentials(req: &Request) -> bool {
    req.headers().contains_key(header::AUTHORIZATION)
}

fn peer(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ip: &str, auth: bool) -> Request {
        let mut b = Request::builder().uri("/api/v1/namespaces");
        if auth {
            b = b.header(header::AUTHORIZATION, "Basic eA==");
        }
        let mut req = b.body(axum::body::Body::empty()).unwrap();
        let addr: SocketAddr = format!("{ip}:1234").parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        req
    }

    #[test]
    fn an_address_is_throttled_after_its_failures_and_others_are_not() {
        let guard = Guard::new(false);
        for _ in 0..MAX_FAILURES {
            assert!(guard.refuse(&request("10.0.0.1", true)).is_none());
            let seen = Guard::before(&request("10.0.0.1", true));
            let mut res = StatusCode::UNAUTHORIZED.into_response();
            guard.answered(seen, &mut res);
        }
        let refused = guard.refuse(&request("10.0.0.1", true)).unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().contains_key(header::RETRY_AFTER));
        // No credentials (a public web action), or another address: not throttled.
        assert!(guard.refuse(&request("10.0.0.1", false)).is_none());
        assert!(guard.refuse(&request("10.0.0.2", true)).is_none());
    }

    #[test]
    fn headers_are_added_only_where_the_answer_has_none() {
        let guard = Guard::new(true);
        let seen = Guard::before(&request("10.0.0.1", false));
        let mut res = Response::builder()
            .header(header::X_FRAME_OPTIONS, "ALLOWALL")
            .body(axum::body::Body::empty())
            .unwrap();
        guard.answered(seen, &mut res);
        let h = res.headers();
        assert_eq!(h[header::X_FRAME_OPTIONS], "ALLOWALL");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000");
        let mut framed = Response::builder()
            .header(header::CONTENT_SECURITY_POLICY, "frame-ancestors *")
            .body(axum::body::Body::empty())
            .unwrap();
        guard.answered(seen, &mut framed);
        assert!(!framed.headers().contains_key(header::X_FRAME_OPTIONS));
    }
}
