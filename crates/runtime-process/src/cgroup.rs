//! Control groups for sandboxed instances: memory (the action's limit, no swap), pids and a
//! CPU share, freezing and the out-of-memory count. cgroups v2 where the host mounts the
//! unified hierarchy at `/sys/fs/cgroup`, v1 (one hierarchy per controller) otherwise.
//!
//! Layout: `gust/srv-<pid>/<instance>` under each hierarchy. A server removes the groups of
//! servers that are no longer running when it starts (their processes are killed first).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "freezer"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// This server's parent groups.
#[derive(Debug)]
pub struct Cgroups {
    version: Version,
    /// One per hierarchy: `<mount>/gust/srv-<pid>`.
    bases: Vec<PathBuf>,
    /// v1: the `tasks` file of this process's own group in each hierarchy (same order).
    home: Vec<PathBuf>,
}

/// One instance's group.
#[derive(Debug)]
pub struct Cgroup {
    version: Version,
    dirs: Vec<PathBuf>,
    home: Vec<PathBuf>,
}

/// How a new process is put in its group.
#[derive(Debug, Clone)]
pub enum Placement {
    /// Write its pid to these `cgroup.procs` files after the clone. Moving a whole process
    /// takes the kernel's global threadgroup lock: an RCU grace period, often 5-15 ms.
    Procs(Vec<PathBuf>),
    /// cgroups v1: the spawning thread moves itself (`0` to each `tasks` file of `enter`),
    /// clones, and moves back (`leave`). Moving only the calling thread skips that lock, and
    /// the child is born in the group.
    Thread {
        enter: Vec<PathBuf>,
        leave: Vec<PathBuf>,
    },
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

impl Cgroups {
    /// Sets up this server's groups, or says why it cannot (not root, no writable hierarchy).
    pub fn new() -> io::Result<Cgroups> {
        let root = Path::new(ROOT);
        let pid = std::process::id();
        let (version, mounts): (Version, Vec<PathBuf>) = if root.join("cgroup.controllers").exists()
        {
            (Version::V2, vec![root.to_path_buf()])
        } else if root.join("memory").is_dir() {
            (
                Version::V1,
                V1_CONTROLLERS.iter().map(|c| root.join(c)).collect(),
            )
        } else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no cgroup hierarchy at {ROOT}"),
            ));
        };
        let home = if version == Version::V1 {
            own_v1_groups(&mounts)
        } else {
            Vec::new()
        };
        let mut bases = Vec::new();
        for mount in &mounts {
            let gust = mount.join("gust");
            fs::create_dir_all(&gust)?;
            if version == Version::V2 {
                enable_v2_controllers(mount)?;
                enable_v2_controllers(&gust)?;
            }
            remove_stale(&gust, version);
            let base = gust.join(format!("srv-{pid}"));
            fs::create_dir_all(&base)?;
            if version == Version::V2 {
                enable_v2_controllers(&base)?;
            }
            bases.push(base);
        }
        Ok(Cgroups {
            version,
            bases,
            home,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// A new group for instance `name` with its limits.
    pub fn create(&self, name: &str, memory: u64, pids: u64, cpu_share: u64) -> io::Result<Cgroup> {
        let cg = Cgroup {
            version: self.version,
            dirs: self.bases.iter().map(|b| b.join(name)).collect(),
            home: self.home.clone(),
        };
        let made = cg.dirs.iter().try_for_each(fs::create_dir_all);
        if let Err(e) = made.and_then(|_| cg.limit(memory, pids, cpu_share)) {
            cg.remove();
            return Err(e);
        }
        Ok(cg)
    }
}

impl Cgroup {
    fn limit(&self, memory: u64, pids: u64, cpu_share: u64) -> io::Result<()> {
        let cg = self;
        cg.set_memory(memory)?;
        match self.version {
            Version::V1 => {
                write(&cg.file("pids", "pids.max"), &pids.to_string())?;
                write(&cg.file("cpu", "cpu.shares"), &cpu_share.to_string())?;
            }
            Version::V2 => {
                write(&cg.file("", "pids.max"), &pids.to_string())?;
                // cpu.shares 2..262144 (default 1024) maps onto cpu.weight 1..10000 (100).
                let weight = (cpu_share * 100 / 1024).clamp(1, 10_000);
                let _ = write(&cg.file("", "cpu.weight"), &weight.to_string());
            }
        }
        Ok(())
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for b in &self.bases {
            let _ = fs::remove_dir(b);
        }
    }
}

/// The `tasks` file of this process's group in each v1 hierarchy of `mounts` (from
/// `/proc/self/cgroup`, whose lines read `id:controller[,controller]:/path`); empty when one
/// cannot be found.
fn own_v1_groups(mounts: &[PathBuf]) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut home = Vec::new();
    for mount in mounts {
        let Some(controller) = mount.file_name().and_then(|n| n.to_str()) else {
            return Vec::new();
        };
        let path = text.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == controller)
                .then_some(path)
        });
        let Some(path) = path else {
            return Vec::new();
        };
        let tasks = mount.join(path.trim_start_matches('/')).join("tasks");
        if !tasks.exists() {
            return Vec::new();
        }
        home.push(tasks);
    }
    home
}

fn enable_v2_controllers(dir: &Path) -> io::Result<()> {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<String> = ["memory", "pids", "cpu"]
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    write(&dir.join("cgroup.subtree_control"), &wanted.join(" "))
}

/// Kills what is left in groups of servers that are gone and removes their groups.
fn remove_stale(gust: &Path, version: Version) {
    let Ok(entries) = fs::read_dir(gust) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix("srv-")
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let server = e.path();
        if let Ok(instances) = fs::read_dir(&server) {
            for i in instances.flatten().filter(|i| i.path().is_dir()) {
                let cg = Cgroup {
                    version,
                    dirs: vec![i.path()],
                    home: Vec::new(),
                };
                cg.kill_all();
                let _ = fs::remove_dir(i.path());
            }
        }
        let _ = fs::remove_dir(&server);
    }
}

impl Cgroup {
    /// The file of `controller` (v1; ignored on v2, where every file is in one directory).
    fn file(&self, controller: &str, name: &str) -> PathBuf {
        let dir = match self.version {
            Version::V2 => &self.dirs[0],
            Version::V1 => self
                .dirs
                .iter()
                .find(|d| {
                    d.parent()
                        .and_then(|p| p.parent())
                        .and_then(|p| p.parent())
                        .is_some_and(|m| m.ends_with(controller))
                })
                .unwrap_or(&self.dirs[0]),
        };
        dir.join(name)
    }

    /// The files to write a process id to, to put it in this group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// How to put a new process in this group: born in it where the spawning thread can
    /// visit it (v1), else moved after the clone.
    pub fn placement(&self) -> Placement {
        if self.version == Version::V1 && self.home.len() == self.dirs.len() {
            Placement::Thread {
                enter: self.dirs.iter().map(|d| d.join("tasks")).collect(),
                leave: self.home.clone(),
            }
        } else {
            Placement::Procs(self.procs_files())
        }
    }

    /// Caps memory at `bytes`, swap included (an instance never swaps).
    pub fn set_memory(&self, bytes: u64) -> io::Result<()> {
        match self.version {
            Version::V1 => {
                let limit = self.file("memory", "memory.limit_in_bytes");
                let memsw = self.file("memory", "memory.memsw.limit_in_bytes");
                // memsw must stay >= limit: raise it first when growing, lower it last.
                if memsw.exists() {
                    let _ = write(&memsw, &bytes.to_string());
                    write(&limit, &bytes.to_string())?;
                    let _ = write(&memsw, &bytes.to_string());
                } else {
                    write(&limit, &bytes.to_string())?;
                    let _ = write(&self.file("memory", "memory.swappiness"), "0");
                }
            }
            Version::V2 => {
                write(&self.file("", "memory.max"), &bytes.to_string())?;
                let _ = write(&self.file("", "memory.swap.max"), "0");
            }
        }
        Ok(())
    }

    /// Stops (or resumes) every process of the group.
    pub fn freeze(&self, frozen: bool) -> io::Result<()> {
        match self.version {
            Version::V1 => write(
                &self.file("freezer", "freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            ),
            Version::V2 => write(
                &self.file("", "cgroup.freeze"),
                if frozen { "1" } else { "0" },
            ),
        }
    }

    /// How many processes the kernel killed for want of memory in this group, and how many
    /// times the group hit its memory limit.
    pub fn memory_failures(&self) -> (u64, u64) {
        let field = |text: &str, key: &str| -> u64 {
            text.lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let read = |path: PathBuf| fs::read_to_string(path).unwrap_or_default();
        match self.version {
            Version::V1 => (
                field(&read(self.file("memory", "memory.oom_control")), "oom_kill"),
                read(self.file("memory", "memory.failcnt"))
                    .trim()
                    .parse()
                    .unwrap_or(0),
            ),
            Version::V2 => {
                let events = read(self.file("", "memory.events"));
                (field(&events, "oom_kill"), field(&events, "max"))
            }
        }
    }

    /// Memory the group's processes use now, in bytes (what the kernel charges it: anonymous
    /// memory, `/tmp` and the page cache it touched first); `None` if it cannot be read.
    pub fn memory_usage(&self) -> Option<u64> {
        let file = match self.version {
            Version::V1 => self.file("memory", "memory.usage_in_bytes"),
            Version::V2 => self.file("", "memory.current"),
        };
        fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// Kills every process in the group (thawing it first: a frozen process cannot die).
    pub fn kill_all(&self) {
        if self.version == Version::V2 && write(&self.file("", "cgroup.kill"), "1").is_ok() {
            return;
        }
        let _ = self.freeze(false);
        let server = std::process::id() as i32;
        for f in self.procs_files() {
            for pid in fs::read_to_string(f).unwrap_or_default().lines() {
                // Never the server, whose spawning thread visits a group while it clones.
                if let Ok(pid) = pid.trim().parse::<i32>()
                    && pid != server
                {
                    // SAFETY: plain kill(2) of a process in this instance's group.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }

    /// Removes the group once its processes are gone; retries briefly while they exit.
    pub fn remove(&self) {
        for attempt in 0..50 {
            let mut left = false;
            for d in &self.dirs {
                if d.exists() && fs::remove_dir(d).is_err() {
                    left = true;
                }
            }
            if !left {
                return;
            }
            if attempt % 10 == 9 {
                self.kill_all();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        tracing::warn!(dirs = ?self.dirs, "cannot remove an instance's cgroup");
    }
}
