//! One running instance and the action-loop protocol it speaks: a JSON line in on stdin, one
//! JSON line out on fd 3, stdout and stderr collected as log lines until the sentinel line
//! the launcher writes after each answer.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gust_model::logs::LogLines;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::Notify;

use crate::cgroup::Cgroup;
use crate::kinds::Family;
use crate::sandbox::Started;

pub const SENTINEL: &[u8] = b"XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";
/// How long to wait for the logs of an executable that writes no sentinel lines.
const NATIVE_LOG_GRACE: Duration = Duration::from_millis(10);
/// A log line is cut here (it is kept, cut, unless the log limit is reached).
const MAX_LINE: usize = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct Logs {
    lines: LogLines,
    /// Sentinel seen (or stream closed): stdout, stderr.
    ended: [bool; 2],
    closed: [bool; 2],
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

pub struct Instance {
    pub id: u64,
    pub family: Family,
    pub pid: i32,
    pidfd: AsyncFd<OwnedFd>,
    stdin: pipe::Sender,
    result: pipe::Receiver,
    pending: Vec<u8>,
    /// Read buffer for the answer pipe, kept between activations.
    buf: Vec<u8>,
    logs: Arc<Mutex<Logs>>,
    logs_changed: Arc<Notify>,
    pub cgroup: Option<Cgroup>,
    /// Bytes of memory it is allowed (and counted against the pool's budget).
    pub memory: u64,
    pub frozen: bool,
    pub last_used: Instant,
    /// Whether the last exchange's logs ended with both sentinel lines.
    pub logs_complete: bool,
    /// The group's out-of-memory counters when the last exchange began.
    memory_mark: (u64, u64),
    dead: bool,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("pid", &self.pid)
            .finish()
    }
}

impl Instance {
    pub fn new(
        id: u64,
        family: Family,
        started: Started,
        cgroup: Option<Cgroup>,
        memory: u64,
    ) -> std::io::Result<Instance> {
        let (pid, pidfd) = (started.pid, started.pidfd);
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
                discard(pid, false, cgroup);
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
                discard(pid, false, cgroup);
                return Err(e.into());
            }
        };
        let logs = Arc::new(Mutex::new(Logs {
            lines: LogLines::new(0),
            ended: [false; 2],
            closed: [false; 2],
        }));
        let changed = Arc::new(Notify::new());
        for (i, rx) in [stdout, stderr].into_iter().enumerate() {
            tokio::spawn(read_logs(rx, i, logs.clone(), changed.clone()));
        }
        Ok(Instance {
            id,
            family,
            pid,
            pidfd,
            stdin,
            result,
            pending: Vec::new(),
            buf: vec![0; 16 * 1024],
            logs,
            logs_changed: changed,
            cgroup,
            memory,
            frozen: false,
            last_used: Instant::now(),
            logs_complete: true,
            memory_mark: (0, 0),
            dead: false,
        })
    }

    /// Sends one line and waits for the answer on fd 3 until `deadline`; then waits (within
    /// the deadline) for the log sentinels. Logs restart empty, capped at `log_limit`.
    pub async fn exchange(
        &mut self,
        line: &[u8],
        deadline: tokio::time::Instant,
        log_limit: u64,
        result_limit: u64,
    ) -> Reply {
        {
            let mut logs = lock(&self.logs);
            logs.lines = LogLines::new(log_limit);
            logs.ended = logs.closed;
        }
        self.logs_complete = false;
        if let Some(c) = &self.cgroup {
            self.memory_mark = c.memory_failures();
        }
        let talk = async {
            if let Err(e) = self.stdin.write_all(line).await {
                return Err(format!("cannot write to the process: {e}"));
            }
            read_line(
                &mut self.result,
                &mut self.pending,
                &mut self.buf,
                result_limit,
            )
            .await
        };
        let reply = match tokio::time::timeout_at(deadline, talk).await {
            Ok(Ok((kept, len))) => Reply::Line(kept, len),
            Ok(Err(_)) => Reply::Exited,
            Err(_) => Reply::Timeout,
        };
        if let Reply::Line(..) = reply {
            let wait = if self.family == Family::Native {
                (tokio::time::Instant::now() + NATIVE_LOG_GRACE).min(deadline)
            } else {
                deadline
            };
            self.logs_complete = tokio::time::timeout_at(wait, self.logs_ended())
                .await
                .is_ok();
        }
        reply
    }

    async fn logs_ended(&self) {
        loop {
            let changed = self.logs_changed.notified();
            if lock(&self.logs).ended.iter().all(|e| *e) {
                return;
            }
            changed.await;
        }
    }

    /// The activation's log lines so far, and whether they were truncated.
    pub fn take_logs(&self) -> (Vec<String>, bool) {
        lock(&self.logs).lines.finish()
    }

    /// Waits until the process has exited; returns how (and reaps it).
    pub async fn exited(&mut self) -> String {
        if let Ok(mut guard) = self.pidfd.readable().await {
            guard.retain_ready();
        }
        self.reap()
    }

    fn reap(&mut self) -> String {
        let mut status = 0;
        // SAFETY: waitpid on our own child, once.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r != self.pid {
            return "the process ended".into();
        }
        self.dead = true;
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

    /// Whether the memory cgroup killed something, or its limit was hit, during the last
    /// exchange (earlier activations of a warm instance do not count).
    pub fn out_of_memory(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|c| {
            let (kills, hits) = c.memory_failures();
            kills > self.memory_mark.0 || hits > self.memory_mark.1
        })
    }

    pub fn freeze(&mut self, frozen: bool) {
        if let Some(c) = &self.cgroup
            && c.freeze(frozen).is_ok()
        {
            self.frozen = frozen;
        }
    }

    /// Kills every process of the instance.
    pub fn kill(&mut self) {
        if self.dead {
            return;
        }
        if let Some(c) = &self.cgroup {
            c.kill_all();
        }
        // SAFETY: kill(2) of our own child: as PID 1 of its namespace, its death ends every
        // process in it.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        discard(self.pid, self.dead, self.cgroup.take());
    }
}

/// Kills, reaps (unless `reaped`) and removes the group of an instance's process, away from
/// the async workers.
fn discard(pid: i32, reaped: bool, cgroup: Option<Cgroup>) {
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
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn_blocking(cleanup);
        }
        Err(_) => cleanup(),
    }
}

/// Reads one line of at most `cap` kept bytes (the rest counted and dropped).
async fn read_line(
    rx: &mut pipe::Receiver,
    pending: &mut Vec<u8>,
    buf: &mut [u8],
    cap: u64,
) -> Result<(Vec<u8>, u64), String> {
    let mut kept: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    loop {
        if let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let rest = pending.split_off(i + 1);
            let line = std::mem::replace(pending, rest);
            let body = &line[..i];
            total += body.len() as u64;
            let room = (cap as usize).saturating_sub(kept.len());
            kept.extend_from_slice(&body[..room.min(body.len())]);
            return Ok((kept, total));
        }
        total += pending.len() as u64;
        let room = (cap as usize).saturating_sub(kept.len());
        kept.extend_from_slice(&pending[..room.min(pending.len())]);
        pending.clear();
        match rx.read(buf).await {
            Ok(0) => return Err("the process closed its result pipe".into()),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("cannot read the result pipe: {e}")),
        }
    }
}

/// Collects one stream's lines into the current activation's logs until the pipe closes.
async fn read_logs(
    mut rx: pipe::Receiver,
    stream: usize,
    logs: Arc<Mutex<Logs>>,
    changed: Arc<Notify>,
) {
    let name = if stream == 0 { "stdout" } else { "stderr" };
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        {
            let mut l = lock(&logs);
            while let Some(i) = chunk.iter().position(|b| *b == b'\n') {
                partial.extend_from_slice(&chunk[..i]);
                chunk = &chunk[i + 1..];
                if partial == SENTINEL {
                    l.ended[stream] = true;
                } else {
                    l.lines.push(name, &partial);
                }
                partial.clear();
            }
            let room = MAX_LINE.saturating_sub(partial.len());
            partial.extend_from_slice(&chunk[..room.min(chunk.len())]);
            if partial.len() >= MAX_LINE {
                l.lines.push(name, &partial);
                partial.clear();
            }
        }
        changed.notify_waiters();
    }
    let mut l = lock(&logs);
    if !partial.is_empty() {
        l.lines.push(name, &partial);
    }
    l.ended[stream] = true;
    l.closed[stream] = true;
    drop(l);
    changed.notify_waiters();
}
