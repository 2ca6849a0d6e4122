//! Resource: AWS Lambda's control and invoke API (`/2015-03-31/functions...`), function URL
//! configurations (`/2021-10-31/functions/{name}/url`) and asynchronous invocation
//! configurations (`/2019-09-25/functions/{name}/event-invoke-config`), the subset Lambda's
//! clients (boto3, the AWS CLI) need, so that they work against Gust with only their endpoint
//! URL changed (decision 0025). Imports the kit only.
//!
//! A Lambda function is an action of the caller's namespace, in no package, of kind
//! `lambda:<Runtime>` (`gust_model::lambda`): `Handler` is its `exec.main`, its code the zip,
//! `Environment.Variables` its `init` parameters, `Timeout` and `MemorySize` its limits, and
//! what only Lambda has (role, description, revision id, tags, code size, function URL) its
//! `lambda` annotation. An action of another kind is not a function here (404), whatever its
//! name. Only `$LATEST` exists: another qualifier is a 404.
//!
//! Every request is signed with AWS Signature Version 4 ([`sigv4`]): the access key id is
//! the namespace key's uuid, the secret access key the key. Errors are Lambda's
//! ([`error::LambdaError`]): `x-amzn-ErrorType` and `{"Type", "Message"}`.
//!
//! **Invariant:** a refused request changes nothing: every check runs before the one write.
//! An invocation goes through the controller's one invoke API, like any other.

// `states` (Step Functions' API) verifies signatures with these too.
pub(crate) mod error;
mod event_config;
mod functions;
mod invoke;
pub(crate) mod sigv4;
mod url;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use base64::Engine as _;
use gust_model::lambda::{self as model, ACCOUNT};
use gust_model::{Action, KeyValue};
use serde_json::{Map, Value, json};

use crate::Gateway;
use error::LambdaError;

/// The only version Gust keeps of a function.
pub(crate) const LATEST: &str = "$LATEST";

/// The body a request other than CreateFunction, UpdateFunctionCode and Invoke may carry:
/// a forged request with a known key id is read before its signature can be checked.
const SMALL_BODY: usize = 64 * 1024;

pub(crate) fn router() -> Router<Gateway> {
    let small = || DefaultBodyLimit::max(SMALL_BODY);
    Router::new()
        .route(
            "/2015-03-31/functions",
            get(functions::list.layer(small())).post(functions::create),
        )
        .route(
            "/2015-03-31/functions/",
            get(functions::list.layer(small())).post(functions::create),
        )
        .route(
            "/2015-03-31/functions/{name}",
            get(functions::get).delete(functions::delete).layer(small()),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(functions::get_configuration)
                .put(functions::update_configuration)
                .layer(small()),
        )
        .route(
            "/2015-03-31/functions/{name}/code",
            put(functions::update_code),
        )
        .route(
            "/2015-03-31/functions/{name}/invocations",
            // Inside the router's `DefaultBodyLimit::max(MAX_BODY)`: this one is the one the
            // body is read with.
            post(invoke::invoke.layer(DefaultBodyLimit::max(gust_model::limits::MAX_INVOKE_BODY))),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            get(event_config::get)
                .put(event_config::put)
                .post(event_config::update)
                .delete(event_config::delete)
                .layer(small()),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(event_config::list).layer(small()),
        )
        .route(
            "/2021-10-31/functions/{name}/url",
            get(url::get)
                .post(url::create)
                .put(url::update)
                .delete(url::delete)
                .layer(small()),
        )
}

/// A function as a request names it: `my-function`, `my-function:$LATEST`, a partial ARN
/// (`000000000000:function:my-function`) or a full one
/// (`arn:aws:lambda:us-east-1:000000000000:function:my-function`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FunctionRef {
    pub(crate) name: String,
    /// The version or alias the name carried, if any.
    pub(crate) qualifier: Option<String>,
}

impl FunctionRef {
    pub(crate) fn parse(s: &str) -> Result<FunctionRef, LambdaError> {
        let parts: Vec<&str> = s.split(':').collect();
        let (account, rest) = match parts[..] {
            [
                "arn",
                _partition,
                "lambda",
                _region,
                account,
                "function",
                ref rest @ ..,
            ] => (Some(account), rest),
            [account, "function", ref rest @ ..] => (Some(account), rest),
            _ => (None, &parts[..]),
        };
        let (name, qualifier) = match rest {
            [name] => (*name, None),
            [name, q] => (*name, Some(q.to_string())),
            _ => return Err(invalid_name(s)),
        };
        check_name(name).map_err(|_| invalid_name(s))?;
        if let Some(a) = account
            && a != ACCOUNT
        {
            // Gust's functions are all in one account; another's is none of them.
            return Err(LambdaError::function_not_found(s));
        }
        Ok(FunctionRef {
            name: name.to_string(),
            qualifier,
        })
    }

    /// The function, checked to be `$LATEST` (with the query's `Qualifier`, if any).
    pub(crate) fn latest(
        s: &str,
        query_qualifier: Option<&str>,
        region: &str,
    ) -> Result<FunctionRef, LambdaError> {
        let f = Self::parse(s)?;
        for q in [f.qualifier.as_deref(), query_qualifier]
            .into_iter()
            .flatten()
        {
            if q != LATEST {
                return Err(LambdaError::function_not_found(&format!(
                    "{}:{q}",
                    model::function_arn(region, &f.name)
                )));
            }
        }
        Ok(f)
    }
}

fn invalid_name(s: &str) -> LambdaError {
    LambdaError::invalid_parameter(format!(
        "1 validation error detected: Value '{s}' at 'functionName' failed to satisfy constraint: a function name (letters, digits, - and _, at most 64 characters), optionally with ':$LATEST', or its ARN."
    ))
}

/// A bare function name: `[a-zA-Z0-9-_]{1,64}`.
pub(crate) fn check_name(name: &str) -> Result<(), LambdaError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(invalid_name(name)) }
}

/// Whether `a` is a Lambda function: a Lambda kind, in no package.
pub(crate) fn is_function(a: &Action) -> bool {
    a.package().is_none() && model::is_lambda_kind(&a.exec.kind)
}

/// The `lambda` annotation of `a` (an empty object when it has none).
pub(crate) fn settings(a: &Action) -> Map<String, Value> {
    gust_model::entity::annotation(&a.annotations, model::ANNOTATION)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// `a`'s annotations with the `lambda` one replaced by `settings`.
pub(crate) fn with_settings(a: &Action, settings: Map<String, Value>) -> Vec<KeyValue> {
    let mut out: Vec<KeyValue> = a
        .annotations
        .iter()
        .filter(|kv| kv.key != model::ANNOTATION && kv.key != gust_model::annotations::EXEC)
        .cloned()
        .collect();
    out.push(KeyValue::new(model::ANNOTATION, Value::Object(settings)));
    out
}

/// A fresh revision id, as every write through this API gives a function.
pub(crate) fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The architecture this server runs functions on, in Lambda's words.
pub(crate) fn architecture() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    }
}

/// `ms` since the epoch as Lambda writes times (`2026-12-06T10:00:00.000+0000`).
pub(crate) fn lambda_time(ms: u64) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// The environment variables of `a`: its `init` parameters (a secret one is left out: its
/// value is never shown).
pub(crate) fn variables(a: &Action) -> Map<String, Value> {
    a.parameters
        .iter()
        .filter(|p| p.init && !p.secret)
        .map(|p| {
            let v = match &p.value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (p.key.clone(), Value::String(v))
        })
        .collect()
}

/// `FunctionConfiguration` of `a` in `region`.
pub(crate) fn configuration(a: &Action, region: &str) -> Value {
    let s = settings(a);
    let code_sha256 = hex::decode(&a.code_hash)
        .map(|h| base64::engine::general_purpose::STANDARD.encode(h))
        .unwrap_or_default();
    let mut c = json!({
        "FunctionName": a.name,
        "FunctionArn": model::function_arn(region, &a.name),
        "Runtime": model::runtime_name(&a.exec.kind).unwrap_or_default(),
        "Role": s.get("role").cloned().unwrap_or_else(|| json!(default_role())),
        "Handler": a.exec.main,
        "CodeSize": s.get("codeSize").cloned().unwrap_or(json!(0)),
        "CodeSha256": code_sha256,
        "Description": s.get("description").cloned().unwrap_or(json!("")),
        "Timeout": a.limits.timeout.div_ceil(1000),
        "MemorySize": a.limits.memory,
        "LastModified": lambda_time(a.updated),
        "Version": LATEST,
        "RevisionId": s.get("revisionId").cloned().unwrap_or(json!(a.version)),
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [architecture()],
        "EphemeralStorage": { "Size": 512 },
    });
    let vars = variables(a);
    if !vars.is_empty() {
        c["Environment"] = json!({ "Variables": vars });
    }
    c
}

/// The role a function created without one shows.
fn default_role() -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/gust")
}

/// `<scheme>://<host>` of the request: what URLs handed back start with.
pub(crate) fn base_url(headers: &HeaderMap, tls: bool) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, qualifier: Option<&str>) -> FunctionRef {
        FunctionRef {
            name: name.into(),
            qualifier: qualifier.map(str::to_string),
        }
    }

    #[test]
    fn functions_are_named_by_name_or_arn() {
        let ok = |s: &str| FunctionRef::parse(s).unwrap();
        assert_eq!(ok("my-fn_1"), f("my-fn_1", None));
        assert_eq!(ok("my-fn:$LATEST"), f("my-fn", Some("$LATEST")));
        assert_eq!(ok("000000000000:function:my-fn"), f("my-fn", None));
        assert_eq!(
            ok("arn:aws:lambda:eu-west-1:000000000000:function:my-fn"),
            f("my-fn", None)
        );
        assert_eq!(
            ok("arn:aws:lambda:us-east-1:000000000000:function:my-fn:7"),
            f("my-fn", Some("7"))
        );
        for bad in [
            "",
            "a/b",
            "a b",
            "a:b:c",
            &"x".repeat(65),
            "arn:aws:s3:::bucket",
        ] {
            let e = FunctionRef::parse(bad).unwrap_err();
            assert_eq!(e.kind, "InvalidParameterValueException", "{bad}");
        }
        let other = FunctionRef::parse("arn:aws:lambda:us-east-1:123456789012:function:f");
        assert_eq!(other.unwrap_err().kind, "ResourceNotFoundException");
        assert!(FunctionRef::latest("f", Some("$LATEST"), "us-east-1").is_ok());
        let e = FunctionRef::latest("f:1", None, "us-east-1").unwrap_err();
        assert_eq!(e.status, 404);
        assert_eq!(
            e.message,
            "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f:1"
        );
        assert!(FunctionRef::latest("f", Some("prod"), "us-east-1").is_err());
    }

    #[test]
    fn times_are_written_as_lambda_writes_them() {
        assert_eq!(
            lambda_time(1_440_938_160_123),
            "2015-08-30T12:36:00.123+0000"
        );
    }
}
