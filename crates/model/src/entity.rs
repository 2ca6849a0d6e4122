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

/// OpenWhisk's `{key, value}` pairs for parameters and annotations. `init: true` marks a
/// parameter that is given to the function's environment instead of its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValue {
    pub key: String,
    pub value: Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
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
}
