//! Kit: AWS Lambda's HTTP payload format 2.0, for a Lambda function (an action whose kind
//! satisfies [`gust_model::lambda::is_lambda_kind`], decision 0025) served over HTTP as a web
//! action (its function URL) or an API route. `http_action` calls [`event`] where it would
//! build OpenWhisk's `__ow_*` parameters, and [`finished_response`] / [`unfinished_response`]
//! where it would turn a record into a response; every other kind keeps OpenWhisk's way.
//! Imports the kit only.
//!
//! **The event** (what a function URL or an HTTP API sends): `version "2.0"`, `routeKey`
//! (`$default` for a web action, `METHOD /path/{param}` as an API route declares it),
//! `rawPath` (a web action: what follows the action's name, `/` when nothing does; an API
//! route: the request's path), `rawQueryString` as it came, `cookies` (the `Cookie` headers
//! split at `;`, absent when none), `headers` (lower-case names, repeats joined with `,`,
//! without `Cookie`), `queryStringParameters` (decoded, repeats joined with `,`, absent when
//! none), `pathParameters` (an API route's), `requestContext` (`accountId "anonymous"`, or the
//! caller's namespace when the action requires authentication, then also
//! `authorizer.iam`; `apiId`, `domainName` (the `Host` the client used), `domainPrefix`,
//! `http {method, path, protocol, sourceIp, userAgent}`, `requestId` (the request's
//! `X-Request-ID`), `routeKey`, `stage "$default"`, `time`, `timeEpoch`), `body` (absent when
//! empty; base64 with `isBase64Encoded: true` when it is not UTF-8 or its content type is
//! not text) and `isBase64Encoded`.
//!
//! **The response** from the function's response `V` (the activation's result through
//! [`gust_model::lambda::payload`]): an object with `statusCode` is the response — status,
//! `headers` (hop-by-hop ones dropped, as `http_action` does), `cookies` (one `Set-Cookie`
//! each), `body` (base64-decoded when `isBase64Encoded`; `content-type: application/json`
//! unless the function names one); any other `V` is 200 `application/json` with `V`'s JSON
//! text. As Lambda's function URLs answer: a function error (the function failed, returned a
//! response that is not a valid one, timed out or crashed) is 502
//! `{"message":"Internal Server Error"}`; a platform error 500 with the same body; an
//! invocation still running when the gateway stops waiting (`MAX_BLOCKING_WAIT`, where API
//! Gateway has its integration timeout) is 504 `{"message":"Endpoint request timed out"}`.
//! Every answer from a run names its activation in `X-OpenWhisk-Activation-Id`.
//!
//! **Credentials:** when the action requires authentication (`require-whisk-auth`), the
//! `Authorization` and `X-Require-Whisk-Auth` headers are the platform's and never reach the
//! function. Otherwise they are the function's own (a function URL with auth type `NONE`
//! passes them on too, and functions check their own bearer tokens), except HTTP Basic
//! credentials, which are a namespace key's form: a browser sends the ones it remembers for
//! the gateway's origin to every function served there (decision 0012), so they never reach
//! one.

use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use gust_model::ActivationStatus;
use serde_json::{Map, Value, json};

use crate::ApiError;
use crate::http_action::{HOP_BY_HOP, is_text};
use crate::request_id::RequestId;
use crate::respond::{Finished, internal, with_activation_id};

/// `routeKey` of a function URL.
const DEFAULT_ROUTE: &str = "$default";
/// The body Lambda's function URLs answer a function error with.
const FUNCTION_ERROR: &str = "Internal Server Error";
/// The body of the answer to an invocation that outlasted the gateway's wait.
const TIMED_OUT: &str = "Endpoint request timed out";

/// What served a request, as payload format 2.0 names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// `routeKey`: `$default`, or `GET /users/{id}`.
    key: String,
    /// `rawPath`, undecoded.
    raw_path: String,
    /// `requestContext.apiId`; a function URL's is its domain prefix (as on AWS, where both
    /// are the URL's id).
    api_id: Option<String>,
}

impl Route {
    /// A web action, Gust's function URL: route `$default`; `raw_path` is what follows the
    /// action's name in the request's path, undecoded (`/` when nothing does).
    pub(crate) fn function_url(raw_path: &str) -> Route {
        let raw_path = if raw_path.is_empty() {
            "/".to_string()
        } else if raw_path.starts_with('/') {
            raw_path.to_string()
        } else {
            format!("/{raw_path}")
        };
        Route {
            key: DEFAULT_ROUTE.into(),
            raw_path,
            api_id: None,
        }
    }

    /// An API route: `routeKey` is its method and path as declared (`GET /users/{id}`),
    /// `rawPath` the request's path as it came, `apiId` the API's base path without its `/`.
    pub(crate) fn api(method: &str, path: &str, request_path: &str, base_path: &str) -> Route {
        Route {
            key: format!("{} {path}", method.to_ascii_uppercase()),
            raw_path: request_path.to_string(),
            api_id: Some(base_path.trim_start_matches('/').to_string()),
        }
    }
}

/// Whether the request's credential headers belong to the platform or to the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// The action requires authentication: `Authorization` and `X-Require-Whisk-Auth` are
    /// the platform's and are removed.
    Platform,
    /// The action is public: every header is the function's.
    Function,
}

/// The payload 2.0 event for a request (`parts` and its whole `body`), served by `route` with
/// `path_params`; `user` is the namespace that authenticated (when the action requires it),
/// `now` the time the request is served.
pub(crate) fn event(
    parts: &Parts,
    body: &Bytes,
    route: &Route,
    path_params: &[(String, String)],
    credentials: Credentials,
    user: Option<&str>,
    now: SystemTime,
) -> Map<String, Value> {
    let mut headers: Map<String, Value> = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for name in parts.headers.keys() {
        let values = parts.headers.get_all(name).iter().map(lossy);
        if name == header::COOKIE {
            for v in values {
                cookies.extend(
                    v.split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(|c| Value::String(c.to_string())),
                );
            }
            continue;
        }
        let platforms = name == header::AUTHORIZATION || name.as_str() == "x-require-whisk-auth";
        if platforms && credentials == Credentials::Platform {
            continue;
        }
        let values: Vec<String> = if name == header::AUTHORIZATION {
            values.filter(|v| !is_basic(v)).collect()
        } else {
            values.collect()
        };
        if values.is_empty() {
            continue;
        }
        headers.insert(name.as_str().to_string(), Value::String(values.join(",")));
    }
    let raw_query = parts.uri.query().unwrap_or("");
    let mut query: Map<String, Value> = Map::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let host = parts
        .headers
        .get(header::HOST)
        .map(lossy)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let prefix = domain_prefix(&host).to_string();
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .map(lossy)
        .unwrap_or_default();
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| client_ip(a.ip()).to_string())
        .unwrap_or_default();
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|RequestId(id)| id.clone())
        .unwrap_or_default();
    let mut context = json!({
        "accountId": user.unwrap_or("anonymous"),
        "apiId": route.api_id.clone().unwrap_or_else(|| prefix.clone()),
        "domainName": host,
        "domainPrefix": prefix,
        "http": {
            "method": parts.method.as_str(),
            "path": route.raw_path,
            "protocol": protocol(parts.version),
            "sourceIp": source_ip,
            "userAgent": user_agent,
        },
        "requestId": request_id,
        "routeKey": route.key,
        "stage": "$default",
        "time": clf_time(now),
        "timeEpoch": gust_model::time::to_ms(now),
    });
    if let Some(ns) = user {
        context["authorizer"] = json!({ "iam": { "accountId": ns, "userId": ns } });
    }
    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(route.key));
    event.insert("rawPath".into(), json!(route.raw_path));
    event.insert("rawQueryString".into(), json!(raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), Value::Array(cookies));
    }
    event.insert("headers".into(), Value::Object(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), Value::Object(query));
    }
    if !path_params.is_empty() {
        let params: Map<String, Value> = path_params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        event.insert("pathParameters".into(), Value::Object(params));
    }
    event.insert("requestContext".into(), context);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(lossy)
        .unwrap_or_default();
    let mut base64_encoded = false;
    if !body.is_empty() {
        let text = std::str::from_utf8(body)
            .ok()
            .filter(|_| is_text(&content_type));
        let value = match text {
            Some(t) => t.to_string(),
            None => {
                base64_encoded = true;
                base64::engine::general_purpose::STANDARD.encode(body)
            }
        };
        event.insert("body".into(), Value::String(value));
    }
    event.insert("isBase64Encoded".into(), Value::Bool(base64_encoded));
    event
}

/// Whether an `Authorization` value holds HTTP Basic credentials.
fn is_basic(value: &str) -> bool {
    value
        .trim_start()
        .get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "))
}

fn lossy(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

/// An IPv4 client connected over IPv6 as the IPv4 address it is.
fn client_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The first label of `host` (without its port): `abc` of `abc.example.com:8080`.
fn domain_prefix(host: &str) -> &str {
    if host.starts_with('[') {
        // An IPv6 literal has no labels: the address is the prefix.
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    let name = host.split(':').next().unwrap_or(host);
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return name;
    }
    name.split('.').next().unwrap_or(name)
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `12/Mar/2020:19:03:58 +0000`, the time format of `requestContext.time`.
fn clf_time(t: SystemTime) -> String {
    let fmt = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    time::OffsetDateTime::from(t)
        .format(&fmt)
        .unwrap_or_default()
}

/// Lambda's error answer: `status` with `{"message": message}`.
fn lambda_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

/// The answer to an invocation that is still running when the gateway stops waiting.
pub(crate) fn unfinished_response(activation_id: &str) -> Response {
    with_activation_id(
        lambda_error(StatusCode::GATEWAY_TIMEOUT, TIMED_OUT),
        activation_id,
    )
}

/// The response for a Lambda function's finished activation (its stored record).
pub(crate) fn finished_response(record: &str) -> Result<Response, ApiError> {
    let record = Finished::read(record)?;
    let res = match record.response.status {
        ActivationStatus::Success => {
            let result: Value =
                serde_json::from_str(record.response.result.get()).map_err(internal)?;
            http_response(gust_model::lambda::payload(&result)).unwrap_or_else(|why| {
                tracing::debug!(
                    activation = %record.activation_id,
                    %why,
                    "a Lambda function's response is not a valid HTTP response"
                );
                lambda_error(StatusCode::BAD_GATEWAY, FUNCTION_ERROR)
            })
        }
        ActivationStatus::ApplicationError | ActivationStatus::DeveloperError => {
            lambda_error(StatusCode::BAD_GATEWAY, FUNCTION_ERROR)
        }
        ActivationStatus::InternalError => {
            lambda_error(StatusCode::INTERNAL_SERVER_ERROR, FUNCTION_ERROR)
        }
    };
    Ok(with_activation_id(res, &record.activation_id))
}

/// A function's response `v` as an HTTP response; why it is not one, if it is not.
fn http_response(v: &Value) -> Result<Response, String> {
    let Some(m) = v.as_object().filter(|m| m.contains_key("statusCode")) else {
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response());
    };
    let status = m
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .and_then(|n| StatusCode::from_u16(n).ok())
        // A final response: informational statuses are the server's to send.
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| format!("statusCode {} is not an HTTP status", m["statusCode"]))?;
    let mut headers = HeaderMap::new();
    match m.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (k, v) in h {
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("'{}' is not a header name", k.escape_debug()))?;
                if HOP_BY_HOP.contains(&name.as_str()) {
                    // Framing and connection handling are the server's, never a function's.
                    continue;
                }
                let values = match v {
                    Value::Array(a) => a.as_slice(),
                    one => std::slice::from_ref(one),
                };
                for v in values {
                    headers.append(name.clone(), header_value(v, k)?);
                }
            }
        }
        Some(_) => return Err("headers is not an object".into()),
    }
    match m.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for c in cookies {
                headers.append(header::SET_COOKIE, header_value(c, "cookies")?);
            }
        }
        Some(_) => return Err("cookies is not an array".into()),
    }
    let encoded = match m.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("isBase64Encoded is not a boolean".into()),
    };
    let body: Vec<u8> = match m.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if encoded => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|_| "the body is not valid base64".to_string())?,
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    if !body.is_empty() && !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    // Not `(status, body).into_response()`, which names bytes `application/octet-stream`.
    let mut res = Response::new(axum::body::Body::from(body));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    Ok(res)
}

fn header_value(v: &Value, what: &str) -> Result<HeaderValue, String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        _ => return Err(format!("a value of '{what}' is not a string")),
    };
    HeaderValue::from_str(&text).map_err(|_| format!("a value of '{what}' is not a valid header"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use std::time::{Duration, UNIX_EPOCH};

    /// 12/Mar/2020:19:03:58 +0000, AWS's own example time.
    const EXAMPLE_MS: u64 = 1_584_039_838_000;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut parts, ()) = b.body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectInfo::<SocketAddr>(
            "[::ffff:10.1.2.3]:5555".parse().unwrap(),
        ));
        parts
            .extensions
            .insert(RequestId("0123456789abcdef0123456789abcdef".into()));
        parts
    }

    fn at_example_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(EXAMPLE_MS)
    }

    fn event_of(p: &Parts, body: &[u8], route: &Route) -> Value {
        Value::Object(event(
            p,
            &Bytes::copy_from_slice(body),
            route,
            &[],
            Credentials::Function,
            None,
            at_example_time(),
        ))
    }

    #[test]
    fn a_function_url_request_becomes_the_event() {
        let p = parts(
            "POST",
            "/api/v1/web/guest/default/fn/a/b%20c?x=1&y=two%20words&x=3&empty=",
            &[
                ("host", "gust.example.com:3233"),
                ("user-agent", "curl/8"),
                ("content-type", "text/plain"),
                ("x-many", "one"),
                ("x-many", "two"),
                ("cookie", "a=1; b=2"),
                ("cookie", "c=3"),
                ("authorization", "Bearer app-token"),
            ],
        );
        let e = event_of(&p, b"hello", &Route::function_url("/a/b%20c"));
        let expected = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/a/b%20c",
            "rawQueryString": "x=1&y=two%20words&x=3&empty=",
            "cookies": ["a=1", "b=2", "c=3"],
            "headers": {
                "host": "gust.example.com:3233",
                "user-agent": "curl/8",
                "content-type": "text/plain",
                "x-many": "one,two",
                "authorization": "Bearer app-token",
            },
            "queryStringParameters": { "x": "1,3", "y": "two words", "empty": "" },
            "requestContext": {
                "accountId": "anonymous",
                "apiId": "gust",
                "domainName": "gust.example.com:3233",
                "domainPrefix": "gust",
                "http": {
                    "method": "POST",
                    "path": "/a/b%20c",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "10.1.2.3",
                    "userAgent": "curl/8",
                },
                "requestId": "0123456789abcdef0123456789abcdef",
                "routeKey": "$default",
                "stage": "$default",
                "time": "12/Mar/2020:19:03:58 +0000",
                "timeEpoch": EXAMPLE_MS,
            },
            "body": "hello",
            "isBase64Encoded": false,
        });
        assert_eq!(e, expected);
    }

    #[test]
    fn an_empty_request_has_no_body_cookies_or_query() {
        let p = parts(
            "GET",
            "/api/v1/web/guest/default/fn",
            &[("host", "localhost")],
        );
        let e = event_of(&p, b"", &Route::function_url(""));
        assert_eq!(e["rawPath"], "/");
        assert_eq!(e["rawQueryString"], "");
        assert_eq!(e["isBase64Encoded"], false);
        for absent in ["body", "cookies", "queryStringParameters", "pathParameters"] {
            assert!(e.get(absent).is_none(), "{absent}: {e}");
        }
        assert_eq!(e["requestContext"]["domainPrefix"], "localhost");
    }

    #[test]
    fn an_api_route_names_its_route_and_path_parameters() {
        let p = parts(
            "GET",
            "/api/guest/shop/users/42?q=x",
            &[("host", "127.0.0.1:3233")],
        );
        let route = Route::api("get", "/users/{id}", p.uri.path(), "/shop");
        let e = event(
            &p,
            &Bytes::new(),
            &route,
            &[("id".into(), "42".into())],
            Credentials::Function,
            None,
            at_example_time(),
        );
        assert_eq!(e["routeKey"], "GET /users/{id}");
        assert_eq!(e["rawPath"], "/api/guest/shop/users/42");
        assert_eq!(e["pathParameters"], json!({ "id": "42" }));
        assert_eq!(e["requestContext"]["routeKey"], "GET /users/{id}");
        assert_eq!(e["requestContext"]["apiId"], "shop");
        assert_eq!(e["requestContext"]["domainPrefix"], "127.0.0.1");
        assert_eq!(
            e["requestContext"]["http"]["path"],
            "/api/guest/shop/users/42"
        );
    }

    #[test]
    fn binary_bodies_are_base64() {
        let route = Route::function_url("");
        // Not UTF-8, whatever the content type says.
        let p = parts("POST", "/x", &[("content-type", "text/plain")]);
        let e = event_of(&p, &[0xff, 0x00, 0x10], &route);
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "/wAQ");
        // UTF-8 but a binary content type.
        let p = parts(
            "POST",
            "/x",
            &[("content-type", "application/octet-stream")],
        );
        let e = event_of(&p, b"abc", &route);
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "YWJj");
        // JSON and forms are text; no content type with UTF-8 is text.
        for ct in ["application/json", "application/x-www-form-urlencoded", ""] {
            let p = parts("POST", "/x", &[("content-type", ct)]);
            let e = event_of(&p, br#"{"a":1}"#, &route);
            assert_eq!(e["isBase64Encoded"], false, "{ct}");
            assert_eq!(e["body"], r#"{"a":1}"#, "{ct}");
        }
    }

    #[test]
    fn the_platforms_credentials_stay_with_the_platform() {
        let p = parts(
            "GET",
            "/x",
            &[
                ("authorization", "Basic a2V5"),
                ("x-require-whisk-auth", "secret"),
                ("x-other", "kept"),
            ],
        );
        let e = event(
            &p,
            &Bytes::new(),
            &Route::function_url(""),
            &[],
            Credentials::Platform,
            Some("caller-ns"),
            at_example_time(),
        );
        let h = &e["headers"];
        assert!(h.get("authorization").is_none(), "{h}");
        assert!(h.get("x-require-whisk-auth").is_none(), "{h}");
        assert_eq!(h["x-other"], "kept");
        assert_eq!(e["requestContext"]["accountId"], "caller-ns");
        assert_eq!(
            e["requestContext"]["authorizer"]["iam"]["userId"],
            "caller-ns"
        );
    }

    #[test]
    fn basic_credentials_never_reach_a_public_function() {
        for (value, kept) in [
            ("Basic Z3Vlc3Q6a2V5", false),
            ("basic Z3Vlc3Q6a2V5", false),
            ("Bearer app-token", true),
            ("Custom Basic", true),
        ] {
            let p = parts("GET", "/x", &[("authorization", value)]);
            let e = event_of(&p, b"", &Route::function_url(""));
            assert_eq!(
                e["headers"].get("authorization").is_some(),
                kept,
                "{value}: {e}"
            );
        }
    }

    #[test]
    fn domain_prefixes() {
        assert_eq!(domain_prefix("abc.lambda-url.us-east-1.on.aws"), "abc");
        assert_eq!(domain_prefix("localhost:3233"), "localhost");
        assert_eq!(domain_prefix("10.0.0.1:80"), "10.0.0.1");
        assert_eq!(domain_prefix("[::1]:3233"), "[::1]");
        assert_eq!(domain_prefix(""), "");
    }

    async fn body_of(res: Response) -> Vec<u8> {
        axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    fn record(status: &str, result: Value) -> String {
        json!({
            "activationId": "a1",
            "response": { "status": status, "success": status == "success", "result": result },
        })
        .to_string()
    }

    #[tokio::test]
    async fn a_response_object_is_the_http_response() {
        let result = json!({
            "statusCode": 201,
            "headers": { "content-type": "text/plain", "x-one": "1", "connection": "close",
                         "transfer-encoding": "chunked" },
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
            "body": "created",
            "isBase64Encoded": false,
        });
        let res = finished_response(&record("success", result)).unwrap();
        assert_eq!(res.status(), 201);
        let h = res.headers();
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["x-one"], "1");
        assert!(h.get("connection").is_none());
        assert!(h.get("transfer-encoding").is_none());
        let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2; HttpOnly"]);
        assert_eq!(h["x-openwhisk-activation-id"], "a1");
        assert_eq!(body_of(res).await, b"created");
    }

    #[tokio::test]
    async fn a_base64_body_is_decoded() {
        let result = json!({
            "statusCode": 200,
            "headers": { "content-type": "image/png" },
            "body": base64::engine::general_purpose::STANDARD.encode([0x89, b'P', 0x00, 0xff]),
            "isBase64Encoded": true,
        });
        let res = finished_response(&record("success", result)).unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "image/png");
        assert_eq!(body_of(res).await, [0x89, b'P', 0x00, 0xff]);
    }

    #[tokio::test]
    async fn anything_without_a_status_code_is_json() {
        // A plain object is the result as it is; anything else is wrapped in the result
        // (`lambda-payload`) and unwrapped here.
        for (result, body) in [
            (json!({"hello": "world"}), r#"{"hello":"world"}"#),
            (json!({"lambda-payload": "text"}), r#""text""#),
            (json!({"lambda-payload": [1, 2]}), "[1,2]"),
            (
                json!({"lambda-payload": {"error": "a field"}}),
                r#"{"error":"a field"}"#,
            ),
        ] {
            let res = finished_response(&record("success", result.clone())).unwrap();
            assert_eq!(res.status(), 200, "{result}");
            assert_eq!(res.headers()["content-type"], "application/json");
            assert_eq!(body_of(res).await, body.as_bytes(), "{result}");
        }
        // A status code alone: no body, no content type invented for it.
        let res = finished_response(&record("success", json!({"statusCode": 204}))).unwrap();
        assert_eq!(res.status(), 204);
        assert!(res.headers().get("content-type").is_none());
        // A body without a content type is JSON, as on a function URL.
        let res = finished_response(&record(
            "success",
            json!({"statusCode": 200, "body": "{\"a\":1}"}),
        ))
        .unwrap();
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(body_of(res).await, br#"{"a":1}"#);
    }

    #[tokio::test]
    async fn failures_answer_as_lambda_does() {
        let cases = [
            (
                record("application error", json!({"error": {"errorType": "E"}})),
                502,
            ),
            (
                record("action developer error", json!({"error": "timed out"})),
                502,
            ),
            (
                record("whisk internal error", json!({"error": "broken"})),
                500,
            ),
            // Responses that are not HTTP responses: a function error too.
            (record("success", json!({"statusCode": "201"})), 502),
            (record("success", json!({"statusCode": 99})), 502),
            (
                record("success", json!({"statusCode": 200, "headers": []})),
                502,
            ),
            (
                record("success", json!({"statusCode": 200, "cookies": "a=1"})),
                502,
            ),
            (
                record(
                    "success",
                    json!({"statusCode": 200, "body": "%%%", "isBase64Encoded": true}),
                ),
                502,
            ),
            (
                record(
                    "success",
                    json!({"statusCode": 200, "headers": {"bad name": "x"}}),
                ),
                502,
            ),
        ];
        for (rec, status) in cases {
            let res = finished_response(&rec).unwrap();
            assert_eq!(res.status(), status, "{rec}");
            assert_eq!(res.headers()["x-openwhisk-activation-id"], "a1");
            let body: Value = serde_json::from_slice(&body_of(res).await).unwrap();
            assert_eq!(body, json!({"message": "Internal Server Error"}), "{rec}");
        }
        let res = unfinished_response("a2");
        assert_eq!(res.status(), 504);
        assert_eq!(res.headers()["x-openwhisk-activation-id"], "a2");
        let body: Value = serde_json::from_slice(&body_of(res).await).unwrap();
        assert_eq!(body, json!({"message": "Endpoint request timed out"}));
    }
}
