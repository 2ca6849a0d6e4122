//! One running instance and the action-loop protocol it speaks: a JSON line in on stdin, one
//! JSON line out on fd 3, stdout and stderr collected as log lines until the sentinel line
//! the launcher writes after each answer.
//!
//! An instance runs one activation at a time, or (Node.js with `limits.concurrency` above 1)
//! several: then each line in carries an `id`, each answer is `<id> <json>`, and each log line
//! (sentinels included) starts with `\x1e<id> `. Three reader tasks (fd 3, stdout, stderr)
//! route what arrives to the activation it belongs to; a log line without an id goes to the
//! oldest activation in flight.
//!
//! **Protocol (Gust's own, versioned with the binary that embeds the launchers in
//! `launcher/`):** the first line in initializes: `{"concurrency", "code"}` (source text) or
//! `{"concurrency", "dir": "/action"}` (unpacked code), plus `"main"` (the entry point) and
//! `"env"`; it is answered on fd 3 with `{"ok": true}` or `{"error": ...}`. Every later line is
//! `{"value": <parameters>, "env": {...}}` (`env`: the `__OW_*` variables and `init`
//! parameters, and an `"id"` under concurrency), answered with one JSON line on fd 3; then the
//! launcher writes `XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX` on stdout and on stderr. Log lines
//! are cut at 64 KB. A native executable speaks the loop itself: no init line, no sentinels
//! needed (its logs are what it wrote before its answer: the exchange ends once both output
//! pipes are empty and the readers have handled what they took, within 10 ms at most; a
//! Lambda `provided` runtime's logs are read the same way).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gust_model::logs::LogLines;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::Notify;

use crate::cgroup::Cgroup;
use crate::kinds::Family;
use crate::runtime_api::{Event, RuntimeApi};
use crate::sandbox::Started;
use crate::zygote::ForkedExit;
use crate::{UidLease, lock};

pub const SENTINEL: &[u8] = b"XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";
/// Starts a log line that names its activation (concurrent instances).
const TAG: u8 = 0x1e;
/// How long at most to wait for the logs of an executable that writes no sentinel lines
/// (usually they are in as soon as its output pipes are empty).
const NATIVE_LOG_GRACE: Duration = Duration::from_millis(10);
/// A log line is cut here (it is kept, cut, unless the log limit is reached).
const MAX_LINE: usize = 64 * 1024;
/// Room for `<id> ` in front of an answer.
const ID_ROOM: usize = 24;

/// One activation in flight.
#[derive(Debug)]
struct Act {
    lines: LogLines,
    /// Sentinel seen (or stream closed): stdout, stderr.
    ended: [bool; 2],
    /// The answer: the bytes kept (at most the result limit) and its whole length.
    answer: Option<(Vec<u8>, u64)>,
    result_limit: u64,
    changed: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Shared {
    next_id: u64,
    /// Activations in flight by id, oldest first.
    acts: BTreeMap<u64, Act>,
    /// stdout, stderr closed.
    closed: [bool; 2],
    /// The answer pipe closed: the process is gone.
    result_closed: bool,
    /// Lines carry activation ids (the instance runs several at once).
    tagged: bool,
    /// Chunks of output the log readers have handled so far.
    log_chunks: u64,
}

impl Shared {
    fn wake_all(&self) {
        for a in self.acts.values() {
            a.changed.notify_waiters();
        }
    }
}

/// How one exchange ended.
#[derive(Debug)]
pub enum Reply {
    /// The answer line: the bytes kept (at most the cap) and its whole length.
    Line(Vec<u8>, u64),
    /// The process died (or closed its pipes) first.
    Exited,
    Timeout,
}

/// One exchange: its reply, its logs and what is needed to judge the instance afterwards.
#[derive(Debug)]
pub struct Outcome {
    pub reply: Reply,
    pub logs: Vec<String>,
    pub logs_truncated: bool,
    /// Both sentinel lines came (a native executable writes none: always true).
    pub logs_complete: bool,
    /// The group's out-of-memory counters when the exchange began.
    pub memory_mark: MemoryMark,
}

/// Out-of-memory kills and limit hits of an instance's group at one moment.
pub type MemoryMark = (u64, u64);

pub struct Instance {
    pub id: u64,
    pub family: Family,
    pub pid: i32,
    /// Activations it runs at once (ids on the lines when above 1).
    pub concurrency: usize,
    pidfd: AsyncFd<OwnedFd>,
    stdin: tokio::sync::Mutex<pipe::Sender>,
    shared: Arc<Mutex<Shared>>,
    pub cgroup: Option<Cgroup>,
    /// Bytes of memory it is allowed: its hard limit.
    pub memory: u64,
    /// Bytes its group used when last measured (0: not measured yet, or no cgroup).
    used: AtomicU64,
    dead: AtomicBool,
    exit: OnceLock<String>,
    /// Why the pool stopped it, for the other activations that were running on it.
    stopped: OnceLock<String>,
    /// Its host uids, given back once its process is reaped.
    uids: Option<UidLease>,
    /// A Lambda function's instance: its Runtime API, and the task serving it.
    api: Option<(Arc<RuntimeApi>, tokio::task::AbortHandle)>,
    /// Second read ends of stdout and stderr, to ask how much is waiting in them.
    log_probes: Vec<OwnedFd>,
    /// Forked by a zygote, which is its parent: its wait status comes from there.
    forked: Option<ForkedExit>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("pid", &self.pid)
            .finish()
    }
}

/// Who made an instance's process, and so who reaps it.
pub enum Parent {
    /// The sandbox thread: reaped here. `peer_uid`: see [`RuntimeApi::serve`].
    Sandbox { peer_uid: Option<u32> },
    /// A zygote, which reaps it and tells how it ended (never signalled by pid here).
    Zygote(ForkedExit),
}

impl Instance {
    /// Takes over a started sandbox (running one activation at a time until `concurrency`
    /// is set). A sandbox with a Runtime API listener gets it served. On failure the process
    /// is killed and its group removed.
    pub fn new(
        id: u64,
        family: Family,
        started: Started,
        cgroup: Option<Cgroup>,
        memory: u64,
        uids: UidLease,
        parent: Parent,
    ) -> std::io::Result<Instance> {
        let (peer_uid, forked) = match parent {
            Parent::Sandbox { peer_uid } => (peer_uid, None),
            Parent::Zygote(exit) => (None, Some(exit)),
        };
        let ours = forked.is_none();
        let (pid, pidfd) = (started.pid, started.pidfd);
        let listener = match started.runtime_api.map(tokio::net::TcpListener::from_std) {
            Some(Ok(l)) => Some(l),
            Some(Err(e)) => {
                discard(pid, !ours, cgroup, Some(uids));
                return Err(e);
            }
            None => None,
        };
        let pipes = (|| {
            Ok::<_, std::io::Error>((
                pipe::Sender::from_owned_fd(started.stdin)?,
                pipe::Receiver::from_owned_fd(started.result)?,
                pipe::Receiver::from_owned_fd(started.stdout)?,
                pipe::Receiver::from_owned_fd(started.stderr)?,
            ))
        })();
        let (stdin, result, stdout, stderr) = match pipes {
            Ok(p) => p,
            Err(e) => {
                discard(pid, !ours, cgroup, Some(uids));
                return Err(e);
            }
        };
        // SAFETY: an owned pidfd: it stays open, the same descriptor, as long as the
        // AsyncFd that owns it.
        let pidfd = match unsafe {
            AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
        } {
            Ok(fd) => fd,
            Err(e) => {
                discard(pid, !ours, cgroup, Some(uids));
                return Err(e.into());
            }
        };
        let shared = Arc::new(Mutex::new(Shared::default()));
        let api = listener.map(|listener| {
            let api = RuntimeApi::new(deliver_to(shared.clone()));
            let task = tokio::spawn(api.clone().serve(listener, peer_uid));
            (api, task.abort_handle())
        });
        // A Lambda function answers through its Runtime API only: what it writes on fd 3 is
        // read and dropped (the pipe still tells when the process is gone).
        tokio::spawn(read_answers(result, shared.clone(), api.is_none()));
        let log_probes: Vec<OwnedFd> = [&stdout, &stderr]
            .iter()
            .filter_map(|rx| rx.as_fd().try_clone_to_owned().ok())
            .collect();
        for (i, rx) in [stdout, stderr].into_iter().enumerate() {
            tokio::spawn(read_logs(rx, i, shared.clone()));
        }
        Ok(Instance {
            id,
            family,
            pid,
            concurrency: 1,
            pidfd,
            stdin: tokio::sync::Mutex::new(stdin),
            shared,
            cgroup,
            memory,
            used: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            exit: OnceLock::new(),
            stopped: OnceLock::new(),
            uids: Some(uids),
            api,
            log_probes,
            forked,
        })
    }

    /// Sends the line `make_line` builds (given the activation's id when the instance runs
    /// several at once) and waits for its answer on fd 3 until `deadline`; then waits (within
    /// the deadline) for its log sentinels. Its logs are capped at `log_limit`.
    pub async fn exchange(
        &self,
        make_line: impl FnOnce(Option<u64>) -> Vec<u8>,
        deadline: tokio::time::Instant,
        log_limit: u64,
        result_limit: u64,
    ) -> Outcome {
        let send = |id| async move {
            let line = make_line((self.concurrency > 1).then_some(id));
            self.stdin
                .lock()
                .await
                .write_all(&line)
                .await
                .map_err(|_| ())
        };
        self.exchange_with(send, deadline, log_limit, result_limit)
            .await
    }

    /// A Lambda function's instance: gives its runtime `event` (`None`: waits for its
    /// initialization, answered `{"ok": true}` or `{"error": ...}`) and waits for the answer
    /// its Runtime API receives, as [`Instance::exchange`] does for a line.
    pub async fn exchange_event(
        &self,
        event: Option<Event>,
        deadline: tokio::time::Instant,
        log_limit: u64,
        result_limit: u64,
    ) -> Outcome {
        let send = |id| async move {
            let (api, _) = self.api.as_ref().ok_or(())?;
            api.offer(id, event);
            Ok(())
        };
        self.exchange_with(send, deadline, log_limit, result_limit)
            .await
    }

    async fn exchange_with<F, Fut>(
        &self,
        send: F,
        deadline: tokio::time::Instant,
        log_limit: u64,
        result_limit: u64,
    ) -> Outcome
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = Result<(), ()>>,
    {
        let changed = Arc::new(Notify::new());
        let id = {
            let mut sh = lock(&self.shared);
            let id = sh.next_id;
            sh.next_id += 1;
            let ended = sh.closed;
            sh.acts.insert(
                id,
                Act {
                    lines: LogLines::new(log_limit),
                    ended,
                    answer: None,
                    result_limit,
                    changed: changed.clone(),
                },
            );
            id
        };
        let memory_mark = self.cgroup.as_ref().map_or((0, 0), Cgroup::memory_failures);
        let talk = async {
            send(id).await?;
            loop {
                let notified = changed.notified();
                {
                    let mut sh = lock(&self.shared);
                    if let Some(a) = sh.acts.get_mut(&id).and_then(|a| a.answer.take()) {
                        return Ok(a);
                    }
                    if sh.result_closed {
                        return Err(());
                    }
                }
                notified.await;
            }
        };
        let reply = match tokio::time::timeout_at(deadline, talk).await {
            Ok(Ok((kept, len))) => Reply::Line(kept, len),
            Ok(Err(())) => Reply::Exited,
            Err(_) => Reply::Timeout,
        };
        let mut logs_complete = false;
        if let Reply::Line(..) = reply {
            if self.family == Family::Native {
                let grace = (tokio::time::Instant::now() + NATIVE_LOG_GRACE).min(deadline);
                let _ = tokio::time::timeout_at(grace, self.logs_drained()).await;
            }
            let wait = if self.family == Family::Native {
                tokio::time::Instant::now()
            } else {
                deadline
            };
            let ended = async {
                loop {
                    let notified = changed.notified();
                    if lock(&self.shared)
                        .acts
                        .get(&id)
                        .is_none_or(|a| a.ended.iter().all(|e| *e))
                    {
                        return;
                    }
                    notified.await;
                }
            };
            logs_complete =
                tokio::time::timeout_at(wait, ended).await.is_ok() || self.family == Family::Native;
        }
        let act = lock(&self.shared).acts.remove(&id);
        let (logs, logs_truncated) = act.map(|mut a| a.lines.finish()).unwrap_or_default();
        Outcome {
            reply,
            logs,
            logs_truncated,
            logs_complete,
            memory_mark,
        }
    }

    /// Returns once what the process wrote before now has reached the log readers and been
    /// handled: both output pipes empty, and no chunk handled since (a reader that took bytes
    /// handles them without waiting on anything).
    async fn logs_drained(&self) {
        loop {
            let before = lock(&self.shared).log_chunks;
            if self.log_probes.len() == 2 && self.log_probes.iter().all(|fd| waiting_bytes(fd) == 0)
            {
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                if self.log_probes.iter().all(|fd| waiting_bytes(fd) == 0)
                    && lock(&self.shared).log_chunks == before
                {
                    return;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    /// Whether its process is still there (its pidfd is not readable yet).
    pub fn alive(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on a descriptor we own, no waiting.
        unsafe { libc::poll(&mut p, 1, 0) == 0 }
    }

    /// Whether a zygote forked it.
    pub fn is_forked(&self) -> bool {
        self.forked.is_some()
    }

    /// From now on it runs up to `n` activations at once, their lines tagged with ids.
    pub fn set_concurrency(&mut self, n: usize) {
        self.concurrency = n.max(1);
        lock(&self.shared).tagged = self.concurrency > 1;
    }

    /// Waits until the process has exited; returns how (every caller gets the same answer),
    /// or why the pool stopped it.
    pub async fn exited(&self) -> String {
        if let Ok(mut guard) = self.pidfd.readable().await {
            guard.retain_ready();
        }
        let status = match &self.forked {
            Some(f) if self.exit.get().is_none() => Some(f.status().await),
            _ => None,
        };
        let how = self.exit.get_or_init(|| match status {
            Some(Some(status)) => {
                self.dead.store(true, Ordering::Release);
                describe(status)
            }
            Some(None) => "the process ended".into(),
            None => self.reap(),
        });
        match self.stopped.get() {
            Some(why) => format!("the instance was stopped: {why}"),
            None => how.clone(),
        }
    }

    /// Kills it for `why`, which the other activations running on it are told.
    pub fn stop(&self, why: &str) {
        let _ = self.stopped.set(why.to_string());
        self.kill();
    }

    fn reap(&self) -> String {
        let mut status = 0;
        // SAFETY: waitpid on our own child, once (guarded by `exit`).
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r != self.pid {
            return "the process ended".into();
        }
        self.dead.store(true, Ordering::Release);
        describe(status)
    }

    /// Whether the memory cgroup killed something, or its limit was hit, since `mark` (an
    /// exchange's start: earlier activations of a warm instance do not count).
    pub fn out_of_memory(&self, mark: MemoryMark) -> bool {
        self.cgroup.as_ref().is_some_and(|c| {
            let (kills, hits) = c.memory_failures();
            kills > mark.0 || hits > mark.1
        })
    }

    /// What it used when last measured ([`Instance::measure`]); `None` before the first
    /// measure or without a cgroup.
    pub fn used(&self) -> Option<u64> {
        match self.used.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// Reads what its group uses now (one file read) and keeps it; `None` without a cgroup.
    pub fn measure(&self) -> Option<u64> {
        let n = self.cgroup.as_ref()?.memory_usage()?.max(1);
        self.used.store(n, Ordering::Relaxed);
        Some(n)
    }

    /// Freezes or thaws every process of the instance; whether that worked.
    pub fn freeze(&self, frozen: bool) -> bool {
        self.cgroup
            .as_ref()
            .is_some_and(|c| c.freeze(frozen).is_ok())
    }

    /// Kills every process of the instance.
    pub fn kill(&self) {
        if self.dead.load(Ordering::Acquire) {
            return;
        }
        if let Some(c) = &self.cgroup {
            c.kill_all();
        }
        // Through its pidfd: once another activation has reaped it, its pid may belong to
        // another process. As PID 1 of its namespace, its death ends every process in it.
        kill_by_pidfd(&self.pidfd);
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.api {
            task.abort();
        }
        self.kill();
        // A forked one is its zygote's to reap (its pid is not ours to signal).
        let reaped = *self.dead.get_mut() || self.forked.is_some();
        discard(self.pid, reaped, self.cgroup.take(), self.uids.take());
    }
}

/// Sends SIGKILL to the process `pidfd` refers to (never to a pid that may have been reused).
pub(crate) fn kill_by_pidfd(pidfd: &impl AsRawFd) {
    // SAFETY: pidfd_send_signal on a descriptor the caller owns.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
}

/// How a process with wait status `status` ended.
fn describe(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        format!("the process was killed by signal {sig}")
    } else {
        format!(
            "the process exited with status {}",
            libc::WEXITSTATUS(status)
        )
    }
}

/// Kills, reaps (unless `reaped`) and removes the group of an instance's process, away from
/// the async workers; then gives its uids back.
fn discard(pid: i32, reaped: bool, cgroup: Option<Cgroup>, uids: Option<UidLease>) {
    if !reaped {
        if let Some(c) = &cgroup {
            c.kill_all();
        }
        // SAFETY: kill(2) of our own, not yet reaped child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let cleanup = move || {
        if !reaped {
            // SAFETY: our own child, killed above; reaped once.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
        if let Some(c) = cgroup {
            c.remove();
        }
        drop(uids);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn_blocking(cleanup);
        }
        Err(_) => cleanup(),
    }
}

/// Bytes waiting to be read in the pipe `fd` (0 when it cannot be asked).
fn waiting_bytes(fd: &OwnedFd) -> libc::c_int {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD on an open descriptor, into a c_int.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &raw mut n) } != 0 {
        return 0;
    }
    n
}

/// Hands an answer that came through a Runtime API to its activation, kept up to its result
/// limit, as [`read_answers`] does for fd 3.
fn deliver_to(shared: Arc<Mutex<Shared>>) -> crate::runtime_api::Deliver {
    Box::new(move |id, mut body| {
        let mut sh = lock(&shared);
        if let Some(act) = sh.acts.get_mut(&id) {
            let len = body.len() as u64;
            body.truncate(act.result_limit as usize);
            act.answer = Some((body, len));
            act.changed.notify_waiters();
        }
    })
}

/// `<digits> ` at the start of `line`: the id and the length of the prefix.
fn id_prefix(line: &[u8]) -> Option<(u64, usize)> {
    let space = line.iter().take(ID_ROOM).position(|b| *b == b' ')?;
    let id = std::str::from_utf8(&line[..space]).ok()?.parse().ok()?;
    Some((id, space + 1))
}

/// Reads answer lines from fd 3 and hands each to its activation: by its `<id> ` prefix, or
/// (no prefix) to the oldest in flight. An answer is kept up to its activation's result
/// limit, the rest counted and dropped. Without `deliver` every line is dropped.
async fn read_answers(mut rx: pipe::Receiver, shared: Arc<Mutex<Shared>>, deliver: bool) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut kept: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !deliver {
            continue;
        }
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let end = chunk.iter().position(|b| *b == b'\n');
            let piece = &chunk[..end.unwrap_or(chunk.len())];
            chunk = &chunk[end.map_or(chunk.len(), |i| i + 1)..];
            total += piece.len() as u64;
            // Keep what the largest result limit in flight allows, plus room for the id.
            let cap = {
                let sh = lock(&shared);
                sh.acts.values().map(|a| a.result_limit).max().unwrap_or(0) as usize + ID_ROOM
            };
            let room = cap.saturating_sub(kept.len());
            kept.extend_from_slice(&piece[..room.min(piece.len())]);
            if end.is_none() {
                break;
            }
            let mut sh = lock(&shared);
            // Tagged: the activation it names, if still in flight (a timed-out one's late
            // answer is dropped). Untagged: the one activation in flight.
            let (id, skip) = if sh.tagged {
                match id_prefix(&kept) {
                    Some((id, skip)) => (Some(id), skip),
                    None => (None, 0),
                }
            } else {
                (sh.acts.keys().next().copied(), 0)
            };
            if let Some(act) = id.and_then(|id| sh.acts.get_mut(&id)) {
                let mut body = kept.split_off(skip);
                body.truncate(act.result_limit as usize);
                act.answer = Some((body, total - skip as u64));
                act.changed.notify_waiters();
            }
            kept.clear();
            total = 0;
        }
    }
    let mut sh = lock(&shared);
    sh.result_closed = true;
    sh.wake_all();
}

/// Collects one stream's lines into the logs of the activations they belong to until the
/// pipe closes.
async fn read_logs(mut rx: pipe::Receiver, stream: usize, shared: Arc<Mutex<Shared>>) {
    let name = if stream == 0 { "stdout" } else { "stderr" };
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    // The activation a line cut at MAX_LINE belongs to, for the rest of that line.
    let mut continuing: Option<Option<u64>> = None;
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        let mut sh = lock(&shared);
        sh.log_chunks += 1;
        while let Some(i) = chunk.iter().position(|b| *b == b'\n') {
            partial.extend_from_slice(&chunk[..i]);
            chunk = &chunk[i + 1..];
            log_line(&mut sh, stream, name, &partial, continuing.take());
            partial.clear();
        }
        let room = MAX_LINE.saturating_sub(partial.len());
        partial.extend_from_slice(&chunk[..room.min(chunk.len())]);
        if partial.len() >= MAX_LINE {
            let target = log_line(&mut sh, stream, name, &partial, continuing);
            continuing = Some(target);
            partial.clear();
        }
    }
    let mut sh = lock(&shared);
    if !partial.is_empty() {
        log_line(&mut sh, stream, name, &partial, continuing);
    }
    sh.closed[stream] = true;
    for a in sh.acts.values_mut() {
        a.ended[stream] = true;
    }
    sh.wake_all();
}

/// Adds one log line (or a sentinel) to its activation: `target` if known (the rest of a cut
/// line), else the one its `\x1e<id> ` prefix names, else the oldest in flight. Returns the
/// activation it went to.
fn log_line(
    sh: &mut Shared,
    stream: usize,
    name: &str,
    line: &[u8],
    target: Option<Option<u64>>,
) -> Option<u64> {
    let (target, body) = match target {
        Some(t) => (t, line),
        None => match line.split_first() {
            Some((&TAG, rest)) if sh.tagged => match id_prefix(rest) {
                Some((id, skip)) => (Some(id), &rest[skip..]),
                None => (sh.acts.keys().next().copied(), line),
            },
            _ => (sh.acts.keys().next().copied(), line),
        },
    };
    if let Some(act) = target.and_then(|id| sh.acts.get_mut(&id)) {
        if body == SENTINEL {
            act.ended[stream] = true;
        } else {
            act.lines.push(name, body);
        }
        act.changed.notify_waiters();
    }
    target
}
