//! Step Functions' errors: the one mapping from failures to what its clients read. awsJson
//! errors are HTTP 400 (a missing state machine or execution too) with
//! `{"__type": <type>, "message": ...}` and the type in `x-amzn-ErrorType`; a refused
//! signature is answered as Lambda's API answers it (403 and its type), in this shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gust_workflow::WorkflowError;
use serde_json::json;

use super::CONTENT_TYPE;
use crate::error::CredentialsRefused;
use crate::lambda::error::LambdaError;

/// A refused Step Functions request.
#[derive(Debug)]
pub(crate) struct SfnError {
    pub(crate) status: StatusCode,
    /// Step Functions' error type (`StateMachineDoesNotExist`, ...).
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    /// Credentials were given and refused: the guard counts it against the address.
    pub(crate) refused: bool,
}

impl SfnError {
    /// A 400 of type `kind`.
    pub(crate) fn new(kind: &'static str, message: impl Into<String>) -> Self {
        SfnError {
            status: StatusCode::BAD_REQUEST,
            kind,
            message: message.into(),
            refused: false,
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }

    pub(crate) fn invalid_arn(arn: &str) -> Self {
        Self::new("InvalidArn", format!("Invalid Arn: '{arn}'"))
    }

    pub(crate) fn invalid_name(name: &str) -> Self {
        Self::new("InvalidName", format!("Invalid Name: '{name}'"))
    }

    pub(crate) fn invalid_token(token: &str) -> Self {
        Self::new("InvalidToken", format!("Invalid Token: '{token}'"))
    }

    pub(crate) fn machine_not_found(arn: &str) -> Self {
        Self::new(
            "StateMachineDoesNotExist",
            format!("State Machine Does Not Exist: '{arn}'"),
        )
    }

    pub(crate) fn execution_not_found(arn: &str) -> Self {
        Self::new(
            "ExecutionDoesNotExist",
            format!("Execution Does Not Exist: '{arn}'"),
        )
    }

    /// A server that runs no workflows.
    pub(crate) fn unavailable() -> Self {
        SfnError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            ..Self::new(
                "ServiceUnavailable",
                "Workflows are not running on this server.",
            )
        }
    }
}

impl From<WorkflowError> for SfnError {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::Controller(c) => LambdaError::from(c).into(),
            e => Self::new(e.sfn_type(), e.to_string()),
        }
    }
}

impl From<LambdaError> for SfnError {
    fn from(e: LambdaError) -> Self {
        SfnError {
            status: e.status,
            kind: e.kind,
            message: e.message,
            refused: e.refused,
        }
    }
}

impl IntoResponse for SfnError {
    fn into_response(self) -> Response {
        let body = json!({ "__type": self.kind, "message": self.message });
        let mut res = (self.status, body.to_string()).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        if self.refused {
            res.extensions_mut().insert(CredentialsRefused);
        }
        res
    }
}
