//! AWS Lambda functions as Gust actions (decision 0025): their kinds, and how a Lambda
//! runtime's answer becomes an activation's result and back.
//!
//! A Lambda function is an action of kind `lambda:<runtime>` (`lambda:python3.11`,
//! `lambda:nodejs20.x`, `lambda:provided.al2023`), its `exec.main` the Lambda handler
//! (`app.handler`), its code a zip, its environment variables `init` parameters, and its
//! Lambda-only settings (role, description, revision) the `lambda` annotation.
//!
//! **Result mapping:** a runtime's response `V` is the activation's result as it is when it is
//! an object with neither an `error` nor a `lambda-payload` field; any other `V` (a string,
//! a number, `null`, an array, or an object with one of those fields) is stored as
//! `{"lambda-payload": V}`, so that the result is always an object and an `error` field always
//! means a failure. A runtime's error body `E` is stored as `{"error": E}` (an application
//! error). [`payload`] gives `V` back.

use serde_json::{Map, Value};

/// Prefix of a Lambda function's kind.
pub const KIND_PREFIX: &str = "lambda:";
/// Result field that holds a response that is not a plain object.
pub const PAYLOAD_FIELD: &str = "lambda-payload";
/// Annotation holding a Lambda function's own settings (`{"role", "description", ...}`).
pub const ANNOTATION: &str = "lambda";
/// The region Gust answers for when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The account id in ARNs (Gust has no AWS accounts; namespaces play their part).
pub const ACCOUNT: &str = "000000000000";

/// The names Lambda keeps for itself in a function's environment (its runtime sets them, or
/// they name AWS credentials): the Lambda API refuses them, and an `init` parameter of one
/// does not reach the runtime.
pub const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// How a Lambda runtime is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `python3.x`: Gust's Python runtime client calls the handler.
    Python,
    /// `nodejsNN.x`: Gust's Node.js runtime client calls the handler.
    Node,
    /// `provided`, `provided.al2`, `provided.al2023`: the zip's `bootstrap` executable is
    /// the runtime.
    Provided,
}

/// The Lambda runtime a kind names (`lambda:python3.12` -> `python3.12`), if it is one.
pub fn runtime_name(kind: &str) -> Option<&str> {
    kind.strip_prefix(KIND_PREFIX)
}

/// How the runtime `name` (`python3.11`, `nodejs20.x`, `provided.al2023`) is run, if Gust
/// knows it.
pub fn runtime(name: &str) -> Option<Runtime> {
    if let Some(v) = name.strip_prefix("python3.") {
        return (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then_some(Runtime::Python);
    }
    if let Some(v) = name.strip_prefix("nodejs") {
        let major = v.strip_suffix(".x")?;
        return (!major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()))
            .then_some(Runtime::Node);
    }
    matches!(name, "provided" | "provided.al2" | "provided.al2023").then_some(Runtime::Provided)
}

/// Whether `kind` is a Lambda function's kind Gust can run.
pub fn is_lambda_kind(kind: &str) -> bool {
    runtime_name(kind).and_then(runtime).is_some()
}

/// The activation result for a runtime's response `body` (JSON text), as JSON text.
/// `None` when `body` is not JSON.
pub fn result_of_response(body: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let plain = v
        .as_object()
        .is_some_and(|o| !o.contains_key("error") && !o.contains_key(PAYLOAD_FIELD));
    if plain {
        return Some(body.to_vec());
    }
    let mut wrapped = Map::new();
    wrapped.insert(PAYLOAD_FIELD.into(), v);
    serde_json::to_vec(&Value::Object(wrapped)).ok()
}

/// The activation result for a runtime's error `body`: `{"error": <body>}` (a body that is
/// not JSON is kept as a string).
pub fn result_of_error(body: &[u8]) -> Vec<u8> {
    let e: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    let mut out = Map::new();
    out.insert("error".into(), e);
    serde_json::to_vec(&Value::Object(out)).unwrap_or_default()
}

/// The response a Lambda client sees for an activation `result`: the wrapped payload, or the
/// result itself.
pub fn payload(result: &Value) -> &Value {
    match result.as_object() {
        Some(o) if o.len() == 1 => o.get(PAYLOAD_FIELD).unwrap_or(result),
        _ => result,
    }
}

/// `arn:aws:lambda:<region>:000000000000:function:<name>`.
pub fn function_arn(region: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runtimes_are_recognised_by_name() {
        assert_eq!(runtime("python3.11"), Some(Runtime::Python));
        assert_eq!(runtime("nodejs20.x"), Some(Runtime::Node));
        assert_eq!(runtime("provided.al2023"), Some(Runtime::Provided));
        for bad in [
            "python3.",
            "python2.7",
            "nodejs20",
            "nodejs.x",
            "java21",
            "provided.x",
        ] {
            assert_eq!(runtime(bad), None, "{bad}");
        }
        assert!(is_lambda_kind("lambda:python3.12"));
        assert!(!is_lambda_kind("python:3.11"));
    }

    #[test]
    fn every_response_round_trips_through_the_result() {
        for v in [
            json!({"ok": 1}),
            json!("text"),
            json!(null),
            json!(3),
            json!([1, 2]),
            json!({"error": "a field, not a failure"}),
            json!({"lambda-payload": 1}),
            json!({}),
        ] {
            let body = serde_json::to_vec(&v).unwrap();
            let result: Value =
                serde_json::from_slice(&result_of_response(&body).unwrap()).unwrap();
            assert!(result.is_object());
            assert!(result.get("error").is_none(), "{result}");
            assert_eq!(payload(&result), &v);
        }
        assert!(result_of_response(b"not json").is_none());
        let e: Value = serde_json::from_slice(&result_of_error(b"{\"errorType\":\"E\"}")).unwrap();
        assert_eq!(e, json!({"error": {"errorType": "E"}}));
    }
}
