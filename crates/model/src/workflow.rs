//! Durable workflows and async delivery as stored (decision 0028): a workflow's definition
//! (Amazon States Language), its executions, their history and inbox, and the rows async
//! delivery keeps (an action's delivery config, a delivery in progress, a dead letter).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A workflow of a namespace: a named ASL state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub namespace: String,
    pub name: String,
    pub version: String,
    /// The ASL definition, as given (validated at create/update).
    pub definition: Value,
    /// Ms since the epoch of the last create/update.
    pub updated: u64,
}

/// Where an execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl ExecutionStatus {
    /// Step Functions' name of it (`RUNNING`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Aborted => "ABORTED",
        }
    }

    /// The status named `s` (Step Functions' spelling).
    pub fn parse(s: &str) -> Option<ExecutionStatus> {
        Some(match s {
            "RUNNING" => ExecutionStatus::Running,
            "SUCCEEDED" => ExecutionStatus::Succeeded,
            "FAILED" => ExecutionStatus::Failed,
            "TIMED_OUT" => ExecutionStatus::TimedOut,
            "ABORTED" => ExecutionStatus::Aborted,
            _ => return None,
        })
    }

    pub fn is_running(self) -> bool {
        self == ExecutionStatus::Running
    }
}

/// One execution (run) of a workflow, as the APIs show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub namespace: String,
    /// Activation-id-shaped (32 hex digits): the `cause` of the run's steps.
    pub id: String,
    /// Unique per workflow; the id when the starter gave none.
    pub name: String,
    pub workflow: String,
    pub status: ExecutionStatus,
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Ms since the epoch.
    pub start: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<u64>,
    /// The execution whose Task started this one (a nested workflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// The runner's side of a running execution: its interpreter snapshot at history event
/// `seq`, when it next needs to wake, and who owns it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    /// The last history event's sequence number (0: none).
    pub seq: u64,
    /// The engine's state (opaque to the store).
    pub snapshot: Value,
    /// The earliest due timer, ms since the epoch.
    pub wake_ms: Option<u64>,
    pub owner: Option<String>,
    pub lease_ms: u64,
}

/// One event of an execution's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// 1, 2, ... with no gaps.
    pub seq: u64,
    /// Ms since the epoch.
    pub ts: u64,
    /// Step Functions' `HistoryEventType` (`TaskStateEntered`, ...).
    pub kind: String,
    /// Step Functions' `<type>EventDetails` object (plus Gust's `path`), or `{}`.
    pub details: Value,
}

/// An action's async delivery settings (Lambda's event invoke config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryConfig {
    pub namespace: String,
    /// The action's name in its namespace (`name` or `pkg/name`).
    pub action: String,
    pub maximum_retry_attempts: u32,
    pub maximum_event_age_in_seconds: u64,
    /// `action:NAME`, `trigger:NAME` or `subject:SUBJECT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// Ms since the epoch.
    pub updated: u64,
}

/// A non-blocking invocation of a configured action, until it is delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub namespace: String,
    /// The first attempt's activation id (what the client got).
    pub id: String,
    pub action: String,
    /// The first attempt's invocation message (JSON), replayed with a new id per attempt.
    pub message: Value,
    /// The config as it was when the invocation was accepted.
    pub config: DeliveryConfig,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The current attempt's activation id.
    pub attempt_id: String,
    /// When the first attempt was accepted, ms since the epoch.
    pub accepted_ms: u64,
    /// When the loop looks at it next, ms since the epoch.
    pub due_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub lease_ms: u64,
    /// What the loop keeps between looks (the last error, ...).
    #[serde(default)]
    pub state: Map<String, Value>,
}

/// A failed async invocation with no on-failure destination, kept for a person to read and
/// re-drive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub namespace: String,
    /// The first attempt's activation id.
    pub id: String,
    pub action: String,
    /// Lambda's destination record (`requestContext.condition`, `requestPayload`, ...).
    pub record: Value,
    /// Ms since the epoch.
    pub created: u64,
    /// The sealed secret parameters the invocation carried (a trigger's), given again to a
    /// redrive; never shown over the API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<crate::SealedParam>,
}
