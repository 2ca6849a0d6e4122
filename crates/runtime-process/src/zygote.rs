//! Python zygotes (decision 0029): one sandboxed Python process per kind with the interpreter
//! and the standard library loaded, which forks each new instance of a source action instead
//! of starting an interpreter.
//!
//! The zygote is started like an instance (its own namespaces, cgroup, read-only root,
//! rlimits, `no_new_privs`) but stays root of its user namespace, which maps the instances'
//! host uids at [`INSIDE_FIRST`] and up, under seccomp filters that also let it unshare, setns
//! and mount. It never runs an action's code. For each instance the pool sends it, over a
//! `SOCK_SEQPACKET` socket, the instance's uid and pipes and the files of its cgroups; the
//! zygote moves its own thread into those groups (v1's `tasks`: no global lock), unshares a
//! PID namespace, forks and moves back. The child makes new mount, network, IPC, UTS and
//! cgroup namespaces, mounts its own `/proc` and `/tmp`, takes its host uid, enters a user
//! namespace of its own that shows it as uid 1000, drops every capability, sets
//! `no_new_privs` and the instances' seccomp filters, and runs the launcher's loop
//! (`launcher/zygote.py`). The zygote sends back a pidfd of the child, and its wait status
//! when it ends (it is the child's parent).

use std::collections::HashMap;
use std::fs::File;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, oneshot};

use crate::cgroup::Cgroup;
use crate::sandbox::Started;
use crate::{UidLease, lock};

/// Where the instances' host uids start inside a zygote's user namespace.
pub const INSIDE_FIRST: u32 = 10_000;
/// How long a fork may take before the zygote is retired (it lives on, forking no more, as
/// long as instances it forked do: they die with it, being in its PID namespace).
const FORK_TIMEOUT: Duration = Duration::from_secs(5);
/// A zygote is retired after this many forks or this long: every instance it forks shares
/// its hash seed and address layout, so what a tenant learns of them does not last.
const MAX_FORKS: u64 = 1000;
const MAX_AGE: Duration = Duration::from_secs(600);

/// Whether instances of `kind` are forked from a zygote: Python (3.9 or later, for
/// `socket.recv_fds` and `os.pidfd_open`), not a Lambda function's.
pub fn runs(kind: &crate::kinds::Kind) -> bool {
    let minor = kind
        .name
        .strip_prefix("python:3.")
        .and_then(|m| m.parse::<u32>().ok());
    kind.family == crate::kinds::Family::Python
        && kind.lambda.is_none()
        && minor.is_some_and(|m| m >= 9)
}

/// The zygote's source: the launcher without its last line (`main()`), then the zygote loop.
pub fn source(launcher: &str, zygote: &str) -> String {
    let body = launcher.strip_suffix("main()\n").unwrap_or(launcher);
    format!("{body}{zygote}")
}

/// The instances' seccomp filters as the zygote reads them: a little-endian u32 count, then
/// per filter a u32 count of instructions and 8 bytes each (`struct sock_filter`).
pub fn encode_filters(filters: &[seccompiler::BpfProgram]) -> Vec<u8> {
    let mut out = (filters.len() as u32).to_le_bytes().to_vec();
    for f in filters {
        out.extend((f.len() as u32).to_le_bytes());
        for i in f {
            out.extend(i.code.to_le_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend(i.k.to_le_bytes());
        }
    }
    out
}

/// What the zygote answered to a fork.
type ForkReply = Result<(i32, OwnedFd), String>;

#[derive(Default)]
struct Shared {
    /// The fork waiting for its answer, with its sequence number.
    pending: Option<(u64, oneshot::Sender<ForkReply>)>,
    /// The live instances by their pid in the zygote's namespace: their fork's sequence
    /// number, and their wait status once they have ended.
    exits: HashMap<i32, (u64, Option<i32>)>,
    /// The zygote is gone (its socket closed).
    gone: bool,
}

/// A running zygote. Each instance it forked holds it (through [`ForkedExit`]): it is killed
/// only once none is left.
pub struct Zygote {
    pub kind: String,
    control: Arc<AsyncFd<OwnedFd>>,
    shared: Arc<Mutex<Shared>>,
    exited: Arc<Notify>,
    /// One fork at a time.
    forking: tokio::sync::Mutex<()>,
    pid: i32,
    pidfd: OwnedFd,
    born: Instant,
    forks: AtomicU64,
    /// Forks no more (it did not answer in time).
    retired: AtomicBool,
    /// Its own group and uids (given back once it is reaped), its stdin and fd 3 (kept open:
    /// closing them would end its reads).
    parts: Option<(Cgroup, UidLease, OwnedFd, OwnedFd)>,
}

impl std::fmt::Debug for Zygote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zygote").field("kind", &self.kind).finish()
    }
}

/// How a forked instance learns its wait status from its zygote (which it keeps alive).
pub struct ForkedExit {
    zygote: Arc<Zygote>,
    /// Its pid in the zygote's namespace, and its fork's sequence number.
    pid: i32,
    seq: u64,
}

impl ForkedExit {
    /// Its wait status, once the zygote has reaped it (waits up to a second; `None` if the
    /// zygote is gone or did not say).
    pub async fn status(&self) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let notified = self.zygote.exited.notified();
            {
                let sh = lock(&self.zygote.shared);
                if let Some((seq, Some(s))) = sh.exits.get(&self.pid)
                    && *seq == self.seq
                {
                    return Some(*s);
                }
                if sh.gone {
                    return None;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for ForkedExit {
    fn drop(&mut self) {
        let mut sh = lock(&self.zygote.shared);
        if sh
            .exits
            .get(&self.pid)
            .is_some_and(|(seq, _)| *seq == self.seq)
        {
            sh.exits.remove(&self.pid);
        }
    }
}

/// Opens each file for writing.
fn open_all(paths: &[PathBuf]) -> Result<Vec<File>, String> {
    paths
        .iter()
        .map(|p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}

impl Zygote {
    /// Takes over a started zygote sandbox in `cgroup` with uids `lease` (`home`: the files
    /// that put a thread back in its groups). Its output is logged.
    pub fn new(
        kind: String,
        started: Started,
        home: &[PathBuf],
        cgroup: Cgroup,
        lease: UidLease,
    ) -> Result<Zygote, String> {
        let control = started.control.ok_or("the zygote has no control socket")?;
        // SAFETY: an owned socket: it stays open, the same descriptor, as long as the
        // AsyncFd that owns it.
        let control =
            unsafe { AsyncFd::register_with_interest(control, tokio::io::Interest::READABLE) }
                .map_err(|e| e.to_string())?;
        let control = Arc::new(control);
        let home = open_all(home)?;
        let fds: Vec<RawFd> = home.iter().map(|f| f.as_raw_fd()).collect();
        send(control.get_ref(), b"home", &fds).map_err(|e| format!("zygote: {e}"))?;
        drop(home);
        for (name, fd) in [("stdout", started.stdout), ("stderr", started.stderr)] {
            let kind = kind.clone();
            tokio::spawn(async move {
                let Ok(rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
                    return;
                };
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(rx).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::warn!(kind = %kind, stream = name, "zygote: {line}");
                }
            });
        }
        let shared = Arc::new(Mutex::new(Shared::default()));
        let exited = Arc::new(Notify::new());
        tokio::spawn(read_replies(
            control.clone(),
            shared.clone(),
            exited.clone(),
        ));
        Ok(Zygote {
            kind,
            control,
            shared,
            exited,
            forking: tokio::sync::Mutex::new(()),
            pid: started.pid,
            pidfd: started.pidfd,
            born: Instant::now(),
            forks: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            parts: Some((cgroup, lease, started.stdin, started.result)),
        })
    }

    /// Whether its socket closed (it died).
    pub fn gone(&self) -> bool {
        lock(&self.shared).gone
    }

    /// Whether it should fork more: alive, answering, neither too old nor too used.
    pub fn usable(&self) -> bool {
        !self.gone()
            && !self.retired.load(Ordering::Relaxed)
            && self.forks.load(Ordering::Relaxed) < MAX_FORKS
            && self.born.elapsed() < MAX_AGE
    }

    /// When it started.
    pub fn born(&self) -> Instant {
        self.born
    }

    /// Forks an instance running as `uid` (inside the zygote's namespace) with the child
    /// ends of its pipes (`stdin`, `stdout`, `stderr`, fd 3), born in the groups whose
    /// `tasks` (or `cgroup.procs`) files are `groups`. Returns its host pid, its pidfd, and
    /// how to learn its exit.
    pub async fn fork(
        self: &Arc<Self>,
        uid: u32,
        pipes: [OwnedFd; 4],
        groups: &[PathBuf],
    ) -> Result<(i32, OwnedFd, ForkedExit), String> {
        let groups = open_all(groups)?;
        let _one = self.forking.lock().await;
        let seq = self.forks.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut sh = lock(&self.shared);
            if sh.gone {
                return Err("the zygote is gone".into());
            }
            sh.pending = Some((seq, tx));
        }
        let mut fds: Vec<RawFd> = pipes.iter().map(|p| p.as_raw_fd()).collect();
        fds.extend(groups.iter().map(|g| g.as_raw_fd()));
        send(
            self.control.get_ref(),
            format!("fork {seq} {uid}").as_bytes(),
            &fds,
        )
        .map_err(|e| format!("zygote: {e}"))?;
        drop(pipes);
        drop(groups);
        let (pid, pidfd) = match tokio::time::timeout(FORK_TIMEOUT, rx).await {
            Ok(Ok(reply)) => reply?,
            Ok(Err(_)) => return Err("the zygote is gone".into()),
            Err(_) => {
                self.retired.store(true, Ordering::Relaxed);
                return Err("the zygote did not answer in time; it forks no more".into());
            }
        };
        let host_pid = host_pid(&pidfd)?;
        Ok((
            host_pid,
            pidfd,
            ForkedExit {
                zygote: self.clone(),
                pid,
                seq,
            },
        ))
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        // With it, in its PID namespace, ends every instance it forked: none is left.
        crate::instance::kill_by_pidfd(&self.pidfd);
        // Reaped, then its group removed and its uids given back, away from the workers.
        let (pid, parts) = (self.pid, self.parts.take());
        let cleanup = move || {
            // SAFETY: our own child (cloned by the sandbox thread of this process), killed
            // above and reaped once.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL) };
            if let Some((cgroup, lease, stdin, result)) = parts {
                drop((stdin, result));
                cgroup.remove();
                drop(lease);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(cleanup);
            }
            Err(_) => cleanup(),
        }
    }
}

/// The host pid of the process `pidfd` refers to (its `fdinfo`).
fn host_pid(pidfd: &OwnedFd) -> Result<i32, String> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))
        .map_err(|e| format!("pidfd: {e}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
        .filter(|p: &i32| *p > 0)
        .ok_or_else(|| "the forked instance is already gone".to_string())
}

/// Sends one message with `fds` attached.
fn send(sock: &OwnedFd, msg: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let iov = [IoSlice::new(msg)];
    let space =
        // SAFETY: CMSG_SPACE is a pure computation.
        unsafe { libc::CMSG_SPACE((std::mem::size_of_val(fds)) as u32) } as usize;
    let mut control = vec![0u8; space.max(1)];
    // SAFETY: msghdr is plain data; zeroed is valid.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = iov.as_ptr() as *mut libc::iovec;
    hdr.msg_iovlen = 1;
    if !fds.is_empty() {
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = space as _;
        // SAFETY: the control buffer holds one header with room for `fds`.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                std::mem::size_of_val(fds),
            );
        }
    }
    // SAFETY: a connected socket we own and a message that outlives the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &hdr, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one message and at most one descriptor; `None` at the end of the stream.
fn recv(sock: &OwnedFd) -> std::io::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
    let mut buf = [0u8; 512];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32 * 4) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; zeroed is valid.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = space as _;
    // SAFETY: buffers outlive the call; received descriptors are close-on-exec.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut hdr,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
        }
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some((buf[..n as usize].to_vec(), fds.into_iter().next())))
}

/// Routes the zygote's messages: fork answers to the waiting fork, exits to the instances.
async fn read_replies(
    control: Arc<AsyncFd<OwnedFd>>,
    shared: Arc<Mutex<Shared>>,
    exited: Arc<Notify>,
) {
    loop {
        let Ok(mut guard) = control.readable().await else {
            break;
        };
        let got = match guard.try_io(|fd| recv(fd.get_ref())) {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Err(_would_block) => continue,
        };
        let (msg, fd) = got;
        let text = String::from_utf8_lossy(&msg);
        let mut words = text.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("forked"), Some(seq), Some(pid)) => {
                let seq = seq.parse::<u64>().unwrap_or(u64::MAX);
                let reply = match (pid.parse::<i32>(), fd) {
                    (Ok(pid), Some(fd)) => Ok((pid, fd)),
                    _ => Err("the zygote's answer had no pidfd".to_string()),
                };
                let mut sh = lock(&shared);
                // Known before its exit can be told (the zygote says "forked" first).
                let pid = reply.as_ref().map(|(p, _)| *p).ok();
                if let Some(pid) = pid {
                    sh.exits.insert(pid, (seq, None));
                }
                let delivered = match sh.pending.take() {
                    Some((s, tx)) if s == seq => tx.send(reply).is_ok(),
                    other => {
                        sh.pending = other;
                        false
                    }
                };
                if !delivered && let Some(pid) = pid {
                    // No one waits for it (its fork gave up): it runs launcher code only and
                    // ends as its stdin, dropped with the answer, closes.
                    sh.exits.remove(&pid);
                }
            }
            (Some("failed"), Some(seq), _) => {
                let seq = seq.parse::<u64>().unwrap_or(u64::MAX);
                let why = text.splitn(3, ' ').nth(2).unwrap_or_default().to_string();
                let mut sh = lock(&shared);
                match sh.pending.take() {
                    Some((s, tx)) if s == seq => {
                        let _ = tx.send(Err(format!("the zygote could not fork: {why}")));
                    }
                    other => sh.pending = other,
                }
            }
            (Some("exit"), Some(pid), Some(status)) => {
                if let (Ok(pid), Ok(status)) = (pid.parse::<i32>(), status.parse()) {
                    // Only for an instance that still listens.
                    if let Some((_, slot)) = lock(&shared).exits.get_mut(&pid) {
                        *slot = Some(status);
                    }
                }
                exited.notify_waiters();
            }
            _ => tracing::warn!(message = %text, "zygote: an unknown message"),
        }
    }
    let mut sh = lock(&shared);
    sh.gone = true;
    sh.pending.take();
    drop(sh);
    exited.notify_waiters();
}
