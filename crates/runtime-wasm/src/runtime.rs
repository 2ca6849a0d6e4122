//! Compile, cache and run.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use gust_model::run::{Exit, RunOutput};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Engine, InstancePre, Linker, Module, ResourceLimiter, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine::{self, EngineLimits, Slots};
use crate::http::NoOutgoing;
use crate::pipes::{CappedPipe, LogPipe};

/// Compiled programs kept in memory at once; others are reloaded from the disk cache.
const MAX_LOADED: usize = 1024;

/// Why code was refused or could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The user's code is not a module or component Gust can run; the text is the reason.
    #[error("{0}")]
    Invalid(String),
    /// The compiled-code cache could not be written or read (host).
    #[error("compiled-code cache: {0}")]
    Cache(String),
}

/// One activation's inputs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The parameters, one JSON object, given on stdin.
    pub input: Vec<u8>,
    /// The environment: `__OW_*` and the action's `init` parameters. Nothing else.
    pub env: Vec<(String, String)>,
    /// `argv[0]`.
    pub program: String,
    pub timeout: Duration,
    /// Cap on linear memory, in bytes.
    pub memory_limit: u64,
    /// Cap on log line bytes.
    pub log_limit: u64,
    /// Cap on stdout bytes kept; the total written is still counted.
    pub result_limit: u64,
}

/// Hex SHA-256 of the code: the key of its compiled artifact.
pub fn code_hash(code: &[u8]) -> String {
    let digest = Sha256::digest(code);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub(crate) enum Compiled {
    Module(InstancePre<ModuleState>),
    Component(CommandPre<ComponentState>),
    /// A wasi:http handler (exports `wasi:http/incoming-handler`).
    Http(ProxyPre<ComponentState>),
}

/// Per-store memory and table cap; remembers whether it refused growth so a trap that
/// follows is reported as memory exhaustion. The memory cap is on the total of all the
/// store's linear memories.
pub(crate) struct Limiter {
    memory: usize,
    used: usize,
    pub(crate) refused: bool,
}

impl Limiter {
    pub(crate) fn new(memory: usize) -> Self {
        Limiter {
            memory,
            used: 0,
            refused: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.used - current.min(self.used)).saturating_add(desired);
        if total > self.memory {
            self.refused = true;
            return Ok(false);
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

pub(crate) struct ModuleState {
    wasi: WasiP1Ctx,
    limiter: Limiter,
}

/// Most host resources (streams, HTTP fields, requests...) one component instance may hold.
const MAX_RESOURCES: usize = 10_000;
/// Largest HTTP header field a component may build, in bytes.
const MAX_FIELD_SIZE: usize = 16 * 1024;

pub(crate) struct ComponentState {
    ctx: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    http: WasiHttpCtx,
    hooks: NoOutgoing,
}

impl ComponentState {
    pub(crate) fn new(ctx: WasiCtx, limiter: Limiter) -> Self {
        // Host resources are memory the linear-memory limiter does not see: a guest gets a
        // bounded number of them, and small HTTP header fields.
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_FIELD_SIZE);
        ComponentState {
            ctx,
            table,
            limiter,
            http,
            hooks: NoOutgoing,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// The Wasm runtime of one invoker (or of a controller checking code at create time).
pub struct WasmRuntime {
    pub(crate) engine: Engine,
    modules: Linker<ModuleState>,
    components: wasmtime::component::Linker<ComponentState>,
    cache_dir: PathBuf,
    compiled: RwLock<HashMap<String, Arc<Compiled>>>,
    compiling: Mutex<()>,
    pub(crate) slots: Arc<Slots>,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime")
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

fn invalid(e: wasmtime::Error) -> CompileError {
    CompileError::Invalid(format!("{e:#}"))
}

fn is_component(code: &[u8]) -> bool {
    // A component's preamble has layer 1 in bytes 6..8; a core module has version 1.
    code.len() >= 8 && code[..4] == *b"\0asm" && code[6..8] == [1, 0]
}

fn wasi_ctx(req: &RunRequest, stdout: &CappedPipe, stderr: &LogPipe) -> WasiCtxBuilder {
    let mut b = WasiCtxBuilder::new();
    b.stdin(MemoryInputPipe::new(req.input.clone()))
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .args(&[&req.program])
        .envs(&req.env)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    b
}

impl WasmRuntime {
    /// A runtime whose compiled artifacts are cached in `cache_dir`.
    pub fn new(cache_dir: impl AsRef<Path>, limits: EngineLimits) -> Result<Self, CompileError> {
        let cache_dir = cache_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&cache_dir)
            .map_err(|e| CompileError::Cache(format!("{}: {e}", cache_dir.display())))?;
        let (engine, slots) =
            engine::build(limits).map_err(|e| CompileError::Cache(e.to_string()))?;
        let mut modules = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut modules, |s: &mut ModuleState| &mut s.wasi)
            .map_err(|e| CompileError::Cache(e.to_string()))?;
        let mut components = wasmtime::component::Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut components)
            .map_err(|e| CompileError::Cache(e.to_string()))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut components)
            .map_err(|e| CompileError::Cache(e.to_string()))?;
        Ok(WasmRuntime {
            engine,
            modules,
            components,
            cache_dir,
            compiled: RwLock::new(HashMap::new()),
            compiling: Mutex::new(()),
            slots,
        })
    }

    fn artifact_path(&self, hash: &str) -> PathBuf {
        self.cache_dir.join(format!("{hash}.cwasm"))
    }

    fn cached(&self, hash: &str) -> Option<Arc<Compiled>> {
        self.compiled.read().ok()?.get(hash).cloned()
    }

    fn remember(&self, hash: &str, compiled: Compiled) {
        if let Ok(mut map) = self.compiled.write() {
            if map.len() >= MAX_LOADED {
                // Forget one at random; it is reloaded from the disk cache when next needed.
                if let Some(victim) = map.keys().next().cloned() {
                    map.remove(&victim);
                }
            }
            map.insert(hash.to_string(), Arc::new(compiled));
        }
    }

    /// Pre-links a compiled module: resolves every import against WASI now, so a module
    /// asking for something Gust does not provide is refused before it is stored.
    fn link_module(&self, m: &Module) -> Result<Compiled, CompileError> {
        match m.get_export("_start") {
            Some(wasmtime::ExternType::Func(f))
                if f.params().len() == 0 && f.results().len() == 0 => {}
            _ => {
                return Err(CompileError::Invalid(
                    "the module is not a WASI command: it does not export a function `_start` taking and returning nothing".into(),
                ));
            }
        }
        let pre = self.modules.instantiate_pre(m).map_err(invalid)?;
        Ok(Compiled::Module(pre))
    }

    /// Pre-links a compiled component, which must be a wasi:http handler or a WASI command.
    fn link_component(&self, c: &Component) -> Result<Compiled, CompileError> {
        let pre = self.components.instantiate_pre(c).map_err(invalid)?;
        if let Ok(proxy) = ProxyPre::new(pre.clone()) {
            return Ok(Compiled::Http(proxy));
        }
        let pre = CommandPre::new(pre).map_err(|e| {
            CompileError::Invalid(format!(
                "the component is neither a WASI command (exporting wasi:cli/run) nor a wasi:http handler (exporting wasi:http/incoming-handler): {e:#}"
            ))
        })?;
        Ok(Compiled::Component(pre))
    }

    /// Compiles `code` (a WASI preview 1 module or preview 2 command component), checks that
    /// it can be linked, caches the artifact by content hash and returns the hash. Compiling
    /// code already in the cache costs a file read. One compilation runs at a time (Cranelift
    /// already uses every core for one), and a second request for the same code waits for
    /// the first and reuses its artifact.
    pub fn compile(&self, code: &[u8]) -> Result<String, CompileError> {
        let hash = code_hash(code);
        if self.cached(&hash).is_some() {
            return Ok(hash);
        }
        let _one_at_a_time = self.compiling.lock().unwrap_or_else(|e| e.into_inner());
        if self.cached(&hash).is_some() || self.load(&hash) {
            return Ok(hash);
        }
        if code.len() < 8 || code[..4] != *b"\0asm" {
            return Err(CompileError::Invalid(
                "the code is not a WebAssembly binary (it must start with \\0asm)".into(),
            ));
        }
        let cache_err = |e: wasmtime::Error| CompileError::Cache(e.to_string());
        let (compiled, artifact) = if is_component(code) {
            let c = Component::new(&self.engine, code).map_err(invalid)?;
            (self.link_component(&c)?, c.serialize().map_err(cache_err)?)
        } else {
            let m = Module::new(&self.engine, code).map_err(invalid)?;
            (self.link_module(&m)?, m.serialize().map_err(cache_err)?)
        };
        let path = self.artifact_path(&hash);
        // A name no other process or thread writes; the rename makes the artifact appear whole.
        static TEMP: AtomicU64 = AtomicU64::new(0);
        let tmp = self.cache_dir.join(format!(
            "{hash}.{}.{}.tmp",
            std::process::id(),
            TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&tmp, &artifact)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                CompileError::Cache(format!("{}: {e}", path.display()))
            })?;
        self.remember(&hash, compiled);
        Ok(hash)
    }

    /// Loads the artifact for `hash` from the disk cache into memory; false if it is not
    /// there or no longer matches this engine. Blocking: call it off the async workers.
    pub fn load(&self, hash: &str) -> bool {
        if self.cached(hash).is_some() {
            return true;
        }
        let path = self.artifact_path(hash);
        // The artifact's header records whether it is a component; a missing or foreign
        // file is simply not cached.
        let component = match Engine::detect_precompiled_file(&path) {
            Ok(Some(kind)) => kind == wasmtime::Precompiled::Component,
            _ => return false,
        };
        // SAFETY: artifacts are written only by `compile` into Gust's own cache directory
        // (renamed into place whole), and wasmtime checks that they match this engine.
        let linked = if component {
            unsafe { Component::deserialize_file(&self.engine, &path) }
                .map_err(|e| CompileError::Cache(e.to_string()))
                .and_then(|c| self.link_component(&c))
        } else {
            unsafe { Module::deserialize_file(&self.engine, &path) }
                .map_err(|e| CompileError::Cache(e.to_string()))
                .and_then(|m| self.link_module(&m))
        };
        match linked {
            Ok(c) => {
                self.remember(hash, c);
                true
            }
            Err(e) => {
                tracing::warn!(hash, error = %e, "cached artifact unusable; it will be recompiled");
                let _ = std::fs::remove_file(&path);
                false
            }
        }
    }

    /// Deletes the cached artifacts whose hash is not in `keep` (code no action uses any
    /// more) and temporary files left by an interrupted compilation. Returns how many files
    /// it removed.
    pub fn sweep(&self, keep: &HashSet<String>) -> usize {
        let Ok(dir) = std::fs::read_dir(&self.cache_dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in dir.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale = match name.strip_suffix(".cwasm") {
                Some(hash) => !keep.contains(hash),
                None => name.ends_with(".tmp"),
            };
            if stale && std::fs::remove_file(entry.path()).is_ok() {
                if let Some(hash) = name.strip_suffix(".cwasm")
                    && let Ok(mut map) = self.compiled.write()
                {
                    map.remove(hash);
                }
                removed += 1;
            }
        }
        removed
    }

    /// Whether `hash` is compiled and in memory.
    pub fn is_loaded(&self, hash: &str) -> bool {
        self.cached(hash).is_some()
    }

    /// Runs one activation of the code `hash` in a fresh instance. The code must have been
    /// compiled or loaded; if it is not in memory this tries the disk cache.
    pub async fn run(&self, hash: &str, req: RunRequest) -> RunOutput {
        let started = Instant::now();
        let stdout = CappedPipe::new(req.result_limit as usize);
        let stderr = LogPipe::new(req.log_limit);
        let finish = |exit: Exit, init_time: Duration| {
            let (stdout_bytes, stdout_len) = stdout.take();
            let (logs, logs_truncated) = stderr.finish();
            RunOutput {
                exit,
                stdout: stdout_bytes,
                stdout_len,
                logs,
                logs_truncated,
                init_time,
                start: None,
            }
        };
        let compiled = match self.compiled(hash) {
            Ok(c) => c,
            Err(exit) => return finish(exit, started.elapsed()),
        };
        if let Compiled::Http(_) = &*compiled {
            return self.run_http_json(hash, req).await;
        }
        let Some(_slot) = self.slots.acquire().await else {
            return finish(
                Exit::Internal("the runtime is shutting down".into()),
                started.elapsed(),
            );
        };
        let limiter = Limiter::new(usize::try_from(req.memory_limit).unwrap_or(usize::MAX));
        let deadline = req.timeout;
        let (exit, init_time) = match &*compiled {
            Compiled::Module(pre) => {
                let wasi = wasi_ctx(&req, &stdout, &stderr).build_p1();
                let mut store = Store::new(&self.engine, ModuleState { wasi, limiter });
                store.limiter(|s| &mut s.limiter);
                store.epoch_deadline_async_yield_and_update(1);
                let mut init_time = Duration::ZERO;
                let run = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    init_time = started.elapsed();
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await
                };
                let out = tokio::time::timeout(deadline, run).await;
                let refused = store.data().limiter.refused;
                (classify(out, refused), init_time)
            }
            Compiled::Component(pre) => {
                let ctx = wasi_ctx(&req, &stdout, &stderr).build();
                let state = ComponentState::new(ctx, limiter);
                let mut store = Store::new(&self.engine, state);
                store.limiter(|s| &mut s.limiter);
                store.epoch_deadline_async_yield_and_update(1);
                let mut init_time = Duration::ZERO;
                let run = async {
                    let command = pre.instantiate_async(&mut store).await?;
                    init_time = started.elapsed();
                    match command.wasi_cli_run().call_run(&mut store).await? {
                        Ok(()) => Ok(()),
                        Err(()) => Err(wasmtime::Error::new(I32Exit(1))),
                    }
                };
                let out = tokio::time::timeout(deadline, run).await;
                let refused = store.data().limiter.refused;
                (classify(out, refused), init_time)
            }
            Compiled::Http(_) => (
                Exit::Internal("a wasi:http handler runs through serve_http".into()),
                Duration::ZERO,
            ),
        };
        finish(exit, init_time)
    }

    /// The compiled code `hash`, from memory or the disk cache.
    pub(crate) fn compiled(&self, hash: &str) -> Result<Arc<Compiled>, Exit> {
        if let Some(c) = self.cached(hash) {
            return Ok(c);
        }
        if !self.load(hash) {
            return Err(Exit::Internal(format!("no compiled code for {hash}")));
        }
        self.cached(hash)
            .ok_or_else(|| Exit::Internal("compiled code vanished".into()))
    }
}

pub(crate) fn classify(
    out: Result<wasmtime::Result<()>, tokio::time::error::Elapsed>,
    memory_refused: bool,
) -> Exit {
    match out {
        Err(_) => Exit::Timeout,
        Ok(Ok(())) => Exit::Ok,
        Ok(Err(e)) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                return if exit.0 == 0 {
                    Exit::Ok
                } else {
                    Exit::Code(exit.0)
                };
            }
            if memory_refused {
                return Exit::OutOfMemory;
            }
            match e.downcast_ref::<wasmtime::Trap>() {
                Some(trap) => Exit::Trap(trap.to_string()),
                None => {
                    let msg = format!("{e:#}");
                    if msg.contains("memory") && msg.contains("limit") {
                        Exit::OutOfMemory
                    } else {
                        Exit::Trap(msg)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until(what: &str, f: impl Fn() -> bool) {
        for _ in 0..100 {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what} did not happen within 5 s");
    }

    #[test]
    fn an_idle_runtime_stops_its_epoch_and_the_next_activation_restarts_it() {
        let dir = std::env::temp_dir().join(format!("gust-ticker-{}", std::process::id()));
        let rt = Arc::new(WasmRuntime::new(&dir, EngineLimits::default()).unwrap());
        let spin = wat::parse_str(
            r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#,
        )
        .unwrap();
        let hash = rt.compile(&spin).unwrap();
        until("parking while idle", || rt.slots.parked());
        // A guest that never returns is stopped at its timeout only if the epoch advances:
        // the first activation after the pause must wake the ticker. The guest runs on a
        // thread of its own, so that a ticker that stays asleep fails the test instead of
        // blocking it forever.
        for _ in 0..2 {
            let (tx, rx) = std::sync::mpsc::channel();
            let (runtime, code) = (rt.clone(), hash.clone());
            std::thread::spawn(move || {
                let req = RunRequest {
                    input: b"{}".to_vec(),
                    env: Vec::new(),
                    program: "spin".into(),
                    timeout: Duration::from_millis(200),
                    memory_limit: 64 << 20,
                    log_limit: 1 << 20,
                    result_limit: 1 << 20,
                };
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .unwrap();
                let _ = tx.send(rt.block_on(runtime.run(&code, req)).exit);
            });
            let exit = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a spinning guest outlived its timeout: the epoch did not advance");
            assert_eq!(exit, Exit::Timeout);
            assert!(!rt.slots.parked());
            until("parking again", || rt.slots.parked());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
