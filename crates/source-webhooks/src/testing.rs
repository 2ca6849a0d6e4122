//! What the feeds' tests share: requests, configurations and one `check` of a request
//! against what it must become.

use bytes::Bytes;
use gust_source::{Hook, HookError, HookRequest, Source};
use serde_json::{Map, Value};

use crate::Webhooks;

/// A table case's headers.
pub type Headers<'a> = Vec<(&'a str, &'a str)>;

/// A table case's headers, values computed.
pub type OwnedHeaders<'a> = Vec<(&'a str, String)>;

/// A request with `headers` (names lower-cased as the platform gives them) arriving at
/// `now_s` (Unix seconds).
pub fn request(headers: &[(&str, &str)], body: &[u8], now_s: u64) -> HookRequest {
    HookRequest {
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect(),
        body: Bytes::copy_from_slice(body),
        now_ms: now_s * 1000,
    }
}

/// What a request must become.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// A fire with this key.
    Fire(Option<&'a str>),
    /// A reply whose body contains this.
    Reply(&'a str),
    /// A 401 whose text contains this.
    Unauthorized(&'a str),
    /// A 400 whose text contains this.
    BadRequest(&'a str),
}

/// Configures `feed` with `params`, has it receive `request`, and checks the outcome against
/// `expect` (`case` names the case in failures). A refusal's text must hold no secret and
/// nothing that looks like a signature.
pub fn check(case: &str, feed: &str, params: &Value, request: &HookRequest, expect: Expect) {
    let _checked = outcome(case, feed, params, request, expect);
}

/// [`check`], returning the outcome for a closer look.
pub fn outcome(
    case: &str,
    feed: &str,
    params: &Value,
    request: &HookRequest,
    expect: Expect,
) -> Result<Hook, HookError> {
    let params = params.as_object().expect("params are an object");
    let config = Webhooks
        .configure(feed, params)
        .unwrap_or_else(|e| panic!("{case}: configure: {e}"));
    let got = Webhooks.receive(feed, &config, request);
    match (&got, expect) {
        (Ok(Hook::Fire(event)), Expect::Fire(key)) => {
            assert_eq!(event.key.as_deref(), key, "{case}: key");
        }
        (Ok(Hook::Reply { body, .. }), Expect::Reply(want)) => {
            assert!(body.contains(want), "{case}: reply {body:?} lacks {want:?}");
        }
        (Err(HookError::Unauthorized(text)), Expect::Unauthorized(want))
        | (Err(HookError::BadRequest(text)), Expect::BadRequest(want)) => {
            assert!(text.contains(want), "{case}: {text:?} lacks {want:?}");
            leaks_nothing(case, text, params);
        }
        (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
    }
    got
}

/// A refusal's text holds none of the configured secrets and no run of 24 or more
/// hex/base64 characters with a digit among them (an expected or received signature).
fn leaks_nothing(case: &str, text: &str, params: &Map<String, Value>) {
    for name in Webhooks.secrets() {
        let values: Vec<&str> = match params.get(*name) {
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        for value in values {
            assert!(!text.contains(value), "{case}: {text:?} shows a secret");
        }
    }
    let signature_like = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c)))
        .any(|run| run.len() >= 24 && run.contains(|c: char| c.is_ascii_digit()));
    assert!(!signature_like, "{case}: {text:?} may show a signature");
}

/// The payload of a fire.
pub fn payload(hook: Result<Hook, HookError>) -> Value {
    match hook {
        Ok(Hook::Fire(event)) => Value::Object(event.payload),
        other => panic!("not a fire: {other:?}"),
    }
}
