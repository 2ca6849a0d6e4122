//! The `stripe` feed: a Stripe webhook endpoint.
//!
//! `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` must hold a `v1` that is the HMAC-SHA256
//! of `<t>.<raw body>` under the endpoint's signing secret (its text, `whsec_` included, is
//! the key, as Stripe uses it); while Stripe rolls a secret it sends one `v1` per secret, and
//! any that matches passes. `t` must be within `tolerance` of the arrival either way. Other
//! schemes (`v0`, test-mode-only signatures) are ignored.
//!
//! Payload: the event object's fields plus `__webhook: {source: "stripe", type}`; the key is
//! the event's `id` (`evt_…`), which Stripe's retries keep.

use gust_source::{FeedDoc, Hook, HookError, HookRequest};
use serde_json::{Map, Value};

use super::{Feed, invalid_config, unauthorized};
use crate::params::{self, Keys};
use crate::payload;
use crate::verify::{self, Algorithm, Tolerance};

pub const FEED: Feed = Feed {
    doc: FeedDoc {
        name: "stripe",
        description: "Fires on a Stripe event signed with the endpoint's signing secret",
        parameters: r#"[{"name":"secret","required":true,"description":"The endpoint's signing secret (whsec_...), or a list of up to 5 while it is rolled"},{"name":"tolerance","required":false,"description":"How far in seconds the signature's timestamp may be from the arrival, either way: 0 to 86400, default 300; 0 turns the check off"}]"#,
    },
    params: PARAMS,
    keep: configure,
    receive,
};

const PARAMS: &[&str] = &["secret", "tolerance"];

/// Stripe's libraries' default tolerance.
const DEFAULT_TOLERANCE: u64 = 300;

struct Config {
    secrets: Keys,
    tolerance: Tolerance,
}

impl Config {
    fn parse(params: &Map<String, Value>) -> Result<Self, String> {
        Ok(Config {
            secrets: params::required_keys(params, "secret", params::utf8)?,
            tolerance: Tolerance::from_seconds(tolerance(params)?),
        })
    }
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
    check_signature(&config, request)?;
    let body = payload::json(&request.body)?;
    let key = body.get("id").and_then(Value::as_str).map(String::from);
    let meta = payload::meta("stripe", [("type", body.get("type").cloned())]);
    Ok(payload::fire(payload::fields(body), meta, key))
}

/// What counts in a `Stripe-Signature` header: the timestamp as sent and the `v1`
/// signatures that are hex.
#[derive(Debug, PartialEq)]
struct Signatures<'a> {
    timestamp: &'a str,
    v1: Vec<Vec<u8>>,
}

fn parse(header: &str) -> Result<Signatures<'_>, HookError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) if timestamp.is_none() => timestamp = Some(t),
            Some(("v1", sig)) => v1.extend(verify::decode(verify::Encoding::Hex, sig)),
            _ => {}
        }
    }
    let timestamp =
        timestamp.ok_or_else(|| unauthorized("Stripe-Signature has no timestamp (t=)"))?;
    if v1.is_empty() {
        return Err(unauthorized(
            "Stripe-Signature has no v1 signature (v1=<hex>)",
        ));
    }
    Ok(Signatures { timestamp, v1 })
}

/// Checks `Stripe-Signature`: its timestamp against the tolerance, then its `v1` signatures.
fn check_signature(config: &Config, request: &HookRequest) -> Result<(), HookError> {
    let header = request
        .header("stripe-signature")
        .ok_or_else(|| unauthorized("missing Stripe-Signature header"))?;
    let Signatures { timestamp, v1 } = parse(header)?;
    let seconds = verify::unix_seconds(timestamp).ok_or_else(|| {
        unauthorized("the timestamp in Stripe-Signature is not a Unix time in seconds")
    })?;
    verify::fresh(request.now_ms, seconds, config.tolerance).map_err(|skew| {
        unauthorized(format!(
            "the timestamp in Stripe-Signature is {skew}, outside the tolerance of {}",
            config.tolerance
        ))
    })?;
    let signed: &[&[u8]] = &[timestamp.as_bytes(), b".", &request.body];
    if v1
        .iter()
        .any(|sig| verify::hmac_matches(Algorithm::Sha256, &config.secrets, signed, sig))
    {
        Ok(())
    } else {
        Err(unauthorized(
            "no v1 signature in Stripe-Signature matches the body: check the endpoint's \
             signing secret",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Expect, check, outcome, payload, request};
    use serde_json::json;

    const SECRET: &str = "whsec_test_secret";
    const NOW: u64 = 1_700_000_000;
    const BODY: &[u8] =
        br#"{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{}}}"#;

    fn v1(secret: &str, t: u64, body: &[u8]) -> String {
        let t = t.to_string();
        let signed: &[&[u8]] = &[t.as_bytes(), b".", body];
        hex::encode(verify::hmac(Algorithm::Sha256, secret.as_bytes(), signed))
    }

    fn config() -> Value {
        json!({ "secret": SECRET })
    }

    #[test]
    fn headers_parse() {
        fn sig<'a>(t: &'a str, v1: &[&[u8]]) -> Result<Signatures<'a>, HookError> {
            Ok(Signatures {
                timestamp: t,
                v1: v1.iter().map(|s| s.to_vec()).collect(),
            })
        }
        let cases = [
            ("t=12,v1=00ff", sig("12", &[&[0, 255]])),
            ("t=12, v1=00,v0=11 ,v1=ff", sig("12", &[&[0], &[255]])),
            ("v1=00,t=12,t=13", sig("12", &[&[0]])),
            ("t=12,v1=zz,v1=01", sig("12", &[&[1]])),
            (
                "v1=00",
                Err(unauthorized("Stripe-Signature has no timestamp (t=)")),
            ),
            (
                "t=12,v0=00",
                Err(unauthorized(
                    "Stripe-Signature has no v1 signature (v1=<hex>)",
                )),
            ),
            (
                "",
                Err(unauthorized("Stripe-Signature has no timestamp (t=)")),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(parse(header), want, "{header}");
        }
    }

    #[test]
    fn requests() {
        let at = |t: u64, sigs: &[&str]| {
            let mut header = format!("t={t}");
            for s in sigs {
                header.push_str(&format!(",v1={s}"));
            }
            header
        };
        let good = v1(SECRET, NOW, BODY);
        let other = v1("whsec_other", NOW, BODY);
        #[rustfmt::skip]
        let cases: Vec<(&str, Option<String>, u64, Expect)> = vec![
            ("signed", Some(at(NOW, &[&good])), NOW, Expect::Fire(Some("evt_1"))),
            ("rolled: second v1 matches", Some(at(NOW, &[&other, &good])), NOW,
                Expect::Fire(Some("evt_1"))),
            ("with v0", Some(format!("{},v0={other}", at(NOW, &[&good]))), NOW,
                Expect::Fire(Some("evt_1"))),
            ("at the tolerance", Some(at(NOW - 300, &[&v1(SECRET, NOW - 300, BODY)])), NOW,
                Expect::Fire(Some("evt_1"))),
            ("stale", Some(at(NOW - 301, &[&v1(SECRET, NOW - 301, BODY)])), NOW,
                Expect::Unauthorized("is 301 s old, outside the tolerance of 300 s")),
            ("future", Some(at(NOW + 301, &[&v1(SECRET, NOW + 301, BODY)])), NOW,
                Expect::Unauthorized("is 301 s ahead")),
            ("timestamp swapped", Some(at(NOW - 1, &[&good])), NOW,
                Expect::Unauthorized("no v1 signature in Stripe-Signature matches")),
            ("other secret", Some(at(NOW, &[&other])), NOW,
                Expect::Unauthorized("check the endpoint's signing secret")),
            ("no header", None, NOW, Expect::Unauthorized("missing Stripe-Signature header")),
            ("no t", Some(format!("v1={good}")), NOW, Expect::Unauthorized("no timestamp")),
            ("t not a number", Some(format!("t=now,v1={good}")), NOW,
                Expect::Unauthorized("not a Unix time")),
            ("no v1", Some(format!("t={NOW},v0={good}")), NOW, Expect::Unauthorized("no v1 signature")),
        ];
        for (case, header, now, expect) in cases {
            let headers: Vec<(&str, &str)> = header
                .iter()
                .map(|h| ("stripe-signature", h.as_str()))
                .collect();
            check(
                case,
                "stripe",
                &config(),
                &request(&headers, BODY, now),
                expect,
            );
        }
    }

    #[test]
    fn tolerance_is_configurable_and_zero_turns_it_off() {
        let old = NOW - 3600;
        let header = format!("t={old},v1={}", v1(SECRET, old, BODY));
        let request = request(&[("stripe-signature", &header)], BODY, NOW);
        let cases = [
            (
                json!({"secret": SECRET}),
                Expect::Unauthorized("3600 s old"),
            ),
            (
                json!({"secret": SECRET, "tolerance": 3599}),
                Expect::Unauthorized("3600 s old"),
            ),
            (
                json!({"secret": SECRET, "tolerance": 3600}),
                Expect::Fire(Some("evt_1")),
            ),
            (
                json!({"secret": SECRET, "tolerance": 0}),
                Expect::Fire(Some("evt_1")),
            ),
        ];
        for (params, expect) in cases {
            check(&params.to_string(), "stripe", &params, &request, expect);
        }
    }

    #[test]
    fn payload_is_the_event_with_its_type() {
        let header = format!("t={NOW},v1={}", v1(SECRET, NOW, BODY));
        let signed = request(&[("stripe-signature", &header)], BODY, NOW);
        let hook = outcome(
            "event",
            "stripe",
            &config(),
            &signed,
            Expect::Fire(Some("evt_1")),
        );
        assert_eq!(
            payload(hook),
            json!({
                "id": "evt_1", "object": "event", "type": "invoice.paid", "data": {"object": {}},
                "__webhook": {"source": "stripe", "type": "invoice.paid"},
            })
        );

        let body = b"not json";
        let header = format!("t={NOW},v1={}", v1(SECRET, NOW, body));
        let signed = request(&[("stripe-signature", &header)], body, NOW);
        check(
            "not json",
            "stripe",
            &config(),
            &signed,
            Expect::BadRequest("not JSON"),
        );
    }
}
