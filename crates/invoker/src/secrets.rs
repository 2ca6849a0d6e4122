//! An invocation's secret parameters (decision 0022), opened just before the runtime: the
//! only place outside a sandbox where a secret is in clear, and only in memory, for the run.
//!
//! **Invariant:** an opened value goes to the runtime only: never into the message, a
//! record, a log line or an error text (an error names the parameter, not its value).

use std::borrow::Cow;

use gust_keyring::Keyring;
use gust_model::InvocationMessage;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// What a run is given: its input and its environment. The input is the message's own
/// (borrowed, not copied) when there is no secret to add.
pub struct Opened<'a> {
    pub params: Cow<'a, RawValue>,
    pub env: Vec<(String, String)>,
}

/// `msg`'s input and environment (counted from `start`) with its secrets opened under
/// `keyring` and added (an `init` secret to the environment); why not, naming the parameter.
pub fn open<'a>(
    keyring: Option<&Keyring>,
    msg: &'a InvocationMessage,
    start: u64,
) -> Result<Opened<'a>, String> {
    let mut env = msg.environment(start);
    if msg.secrets.is_empty() {
        return Ok(Opened {
            params: Cow::Borrowed(&msg.params),
            env,
        });
    }
    let Some(keyring) = keyring else {
        return Err("This invoker holds no master key to open secret parameters.".to_string());
    };
    let mut input: Map<String, Value> = serde_json::from_str(msg.params.get())
        .map_err(|e| format!("the invocation's parameters are not an object: {e}"))?;
    for s in &msg.secrets {
        let failed =
            |why: String| format!("The secret parameter '{}' cannot be opened: {why}", s.key);
        let plain = keyring
            .open(&s.sealed, s.place.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
        let value: Value = serde_json::from_slice(&plain)
            .map_err(|_| failed("its value is not JSON".to_string()))?;
        if s.init {
            let text = match value {
                Value::String(text) => text,
                v => v.to_string(),
            };
            env.retain(|(k, _)| *k != s.key);
            env.push((s.key.clone(), text));
        } else {
            input.insert(s.key.clone(), value);
        }
    }
    let params = serde_json::value::to_raw_value(&input)
        .map_err(|e| format!("cannot encode the parameters: {e}"))?;
    Ok(Opened {
        params: Cow::Owned(params),
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gust_model::SealedParam;

    fn message(secrets: Vec<SealedParam>) -> InvocationMessage {
        let mut m = gust_model::message::InvocationHeader {
            activation_id: "a".into(),
            namespace: "n".into(),
            action: "x".into(),
            subject: "n".into(),
            version: String::new(),
            kind: "wasm".into(),
            blocking: false,
            reply_to: String::new(),
            accepted_at: 0,
            traceparent: None,
        }
        .to_message();
        m.params = RawValue::from_string(r#"{"a":1}"#.into()).unwrap();
        m.secrets = secrets;
        m
    }

    #[test]
    fn secrets_open_into_the_input_or_the_environment_and_only_in_their_place() {
        let ring = Keyring::generate();
        let sealed = |v: &str, place: &str| ring.seal(v.as_bytes(), place.as_bytes());
        let msg = message(vec![
            SealedParam {
                key: "p".into(),
                sealed: sealed(r#""pw""#, "here"),
                place: "here".into(),
                init: false,
            },
            SealedParam {
                key: "E".into(),
                sealed: sealed(r#""env""#, "there"),
                place: "there".into(),
                init: true,
            },
        ]);
        let opened = open(Some(&ring), &msg, 0).unwrap();
        assert_eq!(opened.params.get(), r#"{"a":1,"p":"pw"}"#);
        assert!(opened.env.contains(&("E".to_string(), "env".to_string())));

        let moved = message(vec![SealedParam {
            key: "p".into(),
            sealed: sealed(r#""pw""#, "here"),
            place: "elsewhere".into(),
            init: false,
        }]);
        let why = open(Some(&ring), &moved, 0).err().unwrap();
        assert!(why.contains("'p'") && !why.contains("pw\""), "{why}");
        assert!(open(None, &moved, 0).is_err());
        assert!(open(Some(&Keyring::generate()), &msg, 0).is_err());
    }
}
