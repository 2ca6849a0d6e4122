//! The `slack` feed: a Slack app's Events API, slash commands and interactivity.
//!
//! `X-Slack-Signature: v0=<hex>` must be the HMAC-SHA256 of `v0:<timestamp>:<raw body>` under
//! the app's signing secret, and `X-Slack-Request-Timestamp` within 5 minutes of the arrival
//! either way. A `url_verification` is answered with its challenge, an `ssl_check` with an
//! empty 200, neither fired.
//!
//! Payload: a JSON body's fields (Events API); a form's fields as strings (slash commands),
//! its `payload` field parsed as JSON (interactivity); plus
//! `__webhook: {source: "slack", retryNum, retryReason}` when Slack retries. The key is an
//! `event_callback`'s `event_id`, which Slack's retries keep; other requests have none.

use gust_source::{FeedDoc, Hook, HookError, HookRequest};
use serde_json::{Map, Value};

use super::{Feed, bad_request, invalid_config, unauthorized};
use crate::params::{self, Keys};
use crate::payload;
use crate::verify::{self, Algorithm, Tolerance};

pub const FEED: Feed = Feed {
    doc: FeedDoc {
        name: "slack",
        description: "Fires on a Slack event, slash command or interaction signed with the app's signing secret",
        parameters: r#"[{"name":"signingSecret","required":true,"description":"The app's Signing Secret (Basic Information page), or a list of up to 5 while it is rotated"}]"#,
    },
    params: PARAMS,
    keep: configure,
    receive,
};

const PARAMS: &[&str] = &["signingSecret"];

/// Slack's replay window.
const WINDOW: Tolerance = Tolerance::Seconds(5 * 60);

struct Config {
    secrets: Keys,
}

impl Config {
    fn parse(params: &Map<String, Value>) -> Result<Self, String> {
        Ok(Config {
            secrets: params::required_keys(params, "signingSecret", params::utf8)?,
        })
    }
}

fn configure(params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    Config::parse(params)?;
    Ok(params.clone())
}

fn receive(config: &Map<String, Value>, request: &HookRequest) -> Result<Hook, HookError> {
    let config = Config::parse(config).map_err(invalid_config)?;
    check_signature(&config.secrets, request)?;
    let retry_num = request.header("x-slack-retry-num").map(|n| {
        n.parse::<u64>()
            .map_or_else(|_| Value::from(n), Value::from)
    });
    let meta = payload::meta(
        "slack",
        [
            ("retryNum", retry_num),
            (
                "retryReason",
                payload::header(request, "x-slack-retry-reason"),
            ),
        ],
    );
    if payload::is_form(request) {
        let mut fields = payload::form(&request.body);
        if fields.get("ssl_check").and_then(Value::as_str) == Some("1") {
            return Ok(Hook::Reply {
                content_type: "text/plain",
                body: String::new(),
            });
        }
        if let Some(Value::String(json)) = fields.get("payload") {
            let parsed = serde_json::from_str(json)
                .map_err(|e| bad_request(format!("the form's payload field is not JSON: {e}")))?;
            fields.insert("payload".into(), parsed);
        }
        return Ok(payload::fire(fields, meta, None));
    }
    let body = payload::json(&request.body)?;
    match body.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            let challenge = body
                .get("challenge")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("a url_verification must have a string challenge"))?;
            Ok(Hook::Reply {
                content_type: "text/plain",
                body: challenge.to_string(),
            })
        }
        Some("event_callback") => {
            let key = body
                .get("event_id")
                .and_then(Value::as_str)
                .map(String::from);
            Ok(payload::fire(payload::fields(body), meta, key))
        }
        _ => Ok(payload::fire(payload::fields(body), meta, None)),
    }
}

/// Checks `X-Slack-Request-Timestamp` against the window, then `X-Slack-Signature`.
fn check_signature(secrets: &Keys, request: &HookRequest) -> Result<(), HookError> {
    let timestamp = request
        .header("x-slack-request-timestamp")
        .ok_or_else(|| unauthorized("missing X-Slack-Request-Timestamp header"))?;
    let seconds = verify::unix_seconds(timestamp)
        .ok_or_else(|| unauthorized("X-Slack-Request-Timestamp is not a Unix time in seconds"))?;
    verify::fresh(request.now_ms, seconds, WINDOW).map_err(|skew| {
        unauthorized(format!(
            "X-Slack-Request-Timestamp is {skew}, outside the 5-minute window \
             (a replayed request, or a clock that is off)"
        ))
    })?;
    let signature = request
        .header("x-slack-signature")
        .ok_or_else(|| unauthorized("missing X-Slack-Signature header"))?
        .strip_prefix("v0=")
        .and_then(|hex| verify::decode(verify::Encoding::Hex, hex))
        .ok_or_else(|| unauthorized("X-Slack-Signature is not of the form v0=<hex>"))?;
    let signed: &[&[u8]] = &[b"v0:", timestamp.as_bytes(), b":", &request.body];
    if verify::hmac_matches(Algorithm::Sha256, secrets, signed, &signature) {
        Ok(())
    } else {
        Err(unauthorized(
            "X-Slack-Signature does not match the request: check the signing secret",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Expect, OwnedHeaders, check, outcome, payload, request};
    use serde_json::json;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const NOW: u64 = 1_531_420_618;

    fn sign(timestamp: &str, body: &[u8]) -> String {
        let signed: &[&[u8]] = &[b"v0:", timestamp.as_bytes(), b":", body];
        let tag = verify::hmac(Algorithm::Sha256, SECRET.as_bytes(), signed);
        format!("v0={}", hex::encode(tag))
    }

    fn config() -> Value {
        json!({ "signingSecret": SECRET })
    }

    /// Slack's published example ("Verifying requests from Slack"): a slash command.
    #[test]
    fn slacks_vector() {
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow\
            &channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner\
            &command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F\
            commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN\
            &trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign("1531420618", body.as_bytes()), signature);
        let headers = [
            ("x-slack-request-timestamp", "1531420618"),
            ("x-slack-signature", signature),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        let hook = outcome(
            "vector",
            "slack",
            &config(),
            &request(&headers, body.as_bytes(), NOW),
            Expect::Fire(None),
        );
        let payload = payload(hook);
        assert_eq!(payload["command"], "/webhook-collect");
        assert_eq!(payload["text"], "");
        assert_eq!(payload["__webhook"], json!({"source": "slack"}));
    }

    #[test]
    fn requests() {
        let ts = NOW.to_string();
        let old = (NOW - 301).to_string();
        let edge = (NOW - 300).to_string();
        let ahead = (NOW + 301).to_string();
        let event =
            br#"{"type":"event_callback","event_id":"Ev01","event":{"type":"app_mention"}}"#;
        let verification = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let interaction = format!(
            "payload={}",
            form_urlencoded::byte_serialize(br#"{"type":"block_actions","actions":[]}"#)
                .collect::<String>()
        );
        let form = ("content-type", "application/x-www-form-urlencoded");
        let json_ct = ("content-type", "application/json");
        #[rustfmt::skip]
        let cases: Vec<(&str, OwnedHeaders, &[u8], Expect)> = vec![
            ("event", vec![("x-slack-request-timestamp", ts.clone()),
                ("x-slack-signature", sign(&ts, event))], event, Expect::Fire(Some("Ev01"))),
            ("url_verification", vec![("x-slack-request-timestamp", ts.clone()),
                ("x-slack-signature", sign(&ts, verification))], verification,
                Expect::Reply("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")),
            ("interaction", vec![("x-slack-request-timestamp", ts.clone()), (form.0, form.1.into()),
                ("x-slack-signature", sign(&ts, interaction.as_bytes()))], interaction.as_bytes(),
                Expect::Fire(None)),
            ("form payload not json", vec![("x-slack-request-timestamp", ts.clone()),
                (form.0, form.1.into()), ("x-slack-signature", sign(&ts, b"payload=%7B"))],
                b"payload=%7B", Expect::BadRequest("payload field is not JSON")),
            ("ssl_check", vec![("x-slack-request-timestamp", ts.clone()), (form.0, form.1.into()),
                ("x-slack-signature", sign(&ts, b"ssl_check=1&token=t"))], b"ssl_check=1&token=t",
                Expect::Reply("")),
            ("oldest in the window", vec![("x-slack-request-timestamp", edge.clone()),
                ("x-slack-signature", sign(&edge, event))], event, Expect::Fire(Some("Ev01"))),
            ("stale", vec![("x-slack-request-timestamp", old.clone()),
                ("x-slack-signature", sign(&old, event))], event,
                Expect::Unauthorized("301 s old, outside the 5-minute window")),
            ("from the future", vec![("x-slack-request-timestamp", ahead.clone()),
                ("x-slack-signature", sign(&ahead, event))], event,
                Expect::Unauthorized("301 s ahead, outside the 5-minute window")),
            ("timestamp changed", vec![("x-slack-request-timestamp", edge.clone()),
                ("x-slack-signature", sign(&ts, event))], event,
                Expect::Unauthorized("does not match the request")),
            ("body changed", vec![("x-slack-request-timestamp", ts.clone()),
                ("x-slack-signature", sign(&ts, b"{}"))], event,
                Expect::Unauthorized("does not match the request")),
            ("no timestamp", vec![("x-slack-signature", sign(&ts, event))], event,
                Expect::Unauthorized("missing X-Slack-Request-Timestamp")),
            ("timestamp not a number", vec![("x-slack-request-timestamp", "soon".into()),
                ("x-slack-signature", sign("soon", event))], event,
                Expect::Unauthorized("not a Unix time")),
            ("no signature", vec![("x-slack-request-timestamp", ts.clone())], event,
                Expect::Unauthorized("missing X-Slack-Signature")),
            ("v1 signature", vec![("x-slack-request-timestamp", ts.clone()),
                ("x-slack-signature", sign(&ts, event).replace("v0=", "v1="))], event,
                Expect::Unauthorized("not of the form v0=<hex>")),
            ("not json", vec![("x-slack-request-timestamp", ts.clone()), (json_ct.0, json_ct.1.into()),
                ("x-slack-signature", sign(&ts, b"hello"))], b"hello",
                Expect::BadRequest("not JSON")),
            ("challenge not a string", vec![("x-slack-request-timestamp", ts.clone()),
                ("x-slack-signature", sign(&ts, br#"{"type":"url_verification"}"#))],
                br#"{"type":"url_verification"}"#, Expect::BadRequest("string challenge")),
        ];
        for (case, headers, body, expect) in cases {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            check(
                case,
                "slack",
                &config(),
                &request(&headers, body, NOW),
                expect,
            );
        }
    }

    #[test]
    fn the_challenge_is_the_whole_reply() {
        let body = br#"{"type":"url_verification","challenge":"abc"}"#;
        let ts = NOW.to_string();
        let sig = sign(&ts, body);
        let headers = [
            ("x-slack-request-timestamp", ts.as_str()),
            ("x-slack-signature", &sig),
        ];
        let hook = outcome(
            "challenge",
            "slack",
            &config(),
            &request(&headers, body, NOW),
            Expect::Reply("abc"),
        );
        assert_eq!(
            hook,
            Ok(Hook::Reply {
                content_type: "text/plain",
                body: "abc".into()
            })
        );
    }

    #[test]
    fn payloads_carry_retries_and_parsed_interactions() {
        let ts = NOW.to_string();
        let body = br#"{"type":"event_callback","event_id":"Ev9","event":{"type":"message"}}"#;
        let sig = sign(&ts, body);
        let headers = [
            ("x-slack-request-timestamp", ts.as_str()),
            ("x-slack-signature", &sig),
            ("x-slack-retry-num", "2"),
            ("x-slack-retry-reason", "http_timeout"),
        ];
        let hook = outcome(
            "retry",
            "slack",
            &config(),
            &request(&headers, body, NOW),
            Expect::Fire(Some("Ev9")),
        );
        assert_eq!(
            payload(hook),
            json!({
                "type": "event_callback", "event_id": "Ev9", "event": {"type": "message"},
                "__webhook": {"source": "slack", "retryNum": 2, "retryReason": "http_timeout"},
            })
        );

        let body = b"payload=%7B%22type%22%3A%22shortcut%22%7D&extra=1";
        let sig = sign(&ts, body);
        let headers = [
            ("x-slack-request-timestamp", ts.as_str()),
            ("x-slack-signature", &sig),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ];
        let hook = outcome(
            "shortcut",
            "slack",
            &config(),
            &request(&headers, body, NOW),
            Expect::Fire(None),
        );
        assert_eq!(
            payload(hook),
            json!({"payload": {"type": "shortcut"}, "extra": "1", "__webhook": {"source": "slack"}})
        );
    }

    #[test]
    fn a_rotated_signing_secret_passes_with_either_value() {
        let ts = NOW.to_string();
        let body = b"{}";
        let sig = sign(&ts, body);
        let headers = [
            ("x-slack-request-timestamp", ts.as_str()),
            ("x-slack-signature", &sig),
        ];
        let rotated = json!({ "signingSecret": ["a new one", SECRET] });
        check(
            "second of two",
            "slack",
            &rotated,
            &request(&headers, body, NOW),
            Expect::Fire(None),
        );
    }
}
