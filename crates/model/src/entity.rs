//! Namespaces and actions as stored and as the REST API shows them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::limits::{ActionLimits, NamespaceLimits};

/// A tenant: its name, its API key (`uuid:key`) and its throttles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    pub uuid: String,
    pub key: String,
    pub limits: NamespaceLimits,
}

/// An authenticated caller: the namespace whose key it presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub namespace: String,
    pub uuid: String,
    pub limits: NamespaceLimits,
}

impl Identity {
    /// The namespace a path names, read for this caller: `_` is the caller's own.
    pub fn namespace_named<'a>(&'a self, ns: &'a str) -> &'a str {
        if ns == "_" { &self.namespace } else { ns }
    }

    /// The namespace a path names if it is the caller's own (the only one it may write).
    pub fn own_namespace<'a>(&'a self, ns: &'a str) -> Option<&'a str> {
        let ns = self.namespace_named(ns);
        (ns == self.namespace).then_some(ns)
    }
}

/// OpenWhisk's `{key, value}` pairs for parameters and annotations. `init: true` marks a
/// parameter that is given to the function's environment instead of its input; `secret:
/// true` one whose value is stored sealed (decision 0022): as stored, `value` is the sealed
/// text; as the API shows it, `value` is `Null` and left out ([`hide_secrets`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    pub key: String,
    /// Absent only from a secret (an update that keeps the stored value sends none).
    pub value: Value,
    pub init: bool,
    pub secret: bool,
}

impl<'de> Deserialize<'de> for KeyValue {
    /// `value` may be left out of a secret only (`null` given is a value); elsewhere its
    /// absence is refused, as OpenWhisk refuses it.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
            Value::deserialize(d).map(Some)
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Given {
            key: String,
            #[serde(default, deserialize_with = "present")]
            value: Option<Value>,
            #[serde(default)]
            init: bool,
            #[serde(default)]
            secret: bool,
        }
        let g = Given::deserialize(d)?;
        let value = match g.value {
            Some(v) => v,
            None if g.secret => Value::Null,
            None => return Err(serde::de::Error::missing_field("value")),
        };
        Ok(KeyValue {
            key: g.key,
            value,
            init: g.init,
            secret: g.secret,
        })
    }
}

impl KeyValue {
    /// A plain `{key, value}` pair.
    pub fn new(key: impl Into<String>, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value,
            init: false,
            secret: false,
        }
    }
}

impl Serialize for KeyValue {
    /// `{key, value}`, with `init` and `secret` when true; a secret whose value is hidden
    /// (`Null`) is `{key, secret: true}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let hidden = self.secret && self.value.is_null();
        let len = 1 + usize::from(!hidden) + usize::from(self.init) + usize::from(self.secret);
        let mut m = s.serialize_map(Some(len))?;
        m.serialize_entry("key", &self.key)?;
        if !hidden {
            m.serialize_entry("value", &self.value)?;
        }
        if self.init {
            m.serialize_entry("init", &true)?;
        }
        if self.secret {
            m.serialize_entry("secret", &true)?;
        }
        m.end()
    }
}

/// Removes the values of secret parameters before an entity is shown: a reader sees that a
/// secret is set, never its (sealed) value.
pub fn hide_secrets(params: &mut [KeyValue]) {
    for p in params.iter_mut().filter(|p| p.secret) {
        p.value = Value::Null;
    }
}

/// What runs: the kind and, when asked for, the code (base64 for binary kinds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exec {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default)]
    pub binary: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<String>,
    /// A sequence's components: fully qualified action names (`/ns/action`, `/ns/pkg/action`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    /// Set by the server, never by a client: the code is a wasi:http handler (a component
    /// exporting `wasi:http/incoming-handler`), which answers web requests itself.
    #[serde(default, skip_serializing_if = "is_false")]
    pub http: bool,
}

impl Exec {
    /// The kind of a sequence, which has components instead of code.
    pub const SEQUENCE: &'static str = "sequence";

    pub fn is_sequence(&self) -> bool {
        self.kind == Self::SEQUENCE
    }
}

fn is_false(b: &bool) -> bool {
    !b
}

/// An action as the API shows it. `code_hash` is Gust's: the SHA-256 of the code, the key of
/// the compiled artifact; it is not part of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub publish: bool,
    pub exec: Exec,
    pub annotations: Vec<KeyValue>,
    pub parameters: Vec<KeyValue>,
    pub limits: ActionLimits,
    pub updated: u64,
    #[serde(skip)]
    pub code_hash: String,
}

impl Action {
    /// The package the action is in (`pkg` of a stored name `pkg/action`), if any.
    pub fn package(&self) -> Option<&str> {
        self.name.split_once('/').map(|(p, _)| p)
    }

    /// The action's own name, without its package.
    pub fn simple_name(&self) -> &str {
        self.name.rsplit_once('/').map_or(&self.name, |(_, n)| n)
    }

    /// Whether annotation `key` is set to something truthy (OpenWhisk: `true`, a non-empty
    /// string, a non-zero number).
    pub fn annotation_is_truthy(&self, key: &str) -> bool {
        truthy(annotation(&self.annotations, key))
    }
}

/// The value of `key` among `kvs`.
pub fn annotation<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    kvs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

/// OpenWhisk's truthiness of an annotation value.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::Array(_) | Value::Object(_)) => true,
        Some(Value::Null) | None => false,
    }
}

/// The package a binding refers to: `{"namespace": ..., "name": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingRef {
    pub namespace: String,
    pub name: String,
}

/// A package (or, with `binding`, a binding to another namespace's package) as stored and
/// shown. OpenWhisk shows a package that is not a binding with `"binding": {}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Package {
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub publish: bool,
    #[serde(default, with = "binding_json")]
    pub binding: Option<BindingRef>,
    pub annotations: Vec<KeyValue>,
    pub parameters: Vec<KeyValue>,
    pub updated: u64,
}

/// `binding` is `{}` for a package and `{namespace, name}` for a binding.
mod binding_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::BindingRef;

    pub fn serialize<S: Serializer>(b: &Option<BindingRef>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => b.serialize(s),
            None => serde_json::Map::new().serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BindingRef>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match &v {
            serde_json::Value::Object(m) if m.is_empty() => Ok(None),
            serde_json::Value::Null => Ok(None),
            _ => BindingRef::deserialize(v)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// One route of a namespace's API (the API gateway): `method` on `base_path` + `path` runs
/// web action `action` (fully qualified); `path` may hold `{name}` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub namespace: String,
    /// `/name`: the API's first path segment.
    pub base_path: String,
    /// `/`, `/users`, `/users/{id}`...
    pub path: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// `/namespace/[package/]action`.
    pub action: String,
    /// `json` or `http`: how the action's result becomes the response.
    pub response_type: String,
    /// Whether responses carry CORS headers (and OPTIONS is answered).
    #[serde(default = "yes")]
    pub cors: bool,
    /// Most requests per minute this route serves (per gateway process); none if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u64>,
    pub updated: u64,
}

/// A static site of a namespace: its files by relative path (`index.html`, `css/app.css`),
/// each naming its content by SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    pub namespace: String,
    pub name: String,
    pub files: std::collections::BTreeMap<String, SiteFile>,
    /// Serve `index.html` (status 200) for a path that names no file: a single-page app.
    #[serde(default)]
    pub spa: bool,
    /// `Cache-Control` of files other than HTML pages (pages are always revalidated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    pub updated: u64,
}

/// One file of a [`Site`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteFile {
    /// SHA-256 of the content, lower-case hex.
    pub hash: String,
    pub size: u64,
    pub content_type: String,
}

fn yes() -> bool {
    true
}

/// Bumps the patch level of a semantic version: `0.0.1` -> `0.0.2`.
pub fn bump_version(v: &str) -> String {
    let mut parts: Vec<u64> = v.split('.').filter_map(|p| p.parse().ok()).collect();
    if parts.len() != 3 {
        return "0.0.1".to_string();
    }
    parts[2] += 1;
    format!("{}.{}.{}", parts[0], parts[1], parts[2])
}

#[cfg(test)]
mod tests {
    #[test]
    fn bump() {
        assert_eq!(super::bump_version("0.0.1"), "0.0.2");
        assert_eq!(super::bump_version("1.2.9"), "1.2.10");
        assert_eq!(super::bump_version("junk"), "0.0.1");
    }

    #[test]
    fn a_hidden_secret_shows_that_it_is_set_and_not_its_value() {
        use super::KeyValue;
        use serde_json::json;
        let plain: KeyValue = serde_json::from_value(json!({"key": "a", "value": 1})).unwrap();
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            json!({"key": "a", "value": 1})
        );
        let mut secret: Vec<KeyValue> = serde_json::from_value(
            json!([{"key": "p", "value": "gust:v1:x:y", "secret": true, "init": true}]),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&secret).unwrap(),
            json!([{"key": "p", "value": "gust:v1:x:y", "init": true, "secret": true}])
        );
        super::hide_secrets(&mut secret);
        assert_eq!(
            serde_json::to_value(&secret).unwrap(),
            json!([{"key": "p", "init": true, "secret": true}])
        );
        // Sent back as shown, it reads again (an update that keeps the stored value).
        let back: Vec<KeyValue> =
            serde_json::from_value(serde_json::to_value(&secret).unwrap()).unwrap();
        assert_eq!(back, secret);
        // Only a secret may leave its value out; a `null` given is a value.
        assert!(serde_json::from_value::<KeyValue>(json!({"key": "a"})).is_err());
        let null: KeyValue = serde_json::from_value(json!({"key": "a", "value": null})).unwrap();
        assert_eq!(null.value, serde_json::Value::Null);
        assert!(
            serde_json::from_value::<KeyValue>(json!({"key": "a", "value": 1, "x": 2})).is_err()
        );
    }
}
