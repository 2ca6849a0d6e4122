//! [`WorkflowStore`] on PostgreSQL. A new execution and a commit are each one statement
//! (data-modifying CTEs over arrays of events), so each commits whole or not at all and no
//! transaction stays open across round trips. A commit's compare-and-swap is its `UPDATE`
//! (or `DELETE`) of the run: a concurrent commit of the same run waits for the row, then finds
//! `seq` moved and writes nothing. Leases are compared on the database's clock (decision
//! 0020); a run state read back gives its lease on this process's clock.

use std::collections::HashMap;

use async_trait::async_trait;
use gust_model::{Execution, ExecutionStatus, HistoryEvent, RunState, Workflow};
use serde_json::Value;

use super::{PostgresStore, changed, docs, first_doc};
use crate::history::{self, Row, Written};
use crate::sql;
use crate::{ExecutionQuery, PutMode, Result, RunCommit, WorkflowStore};

/// A stored integer: u64 past i64's range is clamped.
pub(super) fn i(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// History rows and their payloads as the array parameters of one statement.
struct Arrays {
    seqs: Vec<i64>,
    tss: Vec<i64>,
    kinds: Vec<String>,
    details: Vec<String>,
    hashes: Vec<String>,
    data: Vec<String>,
}

impl Arrays {
    fn of(Written { rows, payloads }: Written) -> Self {
        let mut a = Arrays {
            seqs: Vec::with_capacity(rows.len()),
            tss: Vec::with_capacity(rows.len()),
            kinds: Vec::with_capacity(rows.len()),
            details: Vec::with_capacity(rows.len()),
            hashes: Vec::with_capacity(payloads.len()),
            data: Vec::with_capacity(payloads.len()),
        };
        for r in rows {
            a.seqs.push(r.seq);
            a.tss.push(r.ts);
            a.kinds.push(r.kind);
            a.details.push(r.details);
        }
        for (hash, data) in payloads {
            a.hashes.push(hash);
            a.data.push(data);
        }
        a
    }
}

/// CTEs that insert the history rows `$n..$n+3` (seq, ts, kind, details arrays) and the
/// payloads `$n+4`, `$n+5` (hash, data arrays) of execution `$1`/`$2` when CTE `$ok` has a
/// row. A macro, so the statements stay string literals.
macro_rules! insert_history {
    ($ok:literal, $seq:literal, $ts:literal, $kind:literal, $details:literal, $hash:literal, $data:literal) => {
        concat!(
            "events AS (
                INSERT INTO workflow_history (namespace, execution, seq, ts, kind, details)
                SELECT $1, $2, e.seq, e.ts, e.kind, e.details
                FROM unnest(",
            $seq,
            "::BIGINT[], ",
            $ts,
            "::BIGINT[], ",
            $kind,
            "::TEXT[], ",
            $details,
            "::TEXT[]) AS e (seq, ts, kind, details)
                WHERE EXISTS (SELECT 1 FROM ",
            $ok,
            ")),
             payloads AS (
                INSERT INTO workflow_payloads (namespace, hash, data)
                SELECT $1, p.hash, p.data FROM unnest(",
            $hash,
            "::TEXT[], ",
            $data,
            "::TEXT[]) AS p (hash, data)
                WHERE EXISTS (SELECT 1 FROM ",
            $ok,
            ")
                ON CONFLICT DO NOTHING)"
        )
    };
}

const CREATE_EXECUTION: &str = concat!(
    "WITH created AS (
        INSERT INTO executions (namespace, id, workflow, name, status, start_ms, doc)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING 1),
     run AS (
        INSERT INTO workflow_runs (namespace, id, seq, snapshot, wake_ms, owner, lease_ms)
        SELECT $1, $2, $8, $9, $10, $11, $12
        WHERE $13 AND EXISTS (SELECT 1 FROM created)),
     ",
    insert_history!("created", "$14", "$15", "$16", "$17", "$18", "$19"),
    " SELECT count(*) FROM created"
);

/// `$8`: whether the execution ended (the run goes); `$15`, `$16`: its new status and
/// document, or NULL; `$17`: the consumed signals (all of them go when it ended).
const COMMIT_RUN: &str = concat!(
    "WITH kept AS (
        UPDATE workflow_runs SET seq = $5, snapshot = $6, wake_ms = $7
        WHERE namespace = $1 AND id = $2 AND seq = $3 AND owner = $4 AND NOT $8
        RETURNING 1),
     ended AS (
        DELETE FROM workflow_runs
        WHERE namespace = $1 AND id = $2 AND seq = $3 AND owner = $4 AND $8
        RETURNING 1),
     ok AS (SELECT 1 FROM kept UNION ALL SELECT 1 FROM ended),
     ",
    insert_history!("ok", "$9", "$10", "$11", "$12", "$13", "$14"),
    ",
     execution AS (
        UPDATE executions SET status = $15, doc = $16
        WHERE namespace = $1 AND id = $2 AND CAST($15 AS TEXT) IS NOT NULL
          AND EXISTS (SELECT 1 FROM ok)),
     signals AS (
        DELETE FROM workflow_signals
        WHERE namespace = $1 AND execution = $2 AND ($8 OR id = ANY($17))
          AND EXISTS (SELECT 1 FROM ok))
     SELECT count(*) FROM ok"
);

impl PostgresStore {
    /// A time of the database's clock (ms) on this process's clock.
    pub(super) fn local_time(&self, db_ms: i64) -> u64 {
        db_ms.saturating_sub(self.clock_offset_ms).max(0) as u64
    }

    /// A lease to store: on the database's clock, or 0 for an unowned row (see
    /// `sql::CLAIMABLE_RUNS`).
    fn stored_lease(&self, owner: Option<&str>, lease_ms: u64) -> i64 {
        owner.map_or(0, |_| self.db_time(lease_ms))
    }

    /// `(namespace, id)` pairs `sql` selects.
    async fn pairs(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<(String, String)>> {
        Ok(self
            .query(sql, params)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}

#[async_trait]
impl WorkflowStore for PostgresStore {
    async fn put_workflow(&self, w: &Workflow, mode: PutMode) -> Result<()> {
        let doc = serde_json::to_string(w)?;
        let n = match mode {
            PutMode::Create => {
                self.execute(
                    sql::CREATE_WORKFLOW,
                    &[&w.namespace, &w.name, &w.version, &doc],
                )
                .await?
            }
            PutMode::Replace { expected_version } => {
                self.execute(
                    sql::REPLACE_WORKFLOW,
                    &[&w.version, &doc, &w.namespace, &w.name, &expected_version],
                )
                .await?
            }
        };
        changed(n)
    }

    async fn workflow(&self, namespace: &str, name: &str) -> Result<Option<Workflow>> {
        first_doc(&self.query(sql::WORKFLOW, &[&namespace, &name]).await?)
    }

    async fn list_workflows(
        &self,
        namespace: &str,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Workflow>> {
        docs(
            &self
                .query(sql::LIST_WORKFLOWS, &[&namespace, &i(limit), &i(skip)])
                .await?,
        )
    }

    async fn delete_workflow(&self, namespace: &str, name: &str) -> Result<Option<Workflow>> {
        first_doc(
            &self
                .query(sql::DELETE_WORKFLOW, &[&namespace, &name])
                .await?,
        )
    }

    async fn create_execution(
        &self,
        e: &Execution,
        run: &RunState,
        events: &[HistoryEvent],
    ) -> Result<bool> {
        let a = Arrays::of(history::new_execution(e, run, events)?);
        let doc = serde_json::to_string(e)?;
        let snapshot = serde_json::to_string(&run.snapshot)?;
        let wake = run.wake_ms.map(i);
        let lease = self.stored_lease(run.owner.as_deref(), run.lease_ms);
        let rows = self
            .query(
                CREATE_EXECUTION,
                &[
                    &e.namespace,
                    &e.id,
                    &e.workflow,
                    &e.name,
                    &e.status.as_str(),
                    &i(e.start),
                    &doc,
                    &i(run.seq),
                    &snapshot,
                    &wake,
                    &run.owner,
                    &lease,
                    &e.status.is_running(),
                    &a.seqs,
                    &a.tss,
                    &a.kinds,
                    &a.details,
                    &a.hashes,
                    &a.data,
                ],
            )
            .await?;
        Ok(rows.first().is_some_and(|r| r.get::<_, i64>(0) > 0))
    }

    async fn execution(&self, namespace: &str, id: &str) -> Result<Option<Execution>> {
        first_doc(&self.query(sql::EXECUTION, &[&namespace, &id]).await?)
    }

    async fn execution_named(
        &self,
        namespace: &str,
        workflow: &str,
        name: &str,
    ) -> Result<Option<Execution>> {
        first_doc(
            &self
                .query(sql::EXECUTION_NAMED, &[&namespace, &workflow, &name])
                .await?,
        )
    }

    async fn list_executions(&self, q: &ExecutionQuery<'_>) -> Result<Vec<Execution>> {
        let status = q.status.map(ExecutionStatus::as_str);
        docs(
            &self
                .query(
                    sql::LIST_EXECUTIONS,
                    &[&q.namespace, &q.workflow, &status, &i(q.limit), &i(q.skip)],
                )
                .await?,
        )
    }

    async fn run_state(&self, namespace: &str, id: &str) -> Result<Option<RunState>> {
        let rows = self.query(sql::RUN_STATE, &[&namespace, &id]).await?;
        rows.first()
            .map(|r| {
                let owner: Option<String> = r.get(3);
                let lease = match owner {
                    Some(_) => self.local_time(r.get(4)),
                    None => 0,
                };
                Ok(RunState {
                    seq: r.get::<_, i64>(0).max(0) as u64,
                    snapshot: serde_json::from_str(r.get(1))?,
                    wake_ms: r.get::<_, Option<i64>>(2).map(|w| w.max(0) as u64),
                    owner,
                    lease_ms: lease,
                })
            })
            .transpose()
    }

    async fn commit_run(&self, c: &RunCommit<'_>) -> Result<bool> {
        let a = Arrays::of(history::commit(c)?);
        let finished = c.execution.is_some_and(|e| !e.status.is_running());
        let status = c.execution.map(|e| e.status.as_str());
        let doc = c.execution.map(serde_json::to_string).transpose()?;
        let snapshot = serde_json::to_string(&c.run.snapshot)?;
        let wake = c.run.wake_ms.map(i);
        let consumed: Vec<i64> = c.consumed.iter().map(|&n| i(n)).collect();
        let rows = self
            .query(
                COMMIT_RUN,
                &[
                    &c.namespace,
                    &c.id,
                    &i(c.expected_seq),
                    &c.owner,
                    &i(c.run.seq),
                    &snapshot,
                    &wake,
                    &finished,
                    &a.seqs,
                    &a.tss,
                    &a.kinds,
                    &a.details,
                    &a.hashes,
                    &a.data,
                    &status,
                    &doc,
                    &consumed,
                ],
            )
            .await?;
        Ok(rows.first().is_some_and(|r| r.get::<_, i64>(0) > 0))
    }

    async fn history(
        &self,
        namespace: &str,
        id: &str,
        after: u64,
        limit: u64,
        reverse: bool,
    ) -> Result<Vec<HistoryEvent>> {
        // `u64::MAX` (reversed: from the newest) stays past every seq once clamped.
        let sql = if reverse {
            sql::HISTORY_REVERSE
        } else {
            sql::HISTORY
        };
        let after = i(after);
        let rows = self
            .query(sql, &[&namespace, &id, &after, &i(limit)])
            .await?
            .iter()
            .map(|r| Row {
                seq: r.get(0),
                ts: r.get(1),
                kind: r.get(2),
                details: r.get(3),
            })
            .collect();
        let (events, hashes) = history::events(rows)?;
        let payloads: HashMap<String, String> = if hashes.is_empty() {
            HashMap::new()
        } else {
            self.query(
                "SELECT hash, data FROM workflow_payloads WHERE namespace = $1 AND hash = ANY($2)",
                &[&namespace, &hashes],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
        };
        history::resolve(events, &payloads)
    }

    async fn claimable_runs(
        &self,
        owner: &str,
        now_ms: u64,
        limit: u64,
    ) -> Result<Vec<(String, String)>> {
        self.pairs(
            sql::CLAIMABLE_RUNS,
            &[&self.db_time(now_ms), &owner, &i(limit)],
        )
        .await
    }

    async fn claim_run(
        &self,
        namespace: &str,
        id: &str,
        owner: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<bool> {
        let n = self
            .execute(
                sql::CLAIM_RUN,
                &[
                    &owner,
                    &self.db_time(lease_ms),
                    &namespace,
                    &id,
                    &self.db_time(now_ms),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn renew_runs(&self, owner: &str, lease_ms: u64) -> Result<u64> {
        self.execute(sql::RENEW_RUNS, &[&self.db_time(lease_ms), &owner])
            .await
    }

    async fn release_runs(&self) -> Result<()> {
        self.execute(sql::RELEASE_RUNS, &[]).await.map(|_| ())
    }

    async fn post_signal(&self, namespace: &str, id: &str, signal: &Value) -> Result<bool> {
        let doc = serde_json::to_string(signal)?;
        Ok(self
            .execute(sql::POST_SIGNAL, &[&namespace, &id, &doc])
            .await?
            > 0)
    }

    async fn signals(&self, namespace: &str, id: &str) -> Result<Vec<(u64, Value)>> {
        self.query(sql::SIGNALS, &[&namespace, &id])
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.get::<_, i64>(0).max(0) as u64,
                    serde_json::from_str(r.get(1))?,
                ))
            })
            .collect()
    }

    async fn signalled_runs(&self, owner: &str) -> Result<Vec<(String, String)>> {
        self.pairs(sql::SIGNALLED_RUNS, &[&owner]).await
    }
}
