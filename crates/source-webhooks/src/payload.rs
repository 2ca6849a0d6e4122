//! What a request fires with: a body's fields at the top level, as OpenWhisk hands a
//! trigger's payload to an action, and what the request said besides under [`META`].

use gust_source::{Event, Hook, HookError, HookRequest};
use serde_json::{Map, Value};

/// The payload key holding a request's metadata (`{"source": <feed>, ...}`); reserved.
pub const META: &str = "__webhook";

/// The body as JSON, or why not (400). Read only once the request's signature is checked.
pub fn json(body: &[u8]) -> Result<Value, HookError> {
    serde_json::from_slice(body)
        .map_err(|e| HookError::BadRequest(format!("the body is not JSON: {e}")))
}

/// The request's media type (`content-type` before any parameter), lower-cased.
pub fn media_type(request: &HookRequest) -> Option<String> {
    let value = request.header("content-type")?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    Some(essence.to_ascii_lowercase())
}

/// Whether the body is an HTML form (`application/x-www-form-urlencoded`).
pub fn is_form(request: &HookRequest) -> bool {
    media_type(request).as_deref() == Some("application/x-www-form-urlencoded")
}

/// A form body's fields as strings; a field given twice keeps its last value.
pub fn form(body: &[u8]) -> Map<String, Value> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

/// A payload from a body value: an object's fields, anything else under `body`.
pub fn fields(body: Value) -> Map<String, Value> {
    match body {
        Value::Object(fields) => fields,
        other => Map::from_iter([("body".to_string(), other)]),
    }
}

/// The metadata of a request from feed `source`: the fields given, those absent left out.
pub fn meta<const N: usize>(source: &str, fields: [(&str, Option<Value>); N]) -> Value {
    let mut meta = Map::from_iter([("source".to_string(), Value::from(source))]);
    for (name, value) in fields {
        if let Some(value) = value {
            meta.insert(name.to_string(), value);
        }
    }
    Value::Object(meta)
}

/// A fire of `payload` with `meta` under [`META`].
pub fn fire(mut payload: Map<String, Value>, meta: Value, key: Option<String>) -> Hook {
    payload.insert(META.to_string(), meta);
    Hook::Fire(Event { payload, key })
}

/// A header's value as a JSON string, if present.
pub fn header(request: &HookRequest, name: &str) -> Option<Value> {
    request.header(name).map(Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::request;
    use serde_json::json;

    #[test]
    fn media_types_lose_their_parameters() {
        let cases = [
            (vec![], None),
            (
                vec![("content-type", "application/json")],
                Some("application/json"),
            ),
            (
                vec![("content-type", "Application/JSON; charset=utf-8")],
                Some("application/json"),
            ),
        ];
        for (headers, want) in cases {
            let request = request(&headers, b"", 0);
            assert_eq!(media_type(&request).as_deref(), want);
        }
    }

    #[test]
    fn forms_decode_and_non_objects_go_under_body() {
        let form = form(b"a=1&b=x+y%21&a=2");
        assert_eq!(Value::Object(form), json!({"a": "2", "b": "x y!"}));
        assert_eq!(Value::Object(fields(json!([1]))), json!({"body": [1]}));
        assert_eq!(Value::Object(fields(json!({"a": 1}))), json!({"a": 1}));
    }
}
