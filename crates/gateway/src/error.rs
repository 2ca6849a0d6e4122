//! Kit: the one mapping from failures to HTTP statuses and OpenWhisk's error bodies. Imports
//! no other module of the gateway.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gust_controller::ControllerError;
use gust_events::EventError;
use gust_sites::SiteError;
use gust_workflow::WorkflowError;
use serde_json::json;

/// A failed request: status and message; the request id is added on the way out.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Credentials were given and refused (a wrong key, token or `X-Require-Whisk-Auth`):
    /// what the guard counts against the client's address.
    pub credentials_refused: bool,
}

/// Marks a response whose request gave credentials that were refused (see
/// [`ApiError::credentials_refused`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CredentialsRefused;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            credentials_refused: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found() -> Self {
        ControllerError::NotFound.into()
    }

    /// The 503 of a server that runs no workflows (decision 0028's APIs are answered by the
    /// processes that do).
    pub fn no_workflows() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Workflows are not running on this server.",
        )
    }

    /// OpenWhisk's 405 for a method that `supported` (e.g. `["GET", "HEAD"]`) does not name.
    pub fn method_not_allowed(supported: &[&str]) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "HTTP method not allowed, supported methods: {}.",
                supported.join(", ")
            ),
        )
    }
}

impl From<ControllerError> for ApiError {
    fn from(e: ControllerError) -> Self {
        use ControllerError::*;
        let status = match &e {
            Unauthenticated | AuthenticationMissing | TokenExpired | TokenRevoked => {
                StatusCode::UNAUTHORIZED
            }
            Forbidden(_) | OutOfScope { .. } | WebOnly(_) | TokenCannotMint => {
                StatusCode::FORBIDDEN
            }
            NotFound => StatusCode::NOT_FOUND,
            Conflict | PackageNotEmpty { .. } | Incomplete(_) | IdempotencyKeyReused(_) => {
                StatusCode::CONFLICT
            }
            IdempotencyKeyParameters(_) => StatusCode::UNPROCESSABLE_ENTITY,
            BadRequest(_) | Malformed(_) | ReservedParameters | NameMismatch { .. } => {
                StatusCode::BAD_REQUEST
            }
            RequestTooLarge { .. }
            | BodyTooLarge { .. }
            | ParametersTooLarge { .. }
            | TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            PerMinute { .. } | InFlight { .. } | TooManySteps | TooManyStreams { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            NoInvoker | Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "internal error");
        }
        let refused = matches!(e, Unauthenticated | TokenExpired | TokenRevoked);
        ApiError {
            credentials_refused: refused,
            ..ApiError::new(status, e.to_string())
        }
    }
}

impl From<SiteError> for ApiError {
    fn from(e: SiteError) -> Self {
        use SiteError::*;
        let status = match e {
            // The texts OpenWhisk has for these are the controller's.
            Forbidden(ns) => return ControllerError::Forbidden(ns).into(),
            NotFound => return ControllerError::NotFound.into(),
            Store(e) => return ControllerError::from(e).into(),
            NotAHash(_)
            | BadPath { .. }
            | BadName(_)
            | TooManyFiles { .. }
            | TooManyHashes { .. }
            | BadCacheControl
            | WrongHash { .. } => StatusCode::BAD_REQUEST,
            NotUploaded { .. } => StatusCode::CONFLICT,
            FileTooLarge { .. } | SiteTooLarge { .. } | NamespaceFull { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        use EventError::*;
        let status = match e {
            Core(e) => return e.into(),
            RuleIncomplete | NoSuchTrigger(_) | NoSuchAction(_) | ForeignTrigger(_)
            | BadStatus(_) | BadFeed | HookRefused(_) => StatusCode::BAD_REQUEST,
            TriggerGone | NoHook => StatusCode::NOT_FOUND,
            Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            HookUnauthorized(_) => StatusCode::UNAUTHORIZED,
            OtherCollection => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<WorkflowError> for ApiError {
    /// The status the workflow error names (a 400 that names the state, 404, 409, 410), its
    /// message as OpenWhisk's error; a controller's error as every other.
    fn from(e: WorkflowError) -> Self {
        match e.status() {
            None => match e {
                WorkflowError::Controller(c) => c.into(),
                other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
            },
            Some(status) => ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                e.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    /// The body is written by the gateway's middleware, which knows the request id.
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        res.extensions_mut().insert(ErrorBody(self.message));
        if self.credentials_refused {
            res.extensions_mut().insert(CredentialsRefused);
        }
        res
    }
}

/// The message of an error response; the middleware turns it into the JSON body.
#[derive(Debug, Clone)]
pub(crate) struct ErrorBody(pub String);

/// The JSON body of an error.
pub(crate) fn error_body(message: &str, request_id: &str) -> Json<serde_json::Value> {
    Json(json!({ "error": message, "code": request_id }))
}
