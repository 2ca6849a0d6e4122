//! Turns what the sandbox reports into an OpenWhisk activation record.

use gust_model::annotations;
use gust_model::limits::{MAX_JSON_DEPTH, json_depth};
use gust_model::record::{annotation, common_annotations, record as base};
use gust_model::{Activation, ActivationResponse, ActivationStatus, InvocationMessage, KeyValue};
use gust_runtime_wasm::{Exit, RunOutput};
use serde_json::{Value, json};

/// The annotations of an invoker's record: every record's, then whether it timed out and
/// how long its instance took to start.
fn annotations(msg: &InvocationMessage, start: u64, init_ms: u64, timeout: bool) -> Vec<KeyValue> {
    let mut out = common_annotations(msg, start);
    out.push(annotation(annotations::TIMEOUT, json!(timeout)));
    out.push(annotation(annotations::INIT_TIME, json!(init_ms)));
    out
}

/// A record for an invocation that could not run at all.
pub fn internal_error(msg: &InvocationMessage, start: u64, reason: String) -> Activation {
    let end = gust_model::time::now_ms();
    let response = ActivationResponse::error(ActivationStatus::InternalError, reason);
    let mut record = base(msg, start, end, response);
    record.annotations = annotations(msg, start, 0, false);
    record
}

/// Reads the function's stdout: one JSON object, an `error` field making it an application
/// error.
fn interpret_stdout(out: &RunOutput, max_result: u64) -> ActivationResponse {
    use ActivationStatus::*;
    if out.stdout_len > max_result {
        return ActivationResponse::error(
            DeveloperError,
            format!(
                "The action produced a response that exceeded the allowed length: {} > {} bytes.",
                out.stdout_len, max_result
            ),
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return ActivationResponse::error(
            DeveloperError,
            "The action did not produce a valid JSON response.",
        );
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(v) if json_depth(&v) > MAX_JSON_DEPTH => ActivationResponse::error(
            DeveloperError,
            format!(
                "The action produced a response that nests arrays and objects deeper than {MAX_JSON_DEPTH} levels."
            ),
        ),
        Ok(Value::Object(obj)) => {
            let status = if obj.contains_key("error") {
                ApplicationError
            } else {
                Success
            };
            ActivationResponse::new(status, Value::Object(obj))
        }
        Ok(_) => {
            ActivationResponse::error(DeveloperError, "The action did not return a dictionary.")
        }
        Err(_) => {
            let shown: String = trimmed.chars().take(200).collect();
            ActivationResponse::error(
                DeveloperError,
                format!("The action did not produce a valid JSON response: {shown}"),
            )
        }
    }
}

/// The record of one run.
pub fn build_record(
    msg: &InvocationMessage,
    start: u64,
    end: u64,
    out: RunOutput,
    max_result: u64,
) -> Activation {
    use ActivationStatus::*;
    let mut timeout = false;
    let response = match &out.exit {
        Exit::Ok => interpret_stdout(&out, max_result),
        Exit::Code(code) => {
            let parsed = interpret_stdout(&out, max_result);
            if parsed.status == ApplicationError {
                parsed
            } else {
                ActivationResponse::error(
                    DeveloperError,
                    format!(
                        "The action did not produce a valid response and exited unexpectedly (exit status {code})."
                    ),
                )
            }
        }
        Exit::Timeout => {
            timeout = true;
            ActivationResponse::error(
                DeveloperError,
                format!(
                    "The action exceeded its time limits of {} milliseconds.",
                    msg.limits.timeout
                ),
            )
        }
        Exit::OutOfMemory => ActivationResponse::error(
            DeveloperError,
            "The action exhausted its memory and was aborted.",
        ),
        Exit::Trap(reason) => ActivationResponse::error(
            DeveloperError,
            format!(
                "The action did not produce a valid response and exited unexpectedly: {reason}"
            ),
        ),
        Exit::Init(reason) => ActivationResponse::error(
            DeveloperError,
            format!("Initialization has failed due to: {reason}"),
        ),
        Exit::Internal(reason) | Exit::Overloaded(reason) => {
            ActivationResponse::error(InternalError, reason.clone())
        }
    };
    let init_ms = out.init_time.as_millis() as u64;
    let mut record = base(msg, start, end, response);
    record.logs = out.logs;
    record.annotations = annotations(msg, start, init_ms, timeout);
    if matches!(out.exit, Exit::Overloaded(_)) {
        // A blocking caller gets 503 instead of 500: the platform is busy, not broken.
        record
            .annotations
            .push(annotation(annotations::OVERLOADED, json!(true)));
    }
    if let Some(how) = out.start {
        // Like OpenWhisk, a warm process instance's record has no initTime.
        if how == "warm" {
            record
                .annotations
                .retain(|a| a.key != annotations::INIT_TIME);
        }
        // Gust's: how the process instance was found (cold, prewarmed or warm).
        record
            .annotations
            .push(annotation(annotations::START, json!(how)));
    }
    record
}
