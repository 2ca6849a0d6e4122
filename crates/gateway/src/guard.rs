//! Kit: what the gateway does to every request and answer, whatever the route. Refused
//! credentials (a wrong key or token, a wrong `X-Require-Whisk-Auth`; not a 401 a function
//! answers itself) are counted per client address (an IPv6 address by its /64) and, past
//! [`MAX_FAILURES`] in [`WINDOW`], every request of that address that carries credentials is
//! answered 429 until the window ends (requests without credentials, such as public web
//! actions and sites, still pass). Every answer gets the security headers a browser needs, each only if the answer
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
use crate::error::CredentialsRefused;

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
        if is_lambda(req.uri().path()) {
            // Lambda's clients read the error's type from this header.
            res.headers_mut().insert(
                "x-amzn-errortype",
                HeaderValue::from_static("TooManyRequestsException"),
            );
        }
        Some(res)
    }

    /// Counts a failed authentication of `ip`. With [`MAX_TRACKED`] addresses in their
    /// window, a new one is not tracked (rather than a search for one to evict at every
    /// failure, which a caller with many addresses would make costly).
    pub(crate) fn failed(&self, ip: IpAddr) {
        let mut map = lock(&self.failures);
        let now = Instant::now();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, w| now.duration_since(w.since) < WINDOW);
            if map.len() >= MAX_TRACKED {
                return;
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
            api: is_api(req.uri().path()),
        }
    }

    /// Whether `res` refused the credentials its request gave; read before the answer's
    /// body is written (which drops its extensions).
    pub(crate) fn refused(res: &Response) -> bool {
        res.extensions().get::<CredentialsRefused>().is_some()
    }

    /// Counts refused credentials and adds the security headers.
    pub(crate) fn answered(&self, seen: Seen, refused: bool, res: &mut Response) {
        if refused && let Some(ip) = seen.credentials_from {
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

/// Whether `path` is the management API's (OpenWhisk's or Lambda's), whose answers hold
/// records and parameters.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/v1/namespaces") || is_lambda(path)
}

/// Whether `path` is AWS Lambda's API.
fn is_lambda(path: &str) -> bool {
    ["/2015-03-31/", "/2021-10-31/"]
        .iter()
        .any(|p| path.starts_with(p))
}

fn carries_credentials(req: &Request) -> bool {
    req.headers().contains_key(header::AUTHORIZATION)
        || req.headers().contains_key("x-require-whisk-auth")
}

/// The client's address as the guard counts it: an IPv6 address by its /64 (what one host is
/// usually given), an IPv4 address whole.
fn peer(req: &Request) -> Option<IpAddr> {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())?;
    Some(match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    })
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
        let addr: SocketAddr = if ip.contains(':') {
            format!("[{ip}]:1234")
        } else {
            format!("{ip}:1234")
        }
        .parse()
        .unwrap();
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
            guard.answered(seen, true, &mut res);
        }
        let refused = guard.refuse(&request("10.0.0.1", true)).unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().contains_key(header::RETRY_AFTER));
        // No credentials (a public web action), or another address: not throttled.
        assert!(guard.refuse(&request("10.0.0.1", false)).is_none());
        assert!(guard.refuse(&request("10.0.0.2", true)).is_none());
        // IPv6: one /64 is one client.
        for _ in 0..MAX_FAILURES {
            let seen = Guard::before(&request("2001:db8:0:1::7", true));
            guard.answered(seen, true, &mut StatusCode::UNAUTHORIZED.into_response());
        }
        assert!(guard.refuse(&request("2001:db8:0:1::8", true)).is_some());
        assert!(guard.refuse(&request("2001:db8:0:2::7", true)).is_none());
        // A 401 that refused no credentials (a function's own) is not counted.
        let fresh = Guard::new(false);
        for _ in 0..2 * MAX_FAILURES {
            let seen = Guard::before(&request("10.0.0.3", true));
            fresh.answered(seen, false, &mut StatusCode::UNAUTHORIZED.into_response());
        }
        assert!(fresh.refuse(&request("10.0.0.3", true)).is_none());
    }

    #[test]
    fn headers_are_added_only_where_the_answer_has_none() {
        let guard = Guard::new(true);
        let seen = Guard::before(&request("10.0.0.1", false));
        let mut res = Response::builder()
            .header(header::X_FRAME_OPTIONS, "ALLOWALL")
            .body(axum::body::Body::empty())
            .unwrap();
        guard.answered(seen, false, &mut res);
        let h = res.headers();
        assert_eq!(h[header::X_FRAME_OPTIONS], "ALLOWALL");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000");
        let mut framed = Response::builder()
            .header(header::CONTENT_SECURITY_POLICY, "frame-ancestors *")
            .body(axum::body::Body::empty())
            .unwrap();
        guard.answered(seen, false, &mut framed);
        assert!(!framed.headers().contains_key(header::X_FRAME_OPTIONS));
    }
}
