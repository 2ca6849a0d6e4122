//! Workflows (ASL definitions), their executions, each execution's append-only history, its
//! runner state (snapshot, owner, lease) and its inbox of signals (decision 0028). A commit
//! appends history and replaces the snapshot in one transaction, only if the run is still
//! where its runner read it and still its runner's: that is how a step's result is recorded
//! once.

use async_trait::async_trait;
use gust_model::{Execution, ExecutionStatus, HistoryEvent, RunState, Workflow};
use serde_json::Value;

use crate::{PutMode, Result};

/// Which executions to list: newest first.
#[derive(Debug, Clone, Default)]
pub struct ExecutionQuery<'a> {
    pub namespace: &'a str,
    pub workflow: Option<&'a str>,
    pub status: Option<ExecutionStatus>,
    pub skip: u64,
    pub limit: u64,
}

/// One commit of a run: what its runner did since its last one.
#[derive(Debug, Clone)]
pub struct RunCommit<'a> {
    pub namespace: &'a str,
    pub id: &'a str,
    /// The `seq` the runner read; the commit fails if it changed.
    pub expected_seq: u64,
    /// The runner; the commit fails if the run is not its own any more.
    pub owner: &'a str,
    /// Events `expected_seq + 1 ..`, in order.
    pub events: &'a [HistoryEvent],
    /// The new snapshot and wake time (its `seq` is the last event's; owner and lease are
    /// left as stored).
    pub run: &'a RunState,
    /// The execution, when its status, output, error or stop changed.
    pub execution: Option<&'a Execution>,
    /// Signals consumed by this commit, deleted with it.
    pub consumed: &'a [u64],
}

#[async_trait]
pub trait WorkflowStore: Send + Sync + 'static {
    /// Creates or replaces a workflow (compare-and-swap on the version, as actions).
    async fn put_workflow(&self, workflow: &Workflow, mode: PutMode) -> Result<()>;
    async fn workflow(&self, namespace: &str, name: &str) -> Result<Option<Workflow>>;
    /// By name, bytewise.
    async fn list_workflows(&self, namespace: &str, skip: u64, limit: u64)
    -> Result<Vec<Workflow>>;
    /// Deletes a workflow (its executions stay readable); returns it.
    async fn delete_workflow(&self, namespace: &str, name: &str) -> Result<Option<Workflow>>;

    /// Creates an execution with its first history events and its run state (owned by
    /// `run.owner`; an execution created already finished gets none). Writes nothing and
    /// returns false when the workflow already has an execution of that name (or the id is
    /// taken). Events not numbered from 1, or a run state not at the last of them, are an
    /// error.
    async fn create_execution(
        &self,
        execution: &Execution,
        run: &RunState,
        events: &[HistoryEvent],
    ) -> Result<bool>;
    async fn execution(&self, namespace: &str, id: &str) -> Result<Option<Execution>>;
    async fn execution_named(
        &self,
        namespace: &str,
        workflow: &str,
        name: &str,
    ) -> Result<Option<Execution>>;
    /// Newest first (by start, then id).
    async fn list_executions(&self, query: &ExecutionQuery<'_>) -> Result<Vec<Execution>>;
    /// The run state of a running execution (none once it finished).
    async fn run_state(&self, namespace: &str, id: &str) -> Result<Option<RunState>>;
    /// Applies a commit (see [`RunCommit`]); false, writing nothing, if the stored `seq` is
    /// not `expected_seq` or the run is owned by another (its lease is not looked at). A
    /// commit whose execution is no longer running deletes the run state and every signal
    /// left in its inbox. Events not numbered `expected_seq + 1 ..`, a run state not at the
    /// last of them, or another execution's document are an error (nothing written).
    async fn commit_run(&self, commit: &RunCommit<'_>) -> Result<bool>;
    /// Up to `limit` events with `seq > after` in order, or (`reverse`) with `seq < after`
    /// newest first.
    async fn history(
        &self,
        namespace: &str,
        id: &str,
        after: u64,
        limit: u64,
        reverse: bool,
    ) -> Result<Vec<HistoryEvent>>;

    /// Up to `limit` running executions `owner` may take: owned by nobody or by a process
    /// whose lease ran out by `now_ms` (never by `owner`: it has them), as `(namespace, id)`,
    /// the longest expired first.
    async fn claimable_runs(
        &self,
        owner: &str,
        now_ms: u64,
        limit: u64,
    ) -> Result<Vec<(String, String)>>;
    /// Takes a run for `owner` until `lease_ms` if nobody live owns it (or `owner` does).
    async fn claim_run(
        &self,
        namespace: &str,
        id: &str,
        owner: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<bool>;
    /// Extends the lease of every run `owner` holds.
    async fn renew_runs(&self, owner: &str, lease_ms: u64) -> Result<u64>;
    /// Drops every run's owner (a store one process uses, at its start).
    async fn release_runs(&self) -> Result<()>;

    /// Adds a signal to a running execution's inbox; false if it is not running (or does not
    /// exist).
    async fn post_signal(&self, namespace: &str, id: &str, signal: &Value) -> Result<bool>;
    /// A run's signals, oldest first, with their ids.
    async fn signals(&self, namespace: &str, id: &str) -> Result<Vec<(u64, Value)>>;
    /// The runs `owner` holds that have signals waiting, as `(namespace, id)`.
    async fn signalled_runs(&self, owner: &str) -> Result<Vec<(String, String)>>;
}
