//! What one activation runs inside, for commands and HTTP handlers alike: its inputs
//! ([`RunRequest`]), the per-store state with its memory, table and host-resource caps, a WASI
//! context with no sockets, no preopened directories and no host environment, outgoing HTTP
//! refused, the compiled code a run starts from, and the classification of how a run ended. It
//! imports no other module of the crate but `pipes`; `command`, `http` and `runtime` import it.

use std::future::Future;
use std::time::Duration;

use gust_model::run::Exit;
use wasmtime::component::ResourceTable;
use wasmtime::{InstancePre, ResourceLimiter};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::pipes::{CappedPipe, LogPipe};

/// Code compiled and linked, ready to instantiate: what every run starts from.
pub(crate) enum Compiled {
    Module(InstancePre<ModuleState>),
    Component(CommandPre<ComponentState>),
    /// A wasi:http handler (exports `wasi:http/incoming-handler`).
    Http(ProxyPre<ComponentState>),
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
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: Limiter,
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

/// Outgoing HTTP from a function is refused, like its sockets.
pub(crate) struct NoOutgoing;

type Sent = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

impl WasiHttpHooks for NoOutgoing {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Sent,
    ) -> Box<dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, Sent)>> + Send>
    {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

pub(crate) fn wasi_ctx(req: &RunRequest, stdout: &CappedPipe, stderr: &LogPipe) -> WasiCtxBuilder {
    let mut b = WasiCtxBuilder::new();
    b.stdin(MemoryInputPipe::new(req.input.clone()))
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .args(&[&req.program])
        .envs(&req.env);
    without_network(b)
}

/// `b` with every socket refused: no TCP, no UDP, no name lookups.
pub(crate) fn without_network(mut b: WasiCtxBuilder) -> WasiCtxBuilder {
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    b
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
