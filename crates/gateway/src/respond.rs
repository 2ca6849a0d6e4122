//! Kit: response builders that several resources share — JSON answers, the 202 of an accepted
//! invocation, the activation id header, and the parts of a finished activation's record that
//! decide a response. Imports the kit only.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gust_controller::ControllerError;
use gust_model::ActivationStatus;
use serde_json::json;
use serde_json::value::RawValue;

use crate::ApiError;

/// What a handler returns: a response, or an error that `error.rs` maps.
pub(crate) type ApiResult = Result<Response, ApiError>;

/// `v` as JSON with `status`.
pub(crate) fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response {
    (status, Json(v)).into_response()
}

/// Names the activation that answered in `X-OpenWhisk-Activation-Id`.
pub(crate) fn with_activation_id(mut res: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        res.headers_mut().insert("x-openwhisk-activation-id", v);
    }
    res
}

/// The answer to an invocation that was accepted but has no result yet: 202 with its id.
pub(crate) fn accepted(id: &str) -> Response {
    with_activation_id(
        json_response(StatusCode::ACCEPTED, &json!({ "activationId": id })),
        id,
    )
}

/// The parts of a finished activation's stored record that decide a response; the result
/// stays the record's text until a response needs its value.
#[derive(serde::Deserialize)]
pub(crate) struct Finished<'a> {
    #[serde(rename = "activationId")]
    pub(crate) activation_id: String,
    #[serde(borrow)]
    pub(crate) response: FinishedResponse<'a>,
}

#[derive(serde::Deserialize)]
pub(crate) struct FinishedResponse<'a> {
    pub(crate) status: ActivationStatus,
    #[serde(borrow)]
    pub(crate) result: &'a RawValue,
}

impl<'a> Finished<'a> {
    /// Reads the parts of `record` (a stored record's JSON); a 500 if it has none.
    pub(crate) fn read(record: &'a str) -> Result<Self, ApiError> {
        serde_json::from_str(record).map_err(internal)
    }
}

/// A stored document the gateway cannot read: a 500.
pub(crate) fn internal(e: serde_json::Error) -> ApiError {
    ApiError::from(ControllerError::Internal(e.to_string()))
}
