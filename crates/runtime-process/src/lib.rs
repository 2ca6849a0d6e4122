//! Node.js, Python and native functions in sandboxed processes ([`sandbox`]), kept warm in a
//! pool per invoker ([`ProcessRuntime`]).
//!
//! The pool keeps, per action and code version, the instances that are running or idle.
//! An invocation takes an idle instance (thawing it if it was frozen) or, while the action
//! is under its instance limit and the pool under its memory budget, starts one: from a
//! prewarmed "stem cell" of its kind when the code is plain source, otherwise a new sandbox.
//! Past the ceiling it waits in a bounded queue. Idle instances are frozen after a grace
//! period and stopped after an idle timeout. The memory budget counts what instances really
//! use ([`admission`]): when it or the host runs short the least recently used idle instance
//! goes first, and a busy one only if it grew past what it was admitted with.
//!
//! **Invariant:** an instance runs one action version for one caller only, at most
//! `limits.concurrency` activations at a time (Node.js; one for the others), and is
//! discarded (every process in it killed) after a timeout, a crash, running out of memory or
//! an answer that is not JSON.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admission;
pub mod cgroup;
pub mod code;
mod instance;
pub mod kinds;
mod lambda;
mod runtime_api;
pub mod sandbox;
mod seccomp;
mod zygote;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gust_model::run::{Exit, RunOutput};
use serde_json::value::RawValue;
use tokio::sync::Notify;

use crate::admission::{Candidate, HostMemory};
use crate::cgroup::Cgroups;
use crate::cgroup::Placement;
use crate::instance::{Instance, Outcome, Parent, Reply};
use crate::kinds::{Family, Kind, Kinds};
use crate::sandbox::{Spawner, Spec, Started, UidRange};
use crate::zygote::Zygote;

pub use instance::SENTINEL;

const MB: u64 = 1024 * 1024;
const LAUNCHER_JS: &str = include_str!("launcher/launcher.js");
const LAUNCHER_PY: &str = include_str!("launcher/launcher.py");
/// The Python zygote's loop, run after the launcher (decision 0029).
const ZYGOTE_PY: &str = include_str!("launcher/zygote.py");
/// Gust's Lambda runtime clients: they call a Lambda handler through the Runtime API.
const LAMBDA_JS: &str = include_str!("launcher/lambda.js");
const LAMBDA_PY: &str = include_str!("launcher/lambda.py");
/// How long a Lambda function's runtime may take to initialize (Lambda's own limit).
const LAMBDA_INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Memory a stem cell is started with (raised or lowered to the action's when it is used).
const STEM_MEMORY: u64 = 256 * MB;
/// Stem cells kept per kind beyond `--stem-cells` when they are taken quickly.
const MAX_EXTRA_STEMS: usize = 16;
/// Stem cells are kept for the demand of this long (a stem takes about this to start).
const STEM_LEAD: Duration = Duration::from_millis(100);
/// A zygote that ended within this long of its start is not replaced for as long.
const ZYGOTE_BACKOFF: Duration = Duration::from_secs(30);
/// Idle instances frozen per housekeeping round at most.
const FREEZES_PER_ROUND: usize = 16;
/// No stem cell is started for this long after instances were stopped for memory.
const STEM_PAUSE: Duration = Duration::from_secs(5);
/// Size of each instance's `/tmp` (also counted in its memory, being tmpfs).
const TMP_BYTES: u64 = 64 * MB;

/// How the pool behaves; `gust serve` and `gust invoker` take these as flags.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    pub kinds: Kinds,
    /// Where unpacked code and the sandbox root mount point live.
    pub dir: PathBuf,
    /// Memory all instances together may use, in bytes (counted by real use); cut to the
    /// host's memory less its reserve (`u64::MAX`: all of that).
    pub memory_budget: u64,
    /// Memory the instances of one caller (namespace) may use, in bytes.
    pub namespace_memory: u64,
    /// What a busy instance may grow by beyond what it used when taken, in bytes.
    pub headroom: u64,
    /// Host memory kept available: idle instances are stopped when less is (`None`: a
    /// twentieth of the host, within 128 MiB..1 GiB).
    pub memory_reserve: Option<u64>,
    /// Prewarmed processes kept per interpreter kind.
    pub stem_cells: usize,
    /// Idle instances are frozen after this long.
    pub freeze_after: Duration,
    /// Idle instances are stopped after this long (scale to zero).
    pub evict_after: Duration,
    /// Instances per action when the action sets no `limits.instances`.
    pub max_instances: usize,
    /// New instances per second per action; `None`: as fast as they start.
    pub scale_out_per_sec: Option<f64>,
    /// An invocation that finds every instance busy waits this long for one to come free
    /// before another is started (a CPU-bound action on a few cores runs faster on few
    /// instances; a slow one still scales out after this delay).
    pub scale_out_delay: Duration,
    /// Invocations that may wait for an instance of one action.
    pub queue: usize,
    /// Namespaces whose actions keep the host's network.
    pub network_namespaces: Vec<String>,
    /// First host uid given to instances; each instance has its own, and another one
    /// (`uid_count` further) for the namespace root that builds its sandbox.
    pub first_uid: u32,
    pub uid_count: u32,
    /// Run instances even where there are no cgroups to hold them (no memory, pids or CPU
    /// limit: only for a trusted single-user machine).
    pub without_cgroups: bool,
    /// Fork new Python instances from a zygote per kind (with cgroups only).
    pub zygotes: bool,
}

impl ProcessConfig {
    pub fn new(kinds: Kinds, dir: PathBuf) -> ProcessConfig {
        ProcessConfig {
            kinds,
            dir,
            memory_budget: 4096 * MB,
            namespace_memory: 4096 * MB,
            headroom: admission::DEFAULT_HEADROOM,
            memory_reserve: None,
            stem_cells: 1,
            freeze_after: Duration::from_millis(500),
            evict_after: Duration::from_secs(600),
            max_instances: 32,
            scale_out_per_sec: None,
            scale_out_delay: Duration::from_millis(20),
            queue: 1000,
            network_namespaces: Vec::new(),
            first_uid: 200_000,
            uid_count: 50_000,
            without_cgroups: false,
            zygotes: true,
        }
    }
}

/// One activation for a process kind.
#[derive(Debug)]
pub struct ProcessRun {
    /// The caller's namespace: instances are never shared between callers (an action in a
    /// shared package keeps one caller's state in its globals and `/tmp`).
    pub subject: String,
    /// The namespace that owns the action.
    pub namespace: String,
    /// `pkg/action` or `action`.
    pub action: String,
    pub kind: String,
    pub code_hash: String,
    /// The entry point (`exec.main`), `main` if none.
    pub main: Option<String>,
    pub params: Box<RawValue>,
    /// `__OW_*` and the action's `init` parameters.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub memory: u64,
    pub log_limit: u64,
    pub result_limit: u64,
    /// The action's own instance ceiling (0: the pool's).
    pub max_instances: u64,
    /// Activations one instance runs at once (`limits.concurrency`; Node.js only).
    pub concurrency: u64,
}

/// The pool's instances by state, and the invocations waiting for one ([`ProcessRuntime::counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Sandboxes being started (for an action or as stem cells).
    pub starting: usize,
    /// Running at least one activation.
    pub busy: usize,
    /// Idle and not frozen.
    pub idle: usize,
    /// Idle and frozen.
    pub paused: usize,
    /// Prewarmed stem cells waiting for code.
    pub stem_cells: usize,
    /// Invocations waiting for an instance of their action.
    pub waiting: usize,
}

/// An instance in its action's pool.
struct Slot {
    instance: Arc<Instance>,
    /// Activations running on it now.
    busy: usize,
    frozen: bool,
    /// When it last became idle (or was made).
    last_used: Instant,
    /// What it was admitted with when last taken ([`admission::admission`]).
    admitted: u64,
    /// Its use was measured since it last became idle.
    measured: bool,
}

#[derive(Default)]
struct ActionPool {
    /// The caller whose instances these are.
    subject: String,
    /// The kind its instances run (their footprints teach the kind's).
    kind: String,
    /// The code its instances run.
    code_hash: String,
    /// Its instances, busy or idle, oldest first.
    slots: Vec<Slot>,
    /// Instances being started, and what they are counted at together.
    starting: usize,
    starting_charge: u64,
    waiting: usize,
    last_scale_out: Option<Instant>,
    /// When an instance last came back free (the action is making progress).
    last_release: Option<Instant>,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct State {
    pools: HashMap<String, ActionPool>,
    stems: HashMap<String, Vec<Instance>>,
    stems_starting: HashMap<String, usize>,
    /// When a stem cell of each kind was last asked for (the last second's).
    stem_demand: HashMap<String, Vec<Instant>>,
    /// What instances and stem cells being started are counted at.
    reserved: u64,
    /// Each kind's usual idle footprint, learnt from its instances.
    footprint: HashMap<String, u64>,
    /// When instances were last stopped for memory pressure.
    relieved: Option<Instant>,
    /// Python zygotes by kind, and the kinds whose zygote is being started.
    zygotes: HashMap<String, Arc<Zygote>>,
    /// When each kind's zygote last died young.
    zygote_failed: HashMap<String, Instant>,
    zygotes_starting: std::collections::HashSet<String>,
    /// When each code on disk was last asked for.
    code_used: HashMap<String, Instant>,
    /// Housekeeping rounds so far.
    ticks: u64,
}

impl Slot {
    /// What it counts against the budget: what an idle one uses; what a busy one was
    /// admitted with, or uses if more. Not measured yet (or no cgroup): its admission (which
    /// is its limit without cgroups).
    fn charge(&self) -> u64 {
        match self.instance.used() {
            None => self.admitted,
            Some(used) if self.busy == 0 => used,
            Some(used) => used.max(self.admitted),
        }
    }
}

/// What a stem cell counts against the budget.
fn stem_charge(i: &Instance) -> u64 {
    i.used().unwrap_or(i.memory)
}

impl State {
    /// Takes slot `i` of pool `key` out of the pool.
    fn take_slot(&mut self, key: &str, i: usize) -> Option<Arc<Instance>> {
        Some(self.pools.get_mut(key)?.slots.remove(i).instance)
    }

    /// What every instance, stem cell and start counts against the budget now.
    fn in_use(&self) -> u64 {
        let slots: u64 = self
            .pools
            .values()
            .flat_map(|p| &p.slots)
            .map(Slot::charge)
            .sum();
        let stems: u64 = self.stems.values().flatten().map(stem_charge).sum();
        self.reserved + slots + stems
    }

    /// What the instances (running, idle or starting) of `subject` count.
    fn caller_memory(&self, subject: &str) -> u64 {
        self.pools
            .values()
            .filter(|p| p.subject == subject)
            .map(|p| p.starting_charge + p.slots.iter().map(Slot::charge).sum::<u64>())
            .sum()
    }

    /// What the idle instances (of `subject`'s pools, if given) count.
    fn idle_charges(&self, subject: Option<&str>) -> u64 {
        self.pools
            .values()
            .filter(|p| subject.is_none_or(|s| p.subject == s))
            .flat_map(|p| &p.slots)
            .filter(|s| s.busy == 0)
            .map(Slot::charge)
            .sum()
    }

    /// Takes out the least recently used idle instance (of `subject`'s pools, if given),
    /// with what it counted.
    fn take_lru_idle(&mut self, subject: Option<&str>) -> Option<(Arc<Instance>, u64)> {
        let (key, i) = self
            .pools
            .iter()
            .filter(|(_, p)| subject.is_none_or(|s| p.subject == s))
            .flat_map(|(k, p)| {
                p.slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.busy == 0)
                    .map(move |(i, s)| (k, i, s.last_used))
            })
            .min_by_key(|(_, _, t)| *t)
            .map(|(k, i, _)| (k.clone(), i))?;
        let charge = self.pools.get(&key)?.slots.get(i)?.charge();
        Some((self.take_slot(&key, i)?, charge))
    }
}

/// The process pool of one invoker.
pub struct ProcessRuntime {
    config: ProcessConfig,
    spawner: Spawner,
    cgroups: Option<Cgroups>,
    state: Mutex<State>,
    next_id: AtomicU64,
    uids: Arc<Mutex<UidPool>>,
    /// Cores this machine offers.
    cores: usize,
    code_dir: PathBuf,
    root_dir: PathBuf,
    /// The instances' seccomp filters, as zygotes read them.
    instance_filters: Vec<u8>,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime").finish()
    }
}

/// Locks `m`, also after a panic elsewhere poisoned it (the pool keeps serving).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ProcessRuntime {
    /// Starts the pool (and its housekeeping task, which stops when the pool is dropped).
    /// A budget larger than the host's memory less its reserve is cut to that.
    pub fn new(mut config: ProcessConfig) -> Result<Arc<ProcessRuntime>, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("process sandboxes need root (to map each instance to its own host uid and to limit it with cgroups)".into());
        }
        let code_dir = config.dir.join("code");
        let root_dir = config.dir.join("root");
        // Code on disk is a cache of the store's: what an earlier run left is not tracked.
        let _ = std::fs::remove_dir_all(&code_dir);
        for d in [&config.dir, &code_dir, &root_dir] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let cgroups = match Cgroups::new() {
            Ok(c) => Some(c),
            Err(e) if config.without_cgroups => {
                tracing::warn!(error = %e, "no cgroups: process instances run without memory, pid and CPU limits");
                None
            }
            Err(e) => {
                return Err(format!(
                    "no cgroups to limit instances' memory, processes and CPU ({e}); \
                     --processes-without-cgroups runs them unlimited"
                ));
            }
        };
        if let Some(host) = HostMemory::read() {
            let reserve = *config
                .memory_reserve
                .get_or_insert_with(|| host.default_reserve());
            let most = host.total.saturating_sub(reserve);
            if config.memory_budget == u64::MAX {
                config.memory_budget = most;
            } else if config.memory_budget > most {
                tracing::warn!(
                    budget_mb = config.memory_budget / MB,
                    host_mb = host.total / MB,
                    reserve_mb = reserve / MB,
                    "the process memory budget is more than the host has: cut to the host's memory less its reserve"
                );
                config.memory_budget = most;
            }
        } else if config.memory_budget == u64::MAX {
            config.memory_budget = 4096 * MB;
        }
        config.namespace_memory = config.namespace_memory.min(config.memory_budget);
        raise_open_files_limit();
        let filters = seccomp::filters()?;
        let instance_filters = zygote::encode_filters(&filters.instance);
        let spawner = Spawner::new(filters).map_err(|e| e.to_string())?;
        let rt = Arc::new(ProcessRuntime {
            config,
            spawner,
            cgroups,
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            uids: Arc::default(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            code_dir,
            root_dir,
            instance_filters,
        });
        let weak = Arc::downgrade(&rt);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let Some(rt) = weak.upgrade() else { return };
                rt.housekeeping();
            }
        });
        Ok(rt)
    }

    pub fn kinds(&self) -> &Kinds {
        &self.config.kinds
    }

    /// How many instances the pool holds now, by state (for the `gust_instances` gauges):
    /// one lock and a walk over the pools, no system call.
    pub fn counts(&self) -> PoolCounts {
        let st = lock(&self.state);
        let mut c = PoolCounts {
            stem_cells: st.stems.values().map(Vec::len).sum(),
            ..PoolCounts::default()
        };
        c.starting = st.stems_starting.values().sum();
        for pool in st.pools.values() {
            c.starting += pool.starting;
            c.waiting += pool.waiting;
            for slot in &pool.slots {
                match (slot.busy, slot.frozen) {
                    (0, true) => c.paused += 1,
                    (0, false) => c.idle += 1,
                    _ => c.busy += 1,
                }
            }
        }
        c
    }

    /// Stops every idle instance and stem cell (busy ones end with their activations).
    pub fn shutdown(&self) {
        let mut st = lock(&self.state);
        let mut stopped: Vec<Arc<Instance>> = st
            .stems
            .drain()
            .flat_map(|(_, v)| v)
            .map(Arc::new)
            .collect();
        for p in st.pools.values_mut() {
            let (idle, busy) = std::mem::take(&mut p.slots)
                .into_iter()
                .partition(|s| s.busy == 0);
            p.slots = busy;
            stopped.extend(idle.into_iter().map(|s: Slot| s.instance));
        }
        let zygotes = std::mem::take(&mut st.zygotes);
        drop(st);
        drop(zygotes);
        drop(stopped);
    }

    /// Whether the code `hash` is on disk, ready for instances.
    /// (Asking keeps it there for `--idle-timeout-secs`.)
    pub fn has_code(&self, hash: &str) -> bool {
        lock(&self.state)
            .code_used
            .insert(hash.to_string(), Instant::now());
        self.code_dir.join(hash).exists() || self.code_dir.join(format!("{hash}.src")).exists()
    }

    /// Keeps code `hash` of `kind` on disk: source as a file (sent to each new instance), a
    /// zip or an executable unpacked into a folder.
    pub fn add_code(&self, hash: &str, kind: &str, code: &[u8]) -> Result<(), String> {
        let native = self
            .config
            .kinds
            .resolve(kind)
            .is_some_and(|k| k.family == Family::Native);
        // A Node.js or Python source that starts with `#!` is still source.
        if code::is_zip(code) || native {
            code::unpack(&self.code_dir, hash, code)
                .map_err(|e| format!("cannot unpack the action's code: {e}"))?;
        } else {
            let path = self.code_dir.join(format!("{hash}.src"));
            let tmp = self
                .code_dir
                .join(code::unique_temp(&format!("{hash}.src")));
            std::fs::write(&tmp, code)
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| format!("cannot store the action's code: {e}"))?;
        }
        Ok(())
    }

    /// Runs one activation: on an instance of the action with room, or a new one.
    pub async fn run(self: &Arc<Self>, req: ProcessRun) -> RunOutput {
        let Some(kind) = self.config.kinds.resolve(&req.kind) else {
            return RunOutput::failed(Exit::Internal(format!(
                "This invoker does not run kind '{}'.",
                req.kind
            )));
        };
        let concurrency = concurrency(&kind, &req);
        // Instances differ by caller, code, memory and concurrency (and a Lambda function's
        // by the environment it was started with).
        let mut key = format!(
            "{} {}/{}@{} {}MB x{}",
            req.subject, req.namespace, req.action, req.code_hash, req.memory, concurrency
        );
        if kind.lambda.is_some() {
            // Its runtime and handler are fixed at start too.
            key.push_str(&format!(
                " {} {} env {:016x}",
                req.kind,
                req.main.as_deref().unwrap_or_default(),
                lambda::env_digest(&lambda::user_env(&req))
            ));
        }
        let queued = Instant::now();
        let deadline_wait = queued + req.timeout.max(Duration::from_secs(1));
        let mut init_time = Duration::ZERO;
        let mut init_logs = Vec::new();
        let mut start = "warm";
        let instance = loop {
            match self.acquire(&key, &kind, &req, concurrency, queued.elapsed()) {
                Acquired::Warm(i) => break i,
                Acquired::Start(charge) => {
                    let started = Instant::now();
                    match self.start(&kind, &req, concurrency).await {
                        Ok((i, logs, how)) => {
                            init_time = started.elapsed();
                            init_logs = logs;
                            start = how;
                            break self.started(&key, i, charge);
                        }
                        Err(Failed { exit, logs }) => {
                            self.release_slot(&key, charge);
                            let mut out = RunOutput::failed(exit);
                            out.init_time = started.elapsed();
                            out.logs = logs;
                            return out;
                        }
                    }
                }
                Acquired::Full(why) => return RunOutput::failed(Exit::Overloaded(why)),
                Acquired::Wait(notify) => {
                    let left = deadline_wait.saturating_duration_since(Instant::now());
                    // Look again when an instance comes free, or after the scale-out delay.
                    let poll = left
                        .min(self.config.scale_out_delay.max(Duration::from_millis(1)))
                        .min(Duration::from_millis(50));
                    let waited = tokio::time::timeout(poll, notify.notified()).await;
                    self.unwait(&key);
                    if waited.is_err() && Instant::now() >= deadline_wait {
                        return RunOutput::failed(Exit::Overloaded(format!(
                            "No instance of the action became free within {} ms (all {} are busy).",
                            queued.elapsed().as_millis(),
                            self.instance_limit(&req)
                        )));
                    }
                }
            }
        };
        let deadline = tokio::time::Instant::now() + req.timeout;
        let env: HashMap<&str, &str> = req
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let make_line = |id| {
            let mut line = serde_json::to_vec(&RunLine {
                id,
                value: &req.params,
                env,
            })
            .unwrap_or_default();
            line.push(b'\n');
            line
        };
        let outcome = if kind.lambda.is_some() {
            let event = lambda::event(&req);
            instance
                .exchange_event(Some(event), deadline, req.log_limit, req.result_limit)
                .await
        } else {
            instance
                .exchange(make_line, deadline, req.log_limit, req.result_limit)
                .await
        };
        let Outcome {
            reply,
            mut logs,
            logs_truncated,
            logs_complete,
            memory_mark,
        } = outcome;
        if !init_logs.is_empty() {
            init_logs.append(&mut logs);
            logs = init_logs;
        }
        let (exit, stdout, stdout_len) = match reply {
            Reply::Line(kept, len) => {
                let json = serde_json::from_slice::<serde_json::Value>(&kept).is_ok();
                // An instance whose sentinel lines did not come would mix this activation's
                // late logs into the next one's; one that answered something other than JSON
                // is not trusted again. An answer over the result limit was read whole: its
                // instance is fine.
                if !logs_complete {
                    self.retire(
                        &key,
                        &instance,
                        Some("another activation running on it left log lines after its answer"),
                    );
                } else if !json && len <= req.result_limit {
                    self.retire(
                        &key,
                        &instance,
                        Some(
                            "another activation running on it answered something that is not JSON",
                        ),
                    );
                } else {
                    self.release(&key, &instance);
                }
                (Exit::Ok, kept, len)
            }
            Reply::Timeout => {
                self.retire(
                    &key,
                    &instance,
                    Some("another activation running on it exceeded its time limit"),
                );
                (Exit::Timeout, Vec::new(), 0)
            }
            Reply::Exited => {
                // Out of the pool before waiting for the end: no new activation is given a
                // process that is dying.
                self.retire(&key, &instance, None);
                let how = instance.exited().await;
                let exit = if instance.out_of_memory(memory_mark) {
                    Exit::OutOfMemory
                } else {
                    Exit::Trap(how)
                };
                (exit, Vec::new(), 0)
            }
        };
        RunOutput {
            exit,
            stdout,
            stdout_len,
            logs,
            logs_truncated,
            init_time,
            start: Some(start),
        }
    }

    /// The action's own instance limit, within the invoker's.
    fn instance_limit(&self, req: &ProcessRun) -> usize {
        match req.max_instances {
            0 => self.config.max_instances,
            n => (n as usize).min(self.config.max_instances),
        }
    }

    /// What an instance of `kind` with limit `limit` is counted at while it starts: the
    /// kind's usual footprint plus the headroom (its limit without cgroups to measure it).
    fn start_charge(&self, st: &State, kind: &str, limit: u64) -> u64 {
        if self.cgroups.is_none() {
            return limit;
        }
        let footprint = st
            .footprint
            .get(kind)
            .copied()
            .unwrap_or(admission::FIRST_FOOTPRINT);
        admission::admission(Some(footprint), self.config.headroom, limit)
    }

    fn acquire(
        &self,
        key: &str,
        kind: &Kind,
        req: &ProcessRun,
        concurrency: usize,
        waited: Duration,
    ) -> Acquired {
        let limit = self.instance_limit(req);
        let declared = req.memory * MB;
        let mut evicted: Vec<Arc<Instance>> = Vec::new();
        let mut st = lock(&self.state);
        let st = &mut *st;
        let pool = st
            .pools
            .entry(key.to_string())
            .or_insert_with(|| ActionPool {
                subject: req.subject.clone(),
                kind: kind.name.clone(),
                code_hash: req.code_hash.clone(),
                ..ActionPool::default()
            });
        // The busiest instance with room (activations packed onto few instances), the most
        // recently used first; an idle one whose process ended meanwhile (its zygote died,
        // the kernel killed it) is dropped.
        let pick = loop {
            let pick = pool
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.busy < concurrency)
                .max_by_key(|(_, s)| (s.busy, s.last_used))
                .map(|(i, _)| i);
            match pick {
                Some(i) if pool.slots[i].busy == 0 && !pool.slots[i].instance.alive() => {
                    evicted.push(pool.slots.remove(i).instance);
                }
                other => break other,
            }
        };
        if let Some(i) = pick {
            let slot = &mut pool.slots[i];
            if slot.frozen {
                slot.instance.freeze(false);
                slot.frozen = false;
            }
            if slot.busy == 0 {
                slot.admitted = admission::admission(
                    slot.instance.used(),
                    self.config.headroom,
                    slot.instance.memory,
                );
            }
            slot.busy += 1;
            return Acquired::Warm(slot.instance.clone());
        }
        let live = pool.slots.len() + pool.starting;
        let rate_ok = match (self.config.scale_out_per_sec, pool.last_scale_out) {
            (Some(rate), Some(last)) if rate > 0.0 => {
                last.elapsed() >= Duration::from_secs_f64(1.0 / rate)
            }
            _ => true,
        };
        // Scale out when nothing moved for the delay: no instance came free and none was
        // started since this invocation (or the last progress) began to wait.
        let arrived = Instant::now()
            .checked_sub(waited)
            .unwrap_or_else(Instant::now);
        let progress = [pool.last_release, pool.last_scale_out]
            .into_iter()
            .flatten()
            .fold(arrived, Instant::max);
        // As many instances as cores start without waiting (one busy interpreter uses one
        // core) while the pool leaves cores free; past that only an action that stalls gets
        // more. (With many actions the cores are busy with others: a second instance of
        // each would be a cold start each, where a short wait finds the first one free.)
        let first = live == 0;
        let cores_free = || {
            let busy: usize = st
                .pools
                .values()
                .map(|p| p.slots.iter().filter(|s| s.busy > 0).count() + p.starting)
                .sum();
            busy < self.cores
        };
        let delay_over = first
            || (live < self.cores && cores_free())
            || progress.elapsed() >= self.config.scale_out_delay;
        let mut share_ok = true;
        let need = self.start_charge(st, &kind.name, declared);
        if live < limit && rate_ok && delay_over {
            // Its limit must fit the caller's share and the budget (an instance may grow to
            // its limit).
            if declared > self.config.namespace_memory {
                return Acquired::Full(format!(
                    "The action's memory ({} MB) is more than a namespace's share of this invoker ({} MB).",
                    req.memory,
                    self.config.namespace_memory / MB
                ));
            }
            if declared > self.config.memory_budget {
                return Acquired::Full(format!(
                    "The action's memory ({} MB) is more than this invoker's whole budget ({} MB).",
                    req.memory,
                    self.config.memory_budget / MB
                ));
            }
            // The caller's share: its own least recently used idle instances make room
            // first; other callers' instances are never stopped for it. None is stopped
            // when stopping all would not make room.
            let mut mine = st.caller_memory(&req.subject);
            let freeable = st.idle_charges(Some(&req.subject));
            if mine.saturating_sub(freeable) + need > self.config.namespace_memory {
                share_ok = false;
            }
            while share_ok && mine + need > self.config.namespace_memory {
                let Some((victim, freed)) = st.take_lru_idle(Some(&req.subject)) else {
                    share_ok = false;
                    break;
                };
                mine = mine.saturating_sub(freed);
                evicted.push(victim);
            }
        }
        if live < limit && rate_ok && delay_over && share_ok {
            // Make room: least recently used idle instances of any action, then stems (none
            // when stopping all would not make room).
            let mut in_use = st.in_use();
            let freeable =
                st.idle_charges(None) + st.stems.values().flatten().map(stem_charge).sum::<u64>();
            let fits = in_use.saturating_sub(freeable) + need <= self.config.memory_budget;
            while fits && in_use + need > self.config.memory_budget {
                if let Some((victim, freed)) = st.take_lru_idle(None) {
                    in_use = in_use.saturating_sub(freed);
                    evicted.push(victim);
                    continue;
                }
                let stem = st
                    .stems
                    .values_mut()
                    .find(|v| !v.is_empty())
                    .and_then(Vec::pop);
                match stem {
                    Some(i) => {
                        in_use = in_use.saturating_sub(stem_charge(&i));
                        evicted.push(Arc::new(i));
                    }
                    None => break,
                }
            }
            if in_use + need <= self.config.memory_budget {
                let pool = st.pools.get_mut(key).expect("pool exists");
                pool.starting += 1;
                pool.starting_charge += need;
                pool.last_scale_out = Some(Instant::now());
                st.reserved += need;
                return Acquired::Start(need);
            }
        }
        let pool = st.pools.get_mut(key).expect("pool exists");
        if pool.waiting >= self.config.queue {
            if !share_ok {
                return Acquired::Full(format!(
                    "Too many requests: the namespace's instances already use its share of this invoker's memory ({} MB) and {} invocations are waiting.",
                    self.config.namespace_memory / MB,
                    pool.waiting
                ));
            }
            return Acquired::Full(format!(
                "Too many requests: all {} instances of the action are busy and {} invocations are waiting.",
                pool.slots.len() + pool.starting,
                pool.waiting
            ));
        }
        pool.waiting += 1;
        Acquired::Wait(pool.notify.clone())
    }

    fn unwait(&self, key: &str) {
        if let Some(p) = lock(&self.state).pools.get_mut(key) {
            p.waiting = p.waiting.saturating_sub(1);
        }
    }

    /// A started instance joins its pool, running the activation that started it (admitted
    /// with `charge`).
    fn started(&self, key: &str, instance: Instance, charge: u64) -> Arc<Instance> {
        let instance = Arc::new(instance);
        let mut st = lock(&self.state);
        st.reserved = st.reserved.saturating_sub(charge);
        let pool = st.pools.entry(key.to_string()).or_default();
        pool.starting = pool.starting.saturating_sub(1);
        pool.starting_charge = pool.starting_charge.saturating_sub(charge);
        pool.slots.push(Slot {
            instance: instance.clone(),
            busy: 1,
            frozen: false,
            last_used: Instant::now(),
            admitted: charge,
            measured: false,
        });
        // Others waiting may fit on it too (`notify_one` keeps a permit for a waiter that
        // has not begun to wait yet; `notify_waiters` would be lost on it).
        for _ in 1..instance.concurrency.min(pool.waiting + 1) {
            pool.notify.notify_one();
        }
        instance
    }

    /// A start that failed gives its slot (counted at `charge`) back.
    fn release_slot(&self, key: &str, charge: u64) {
        let mut st = lock(&self.state);
        st.reserved = st.reserved.saturating_sub(charge);
        if let Some(p) = st.pools.get_mut(key) {
            p.starting = p.starting.saturating_sub(1);
            p.starting_charge = p.starting_charge.saturating_sub(charge);
            p.notify.notify_one();
        }
    }

    /// An activation ended on `instance`: it stays for the next (`reusable`) or is stopped,
    /// with whatever else runs on it.
    fn release(&self, key: &str, instance: &Arc<Instance>) {
        let mut st = lock(&self.state);
        let Some(pool) = st.pools.get_mut(key) else {
            instance.kill();
            return;
        };
        pool.notify.notify_one();
        pool.last_release = Some(Instant::now());
        match pool
            .slots
            .iter_mut()
            .find(|s| Arc::ptr_eq(&s.instance, instance))
        {
            Some(slot) => {
                slot.busy = slot.busy.saturating_sub(1);
                slot.last_used = Instant::now();
                slot.measured = false;
            }
            None => instance.kill(),
        }
    }

    /// An activation ended on `instance` in a way that makes it unfit for more: it leaves
    /// the pool and is killed, with whatever else runs on it (told `why`, if given).
    fn retire(&self, key: &str, instance: &Arc<Instance>, why: Option<&str>) {
        {
            let mut st = lock(&self.state);
            if let Some(pool) = st.pools.get_mut(key) {
                pool.notify.notify_one();
                pool.last_release = Some(Instant::now());
                if let Some(i) = pool
                    .slots
                    .iter()
                    .position(|s| Arc::ptr_eq(&s.instance, instance))
                {
                    st.take_slot(key, i);
                }
            }
        }
        match why {
            Some(why) => instance.stop(why),
            None => instance.kill(),
        }
    }

    /// Freezes instances idle past the grace period, stops those idle past the idle
    /// timeout, forgets empty pools, measures what instances use, relieves memory pressure
    /// and keeps the stem cells topped up.
    fn housekeeping(self: &Arc<Self>) {
        let now = Instant::now();
        let mut stopped = Vec::new();
        // Busy instances every round, idle ones once after they come back (with their kind,
        // whose footprint they teach).
        let mut measure: Vec<(Arc<Instance>, Option<String>)> = Vec::new();
        let mut frozen_now = 0;
        {
            let mut st = lock(&self.state);
            let st = &mut *st;
            for p in st.pools.values_mut() {
                for slot in std::mem::take(&mut p.slots) {
                    let idle = now.duration_since(slot.last_used);
                    if slot.busy == 0 && idle >= self.config.evict_after {
                        stopped.push(slot.instance);
                        continue;
                    }
                    let mut slot = slot;
                    // A bounded number per round: each is a write under the pool's lock.
                    if slot.busy == 0
                        && idle >= self.config.freeze_after
                        && !slot.frozen
                        && frozen_now < FREEZES_PER_ROUND
                    {
                        slot.frozen = slot.instance.freeze(true);
                        frozen_now += 1;
                    }
                    if slot.busy > 0 {
                        measure.push((slot.instance.clone(), None));
                    } else if !slot.measured || st.ticks.is_multiple_of(10) {
                        // Once after it comes back, then every second (code left running
                        // after its answer may still allocate).
                        slot.measured = true;
                        measure.push((slot.instance.clone(), Some(p.kind.clone())));
                    }
                    p.slots.push(slot);
                }
            }
            for stem in st.stems.values().flatten() {
                if stem.used().is_none() {
                    stem.measure();
                }
            }
            st.pools
                .retain(|_, p| !p.slots.is_empty() || p.starting > 0 || p.waiting > 0);
            st.ticks += 1;
            if st.ticks.is_multiple_of(20) {
                // Renamed away while the lock is held (no invocation can find it half
                // deleted: `has_code` waits for the lock), deleted in the background.
                let mut doomed = Vec::new();
                for hash in self.unused_code(st, now) {
                    for name in [hash.clone(), format!("{hash}.src")] {
                        let gone = self
                            .code_dir
                            .join(code::unique_temp(&format!("gone-{name}")));
                        if std::fs::rename(self.code_dir.join(&name), &gone).is_ok() {
                            doomed.push(gone);
                        }
                    }
                }
                if !doomed.is_empty() {
                    tokio::task::spawn_blocking(move || {
                        for path in doomed {
                            let _ = std::fs::remove_dir_all(&path);
                            let _ = std::fs::remove_file(&path);
                        }
                    });
                }
            }
        }
        // One file read each, outside the lock.
        let learnt: Vec<(String, u64)> = measure
            .iter()
            .filter_map(|(i, kind)| {
                let used = i.measure()?;
                Some((kind.clone()?, used))
            })
            .collect();
        drop(measure);
        {
            let mut st = lock(&self.state);
            for (kind, used) in learnt {
                let e = st
                    .footprint
                    .entry(kind)
                    .or_insert(admission::FIRST_FOOTPRINT);
                *e = admission::learn(*e, used);
            }
            self.relieve_pressure(&mut st, now, &mut stopped);
        }
        drop(stopped);
        self.top_up_stems();
        self.keep_zygotes();
    }

    /// Starts a zygote for each Python kind that has none (or whose zygote died).
    fn keep_zygotes(self: &Arc<Self>) {
        if !self.config.zygotes || self.cgroups.is_none() {
            return;
        }
        let mut wanted = Vec::new();
        {
            let mut st = lock(&self.state);
            let st = &mut *st;
            let now = Instant::now();
            // One that died young is not started again for a while (its interpreter may not
            // run the zygote at all).
            for (kind, z) in &st.zygotes {
                if z.gone() && now.duration_since(z.born()) < ZYGOTE_BACKOFF {
                    tracing::warn!(kind = %kind, "the zygote ended soon after it started; new Python instances start as processes of their own for a while");
                    st.zygote_failed.insert(kind.clone(), now);
                }
            }
            // Retired ones live on while instances they forked do.
            st.zygotes.retain(|_, z| z.usable());
            for kind in self.config.kinds.all() {
                let failed = st
                    .zygote_failed
                    .get(&kind.name)
                    .is_some_and(|t| now.duration_since(*t) < ZYGOTE_BACKOFF);
                if zygote::runs(kind)
                    && !failed
                    && !st.zygotes.contains_key(&kind.name)
                    && st.zygotes_starting.insert(kind.name.clone())
                {
                    wanted.push(kind.clone());
                }
            }
        }
        for kind in wanted {
            let rt = self.clone();
            tokio::spawn(async move {
                let made = rt.start_zygote(&kind).await;
                let mut st = lock(&rt.state);
                st.zygotes_starting.remove(&kind.name);
                match made {
                    Ok(z) => {
                        st.zygotes.insert(kind.name.clone(), Arc::new(z));
                    }
                    Err(e) => {
                        tracing::warn!(kind = %kind.name, error = %e, "cannot start a zygote")
                    }
                }
            });
        }
    }

    /// A new zygote of `kind`: root of its own user namespace, which maps every instance
    /// uid, under the zygote's seccomp filters ([`zygote`]).
    async fn start_zygote(&self, kind: &Kind) -> Result<Zygote, String> {
        let cgroups = self.cgroups.as_ref().ok_or("no cgroups")?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let count = self.config.uid_count.max(1);
        let lease = UidLease::take(&self.uids, count)?;
        let (host_id, setup_id) = (
            self.config.first_uid + lease.n,
            self.config.first_uid + count + lease.n,
        );
        let cgroup = cgroups
            .create(&format!("z{id}"), 256 * MB, 16, 1024)
            .map_err(|e| format!("cgroup: {e}"))?;
        let mut spec = self.spec(kind, None, false, host_id, setup_id)?;
        let python = spec.argv.first().cloned().unwrap_or_default();
        spec.argv = vec![
            python,
            "-I".into(),
            "-c".into(),
            zygote::source(LAUNCHER_PY, ZYGOTE_PY),
        ];
        spec.files
            .push(("/etc/gust-seccomp".into(), self.instance_filters.clone()));
        spec.zygote = Some(UidRange {
            inside: zygote::INSIDE_FIRST,
            host: self.config.first_uid,
            count,
        });
        let home = match cgroup.placement() {
            Placement::Thread { enter, .. } => enter,
            Placement::Procs(files) => files,
        };
        let started = match self.spawner.spawn(spec, Some(&cgroup)).await {
            Ok(s) => s,
            Err(e) => {
                tokio::task::spawn_blocking(move || cgroup.remove());
                return Err(e);
            }
        };
        Zygote::new(kind.name.clone(), started, &home, cgroup, lease)
    }

    /// A new instance of `kind` forked by zygote `z` (`memory`: its limit).
    async fn fork_instance(
        &self,
        z: &Arc<Zygote>,
        kind: &Kind,
        memory: u64,
    ) -> Result<Instance, String> {
        let cgroups = self.cgroups.as_ref().ok_or("no cgroups")?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let lease = UidLease::take(&self.uids, self.config.uid_count.max(1))?;
        let cgroup = cgroups
            .create(&format!("i{id}"), memory, 256, 1024 * memory / (256 * MB))
            .map_err(|e| format!("cgroup: {e}"))?;
        let groups = match cgroup.placement() {
            Placement::Thread { enter, .. } => enter,
            Placement::Procs(files) => files,
        };
        let pipes = (|| {
            Ok::<_, String>((
                sandbox::pipe()?,
                sandbox::pipe()?,
                sandbox::pipe()?,
                sandbox::pipe()?,
            ))
        })();
        let forked = match pipes {
            Ok((
                (stdin_r, stdin_w),
                (stdout_r, stdout_w),
                (stderr_r, stderr_w),
                (result_r, result_w),
            )) => z
                .fork(
                    zygote::INSIDE_FIRST + lease.n,
                    [stdin_r, stdout_w, stderr_w, result_w],
                    &groups,
                )
                .await
                .map(|(pid, pidfd, exit)| {
                    (
                        Started {
                            pid,
                            pidfd,
                            stdin: stdin_w,
                            stdout: stdout_r,
                            stderr: stderr_r,
                            result: result_r,
                            runtime_api: None,
                            control: None,
                        },
                        exit,
                    )
                }),
            Err(e) => Err(e),
        };
        let (started, exit) = match forked {
            Ok(f) => f,
            Err(e) => {
                // Its uids come back once its group is empty (a child may have been made).
                tokio::task::spawn_blocking(move || {
                    cgroup.remove();
                    drop(lease);
                });
                return Err(e);
            }
        };
        Instance::new(
            id,
            kind.family,
            started,
            Some(cgroup),
            memory,
            lease,
            Parent::Zygote(exit),
        )
        .map_err(|e| e.to_string())
    }

    /// Stops instances while the pool uses more than its budget or the host has less
    /// available than its reserve ([`admission::victims`] chooses which).
    fn relieve_pressure(&self, st: &mut State, now: Instant, stopped: &mut Vec<Arc<Instance>>) {
        enum Held {
            Slot(String, Arc<Instance>),
            Stem(String, u64),
        }
        let mut candidates = Vec::new();
        let mut held = Vec::new();
        let mut used_total = st.reserved;
        for (key, p) in &st.pools {
            for s in &p.slots {
                let used = s.instance.used().unwrap_or(s.admitted);
                used_total += used;
                candidates.push(Candidate {
                    busy: s.busy > 0,
                    last_used: s.last_used,
                    used,
                    admitted: s.admitted,
                });
                held.push(Held::Slot(key.clone(), s.instance.clone()));
            }
        }
        // Stem cells go before any action's instance.
        let long_ago = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
        for (kind, stems) in &st.stems {
            for i in stems {
                used_total += stem_charge(i);
                candidates.push(Candidate {
                    busy: false,
                    last_used: long_ago,
                    used: stem_charge(i),
                    admitted: 0,
                });
                held.push(Held::Stem(kind.clone(), i.id));
            }
        }
        let over = used_total.saturating_sub(self.config.memory_budget);
        // The host's own figures lag behind a stop: looked at again 300 ms after one.
        let host = match st.relieved {
            Some(t) if now.duration_since(t) < Duration::from_millis(300) => None,
            _ => HostMemory::read(),
        };
        let reserve = self.config.memory_reserve.unwrap_or(0);
        let short = host.map_or(0, |h| h.deficit(reserve, 0));
        let chosen = if over.max(short) > 0 {
            admission::victims(&candidates, over.max(short))
        } else if host.is_some_and(|h| h.deficit(reserve, 1) > 0) {
            // A stalled host: the least recently used idle one goes, never a busy one.
            let idle: Vec<Candidate> = candidates.iter().filter(|c| !c.busy).copied().collect();
            let first = admission::victims(&idle, 1);
            let idle_index: Vec<usize> = (0..candidates.len())
                .filter(|&i| !candidates[i].busy)
                .collect();
            first.into_iter().map(|i| idle_index[i]).collect()
        } else {
            Vec::new()
        };
        if chosen.is_empty() {
            return;
        }
        st.relieved = Some(now);
        let mut held: Vec<Option<Held>> = held.into_iter().map(Some).collect();
        for i in chosen {
            match held[i].take() {
                Some(Held::Slot(key, instance)) => {
                    let Some(pool) = st.pools.get_mut(&key) else {
                        continue;
                    };
                    let Some(at) = pool
                        .slots
                        .iter()
                        .position(|s| Arc::ptr_eq(&s.instance, &instance))
                    else {
                        continue;
                    };
                    let slot = pool.slots.remove(at);
                    if slot.busy > 0 {
                        let why = format!(
                            "the invoker ran short of memory for its instances, and this one had grown to {} MB, past the {} MB it was admitted with",
                            candidates[i].used / MB,
                            slot.admitted / MB
                        );
                        tracing::warn!(pool = %key, "{why}");
                        instance.stop(&why);
                        pool.notify.notify_one();
                    } else {
                        tracing::info!(pool = %key, used_mb = candidates[i].used / MB, over_mb = over / MB, short_mb = short / MB, "an idle instance is stopped for memory");
                    }
                    stopped.push(instance);
                }
                Some(Held::Stem(kind, id)) => {
                    if let Some(v) = st.stems.get_mut(&kind)
                        && let Some(at) = v.iter().position(|s| s.id == id)
                    {
                        stopped.push(Arc::new(v.remove(at)));
                    }
                }
                None => {}
            }
        }
    }

    /// How many stem cells of `kind` to keep: `--stem-cells`, and more while they are taken
    /// faster than one is made (`STEM_LEAD`'s worth of the last second's demand).
    fn stem_target(&self, st: &mut State, kind: &str, now: Instant) -> usize {
        if self.config.stem_cells == 0 {
            return 0;
        }
        let demand = st.stem_demand.entry(kind.to_string()).or_default();
        demand.retain(|t| now.duration_since(*t) < Duration::from_secs(1));
        let extra = (demand.len() as f64 * STEM_LEAD.as_secs_f64()).ceil() as usize;
        self.config.stem_cells + extra.min(MAX_EXTRA_STEMS)
    }

    /// Starts the stem cells each kind lacks, within the budget.
    fn top_up_stems(self: &Arc<Self>) {
        let now = Instant::now();
        let mut wanted = Vec::new();
        {
            let mut st = lock(&self.state);
            let st = &mut *st;
            // Stopped for memory a moment ago: a new stem would be stopped next.
            if st
                .relieved
                .is_some_and(|t| now.duration_since(t) < STEM_PAUSE)
            {
                return;
            }
            let mut in_use = st.in_use();
            for kind in self.config.kinds.all() {
                if kind.family == Family::Native || kind.lambda.is_some() {
                    continue;
                }
                let target = self.stem_target(st, &kind.name, now);
                let charge = self.start_charge(st, &kind.name, STEM_MEMORY);
                let mut have = st.stems.get(&kind.name).map_or(0, Vec::len)
                    + st.stems_starting.get(&kind.name).copied().unwrap_or(0);
                while have < target && in_use + charge <= self.config.memory_budget {
                    *st.stems_starting.entry(kind.name.clone()).or_default() += 1;
                    st.reserved += charge;
                    in_use += charge;
                    have += 1;
                    wanted.push((kind.clone(), charge));
                }
            }
        }
        for (kind, charge) in wanted {
            let rt = self.clone();
            tokio::spawn(async move {
                let made = rt
                    .spawn_instance(&kind, STEM_MEMORY, None, false, None)
                    .await;
                let mut st = lock(&rt.state);
                if let Some(n) = st.stems_starting.get_mut(&kind.name) {
                    *n -= 1;
                }
                st.reserved = st.reserved.saturating_sub(charge);
                match made {
                    // Not frozen: it waits on a read, using no CPU, and a frozen process
                    // under cgroups v1 could not even be killed when the server dies.
                    Ok(i) => {
                        i.measure();
                        st.stems.entry(kind.name.clone()).or_default().push(i)
                    }
                    Err(e) => {
                        tracing::warn!(kind = %kind.name, error = %e, "cannot start a stem cell");
                    }
                }
            });
        }
    }

    /// Code no one asked for within the idle timeout and no instance runs: forgotten here,
    /// to be deleted from disk (an invocation fetches it again from the store).
    fn unused_code(&self, st: &mut State, now: Instant) -> Vec<String> {
        let running: std::collections::HashSet<&str> =
            st.pools.values().map(|p| p.code_hash.as_str()).collect();
        let unused: Vec<String> = st
            .code_used
            .iter()
            .filter(|(hash, used)| {
                now.duration_since(**used) >= self.config.evict_after
                    && !running.contains(hash.as_str())
            })
            .map(|(hash, _)| hash.clone())
            .collect();
        for hash in &unused {
            st.code_used.remove(hash);
        }
        unused
    }

    /// Makes a ready instance for `req`: a stem cell given the code, or a new sandbox.
    /// Returns it with the logs of its initialization.
    async fn start(
        self: &Arc<Self>,
        kind: &Kind,
        req: &ProcessRun,
        concurrency: usize,
    ) -> Result<(Instance, Vec<String>, &'static str), Failed> {
        let memory = req.memory * MB;
        let folder = self.code_dir.join(&req.code_hash);
        if kind.lambda.is_some() {
            return self.start_lambda(kind, req, folder).await;
        }
        let source_path = self.code_dir.join(format!("{}.src", req.code_hash));
        let source = if folder.is_dir() {
            None
        } else {
            Some(std::fs::read_to_string(&source_path).map_err(|e| {
                Exit::Internal(format!("the action's code is not on this invoker: {e}"))
            })?)
        };
        let network = self.config.network_namespaces.contains(&req.namespace);
        let stem = if source.is_some() && !network {
            let mut st = lock(&self.state);
            let stem = st.stems.get_mut(&kind.name).and_then(Vec::pop);
            st.stem_demand
                .entry(kind.name.clone())
                .or_default()
                .push(Instant::now());
            drop(st);
            // Another one starts now, not at the next round.
            self.top_up_stems();
            // A stem that cannot be given the action's limit (it already uses more) is
            // not used.
            stem.filter(|s| {
                s.cgroup
                    .as_ref()
                    .is_none_or(|c| c.set_memory(memory).is_ok())
            })
        } else {
            None
        };
        let mut how = if stem.is_some() { "prewarmed" } else { "cold" };
        let began = Instant::now();
        let instance = match stem {
            Some(mut i) => {
                i.memory = memory;
                i
            }
            None => {
                let code = if source.is_none() { Some(folder) } else { None };
                let i = self
                    .spawn_instance(kind, memory, code, network, None)
                    .await
                    .map_err(|e| Exit::Internal(format!("cannot start a sandbox: {e}")))?;
                if i.is_forked() {
                    how = "forked";
                }
                i
            }
        };
        if kind.family == Family::Native {
            return Ok((instance, Vec::new(), how));
        }
        let init = InitLine {
            concurrency,
            code: source.as_deref(),
            dir: if source.is_none() {
                Some("/action")
            } else {
                None
            },
            main: req.main.as_deref().unwrap_or("main"),
            env: req
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        };
        let mut line = serde_json::to_vec(&init).unwrap_or_default();
        line.push(b'\n');
        let deadline = tokio::time::Instant::now() + req.timeout;
        let spawned = began.elapsed();
        let outcome = instance
            .exchange(|_| line, deadline, req.log_limit, req.result_limit)
            .await;
        tracing::debug!(
            action = %req.action,
            how,
            spawn_ms = spawned.as_secs_f64() * 1000.0,
            init_ms = (began.elapsed() - spawned).as_secs_f64() * 1000.0,
            "instance started"
        );
        let (mut instance, logs) = ready(instance, outcome, Exit::Timeout, "").await?;
        // From now on it runs `concurrency` activations at once.
        instance.set_concurrency(concurrency);
        Ok((instance, logs, how))
    }

    /// A new sandbox; with `lambda_env`, a Lambda function's (its Runtime API listening, the
    /// environment added).
    async fn spawn_instance(
        &self,
        kind: &Kind,
        memory: u64,
        code: Option<PathBuf>,
        network: bool,
        lambda_env: Option<Vec<(String, String)>>,
    ) -> Result<Instance, String> {
        if kind.family == Family::Python
            && kind.lambda.is_none()
            && code.is_none()
            && !network
            && lambda_env.is_none()
        {
            let z = lock(&self.state).zygotes.get(&kind.name).cloned();
            if let Some(z) = z.filter(|z| z.usable()) {
                match self.fork_instance(&z, kind, memory).await {
                    Ok(i) => return Ok(i),
                    Err(e) => {
                        tracing::warn!(kind = %kind.name, error = %e, "cannot fork an instance; starting one")
                    }
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let count = self.config.uid_count.max(1);
        let lease = UidLease::take(&self.uids, count)?;
        let n = lease.n;
        let (host_id, setup_id) = (self.config.first_uid + n, self.config.first_uid + count + n);
        let cgroup = match &self.cgroups {
            Some(c) => Some(
                c.create(&format!("i{id}"), memory, 256, 1024 * memory / (256 * MB))
                    .map_err(|e| format!("cgroup: {e}"))?,
            ),
            None => None,
        };
        let mut spec = self.spec(kind, code, network, host_id, setup_id)?;
        // A Lambda function's Runtime API: inside its own network namespace, or (granted the
        // host's network) on a free loopback port only its uid is served on.
        let mut host_api = None;
        if let Some(env) = lambda_env {
            let address = if network {
                let l = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|e| format!("cannot open the Runtime API: {e}"))?;
                let a = l.local_addr().map_err(|e| e.to_string())?.to_string();
                host_api = Some(l);
                a
            } else {
                spec.runtime_api = true;
                sandbox::RUNTIME_API.to_string()
            };
            spec.env.push(("AWS_LAMBDA_RUNTIME_API".into(), address));
            spec.env.extend(env);
        }
        let started = self.spawner.spawn(spec, cgroup.as_ref()).await;
        let started = match started {
            Ok(mut s) => {
                let peer_uid = host_api.as_ref().map(|_| host_id);
                if host_api.is_some() {
                    s.runtime_api = host_api;
                }
                (s, peer_uid)
            }
            Err(e) => {
                if let Some(c) = cgroup {
                    tokio::task::spawn_blocking(move || c.remove());
                }
                return Err(e);
            }
        };
        // On failure the instance's parts are dropped: its process killed and reaped, its
        // group removed.
        let (started, peer_uid) = started;
        Instance::new(
            id,
            kind.family,
            started,
            cgroup,
            memory,
            lease,
            Parent::Sandbox { peer_uid },
        )
        .map_err(|e| e.to_string())
    }

    fn spec(
        &self,
        kind: &Kind,
        code: Option<PathBuf>,
        network: bool,
        host_id: u32,
        setup_id: u32,
    ) -> Result<Spec, String> {
        let mut binds: Vec<PathBuf> = [
            "/usr",
            "/bin",
            "/sbin",
            "/lib",
            "/lib64",
            "/lib32",
            "/etc/ld.so.cache",
            "/etc/localtime",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        if network {
            binds.extend(
                [
                    "/etc/resolv.conf",
                    "/etc/hosts",
                    "/etc/ssl",
                    "/etc/nsswitch.conf",
                ]
                .map(PathBuf::from),
            );
        }
        // An interpreter installed elsewhere (pyenv, nvm): its whole prefix.
        if let Some(interp) = &kind.interpreter
            && let Some(prefix) = interp.parent().and_then(|p| p.parent())
            && !binds.iter().any(|b| prefix.starts_with(b))
        {
            binds.push(prefix.to_path_buf());
        }
        let mut env = vec![
            (
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            ),
            ("HOME".to_string(), "/tmp".to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ];
        let argv = match (kind.lambda, kind.family, &kind.interpreter) {
            (Some(_), Family::Node, Some(node)) => {
                env.push(("UV_USE_IO_URING".into(), "0".into()));
                vec![
                    node.to_string_lossy().to_string(),
                    "-e".into(),
                    LAMBDA_JS.into(),
                ]
            }
            (Some(_), Family::Python, Some(python)) => {
                env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
                env.push(("PYTHONUNBUFFERED".into(), "1".into()));
                vec![
                    python.to_string_lossy().to_string(),
                    "-c".into(),
                    LAMBDA_PY.into(),
                ]
            }
            (Some(_), Family::Native, _) => vec!["/action/bootstrap".to_string()],
            (None, Family::Node, Some(node)) => {
                env.push(("UV_USE_IO_URING".into(), "0".into()));
                vec![
                    node.to_string_lossy().to_string(),
                    "-e".into(),
                    LAUNCHER_JS.into(),
                ]
            }
            (None, Family::Python, Some(python)) => {
                env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
                vec![
                    python.to_string_lossy().to_string(),
                    "-I".into(),
                    "-c".into(),
                    LAUNCHER_PY.into(),
                ]
            }
            (None, Family::Native, _) => vec!["/action/exec".to_string()],
            _ => return Err(format!("kind {} has no interpreter", kind.name)),
        };
        let cwd = if code.is_some() { "/action" } else { "/tmp" };
        Ok(Spec {
            argv,
            env,
            binds,
            files: vec![
                (
                    "/etc/passwd".into(),
                    b"root:x:0:0::/:/sbin/nologin\ngust:x:1000:1000::/tmp:/sbin/nologin\n".to_vec(),
                ),
                ("/etc/group".into(), b"root:x:0:\ngust:x:1000:\n".to_vec()),
                ("/etc/hostname".into(), b"gust\n".to_vec()),
            ],
            code,
            tmp_bytes: TMP_BYTES,
            network,
            runtime_api: false,
            host_id,
            setup_id,
            root: self.root_dir.clone(),
            max_files: 1024,
            max_file_size: TMP_BYTES,
            // RLIMIT_NPROC counts every process of a host uid, and servers on one host hand
            // out the same uids: with cgroups, the pids controller limits each instance
            // instead (256), so one tenant's fork bomb cannot starve another's instance.
            max_processes: if self.cgroups.is_some() {
                libc::RLIM_INFINITY
            } else {
                256
            },
            cwd: cwd.to_string(),
            zygote: None,
        })
    }
}

/// Raises this process's soft limit of open files to its hard limit: each instance holds
/// seven descriptors (its pipes, their probes, its pidfd), and a thousand idle instances are
/// the point.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Host uid pairs in use: each live instance has its own, so no two share a kernel's per-uid
/// counts (inotify instances, message queues...).
#[derive(Debug, Default)]
struct UidPool {
    free: Vec<u32>,
    next: u32,
}

/// One instance's uid pair (an index into the range); given back when dropped, which its
/// instance does once its process is reaped.
#[derive(Debug)]
pub(crate) struct UidLease {
    n: u32,
    pool: Arc<Mutex<UidPool>>,
}

impl UidLease {
    fn take(pool: &Arc<Mutex<UidPool>>, count: u32) -> Result<UidLease, String> {
        let mut p = lock(pool);
        let n = match p.free.pop() {
            Some(n) => n,
            None if p.next < count => {
                p.next += 1;
                p.next - 1
            }
            None => return Err(format!("all {count} host uids are in use")),
        };
        Ok(UidLease {
            n,
            pool: pool.clone(),
        })
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        lock(&self.pool).free.push(self.n);
    }
}

/// Activations one instance of `kind` runs at once for `req` (a Lambda function's instance
/// runs one event at a time, as Lambda's do).
fn concurrency(kind: &Kind, req: &ProcessRun) -> usize {
    if kind.family == Family::Node && kind.lambda.is_none() {
        req.concurrency.max(1) as usize
    } else {
        1
    }
}

/// How the start of `instance` ended (`outcome`: its first exchange, answered `{"ok": true}`
/// when it is ready): the instance and its logs, or why not. `timeout` is the failure of a
/// start that took too long; `ended` begins the reason of one whose process ended.
async fn ready(
    instance: Instance,
    outcome: Outcome,
    timeout: Exit,
    ended: &str,
) -> Result<(Instance, Vec<String>), Failed> {
    let Outcome {
        reply,
        logs,
        memory_mark,
        ..
    } = outcome;
    let exit = match reply {
        Reply::Line(kept, _) => match serde_json::from_slice::<serde_json::Value>(&kept) {
            Ok(v) if v.get("ok") == Some(&serde_json::Value::Bool(true)) => {
                return Ok((instance, logs));
            }
            Ok(v) => Exit::Init(
                v.get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("the launcher refused the code")
                    .to_string(),
            ),
            Err(_) => Exit::Init("the launcher answered something that is not JSON".into()),
        },
        Reply::Timeout => timeout,
        Reply::Exited => {
            instance.kill();
            let how = instance.exited().await;
            if instance.out_of_memory(memory_mark) {
                Exit::OutOfMemory
            } else {
                Exit::Init(format!("{ended}{how}"))
            }
        }
    };
    Err(Failed { exit, logs })
}

/// A start that failed: why, and what the instance logged meanwhile.
struct Failed {
    exit: Exit,
    logs: Vec<String>,
}

impl From<Exit> for Failed {
    fn from(exit: Exit) -> Failed {
        Failed {
            exit,
            logs: Vec::new(),
        }
    }
}

enum Acquired {
    Warm(Arc<Instance>),
    /// Start one, counted at this many bytes until it runs.
    Start(u64),
    Wait(Arc<Notify>),
    Full(String),
}

#[derive(serde::Serialize)]
struct InitLine<'a> {
    concurrency: usize,
    code: Option<&'a str>,
    dir: Option<&'a str>,
    main: &'a str,
    env: HashMap<&'a str, &'a str>,
}

#[derive(serde::Serialize)]
struct RunLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    value: &'a RawValue,
    env: HashMap<&'a str, &'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_pairs_are_never_shared_by_live_instances_and_come_back() {
        let pool = Arc::new(Mutex::new(UidPool::default()));
        let a = UidLease::take(&pool, 2).unwrap();
        let b = UidLease::take(&pool, 2).unwrap();
        assert_ne!(a.n, b.n);
        let e = UidLease::take(&pool, 2).unwrap_err();
        assert!(e.contains("all 2 host uids are in use"), "{e}");
        let freed = a.n;
        drop(a);
        assert_eq!(UidLease::take(&pool, 2).unwrap().n, freed);
    }
}
