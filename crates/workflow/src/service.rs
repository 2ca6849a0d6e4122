//! `Workflows`: what the gateway's APIs (Gust's, Step Functions', Durable Functions') and the
//! CLI call. Every call acts in the caller's own namespace: a workflow or execution of
//! another namespace does not exist for it.

use std::sync::Arc;
use std::time::Duration;

use gust_model::{Execution, ExecutionStatus, HistoryEvent, Identity, Workflow};
use serde_json::Value;

use crate::WorkflowError;
use crate::runner::Runner;

/// The most history events one read returns.
pub const MAX_HISTORY_PAGE: u64 = 1000;

/// What a start answers.
#[derive(Debug, Clone)]
pub struct Started {
    pub execution: Execution,
    /// False when an execution of that name was already running (an idempotent start).
    pub created: bool,
}

/// The workflows service of one process.
#[derive(Clone)]
pub struct Workflows {
    pub(crate) runner: Arc<Runner>,
}

impl std::fmt::Debug for Workflows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflows").finish_non_exhaustive()
    }
}

impl Workflows {
    /// The service over a process's runner (`Runner::start` runs its loops).
    pub fn new(runner: Arc<Runner>) -> Workflows {
        Workflows { runner }
    }

    /// Creates (or, with `overwrite`, replaces) workflow `name` of the caller's namespace
    /// with an ASL `definition`, validated first (400 naming the state).
    pub async fn put(
        &self,
        who: &Identity,
        name: &str,
        definition: Value,
        overwrite: bool,
    ) -> Result<Workflow, WorkflowError> {
        self.runner
            .put_workflow(who, name, definition, overwrite)
            .await
    }

    pub async fn get(&self, who: &Identity, name: &str) -> Result<Workflow, WorkflowError> {
        self.runner.workflow(who, name).await
    }

    pub async fn list(
        &self,
        who: &Identity,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Workflow>, WorkflowError> {
        Ok(self
            .runner
            .store
            .list_workflows(&who.namespace, skip, limit)
            .await?)
    }

    pub async fn delete(&self, who: &Identity, name: &str) -> Result<Workflow, WorkflowError> {
        self.runner
            .store
            .delete_workflow(&who.namespace, name)
            .await?
            .ok_or_else(|| WorkflowError::WorkflowDoesNotExist(name.to_string()))
    }

    /// Starts an execution of `workflow` with `input` (any JSON), named `name` (or its id).
    /// A running execution of that name and input is answered as it is; another input is
    /// `ExecutionAlreadyExists`.
    pub async fn start(
        &self,
        who: &Identity,
        workflow: &str,
        name: Option<&str>,
        input: Value,
    ) -> Result<Started, WorkflowError> {
        self.runner.start(who, workflow, name, input, None).await
    }

    pub async fn execution(&self, who: &Identity, id: &str) -> Result<Execution, WorkflowError> {
        self.runner
            .store
            .execution(&who.namespace, id)
            .await?
            .ok_or_else(|| WorkflowError::ExecutionDoesNotExist(id.to_string()))
    }

    pub async fn execution_named(
        &self,
        who: &Identity,
        workflow: &str,
        name: &str,
    ) -> Result<Execution, WorkflowError> {
        self.runner
            .store
            .execution_named(&who.namespace, workflow, name)
            .await?
            .ok_or_else(|| WorkflowError::ExecutionDoesNotExist(name.to_string()))
    }

    /// Newest first.
    pub async fn executions(
        &self,
        who: &Identity,
        workflow: Option<&str>,
        status: Option<ExecutionStatus>,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Execution>, WorkflowError> {
        let query = gust_store::ExecutionQuery {
            namespace: &who.namespace,
            workflow,
            status,
            skip,
            limit,
        };
        Ok(self.runner.store.list_executions(&query).await?)
    }

    /// Up to `limit` (≤ [`MAX_HISTORY_PAGE`]) events after `after` (or, `reverse`, before
    /// it, newest first; `after = u64::MAX` for the newest).
    pub async fn history(
        &self,
        who: &Identity,
        id: &str,
        after: u64,
        limit: u64,
        reverse: bool,
    ) -> Result<Vec<HistoryEvent>, WorkflowError> {
        self.execution(who, id).await?;
        Ok(self
            .runner
            .store
            .history(
                &who.namespace,
                id,
                after,
                limit.clamp(1, MAX_HISTORY_PAGE),
                reverse,
            )
            .await?)
    }

    /// Stops a running execution (ABORTED, with `error` and `cause`); answers it as it is
    /// after the stop.
    pub async fn stop(
        &self,
        who: &Identity,
        id: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<Execution, WorkflowError> {
        self.runner.stop(who, id, error, cause).await
    }

    /// Ends the callback step of `token` with `output`.
    pub async fn send_task_success(
        &self,
        who: &Identity,
        token: &str,
        output: Value,
    ) -> Result<(), WorkflowError> {
        self.runner
            .task_signal(who, token, crate::runner::TaskSignal::Success(output))
            .await
    }

    /// Fails the callback step of `token`.
    pub async fn send_task_failure(
        &self,
        who: &Identity,
        token: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<(), WorkflowError> {
        self.runner
            .task_signal(
                who,
                token,
                crate::runner::TaskSignal::Failure { error, cause },
            )
            .await
    }

    /// Tells the callback step of `token` that its worker is alive (HeartbeatSeconds).
    pub async fn send_task_heartbeat(
        &self,
        who: &Identity,
        token: &str,
    ) -> Result<(), WorkflowError> {
        self.runner
            .task_signal(who, token, crate::runner::TaskSignal::Heartbeat)
            .await
    }

    /// Raises external event `event` with `body` on a running execution (its `event:NAME`
    /// tasks take it; one raised before any waits is kept until one does).
    pub async fn raise_event(
        &self,
        who: &Identity,
        id: &str,
        event: &str,
        body: Value,
    ) -> Result<(), WorkflowError> {
        self.runner.raise_event(who, id, event, body).await
    }

    /// The execution once it finished, or as it is after `timeout`.
    pub async fn wait(
        &self,
        who: &Identity,
        id: &str,
        timeout: Duration,
    ) -> Result<Execution, WorkflowError> {
        self.runner.wait(who, id, timeout).await
    }
}
