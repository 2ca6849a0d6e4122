//! Invoke (`POST /2015-03-31/functions/{name}/invocations`), through the controller's one
//! invoke API. `X-Amz-Invocation-Type`: `RequestResponse` waits and answers 200 with what the
//! function returned, `Event` answers 202 once the invocation is journaled, `DryRun` 204
//! once the function is found and the caller may invoke it. Gust's `Idempotency-Key` header
//! makes it once per key (decision 0028): a repeated key answers its first activation.
//!
//! A failed run is still a 200 (a 5xx would make Lambda's clients retry, running the function
//! again), with `X-Amz-Function-Error: Unhandled` and as body the error the runtime posted,
//! verbatim, or, when the run itself failed (timeout, crash, failed init), Lambda's
//! `{"errorType", "errorMessage"}` built from the record.

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use gust_controller::{ControllerError, Idempotent, Invocation, InvokeOutcome, Wait};
use gust_model::{ActivationStatus, annotations, lambda as model};
use serde_json::{Map, Value, json};

use super::error::LambdaError;
use super::functions::query;
use super::sigv4::Signed;
use super::{FunctionRef, LATEST, is_function};
use crate::Gateway;
use crate::extract::trace_of;

/// Bytes of the end of the log that `X-Amz-Log-Result` carries.
const LOG_TAIL: usize = 4096;
/// How long past the function's timeout a `RequestResponse` caller waits for the record
/// (the instance's start and the record's write).
const WAIT_MARGIN: Duration = Duration::from_secs(60);

/// What `X-Amz-Invocation-Type` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn invocation_type(headers: &HeaderMap) -> Result<InvocationType, LambdaError> {
    match header_str(headers, "x-amz-invocation-type") {
        None | Some("RequestResponse") => Ok(InvocationType::RequestResponse),
        Some("Event") => Ok(InvocationType::Event),
        Some("DryRun") => Ok(InvocationType::DryRun),
        Some(other) => Err(LambdaError::invalid_parameter(format!(
            "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun, not '{other}'."
        ))),
    }
}

/// Whether `X-Amz-Log-Type: Tail` asks for the end of the log.
fn wants_tail(headers: &HeaderMap) -> Result<bool, LambdaError> {
    match header_str(headers, "x-amz-log-type") {
        None | Some("None") => Ok(false),
        Some("Tail") => Ok(true),
        Some(other) => Err(LambdaError::invalid_parameter(format!(
            "X-Amz-Log-Type must be None or Tail, not '{other}'."
        ))),
    }
}

/// The event: a JSON object (Gust invokes with one); an empty body is `{}`.
fn event(body: &[u8]) -> Result<Map<String, Value>, LambdaError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(LambdaError::invalid_content(format!(
            "Gust invokes a function with a JSON object as its event; this payload is {}.",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
        Err(e) => Err(LambdaError::invalid_content(format!(
            "Could not parse request body into json: {e}"
        ))),
    }
}

/// `POST /2015-03-31/functions/{name}/invocations`.
pub(crate) async fn invoke(
    State(gw): State<Gateway>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    signed: Signed,
) -> Result<Response, LambdaError> {
    let Signed { who, region, body } = signed;
    let q = query(&q);
    let f = FunctionRef::latest(&name, q.get("Qualifier").map(String::as_str), &region)?;
    let kind = invocation_type(&headers)?;
    let tail = wants_tail(&headers)?;
    let max = gw.controller.system_limits().max_payload;
    if body.len() as u64 > max {
        return Err(LambdaError::too_large(format!(
            "Request must be smaller than {max} bytes for the InvokeFunction operation"
        )));
    }
    let input = event(&body)?;
    let not_found = || LambdaError::function_not_found(&model::function_arn(&region, &f.name));
    let resolved = match gw.controller.resolve(&who, "_", &f.name).await {
        Ok(r) if is_function(&r.action) => r,
        Ok(_) | Err(ControllerError::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let wait = match kind {
        InvocationType::DryRun => {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        InvocationType::Event => Wait::No,
        InvocationType::RequestResponse => {
            Wait::UpTo(Duration::from_millis(resolved.action.limits.timeout) + WAIT_MARGIN)
        }
    };
    // Gust's `Idempotency-Key` (decision 0028): a repeated key answers its first activation.
    let key = match header_str(&headers, "idempotency-key") {
        Some(k) => Some(k.to_string()),
        None if headers.contains_key("idempotency-key") => Some(String::new()),
        None => None,
    };
    let claimed = match &key {
        None => None,
        Some(key) => match gw
            .controller
            .claim_idempotency_key(&who, key, &resolved, &input)
            .await?
        {
            Idempotent::Repeated(first) => {
                let stored = match wait {
                    Wait::No => None,
                    Wait::UpTo(_) => gw
                        .controller
                        .store()
                        .activation(&who.namespace, &first)
                        .await
                        .map_err(ControllerError::from)?,
                };
                let outcome = match stored {
                    Some(record) => {
                        let record = serde_json::value::to_raw_value(&record).map_err(|e| {
                            LambdaError::from(ControllerError::Internal(e.to_string()))
                        })?;
                        InvokeOutcome::Completed(record)
                    }
                    None if wait == Wait::No => InvokeOutcome::Accepted(first),
                    None => InvokeOutcome::Waiting(first),
                };
                return outcome_answer(outcome, tail);
            }
            Idempotent::New(id) => Some((key, id)),
        },
    };
    let invoked = gw
        .controller
        .invoke(Invocation {
            caller: &who,
            action: &resolved,
            params: input,
            wait,
            cause: None,
            secrets: Vec::new(),
            activation_id: claimed.as_ref().map(|(_, id)| id.clone()),
            trace: trace_of(&headers),
        })
        .await;
    let outcome = match invoked {
        Ok(outcome) => outcome,
        Err(e) => {
            // Refused: a retry of the request may run.
            if let Some((key, id)) = &claimed {
                gw.controller.release_idempotency_key(&who, key, id).await;
            }
            return Err(e.into());
        }
    };
    outcome_answer(outcome, tail)
}

/// The answer to an invocation's outcome.
fn outcome_answer(outcome: InvokeOutcome, tail: bool) -> Result<Response, LambdaError> {
    match outcome {
        InvokeOutcome::Accepted(id) => Ok(answer(StatusCode::ACCEPTED, &id, Vec::new())),
        InvokeOutcome::Waiting(id) => {
            // Rare: the record did not come within the function's timeout and the margin.
            // Still a 200, or the client would invoke again.
            let body = json!({
                "errorType": "Sandbox.Timedout",
                "errorMessage": format!("The invocation did not finish in time; its activation is {id}."),
            });
            let mut res = answer(StatusCode::OK, &id, body.to_string().into_bytes());
            res.headers_mut().insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            Ok(res)
        }
        InvokeOutcome::Completed(record) => {
            let record: Value = serde_json::from_str(record.get()).map_err(|e| {
                LambdaError::from(ControllerError::Internal(format!("unreadable record: {e}")))
            })?;
            completed(&record, tail)
        }
    }
}

/// A response with the Lambda headers every Invoke answer has.
fn answer(status: StatusCode, activation_id: &str, body: Vec<u8>) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-amz-executed-version", HeaderValue::from_static(LATEST));
    if let Ok(v) = HeaderValue::from_str(activation_id) {
        h.insert("x-amzn-requestid", v.clone());
        h.insert("x-openwhisk-activation-id", v);
    }
    res
}

/// The answer to a finished RequestResponse invocation, from its record.
fn completed(record: &Value, tail: bool) -> Result<Response, LambdaError> {
    let id = record["activationId"].as_str().unwrap_or_default();
    let status: ActivationStatus = serde_json::from_value(record["response"]["status"].clone())
        .map_err(|e| {
            LambdaError::from(ControllerError::Internal(format!("unreadable record: {e}")))
        })?;
    let result = &record["response"]["result"];
    let (body, failed) = match status {
        ActivationStatus::Success => (model::payload(result).clone(), false),
        ActivationStatus::ApplicationError => (result["error"].clone(), true),
        ActivationStatus::DeveloperError => (developer_error(record), true),
        ActivationStatus::InternalError => {
            let message = result["error"]
                .as_str()
                .unwrap_or("The invocation could not run.");
            let overloaded = annotation(record, annotations::OVERLOADED) == &Value::Bool(true);
            return Err(if overloaded {
                let mut e = LambdaError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    message,
                );
                e.retry_after = Some(1);
                e
            } else {
                LambdaError::from(ControllerError::Internal(message.to_string()))
            });
        }
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut res = answer(StatusCode::OK, id, bytes);
    if failed {
        res.headers_mut().insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    if tail && let Ok(v) = HeaderValue::from_str(&log_tail(record)) {
        res.headers_mut().insert("x-amz-log-result", v);
    }
    Ok(res)
}

/// Lambda's error body for a run that failed on its own (no error posted by the runtime):
/// the error the runtime posted when the record holds one (`{"errorType", ...}`), else one
/// built from what the record says.
fn developer_error(record: &Value) -> Value {
    let error = &record["response"]["result"]["error"];
    if error.get("errorType").is_some() {
        return error.clone();
    }
    let message = error
        .as_str()
        .unwrap_or("The function did not run to its end.");
    let timed_out = annotation(record, annotations::TIMEOUT) == &Value::Bool(true);
    let (error_type, message) = if timed_out {
        let limits = annotation(record, annotations::LIMITS);
        let ms = limits["timeout"].as_u64().unwrap_or(0);
        (
            "Sandbox.Timedout",
            format!(
                "{} Task timed out after {}.{:02} seconds",
                record["activationId"].as_str().unwrap_or_default(),
                ms / 1000,
                (ms % 1000) / 10
            ),
        )
    } else if let Some(reason) = message.strip_prefix("Initialization has failed due to: ") {
        // A runtime's init error names its type first (`Runtime.ImportModuleError: ...`).
        return match reason.split_once(": ") {
            Some((t, m)) if is_error_type(t) => json!({ "errorType": t, "errorMessage": m }),
            _ => json!({ "errorType": "Runtime.InitError", "errorMessage": reason }),
        };
    } else if message.starts_with("Initialization has failed") {
        ("Runtime.InitError", message.to_string())
    } else if message.contains("exhausted its memory") {
        ("Runtime.OutOfMemory", message.to_string())
    } else if message.contains("exceeded the allowed length") {
        ("Function.ResponseSizeTooLarge", message.to_string())
    } else {
        ("Runtime.ExitError", message.to_string())
    };
    json!({ "errorType": error_type, "errorMessage": message })
}

/// Whether `t` reads as a Lambda error type (`Runtime.ImportModuleError`, `Sandbox.Timedout`).
fn is_error_type(t: &str) -> bool {
    t.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.')
    })
}

fn annotation<'a>(record: &'a Value, key: &str) -> &'a Value {
    record["annotations"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map_or(&Value::Null, |kv| &kv["value"])
}

/// Base64 of the last [`LOG_TAIL`] bytes of the log as Lambda writes it: `START`, the lines
/// the function wrote (without Gust's time and stream prefix), `END` and `REPORT`.
fn log_tail(record: &Value) -> String {
    let id = record["activationId"].as_str().unwrap_or_default();
    let mut text = format!("START RequestId: {id} Version: {LATEST}\n");
    for line in record["logs"].as_array().into_iter().flatten() {
        let line = line.as_str().unwrap_or_default();
        // `<time> <stream>: <text>`
        let text_of = line
            .split_once(' ')
            .and_then(|(_, rest)| rest.split_once(": "))
            .map_or(line, |(_, t)| t);
        text.push_str(text_of);
        text.push('\n');
    }
    let duration = record["duration"].as_u64().unwrap_or(0);
    let memory = annotation(record, annotations::LIMITS)["memory"]
        .as_u64()
        .unwrap_or(0);
    text.push_str(&format!("END RequestId: {id}\n"));
    text.push_str(&format!(
        "REPORT RequestId: {id}\tDuration: {duration}.00 ms\tBilled Duration: {duration} ms\tMemory Size: {memory} MB\t"
    ));
    let init = annotation(record, annotations::INIT_TIME)
        .as_u64()
        .unwrap_or(0);
    if init > 0 {
        text.push_str(&format!("Init Duration: {init}.00 ms\t"));
    }
    text.push('\n');
    let mut start = text.len().saturating_sub(LOG_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    base64::engine::general_purpose::STANDARD.encode(&text.as_bytes()[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, result: Value, annotations: Value, logs: Value) -> Value {
        json!({
            "activationId": "0a1b",
            "duration": 12,
            "response": { "status": status, "result": result },
            "annotations": annotations,
            "logs": logs,
        })
    }

    async fn body_of(res: Response) -> Vec<u8> {
        axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn results_become_payloads_and_errors_unhandled() {
        // A plain object, and a wrapped string.
        let res = completed(
            &record("success", json!({"ok": 1}), json!([]), json!([])),
            false,
        )
        .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("x-amz-function-error").is_none());
        assert_eq!(res.headers()["x-amz-executed-version"], "$LATEST");
        assert_eq!(body_of(res).await, br#"{"ok":1}"#);
        let res = completed(
            &record(
                "success",
                json!({"lambda-payload": "hi"}),
                json!([]),
                json!([]),
            ),
            false,
        )
        .unwrap();
        assert_eq!(body_of(res).await, br#""hi""#);
        // The runtime's error body, verbatim.
        let e = json!({"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []});
        let res = completed(
            &record(
                "application error",
                json!({"error": e}),
                json!([]),
                json!([]),
            ),
            false,
        )
        .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-amz-function-error"], "Unhandled");
        assert_eq!(
            serde_json::from_slice::<Value>(&body_of(res).await).unwrap(),
            e
        );
    }

    #[test]
    fn developer_errors_are_named_as_lambda_names_them() {
        let check = |result: Value, annotations: Value, error_type: &str| {
            let r = record("action developer error", result, annotations, json!([]));
            let e = developer_error(&r);
            assert_eq!(e["errorType"], error_type, "{e}");
            assert!(e["errorMessage"].is_string());
            e
        };
        let e = check(
            json!({"error": "The action exceeded its time limits of 3000 milliseconds."}),
            json!([{"key": "timeout", "value": true}, {"key": "limits", "value": {"timeout": 3000}}]),
            "Sandbox.Timedout",
        );
        assert_eq!(e["errorMessage"], "0a1b Task timed out after 3.00 seconds");
        check(
            json!({"error": "Initialization has failed due to: no module"}),
            json!([]),
            "Runtime.InitError",
        );
        let e = check(
            json!({"error": "Initialization has failed due to: Runtime.ImportModuleError: No module named 'app'"}),
            json!([]),
            "Runtime.ImportModuleError",
        );
        assert_eq!(e["errorMessage"], "No module named 'app'");
        check(
            json!({"error": "The action did not produce a valid response and exited unexpectedly (exit status 1)."}),
            json!([{"key": "timeout", "value": false}]),
            "Runtime.ExitError",
        );
        check(
            json!({"error": {"errorType": "Runtime.ImportModuleError", "errorMessage": "x"}}),
            json!([]),
            "Runtime.ImportModuleError",
        );
    }

    #[test]
    fn events_are_objects() {
        assert!(event(b"").unwrap().is_empty());
        assert_eq!(event(br#"{"a":1}"#).unwrap()["a"], 1);
        let e = event(b"[1]").unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.kind),
            (400, "InvalidRequestContentException")
        );
        assert!(e.message.contains("an array"));
        assert!(
            event(b"{")
                .unwrap_err()
                .message
                .starts_with("Could not parse")
        );
    }

    #[test]
    fn the_log_tail_is_the_last_4_kb_of_lambda_s_log() {
        let lines: Vec<String> = (0..500)
            .map(|i| format!("2026-12-06T10:00:00.000000Z stdout: line {i}"))
            .collect();
        let r = record(
            "success",
            json!({}),
            json!([{"key": "limits", "value": {"memory": 128}}]),
            json!(lines),
        );
        let text = base64::engine::general_purpose::STANDARD
            .decode(log_tail(&r))
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text.len(), LOG_TAIL);
        assert!(text.contains(
            "\nline 499\nEND RequestId: 0a1b\nREPORT RequestId: 0a1b\tDuration: 12.00 ms"
        ));
        assert!(text.contains("Memory Size: 128 MB"));
        assert!(!text.contains("stdout:"));
        let short = record("success", json!({}), json!([]), json!(["t stderr: oops"]));
        let text = base64::engine::general_purpose::STANDARD
            .decode(log_tail(&short))
            .unwrap();
        assert!(
            String::from_utf8(text)
                .unwrap()
                .starts_with("START RequestId: 0a1b Version: $LATEST\noops\nEND")
        );
    }
}
