//! The `standard` feed: a sender following the Standard Webhooks specification (and Svix,
//! whose `svix-*` headers are read when the `webhook-*` ones are absent).
//!
//! The signed content is `<webhook-id>.<webhook-timestamp>.<raw body>`; `webhook-signature`
//! is a space-separated list of `<version>,<base64>`, several while the sender rotates its
//! key, and any one that verifies passes: `v1` an HMAC-SHA256 under the `secret` (`whsec_` +
//! base64 of the key bytes), `v1a` an Ed25519 signature by the `publicKey` (`whpk_` + base64).
//! A version the trigger has no key for is skipped. `webhook-timestamp` must be within
//! `tolerance` of the arrival either way.
//!
//! Payload: the body's JSON fields plus `__webhook: {source: "standard", id, timestamp}`;
//! the key is `webhook-id`, which the sender's retries keep.

use gust_source::{FeedDoc, Hook, HookError, HookRequest};
use serde_json::{Map, Value};

use super::{Feed, invalid_config, unauthorized};
use crate::params::{self, Keys};
use crate::payload;
use crate::verify::{self, Algorithm, Tolerance};

pub const FEED: Feed = Feed {
    doc: FeedDoc {
        name: "standard",
        description: "Fires on a webhook signed as the Standard Webhooks specification says (webhook-id, webhook-timestamp, webhook-signature)",
        parameters: r#"[{"name":"secret","required":false,"description":"The endpoint's signing secret for v1 (HMAC) signatures: whsec_ and base64, or a list of up to 5 while it is rotated; this or publicKey is required"},{"name":"publicKey","required":false,"description":"The sender's Ed25519 public key for v1a signatures: whpk_ and base64, or a list of up to 5"},{"name":"tolerance","required":false,"description":"How far in seconds webhook-timestamp may be from the arrival, either way: 0 to 86400, default 300; 0 turns the check off"}]"#,
    },
    params: PARAMS,
    keep: configure,
    receive,
};

const PARAMS: &[&str] = &["secret", "publicKey", "tolerance"];

/// The reference libraries' tolerance.
const DEFAULT_TOLERANCE: u64 = 300;

struct Config {
    /// For `v1`.
    secrets: Option<Keys>,
    /// For `v1a`.
    public_keys: Option<Keys>,
    tolerance: Tolerance,
}

impl Config {
    fn parse(params: &Map<String, Value>) -> Result<Self, String> {
        let secrets = params::keys(params, "secret", secret)?;
        let public_keys = params::keys(params, "publicKey", public_key)?;
        if secrets.is_none() && public_keys.is_none() {
            return Err(
                "missing required parameter 'secret' (or 'publicKey' for v1a signatures)".into(),
            );
        }
        Ok(Config {
            secrets,
            public_keys,
            tolerance: Tolerance::from_seconds(tolerance(params)?),
        })
    }
}

/// A `v1` secret's key bytes: the base64 after an optional `whsec_`.
fn secret(text: &str) -> Result<Vec<u8>, &'static str> {
    let text = text.strip_prefix("whsec_").unwrap_or(text);
    verify::base64(text)
        .filter(|key| !key.is_empty())
        .ok_or("must be base64, optionally prefixed whsec_")
}

/// A `v1a` public key's bytes: the base64 after an optional `whpk_`, a valid Ed25519 key.
fn public_key(text: &str) -> Result<Vec<u8>, &'static str> {
    let text = text.strip_prefix("whpk_").unwrap_or(text);
    verify::base64(text)
        .filter(|key| verify::ed25519_key(key).is_some())
        .ok_or("must be a 32-byte Ed25519 public key in base64, optionally prefixed whpk_")
}

fn tolerance(params: &Map<String, Value>) -> Result<u64, String> {
    gust_source::integer(params, "tolerance", 0..=86_400, DEFAULT_TOLERANCE)
}

fn configure(params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    Config::parse(params)?;
    let mut kept = params.clone();
    kept.insert("tolerance".into(), tolerance(params)?.into());
    Ok(kept)
}

fn receive(config: &Map<String, Value>, request: &HookRequest) -> Result<Hook, HookError> {
    let config = Config::parse(config).map_err(invalid_config)?;
    let headers = Headers::of(request)?;
    let timestamp = check_signature(&config, &headers, &request.body, request.now_ms)?;
    let body = payload::json(&request.body)?;
    let meta = payload::meta(
        "standard",
        [
            ("id", Some(Value::from(headers.id))),
            ("timestamp", Some(Value::from(timestamp))),
        ],
    );
    Ok(payload::fire(
        payload::fields(body),
        meta,
        Some(headers.id.to_string()),
    ))
}

/// The three headers of a Standard Webhooks request.
struct Headers<'a> {
    id: &'a str,
    timestamp: &'a str,
    signature: &'a str,
}

impl<'a> Headers<'a> {
    fn of(request: &'a HookRequest) -> Result<Self, HookError> {
        let header = |standard: &'static str, svix: &str| {
            request
                .header(standard)
                .or_else(|| request.header(svix))
                .ok_or_else(|| unauthorized(format!("missing {standard} header")))
        };
        Ok(Headers {
            id: header("webhook-id", "svix-id")?,
            timestamp: header("webhook-timestamp", "svix-timestamp")?,
            signature: header("webhook-signature", "svix-signature")?,
        })
    }
}

/// Checks the timestamp against the tolerance, then the signatures; the timestamp.
fn check_signature(
    config: &Config,
    headers: &Headers,
    body: &[u8],
    now_ms: u64,
) -> Result<u64, HookError> {
    let timestamp = verify::unix_seconds(headers.timestamp)
        .ok_or_else(|| unauthorized("webhook-timestamp is not a Unix time in seconds"))?;
    verify::fresh(now_ms, timestamp, config.tolerance).map_err(|skew| {
        unauthorized(format!(
            "webhook-timestamp is {skew}, outside the tolerance of {}",
            config.tolerance
        ))
    })?;
    let parts: [&[u8]; 5] = [
        headers.id.as_bytes(),
        b".",
        headers.timestamp.as_bytes(),
        b".",
        body,
    ];
    let mut content = None; // built once, for the first v1a
    let mut checked = false;
    for item in headers.signature.split_ascii_whitespace() {
        let Some((version, signature)) = item.split_once(',') else {
            continue;
        };
        let passes = match (version, &config.secrets, &config.public_keys) {
            ("v1", Some(secrets), _) => {
                checked = true;
                verify::base64(signature).is_some_and(|sig| {
                    verify::hmac_matches(Algorithm::Sha256, secrets, &parts, &sig)
                })
            }
            ("v1a", _, Some(public_keys)) => {
                checked = true;
                let content: &Vec<u8> = content.get_or_insert_with(|| parts.concat());
                verify::base64(signature)
                    .is_some_and(|sig| verify::ed25519_matches(public_keys, content, &sig))
            }
            _ => false,
        };
        if passes {
            return Ok(timestamp);
        }
    }
    if checked {
        return Err(unauthorized(
            "no signature in webhook-signature matches: check the endpoint's secret or key",
        ));
    }
    let versions = match (&config.secrets, &config.public_keys) {
        (Some(_), Some(_)) => "v1 or v1a",
        (Some(_), None) => "v1",
        _ => "v1a",
    };
    Err(unauthorized(format!(
        "webhook-signature has no {versions} signature (the versions this trigger has keys for)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Expect, OwnedHeaders, check, outcome, payload, request};
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::json;

    /// The Standard Webhooks specification's example.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn v1(secret: &str, id: &str, t: u64, body: &[u8]) -> String {
        let key = super::secret(secret).unwrap();
        let t = t.to_string();
        let tag = verify::hmac(
            Algorithm::Sha256,
            &key,
            &[id.as_bytes(), b".", t.as_bytes(), b".", body],
        );
        format!("v1,{}", verify::base64_text(&tag))
    }

    fn signing_key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn whpk() -> String {
        format!(
            "whpk_{}",
            verify::base64_text(signing_key().verifying_key().as_bytes())
        )
    }

    fn v1a(id: &str, t: u64, body: &[u8]) -> String {
        let content = [id.as_bytes(), b".", t.to_string().as_bytes(), b".", body].concat();
        format!(
            "v1a,{}",
            verify::base64_text(&signing_key().sign(&content).to_bytes())
        )
    }

    #[test]
    fn the_specifications_vector() {
        assert_eq!(v1(SECRET, ID, TIMESTAMP, BODY), SIGNATURE);
        let t = TIMESTAMP.to_string();
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", &t),
            ("webhook-signature", SIGNATURE),
        ];
        let hook = outcome(
            "vector",
            "standard",
            &json!({"secret": SECRET}),
            &request(&headers, BODY, TIMESTAMP),
            Expect::Fire(Some(ID)),
        );
        assert_eq!(
            payload(hook),
            json!({
                "test": 2432232314u64,
                "__webhook": {"source": "standard", "id": ID, "timestamp": TIMESTAMP},
            })
        );
    }

    #[test]
    fn requests() {
        let at = |t: u64| t.to_string();
        let now = TIMESTAMP;
        let other = v1("whsec_b3RoZXIgc2VjcmV0", ID, now, BODY);
        #[rustfmt::skip]
        let cases: Vec<(&str, OwnedHeaders, Expect)> = vec![
            ("signed", vec![("webhook-id", ID.into()), ("webhook-timestamp", at(now)),
                ("webhook-signature", SIGNATURE.into())], Expect::Fire(Some(ID))),
            ("svix headers", vec![("svix-id", ID.into()), ("svix-timestamp", at(now)),
                ("svix-signature", SIGNATURE.into())], Expect::Fire(Some(ID))),
            ("rotation: second matches", vec![("webhook-id", ID.into()), ("webhook-timestamp", at(now)),
                ("webhook-signature", format!("{other} {SIGNATURE}"))], Expect::Fire(Some(ID))),
            ("unknown versions skipped", vec![("webhook-id", ID.into()), ("webhook-timestamp", at(now)),
                ("webhook-signature", format!("v2,AAAA v1a,AAAA junk {SIGNATURE}"))],
                Expect::Fire(Some(ID))),
            ("only an unkeyed version", vec![("webhook-id", ID.into()), ("webhook-timestamp", at(now)),
                ("webhook-signature", v1a(ID, now, BODY))],
                Expect::Unauthorized("webhook-signature has no v1 signature")),
            ("other secret", vec![("webhook-id", ID.into()), ("webhook-timestamp", at(now)),
                ("webhook-signature", other.clone())], Expect::Unauthorized("no signature in webhook-signature matches")),
            ("not base64", vec![("webhook-id", ID.into()), ("webhook-timestamp", at(now)),
                ("webhook-signature", "v1,***".into())], Expect::Unauthorized("matches")),
            ("id changed", vec![("webhook-id", "msg_other".into()), ("webhook-timestamp", at(now)),
                ("webhook-signature", SIGNATURE.into())], Expect::Unauthorized("matches")),
            ("stale", vec![("webhook-id", ID.into()), ("webhook-timestamp", at(now - 301)),
                ("webhook-signature", v1(SECRET, ID, now - 301, BODY))],
                Expect::Unauthorized("301 s old, outside the tolerance of 300 s")),
            ("future", vec![("webhook-id", ID.into()), ("webhook-timestamp", at(now + 301)),
                ("webhook-signature", v1(SECRET, ID, now + 301, BODY))],
                Expect::Unauthorized("301 s ahead")),
            ("at the edge", vec![("webhook-id", ID.into()), ("webhook-timestamp", at(now + 300)),
                ("webhook-signature", v1(SECRET, ID, now + 300, BODY))], Expect::Fire(Some(ID))),
            ("no id", vec![("webhook-timestamp", at(now)), ("webhook-signature", SIGNATURE.into())],
                Expect::Unauthorized("missing webhook-id header")),
            ("no timestamp", vec![("webhook-id", ID.into()), ("webhook-signature", SIGNATURE.into())],
                Expect::Unauthorized("missing webhook-timestamp header")),
            ("no signature", vec![("webhook-id", ID.into()), ("webhook-timestamp", at(now))],
                Expect::Unauthorized("missing webhook-signature header")),
            ("float timestamp", vec![("webhook-id", ID.into()), ("webhook-timestamp", format!("{now}.5")),
                ("webhook-signature", SIGNATURE.into())], Expect::Unauthorized("not a Unix time")),
        ];
        for (case, headers, expect) in cases {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            check(
                case,
                "standard",
                &json!({"secret": SECRET}),
                &request(&headers, BODY, now),
                expect,
            );
        }
    }

    #[test]
    fn ed25519_signatures_are_checked_by_public_key() {
        let now = TIMESTAMP;
        let t = now.to_string();
        let good = v1a(ID, now, BODY);
        let forged = v1a(ID, now, b"{}");
        let only_key = json!({ "publicKey": whpk() });
        let both = json!({ "secret": SECRET, "publicKey": [whpk()] });
        #[rustfmt::skip]
        let cases: Vec<(&str, &Value, String, Expect)> = vec![
            ("v1a", &only_key, good.clone(), Expect::Fire(Some(ID))),
            ("v1a after a bad one", &only_key, format!("{forged} {good}"), Expect::Fire(Some(ID))),
            ("v1a of another body", &only_key, forged.clone(), Expect::Unauthorized("matches")),
            ("v1 without a secret", &only_key, SIGNATURE.into(),
                Expect::Unauthorized("has no v1a signature")),
            ("either, v1 matches", &both, format!("{forged} {SIGNATURE}"), Expect::Fire(Some(ID))),
            ("either, none", &both, "v2,AAAA".into(), Expect::Unauthorized("has no v1 or v1a")),
        ];
        for (case, params, signature, expect) in cases {
            let headers = [
                ("webhook-id", ID),
                ("webhook-timestamp", &t),
                ("webhook-signature", &signature),
            ];
            check(
                case,
                "standard",
                params,
                &request(&headers, BODY, now),
                expect,
            );
        }
    }

    #[test]
    fn secrets_are_base64_with_or_without_their_prefix() {
        let bare = SECRET.trim_start_matches("whsec_");
        assert_eq!(secret(SECRET), secret(bare));
        assert!(secret("whsec_").is_err());
        assert!(secret("whsec_%%%").is_err());
        assert!(public_key(&whpk()).is_ok());
        assert!(public_key(whpk().trim_start_matches("whpk_")).is_ok());
        assert!(public_key("whpk_AAAA").is_err());
        let t = TIMESTAMP.to_string();
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", &t),
            ("webhook-signature", SIGNATURE),
        ];
        let rotated = json!({ "secret": ["whsec_b3RoZXIgc2VjcmV0", bare] });
        check(
            "bare, second of two",
            "standard",
            &rotated,
            &request(&headers, BODY, TIMESTAMP),
            Expect::Fire(Some(ID)),
        );
    }

    #[test]
    fn tolerance_zero_turns_the_window_off() {
        let t = TIMESTAMP.to_string();
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", &t),
            ("webhook-signature", SIGNATURE),
        ];
        let later = TIMESTAMP + 86_400 * 365;
        let request = request(&headers, BODY, later);
        check(
            "default",
            "standard",
            &json!({"secret": SECRET}),
            &request,
            Expect::Unauthorized("old"),
        );
        check(
            "off",
            "standard",
            &json!({"secret": SECRET, "tolerance": 0}),
            &request,
            Expect::Fire(Some(ID)),
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_refused_once_signed() {
        let t = TIMESTAMP.to_string();
        let sig = v1(SECRET, ID, TIMESTAMP, b"plain");
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", &t),
            ("webhook-signature", &sig),
        ];
        check(
            "plain",
            "standard",
            &json!({"secret": SECRET}),
            &request(&headers, b"plain", TIMESTAMP),
            Expect::BadRequest("not JSON"),
        );
    }
}
