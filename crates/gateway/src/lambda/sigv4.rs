//! AWS Signature Version 4 as AWS's clients send it (Lambda's, and Step Functions' for the
//! `states` resource, which signs for service `states`), verified: the canonical request is
//! rebuilt from what arrived exactly as botocore builds it before signing, and the signature
//! the namespace key gives it is compared with the one sent (by the controller, in constant
//! time: [`gust_controller::Controller::verify_signature`]). The access key id is the
//! namespace key's uuid, the secret access key the key itself.
//!
//! The canonical request: the method; the path as it arrived (already percent-encoded),
//! empty and dot segments removed, then percent-encoded again (every service but S3 signs
//! the path encoded twice, so a `%3A` of an ARN is signed as `%253A`); the query pairs,
//! each name and value encoded once with AWS's unreserved set, sorted; each signed header
//! as `name:value` with runs of spaces trimmed and repeats joined by `,`; the list of signed
//! headers; the hex SHA-256 of the body (or `X-Amz-Content-SHA256`, which must then be that
//! hash: an unsigned payload is refused).
//!
//! **Refused:** no `Authorization` header; anything but `AWS4-HMAC-SHA256`; a scope other
//! than `<date>/<any region>/<the API's service>/aws4_request` (`lambda`, `states`); `host`
//! or `x-amz-date` unsigned; an `X-Amz-Date` more than [`MAX_SKEW`] from the server's clock;
//! an unknown key id; a signature the key does not give.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, Uri, header};
use gust_controller::{Identity, SignatureCheck};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::error::LambdaError;
use crate::Gateway;

/// How far a request's `X-Amz-Date` may be from the server's clock (AWS's 15 minutes).
pub(crate) const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The one algorithm accepted.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name Lambda's clients sign for.
const SERVICE: &str = "lambda";
/// The service name Step Functions' clients sign for.
pub(crate) const STATES: &str = "states";

/// What an `Authorization: AWS4-HMAC-SHA256 ...` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credential<'a> {
    pub(crate) access_key: &'a str,
    /// `yyyymmdd`.
    pub(crate) date: &'a str,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
    /// Lower-case names, in the order given.
    pub(crate) signed_headers: Vec<&'a str>,
    pub(crate) signature: Vec<u8>,
}

/// Reads an `Authorization` header's value, signed for service `expected`.
pub(crate) fn parse_authorization<'a>(
    value: &'a str,
    expected: &str,
) -> Result<Credential<'a>, LambdaError> {
    let incomplete = |what: &str| {
        LambdaError::incomplete_signature(format!(
            "Authorization header requires '{what}' parameter. Authorization={value}"
        ))
    };
    let Some(rest) = value.strip_prefix(ALGORITHM) else {
        return Err(LambdaError::incomplete_signature(format!(
            "Gust's AWS APIs take AWS Signature Version 4 ({ALGORITHM}) only; the Authorization header holds something else."
        )));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or_else(|| incomplete("Credential"))?;
    let signed = signed.ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = scope[..] else {
        return Err(LambdaError::incomplete_signature(format!(
            "Credential should be <access key id>/<date>/<region>/<service>/aws4_request, got '{credential}'."
        )));
    };
    if terminator != "aws4_request" {
        return Err(LambdaError::invalid_signature(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    if service != expected {
        return Err(LambdaError::invalid_signature(format!(
            "Credential should be scoped to correct service: '{expected}'."
        )));
    }
    let signature = hex::decode(signature)
        .ok()
        .filter(|s| s.len() == 32)
        .ok_or_else(|| {
            LambdaError::incomplete_signature("Signature should be 64 hexadecimal digits.")
        })?;
    Ok(Credential {
        access_key,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// The Unix time of an `X-Amz-Date` (`20150830T123600Z`).
pub(crate) fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let month = time::Month::try_from(num(4..6)? as u8).ok()?;
    let date = time::Date::from_calendar_date(num(0..4)? as i32, month, num(6..8)? as u8).ok()?;
    let t = time::Time::from_hms(num(9..11)? as u8, num(11..13)? as u8, num(13..15)? as u8).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// `t` (Unix seconds) as an `X-Amz-Date`.
pub(crate) fn format_amz_date(t: i64) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_default()
}

/// Whether `b` stays as it is in a SigV4 encoding (RFC 3986's unreserved characters).
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Percent-encodes every byte of `s` but the unreserved ones (and `/` when `keep_slash`),
/// with upper-case hex digits.
fn encode(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical path of `raw` (the path as it arrived): empty and `.` segments removed, `..`
/// applied, then encoded again.
pub(crate) fn canonical_path(raw: &str) -> String {
    if raw.is_empty() {
        return "/".to_string();
    }
    let mut kept: Vec<&str> = Vec::new();
    for segment in raw.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let mut path = String::new();
    if raw.starts_with('/') {
        path.push('/');
    }
    path.push_str(&kept.join("/"));
    if raw.ends_with('/') && !kept.is_empty() {
        path.push('/');
    }
    encode(path.as_bytes(), true)
}

/// The canonical query of `raw` (the query string as it arrived, without `?`): each name and
/// value decoded and encoded again, the pairs sorted by name, then value.
pub(crate) fn canonical_query(raw: &str) -> String {
    if raw.is_empty() {
        return String::new();
    }
    let again = |s: &str| {
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(s).collect();
        encode(&decoded, false)
    };
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (again(k), again(v))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value with its ends trimmed and inner runs of spaces made one.
fn trim_all(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The parts of a request that its signature covers.
#[derive(Debug)]
pub(crate) struct SignedRequest<'a> {
    pub(crate) method: &'a str,
    /// The path as it arrived, still percent-encoded.
    pub(crate) raw_path: &'a str,
    pub(crate) raw_query: &'a str,
    /// `(lower-case name, value)` of each signed header, in the order of `SignedHeaders`;
    /// a repeated header once, its values joined by `,`.
    pub(crate) headers: Vec<(&'a str, String)>,
    /// Hex SHA-256 of the body (or the `X-Amz-Content-SHA256` that equals it).
    pub(crate) payload_hash: String,
}

impl SignedRequest<'_> {
    /// The canonical request, as botocore's `SigV4Auth.canonical_request` builds it.
    pub(crate) fn canonical(&self) -> String {
        let mut headers: Vec<&(&str, String)> = self.headers.iter().collect();
        headers.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = String::new();
        out.push_str(self.method);
        out.push('\n');
        out.push_str(&canonical_path(self.raw_path));
        out.push('\n');
        out.push_str(&canonical_query(self.raw_query));
        out.push('\n');
        for (name, value) in &headers {
            out.push_str(name);
            out.push(':');
            out.push_str(value);
            out.push('\n');
        }
        out.push('\n');
        let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        out.push_str(&names.join(";"));
        out.push('\n');
        out.push_str(&self.payload_hash);
        out
    }
}

/// The string to sign for `canonical`, signed at `amz_date` with the scope of `cred`.
pub(crate) fn string_to_sign(cred: &Credential<'_>, amz_date: &str, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
        cred.date,
        cred.region,
        cred.service,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// The signature `secret` gives `string_to_sign` in the scope of `cred`.
pub(crate) fn signature(secret: &[u8], cred: &Credential<'_>, string_to_sign: &str) -> Vec<u8> {
    let mut key = b"AWS4".to_vec();
    key.extend_from_slice(secret);
    let key = hmac(&key, cred.date.as_bytes());
    let key = hmac(&key, cred.region.as_bytes());
    let key = hmac(&key, cred.service.as_bytes());
    let key = hmac(&key, b"aws4_request");
    hmac(&key, string_to_sign.as_bytes())
}

/// A request whose SigV4 signature was verified: who signed it, in which region, and the
/// body it covers.
#[derive(Debug)]
pub(crate) struct Signed {
    pub(crate) who: Identity,
    pub(crate) region: String,
    pub(crate) body: Bytes,
}

impl FromRequest<Gateway> for Signed {
    type Rejection = LambdaError;

    async fn from_request(req: Request, gw: &Gateway) -> Result<Self, LambdaError> {
        Signed::verify(req, gw, SERVICE).await
    }
}

impl Signed {
    /// Verifies `req`, signed for `service`, and reads its body (bounded by the route's
    /// `DefaultBodyLimit`).
    pub(crate) async fn verify(
        req: Request,
        gw: &Gateway,
        service: &str,
    ) -> Result<Self, LambdaError> {
        let method = req.method().clone();
        let uri = req.uri().clone();
        let headers = req.headers().clone();
        // The header, the date and the key id are checked before the body is read: an
        // unsigned request or one of an unknown key costs nothing.
        let value = match headers.get(header::AUTHORIZATION) {
            None => return Err(LambdaError::missing_authentication()),
            Some(v) => v.to_str().map_err(|_| {
                LambdaError::incomplete_signature("The Authorization header is not text.")
            })?,
        };
        let cred = parse_authorization(value, service)?;
        let amz_date = check_date(&headers, &cred, now())?;
        check_amz_headers_signed(&headers, &cred)?;
        // The body (up to 70 MB for code) is read only for a key that exists.
        if !gw.controller.is_key(cred.access_key).await? {
            return Err(LambdaError::unrecognized_client());
        }
        let body = Bytes::from_request(req, gw)
            .await
            .map_err(LambdaError::from_body_rejection)?;
        let signed = signed_request(&method, &uri, &headers, &cred, &body)?;
        let sts = string_to_sign(&cred, amz_date, &signed.canonical());
        let check = gw
            .controller
            .verify_signature(cred.access_key, &cred.signature, |secret| {
                signature(secret, &cred, &sts)
            })
            .await?;
        match check {
            SignatureCheck::Verified(who) => Ok(Signed {
                who,
                region: cred.region.to_string(),
                body,
            }),
            SignatureCheck::UnknownKey => Err(LambdaError::unrecognized_client()),
            SignatureCheck::Mismatch => Err(LambdaError::invalid_signature(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
            )
            .refused()),
        }
    }
}

/// The server's clock, in Unix seconds.
fn now() -> i64 {
    (gust_model::time::now_ms() / 1000) as i64
}

/// The request's `X-Amz-Date`, checked: signed, of the credential's day, within
/// [`MAX_SKEW`] of `now`.
fn check_date<'h>(
    headers: &'h HeaderMap,
    cred: &Credential<'_>,
    now: i64,
) -> Result<&'h str, LambdaError> {
    if !cred.signed_headers.contains(&"x-amz-date") || !cred.signed_headers.contains(&"host") {
        return Err(LambdaError::invalid_signature(
            "The signed headers must include host and x-amz-date.",
        ));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| LambdaError::incomplete_signature("The X-Amz-Date header is missing."))?;
    let t = parse_amz_date(amz_date).ok_or_else(|| {
        LambdaError::incomplete_signature(format!(
            "X-Amz-Date must be of the form yyyyMMdd'T'HHmmss'Z', got '{amz_date}'."
        ))
    })?;
    if !amz_date.starts_with(cred.date) {
        return Err(LambdaError::invalid_signature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'.",
            cred.date,
            &amz_date[..8]
        )));
    }
    let skew = MAX_SKEW.as_secs() as i64;
    if t < now - skew {
        return Err(LambdaError::invalid_signature(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            format_amz_date(now - skew),
            format_amz_date(now)
        ))
        .refused());
    }
    if t > now + skew {
        return Err(LambdaError::invalid_signature(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            format_amz_date(now + skew),
            format_amz_date(now)
        ))
        .refused());
    }
    Ok(amz_date)
}

/// Every `X-Amz-*` header of the request is signed (as AWS requires): one added on the way,
/// such as an `X-Amz-Invocation-Type` turning a dry run into a run, is refused.
fn check_amz_headers_signed(headers: &HeaderMap, cred: &Credential<'_>) -> Result<(), LambdaError> {
    for name in headers.keys() {
        let name = name.as_str();
        if name.starts_with("x-amz-") && !cred.signed_headers.contains(&name) {
            return Err(LambdaError::invalid_signature(format!(
                "The header '{name}' is not among the signed headers; every x-amz-* header must be signed."
            ))
            .refused());
        }
    }
    Ok(())
}

/// The signed parts of a request as it arrived.
fn signed_request<'a>(
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    cred: &Credential<'a>,
    body: &[u8],
) -> Result<SignedRequest<'a>, LambdaError> {
    let body_hash = hex::encode(Sha256::digest(body));
    let payload_hash = match headers.get("x-amz-content-sha256") {
        None => body_hash,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(body_hash.as_bytes()) => {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        }
        Some(_) => {
            return Err(LambdaError::invalid_signature(
                "X-Amz-Content-SHA256 must be the SHA-256 of the body: Gust's AWS APIs sign every payload.",
            ));
        }
    };
    let mut signed = Vec::with_capacity(cred.signed_headers.len());
    for &name in &cred.signed_headers {
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(LambdaError::incomplete_signature(format!(
                "SignedHeaders must name lower-case headers separated by ';', got '{name}'."
            )));
        }
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| trim_all(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let value = if !values.is_empty() {
            values.join(",")
        } else if name == "host" {
            // HTTP/2 carries the host in the request's authority, not in a header.
            uri.authority()
                .map(|a| a.as_str().to_string())
                .ok_or_else(|| LambdaError::incomplete_signature("The request names no host."))?
        } else {
            return Err(LambdaError::invalid_signature(format!(
                "The signed header '{name}' is not in the request."
            )));
        };
        signed.push((name, value));
    }
    Ok(SignedRequest {
        method: method.as_str(),
        raw_path: uri.path(),
        raw_query: uri.query().unwrap_or(""),
        headers: signed,
        payload_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn credential(service: &'static str) -> Credential<'static> {
        Credential {
            access_key: "AKIDEXAMPLE",
            date: "20150830",
            region: "us-east-1",
            service,
            signed_headers: vec!["host", "x-amz-date"],
            signature: Vec::new(),
        }
    }

    /// AWS's SigV4 test suite, `get-vanilla` (aws-c-auth's `tests/aws-sig-v4-test-suite`,
    /// as awslabs/aws-crt-python's `test/test_auth.py` checks it): `GET /` to
    /// `example.amazonaws.com` at 20150830T123600Z, service `service`, region `us-east-1`.
    #[test]
    fn the_get_vanilla_vector_signs_as_aws_publishes() {
        let req = SignedRequest {
            method: "GET",
            raw_path: "/",
            raw_query: "",
            headers: vec![
                ("host", "example.amazonaws.com".into()),
                ("x-amz-date", "20150830T123600Z".into()),
            ],
            payload_hash: EMPTY_SHA256.into(),
        };
        let canonical = req.canonical();
        assert_eq!(
            canonical,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}"
            )
        );
        let cred = credential("service");
        let sts = string_to_sign(&cred, "20150830T123600Z", &canonical);
        assert_eq!(
            hex::encode(signature(SECRET.as_bytes(), &cred, &sts)),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        // The whole header as the suite gives it reads back to the same parts.
        let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let err = parse_authorization(header, SERVICE).unwrap_err();
        assert!(err.message.contains("'lambda'"), "{}", err.message);
    }

    /// The same suite's body case, as aws-crt-python checks it: `POST /` with body `hello`,
    /// `X-Amz-Content-SHA256` and `Content-Length` signed.
    #[test]
    fn a_signed_body_vector_signs_as_aws_publishes() {
        let hash = hex::encode(Sha256::digest(b"hello"));
        assert_eq!(
            hash,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let req = SignedRequest {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: vec![
                ("content-length", "5".into()),
                ("host", "example.amazonaws.com".into()),
                ("x-amz-content-sha256", hash.clone()),
                ("x-amz-date", "20150830T123600Z".into()),
            ],
            payload_hash: hash,
        };
        let cred = credential("service");
        let sts = string_to_sign(&cred, "20150830T123600Z", &req.canonical());
        assert_eq!(
            hex::encode(signature(SECRET.as_bytes(), &cred, &sts)),
            "8e17c5b22b7bb28da47f44b08691c087a0993d0965bfab053376360790d44d6c"
        );
    }

    #[test]
    fn paths_are_encoded_again_and_queries_sorted() {
        // An ARN arrives with `%3A`; botocore signs it encoded twice.
        assert_eq!(
            canonical_path(
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/invocations"
            ),
            "/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-east-1%253A000000000000%253Afunction%253Af/invocations"
        );
        assert_eq!(canonical_path(""), "/");
        assert_eq!(canonical_path("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(canonical_path("/~x y"), "/~x%20y");
        assert_eq!(
            canonical_query("MaxItems=2&Marker=a%2Fb&FunctionVersion=ALL"),
            "FunctionVersion=ALL&Marker=a%2Fb&MaxItems=2"
        );
        assert_eq!(canonical_query("b=2&a=1&a=0&c"), "a=0&a=1&b=2&c=");
        assert_eq!(
            canonical_query("Qualifier=%24LATEST"),
            "Qualifier=%24LATEST"
        );
        assert_eq!(canonical_query(""), "");
        assert_eq!(trim_all("  a   b  c "), "a b c");
    }

    #[test]
    fn authorization_headers_are_read_or_refused() {
        let ok = "AWS4-HMAC-SHA256 Credential=0f6b/20261204/eu-west-3/lambda/aws4_request, SignedHeaders=host;x-amz-date;x-amz-log-type, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let c = parse_authorization(ok, SERVICE).unwrap();
        assert_eq!(c.access_key, "0f6b");
        assert_eq!(c.region, "eu-west-3");
        assert_eq!(c.signed_headers, ["host", "x-amz-date", "x-amz-log-type"]);
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-date", "20261204T123405Z".parse().unwrap());
        headers.insert("x-amz-log-type", "Tail".parse().unwrap());
        assert!(check_amz_headers_signed(&headers, &c).is_ok());
        headers.insert("x-amz-invocation-type", "Event".parse().unwrap());
        assert!(check_amz_headers_signed(&headers, &c).is_err());
        assert_eq!(c.signature.len(), 32);
        for bad in [
            "Basic Z3Vlc3Q6a2V5",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=k/20261204/us-east-1/lambda/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=k/20261204/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=xyz",
            "AWS4-HMAC-SHA256 Credential=k/20261204/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            "AWS4-HMAC-SHA256 Credential=k/20261204/us-east-1/lambda, SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ] {
            assert!(parse_authorization(bad, SERVICE).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_are_read_and_skew_is_bounded() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(t, 1_440_938_160);
        assert_eq!(format_amz_date(t), "20150830T123600Z");
        for bad in [
            "20150830T123600",
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
            "2015083aT123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let cred = Credential {
            service: "lambda",
            ..credential("lambda")
        };
        assert!(check_date(&headers, &cred, t + 14 * 60).is_ok());
        assert!(check_date(&headers, &cred, t - 14 * 60).is_ok());
        let late = check_date(&headers, &cred, t + 16 * 60).unwrap_err();
        assert!(
            late.message.starts_with("Signature expired"),
            "{}",
            late.message
        );
        assert!(late.refused);
        assert!(check_date(&headers, &cred, t - 16 * 60).is_err());
        let other_day = Credential {
            date: "20150831",
            ..credential("lambda")
        };
        assert!(check_date(&headers, &other_day, t).is_err());
        let unsigned = Credential {
            signed_headers: vec!["host"],
            ..credential("lambda")
        };
        assert!(check_date(&headers, &unsigned, t).is_err());
    }
}
