//! The runtime: compiles code ahead of time and caches it (in memory, the `MAX_LOADED`
//! programs used most lately, and on disk), and the entry points that hand a run to `command` or `http`. The
//! top of the crate: it imports `command`, `http` and `sandbox`; none of them imports it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gust_model::run::{Exit, RunOutput};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Linker, Module};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::command;
use crate::engine::{self, EngineLimits, Slots};
use crate::http::{self, HttpRun, HttpServed};
use crate::sandbox::{Compiled, ComponentState, ModuleState, RunRequest};

/// Compiled programs kept in memory at once (those used most lately: quick_cache's
/// CLOCK-Pro); others are reloaded from the disk cache. Each holds a mapping of its code.
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

/// Hex SHA-256 of the code: the key of its compiled artifact.
pub fn code_hash(code: &[u8]) -> String {
    let digest = Sha256::digest(code);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The Wasm runtime of one invoker (or of a controller checking code at create time).
pub struct WasmRuntime {
    pub(crate) engine: Engine,
    modules: Linker<ModuleState>,
    components: wasmtime::component::Linker<ComponentState>,
    cache_dir: PathBuf,
    compiled: quick_cache::sync::Cache<String, Arc<Compiled>>,
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
            compiled: quick_cache::sync::Cache::new(MAX_LOADED),
            compiling: Mutex::new(()),
            slots,
        })
    }

    fn artifact_path(&self, hash: &str) -> PathBuf {
        self.cache_dir.join(format!("{hash}.cwasm"))
    }

    fn cached(&self, hash: &str) -> Option<Arc<Compiled>> {
        self.compiled.get(hash)
    }

    fn remember(&self, hash: &str, compiled: Compiled) {
        // One not used lately makes room; it is reloaded from the disk cache when next
        // needed.
        self.compiled.insert(hash.to_string(), Arc::new(compiled));
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
                if let Some(hash) = name.strip_suffix(".cwasm") {
                    self.compiled.remove(hash);
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

    /// Activations and wasi:http requests running in this runtime now (each in a fresh
    /// instance), for the `gust_instances` gauge.
    pub fn running(&self) -> usize {
        self.slots.held()
    }

    /// Runs one activation of the code `hash` in a fresh instance. The code must have been
    /// compiled or loaded; if it is not in memory this tries the disk cache. A wasi:http
    /// handler gets the parameters as a `POST /` and answers with the result as its body.
    pub async fn run(&self, hash: &str, req: RunRequest) -> RunOutput {
        let compiled = match self.compiled(hash) {
            Ok(c) => c,
            Err(exit) => return RunOutput::failed(exit),
        };
        match &*compiled {
            Compiled::Http(pre) => {
                http::run_json(&self.engine, &self.slots, pre.clone(), req).await
            }
            _ => command::run(&self.engine, &self.slots, &compiled, req).await,
        }
    }

    /// Whether the compiled code `hash` is a wasi:http handler (loading it if needed).
    pub fn is_http_handler(&self, hash: &str) -> bool {
        matches!(self.compiled(hash).as_deref(), Ok(Compiled::Http(_)))
    }

    /// Hands `req` to the handler `hash` in a fresh instance. The request's URI must carry
    /// an authority or the request a `Host` header.
    pub async fn serve_http<B>(
        &self,
        hash: &str,
        run: HttpRun,
        req: hyper::Request<B>,
    ) -> HttpServed
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let compiled = match self.compiled(hash) {
            Ok(c) => c,
            Err(exit) => return HttpServed::failed(exit),
        };
        let Compiled::Http(pre) = &*compiled else {
            return HttpServed::failed(Exit::Internal(
                "the code is not a wasi:http handler".into(),
            ));
        };
        http::serve(&self.engine, &self.slots, pre.clone(), run, req).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
