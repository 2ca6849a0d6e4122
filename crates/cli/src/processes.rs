//! Flags for Node.js, Python and native actions, shared by `gust serve` and the scale-out
//! roles.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use gust_runtime_process::kinds::Kinds;
use gust_runtime_process::{ProcessConfig, ProcessRuntime};

#[derive(Debug, Clone, clap::Args)]
pub struct ProcessArgs {
    /// A process runtime to offer, repeatable: `nodejs=/usr/bin/node`,
    /// `python=/usr/bin/python3.11`, `native`. Default: Node.js and Python from
    /// /usr/local/bin or /usr/bin, and native.
    #[arg(long = "runtime", value_name = "FAMILY[=INTERPRETER]")]
    runtimes: Vec<String>,
    /// Run no Node.js, Python or native actions.
    #[arg(long)]
    no_process_runtimes: bool,
    /// Memory all process instances together may use, in MB, counted by what they really
    /// use (each keeps its action's `limits.memory` as its hard limit); at most, and by
    /// default, the host's memory less --memory-reserve.
    #[arg(long, env = "GUST_PROCESS_MEMORY", value_name = "MB")]
    process_memory: Option<u64>,
    /// Memory the process instances of one namespace may use together, in MB
    /// (default: the whole --process-memory).
    #[arg(long, value_name = "MB")]
    namespace_process_memory: Option<u64>,
    /// What a busy instance may grow by beyond what it used when it was taken, in MB: it is
    /// admitted counting that much more.
    #[arg(long, value_name = "MB", default_value_t = 64)]
    instance_headroom: u64,
    /// Host memory to keep available, in MB: below it idle instances are stopped, least
    /// recently used first (default: a twentieth of the host, within 128..1024).
    #[arg(long, value_name = "MB")]
    memory_reserve: Option<u64>,
    /// Start every new Python instance as a process of its own instead of forking it from
    /// the kind's zygote (a Python process with the standard library loaded).
    #[arg(long)]
    no_zygotes: bool,
    /// Prewarmed processes kept per Node.js and Python kind (more while they are taken
    /// quickly).
    #[arg(long, env = "GUST_STEM_CELLS", default_value_t = 1)]
    stem_cells: usize,
    /// Freeze an idle instance after this many milliseconds.
    #[arg(long, default_value_t = 500)]
    freeze_after_ms: u64,
    /// Stop an idle instance after this many seconds (scale to zero).
    #[arg(long, default_value_t = 600)]
    idle_timeout_secs: u64,
    /// Instances of one action at most, unless its `limits.instances` says otherwise.
    #[arg(long, default_value_t = 32)]
    max_instances: usize,
    /// New instances per second per action (default: no limit).
    #[arg(long, value_name = "PER_SECOND")]
    scale_out_rate: Option<f64>,
    /// Milliseconds an invocation waits for a busy instance to come free before another
    /// instance is started.
    #[arg(long, default_value_t = 20)]
    scale_out_delay_ms: u64,
    /// Invocations of one action that may wait for a busy instance; past it they fail.
    #[arg(long, default_value_t = 1000)]
    instance_queue: usize,
    /// A namespace whose process actions keep the host's network (repeatable); the others
    /// have none.
    #[arg(long = "network-namespace", value_name = "NAMESPACE")]
    network_namespaces: Vec<String>,
    /// Run process instances even where there are no cgroups to hold them: no memory, pids
    /// or CPU limit (a trusted single-user machine only).
    #[arg(long)]
    processes_without_cgroups: bool,
}

impl ProcessArgs {
    /// The kinds offered here.
    pub fn kinds(&self) -> Result<Kinds> {
        if self.no_process_runtimes {
            return Ok(Kinds::none());
        }
        if self.runtimes.is_empty() {
            return Ok(Kinds::detect());
        }
        Kinds::from_specs(&self.runtimes).map_err(|e| anyhow!(e))
    }

    /// The kinds this invoker runs and its process pool (files under `dir`); none if no kind
    /// is offered. Where sandboxes cannot be made (not root, no cgroups) the default kinds
    /// are dropped with a warning; kinds asked for by `--runtime` make it an error.
    pub fn runtime(&self, dir: &Path) -> Result<(Kinds, Option<Arc<ProcessRuntime>>)> {
        let kinds = self.kinds()?;
        if kinds.all().is_empty() {
            return Ok((kinds, None));
        }
        let mut config = ProcessConfig::new(kinds, dir.to_path_buf());
        let mb = |n: u64| n.saturating_mul(1024 * 1024);
        config.memory_budget = self.process_memory.map_or(u64::MAX, mb);
        config.namespace_memory = self
            .namespace_process_memory
            .map_or(u64::MAX, mb)
            .min(config.memory_budget);
        config.headroom = self.instance_headroom * 1024 * 1024;
        config.memory_reserve = self.memory_reserve.map(|mb| mb * 1024 * 1024);
        config.stem_cells = self.stem_cells;
        config.zygotes = !self.no_zygotes;
        config.freeze_after = Duration::from_millis(self.freeze_after_ms);
        config.evict_after = Duration::from_secs(self.idle_timeout_secs);
        config.max_instances = self.max_instances.max(1);
        config.scale_out_per_sec = self.scale_out_rate.filter(|r| *r > 0.0);
        config.scale_out_delay = Duration::from_millis(self.scale_out_delay_ms);
        config.queue = self.instance_queue;
        config.network_namespaces = self.network_namespaces.clone();
        config.without_cgroups = self.processes_without_cgroups;
        match ProcessRuntime::new(config.clone()) {
            Ok(rt) => Ok((config.kinds, Some(rt))),
            Err(e) if self.runtimes.is_empty() => {
                eprintln!("gust: no Node.js, Python or native actions here: {e}");
                Ok((Kinds::none(), None))
            }
            Err(e) => Err(anyhow!("cannot start the process runtime: {e}")),
        }
    }
}
