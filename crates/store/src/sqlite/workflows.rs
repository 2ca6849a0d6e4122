//! [`WorkflowStore`] on the embedded store. Every write that touches several rows (a new
//! execution, a commit) is one job of the writer thread, inside a savepoint of its own: it
//! commits whole or not at all, and the single writer orders it with every other write, so
//! its compare-and-swap reads what no one else can change meanwhile.

use std::collections::HashMap;

use async_trait::async_trait;
use gust_model::{Execution, ExecutionStatus, HistoryEvent, RunState, Workflow};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{SqliteStore, text};
use crate::history::{self, Payload, Row, Written};
use crate::sql;
use crate::{ExecutionQuery, PutMode, Result, RunCommit, StoreError, WorkflowStore};

/// A stored integer: u64 past i64's range is clamped.
fn i(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn n(v: u64) -> Value {
    Value::Integer(i(v))
}

/// Inserts history rows and the payloads they reference.
fn insert_history(
    c: &Connection,
    namespace: &str,
    id: &str,
    rows: &[Row],
    payloads: &[Payload],
) -> Result<()> {
    let mut event = c.prepare_cached(
        "INSERT INTO workflow_history (namespace, execution, seq, ts, kind, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for r in rows {
        event.execute(params![namespace, id, r.seq, r.ts, r.kind, r.details])?;
    }
    let mut payload = c.prepare_cached(
        "INSERT INTO workflow_payloads (namespace, hash, data) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
    )?;
    for (hash, data) in payloads {
        payload.execute(params![namespace, hash, data])?;
    }
    Ok(())
}

/// The payloads of `namespace` named in `hashes`, by hash.
fn payloads(c: &Connection, namespace: &str, hashes: &[String]) -> Result<HashMap<String, String>> {
    if hashes.is_empty() {
        return Ok(HashMap::new());
    }
    let hashes = serde_json::to_string(hashes)?;
    let mut stmt = c.prepare_cached(
        "SELECT hash, data FROM workflow_payloads
         WHERE namespace = ?1 AND hash IN (SELECT value FROM json_each(?2))",
    )?;
    let rows = stmt.query_map(params![namespace, hashes], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `(namespace, id)` pairs `sql` selects with `args`.
fn pairs(c: &Connection, sql: &str, args: Vec<Value>) -> Result<Vec<(String, String)>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[async_trait]
impl WorkflowStore for SqliteStore {
    async fn put_workflow(&self, w: &Workflow, mode: PutMode) -> Result<()> {
        let doc = Value::Text(serde_json::to_string(w)?);
        let (ns, name, version) = (text(&w.namespace), text(&w.name), text(&w.version));
        let (sql, args) = match mode {
            PutMode::Create => (sql::CREATE_WORKFLOW, vec![ns, name, version, doc]),
            PutMode::Replace { expected_version } => (
                sql::REPLACE_WORKFLOW,
                vec![version, doc, ns, name, Value::Text(expected_version)],
            ),
        };
        self.write_row(sql, args, StoreError::Conflict).await
    }

    async fn workflow(&self, namespace: &str, name: &str) -> Result<Option<Workflow>> {
        self.doc(sql::WORKFLOW, vec![text(namespace), text(name)])
            .await
    }

    async fn list_workflows(
        &self,
        namespace: &str,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Workflow>> {
        self.docs(
            sql::LIST_WORKFLOWS,
            vec![text(namespace), n(limit), n(skip)],
        )
        .await
    }

    async fn delete_workflow(&self, namespace: &str, name: &str) -> Result<Option<Workflow>> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write_statement(move |c| {
            let doc: Option<String> = c
                .prepare_cached(sql::DELETE_WORKFLOW)?
                .query_row(params![ns, name], |r| r.get(0))
                .optional()?;
            Ok(doc.map(|d| serde_json::from_str(&d)).transpose()?)
        })
        .await
    }

    async fn create_execution(
        &self,
        execution: &Execution,
        run: &RunState,
        events: &[HistoryEvent],
    ) -> Result<bool> {
        let Written { rows, payloads } = history::new_execution(execution, run, events)?;
        let e = execution.clone();
        let doc = serde_json::to_string(&e)?;
        let snapshot = serde_json::to_string(&run.snapshot)?;
        let (seq, wake) = (i(run.seq), run.wake_ms.map(i));
        // An unowned run's lease is 0 (see `sql::CLAIMABLE_RUNS`).
        let (owner, lease) = match &run.owner {
            Some(o) => (Some(o.clone()), i(run.lease_ms)),
            None => (None, 0),
        };
        self.write(move |c| {
            let created = c
                .prepare_cached(
                    "INSERT INTO executions (namespace, id, workflow, name, status, start_ms, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    e.namespace,
                    e.id,
                    e.workflow,
                    e.name,
                    e.status.as_str(),
                    i(e.start),
                    doc
                ])?;
            if created == 0 {
                return Ok(false);
            }
            if e.status.is_running() {
                c.prepare_cached(
                    "INSERT INTO workflow_runs
                        (namespace, id, seq, snapshot, wake_ms, owner, lease_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    e.namespace,
                    e.id,
                    seq,
                    snapshot,
                    wake,
                    owner,
                    lease
                ])?;
            }
            insert_history(c, &e.namespace, &e.id, &rows, &payloads)?;
            Ok(true)
        })
        .await
    }

    async fn execution(&self, namespace: &str, id: &str) -> Result<Option<Execution>> {
        self.doc(sql::EXECUTION, vec![text(namespace), text(id)])
            .await
    }

    async fn execution_named(
        &self,
        namespace: &str,
        workflow: &str,
        name: &str,
    ) -> Result<Option<Execution>> {
        self.doc(
            sql::EXECUTION_NAMED,
            vec![text(namespace), text(workflow), text(name)],
        )
        .await
    }

    async fn list_executions(&self, q: &ExecutionQuery<'_>) -> Result<Vec<Execution>> {
        let or_null = |s: Option<&str>| s.map_or(Value::Null, text);
        self.docs(
            sql::LIST_EXECUTIONS,
            vec![
                text(q.namespace),
                or_null(q.workflow),
                or_null(q.status.map(ExecutionStatus::as_str)),
                n(q.limit),
                n(q.skip),
            ],
        )
        .await
    }

    async fn run_state(&self, namespace: &str, id: &str) -> Result<Option<RunState>> {
        let (ns, id) = (namespace.to_string(), id.to_string());
        self.read(move |c| {
            let row = c
                .prepare_cached(sql::RUN_STATE)?
                .query_row(params![ns, id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .optional()?;
            row.map(|(seq, snapshot, wake, owner, lease)| {
                Ok(RunState {
                    seq: seq.max(0) as u64,
                    snapshot: serde_json::from_str(&snapshot)?,
                    wake_ms: wake.map(|w| w.max(0) as u64),
                    owner,
                    lease_ms: lease.max(0) as u64,
                })
            })
            .transpose()
        })
        .await
    }

    async fn commit_run(&self, commit: &RunCommit<'_>) -> Result<bool> {
        let Written { rows, payloads } = history::commit(commit)?;
        let execution = commit
            .execution
            .map(|e| Ok::<_, StoreError>((e.status, serde_json::to_string(e)?)))
            .transpose()?;
        let finished = execution.as_ref().is_some_and(|(s, _)| !s.is_running());
        let (ns, id, owner) = (
            commit.namespace.to_string(),
            commit.id.to_string(),
            commit.owner.to_string(),
        );
        let expected = i(commit.expected_seq);
        let snapshot = serde_json::to_string(&commit.run.snapshot)?;
        let (seq, wake) = (i(commit.run.seq), commit.run.wake_ms.map(i));
        let consumed = serde_json::to_string(commit.consumed)?;
        self.write(move |c| {
            let ran = if finished {
                c.prepare_cached(
                    "DELETE FROM workflow_runs
                     WHERE namespace = ?1 AND id = ?2 AND seq = ?3 AND owner = ?4",
                )?
                .execute(params![ns, id, expected, owner])?
            } else {
                c.prepare_cached(
                    "UPDATE workflow_runs SET seq = ?5, snapshot = ?6, wake_ms = ?7
                     WHERE namespace = ?1 AND id = ?2 AND seq = ?3 AND owner = ?4",
                )?
                .execute(params![ns, id, expected, owner, seq, snapshot, wake])?
            };
            if ran == 0 {
                // Moved on or taken over: nothing written.
                return Ok(false);
            }
            insert_history(c, &ns, &id, &rows, &payloads)?;
            if let Some((status, doc)) = execution {
                c.prepare_cached(
                    "UPDATE executions SET status = ?3, doc = ?4 WHERE namespace = ?1 AND id = ?2",
                )?
                .execute(params![ns, id, status.as_str(), doc])?;
            }
            // A finished execution has no inbox: what it did not consume goes too.
            c.prepare_cached(
                "DELETE FROM workflow_signals WHERE namespace = ?1 AND execution = ?2
                   AND (?3 OR id IN (SELECT value FROM json_each(?4)))",
            )?
            .execute(params![ns, id, finished, consumed])?;
            Ok(true)
        })
        .await
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
        let (ns, id) = (namespace.to_string(), id.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt
                .query_map(params![ns, id, after, i(limit)], |r| {
                    Ok(Row {
                        seq: r.get(0)?,
                        ts: r.get(1)?,
                        kind: r.get(2)?,
                        details: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let (events, hashes) = history::events(rows)?;
            history::resolve(events, &payloads(c, &ns, &hashes)?)
        })
        .await
    }

    async fn claimable_runs(
        &self,
        owner: &str,
        now_ms: u64,
        limit: u64,
    ) -> Result<Vec<(String, String)>> {
        let args = vec![n(now_ms), text(owner), n(limit)];
        self.read(move |c| pairs(c, sql::CLAIMABLE_RUNS, args))
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
        let args = vec![
            text(owner),
            n(lease_ms),
            text(namespace),
            text(id),
            n(now_ms),
        ];
        Ok(self.write_count(sql::CLAIM_RUN, args).await? > 0)
    }

    async fn renew_runs(&self, owner: &str, lease_ms: u64) -> Result<u64> {
        self.write_count(sql::RENEW_RUNS, vec![n(lease_ms), text(owner)])
            .await
    }

    async fn release_runs(&self) -> Result<()> {
        self.write_count(sql::RELEASE_RUNS, Vec::new())
            .await
            .map(|_| ())
    }

    async fn post_signal(
        &self,
        namespace: &str,
        id: &str,
        signal: &serde_json::Value,
    ) -> Result<bool> {
        let args = vec![
            text(namespace),
            text(id),
            Value::Text(serde_json::to_string(signal)?),
        ];
        Ok(self.write_count(sql::POST_SIGNAL, args).await? > 0)
    }

    async fn signals(&self, namespace: &str, id: &str) -> Result<Vec<(u64, serde_json::Value)>> {
        let (ns, id) = (namespace.to_string(), id.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql::SIGNALS)?;
            let rows = stmt.query_map(params![ns, id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            rows.map(|r| {
                let (id, doc) = r?;
                Ok((id.max(0) as u64, serde_json::from_str(&doc)?))
            })
            .collect()
        })
        .await
    }

    async fn signalled_runs(&self, owner: &str) -> Result<Vec<(String, String)>> {
        let args = vec![text(owner)];
        self.read(move |c| pairs(c, sql::SIGNALLED_RUNS, args))
            .await
    }
}
