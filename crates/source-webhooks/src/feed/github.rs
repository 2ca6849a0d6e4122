//! The `github` feed: a GitHub repository's, organization's or app's webhook.
//!
//! `X-Hub-Signature-256: sha256=<hex>` must be the HMAC-SHA256 of the raw body under the
//! webhook's secret (the legacy SHA-1 `X-Hub-Signature` is not accepted). A `ping` (sent when
//! the webhook is created) is answered, not fired. Otherwise the payload is the delivery's
//! JSON (content type `application/json`, or the `payload` field of an
//! `application/x-www-form-urlencoded` delivery) plus
//! `__webhook: {source: "github", event, delivery, hookId}`; the key is the delivery id,
//! which a redelivery keeps.

use gust_source::{FeedDoc, Hook, HookError, HookRequest};
use serde_json::{Map, Value, json};

use super::{Feed, bad_request, invalid_config, unauthorized};
use crate::params::{self, Keys};
use crate::payload;
use crate::verify::{self, Algorithm};

pub const FEED: Feed = Feed {
    doc: FeedDoc {
        name: "github",
        description: "Fires on a GitHub webhook delivery signed with X-Hub-Signature-256",
        parameters: r#"[{"name":"secret","required":true,"description":"The webhook's secret as set on GitHub, or a list of up to 5 while it is rotated"}]"#,
    },
    params: PARAMS,
    keep: configure,
    receive,
};

const PARAMS: &[&str] = &["secret"];

struct Config {
    secrets: Keys,
}

impl Config {
    fn parse(params: &Map<String, Value>) -> Result<Self, String> {
        Ok(Config {
            secrets: params::required_keys(params, "secret", params::utf8)?,
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
    let event = request
        .header("x-github-event")
        .ok_or_else(|| bad_request("missing X-GitHub-Event header: is this a GitHub webhook?"))?;
    let body = body(request)?;
    if event == "ping" {
        let reply = json!({"ok": true, "zen": body.get("zen"), "hook_id": body.get("hook_id")});
        return Ok(Hook::Reply {
            content_type: "application/json",
            body: reply.to_string(),
        });
    }
    let delivery = request.header("x-github-delivery");
    let meta = payload::meta(
        "github",
        [
            ("event", Some(Value::from(event))),
            ("delivery", delivery.map(Value::from)),
            ("hookId", payload::header(request, "x-github-hook-id")),
        ],
    );
    Ok(payload::fire(
        payload::fields(body),
        meta,
        delivery.map(String::from),
    ))
}

/// Checks `X-Hub-Signature-256` against the raw body.
fn check_signature(secrets: &Keys, request: &HookRequest) -> Result<(), HookError> {
    let Some(header) = request.header("x-hub-signature-256") else {
        return Err(unauthorized(
            if request.header("x-hub-signature").is_some() {
                "missing X-Hub-Signature-256 header: only SHA-256 signatures are accepted, \
             not X-Hub-Signature (SHA-1)"
            } else {
                "missing X-Hub-Signature-256 header: set a secret on the GitHub webhook"
            },
        ));
    };
    let signature = header
        .strip_prefix("sha256=")
        .and_then(|hex| verify::decode(verify::Encoding::Hex, hex))
        .ok_or_else(|| unauthorized("X-Hub-Signature-256 is not of the form sha256=<hex>"))?;
    if verify::hmac_matches(Algorithm::Sha256, secrets, &[&request.body], &signature) {
        Ok(())
    } else {
        Err(unauthorized(
            "X-Hub-Signature-256 does not match the body: check the webhook's secret",
        ))
    }
}

/// The delivery's JSON, from the body or from a form's `payload` field.
fn body(request: &HookRequest) -> Result<Value, HookError> {
    if !payload::is_form(request) {
        return payload::json(&request.body);
    }
    match payload::form(&request.body).remove("payload") {
        Some(Value::String(json)) => payload::json(json.as_bytes()),
        _ => Err(bad_request(
            "a form-encoded GitHub delivery must have a payload field",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Expect, Headers, check, outcome, payload, request};

    const SECRET: &str = "It's a Secret to Everybody";

    fn sign(body: &[u8]) -> String {
        let tag = verify::hmac(Algorithm::Sha256, SECRET.as_bytes(), &[body]);
        format!("sha256={}", hex::encode(tag))
    }

    fn config() -> Value {
        json!({ "secret": SECRET })
    }

    /// GitHub's published vector: the signature passes; the body, not JSON, is then refused.
    #[test]
    fn githubs_vector() {
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(b"Hello, World!"), signature);
        let headers = [
            ("x-hub-signature-256", signature),
            ("x-github-event", "push"),
        ];
        let vector = request(&headers, b"Hello, World!", 0);
        let secrets = Config::parse(config().as_object().unwrap())
            .unwrap()
            .secrets;
        assert_eq!(check_signature(&secrets, &vector), Ok(()));
        let expect = Expect::BadRequest("the body is not JSON");
        check("vector", "github", &config(), &vector, expect);
    }

    #[test]
    fn requests() {
        let body = br#"{"ref":"refs/heads/main","after":"abc"}"#;
        let good = sign(body);
        let upper = good.to_uppercase().replace("SHA256=", "sha256=");
        let other = format!(
            "sha256={}",
            hex::encode(verify::hmac(Algorithm::Sha256, b"other", &[body]))
        );
        let form = format!(
            "payload={}",
            form_urlencoded::byte_serialize(body).collect::<String>()
        );
        let form_sig = sign(form.as_bytes());
        let ping = br#"{"zen":"Design for failure.","hook_id":42,"hook":{}}"#;
        let ping_sig = sign(ping);
        let form_no_payload = sign(b"a=1");
        let xml = sign(b"<xml/>");
        let ev = ("x-github-event", "push");
        let id = ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
        #[rustfmt::skip]
        let cases: Vec<(&str, Headers, &[u8], Expect)> = vec![
            ("signed push", vec![("x-hub-signature-256", &good), ev, id], body,
                Expect::Fire(Some(id.1))),
            ("hex in capitals", vec![("x-hub-signature-256", &upper), ev, id], body,
                Expect::Fire(Some(id.1))),
            ("no delivery id", vec![("x-hub-signature-256", &good), ev], body, Expect::Fire(None)),
            ("form mode", vec![("x-hub-signature-256", &form_sig), ev, id,
                ("content-type", "application/x-www-form-urlencoded")], form.as_bytes(),
                Expect::Fire(Some(id.1))),
            ("form without payload", vec![("x-hub-signature-256", &form_no_payload), ev,
                ("content-type", "application/x-www-form-urlencoded")], b"a=1",
                Expect::BadRequest("payload field")),
            ("ping", vec![("x-hub-signature-256", &ping_sig), ("x-github-event", "ping")], ping,
                Expect::Reply(r#""zen":"Design for failure.""#)),
            ("unsigned ping", vec![("x-github-event", "ping")], ping,
                Expect::Unauthorized("missing X-Hub-Signature-256")),
            ("no signature", vec![ev, id], body,
                Expect::Unauthorized("set a secret on the GitHub webhook")),
            ("sha1 only", vec![("x-hub-signature", "sha1=0123"), ev], body,
                Expect::Unauthorized("not X-Hub-Signature (SHA-1)")),
            ("other secret", vec![("x-hub-signature-256", &other), ev], body,
                Expect::Unauthorized("does not match the body")),
            ("body changed", vec![("x-hub-signature-256", &good), ev], b"{\"ref\":1}",
                Expect::Unauthorized("does not match the body")),
            ("no prefix", vec![("x-hub-signature-256", &good[7..]), ev], body,
                Expect::Unauthorized("not of the form sha256=<hex>")),
            ("not hex", vec![("x-hub-signature-256", "sha256=zz"), ev], body,
                Expect::Unauthorized("not of the form")),
            ("truncated", vec![("x-hub-signature-256", &good[..41]), ev], body,
                Expect::Unauthorized("does not match")),
            ("no event header", vec![("x-hub-signature-256", &good)], body,
                Expect::BadRequest("missing X-GitHub-Event")),
            ("not json", vec![("x-hub-signature-256", &xml), ev], b"<xml/>",
                Expect::BadRequest("not JSON")),
        ];
        for (case, headers, body, expect) in cases {
            check(
                case,
                "github",
                &config(),
                &request(&headers, body, 0),
                expect,
            );
        }
    }

    #[test]
    fn a_rotated_secret_passes_with_either_value() {
        let body = b"{}";
        let headers = [
            ("x-hub-signature-256", sign(body)),
            ("x-github-event", "push".into()),
        ];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let request = request(&headers, body, 0);
        let rotated = json!({ "secret": ["new secret", SECRET] });
        check(
            "second of two",
            "github",
            &rotated,
            &request,
            Expect::Fire(None),
        );
        let only_new = json!({ "secret": ["new secret"] });
        check(
            "new only",
            "github",
            &only_new,
            &request,
            Expect::Unauthorized("does not match"),
        );
    }

    #[test]
    fn payload_merges_the_json_with_the_metadata() {
        let body = br#"{"action":"opened","number":7,"__webhook":"spoofed"}"#;
        let sig = sign(body);
        let headers = [
            ("x-hub-signature-256", sig.as_str()),
            ("x-github-event", "pull_request"),
            ("x-github-delivery", "d-7"),
            ("x-github-hook-id", "123"),
        ];
        let hook = outcome(
            "pr",
            "github",
            &config(),
            &request(&headers, body, 0),
            Expect::Fire(Some("d-7")),
        );
        assert_eq!(
            payload(hook),
            json!({
                "action": "opened",
                "number": 7,
                "__webhook": {"source": "github", "event": "pull_request", "delivery": "d-7",
                              "hookId": "123"},
            })
        );

        let body = br#"[1,2]"#;
        let sig = sign(body);
        let headers = [
            ("x-hub-signature-256", sig.as_str()),
            ("x-github-event", "x"),
        ];
        let hook = outcome(
            "array",
            "github",
            &config(),
            &request(&headers, body, 0),
            Expect::Fire(None),
        );
        assert_eq!(
            payload(hook),
            json!({"body": [1, 2], "__webhook": {"source": "github", "event": "x"}})
        );
    }

    #[test]
    fn ping_is_answered_with_its_zen_and_hook_id() {
        let body = br#"{"zen":"Keep it logically awesome.","hook_id":9,"hook":{}}"#;
        let sig = sign(body);
        let headers = [
            ("x-hub-signature-256", sig.as_str()),
            ("x-github-event", "ping"),
        ];
        let hook = outcome(
            "ping",
            "github",
            &config(),
            &request(&headers, body, 0),
            Expect::Reply(""),
        );
        let Ok(Hook::Reply { content_type, body }) = hook else {
            panic!("not a reply: {hook:?}");
        };
        assert_eq!(content_type, "application/json");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"ok": true, "zen": "Keep it logically awesome.", "hook_id": 9})
        );
    }
}
