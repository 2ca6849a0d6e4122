//! Starts one process in a sandbox of its own: new user, PID, mount, IPC, UTS and cgroup
//! namespaces (and network, unless granted), a read-only root made of a few host folders and
//! files, a private bounded `/tmp`, an unprivileged uid, rlimits, `no_new_privs` and the
//! seccomp filters of [`crate::seccomp`].
//!
//! The process is made with `clone(2)` in fork mode from a dedicated thread (its parent-death
//! signal is tied to that thread, which lives as long as the server). The child runs only
//! system calls on data prepared before the clone: no allocation, no locks. It waits until
//! the parent has written its uid/gid maps and put it in its cgroup, builds its root, drops
//! to uid 1000 inside (an unprivileged host uid outside) and execs the interpreter as PID 1 of
//! its namespace, so when it exits every process it left behind is killed by the kernel.
//!
//! A failure before the exec comes back on a close-on-exec pipe as the step's name and its
//! errno; end of file on that pipe means the exec happened.

use std::ffi::{CString, c_char};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use seccompiler::BpfProgram;

use crate::cgroup::{Cgroup, Placement};

/// The uid and gid a function runs as, inside its user namespace.
pub const INSIDE_ID: u32 = 1000;

/// What to start, and in what view of the host.
#[derive(Debug, Clone)]
pub struct Spec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Host folders and files shown read-only at the same path (symbolic links are copied
    /// as links).
    pub binds: Vec<PathBuf>,
    /// Files written into the root (`/etc/passwd`...).
    pub files: Vec<(String, Vec<u8>)>,
    /// The action's code folder, shown read-only at `/action`.
    pub code: Option<PathBuf>,
    pub tmp_bytes: u64,
    /// Keep the host's network (no network namespace).
    pub network: bool,
    /// Listen on [`RUNTIME_API`] inside its network namespace (a Lambda function's Runtime
    /// API, served by the invoker; decision 0025). Needs `network` false.
    pub runtime_api: bool,
    /// The host uid and gid the function runs as.
    pub host_id: u32,
    /// The host uid and gid of the namespace's root, which builds the sandbox before the
    /// function starts (another unprivileged id).
    pub setup_id: u32,
    /// An empty host folder to build the root on (private to the child's mount namespace).
    pub root: PathBuf,
    pub max_files: u64,
    pub max_file_size: u64,
    /// RLIMIT_NPROC; `RLIM_INFINITY` leaves it alone.
    pub max_processes: u64,
    pub cwd: String,
    /// A zygote ([`crate::zygote`]): it stays root of its user namespace, which maps these
    /// uids too (its instances' host uids), runs under the zygote's seccomp filters and gets
    /// a control socket as fd 4.
    pub zygote: Option<UidRange>,
}

/// Uids `inside..inside + count` of a user namespace shown as host uids `host..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    pub inside: u32,
    pub host: u32,
    pub count: u32,
}

/// The parent's ends of a started sandbox.
#[derive(Debug)]
pub struct Started {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Read end of the child's fd 3.
    pub result: OwnedFd,
    /// The listening socket inside its network namespace, if the spec asked for one.
    pub runtime_api: Option<std::net::TcpListener>,
    /// A zygote's control socket.
    pub control: Option<OwnedFd>,
}

/// Where a sandbox with a Runtime API finds it, inside its own network namespace.
pub const RUNTIME_API: &str = "127.0.0.1:9001";

enum Op {
    Mkdir(CString),
    Symlink(CString, CString),
    File(CString, Vec<u8>),
    /// `src` is opened (`O_PATH`) before the child gives up host root, into `fds[slot]`,
    /// and mounted through `/proc/self/fd/<fd>`: host folders such as a 0700 `/root` are
    /// looked up with the parent's rights, the mounts made with the namespace's.
    Bind {
        src: CString,
        dst: CString,
        file: bool,
        readonly: bool,
        slot: usize,
    },
    Tmpfs(CString, CString),
    Proc(CString),
}

struct Prepared {
    root: CString,
    /// Filled by the child: one `O_PATH` descriptor per bind source.
    fds: Vec<RawFd>,
    ops: Vec<Op>,
    _argv: Vec<CString>,
    _env: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    env_ptrs: Vec<*const c_char>,
    hostname: CString,
    cwd: CString,
    filters: Vec<BpfProgram>,
    rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    // Child ends.
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    result: RawFd,
    sync: RawFd,
    err: RawFd,
    /// A zygote's control socket (fd 4), or -1.
    control: RawFd,
    /// Stays root of its namespace (a zygote).
    stay_root: bool,
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("a NUL byte in {s:?}"))
}

fn cpath(p: &Path) -> Result<CString, String> {
    cstr(&p.to_string_lossy())
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two descriptors that we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both were just created and are owned by no one else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Adds the folders that lead to `path` (inside the root), each once.
fn mkdirs(path: &Path, made: &mut Vec<PathBuf>, ops: &mut Vec<Op>) -> Result<(), String> {
    let mut acc = PathBuf::from("/");
    for c in path.components().skip(1) {
        acc.push(c);
        if !made.contains(&acc) {
            made.push(acc.clone());
            ops.push(Op::Mkdir(cpath(acc.strip_prefix("/").unwrap_or(&acc))?));
        }
    }
    Ok(())
}

fn prepare(spec: &Spec, ends: [RawFd; 7], filters: Vec<BpfProgram>) -> Result<Prepared, String> {
    let root = &spec.root;
    // Paths inside the new root, relative: the child works from inside it.
    let inside = |p: &Path| p.strip_prefix("/").unwrap_or(p).to_path_buf();
    let mut ops = Vec::new();
    let mut made: Vec<PathBuf> = Vec::new();
    for dir in ["/etc", "/dev", "/proc", "/tmp"] {
        mkdirs(Path::new(dir), &mut made, &mut ops)?;
    }
    for b in &spec.binds {
        let Ok(meta) = std::fs::symlink_metadata(b) else {
            continue;
        };
        let parent = b.parent().unwrap_or(Path::new("/"));
        mkdirs(parent, &mut made, &mut ops)?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(b).map_err(|e| format!("{}: {e}", b.display()))?;
            ops.push(Op::Symlink(cpath(&target)?, cpath(&inside(b))?));
        } else if meta.is_dir() {
            mkdirs(b, &mut made, &mut ops)?;
            ops.push(Op::Bind {
                src: cpath(b)?,
                dst: cpath(&inside(b))?,
                file: false,
                readonly: true,
                slot: 0,
            });
        } else {
            ops.push(Op::Bind {
                src: cpath(b)?,
                dst: cpath(&inside(b))?,
                file: true,
                readonly: true,
                slot: 0,
            });
        }
    }
    for dev in ["null", "zero", "full", "random", "urandom"] {
        let p = PathBuf::from(format!("/dev/{dev}"));
        ops.push(Op::Bind {
            src: cpath(&p)?,
            dst: cpath(&inside(&p))?,
            file: true,
            readonly: false,
            slot: 0,
        });
    }
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/shm", "/tmp"),
    ] {
        ops.push(Op::Symlink(cstr(target)?, cpath(&inside(Path::new(link)))?));
    }
    for (path, content) in &spec.files {
        ops.push(Op::File(cpath(&inside(Path::new(path)))?, content.clone()));
    }
    if let Some(code) = &spec.code {
        mkdirs(Path::new("/action"), &mut made, &mut ops)?;
        ops.push(Op::Bind {
            src: cpath(code)?,
            dst: cpath(&inside(Path::new("/action")))?,
            file: false,
            readonly: true,
            slot: 0,
        });
    }
    ops.push(Op::Proc(cpath(&inside(Path::new("/proc")))?));
    ops.push(Op::Tmpfs(
        cpath(&inside(Path::new("/tmp")))?,
        cstr(&format!("size={},mode=1777", spec.tmp_bytes))?,
    ));
    let mut binds = 0;
    for op in &mut ops {
        if let Op::Bind { slot, .. } = op {
            *slot = binds;
            binds += 1;
        }
    }
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const c_char> = env.iter().map(|a| a.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    Ok(Prepared {
        root: cpath(root)?,
        fds: vec![-1; binds],
        ops,
        _argv: argv,
        _env: env,
        argv_ptrs,
        env_ptrs,
        hostname: cstr("gust")?,
        cwd: cstr(&spec.cwd)?,
        filters,
        rlimits: [
            (libc::RLIMIT_NOFILE, spec.max_files),
            (libc::RLIMIT_FSIZE, spec.max_file_size),
            (libc::RLIMIT_NPROC, spec.max_processes),
            (libc::RLIMIT_CORE, 0),
        ]
        .into_iter()
        // Infinity: left as it is (raising a hard limit is not allowed anyway).
        .filter(|(_, v)| *v != libc::RLIM_INFINITY)
        .collect(),
        stdin: ends[0],
        stdout: ends[1],
        stderr: ends[2],
        result: ends[3],
        sync: ends[4],
        err: ends[5],
        control: ends[6],
        stay_root: spec.zygote.is_some(),
    })
}

/// Reports a failed step to the parent (its name, then its errno as 4 bytes) and exits.
///
/// # Safety
/// Runs in the cloned child: only system calls.
unsafe fn fail(p: &Prepared, step: &'static str) -> ! {
    // SAFETY: errno location is thread-local and valid; writes go to our own pipe.
    unsafe {
        let errno = *libc::__errno_location();
        libc::write(p.err, step.as_ptr().cast(), step.len());
        let bytes = errno.to_ne_bytes();
        libc::write(p.err, bytes.as_ptr().cast(), 4);
        libc::_exit(127)
    }
}

/// `/proc/self/fd/<fd>` as a C string in `buf`, without allocating.
fn fd_path(buf: &mut [u8; 32], fd: RawFd) -> *const c_char {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = fd.max(0) as u32;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    buf.as_ptr().cast()
}

/// Sets the real, effective and saved gid, then uid, to `id` with raw system calls.
///
/// # Safety
/// Changes the calling process's credentials.
unsafe fn set_ids(id: u32) -> libc::c_long {
    // SAFETY: plain system calls with integer arguments.
    unsafe {
        let r = libc::syscall(libc::SYS_setresgid, id, id, id);
        if r != 0 {
            return r;
        }
        libc::syscall(libc::SYS_setresuid, id, id, id)
    }
}

/// Marks every descriptor from `first` up close-on-exec: `close_range` (Linux 5.11), else each
/// one listed in `/proc/self/fd` (read with `getdents64` into a stack buffer).
///
/// # Safety
/// System calls only; runs in the cloned child.
unsafe fn cloexec_from(first: RawFd) -> bool {
    // SAFETY: system calls on our own descriptors and a stack buffer.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            first as u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) == 0
        {
            return true;
        }
        let dir = libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if dir < 0 {
            return false;
        }
        let mut buf = [0u8; 4096];
        loop {
            let n = libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len());
            if n <= 0 {
                libc::close(dir);
                return n == 0;
            }
            let mut off = 0usize;
            // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name (NUL-ended).
            while off + 19 <= n as usize {
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                if reclen == 0 {
                    break;
                }
                let mut fd: i64 = 0;
                let mut digits = 0;
                for &b in &buf[off + 19..(off + reclen).min(n as usize)] {
                    if !b.is_ascii_digit() {
                        break;
                    }
                    fd = fd * 10 + i64::from(b - b'0');
                    digits += 1;
                }
                if digits > 0 && fd >= i64::from(first) && fd != i64::from(dir) {
                    libc::fcntl(fd as RawFd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
                off += reclen;
            }
        }
    }
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes the mount at `dst` and every mount below it read-only, nosuid and nodev (`-1` and
/// `ENOSYS` before Linux 5.12).
///
/// # Safety
/// A system call on a NUL-terminated path.
unsafe fn read_only_tree(dst: &CString) -> libc::c_long {
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` outlives the call; its size is passed along.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            dst.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    }
}

/// The child, between the clone and the exec.
///
/// # Safety
/// Runs in a copy of a multi-threaded process: it must not allocate or take locks, only
/// make system calls on `p`, which was prepared before the clone.
unsafe fn child(p: &mut Prepared) -> ! {
    // SAFETY: every call below is a system call on prepared, NUL-terminated data.
    unsafe {
        // The server ignores SIGPIPE and may block signals on this thread: an ignored or
        // blocked signal would stay so across the exec.
        let mut sigs: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut sigs);
        libc::sigprocmask(libc::SIG_SETMASK, &sigs, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut go = 0u8;
        if libc::read(p.sync, (&raw mut go).cast(), 1) != 1 {
            libc::_exit(1);
        }
        // Move the pipe ends out of the way, then onto 0..3 (dup2 clears close-on-exec).
        let mut high = [-1; 5];
        for (i, fd) in [p.stdin, p.stdout, p.stderr, p.result, p.control]
            .into_iter()
            .enumerate()
        {
            if fd < 0 {
                continue;
            }
            high[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64);
            if high[i] < 0 {
                fail(p, "dup");
            }
        }
        for (i, fd) in high.into_iter().enumerate() {
            if fd >= 0 && libc::dup2(fd, i as RawFd) < 0 {
                fail(p, "dup2");
            }
        }
        // Now in its cgroup (the parent put it there): that group becomes the root of what
        // it sees of cgroups.
        if libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
            fail(p, "cgroup namespace");
        }
        // Look up every bind source while still host root (a 0700 /root is no obstacle).
        for i in 0..p.ops.len() {
            if let Op::Bind { src, slot, .. } = &p.ops[i] {
                let (slot, fd) = (
                    *slot,
                    libc::open(src.as_ptr(), libc::O_PATH | libc::O_CLOEXEC),
                );
                if fd < 0 {
                    fail(p, "open a bind source");
                }
                p.fds[slot] = fd;
            }
        }
        let p = &*p;
        let none = c"".as_ptr();
        if libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            fail(p, "make mounts private");
        }
        if libc::mount(
            c"tmpfs".as_ptr(),
            p.root.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"size=1m,mode=0755,uid=0,gid=0".as_ptr().cast(),
        ) != 0
        {
            fail(p, "mount root tmpfs");
        }
        if libc::chdir(p.root.as_ptr()) != 0 {
            fail(p, "chdir root");
        }
        // Become the namespace's root (an unprivileged host id) to build the root: files
        // made in a namespace's tmpfs need an owner mapped in it. Credentials change through
        // raw system calls: the C library's wrappers signal every thread the server had,
        // and wait for threads that do not exist in this copy.
        if set_ids(0) != 0 {
            fail(p, "become namespace root");
        }
        // Drop the host's supplementary groups (root's).
        if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0 {
            fail(p, "setgroups");
        }
        for op in &p.ops {
            match op {
                Op::Mkdir(path) => {
                    if libc::mkdir(path.as_ptr(), 0o755) != 0
                        && *libc::__errno_location() != libc::EEXIST
                    {
                        fail(p, "mkdir");
                    }
                }
                Op::Symlink(target, path) => {
                    if libc::symlink(target.as_ptr(), path.as_ptr()) != 0 {
                        fail(p, "symlink");
                    }
                }
                Op::File(path, content) => {
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                        0o644,
                    );
                    if fd < 0 || libc::write(fd, content.as_ptr().cast(), content.len()) < 0 {
                        fail(p, "write file");
                    }
                    libc::close(fd);
                }
                Op::Bind {
                    dst,
                    file,
                    readonly,
                    slot,
                    ..
                } => {
                    if *file {
                        let fd = libc::open(
                            dst.as_ptr(),
                            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd < 0 {
                            fail(p, "bind target");
                        }
                        libc::close(fd);
                    }
                    let mut buf = [0u8; 32];
                    let src = fd_path(&mut buf, p.fds[*slot]);
                    if libc::mount(
                        src,
                        dst.as_ptr(),
                        none,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ) != 0
                    {
                        fail(p, "bind mount");
                    }
                    let tree = if *readonly { read_only_tree(dst) } else { 0 };
                    if tree != 0 && *libc::__errno_location() != libc::ENOSYS {
                        fail(p, "read-only mount tree");
                    }
                    if tree != 0 {
                        // Before Linux 5.12 (no mount_setattr): the bind itself only.
                        let flags = libc::MS_BIND
                            | libc::MS_REMOUNT
                            | libc::MS_RDONLY
                            | libc::MS_NOSUID
                            | libc::MS_NODEV;
                        // A source mounted noexec stays noexec (its flags are locked).
                        if libc::mount(none, dst.as_ptr(), none, flags, std::ptr::null()) != 0
                            && libc::mount(
                                none,
                                dst.as_ptr(),
                                none,
                                flags | libc::MS_NOEXEC,
                                std::ptr::null(),
                            ) != 0
                        {
                            fail(p, "read-only remount");
                        }
                    }
                }
                Op::Tmpfs(dst, opts) => {
                    if libc::mount(
                        c"tmpfs".as_ptr(),
                        dst.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        opts.as_ptr().cast(),
                    ) != 0
                    {
                        fail(p, "mount /tmp");
                    }
                }
                Op::Proc(dst) => {
                    if libc::mount(
                        c"proc".as_ptr(),
                        dst.as_ptr(),
                        c"proc".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        std::ptr::null(),
                    ) != 0
                    {
                        fail(p, "mount /proc");
                    }
                }
            }
        }
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
            fail(p, "pivot_root");
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
            fail(p, "detach the host root");
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            fail(p, "chdir /");
        }
        if libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            std::ptr::null(),
        ) != 0
        {
            fail(p, "read-only root");
        }
        if libc::sethostname(p.hostname.as_ptr(), p.hostname.as_bytes().len()) != 0 {
            fail(p, "sethostname");
        }
        for (resource, value) in &p.rlimits {
            let lim = libc::rlimit {
                rlim_cur: *value,
                rlim_max: *value,
            };
            if libc::setrlimit(*resource, &lim) != 0 {
                fail(p, "setrlimit");
            }
        }
        // Its own session: no controlling terminal, no process group shared with the server.
        if libc::setsid() < 0 {
            fail(p, "setsid");
        }
        if !p.stay_root && set_ids(INSIDE_ID) != 0 {
            fail(p, "drop to the function's uid");
        }
        // After the credential change, which clears it.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            fail(p, "parent-death signal");
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(p, "no_new_privs");
        }
        for f in &p.filters {
            let prog = libc::sock_fprog {
                len: f.len() as u16,
                filter: f.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &raw const prog,
            ) != 0
            {
                fail(p, "seccomp");
            }
        }
        if libc::chdir(p.cwd.as_ptr()) != 0 {
            fail(p, "chdir");
        }
        // Whatever else the server had open closes at the exec.
        if !cloexec_from(if p.control >= 0 { 5 } else { 4 }) {
            fail(p, "mark descriptors close-on-exec");
        }
        libc::execve(p.argv_ptrs[0], p.argv_ptrs.as_ptr(), p.env_ptrs.as_ptr());
        fail(p, "execve")
    }
}

/// Starts sandboxes from one long-lived thread.
#[derive(Debug)]
pub struct Spawner {
    jobs: mpsc::Sender<Job>,
}

/// The seccomp filters of instances, and of zygotes (which may also unshare, setns and mount
/// to make their instances).
#[derive(Debug, Clone)]
pub struct Filters {
    pub instance: Vec<BpfProgram>,
    pub zygote: Vec<BpfProgram>,
}

type Job = (
    Spec,
    Option<Placement>,
    tokio::sync::oneshot::Sender<Result<Started, String>>,
);

impl Spawner {
    pub fn new(filters: Filters) -> std::io::Result<Spawner> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("gust-sandbox".into())
            .spawn(move || {
                for (spec, placement, reply) in rx {
                    let f = if spec.zygote.is_some() {
                        &filters.zygote
                    } else {
                        &filters.instance
                    };
                    let _ = reply.send(start(&spec, placement.as_ref(), f.clone()));
                }
            })?;
        Ok(Spawner { jobs: tx })
    }

    /// Starts `spec`, in `cgroup` if given.
    pub async fn spawn(&self, spec: Spec, cgroup: Option<&Cgroup>) -> Result<Started, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let placement = cgroup.map(Cgroup::placement);
        self.jobs
            .send((spec, placement, tx))
            .map_err(|_| "the sandbox thread stopped".to_string())?;
        rx.await
            .map_err(|_| "the sandbox thread stopped".to_string())?
    }
}

/// How long a sandbox may take to build itself before it is killed.
const SETUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the child's report pipe to its end (the exec, or a failure), within `timeout`.
fn read_report(fd: OwnedFd, timeout: std::time::Duration) -> Result<Vec<u8>, String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut file = File::from(fd);
    let mut report = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut poll = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, valid for the call.
        let ready =
            unsafe { libc::poll(&mut poll, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if ready == 0 {
            return Err(format!(
                "the sandbox did not start within {} s",
                timeout.as_secs()
            ));
        }
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        match file.read(&mut buf) {
            Ok(0) => return Ok(report),
            Ok(n) => report.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read the sandbox's report: {e}")),
        }
    }
}

/// Moves the calling thread into the groups whose `tasks` files are given; on failure moves
/// it back to `home` and says why.
fn visit(enter: &[PathBuf], home: &[PathBuf]) -> Result<(), String> {
    for f in enter {
        if let Err(e) = std::fs::write(f, "0") {
            go_home(enter, home);
            return Err(format!("{}: {e}", f.display()));
        }
    }
    Ok(())
}

/// Set once the sandbox thread could not go back to its own groups: it then never visits an
/// instance's groups again.
static NO_VISITS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Moves the calling thread out of the instance groups `enter` (`tasks` files): back to its
/// own groups, else (they moved or vanished) to each hierarchy's root group, so that it is
/// never left where the instance's freezer or OOM killer would reach it.
fn go_home(enter: &[PathBuf], home: &[PathBuf]) {
    for (i, f) in home.iter().enumerate() {
        if std::fs::write(f, "0").is_ok() {
            continue;
        }
        NO_VISITS.store(true, std::sync::atomic::Ordering::Relaxed);
        // `<mount>/gust/srv-<pid>/<instance>/tasks` -> `<mount>/tasks`.
        let root = enter
            .get(i)
            .and_then(|t| t.ancestors().nth(4))
            .map(|m| m.join("tasks"));
        let rescued = root
            .as_ref()
            .is_some_and(|r| std::fs::write(r, "0").is_ok());
        tracing::error!(file = %f.display(), rescued, "the sandbox thread cannot return to its cgroup; instances are moved into theirs from now on");
    }
}

fn start(
    spec: &Spec,
    placement: Option<&Placement>,
    filters: Vec<BpfProgram>,
) -> Result<Started, String> {
    let (stdin_r, stdin_w) = pipe()?;
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let (result_r, result_w) = pipe()?;
    let (sync_r, sync_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let control = match spec.zygote {
        Some(_) => Some(seqpacket_pair()?),
        None => None,
    };
    let mut prepared = prepare(
        spec,
        [
            stdin_r.as_raw_fd(),
            stdout_w.as_raw_fd(),
            stderr_w.as_raw_fd(),
            result_w.as_raw_fd(),
            sync_r.as_raw_fd(),
            err_w.as_raw_fd(),
            control
                .as_ref()
                .map_or(-1, |(_, theirs)| theirs.as_raw_fd()),
        ],
        filters,
    )?;
    // Born in its groups when this thread can visit them first, else moved there.
    let mut procs: Vec<PathBuf> = Vec::new();
    let mut visited: Option<(&[PathBuf], &[PathBuf])> = None;
    match placement {
        Some(Placement::Thread { enter, leave })
            if !NO_VISITS.load(std::sync::atomic::Ordering::Relaxed) =>
        {
            match visit(enter, leave) {
                Ok(()) => visited = Some((enter, leave)),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot spawn inside the cgroup; moving the process instead");
                    procs = enter
                        .iter()
                        .map(|t| t.with_file_name("cgroup.procs"))
                        .collect();
                }
            }
        }
        Some(Placement::Thread { enter, .. }) => {
            procs = enter
                .iter()
                .map(|t| t.with_file_name("cgroup.procs"))
                .collect();
        }
        Some(Placement::Procs(files)) => procs = files.clone(),
        None => {}
    }
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if !spec.network {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: clone in fork mode (no new stack); the child only runs `child`, which makes
    // system calls on `prepared` and never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        // SAFETY: see above.
        unsafe { child(&mut prepared) }
    }
    let cloned = std::io::Error::last_os_error();
    if let Some((enter, leave)) = visited {
        go_home(enter, leave);
    }
    if pid < 0 {
        return Err(format!("clone: {cloned}"));
    }
    let pid = pid as i32;
    drop((stdin_r, stdout_w, stderr_w, result_w, sync_r, err_w));
    let control = control.map(|(ours, _)| ours);
    let reap = |why: String| {
        // SAFETY: our own child, killed and reaped once.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        Err(why)
    };
    let (setup, id) = (spec.setup_id, spec.host_id);
    let map = match spec.zygote {
        Some(r) => format!("0 {setup} 1\n{} {} {}\n", r.inside, r.host, r.count),
        None => format!("0 {setup} 1\n{INSIDE_ID} {id} 1\n"),
    };
    let maps = [
        (format!("/proc/{pid}/uid_map"), map.clone()),
        (format!("/proc/{pid}/gid_map"), map),
    ];
    for (path, map) in &maps {
        if let Err(e) = std::fs::write(path, map) {
            return reap(format!("{path}: {e}"));
        }
    }
    for f in &procs {
        if let Err(e) = std::fs::write(f, pid.to_string()) {
            return reap(format!("{}: {e}", f.display()));
        }
    }
    // Before the child runs anything of its own: its Runtime API is listening when it starts.
    let runtime_api = if spec.runtime_api && !spec.network {
        match listen_inside(pid) {
            Ok(l) => Some(l),
            Err(e) => return reap(format!("cannot open the Runtime API: {e}")),
        }
    } else {
        None
    };
    let mut sync = File::from(sync_w);
    if let Err(e) = sync.write_all(&[1]) {
        return reap(format!("cannot start the sandbox: {e}"));
    }
    drop(sync);
    let report = match read_report(err_r, SETUP_TIMEOUT) {
        Ok(r) => r,
        Err(e) => return reap(e),
    };
    if report.len() >= 4 {
        let (step, errno) = report.split_at(report.len() - 4);
        let errno = i32::from_ne_bytes([errno[0], errno[1], errno[2], errno[3]]);
        return reap(format!(
            "sandbox set-up failed at {}: {}",
            String::from_utf8_lossy(step),
            std::io::Error::from_raw_os_error(errno)
        ));
    }
    // SAFETY: pidfd_open on our own, not yet reaped child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return reap(format!("pidfd_open: {}", std::io::Error::last_os_error()));
    }
    drop(prepared);
    Ok(Started {
        pid,
        // SAFETY: a descriptor pidfd_open just returned.
        pidfd: unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) },
        stdin: stdin_w,
        stdout: stdout_r,
        stderr: stderr_r,
        result: result_r,
        runtime_api,
        control,
    })
}

/// A connected pair of close-on-exec `SOCK_SEQPACKET` Unix sockets.
pub(crate) fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair fills two descriptors that we then own.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(format!("socketpair: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both were just created and are owned by no one else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Listens on [`RUNTIME_API`] inside `pid`'s network namespace (its loopback brought up
/// first). A thread of its own enters the namespace and ends there: no thread that lives on
/// (the sandbox thread clones network-granted sandboxes into its own namespace) ever changes
/// namespace. The socket stays in that namespace: only the sandbox can connect to it, and
/// the server accepts on it from its own.
fn listen_inside(pid: i32) -> std::io::Result<std::net::TcpListener> {
    let theirs = File::open(format!("/proc/{pid}/ns/net"))?;
    let listener = std::thread::scope(|s| {
        s.spawn(|| {
            enter_net(&theirs)?;
            loopback_up()?;
            std::net::TcpListener::bind(RUNTIME_API)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the Runtime API thread panicked")))
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Moves the calling thread into the network namespace `ns` (a `/proc/<pid>/ns/net` file),
/// for good: only a thread that ends afterwards calls it.
fn enter_net(ns: &File) -> std::io::Result<()> {
    // SAFETY: setns on an open namespace file; it changes this thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets `lo` up in the calling thread's network namespace (a new one has it down, and
/// without it 127.0.0.1 is not an address).
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a datagram socket, closed by OwnedFd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor socket(2) just returned.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS with a valid ifreq naming `lo`.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut req) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &raw mut req) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
