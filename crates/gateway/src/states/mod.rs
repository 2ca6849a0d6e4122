//! Resource: AWS Step Functions' API (awsJson 1.0: `POST /` with
//! `X-Amz-Target: AWSStepFunctions.<Operation>`), the subset its clients (boto3, the AWS CLI)
//! need to create state machines and run them, so that they work against Gust with only their
//! endpoint URL changed (decision 0028). A state machine is a workflow of the caller's
//! namespace; an execution is one of its executions, named by its `name`.
//!
//! Every request is signed with AWS Signature Version 4 for service `states`, checked as the
//! Lambda API checks it (`lambda::sigv4`): the access key id is the namespace key's uuid, the
//! secret access key the key. ARNs are
//! `arn:aws:states:<region>:000000000000:stateMachine:<name>` and
//! `...:execution:<state machine>:<execution name>`, in the region the request was signed
//! for (any region names the same state machines). Dates are seconds since the epoch
//! (fractional), as awsJson writes timestamps. Errors are Step Functions' (`error`): 400 with
//! `{"__type", "message"}`.
//!
//! What differs from AWS: `type` `EXPRESS` is accepted and the state machine runs as a
//! standard one (exactly-once steps, history kept; `DescribeStateMachine` says `STANDARD`);
//! `roleArn`, tags, logging and tracing configurations are accepted and not kept (a state
//! machine shows Gust's one role); `creationDate` is the last update's time;
//! `StartSyncExecution` runs any state machine and waits at most [`SYNC_WAIT`], then answers
//! the execution as it is (status `RUNNING` if it still runs). Versions, aliases, activities,
//! map runs and redrives are not offered (`UnknownOperationException`).
//!
//! **Invariant:** a refused request changes nothing: every check runs before the one write.

mod error;
mod executions;
mod history;
mod machines;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gust_model::Identity;
use gust_model::lambda::ACCOUNT;
use gust_model::limits::MAX_INVOKE_BODY;
use gust_workflow::Workflows;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Gateway;
use crate::lambda::sigv4::{STATES, Signed};
pub(crate) use error::SfnError;

/// The content type of awsJson 1.0 requests and answers.
pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The prefix of every operation's `X-Amz-Target`.
const TARGET_PREFIX: &str = "AWSStepFunctions.";

/// Longest `StartSyncExecution` waits for its execution to finish: under botocore's default
/// read timeout of 60 s, so a default client reads the answer.
pub(crate) const SYNC_WAIT: Duration = Duration::from_secs(55);

/// Longest page of `ListStateMachines`, `ListExecutions` and `GetExecutionHistory`
/// (`maxResults`), and the page given when it is 0 or absent.
const MAX_RESULTS: u64 = 1000;
const DEFAULT_RESULTS: u64 = 100;

pub(crate) fn router() -> Router<Gateway> {
    Router::new().route(
        "/",
        // Definitions up to 1 MB and inputs up to 256 KB, as Step Functions' quotas.
        post(dispatch.layer(DefaultBodyLimit::max(MAX_INVOKE_BODY))),
    )
}

/// What every operation works with: the service, who signed, and the region it was signed
/// for (the ARNs' region).
pub(crate) struct Ctx<'a> {
    pub(crate) workflows: &'a Workflows,
    pub(crate) who: &'a Identity,
    pub(crate) region: &'a str,
}

/// `POST /`: the operation of `X-Amz-Target`, once the signature is verified.
async fn dispatch(State(gw): State<Gateway>, req: Request) -> Response {
    match run(&gw, req).await {
        Ok(v) => answer(&v),
        Err(e) => e.into_response(),
    }
}

async fn run(gw: &Gateway, req: Request) -> Result<Value, SfnError> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Some(op) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(SfnError::new(
            "UnknownOperationException",
            "POST / takes a Step Functions request: X-Amz-Target: AWSStepFunctions.<Operation>, signed with AWS Signature Version 4.",
        ));
    };
    let signed = Signed::verify(req, gw, STATES).await?;
    let workflows = gw.workflows.as_ref().ok_or_else(SfnError::unavailable)?;
    let body: Value = if signed.body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&signed.body).map_err(|e| {
            SfnError::new(
                "SerializationException",
                format!("The request body is not a JSON object: {e}"),
            )
        })?
    };
    let ctx = Ctx {
        workflows,
        who: &signed.who,
        region: &signed.region,
    };
    match op {
        "CreateStateMachine" => machines::create(&ctx, body).await,
        "DescribeStateMachine" => machines::describe(&ctx, body).await,
        "UpdateStateMachine" => machines::update(&ctx, body).await,
        "DeleteStateMachine" => machines::delete(&ctx, body).await,
        "ListStateMachines" => machines::list(&ctx, body).await,
        "DescribeStateMachineForExecution" => machines::describe_for_execution(&ctx, body).await,
        "StartExecution" => executions::start(&ctx, body).await,
        "StartSyncExecution" => executions::start_sync(&ctx, body).await,
        "DescribeExecution" => executions::describe(&ctx, body).await,
        "ListExecutions" => executions::list(&ctx, body).await,
        "StopExecution" => executions::stop(&ctx, body).await,
        "GetExecutionHistory" => history::get(&ctx, body).await,
        "SendTaskSuccess" => executions::send_task_success(&ctx, body).await,
        "SendTaskFailure" => executions::send_task_failure(&ctx, body).await,
        "SendTaskHeartbeat" => executions::send_task_heartbeat(&ctx, body).await,
        other => Err(SfnError::new(
            "UnknownOperationException",
            format!("Gust's Step Functions API does not offer {other}."),
        )),
    }
}

/// A 200 with `v` as awsJson.
fn answer(v: &Value) -> Response {
    let mut res = (StatusCode::OK, v.to_string()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    res
}

/// The request `body` as an operation's input shape; a missing member or one of the wrong
/// type is a `ValidationException` naming it.
pub(crate) fn input<T: DeserializeOwned>(body: Value) -> Result<T, SfnError> {
    serde_json::from_value(body)
        .map_err(|e| SfnError::validation(format!("1 validation error detected: {e}")))
}

/// `ms` since the epoch as awsJson's timestamp: seconds, fractional.
pub(crate) fn date(ms: u64) -> Value {
    serde_json::json!(ms as f64 / 1000.0)
}

pub(crate) fn machine_arn(region: &str, name: &str) -> String {
    format!("arn:aws:states:{region}:{ACCOUNT}:stateMachine:{name}")
}

pub(crate) fn execution_arn(region: &str, workflow: &str, name: &str) -> String {
    format!("arn:aws:states:{region}:{ACCOUNT}:execution:{workflow}:{name}")
}

/// The parts of a Step Functions ARN after the account, checked to be of this service
/// (any region) and of `resource` (`stateMachine`, `execution`); another account's is a
/// resource that does not exist here (`Ok(None)`).
fn arn_parts<'a>(arn: &'a str, resource: &str) -> Result<Option<Vec<&'a str>>, SfnError> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts[..] {
        [
            "arn",
            _partition,
            "states",
            _region,
            account,
            kind,
            ref rest @ ..,
        ] if kind == resource && !rest.is_empty() && rest.iter().all(|p| !p.is_empty()) => {
            if account != ACCOUNT {
                return Ok(None);
            }
            Ok(Some(rest.to_vec()))
        }
        _ => Err(SfnError::invalid_arn(arn)),
    }
}

/// The workflow a state machine ARN names.
pub(crate) fn machine_name(arn: &str) -> Result<String, SfnError> {
    match arn_parts(arn, "stateMachine")?.as_deref() {
        Some([name]) => Ok(name.to_string()),
        // A version (`:1`) or an alias of one: Gust keeps only the latest.
        Some(_) | None => Err(SfnError::machine_not_found(arn)),
    }
}

/// The workflow and execution name an execution ARN names.
pub(crate) fn execution_names(arn: &str) -> Result<(String, String), SfnError> {
    match arn_parts(arn, "execution")?.as_deref() {
        Some([workflow, name]) => Ok((workflow.to_string(), name.to_string())),
        Some(_) | None => Err(SfnError::execution_not_found(arn)),
    }
}

/// A state machine or execution name as Step Functions allows it: 1 to 80 characters, no
/// white space, brackets, wildcards, special characters (`"#%\^|~`$&,;:/`) or control
/// characters.
pub(crate) fn check_name(name: &str) -> Result<(), SfnError> {
    let bad =
        |c: char| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c);
    let len = name.chars().count();
    if (1..=80).contains(&len) && !name.chars().any(bad) {
        Ok(())
    } else {
        Err(SfnError::invalid_name(name))
    }
}

/// `maxResults` of a list: 0 or absent is [`DEFAULT_RESULTS`], at most [`MAX_RESULTS`].
pub(crate) fn max_results(n: Option<u64>) -> Result<u64, SfnError> {
    match n {
        None | Some(0) => Ok(DEFAULT_RESULTS),
        Some(n) if n <= MAX_RESULTS => Ok(n),
        Some(n) => Err(SfnError::validation(format!(
            "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to {MAX_RESULTS}"
        ))),
    }
}

/// The number a `nextToken` holds (an offset, or a history event id).
pub(crate) fn token_number(token: Option<&str>) -> Result<Option<u64>, SfnError> {
    match token {
        None | Some("") => Ok(None),
        Some(t) => t
            .parse::<u64>()
            .map(Some)
            .map_err(|_| SfnError::invalid_token(t)),
    }
}

/// A JSON text a request gives (`input`, `output`), parsed; `kind` and `what` name the error.
pub(crate) fn json_text(
    text: Option<&str>,
    kind: &'static str,
    what: &str,
) -> Result<Value, SfnError> {
    match text {
        None => Ok(Value::Object(Default::default())),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| SfnError::new(kind, format!("Invalid {what}: '{t}': {e}"))),
    }
}

/// `v` as the JSON text Step Functions answers with.
pub(crate) fn text(v: &Value) -> Value {
    Value::String(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_state_machines_and_executions() {
        assert_eq!(
            machine_name("arn:aws:states:eu-west-1:000000000000:stateMachine:orders").unwrap(),
            "orders"
        );
        assert_eq!(
            execution_names("arn:aws:states:us-east-1:000000000000:execution:orders:run-1")
                .unwrap(),
            ("orders".to_string(), "run-1".to_string())
        );
        assert_eq!(
            machine_arn("us-east-1", "orders"),
            "arn:aws:states:us-east-1:000000000000:stateMachine:orders"
        );
        assert_eq!(
            execution_arn("us-east-1", "orders", "run-1"),
            "arn:aws:states:us-east-1:000000000000:execution:orders:run-1"
        );
        for bad in [
            "orders",
            "arn:aws:lambda:us-east-1:000000000000:function:f",
            "arn:aws:states:us-east-1:000000000000:execution:orders:r",
            "arn:aws:states:us-east-1:000000000000:stateMachine:",
        ] {
            assert_eq!(machine_name(bad).unwrap_err().kind, "InvalidArn", "{bad}");
        }
        let other = machine_name("arn:aws:states:us-east-1:123456789012:stateMachine:orders");
        assert_eq!(other.unwrap_err().kind, "StateMachineDoesNotExist");
        let version = machine_name("arn:aws:states:us-east-1:000000000000:stateMachine:o:1");
        assert_eq!(version.unwrap_err().kind, "StateMachineDoesNotExist");
        let short = execution_names("arn:aws:states:us-east-1:000000000000:execution:orders");
        assert_eq!(short.unwrap_err().kind, "ExecutionDoesNotExist");
    }

    #[test]
    fn names_follow_step_functions_rules() {
        for ok in ["orders", "run-1_2.3", "Ünïcode", &"x".repeat(80)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a:b",
            "a/b",
            "a*",
            "a\u{7}",
            "{x}",
            &"x".repeat(81),
        ] {
            assert_eq!(check_name(bad).unwrap_err().kind, "InvalidName", "{bad:?}");
        }
    }

    #[test]
    fn pages_and_tokens_are_checked() {
        assert_eq!(max_results(None).unwrap(), DEFAULT_RESULTS);
        assert_eq!(max_results(Some(0)).unwrap(), DEFAULT_RESULTS);
        assert_eq!(max_results(Some(7)).unwrap(), 7);
        assert!(max_results(Some(1001)).is_err());
        assert_eq!(token_number(Some("42")).unwrap(), Some(42));
        assert_eq!(token_number(None).unwrap(), None);
        assert_eq!(token_number(Some("x")).unwrap_err().kind, "InvalidToken");
        assert_eq!(date(1_500), serde_json::json!(1.5));
    }
}
