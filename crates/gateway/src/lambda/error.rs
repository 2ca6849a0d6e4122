//! Lambda's errors: the one mapping from failures to the statuses and error types Lambda's
//! clients read. The type goes in `x-amzn-ErrorType` (where botocore looks first) and the
//! body is `{"Type": "User" | "Server", "Message": ..., "message": ...}`.

use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gust_controller::ControllerError;
use serde_json::json;

use crate::error::CredentialsRefused;

/// A refused Lambda request.
#[derive(Debug)]
pub(crate) struct LambdaError {
    pub(crate) status: StatusCode,
    /// Lambda's error type (`ResourceNotFoundException`, ...).
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    /// Credentials were given and refused: the guard counts it against the address.
    pub(crate) refused: bool,
    /// Seconds in `Retry-After` (a 429).
    pub(crate) retry_after: Option<u64>,
}

impl LambdaError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        LambdaError {
            status,
            kind,
            message: message.into(),
            refused: false,
            retry_after: None,
        }
    }

    /// Marks the credentials the request gave as refused.
    pub(crate) fn refused(mut self) -> Self {
        self.refused = true;
        self
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }

    /// A function that does not exist, named by its ARN as Lambda names it.
    pub(crate) fn function_not_found(arn: &str) -> Self {
        Self::not_found(format!("Function not found: {arn}"))
    }

    pub(crate) fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "ResourceConflictException", message)
    }

    pub(crate) fn invalid_content(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            message,
        )
    }

    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            message,
        )
    }

    pub(crate) fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailedException",
            message,
        )
    }

    pub(crate) fn missing_authentication() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token: Gust's AWS APIs (Lambda, Step Functions) take requests signed with AWS Signature Version 4 (access key id: the namespace key's uuid; secret access key: the key).",
        )
    }

    pub(crate) fn incomplete_signature(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "IncompleteSignatureException",
            message,
        )
    }

    pub(crate) fn invalid_signature(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "InvalidSignatureException", message)
    }

    pub(crate) fn unrecognized_client() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
        .refused()
    }

    /// A body that could not be read: too long (413) or broken (400).
    pub(crate) fn from_body_rejection(e: BytesRejection) -> Self {
        match e {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                Self::too_large("The request body is larger than this server reads.")
            }
            other => Self::invalid_content(format!("The request body could not be read: {other}")),
        }
    }
}

impl From<ControllerError> for LambdaError {
    fn from(e: ControllerError) -> Self {
        use ControllerError::*;
        let (status, kind) = match &e {
            Unauthenticated | AuthenticationMissing | TokenExpired | TokenRevoked => {
                (StatusCode::FORBIDDEN, "UnrecognizedClientException")
            }
            Forbidden(_) | OutOfScope { .. } | WebOnly(_) | TokenCannotMint => {
                (StatusCode::FORBIDDEN, "AccessDeniedException")
            }
            NotFound => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            Conflict | PackageNotEmpty { .. } | Incomplete(_) | IdempotencyKeyReused(_) => {
                (StatusCode::CONFLICT, "ResourceConflictException")
            }
            IdempotencyKeyParameters(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "InvalidParameterValueException",
            ),
            BadRequest(_) | Malformed(_) | ReservedParameters | NameMismatch { .. } => {
                (StatusCode::BAD_REQUEST, "InvalidParameterValueException")
            }
            RequestTooLarge { .. }
            | BodyTooLarge { .. }
            | ParametersTooLarge { .. }
            | TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLargeException"),
            PerMinute { .. } | InFlight { .. } | TooManySteps | TooManyStreams { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException")
            }
            Internal(_) | NoInvoker | Unreachable(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "ServiceException")
            }
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "internal error");
        }
        let mut out = LambdaError::new(status, kind, e.to_string());
        if status == StatusCode::TOO_MANY_REQUESTS {
            out.retry_after = Some(1);
        }
        out.refused = matches!(e, Unauthenticated | TokenExpired | TokenRevoked);
        out
    }
}

impl IntoResponse for LambdaError {
    fn into_response(self) -> Response {
        let side = if self.status.is_server_error() {
            "Server"
        } else {
            "User"
        };
        let body = json!({ "Type": side, "Message": self.message, "message": self.message });
        let mut res = (self.status, axum::Json(body)).into_response();
        res.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.refused {
            res.extensions_mut().insert(CredentialsRefused);
        }
        res
    }
}
