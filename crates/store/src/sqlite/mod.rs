//! The embedded store: one SQLite file in WAL mode.
//!
//! All writes go through one writer thread that owns the only write connection and commits
//! whatever has queued up in one transaction (group commit): under load many invocations share
//! one commit, so the store is not what limits throughput. Reads use a small pool of read-only
//! connections on blocking threads; WAL lets them run beside the writer.
//!
//! Durability: `synchronous=NORMAL` in WAL mode, so a committed transaction survives a crash
//! of the process (kill -9); `Durability::Full` also survives a power loss at the cost of one
//! fsync per group commit. WAL checkpoints run every 100 ms on their own thread, never inside
//! a commit; once a second the writer completes one between two batches, so that the WAL
//! starts over even under sustained writes.
//!
//! With `Durability::Process`, activation records of first runs and journal entries do not
//! wait for a commit: they are appended to the record log ([`crate::record_log`]), which a
//! crash of the process cannot undo, and the writer inserts them a few milliseconds later,
//! many per transaction. **Invariant:** every read of records or journal entries first waits
//! until everything appended before it is in SQLite, and every write is applied in the order
//! it was queued, logged or not; so nobody can tell a logged entry from a committed one.

mod deliveries;
mod workflows;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gust_model::time::now_ms;
use gust_model::{
    Action, Activation, EncodedActivation, Mapping, Namespace, NamespaceLimits, Package, Route,
    Rule, Schedule, Site, Subscription, Trigger,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::record_log::{Entry, LogFiles, Position, RecordLog};
use crate::sql::{self, Arg};
use crate::{
    ActionStore, ActivationQuery, ActivationStore, AdmissionStore, JournalStore, MappingStore,
    NamespaceStore, PackageStore, PendingInvocation, PutMode, Result, RouteStore, RuleStore,
    ScheduleStore, SiteStore, StoreError, SubscriptionStore, TickClaim, TriggerStore,
    WritePosition, action_from, name_range,
};
use writer::{Job, Scope, Typed, Write, Writer, apply, checkpoint, mark_applied};

/// How often the WAL is copied back into the database file. Often: each checkpoint ends with
/// an fsync, during which the file system stalls the writer's WAL appends, and a small
/// checkpoint stalls it briefly (every 500 ms gave a p99 of 5 to 9 ms under load, every
/// 100 ms 2 to 3 ms; BENCHMARKS.md).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// How often the writer completes a checkpoint itself. The checkpoint thread copies frames
/// while the writer keeps appending, so under sustained writes it never catches up, and SQLite
/// starts the WAL over only once every frame is copied: without this the WAL would grow
/// without bound (about 64 MB a second at 40,000 records a second). Between two batches the
/// writer copies what the last background checkpoint left (a fraction of a second's frames),
/// and its next transaction starts the WAL over.
const WRITER_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// The size a WAL file is cut back to when it starts over.
const WAL_SIZE_LIMIT: i64 = 64 << 20;
/// Read connections kept open.
const READ_POOL: usize = 8;
/// Most logged entries waiting for the writer (queued, or kept for the next batch after a
/// failed commit). Past it an entry is committed through SQLite and its caller waits for the
/// commit: a writer that falls behind (a slow disk) or keeps failing (a full one) slows its
/// callers down, or fails them with SQLite's error, instead of holding ever more entries in
/// memory. About 1.6 s of records at 40,000 a second, some 100 MB.
const MAX_UNAPPLIED: usize = 1 << 16;

/// How hard a commit is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Survives a crash of the process (WAL, `synchronous=NORMAL`).
    #[default]
    Process,
    /// Survives a crash of the machine (`synchronous=FULL`).
    Full,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Backend(format!("corrupt document: {e}"))
    }
}

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE namespaces (
    name    TEXT PRIMARY KEY,
    uuid    TEXT NOT NULL UNIQUE,
    key     TEXT NOT NULL,
    limits  TEXT NOT NULL
);
CREATE TABLE actions (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    doc       TEXT NOT NULL,
    code      BLOB NOT NULL,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE activations (
    id        TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    start     INTEGER NOT NULL,
    doc       TEXT NOT NULL
);
CREATE INDEX activations_by_namespace ON activations (namespace, start DESC);
CREATE INDEX activations_by_name ON activations (namespace, name, start DESC);
CREATE TABLE pending (
    id        TEXT PRIMARY KEY,
    accepted  INTEGER NOT NULL,
    message   BLOB NOT NULL
);
"#,
    r#"
-- Storing a record clears its journal entry within the same statement, so a record write is
-- one statement: atomic without a savepoint of its own.
CREATE TRIGGER activation_clears_pending AFTER INSERT ON activations
BEGIN
    DELETE FROM pending WHERE id = NEW.id;
END;
"#,
    r#"
CREATE TABLE packages (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    publish   INTEGER NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
"#,
    r#"
CREATE TABLE routes (
    namespace TEXT NOT NULL,
    base_path TEXT NOT NULL,
    path      TEXT NOT NULL,
    method    TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, base_path, path, method)
);
"#,
    r#"
CREATE TABLE site_blobs (
    namespace TEXT NOT NULL,
    hash      TEXT NOT NULL,
    content   BLOB NOT NULL,
    touched   INTEGER NOT NULL,
    PRIMARY KEY (namespace, hash)
);
CREATE TABLE sites (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
"#,
    r#"
-- How far into the record log the writer has inserted (the end of the last frame applied):
-- updated in the transaction that inserts the frames.
CREATE TABLE record_log (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    segment INTEGER NOT NULL,
    offset  INTEGER NOT NULL
);
INSERT INTO record_log (id, segment, offset) VALUES (0, 0, 0);
"#,
    r#"
-- Triggers, rules and the schedules of timer-fed triggers (decision 0020).
CREATE TABLE triggers (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE rules (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    trigger   TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE INDEX rules_by_trigger ON rules (namespace, trigger);
CREATE TABLE schedules (
    namespace  TEXT NOT NULL,
    trigger    TEXT NOT NULL,
    doc        TEXT NOT NULL,
    next_ms    INTEGER,
    pending_ms INTEGER,
    owner      TEXT,
    lease_ms   INTEGER NOT NULL,
    fired      INTEGER NOT NULL,
    PRIMARY KEY (namespace, trigger)
);
CREATE INDEX schedules_by_next ON schedules (next_ms);
CREATE INDEX schedules_pending ON schedules (pending_ms) WHERE pending_ms IS NOT NULL;
"#,
    r#"
-- The subscriptions of source-fed triggers (decision 0021).
CREATE TABLE subscriptions (
    namespace TEXT NOT NULL,
    trigger   TEXT NOT NULL,
    doc       TEXT NOT NULL,
    runs      INTEGER NOT NULL,
    owner     TEXT,
    lease_ms  INTEGER NOT NULL,
    status    TEXT NOT NULL,
    PRIMARY KEY (namespace, trigger)
);
CREATE INDEX subscriptions_running ON subscriptions (runs, owner);
"#,
    r#"
-- The event source mappings of stream triggers, one per rule (decision 0027).
CREATE TABLE mappings (
    namespace  TEXT NOT NULL,
    rule       TEXT NOT NULL,
    trigger    TEXT NOT NULL,
    checkpoint INTEGER NOT NULL,
    state      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, rule)
);
"#,
    r#"
-- Durable workflows and async delivery (decision 0028).
CREATE TABLE workflows (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE executions (
    namespace TEXT NOT NULL,
    id        TEXT NOT NULL,
    workflow  TEXT NOT NULL,
    name      TEXT NOT NULL,
    status    TEXT NOT NULL,
    start_ms  INTEGER NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, id),
    UNIQUE (namespace, workflow, name)
);
CREATE INDEX executions_by_start ON executions (namespace, start_ms, id);
CREATE INDEX executions_by_workflow ON executions (namespace, workflow, start_ms, id);
CREATE TABLE workflow_runs (
    namespace TEXT NOT NULL,
    id        TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    snapshot  TEXT NOT NULL,
    wake_ms   INTEGER,
    owner     TEXT,
    lease_ms  INTEGER NOT NULL,
    PRIMARY KEY (namespace, id)
);
-- An unowned run's lease_ms is 0, so the claim poll is one range of this index.
CREATE INDEX workflow_runs_by_lease ON workflow_runs (lease_ms);
CREATE INDEX workflow_runs_by_owner ON workflow_runs (owner);
CREATE TABLE workflow_history (
    namespace TEXT NOT NULL,
    execution TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    details   TEXT NOT NULL,
    PRIMARY KEY (namespace, execution, seq)
);
-- History payloads over 8 KiB, once per namespace, by the hex SHA-256 of their JSON text.
CREATE TABLE workflow_payloads (
    namespace TEXT NOT NULL,
    hash      TEXT NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (namespace, hash)
);
CREATE TABLE workflow_signals (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    execution TEXT NOT NULL,
    doc       TEXT NOT NULL
);
CREATE INDEX workflow_signals_by_run ON workflow_signals (namespace, execution, id);
CREATE TABLE delivery_configs (
    namespace TEXT NOT NULL,
    action    TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, action)
);
CREATE TABLE deliveries (
    namespace TEXT NOT NULL,
    id        TEXT NOT NULL,
    attempt   INTEGER NOT NULL,
    due_ms    INTEGER NOT NULL,
    owner     TEXT,
    lease_ms  INTEGER NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX deliveries_by_due ON deliveries (due_ms);
CREATE TABLE dead_letters (
    namespace  TEXT NOT NULL,
    id         TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX dead_letters_by_created ON dead_letters (namespace, created_ms, id);
CREATE TABLE idempotency_keys (
    namespace     TEXT NOT NULL,
    key           TEXT NOT NULL,
    activation_id TEXT NOT NULL,
    expires_ms    INTEGER NOT NULL,
    action        TEXT NOT NULL DEFAULT '',
    digest        TEXT NOT NULL DEFAULT '',
    claimed_ms    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_ms);
"#,
];

pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<Write>,
    /// Woken when a write somebody waits for is queued.
    writer_thread: std::thread::Thread,
    /// Records and journal entries go here first (`Durability::Process`).
    log: Option<RecordLog>,
    /// Logged entries not yet in SQLite.
    unapplied: Arc<AtomicUsize>,
    /// [`MAX_UNAPPLIED`] (smaller in tests).
    max_unapplied: usize,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Asks the writer to complete a checkpoint between two batches (set by the checkpoint
    /// thread; kept here for tests).
    #[cfg(test)]
    checkpoint_due: Arc<AtomicBool>,
    /// The checkpoint thread stops when this is dropped.
    _alive: Arc<()>,
    /// Bumped after each record write, for readers that follow new records.
    records_written: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn open(path: &Path, durability: Durability) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Process => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // 64 MB of page cache: the indexes the API reads stay in memory.
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let tx = conn.transaction()?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and applies pending migrations.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self> {
        Self::open_with(path, durability, CHECKPOINT_EVERY)
    }

    /// [`SqliteStore::open`] with background checkpoints every `checkpoint_every`.
    fn open_with(
        path: impl AsRef<Path>,
        durability: Durability,
        checkpoint_every: Duration,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open(&path, durability)?;
        migrate(&mut conn)?;
        // Checkpoints run on their own thread and connection, so a commit never waits for
        // the WAL to be copied back into the database file.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let alive = Arc::new(());
        let checkpoint_due = Arc::new(AtomicBool::new(false));
        let due = checkpoint_due.clone();
        let writer_due = checkpoint_due.clone();
        let checkpointer = open(&path, durability)?;
        let token = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name("gust-store-checkpoint".into())
            .spawn(move || {
                let mut writer_due = Instant::now() + WRITER_CHECKPOINT_EVERY;
                while token.upgrade().is_some() {
                    std::thread::sleep(checkpoint_every);
                    if let Err(e) = checkpoint(&checkpointer) {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                    if Instant::now() >= writer_due {
                        due.store(true, Ordering::Relaxed);
                        writer_due = Instant::now() + WRITER_CHECKPOINT_EVERY;
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        let files = LogFiles::of(&path);
        let next_seq = replay(&mut conn, &files)?;
        let unapplied = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            files: files.clone(),
            unapplied: unapplied.clone(),
            live_from: next_seq,
            retry: Vec::new(),
            checkpoint_due: writer_due,
        };
        let writer_thread = std::thread::Builder::new()
            .name("gust-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?
            .thread()
            .clone();
        // A power loss can undo an append that no fsync followed: `Full` commits instead.
        let log = (durability == Durability::Process).then(|| RecordLog::new(files, next_seq));
        Ok(SqliteStore {
            path,
            writer: tx,
            writer_thread,
            log,
            unapplied,
            max_unapplied: MAX_UNAPPLIED,
            readers: Arc::new(Mutex::new(Vec::new())),
            #[cfg(test)]
            checkpoint_due,
            _alive: alive,
            records_written: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Makes `entry` durable: appended to the record log and queued for the writer, or, without
    /// a log or with [`MAX_UNAPPLIED`] entries already waiting for the writer, committed.
    async fn log_or_commit(&self, entry: Entry) -> Result<()> {
        let commit = |entry: Entry| async move {
            self.write_statement(move |c| Ok(apply(c, &entry)?)).await
        };
        let Some(log) = &self.log else {
            return commit(entry).await;
        };
        if self.unapplied.load(Ordering::Acquire) >= self.max_unapplied {
            return commit(entry).await;
        }
        let frame = entry.frame();
        let mut entry = Some(entry);
        let appended = log.append(&frame, |at| {
            self.unapplied.fetch_add(1, Ordering::AcqRel);
            entry
                .take()
                .is_some_and(|e| self.writer.send(Write::Logged(at, e)).is_ok())
        });
        let queued = match appended {
            Ok(queued) => queued,
            Err(e) => {
                // Nothing was queued: the entry is committed the slow way instead (a full disk
                // fails that too, with SQLite's own error).
                tracing::warn!(error = %e, "cannot append to the record log; committing instead");
                let Some(entry) = entry else {
                    return Err(StoreError::Backend(format!(
                        "cannot append to the record log: {e}"
                    )));
                };
                return commit(entry).await;
            }
        };
        if !queued {
            // Durable, and inserted at the next start.
            self.unapplied.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Backend("the store writer has stopped".into()));
        }
        Ok(())
    }

    /// Waits until every entry logged so far is in SQLite (before a read of records or
    /// journal entries).
    async fn settle(&self) -> Result<()> {
        if self.unapplied.load(Ordering::Acquire) > 0 {
            self.write_statement(|_| Ok(())).await?;
        }
        Ok(())
    }

    /// Queues a write of several statements for the next group commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.queue(f, Scope::Savepoint).await
    }

    /// Queues a write that runs exactly one SQL statement (cheaper: no savepoint).
    async fn write_statement<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.queue(f, Scope::Statement).await
    }

    async fn queue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
        scope: Scope,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed::new(f, tx));
        self.writer
            .send(Write::Exec(job, scope))
            .map_err(|_| StoreError::Backend("the store writer has stopped".into()))?;
        // It may be lingering for logged entries, which nobody waits for.
        self.writer_thread.unpark();
        rx.await
            .map_err(|_| StoreError::Backend("the store writer has stopped".into()))?
    }

    /// Runs one statement that must change a row; `unchanged` is the error when none changed.
    async fn write_row(
        &self,
        sql: &'static str,
        args: Vec<Value>,
        unchanged: StoreError,
    ) -> Result<()> {
        self.write_statement(move |c| {
            if c.prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(args))?
                == 0
            {
                return Err(unchanged);
            }
            Ok(())
        })
        .await
    }

    /// Runs one statement; returns how many rows it changed.
    async fn write_count(&self, sql: &'static str, args: Vec<Value>) -> Result<u64> {
        self.write_statement(move |c| {
            Ok(c.prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(args))? as u64)
        })
        .await
    }

    /// The documents (JSON text) `sql` selects, parsed.
    async fn docs<T>(&self, sql: &'static str, args: Vec<Value>) -> Result<Vec<T>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows =
                stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(0))?;
            rows.map(|r| Ok(serde_json::from_str(&r?)?)).collect()
        })
        .await
    }

    /// The one document `sql` selects, parsed.
    async fn doc<T>(&self, sql: &'static str, args: Vec<Value>) -> Result<Option<T>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        Ok(self.docs(sql, args).await?.into_iter().next())
    }

    /// The one integer `sql` selects (a count).
    async fn number(&self, sql: &'static str, args: Vec<Value>) -> Result<u64> {
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached(sql)?
                .query_row(rusqlite::params_from_iter(args), |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    /// The one blob `sql` selects.
    async fn blob(&self, sql: &'static str, args: Vec<Value>) -> Result<Option<Vec<u8>>> {
        self.read(move |c| {
            Ok(c.prepare_cached(sql)?
                .query_row(rusqlite::params_from_iter(args), |r| r.get(0))
                .optional()?)
        })
        .await
    }

    /// The namespace `sql` selects by its one parameter `value`.
    async fn namespace_where(&self, sql: &'static str, value: &str) -> Result<Option<Namespace>> {
        let value = value.to_string();
        self.read(move |c| {
            c.prepare_cached(sql)?
                .query_row([value], row_to_namespace)
                .optional()?
                .map(namespace_from)
                .transpose()
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.lock().ok().and_then(|mut pool| pool.pop());
            let conn = match conn {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    c.busy_timeout(std::time::Duration::from_secs(10))?;
                    c
                }
            };
            let out = f(&conn);
            if let Ok(mut pool) = readers.lock()
                && pool.len() < READ_POOL
            {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

/// At open: inserts what the log holds past the point SQLite has, then deletes the log files.
/// Returns the sequence number for the next log file.
fn replay(conn: &mut Connection, files: &LogFiles) -> Result<u64> {
    let io = |e: std::io::Error| StoreError::Backend(format!("cannot read the record log: {e}"));
    let entries = files.read_all().map_err(io)?;
    let applied: Position = conn.query_row(
        "SELECT segment, offset FROM record_log WHERE id = 0",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?;
    let mut last = applied;
    let tx = conn.transaction()?;
    let mut inserted = 0;
    for (at, entry) in entries.iter().filter(|(at, _)| *at > applied) {
        apply(&tx, entry)?;
        last = *at;
        inserted += 1;
    }
    if last > applied {
        mark_applied(&tx, last)?;
    }
    tx.commit()?;
    if inserted > 0 {
        tracing::info!(
            inserted,
            "inserted records and journal entries from the record log"
        );
    }
    let newest = files.list().map_err(io)?.last().map_or(0, |(seq, _)| *seq);
    let next = newest.max(last.0) + 1;
    files.delete_before(next);
    Ok(next)
}

fn row_to_namespace(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn namespace_from(
    (name, uuid, key, limits): (String, String, String, String),
) -> Result<Namespace> {
    Ok(Namespace {
        name,
        uuid,
        key,
        limits: serde_json::from_str(&limits)?,
    })
}

/// The names `list_actions` selects: inside package `p`, or every name (SQLite compares text
/// bytewise, and no name reaches U+10FFFF).
fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn int(n: u64) -> Value {
    Value::Integer(n as i64)
}

fn values(args: Vec<Arg>) -> Vec<Value> {
    args.into_iter()
        .map(|a| match a {
            Arg::Text(s) => Value::Text(s),
            Arg::Int(n) => Value::Integer(n),
        })
        .collect()
}

#[async_trait]
impl NamespaceStore for SqliteStore {
    async fn create_namespace(&self, ns: &Namespace) -> Result<()> {
        let limits = serde_json::to_string(&ns.limits)?;
        self.write_row(
            sql::CREATE_NAMESPACE,
            vec![
                text(&ns.name),
                text(&ns.uuid),
                text(&ns.key),
                Value::Text(limits),
            ],
            StoreError::Conflict,
        )
        .await
    }

    async fn namespace_by_uuid(&self, uuid: &str) -> Result<Option<Namespace>> {
        self.namespace_where(sql::NAMESPACE_BY_UUID, uuid).await
    }

    async fn namespace(&self, name: &str) -> Result<Option<Namespace>> {
        self.namespace_where(sql::NAMESPACE_BY_NAME, name).await
    }

    async fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(sql::LIST_NAMESPACES)?;
            let rows = stmt.query_map([], row_to_namespace)?;
            rows.map(|r| namespace_from(r?)).collect()
        })
        .await
    }

    async fn set_namespace_key(&self, name: &str, uuid: &str, key: &str) -> Result<()> {
        self.write_row(
            sql::SET_NAMESPACE_KEY,
            vec![text(uuid), text(key), text(name)],
            StoreError::NotFound,
        )
        .await
    }

    async fn set_namespace_limits(&self, name: &str, limits: NamespaceLimits) -> Result<()> {
        let limits = serde_json::to_string(&limits)?;
        self.write_row(
            sql::SET_NAMESPACE_LIMITS,
            vec![Value::Text(limits), text(name)],
            StoreError::NotFound,
        )
        .await
    }

    async fn delete_namespace(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |c| {
            let n = c.execute("DELETE FROM namespaces WHERE name = ?", [&name])?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            for table in [
                "actions",
                "packages",
                "routes",
                "sites",
                "site_blobs",
                "triggers",
                "rules",
                "schedules",
                "subscriptions",
                "mappings",
                "workflows",
                "executions",
                "workflow_runs",
                "workflow_history",
                "workflow_payloads",
                "workflow_signals",
                "delivery_configs",
                "deliveries",
                "dead_letters",
                "idempotency_keys",
            ] {
                c.execute(&format!("DELETE FROM {table} WHERE namespace = ?"), [&name])?;
            }
            // The newest record stays as an empty row of no namespace when it is this
            // namespace's: a new row id is one above the largest in the table, so removing
            // the largest would give a later record a row id a live stream has passed.
            c.execute(
                "DELETE FROM activations WHERE namespace = ?1
                   AND rowid < (SELECT max(rowid) FROM activations)",
                [&name],
            )?;
            c.execute(
                "UPDATE activations SET namespace = '', name = '', doc = '{}'
                 WHERE namespace = ?1",
                [&name],
            )?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl ActionStore for SqliteStore {
    async fn action(&self, namespace: &str, name: &str, with_code: bool) -> Result<Option<Action>> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.read(move |c| {
            let sql = if with_code {
                sql::ACTION_WITH_CODE
            } else {
                sql::ACTION_WITHOUT_CODE
            };
            let row = c
                .prepare_cached(sql)?
                .query_row([ns, name], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?,
                    ))
                })
                .optional()?;
            row.map(|(doc, hash, code)| action_from(&doc, hash, code))
                .transpose()
        })
        .await
    }

    async fn action_code(&self, namespace: &str, name: &str) -> Result<Option<Vec<u8>>> {
        self.blob(sql::ACTION_CODE, vec![text(namespace), text(name)])
            .await
    }

    async fn put_action(&self, action: &Action, code: Option<&[u8]>, mode: PutMode) -> Result<()> {
        let mut doc_action = action.clone();
        doc_action.exec.code = None;
        let doc = serde_json::to_string(&doc_action)?;
        let code = code.map(<[u8]>::to_vec);
        let (ns, name, version, hash) = (
            action.namespace.clone(),
            action.name.clone(),
            action.version.clone(),
            action.code_hash.clone(),
        );
        self.write_statement(move |c| {
            let n = match (mode, code) {
                (PutMode::Create, Some(code)) => c
                    .prepare_cached(sql::CREATE_ACTION)?
                    .execute(params![ns, name, version, doc, code, hash])?,
                (PutMode::Create, None) => {
                    return Err(StoreError::Backend("an action needs code".into()));
                }
                (PutMode::Replace { expected_version }, Some(code)) => c
                    .prepare_cached(sql::REPLACE_ACTION_WITH_CODE)?
                    .execute(params![
                        version,
                        doc,
                        code,
                        hash,
                        ns,
                        name,
                        expected_version
                    ])?,
                (PutMode::Replace { expected_version }, None) => c
                    .prepare_cached(sql::REPLACE_ACTION_DOC)?
                    .execute(params![version, doc, ns, name, expected_version])?,
            };
            if n == 0 {
                return Err(StoreError::Conflict);
            }
            Ok(())
        })
        .await
    }

    async fn delete_action(&self, namespace: &str, name: &str) -> Result<Option<Action>> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write_statement(move |c| {
            let row = c
                .prepare_cached(sql::DELETE_ACTION)?
                .query_row([ns, name], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .optional()?;
            row.map(|(doc, hash)| action_from(&doc, hash, None))
                .transpose()
        })
        .await
    }

    async fn list_actions(
        &self,
        namespace: &str,
        package: Option<&str>,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Action>> {
        let ns = namespace.to_string();
        let (lo, hi) = name_range(package);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql::LIST_ACTIONS)?;
            let rows = stmt.query_map(params![ns, lo, hi, limit as i64, skip as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            rows.map(|r| {
                let (doc, hash) = r?;
                action_from(&doc, hash, None)
            })
            .collect()
        })
        .await
    }

    async fn count_actions(&self, namespace: &str, package: Option<&str>) -> Result<u64> {
        let (lo, hi) = name_range(package);
        self.number(
            sql::COUNT_ACTIONS,
            vec![text(namespace), Value::Text(lo), Value::Text(hi)],
        )
        .await
    }

    async fn code_hashes(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(sql::CODE_HASHES)?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
    }
}

#[async_trait]
impl PackageStore for SqliteStore {
    async fn package(&self, namespace: &str, name: &str) -> Result<Option<Package>> {
        self.doc(sql::PACKAGE, vec![text(namespace), text(name)])
            .await
    }

    async fn put_package(&self, package: &Package, mode: PutMode) -> Result<()> {
        let doc = serde_json::to_string(package)?;
        let (ns, name, version, publish) = (
            text(&package.namespace),
            text(&package.name),
            text(&package.version),
            Value::Integer(i64::from(package.publish)),
        );
        let (sql, args) = match mode {
            PutMode::Create => (
                sql::CREATE_PACKAGE,
                vec![ns, name, version, publish, Value::Text(doc)],
            ),
            PutMode::Replace { expected_version } => (
                sql::REPLACE_PACKAGE,
                vec![
                    version,
                    publish,
                    Value::Text(doc),
                    ns,
                    name,
                    Value::Text(expected_version),
                ],
            ),
        };
        self.write_row(sql, args, StoreError::Conflict).await
    }

    async fn delete_package(&self, namespace: &str, name: &str) -> Result<Option<Package>> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write(move |c| {
            let doc = c
                .query_row(
                    "DELETE FROM packages WHERE namespace = ? AND name = ? RETURNING doc",
                    [&ns, &name],
                    |r| r.get::<_, String>(0),
                )
                .optional()?;
            let Some(doc) = doc else {
                return Ok(None);
            };
            let (lo, hi) = name_range(Some(&name));
            c.execute(
                "DELETE FROM actions WHERE namespace = ? AND name >= ? AND name < ?",
                params![ns, lo, hi],
            )?;
            Ok(Some(serde_json::from_str(&doc)?))
        })
        .await
    }

    async fn list_packages(
        &self,
        namespace: &str,
        public_only: bool,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Package>> {
        self.docs(
            sql::LIST_PACKAGES,
            vec![
                text(namespace),
                Value::Integer(i64::from(public_only)),
                int(limit),
                int(skip),
            ],
        )
        .await
    }

    async fn count_packages(&self, namespace: &str, public_only: bool) -> Result<u64> {
        self.number(
            sql::COUNT_PACKAGES,
            vec![text(namespace), Value::Integer(i64::from(public_only))],
        )
        .await
    }
}

#[async_trait]
impl RouteStore for SqliteStore {
    async fn put_route(&self, route: &Route) -> Result<()> {
        let doc = serde_json::to_string(route)?;
        let args = vec![
            text(&route.namespace),
            text(&route.base_path),
            text(&route.path),
            text(&route.method),
            Value::Text(doc),
        ];
        self.write_count(sql::PUT_ROUTE, args).await.map(|_| ())
    }

    async fn delete_routes(
        &self,
        namespace: &str,
        base_path: &str,
        path: Option<&str>,
        method: Option<&str>,
    ) -> Result<u64> {
        let or_null = |s: Option<&str>| s.map_or(Value::Null, text);
        let args = vec![
            text(namespace),
            text(base_path),
            or_null(path),
            or_null(method),
        ];
        self.write_count(sql::DELETE_ROUTES, args).await
    }

    async fn list_routes(&self, namespace: &str, base_path: Option<&str>) -> Result<Vec<Route>> {
        let base = base_path.map_or(Value::Null, text);
        self.docs(sql::LIST_ROUTES, vec![text(namespace), base])
            .await
    }
}

#[async_trait]
impl SiteStore for SqliteStore {
    async fn put_site_blob(&self, namespace: &str, hash: &str, content: Vec<u8>) -> Result<()> {
        let args = vec![
            text(namespace),
            text(hash),
            Value::Blob(content),
            int(now_ms()),
        ];
        self.write_count(sql::PUT_SITE_BLOB, args).await.map(|_| ())
    }

    async fn touch_site_blobs(
        &self,
        namespace: &str,
        hashes: &[String],
    ) -> Result<HashMap<String, u64>> {
        let ns = namespace.to_string();
        let hashes = serde_json::to_string(hashes)?;
        self.write_statement(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE site_blobs SET touched = ? WHERE namespace = ?
                 AND hash IN (SELECT value FROM json_each(?))
                 RETURNING hash, length(content)",
            )?;
            let rows = stmt.query_map(params![now_ms() as i64, ns, hashes], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn site_blob(&self, namespace: &str, hash: &str) -> Result<Option<Vec<u8>>> {
        self.blob(sql::SITE_BLOB, vec![text(namespace), text(hash)])
            .await
    }

    async fn site_blob_bytes(&self, namespace: &str) -> Result<u64> {
        self.number(sql::SITE_BLOB_BYTES, vec![text(namespace)])
            .await
    }

    async fn sweep_site_blobs(&self, namespace: &str, before: u64) -> Result<u64> {
        self.write_count(
            "DELETE FROM site_blobs WHERE namespace = ?1 AND touched < ?2
             AND hash NOT IN (
                 SELECT json_extract(f.value, '$.hash')
                 FROM sites s, json_each(s.doc, '$.files') f WHERE s.namespace = ?1)",
            vec![text(namespace), int(before)],
        )
        .await
    }

    async fn site(&self, namespace: &str, name: &str) -> Result<Option<Site>> {
        self.doc(sql::SITE, vec![text(namespace), text(name)]).await
    }

    async fn put_site(&self, site: &Site) -> Result<()> {
        let doc = serde_json::to_string(site)?;
        let args = vec![text(&site.namespace), text(&site.name), Value::Text(doc)];
        self.write_count(sql::PUT_SITE, args).await.map(|_| ())
    }

    async fn delete_site(&self, namespace: &str, name: &str) -> Result<Option<Site>> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write_statement(move |c| {
            let doc: Option<String> = c
                .prepare_cached(sql::DELETE_SITE)?
                .query_row(params![ns, name], |r| r.get(0))
                .optional()?;
            Ok(doc.map(|d| serde_json::from_str(&d)).transpose()?)
        })
        .await
    }

    async fn list_sites(&self, namespace: &str) -> Result<Vec<Site>> {
        self.docs(sql::LIST_SITES, vec![text(namespace)]).await
    }
}

/// A row of `sql::SCHEDULE`'s columns, as read; [`schedule_of`] parses its document.
type ScheduleRow = (
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
    i64,
);

fn schedule_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ScheduleRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn schedule_of(row: ScheduleRow) -> Result<Schedule> {
    let (namespace, trigger, doc, next, pending, owner, lease, fired) = row;
    Ok(Schedule {
        namespace,
        trigger,
        spec: serde_json::from_str(&doc)?,
        next_ms: next.map(|n| n as u64),
        pending_ms: pending.map(|n| n as u64),
        owner,
        lease_ms: lease as u64,
        fired: fired as u64,
    })
}

impl SqliteStore {
    /// The schedules `sql` selects with `args`.
    async fn schedules(&self, sql: &'static str, args: Vec<Value>) -> Result<Vec<Schedule>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), schedule_row)?;
            rows.map(|r| schedule_of(r?)).collect()
        })
        .await
    }
}

fn ms_or_null(n: Option<u64>) -> Value {
    n.map_or(Value::Null, int)
}

#[async_trait]
impl TriggerStore for SqliteStore {
    async fn trigger(&self, namespace: &str, name: &str) -> Result<Option<Trigger>> {
        self.doc(sql::TRIGGER, vec![text(namespace), text(name)])
            .await
    }

    async fn put_trigger(&self, t: &Trigger, mode: PutMode) -> Result<()> {
        let doc = Value::Text(serde_json::to_string(t)?);
        let (ns, name, version) = (text(&t.namespace), text(&t.name), text(&t.version));
        let (sql, args) = match mode {
            PutMode::Create => (sql::CREATE_TRIGGER, vec![ns, name, version, doc]),
            PutMode::Replace { expected_version } => (
                sql::REPLACE_TRIGGER,
                vec![version, doc, ns, name, Value::Text(expected_version)],
            ),
        };
        self.write_row(sql, args, StoreError::Conflict).await
    }

    async fn delete_trigger(&self, namespace: &str, name: &str) -> Result<Option<Trigger>> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write(move |c| {
            let doc: Option<String> = c
                .prepare_cached(sql::DELETE_TRIGGER)?
                .query_row(params![ns, name], |r| r.get(0))
                .optional()?;
            c.prepare_cached(sql::DELETE_TRIGGER_SCHEDULE)?
                .execute(params![ns, name])?;
            c.prepare_cached(sql::DELETE_SUBSCRIPTION)?
                .execute(params![ns, name])?;
            Ok(doc.map(|d| serde_json::from_str(&d)).transpose()?)
        })
        .await
    }

    async fn list_triggers(&self, namespace: &str, skip: u64, limit: u64) -> Result<Vec<Trigger>> {
        self.docs(
            sql::LIST_TRIGGERS,
            vec![text(namespace), int(limit), int(skip)],
        )
        .await
    }

    async fn count_triggers(&self, namespace: &str) -> Result<u64> {
        self.number(sql::COUNT_TRIGGERS, vec![text(namespace)])
            .await
    }
}

#[async_trait]
impl RuleStore for SqliteStore {
    async fn rule(&self, namespace: &str, name: &str) -> Result<Option<Rule>> {
        self.doc(sql::RULE, vec![text(namespace), text(name)]).await
    }

    async fn put_rule(&self, r: &Rule, mode: PutMode) -> Result<()> {
        let doc = Value::Text(serde_json::to_string(r)?);
        let trigger = Value::Text(r.trigger.qualified());
        let (ns, name, version) = (text(&r.namespace), text(&r.name), text(&r.version));
        let (sql, args) = match mode {
            PutMode::Create => (sql::CREATE_RULE, vec![ns, name, version, trigger, doc]),
            PutMode::Replace { expected_version } => (
                sql::REPLACE_RULE,
                vec![
                    version,
                    trigger,
                    doc,
                    ns,
                    name,
                    Value::Text(expected_version),
                ],
            ),
        };
        self.write_row(sql, args, StoreError::Conflict).await
    }

    async fn delete_rule(&self, namespace: &str, name: &str) -> Result<Option<Rule>> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write(move |c| {
            let doc: Option<String> = c
                .prepare_cached(sql::DELETE_RULE)?
                .query_row(params![ns, name], |r| r.get(0))
                .optional()?;
            c.prepare_cached(sql::DELETE_MAPPING)?
                .execute(params![ns, name])?;
            Ok(doc.map(|d| serde_json::from_str(&d)).transpose()?)
        })
        .await
    }

    async fn list_rules(&self, namespace: &str, skip: u64, limit: u64) -> Result<Vec<Rule>> {
        self.docs(
            sql::LIST_RULES,
            vec![text(namespace), int(limit), int(skip)],
        )
        .await
    }

    async fn count_rules(&self, namespace: &str) -> Result<u64> {
        self.number(sql::COUNT_RULES, vec![text(namespace)]).await
    }

    async fn rules_of_trigger(&self, namespace: &str, trigger: &str) -> Result<Vec<Rule>> {
        self.docs(sql::RULES_OF_TRIGGER, vec![text(namespace), text(trigger)])
            .await
    }
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn put_schedule(&self, s: &Schedule) -> Result<()> {
        let doc = Value::Text(serde_json::to_string(&s.spec)?);
        let args = vec![
            text(&s.namespace),
            text(&s.trigger),
            doc,
            ms_or_null(s.next_ms),
        ];
        self.write_count(sql::PUT_SCHEDULE, args).await.map(|_| ())
    }

    async fn schedule(&self, namespace: &str, trigger: &str) -> Result<Option<Schedule>> {
        Ok(self
            .schedules(sql::SCHEDULE, vec![text(namespace), text(trigger)])
            .await?
            .into_iter()
            .next())
    }

    async fn delete_schedule(&self, namespace: &str, trigger: &str) -> Result<bool> {
        let args = vec![text(namespace), text(trigger)];
        Ok(self.write_count(sql::DELETE_TRIGGER_SCHEDULE, args).await? > 0)
    }

    async fn due_schedules(&self, owner: &str, now_ms: u64, limit: u64) -> Result<Vec<Schedule>> {
        self.schedules(
            sql::DUE_SCHEDULES,
            vec![int(now_ms), text(owner), int(limit)],
        )
        .await
    }

    async fn claim_tick(&self, c: &TickClaim<'_>) -> Result<bool> {
        let args = vec![
            ms_or_null(c.next_ms),
            int(c.tick_ms),
            text(c.owner),
            int(c.lease_ms),
            text(c.namespace),
            text(c.trigger),
            int(c.now_ms),
        ];
        Ok(self.write_count(sql::CLAIM_TICK, args).await? > 0)
    }

    async fn skip_ticks(&self, c: &TickClaim<'_>) -> Result<bool> {
        let args = vec![
            ms_or_null(c.next_ms),
            text(c.owner),
            int(c.lease_ms),
            text(c.namespace),
            text(c.trigger),
            int(c.tick_ms),
            int(c.now_ms),
        ];
        Ok(self.write_count(sql::SKIP_TICKS, args).await? > 0)
    }

    async fn adopt_pending(&self, c: &TickClaim<'_>) -> Result<bool> {
        let args = vec![
            text(c.owner),
            int(c.lease_ms),
            text(c.namespace),
            text(c.trigger),
            int(c.tick_ms),
            int(c.now_ms),
        ];
        Ok(self.write_count(sql::ADOPT_PENDING, args).await? > 0)
    }

    async fn finish_tick(&self, namespace: &str, trigger: &str, tick_ms: u64) -> Result<()> {
        let args = vec![text(namespace), text(trigger), int(tick_ms)];
        self.write_count(sql::FINISH_TICK, args).await.map(|_| ())
    }

    async fn renew_schedules(&self, owner: &str, lease_ms: u64) -> Result<u64> {
        self.write_count(sql::RENEW_SCHEDULES, vec![int(lease_ms), text(owner)])
            .await
    }

    async fn earliest_tick(&self, owner: &str, now_ms: u64) -> Result<Option<u64>> {
        let (owner, now) = (owner.to_string(), now_ms as i64);
        self.read(move |c| {
            let n: Option<i64> = c
                .prepare_cached(sql::EARLIEST_TICK)?
                .query_row(params![owner, now], |r| r.get(0))
                .optional()?;
            Ok(n.map(|n| n as u64))
        })
        .await
    }

    async fn release_schedules(&self) -> Result<()> {
        self.write_count(sql::RELEASE_SCHEDULES, Vec::new())
            .await
            .map(|_| ())
    }
}

type SubscriptionRow = (String, String, String, Option<String>, i64, String);

fn subscription_of(row: SubscriptionRow) -> Result<Subscription> {
    let (namespace, trigger, doc, owner, lease, status) = row;
    Ok(Subscription {
        namespace,
        trigger,
        spec: serde_json::from_str(&doc)?,
        owner,
        lease_ms: lease as u64,
        status: serde_json::from_str(&status)?,
    })
}

impl SqliteStore {
    /// The subscriptions `sql` selects with `args`.
    async fn subscriptions(
        &self,
        sql: &'static str,
        args: Vec<Value>,
    ) -> Result<Vec<Subscription>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.map(|r| subscription_of(r?)).collect()
        })
        .await
    }
}

#[async_trait]
impl SubscriptionStore for SqliteStore {
    async fn put_subscription(&self, s: &Subscription) -> Result<()> {
        let doc = Value::Text(serde_json::to_string(&s.spec)?);
        let runs = i64::from(s.spec.listens && !s.spec.paused);
        let args = vec![
            text(&s.namespace),
            text(&s.trigger),
            doc,
            Value::Integer(runs),
        ];
        self.write_count(sql::PUT_SUBSCRIPTION, args)
            .await
            .map(|_| ())
    }

    async fn subscription(&self, namespace: &str, trigger: &str) -> Result<Option<Subscription>> {
        Ok(self
            .subscriptions(sql::SUBSCRIPTION, vec![text(namespace), text(trigger)])
            .await?
            .into_iter()
            .next())
    }

    async fn delete_subscription(&self, namespace: &str, trigger: &str) -> Result<bool> {
        let args = vec![text(namespace), text(trigger)];
        Ok(self.write_count(sql::DELETE_SUBSCRIPTION, args).await? > 0)
    }

    async fn runnable_subscriptions(&self, owner: &str, now_ms: u64) -> Result<Vec<Subscription>> {
        self.subscriptions(sql::RUNNABLE_SUBSCRIPTIONS, vec![text(owner), int(now_ms)])
            .await
    }

    async fn claim_subscription(
        &self,
        namespace: &str,
        trigger: &str,
        owner: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<bool> {
        let args = vec![
            text(owner),
            int(lease_ms),
            text(namespace),
            text(trigger),
            int(now_ms),
        ];
        Ok(self.write_count(sql::CLAIM_SUBSCRIPTION, args).await? > 0)
    }

    async fn renew_subscriptions(&self, owner: &str, lease_ms: u64) -> Result<u64> {
        self.write_count(sql::RENEW_SUBSCRIPTIONS, vec![int(lease_ms), text(owner)])
            .await
    }

    async fn set_subscription_status(
        &self,
        namespace: &str,
        trigger: &str,
        status: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let status = Value::Text(serde_json::to_string(status)?);
        let args = vec![status, text(namespace), text(trigger)];
        self.write_count(sql::SUBSCRIPTION_STATUS, args)
            .await
            .map(|_| ())
    }

    async fn release_subscriptions(&self) -> Result<()> {
        self.write_count(sql::RELEASE_SUBSCRIPTIONS, Vec::new())
            .await
            .map(|_| ())
    }
}

type MappingRow = (String, String, String, i64, String, i64);

fn mapping_of(row: MappingRow) -> Result<Mapping> {
    let (namespace, rule, trigger, checkpoint, state, updated) = row;
    Ok(Mapping {
        namespace,
        rule,
        trigger,
        checkpoint: checkpoint as u64,
        state: serde_json::from_str(&state)?,
        updated_ms: updated as u64,
    })
}

impl SqliteStore {
    /// The mappings `sql` selects with `args`.
    async fn select_mappings(&self, sql: &'static str, args: Vec<Value>) -> Result<Vec<Mapping>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.map(|r| mapping_of(r?)).collect()
        })
        .await
    }
}

#[async_trait]
impl MappingStore for SqliteStore {
    async fn mapping(&self, namespace: &str, rule: &str) -> Result<Option<Mapping>> {
        Ok(self
            .select_mappings(sql::MAPPING, vec![text(namespace), text(rule)])
            .await?
            .into_iter()
            .next())
    }

    async fn mappings(&self, namespace: &str) -> Result<Vec<Mapping>> {
        self.select_mappings(sql::MAPPINGS, vec![text(namespace)])
            .await
    }

    async fn put_mapping(&self, m: &Mapping) -> Result<bool> {
        let args = vec![
            text(&m.namespace),
            text(&m.rule),
            text(&m.trigger),
            Value::Integer(m.checkpoint as i64),
            Value::Text(serde_json::to_string(&m.state)?),
            int(m.updated_ms),
        ];
        Ok(self.write_count(sql::PUT_MAPPING, args).await? > 0)
    }

    async fn delete_mapping(&self, namespace: &str, rule: &str) -> Result<bool> {
        let args = vec![text(namespace), text(rule)];
        Ok(self.write_count(sql::DELETE_MAPPING, args).await? > 0)
    }
}

#[async_trait]
impl JournalStore for SqliteStore {
    async fn put_pending(&self, p: PendingInvocation) -> Result<()> {
        self.log_or_commit(Entry::Pending {
            id: p.activation_id,
            accepted: p.accepted_at,
            message: p.message,
        })
        .await
    }

    async fn put_pending_unless_recorded(&self, p: PendingInvocation) -> Result<bool> {
        let args = vec![
            Value::Text(p.activation_id),
            int(p.accepted_at),
            Value::Blob(p.message),
        ];
        Ok(self
            .write_count(sql::PUT_PENDING_UNLESS_RECORDED, args)
            .await?
            > 0)
    }

    async fn pending(&self) -> Result<Vec<PendingInvocation>> {
        self.settle().await?;
        self.read(|c| {
            let mut stmt = c.prepare_cached(sql::PENDING)?;
            let rows = stmt.query_map([], |r| {
                Ok(PendingInvocation {
                    activation_id: r.get(0)?,
                    accepted_at: r.get::<_, i64>(1)? as u64,
                    message: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn is_accepted(&self, namespace: &str, id: &str) -> Result<bool> {
        self.settle().await?;
        let (id, ns) = (id.to_string(), namespace.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached(sql::IS_ACCEPTED)?
                .query_row(params![id, ns], |_| Ok(()))
                .optional()?
                .is_some())
        })
        .await
    }
}

/// The embedded store serves one process: it has no cluster-wide admission.
impl AdmissionStore for SqliteStore {}

#[async_trait]
impl ActivationStore for SqliteStore {
    async fn put_activation(&self, record: &EncodedActivation) -> Result<bool> {
        // The trigger `activation_clears_pending` deletes the journal entry.
        let args = vec![
            text(&record.activation_id),
            text(&record.namespace),
            text(&record.name),
            int(record.start),
            text(record.json.get()),
        ];
        let written = self
            .write_count(
                "INSERT OR IGNORE INTO activations (id, namespace, name, start, doc)
                 VALUES (?, ?, ?, ?, ?)",
                args,
            )
            .await?
            > 0;
        self.records_written.send_modify(|n| *n += 1);
        Ok(written)
    }

    async fn put_new_activation(&self, record: &EncodedActivation) -> Result<()> {
        self.log_or_commit(Entry::Record {
            id: record.activation_id.clone(),
            namespace: record.namespace.clone(),
            name: record.name.clone(),
            start: record.start,
            doc: record.json.get().to_string(),
        })
        .await?;
        self.records_written.send_modify(|n| *n += 1);
        Ok(())
    }

    fn records_written(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.records_written.subscribe())
    }

    async fn activation(&self, namespace: &str, id: &str) -> Result<Option<Activation>> {
        self.settle().await?;
        self.doc(sql::ACTIVATION, vec![text(id), text(namespace)])
            .await
    }

    async fn list_activations(&self, q: &ActivationQuery) -> Result<Vec<Box<RawValue>>> {
        self.settle().await?;
        let (filter, args) = sql::activation_filter(q);
        let sql = sql::list_activations(&filter, args.len());
        let mut args = values(args);
        args.push(int(q.limit));
        args.push(int(q.skip));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows =
                stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(0))?;
            rows.map(|d| Ok(RawValue::from_string(d?)?)).collect()
        })
        .await
    }

    async fn count_activations(&self, q: &ActivationQuery) -> Result<u64> {
        self.settle().await?;
        let (filter, args) = sql::activation_filter(q);
        let sql = sql::count_activations(&filter);
        let args = values(args);
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(args), |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    // As deleting a namespace: the newest row stays, emptied, so its row id does not come
    // back (see `write_position`).
    async fn delete_activations_before(&self, start_ms: u64) -> Result<u64> {
        let cutoff = start_ms as i64;
        self.write(move |c| {
            let deleted = c.execute(
                "DELETE FROM activations WHERE start < ?1
                   AND namespace IN (SELECT name FROM namespaces)
                   AND rowid < (SELECT max(rowid) FROM activations)",
                [cutoff],
            )?;
            let emptied = c.execute(
                "UPDATE activations SET namespace = '', name = '', doc = '{}'
                 WHERE start < ?1 AND namespace IN (SELECT name FROM namespaces)",
                [cutoff],
            )?;
            Ok((deleted + emptied) as u64)
        })
        .await
    }

    // The write order is the row id: one writer inserts records in the order it commits them
    // (the record log is applied in its own order), and a new row id is above every row id
    // in the table; deleting a namespace or old records keeps the newest row as an empty
    // one, so a row id does not come back.
    async fn write_position(&self) -> Result<WritePosition> {
        self.settle().await?;
        let seq = self
            .read(|c| {
                Ok(
                    c.prepare_cached("SELECT coalesce(max(rowid), 0) FROM activations")?
                        .query_row([], |r| r.get::<_, i64>(0))?,
                )
            })
            .await?;
        Ok(WritePosition {
            seq,
            id: String::new(),
            snapshot: None,
        })
    }

    async fn write_position_of(&self, namespace: &str, id: &str) -> Result<Option<WritePosition>> {
        self.settle().await?;
        let args = vec![text(id), text(namespace)];
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT rowid FROM activations WHERE id = ?1 AND namespace = ?2")?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
            Ok(match rows.next()? {
                Some(r) => Some(WritePosition {
                    seq: r.get(0)?,
                    id: String::new(),
                    snapshot: None,
                }),
                None => None,
            })
        })
        .await
    }

    async fn activations_written_after(
        &self,
        q: &ActivationQuery,
        from: &WritePosition,
    ) -> Result<(Vec<(String, Box<RawValue>)>, WritePosition)> {
        self.settle().await?;
        // The row id range, not an index of the namespace: a poll reads only what was written
        // since the last (`+` keeps SQLite off the namespace indexes, which would visit every
        // record of the namespace and sort them).
        let mut args = vec![Value::Text(q.namespace.clone())];
        let named = match &q.name {
            Some(name) => {
                args.push(Value::Text(name.clone()));
                " AND +name = ?5"
            }
            None => "",
        };
        let sql = format!(
            "SELECT rowid, id, doc FROM activations WHERE rowid > ?2 AND rowid <= ?3
               AND +namespace = ?1{named} ORDER BY rowid LIMIT ?4"
        );
        let (from, limit) = (from.seq, q.limit);
        self.read(move |c| {
            let newest: i64 = c
                .prepare_cached("SELECT coalesce(max(rowid), 0) FROM activations")?
                .query_row([], |r| r.get(0))?;
            args.insert(1, Value::Integer(from));
            args.insert(2, Value::Integer(newest));
            args.insert(3, int(limit));
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })?
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let next = match rows.last() {
                Some((seq, ..)) if rows.len() as u64 >= limit => *seq,
                _ => newest.max(from),
            };
            let docs = rows
                .into_iter()
                .map(|(_, id, d)| Ok((id, RawValue::from_string(d)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok((
                docs,
                WritePosition {
                    seq: next,
                    id: String::new(),
                    snapshot: None,
                },
            ))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use writer::entry_id;

    #[tokio::test]
    async fn a_failing_write_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("gust.db"), Durability::Process).unwrap();
        let insert = |name: &'static str, fail: bool| {
            store.write(move |c| {
                c.execute(
                    "INSERT INTO namespaces (name, uuid, key, limits) VALUES (?, ?, 'k', '{}')",
                    params![name, name],
                )?;
                if fail {
                    return Err(StoreError::Backend("refused after writing".into()));
                }
                Ok(())
            })
        };
        // Queued together, so they share one group commit.
        let (a, b, c) = tokio::join!(insert("a", false), insert("b", true), insert("c", false));
        assert!(a.is_ok() && b.is_err() && c.is_ok());
        let names: Vec<String> = store
            .read(|c| {
                let mut stmt = c.prepare("SELECT name FROM namespaces ORDER BY name")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .await
            .unwrap();
        assert_eq!(names, ["a", "c"], "the failed write left nothing behind");
    }

    fn record(id: &str, start: u64) -> Entry {
        Entry::Record {
            id: id.into(),
            namespace: "ns".into(),
            name: "a".into(),
            start,
            doc: format!(
                r#"{{"activationId":"{id}","namespace":"ns","name":"a","version":"0.0.1","subject":"ns","start":{start},"end":{start},"duration":0,"statusCode":0,"response":{{"status":"success","statusCode":0,"success":true,"result":{{}}}},"logs":[],"annotations":[],"publish":false}}"#
            ),
        }
    }

    /// The ids of the journal entries, as `pending` lists them.
    async fn pending_ids(store: &SqliteStore) -> Vec<String> {
        let entries = store.pending().await.unwrap();
        entries.into_iter().map(|p| p.activation_id).collect()
    }

    fn pending(id: &str) -> Entry {
        Entry::Pending {
            id: id.into(),
            accepted: 1,
            message: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn entries_logged_before_a_crash_are_inserted_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gust.db");
        drop(SqliteStore::open(&db, Durability::Process).unwrap());
        // What a process killed after appending, before its writer inserted anything, leaves:
        // frames in a log file (the last one torn).
        let files = LogFiles::of(&db);
        let log = RecordLog::new(files.clone(), 3);
        let mut end = 0;
        for e in [pending("p1"), pending("p2"), record("p1", 10)] {
            end = log.append(&e.frame(), |(_, at)| at as usize).unwrap();
        }
        drop(log);
        let torn = record("p2", 11).frame();
        let path = files.path(3);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[end..end + torn.len() / 2].copy_from_slice(&torn[..torn.len() / 2]);
        std::fs::write(&path, bytes).unwrap();

        let store = SqliteStore::open(&db, Durability::Process).unwrap();
        assert!(files.list().unwrap().is_empty(), "the log was emptied");
        assert_eq!(
            store.activation("ns", "p1").await.unwrap().unwrap().start,
            10
        );
        assert!(store.activation("ns", "p2").await.unwrap().is_none());
        let left = pending_ids(&store).await;
        assert_eq!(left, ["p2"], "p2 ran nowhere: it is run again");
        // New appends go to a later file than any seen.
        store
            .put_pending(PendingInvocation {
                activation_id: "p3".into(),
                accepted_at: 2,
                message: b"{}".to_vec(),
            })
            .await
            .unwrap();
        assert!(files.list().unwrap().iter().all(|(seq, _)| *seq > 3));
    }

    #[tokio::test]
    async fn entries_already_inserted_are_not_inserted_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gust.db");
        let files = LogFiles::of(&db);
        {
            let store = SqliteStore::open(&db, Durability::Process).unwrap();
            let encoded = |e: Entry| match e {
                Entry::Record {
                    id,
                    namespace,
                    name,
                    start,
                    doc,
                } => EncodedActivation {
                    activation_id: id,
                    namespace,
                    name,
                    start,
                    json: RawValue::from_string(doc).unwrap(),
                },
                Entry::Pending { .. } => unreachable!(),
            };
            store
                .put_new_activation(&encoded(record("r1", 1)))
                .await
                .unwrap();
            assert!(store.activation("ns", "r1").await.unwrap().is_some());
            // Deleted after it was inserted: the log still holds it.
            store
                .write_statement(|c| {
                    c.execute("DELETE FROM activations WHERE id = 'r1'", [])?;
                    Ok(())
                })
                .await
                .unwrap();
            assert!(!files.list().unwrap().is_empty());
        }
        let store = SqliteStore::open(&db, Durability::Process).unwrap();
        assert!(
            store.activation("ns", "r1").await.unwrap().is_none(),
            "a deleted record does not come back from the log"
        );
    }

    #[tokio::test]
    async fn full_durability_commits_instead_of_logging() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gust.db");
        let store = SqliteStore::open(&db, Durability::Full).unwrap();
        store
            .put_pending(PendingInvocation {
                activation_id: "f1".into(),
                accepted_at: 1,
                message: b"{}".to_vec(),
            })
            .await
            .unwrap();
        assert!(LogFiles::of(&db).list().unwrap().is_empty());
        assert_eq!(store.pending().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_entry_the_log_cannot_take_is_committed_instead() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gust.db");
        let store = SqliteStore::open(&db, Durability::Process).unwrap();
        // The first log file cannot be created: something else has its name.
        let files = LogFiles::of(&db);
        std::fs::create_dir(files.path(1)).unwrap();
        for id in ["c1", "c2"] {
            store
                .put_pending(PendingInvocation {
                    activation_id: id.into(),
                    accepted_at: 1,
                    message: b"{}".to_vec(),
                })
                .await
                .unwrap();
        }
        let ids = pending_ids(&store).await;
        assert_eq!(ids, ["c1", "c2"]);
        // The second went to the next log file.
        assert!(files.path(2).is_file());
    }

    #[tokio::test]
    async fn entries_past_the_backlog_cap_are_committed_not_logged() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gust.db");
        let mut store = SqliteStore::open(&db, Durability::Process).unwrap();
        store.max_unapplied = 1;
        let store = Arc::new(store);
        let pending = |id: &str| PendingInvocation {
            activation_id: id.into(),
            accepted_at: 1,
            message: b"{}".to_vec(),
        };
        // The writer takes nothing more until the test lets it go.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .write_statement(move |_| {
                        held.recv().ok();
                        Ok(())
                    })
                    .await
            }
        });
        tokio::task::yield_now().await;
        // The first fits in the backlog: logged, and answered at once.
        store.put_pending(pending("p1")).await.unwrap();
        // The second is over the cap: committed, so its caller waits for the writer.
        let second = tokio::spawn({
            let store = store.clone();
            async move { store.put_pending(pending("p2")).await }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        let logged: Vec<String> = LogFiles::of(&db)
            .read_all()
            .unwrap()
            .iter()
            .map(|(_, e)| entry_id(e).to_string())
            .collect();
        assert_eq!(logged, ["p1"]);
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(pending_ids(&store).await, ["p1", "p2"]);
    }

    #[tokio::test]
    async fn the_writer_completes_a_checkpoint_so_the_wal_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gust.db");
        // No background checkpoint during the test: only the writer's.
        let store =
            SqliteStore::open_with(&db, Durability::Process, Duration::from_secs(3600)).unwrap();
        // The WAL header's checkpoint sequence number changes each time the WAL starts over.
        let wal_round = || {
            let bytes = std::fs::read(db.with_file_name("gust.db-wal")).unwrap();
            u32::from_be_bytes(bytes[12..16].try_into().unwrap())
        };
        let mut next = 0;
        let mut fill = async || {
            for _ in 0..200 {
                next += 1;
                store
                    .put_pending(PendingInvocation {
                        activation_id: format!("w{next}"),
                        accepted_at: 1,
                        message: vec![b'x'; 2000],
                    })
                    .await
                    .unwrap();
            }
            // A read inserts everything logged before it.
            store.pending().await.unwrap();
        };
        fill().await;
        let round = wal_round();
        fill().await;
        assert_eq!(
            wal_round(),
            round,
            "nothing copied back: the WAL only grows"
        );
        store.checkpoint_due.store(true, Ordering::Relaxed);
        fill().await;
        fill().await;
        assert_ne!(wal_round(), round, "the WAL started over");
        assert_eq!(store.pending().await.unwrap().len(), 800);
    }
}
