//! What a workflow request can fail with, and how each API names it.

use gust_controller::ControllerError;
use gust_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// A definition, input, name or token that is not valid (the message says which).
    #[error("{0}")]
    Invalid(String),
    #[error("The workflow '{0}' does not exist.")]
    WorkflowDoesNotExist(String),
    #[error("The workflow '{0}' already exists.")]
    WorkflowAlreadyExists(String),
    #[error("The execution '{0}' does not exist.")]
    ExecutionDoesNotExist(String),
    /// The name is taken: by a finished execution, or a running one with another input.
    #[error("An execution named '{0}' already exists.")]
    ExecutionAlreadyExists(String),
    /// The execution finished: it takes no more events or stops.
    #[error("The execution '{0}' is not running.")]
    NotRunning(String),
    #[error("The task of this token does not exist or finished.")]
    TaskDoesNotExist,
    #[error("The task of this token timed out.")]
    TaskTimedOut,
    #[error("Concurrent modification to resource detected.")]
    Conflict,
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

impl From<StoreError> for WorkflowError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => WorkflowError::Conflict,
            other => WorkflowError::Controller(ControllerError::from(other)),
        }
    }
}

impl WorkflowError {
    /// The HTTP status Gust's own API answers with; `None` for a controller's error, which
    /// the gateway maps as it maps every other.
    pub fn status(&self) -> Option<u16> {
        Some(match self {
            WorkflowError::Invalid(_) | WorkflowError::TaskTimedOut => 400,
            WorkflowError::WorkflowDoesNotExist(_)
            | WorkflowError::ExecutionDoesNotExist(_)
            | WorkflowError::TaskDoesNotExist => 404,
            WorkflowError::WorkflowAlreadyExists(_)
            | WorkflowError::ExecutionAlreadyExists(_)
            | WorkflowError::Conflict => 409,
            WorkflowError::NotRunning(_) => 410,
            WorkflowError::Controller(_) => return None,
        })
    }

    /// Step Functions' error type (`__type`) for it.
    pub fn sfn_type(&self) -> &'static str {
        match self {
            WorkflowError::Invalid(_) => "ValidationException",
            WorkflowError::WorkflowDoesNotExist(_) => "StateMachineDoesNotExist",
            WorkflowError::WorkflowAlreadyExists(_) => "StateMachineAlreadyExists",
            WorkflowError::ExecutionDoesNotExist(_) | WorkflowError::NotRunning(_) => {
                "ExecutionDoesNotExist"
            }
            WorkflowError::ExecutionAlreadyExists(_) => "ExecutionAlreadyExists",
            WorkflowError::TaskDoesNotExist => "TaskDoesNotExist",
            WorkflowError::TaskTimedOut => "TaskTimedOut",
            WorkflowError::Conflict => "ConflictException",
            WorkflowError::Controller(_) => "ServiceException",
        }
    }
}
