//! Per-action and per-namespace limits with OpenWhisk's defaults and ranges.

use serde::{Deserialize, Serialize};

pub const MB: u64 = 1024 * 1024;

// Every limit a client can run into is here or in the types below (`SystemLimits`,
// `ActionLimits`, `NamespaceLimits`); a crate keeps only limits of its own machinery that no
// client sees.

/// Longest a blocking invocation waits for its result (OpenWhisk's 60 s); past it the caller
/// gets the activation id.
pub const MAX_BLOCKING_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Longest page of a list (actions, packages, activations): `limit=0` asks for it.
pub const MAX_LIST: u64 = 200;
/// Largest request body the gateway reads at all (a PUT carries up to 48 MB of code,
/// base64-encoded; a site file up to 48 MB raw).
pub const MAX_BODY: usize = 70 * 1024 * 1024;
/// Largest invoke body the gateway reads at all: the payload limit (1 MB) with room for the
/// exact 413.
pub const MAX_INVOKE_BODY: usize = 2 * 1024 * 1024;
/// Largest web action request body read (the payload limit is checked after).
pub const MAX_WEB_BODY: usize = 2 * 1024 * 1024;
/// Largest API route definition (`PUT .../apis`), as a 413 names it; the body is read up to
/// [`MAX_BODY`].
pub const MAX_ROUTE_BODY: usize = 64 * 1024;
/// Largest site manifest (10,000 files with long paths), as a 413 names it; the body is read
/// up to [`MAX_BODY`].
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// Most files a static site holds.
pub const MAX_SITE_FILES: usize = 10_000;
/// Largest file of a static site.
pub const MAX_SITE_FILE: u64 = 48 * MB;
/// Largest static site, all files together.
pub const MAX_SITE_BYTES: u64 = 1024 * MB;
/// Most site content a namespace keeps, named by its sites or uploaded for a deploy.
pub const MAX_NAMESPACE_SITE_BYTES: u64 = 2 * MAX_SITE_BYTES;
/// Longest file path inside a site.
pub const MAX_SITE_PATH: usize = 1024;
/// How long site content that no site names is kept after its last use (a deploy in
/// progress names it soon).
pub const SITE_BLOB_GRACE_MS: u64 = 10 * 60 * 1000;

/// Deepest nesting of arrays and objects accepted in parameters, payloads and results.
/// Messages wrap these values a few levels deeper, and every reader of a message must stay
/// within serde_json's recursion limit of 128, so user JSON stops well short of it.
pub const MAX_JSON_DEPTH: usize = 100;

/// How deeply `v` nests arrays and objects (a scalar is 0, `{}` is 1).
pub fn json_depth(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, depth + 1))),
            Value::Object(o) => stack.extend(o.values().map(|c| (c, depth + 1))),
            _ => continue,
        }
        deepest = deepest.max(depth + 1);
    }
    deepest
}

/// Limits that apply system-wide: the payload, parameter, result and code sizes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct SystemLimits {
    /// Largest request body for an invocation, in bytes.
    pub max_payload: u64,
    /// Largest total size of an entity's parameters, in bytes.
    pub max_parameters: u64,
    /// Largest result an action may return, in bytes.
    pub max_result: u64,
    /// Largest action code, in bytes (after base64 decoding).
    pub max_code: u64,
    /// Most atomic actions a sequence may run, nested sequences expanded (OpenWhisk's 50).
    pub max_sequence_actions: u64,
}

impl Default for SystemLimits {
    fn default() -> Self {
        SystemLimits {
            max_payload: MB,
            max_parameters: MB,
            max_result: MB,
            max_code: 48 * MB,
            max_sequence_actions: 50,
        }
    }
}

/// A limit value out of its range; the text names the field, the value and the range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be between {min} and {max} {unit}, got {value}.")]
pub struct LimitError {
    pub field: &'static str,
    pub value: u64,
    pub min: u64,
    pub max: u64,
    pub unit: &'static str,
}

/// An action's limits as OpenWhisk shapes them: timeout in ms, memory and logs in MB.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ActionLimits {
    pub timeout: u64,
    pub memory: u64,
    pub logs: u64,
    pub concurrency: u64,
    /// Most instances of the action that run at once (process kinds); 0: the invoker's own
    /// ceiling.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub instances: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ActionLimits {
    pub const TIMEOUT: (u64, u64, u64) = (100, 300_000, 60_000);
    pub const MEMORY: (u64, u64, u64) = (128, 512, 256);
    pub const LOGS: (u64, u64, u64) = (0, 10, 10);
    /// Activations one instance runs at once (Node.js; others run one at a time).
    pub const CONCURRENCY: (u64, u64, u64) = (1, 500, 1);
    pub const INSTANCES: (u64, u64, u64) = (0, 1000, 0);

    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), LimitError> {
        let check = |field, value, (min, max, _): (u64, u64, u64), unit| {
            if value < min || value > max {
                Err(LimitError {
                    field,
                    value,
                    min,
                    max,
                    unit,
                })
            } else {
                Ok(())
            }
        };
        check("timeout", self.timeout, Self::TIMEOUT, "milliseconds")?;
        check("memory", self.memory, Self::MEMORY, "MB")?;
        check("logs", self.logs, Self::LOGS, "MB")?;
        check("concurrency", self.concurrency, Self::CONCURRENCY, "")?;
        check("instances", self.instances, Self::INSTANCES, "")
    }
}

impl Default for ActionLimits {
    fn default() -> Self {
        ActionLimits {
            timeout: Self::TIMEOUT.2,
            memory: Self::MEMORY.2,
            logs: Self::LOGS.2,
            concurrency: Self::CONCURRENCY.2,
            instances: Self::INSTANCES.2,
        }
    }
}

/// Optional limits in a PUT body: what is given replaces, what is absent keeps its value.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionLimitsPatch {
    pub timeout: Option<u64>,
    pub memory: Option<u64>,
    pub logs: Option<u64>,
    pub concurrency: Option<u64>,
    pub instances: Option<u64>,
}

impl ActionLimitsPatch {
    pub fn apply(&self, base: ActionLimits) -> ActionLimits {
        ActionLimits {
            timeout: self.timeout.unwrap_or(base.timeout),
            memory: self.memory.unwrap_or(base.memory),
            logs: self.logs.unwrap_or(base.logs),
            concurrency: self.concurrency.unwrap_or(base.concurrency),
            instances: self.instances.unwrap_or(base.instances),
        }
    }
}

/// A namespace's throttles. The defaults of `gust serve` are set high enough that one
/// developer's load test on one machine is not throttled; operators lower them per namespace.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceLimits {
    pub invocations_per_minute: u64,
    pub concurrent_invocations: u64,
    /// Trigger fires per minute (OpenWhisk's `firesPerMinute`), counted whether or not a rule
    /// is active; absent from namespaces stored before triggers existed.
    #[serde(default = "default_fires_per_minute")]
    pub fires_per_minute: u64,
}

fn default_fires_per_minute() -> u64 {
    NamespaceLimits::default().fires_per_minute
}

impl Default for NamespaceLimits {
    fn default() -> Self {
        NamespaceLimits {
            invocations_per_minute: 10_000_000,
            concurrent_invocations: 10_000,
            fires_per_minute: 1_000_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_nesting() {
        use serde_json::json;
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!({})), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": []}], "c": 2})), 4);
    }

    #[test]
    fn ranges() {
        assert!(ActionLimits::default().validate().is_ok());
        let bad = ActionLimits {
            timeout: 99,
            ..Default::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "timeout must be between 100 and 300000 milliseconds, got 99."
        );
        let bad = ActionLimits {
            memory: 513,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let zero_logs = ActionLimits {
            logs: 0,
            ..Default::default()
        };
        assert!(zero_logs.validate().is_ok());
    }
}
