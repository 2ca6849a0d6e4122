//! Activation records in OpenWhisk's shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::entity::KeyValue;

/// The four outcomes of an activation, with OpenWhisk's names and status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivationStatus {
    #[serde(rename = "success")]
    Success,
    #[serde(rename = "application error")]
    ApplicationError,
    #[serde(rename = "action developer error")]
    DeveloperError,
    #[serde(rename = "whisk internal error")]
    InternalError,
}

impl ActivationStatus {
    pub fn code(self) -> u8 {
        match self {
            ActivationStatus::Success => 0,
            ActivationStatus::ApplicationError => 1,
            ActivationStatus::DeveloperError => 2,
            ActivationStatus::InternalError => 3,
        }
    }
}

/// `response` of a record: the outcome and the result object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationResponse {
    pub status: ActivationStatus,
    #[serde(rename = "statusCode")]
    pub status_code: u8,
    pub success: bool,
    pub result: Value,
}

impl ActivationResponse {
    pub fn new(status: ActivationStatus, result: Value) -> Self {
        ActivationResponse {
            status,
            status_code: status.code(),
            success: status == ActivationStatus::Success,
            result,
        }
    }

    /// An error outcome whose result is `{"error": message}`.
    pub fn error(status: ActivationStatus, message: impl Into<String>) -> Self {
        Self::new(status, serde_json::json!({ "error": message.into() }))
    }
}

/// One activation record, as stored and as `GET .../activations/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activation {
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub subject: String,
    pub activation_id: String,
    pub start: u64,
    pub end: u64,
    pub duration: u64,
    pub status_code: u8,
    pub response: ActivationResponse,
    pub logs: Vec<String>,
    pub annotations: Vec<KeyValue>,
    pub publish: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// A record serialized once, with the fields a store indexes: the store keeps `json` as the
/// document and a blocking caller is sent the same bytes.
#[derive(Debug, Clone)]
pub struct EncodedActivation {
    pub activation_id: String,
    pub namespace: String,
    pub name: String,
    pub start: u64,
    pub json: Box<RawValue>,
}

impl EncodedActivation {
    pub fn new(record: &Activation) -> serde_json::Result<Self> {
        Ok(EncodedActivation {
            activation_id: record.activation_id.clone(),
            namespace: record.namespace.clone(),
            name: record.name.clone(),
            start: record.start,
            json: serde_json::value::to_raw_value(record)?,
        })
    }
}

/// What `GET .../activations` lists for a record when `docs` is not set. Read from a stored
/// record without building its logs or result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationSummary {
    pub activation_id: String,
    pub annotations: Vec<KeyValue>,
    pub duration: u64,
    pub end: u64,
    pub name: String,
    pub namespace: String,
    pub publish: bool,
    pub start: u64,
    pub status_code: u8,
    pub version: String,
}
