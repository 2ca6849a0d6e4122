//! Amazon States Language (JSONPath flavour): a definition parsed and validated into typed
//! states ([`parse`]), and the pure pieces the interpreter applies at each step: input and
//! output processing ([`Io`]), paths, intrinsic functions, Choice rules, Wait times, Map
//! items, Retry delays and Catch outputs. No I/O and no clock: callers pass the time and
//! the randomness in.
//!
//! Contract:
//! - [`parse`] accepts exactly what decision 0028 supports and refuses anything else with a
//!   [`DefinitionError`] whose message names the state (`State "X": ...`, nested states as
//!   `State "Outer": branch 0: State "Inner": ...`); a definition it accepts never fails at
//!   run time because of its own shape (bad paths, unknown states, bad intrinsics).
//! - Run-time failures are [`StateError`]s with Step Functions' error names
//!   (`States.Runtime`, `States.ParameterPathFailure`, `States.ResultPathMatchFailure`,
//!   `States.IntrinsicFailure`, `States.NoChoiceMatched`) and a cause that says why.

mod choice;
mod intrinsics;
mod io;
mod model;
mod path;
mod timestamp;
mod validate;

#[cfg(test)]
mod tests;

pub use choice::{ChoiceRule, Comparator, Condition, Operand, Relation};
pub use intrinsics::Intrinsic;
pub use io::{Io, Template};
pub use model::{
    Catcher, Choice, Definition, Fail, Map, Next, Parallel, Pass, Retrier, State, Succeed, Task,
    Wait, WaitFor, catcher_for, retrier_for,
};
pub use path::{Path, Root};
pub use validate::parse;

/// A definition Gust refuses (decision 0028: a 400 at create/update). Caused by the user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct DefinitionError {
    /// The top-level state the problem is in, if it is in one.
    pub state: Option<String>,
    /// The whole message; it starts with `State "X": ` when `state` is set.
    pub message: String,
}

impl DefinitionError {
    /// A problem outside any state (`StartAt`, top-level fields).
    pub(crate) fn top(message: String) -> DefinitionError {
        DefinitionError {
            state: None,
            message,
        }
    }

    /// A problem in state `state`.
    pub(crate) fn in_state(state: &str, message: impl std::fmt::Display) -> DefinitionError {
        DefinitionError {
            state: Some(state.to_string()),
            message: format!("State \"{state}\": {message}"),
        }
    }
}

/// A state's failure at run time, as Step Functions names it: `error` is the error name
/// that Retry and Catch match, `cause` the human explanation. Caused by the data a run
/// meets (or by a task), never by the definition's shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StateError {
    pub error: String,
    pub cause: String,
}

impl StateError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> StateError {
        StateError {
            error: error.into(),
            cause: cause.into(),
        }
    }

    pub(crate) fn runtime(cause: impl Into<String>) -> StateError {
        StateError::new(errors::RUNTIME, cause)
    }

    pub(crate) fn intrinsic(cause: impl Into<String>) -> StateError {
        StateError::new(errors::INTRINSIC_FAILURE, cause)
    }
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

impl std::error::Error for StateError {}

/// Step Functions' predefined error names (`States.*`); a user's error may not start with
/// `States.` unless it is one of these.
pub mod errors {
    pub const ALL: &str = "States.ALL";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const HTTP_SOCKET: &str = "States.Http.Socket";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const PERMISSIONS: &str = "States.Permissions";
    pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
    pub const RUNTIME: &str = "States.Runtime";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";

    /// Every predefined name.
    pub const KNOWN: &[&str] = &[
        ALL,
        BRANCH_FAILED,
        DATA_LIMIT_EXCEEDED,
        EXCEED_TOLERATED_FAILURE_THRESHOLD,
        HEARTBEAT_TIMEOUT,
        HTTP_SOCKET,
        INTRINSIC_FAILURE,
        ITEM_READER_FAILED,
        NO_CHOICE_MATCHED,
        PARAMETER_PATH_FAILURE,
        PERMISSIONS,
        QUERY_EVALUATION_ERROR,
        RESULT_PATH_MATCH_FAILURE,
        RESULT_WRITER_FAILED,
        RUNTIME,
        TASK_FAILED,
        TIMEOUT,
    ];

    /// Errors that end the execution whatever its Retry and Catch say: the wildcards
    /// `States.ALL` and `States.TaskFailed` do not match them.
    pub const TERMINAL: &[&str] = &[RUNTIME, DATA_LIMIT_EXCEEDED];
}
