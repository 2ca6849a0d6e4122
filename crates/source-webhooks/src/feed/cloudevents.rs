//! The `cloudevents` feed: one CloudEvents 1.0 event per request, in the HTTP binding's
//! binary or structured mode (batched mode is refused).
//!
//! - **binary**: the attributes are `ce-<name>` headers (percent-decoded), `Content-Type` is
//!   `datacontenttype` and the body is `data`: JSON when the content type is JSON, text when
//!   it is text, else `data_base64`; with no content type, JSON if it parses, else text;
//! - **structured**: `Content-Type: application/cloudevents+json`, the body the event itself.
//!
//! `specversion` must be `1.0`, and `id`, `source`, `type` non-empty. The CloudEvents binding
//! has no signature: with a `secret` the request must carry an HMAC of its body exactly as the
//! hmac feed checks it; **without one the hook URL is the only credential**, and anyone who
//! has it can fire the trigger. `types` limits the event types taken (by prefix).
//!
//! Payload: the event in the JSON format (attributes, and `data` or `data_base64`) plus
//! `__webhook: {source: "cloudevents", mode}`; the key is `<source>\n<id>`, which the
//! specification makes unique per event.

use gust_source::{FeedDoc, Hook, HookError, HookRequest};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use super::hmac::Signing;
use super::{Feed, bad_request, invalid_config};
use crate::params;
use crate::payload;
use crate::verify;

pub const FEED: Feed = Feed {
    doc: FeedDoc {
        name: "cloudevents",
        description: "Fires on a CloudEvents 1.0 event sent over HTTP (binary or structured mode)",
        parameters: r#"[{"name":"secret","required":false,"description":"A shared secret: when given, the request must carry an HMAC of its body, as the hmac feed checks it; without one, anyone with the hook URL can fire the trigger"},{"name":"header","required":false,"description":"With secret: the header holding the signature, default x-signature"},{"name":"algorithm","required":false,"description":"With secret: sha256 (default), sha512 or sha1"},{"name":"encoding","required":false,"description":"With secret: hex (default) or base64"},{"name":"prefix","required":false,"description":"With secret: text before the signature in the header; default none"},{"name":"types","required":false,"description":"A list of event type prefixes (up to 20): events of other types are refused"}]"#,
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
    "types",
];

const MAX_TYPES: usize = 20;

/// The attributes every event has, in the order they are checked.
const REQUIRED: [&str; 4] = ["specversion", "id", "source", "type"];

struct Config {
    signing: Option<Signing>,
    types: Option<Vec<String>>,
}

impl Config {
    fn parse(params: &Map<String, Value>) -> Result<Self, String> {
        Ok(Config {
            signing: Signing::parse(params)?,
            types: params::strings(params, "types", MAX_TYPES)?,
        })
    }
}

fn configure(params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let config = Config::parse(params)?;
    let mut kept = params.clone();
    if let Some(signing) = &config.signing {
        signing.keep(&mut kept);
    }
    Ok(kept)
}

/// How the event came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Binary,
    Structured,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Binary => "binary",
            Mode::Structured => "structured",
        }
    }
}

fn receive(config: &Map<String, Value>, request: &HookRequest) -> Result<Hook, HookError> {
    let config = Config::parse(config).map_err(invalid_config)?;
    if let Some(signing) = &config.signing {
        signing.check(request)?;
    }
    let media = payload::media_type(request);
    let (mode, event) = match media.as_deref() {
        Some("application/cloudevents-batch+json") => {
            return Err(bad_request(
                "batched mode is not accepted: send one event per request",
            ));
        }
        Some(m) if m.starts_with("application/cloudevents") => {
            (Mode::Structured, structured(m, &request.body)?)
        }
        media => (Mode::Binary, binary(request, media)?),
    };
    for name in REQUIRED {
        attribute(&event, name, mode)?;
    }
    if attribute(&event, "specversion", mode)? != "1.0" {
        return Err(bad_request(
            "this CloudEvents specversion is not accepted: only 1.0 is",
        ));
    }
    let kind = attribute(&event, "type", mode)?;
    if let Some(types) = &config.types
        && !types.iter().any(|prefix| kind.starts_with(prefix.as_str()))
    {
        return Err(bad_request(format!(
            "this trigger takes only events whose type starts with {}",
            types.join(", ")
        )));
    }
    let key = format!(
        "{}\n{}",
        attribute(&event, "source", mode)?,
        attribute(&event, "id", mode)?
    );
    let meta = payload::meta("cloudevents", [("mode", Some(Value::from(mode.name())))]);
    Ok(payload::fire(event, meta, Some(key)))
}

/// Required attribute `name` of `event`, or a refusal naming it.
fn attribute<'a>(
    event: &'a Map<String, Value>,
    name: &str,
    mode: Mode,
) -> Result<&'a str, HookError> {
    match event.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) => Err(bad_request(match mode {
            Mode::Binary => {
                format!("missing required CloudEvents attribute '{name}' (header ce-{name})")
            }
            Mode::Structured => format!("missing required CloudEvents attribute '{name}'"),
        })),
        Some(_) => Err(bad_request(format!(
            "CloudEvents attribute '{name}' must be a non-empty string"
        ))),
    }
}

/// A structured-mode event: the body in the JSON event format.
fn structured(media: &str, body: &[u8]) -> Result<Map<String, Value>, HookError> {
    if media != "application/cloudevents+json" {
        return Err(bad_request(
            "only the JSON event format is accepted (application/cloudevents+json)",
        ));
    }
    let Value::Object(event) = payload::json(body)? else {
        return Err(bad_request("a structured-mode event must be a JSON object"));
    };
    if event.contains_key("data") && event.contains_key("data_base64") {
        return Err(bad_request("an event has data or data_base64, not both"));
    }
    Ok(event)
}

/// A binary-mode event: attributes from the `ce-` headers, data from the body.
fn binary(request: &HookRequest, media: Option<&str>) -> Result<Map<String, Value>, HookError> {
    let mut event = Map::new();
    for (header, value) in &request.headers {
        let Some(name) = header.strip_prefix("ce-") else {
            continue;
        };
        let well_formed = !name.is_empty()
            && name != "data"
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !well_formed {
            return Err(bad_request(format!(
                "header {header} names no CloudEvents attribute (lower-case letters and digits, \
                 not data)"
            )));
        }
        let value = percent_decode_str(value).decode_utf8().map_err(|_| {
            bad_request(format!("header {header} is not UTF-8 once percent-decoded"))
        })?;
        event
            .entry(name)
            .or_insert_with(|| Value::from(value.into_owned()));
    }
    if let Some(content_type) = request.header("content-type") {
        event.insert("datacontenttype".into(), content_type.into());
    }
    if !request.body.is_empty() {
        let (name, data) = data(media, &request.body)?;
        event.insert(name.into(), data);
    }
    Ok(event)
}

/// A binary-mode body as the JSON format holds it: `data` (JSON or text) or `data_base64`.
fn data(media: Option<&str>, body: &[u8]) -> Result<(&'static str, Value), HookError> {
    let base64 = || ("data_base64", Value::from(verify::base64_text(body)));
    let text = || match std::str::from_utf8(body) {
        Ok(text) => ("data", Value::from(text)),
        Err(_) => base64(),
    };
    Ok(match media {
        Some(m) if m == "application/json" || m == "text/json" || m.ends_with("+json") => {
            let data = serde_json::from_slice(body).map_err(|e| {
                bad_request(format!(
                    "the body is not JSON although its Content-Type says so: {e}"
                ))
            })?;
            ("data", data)
        }
        Some(m) if m.starts_with("text/") || m == "application/xml" || m.ends_with("+xml") => {
            text()
        }
        Some(_) => base64(),
        None => match serde_json::from_slice(body) {
            Ok(data) => ("data", data),
            Err(_) => text(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Expect, Headers, check, outcome, payload, request};
    use crate::verify::Algorithm;
    use serde_json::json;

    const KEY: Option<&str> = Some("/sensors/7\nA234-1234-1234");

    fn ce(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut headers = vec![
            ("ce-specversion", "1.0"),
            ("ce-type", "com.example.reading"),
            ("ce-source", "/sensors/7"),
            ("ce-id", "A234-1234-1234"),
        ];
        headers.extend_from_slice(extra);
        headers
    }

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        ce(&[]).into_iter().filter(|(k, _)| *k != name).collect()
    }

    const STRUCTURED: &[u8] = br#"{"specversion":"1.0","type":"com.example.reading","source":"/sensors/7","id":"A234-1234-1234","time":"2026-12-04T10:00:00Z","datacontenttype":"application/json","data":{"celsius":21.5}}"#;

    #[test]
    fn requests() {
        let json_ct = ("content-type", "application/json");
        let structured = (
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        );
        let open = json!({});
        let typed = json!({ "types": ["com.example.", "org.other."] });
        #[rustfmt::skip]
        let cases: Vec<(&str, &Value, Headers, &[u8], Expect)> = vec![
            ("binary json", &open, ce(&[json_ct]), br#"{"celsius":21.5}"#, Expect::Fire(KEY)),
            ("binary, no body", &open, ce(&[]), b"", Expect::Fire(KEY)),
            ("binary, json not json", &open, ce(&[json_ct]), b"{", Expect::BadRequest("not JSON")),
            ("binary, no ce-id", &open, without("ce-id"), b"", 
                Expect::BadRequest("missing required CloudEvents attribute 'id' (header ce-id)")),
            ("binary, no ce-source", &open, without("ce-source"), b"",
                Expect::BadRequest("attribute 'source'")),
            ("binary, no ce-type", &open, without("ce-type"), b"", Expect::BadRequest("attribute 'type'")),
            ("binary, no ce-specversion", &open, without("ce-specversion"), b"",
                Expect::BadRequest("attribute 'specversion'")),
            ("binary, empty ce-id", &open, [without("ce-id"), vec![("ce-id", "")]].concat(), b"",
                Expect::BadRequest("'id' must be a non-empty string")),
            ("specversion 0.3", &open, [without("ce-specversion"), vec![("ce-specversion", "0.3")]].concat(),
                b"", Expect::BadRequest("only 1.0")),
            ("ce-data", &open, ce(&[("ce-data", "x")]), b"", Expect::BadRequest("header ce-data names no")),
            ("ce-bad_name", &open, ce(&[("ce-bad_name", "x")]), b"", Expect::BadRequest("names no")),
            ("not utf-8", &open, ce(&[("ce-subject", "%FF")]), b"", Expect::BadRequest("not UTF-8")),
            ("structured", &open, vec![structured], STRUCTURED, Expect::Fire(KEY)),
            ("structured, no type", &open, vec![structured],
                br#"{"specversion":"1.0","source":"/s","id":"1"}"#,
                Expect::BadRequest("missing required CloudEvents attribute 'type'")),
            ("structured, id a number", &open, vec![structured],
                br#"{"specversion":"1.0","source":"/s","id":1,"type":"t"}"#,
                Expect::BadRequest("'id' must be a non-empty string")),
            ("structured, both data", &open, vec![structured],
                br#"{"specversion":"1.0","source":"/s","id":"1","type":"t","data":1,"data_base64":"AA=="}"#,
                Expect::BadRequest("not both")),
            ("structured, array", &open, vec![structured], b"[]", Expect::BadRequest("JSON object")),
            ("structured, avro", &open, vec![("content-type", "application/cloudevents+avro")], b"x",
                Expect::BadRequest("only the JSON event format")),
            ("batched", &open, vec![("content-type", "application/cloudevents-batch+json")], b"[]",
                Expect::BadRequest("batched mode is not accepted")),
            ("type taken", &typed, ce(&[]), b"", Expect::Fire(KEY)),
            ("type refused", &typed, [without("ce-type"), vec![("ce-type", "net.else.x")]].concat(), b"",
                Expect::BadRequest("only events whose type starts with com.example., org.other.")),
        ];
        for (case, params, headers, body, expect) in cases {
            check(
                case,
                "cloudevents",
                params,
                &request(&headers, body, 0),
                expect,
            );
        }
    }

    #[test]
    fn binary_events_take_the_json_format() {
        #[rustfmt::skip]
        let cases: [(Headers, &[u8], Value); 6] = [
            (ce(&[("content-type", "application/json"), ("ce-time", "2026-12-04T10:00:00Z")]),
                br#"{"celsius":21.5}"#,
                json!({"datacontenttype": "application/json", "time": "2026-12-04T10:00:00Z",
                       "data": {"celsius": 21.5}})),
            (ce(&[("content-type", "text/plain; charset=utf-8")]), b"21.5",
                json!({"datacontenttype": "text/plain; charset=utf-8", "data": "21.5"})),
            (ce(&[("content-type", "application/octet-stream")]), &[0xca, 0xfe],
                json!({"datacontenttype": "application/octet-stream", "data_base64": "yv4="})),
            (ce(&[]), br#"{"a":1}"#, json!({"data": {"a": 1}})),
            (ce(&[]), b"plain", json!({"data": "plain"})),
            (ce(&[("ce-subject", "caf%C3%A9%20au%20lait"), ("ce-myextension", "1")]), b"",
                json!({"subject": "café au lait", "myextension": "1"})),
        ];
        for (headers, body, extra) in cases {
            let hook = outcome(
                "binary",
                "cloudevents",
                &json!({}),
                &request(&headers, body, 0),
                Expect::Fire(KEY),
            );
            let mut want = json!({
                "specversion": "1.0", "type": "com.example.reading", "source": "/sensors/7",
                "id": "A234-1234-1234", "__webhook": {"source": "cloudevents", "mode": "binary"},
            });
            for (k, v) in extra.as_object().unwrap() {
                want[k] = v.clone();
            }
            assert_eq!(payload(hook), want);
        }
    }

    #[test]
    fn structured_events_are_fired_as_sent() {
        let headers = [("content-type", "application/cloudevents+json")];
        let hook = outcome(
            "structured",
            "cloudevents",
            &json!({}),
            &request(&headers, STRUCTURED, 0),
            Expect::Fire(KEY),
        );
        let mut want: Value = serde_json::from_slice(STRUCTURED).unwrap();
        want["__webhook"] = json!({"source": "cloudevents", "mode": "structured"});
        assert_eq!(payload(hook), want);
    }

    #[test]
    fn a_secret_makes_the_signature_required() {
        let params = json!({ "secret": "s3cret", "header": "X-CE-Signature", "prefix": "sha256=" });
        let sig = format!(
            "sha256={}",
            hex::encode(verify::hmac(Algorithm::Sha256, b"s3cret", &[STRUCTURED]))
        );
        let ct = ("content-type", "application/cloudevents+json");
        #[rustfmt::skip]
        let cases: Vec<(&str, Headers, Expect)> = vec![
            ("signed", vec![ct, ("x-ce-signature", &sig)], Expect::Fire(KEY)),
            ("unsigned", vec![ct], Expect::Unauthorized("missing x-ce-signature header")),
            ("wrong", vec![ct, ("x-ce-signature", "sha256=00")], Expect::Unauthorized("does not match")),
        ];
        for (case, headers, expect) in cases {
            check(
                case,
                "cloudevents",
                &params,
                &request(&headers, STRUCTURED, 0),
                expect,
            );
        }
    }
}
