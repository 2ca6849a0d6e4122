//! The writer thread of the embedded store: it owns the only write connection and commits
//! whatever has queued up in one transaction (group commit). Each write is a [`Job`] that
//! answers its caller through its own typed channel, after the transaction has committed (or
//! with the reason it did not).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use crate::record_log::{Entry, LogFiles, Position};
use crate::{Result, StoreError};

/// Most operations one group commit takes.
const MAX_BATCH: usize = 2048;
/// Longest a commit that somebody waits for waits for more writes to share it.
const LINGER: Duration = Duration::from_micros(50);
/// Longest logged entries wait to be inserted (nobody waits for them; a read that needs them
/// asks for a commit at once).
const LOG_LINGER: Duration = Duration::from_millis(2);

/// A write queued for the writer thread.
pub(super) enum Write {
    /// Run it and tell the caller how it went.
    Exec(Box<dyn Job>, Scope),
    /// An entry already durable in the record log, ending there: insert it.
    Logged(Position, Entry),
}

/// What undoes a write that fails halfway.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// The write is one SQL statement, which SQLite makes atomic by itself.
    Statement,
    /// The write runs several statements inside a savepoint of its own.
    Savepoint,
}

/// A write somebody waits for: run inside the writer's transaction, answered when that
/// transaction has ended.
pub(super) trait Job: Send {
    /// Runs the write, keeping its outcome for [`Job::answer`]; says what went wrong if it
    /// failed.
    fn run(&mut self, conn: &Connection) -> std::result::Result<(), String>;
    /// Answers the caller: with the write's own outcome once its transaction committed, or
    /// with `failed` when the transaction did not (the write may not have run at all).
    fn answer(self: Box<Self>, failed: Option<&str>);
}

/// A write returning a `T`, and the channel its caller waits on.
pub(super) struct Typed<T, F> {
    write: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Typed<T, F> {
    pub(super) fn new(write: F, reply: oneshot::Sender<Result<T>>) -> Self {
        Typed {
            write: Some(write),
            outcome: None,
            reply,
        }
    }
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> std::result::Result<(), String> {
        let outcome = match self.write.take() {
            Some(write) => write(conn),
            None => Err(StoreError::Backend("a write was run twice".into())),
        };
        let failed = outcome.as_ref().err().map(ToString::to_string);
        self.outcome = Some(outcome);
        failed.map_or(Ok(()), Err)
    }

    fn answer(self: Box<Self>, failed: Option<&str>) {
        let outcome = match (failed, self.outcome) {
            (Some(why), _) => Err(StoreError::Backend(why.to_string())),
            (None, Some(outcome)) => outcome,
            (None, None) => Err(StoreError::Backend("the write did not run".into())),
        };
        let _ = self.reply.send(outcome);
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) files: LogFiles,
    /// Logged entries queued but not yet inserted (reads wait for them).
    pub(super) unapplied: Arc<AtomicUsize>,
    /// The oldest log file that may still hold entries not in SQLite.
    pub(super) live_from: u64,
    /// Logged entries whose transaction failed: tried again first in the next one.
    pub(super) retry: Vec<(Position, Entry)>,
    /// Set by the checkpoint thread when the writer should complete a checkpoint.
    pub(super) checkpoint_due: Arc<AtomicBool>,
}

impl Write {
    /// Whether a caller waits for it.
    fn awaited(&self) -> bool {
        matches!(self, Write::Exec(..))
    }
}

impl Writer {
    /// Takes one write, then every write queued meanwhile (up to `MAX_BATCH`), lingering for
    /// company: `LINGER` when somebody waits for the commit, `LOG_LINGER` when only logged
    /// entries are queued (a waited-for write wakes it through `unpark`); runs them all in
    /// one transaction, commits, and answers each caller (see [`Writer::commit`]).
    pub(super) fn run(mut self, rx: mpsc::Receiver<Write>) {
        let mut batch: Vec<Write> = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = rx.recv() {
            let mut awaited = first.awaited();
            batch.push(first);
            let mut until = Instant::now() + if awaited { LINGER } else { LOG_LINGER };
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(w) => {
                        if !awaited && w.awaited() {
                            awaited = true;
                            until = until.min(Instant::now() + LINGER);
                        }
                        batch.push(w);
                    }
                    Err(mpsc::TryRecvError::Empty) => {
                        let now = Instant::now();
                        if now >= until {
                            break;
                        }
                        std::thread::park_timeout(until - now);
                    }
                    Err(mpsc::TryRecvError::Disconnected) => break,
                }
            }
            self.commit(&mut batch);
            if self.checkpoint_due.swap(false, Ordering::Relaxed)
                && let Err(e) = checkpoint(&self.conn)
            {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    }

    /// Runs a batch in one transaction, each write inside its own savepoint so that a failing
    /// write rolls back only itself; commits, and answers every caller. If SQLite abandons the
    /// whole transaction (disk full, I/O error), every write of the batch fails, none
    /// half-done, and its logged entries are tried again with the next batch.
    fn commit(&mut self, batch: &mut Vec<Write>) {
        let conn = &self.conn;
        let mut logged: Vec<(Position, Entry)> = std::mem::take(&mut self.retry);
        let fail_all = |batch: &mut Vec<Write>, e: &dyn std::fmt::Display| {
            let mut logged = Vec::new();
            for w in batch.drain(..) {
                match w {
                    Write::Exec(job, _) => job.answer(Some(&e.to_string())),
                    Write::Logged(at, entry) => logged.push((at, entry)),
                }
            }
            logged
        };
        if let Err(e) = run_cached(conn, "BEGIN") {
            tracing::error!(error = %e, "cannot begin a transaction");
            logged.extend(fail_all(batch, &e));
            self.retry = logged;
            return;
        }
        for (_, entry) in &logged {
            if let Err(e) = apply(conn, entry) {
                tracing::error!(id = %entry_id(entry), error = %e, "cannot insert a logged entry");
            }
        }
        if conn.is_autocommit() {
            logged.extend(fail_all(batch, &"the transaction was abandoned"));
            self.retry = logged;
            return;
        }
        // Writes that ran, answered once the transaction has committed or failed.
        let mut ran: Vec<Box<dyn Job>> = Vec::with_capacity(batch.len());
        let mut abandoned: Option<String> = None;
        for w in batch.drain(..) {
            let (mut job, scope) = match w {
                Write::Logged(at, entry) => {
                    if abandoned.is_none()
                        && let Err(e) = apply(conn, &entry)
                    {
                        if conn.is_autocommit() {
                            let why = format!("the transaction was abandoned: {e}");
                            fail_all_ran(&mut ran, &why);
                            abandoned = Some(why);
                        } else {
                            // Only this statement was undone; it would fail again.
                            tracing::error!(id = %entry_id(&entry), error = %e, "cannot insert a logged entry");
                        }
                    }
                    logged.push((at, entry));
                    continue;
                }
                Write::Exec(job, scope) => (job, scope),
            };
            if let Some(e) = &abandoned {
                job.answer(Some(e));
                continue;
            }
            let savepoint = scope == Scope::Savepoint;
            let out = if savepoint {
                run_cached(conn, "SAVEPOINT op").map_err(|e| e.to_string())
            } else {
                Ok(())
            }
            .and_then(|()| job.run(conn));
            let settled = match &out {
                _ if conn.is_autocommit() => Ok(()),
                _ if !savepoint => Ok(()),
                Ok(_) => run_cached(conn, "RELEASE op"),
                Err(_) => conn.execute_batch("ROLLBACK TO op; RELEASE op"),
            };
            if conn.is_autocommit() || settled.is_err() {
                // SQLite rolled the whole transaction back: nothing of this batch is stored.
                let cause = match (settled, out) {
                    (Err(e), _) => e.to_string(),
                    (Ok(()), Err(e)) => e,
                    (Ok(()), Ok(())) => "unknown cause".to_string(),
                };
                let why = format!("the transaction was abandoned: {cause}");
                job.answer(Some(&why));
                fail_all_ran(&mut ran, &why);
                abandoned = Some(why);
                continue;
            }
            ran.push(job);
        }
        let last = logged.iter().map(|(at, _)| *at).max();
        if abandoned.is_none()
            && let Some(at) = last
            && let Err(e) = mark_applied(conn, at)
        {
            let why = format!("cannot record the record log position: {e}");
            fail_all_ran(&mut ran, &why);
            abandoned = Some(why);
        }
        if let Some(why) = abandoned {
            tracing::error!(error = %why, "group commit abandoned");
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            self.retry = logged;
            return;
        }
        match run_cached(conn, "COMMIT") {
            Ok(()) => {
                for job in ran {
                    job.answer(None);
                }
                self.unapplied.fetch_sub(logged.len(), Ordering::AcqRel);
                if let Some((seq, _)) = last
                    && seq > self.live_from
                {
                    // Everything in the files before `seq` is in SQLite now.
                    self.files.delete_before(seq);
                    self.live_from = seq;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                fail_all_ran(&mut ran, &format!("commit failed: {e}"));
                self.retry = logged;
            }
        }
    }
}

/// Answers every write in `ran` with `why` (their transaction was not committed).
fn fail_all_ran(ran: &mut Vec<Box<dyn Job>>, why: &str) {
    for job in ran.drain(..) {
        job.answer(Some(why));
    }
}

pub(super) fn entry_id(entry: &Entry) -> &str {
    match entry {
        Entry::Record { id, .. } | Entry::Pending { id, .. } => id,
    }
}

/// Runs one statement without parameters, prepared once per connection.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Inserts a logged entry.
pub(super) fn apply(conn: &Connection, entry: &Entry) -> rusqlite::Result<()> {
    match entry {
        // The trigger `activation_clears_pending` deletes the journal entry.
        Entry::Record {
            id,
            namespace,
            name,
            start,
            doc,
        } => conn
            .prepare_cached(
                "INSERT OR IGNORE INTO activations (id, namespace, name, start, doc)
                 VALUES (?, ?, ?, ?, ?)",
            )?
            .execute(params![id, namespace, name, *start as i64, doc]),
        Entry::Pending {
            id,
            accepted,
            message,
        } => conn
            .prepare_cached(
                "INSERT OR IGNORE INTO pending (id, accepted, message) VALUES (?, ?, ?)",
            )?
            .execute(params![id, *accepted as i64, message]),
    }
    .map(|_| ())
}

/// Records that the log is in SQLite up to `at` (inside the transaction that inserted it).
pub(super) fn mark_applied(conn: &Connection, at: Position) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE record_log SET segment = ?, offset = ? WHERE id = 0")?
        .execute(params![at.0 as i64, at.1 as i64])
        .map(|_| ())
}

/// Copies WAL frames back into the database file, as many as no reader still needs, without
/// waiting for anybody (the writer's copy is complete, so its next transaction starts the WAL
/// over).
pub(super) fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}
