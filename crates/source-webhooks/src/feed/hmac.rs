//! The `hmac` feed: any sender that puts an HMAC of the raw body in a header (Shopify,
//! GitLab-style tools, in-house senders). Which header, which hash, how the signature is
//! written and what precedes it are parameters; there is no timestamp, so no replay window:
//! give an `idHeader` where the sender has one, so that a replayed delivery fires nothing new.
//!
//! Payload: a JSON object's fields; other JSON under `body`; a form's fields as strings; other
//! UTF-8 text under `body`; anything else as base64 under `bodyBase64`; plus
//! `__webhook: {source: "hmac", id}` (`id` the `idHeader`'s value, which is also the key).

use gust_source::{FeedDoc, Hook, HookError, HookRequest};
use serde_json::{Map, Value};

use super::{Feed, invalid_config, unauthorized};
use crate::params::{self, Keys};
use crate::payload;
use crate::verify::{self, Algorithm, Encoding};

pub const FEED: Feed = Feed {
    doc: FeedDoc {
        name: "hmac",
        description: "Fires on a request whose header holds an HMAC of its body",
        parameters: r#"[{"name":"secret","required":true,"description":"The shared secret (its UTF-8 bytes are the key), or a list of up to 5 while it is rotated"},{"name":"header","required":false,"description":"The header holding the signature, default x-signature"},{"name":"algorithm","required":false,"description":"sha256 (default), sha512 or sha1"},{"name":"encoding","required":false,"description":"How the signature is written: hex (default) or base64"},{"name":"prefix","required":false,"description":"Text before the signature in the header, such as sha256=; default none"},{"name":"idHeader","required":false,"description":"A header whose value identifies the delivery: a second request with the same value fires nothing new"}]"#,
    },
    params: PARAMS,
    keep: configure,
    receive,
};

const PARAMS: &[&str] = &[
    "secret",
    "header",
    "algorithm",
    "encoding",
    "prefix",
    "idHeader",
];

/// The parameters of how a body is signed, shared with the cloudevents feed.
const SIGNING_PARAMS: [&str; 5] = ["secret", "header", "algorithm", "encoding", "prefix"];

const ALGORITHMS: [(&str, Algorithm); 3] = [
    ("sha256", Algorithm::Sha256),
    ("sha512", Algorithm::Sha512),
    ("sha1", Algorithm::Sha1),
];

const ENCODINGS: [(&str, Encoding); 2] = [("hex", Encoding::Hex), ("base64", Encoding::Base64)];

/// How a sender signs a body: an HMAC of it in a header.
pub struct Signing {
    secrets: Keys,
    header: String,
    algorithm: (&'static str, Algorithm),
    encoding: (&'static str, Encoding),
    prefix: String,
}

impl Signing {
    /// The signing parameters; `None` when there is no `secret` and no other of them.
    pub fn parse(params: &Map<String, Value>) -> Result<Option<Self>, String> {
        let Some(secrets) = params::keys(params, "secret", params::utf8)? else {
            let given = SIGNING_PARAMS[1..]
                .iter()
                .find(|p| params.get(**p).is_some_and(|v| !v.is_null()));
            return match given {
                Some(p) => Err(format!("parameter '{p}' needs parameter 'secret'")),
                None => Ok(None),
            };
        };
        Ok(Some(Signing {
            secrets,
            header: params::header(params, "header")?.unwrap_or_else(|| "x-signature".into()),
            algorithm: params::choice(params, "algorithm", &ALGORITHMS)?,
            encoding: params::choice(params, "encoding", &ENCODINGS)?,
            prefix: params::text(params, "prefix")?.unwrap_or_default(),
        }))
    }

    /// Writes the signing parameters, defaults filled in, into a configuration to keep.
    pub fn keep(&self, kept: &mut Map<String, Value>) {
        kept.insert("header".into(), self.header.clone().into());
        kept.insert("algorithm".into(), self.algorithm.0.into());
        kept.insert("encoding".into(), self.encoding.0.into());
        kept.insert("prefix".into(), self.prefix.clone().into());
    }

    /// Checks the signature header against the raw body.
    pub fn check(&self, request: &HookRequest) -> Result<(), HookError> {
        let header = &self.header;
        let value = request
            .header(header)
            .ok_or_else(|| unauthorized(format!("missing {header} header")))?;
        let signature = value.strip_prefix(self.prefix.as_str()).ok_or_else(|| {
            unauthorized(format!("{header} does not start with '{}'", self.prefix))
        })?;
        let signature = verify::decode(self.encoding.1, signature).ok_or_else(|| {
            unauthorized(format!(
                "{header} is not a signature in {}",
                self.encoding.0
            ))
        })?;
        if verify::hmac_matches(
            self.algorithm.1,
            &self.secrets,
            &[&request.body],
            &signature,
        ) {
            Ok(())
        } else {
            Err(unauthorized(format!(
                "{header} does not match the body: check the secret, algorithm and encoding"
            )))
        }
    }
}

struct Config {
    signing: Signing,
    id_header: Option<String>,
}

impl Config {
    fn parse(params: &Map<String, Value>) -> Result<Self, String> {
        let missing = || "missing required parameter 'secret'".to_string();
        if params.get("secret").is_none_or(Value::is_null) {
            return Err(missing());
        }
        let signing = Signing::parse(params)?.ok_or_else(missing)?;
        let id_header = params::header(params, "idHeader")?;
        Ok(Config { signing, id_header })
    }
}

fn configure(params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let config = Config::parse(params)?;
    let mut kept = params.clone();
    config.signing.keep(&mut kept);
    if let Some(id_header) = config.id_header {
        kept.insert("idHeader".into(), id_header.into());
    }
    Ok(kept)
}

fn receive(config: &Map<String, Value>, request: &HookRequest) -> Result<Hook, HookError> {
    let config = Config::parse(config).map_err(invalid_config)?;
    config.signing.check(request)?;
    let id = config
        .id_header
        .as_deref()
        .and_then(|h| request.header(h))
        .map(String::from);
    let meta = payload::meta("hmac", [("id", id.clone().map(Value::from))]);
    Ok(payload::fire(fields(request), meta, id))
}

/// The payload's fields from the body, whatever it is.
fn fields(request: &HookRequest) -> Map<String, Value> {
    if payload::is_form(request) {
        return payload::form(&request.body);
    }
    match gust_source::body_value(&request.body) {
        Some(value) => payload::fields(value),
        None => Map::from_iter([(
            "bodyBase64".to_string(),
            Value::from(verify::base64_text(&request.body)),
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Expect, Headers, check, outcome, payload, request};
    use serde_json::json;

    const SECRET: &str = "a shared secret";
    const BODY: &[u8] = br#"{"order":1}"#;

    fn hex_sig(algorithm: Algorithm, body: &[u8]) -> String {
        hex::encode(verify::hmac(algorithm, SECRET.as_bytes(), &[body]))
    }

    fn b64_sig(algorithm: Algorithm, body: &[u8]) -> String {
        verify::base64_text(&verify::hmac(algorithm, SECRET.as_bytes(), &[body]))
    }

    #[test]
    fn requests() {
        let base = json!({ "secret": SECRET });
        let shopify =
            json!({ "secret": SECRET, "header": "X-Shopify-Hmac-Sha256", "encoding": "base64" });
        let prefixed = json!({ "secret": SECRET, "header": "x-hub-signature", "algorithm": "sha1", "prefix": "sha1=" });
        let sha512 = json!({ "secret": SECRET, "algorithm": "sha512" });
        let rotated = json!({ "secret": ["old secret", SECRET] });
        let with_id = json!({ "secret": SECRET, "idHeader": "X-Delivery" });
        let s256 = hex_sig(Algorithm::Sha256, BODY);
        let s256_b64 = b64_sig(Algorithm::Sha256, BODY);
        let s1 = format!("sha1={}", hex_sig(Algorithm::Sha1, BODY));
        let s512 = hex_sig(Algorithm::Sha512, BODY);
        let wrong = hex::encode(verify::hmac(Algorithm::Sha256, b"other", &[BODY]));
        #[rustfmt::skip]
        let cases: Vec<(&str, &Value, Headers, Expect)> = vec![
            ("default header, hex", &base, vec![("x-signature", &s256)], Expect::Fire(None)),
            ("base64 in a named header", &shopify, vec![("x-shopify-hmac-sha256", &s256_b64)],
                Expect::Fire(None)),
            ("base64 where hex is expected", &base, vec![("x-signature", &s256_b64)],
                Expect::Unauthorized("x-signature is not a signature in hex")),
            ("sha1 with a prefix", &prefixed, vec![("x-hub-signature", &s1)], Expect::Fire(None)),
            ("prefix missing", &prefixed, vec![("x-hub-signature", &s1[5..])],
                Expect::Unauthorized("does not start with 'sha1='")),
            ("sha512", &sha512, vec![("x-signature", &s512)], Expect::Fire(None)),
            ("sha256 where sha512 is expected", &sha512, vec![("x-signature", &s256)],
                Expect::Unauthorized("does not match the body")),
            ("rotation: second secret", &rotated, vec![("x-signature", &s256)], Expect::Fire(None)),
            ("wrong secret", &base, vec![("x-signature", &wrong)],
                Expect::Unauthorized("x-signature does not match the body")),
            ("no header", &base, vec![("x-other", &s256)],
                Expect::Unauthorized("missing x-signature header")),
            ("delivery id", &with_id, vec![("x-signature", &s256), ("x-delivery", "d-1")],
                Expect::Fire(Some("d-1"))),
            ("no delivery id", &with_id, vec![("x-signature", &s256)], Expect::Fire(None)),
        ];
        for (case, params, headers, expect) in cases {
            check(case, "hmac", params, &request(&headers, BODY, 0), expect);
        }
    }

    #[test]
    fn any_body_becomes_a_payload() {
        let form = "application/x-www-form-urlencoded";
        #[rustfmt::skip]
        let cases: [(&[u8], Option<&str>, Value); 5] = [
            (BODY, None, json!({"order": 1})),
            (b"[1]", None, json!({"body": [1]})),
            (b"a=1&b=two", Some(form), json!({"a": "1", "b": "two"})),
            (b"plain text", Some("text/plain"), json!({"body": "plain text"})),
            (&[0xff, 0x00], Some("application/octet-stream"), json!({"bodyBase64": "/wA="})),
        ];
        for (body, content_type, want) in cases {
            let sig = hex_sig(Algorithm::Sha256, body);
            let mut headers = vec![("x-signature", sig.as_str()), ("x-delivery", "d-2")];
            headers.extend(content_type.map(|ct| ("content-type", ct)));
            let params = json!({ "secret": SECRET, "idHeader": "x-delivery" });
            let hook = outcome(
                "body",
                "hmac",
                &params,
                &request(&headers, body, 0),
                Expect::Fire(Some("d-2")),
            );
            let mut want = want;
            want["__webhook"] = json!({"source": "hmac", "id": "d-2"});
            assert_eq!(payload(hook), want);
        }
    }
}
