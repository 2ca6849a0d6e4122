//! Gust's narrow view of wasmtime: one engine configured in one place ([`engine`]), compile
//! and cache ([`WasmRuntime::compile`]), and run one activation in a fresh instance
//! ([`WasmRuntime::run`]) with the ABI of the platform: parameters as one JSON object on stdin,
//! the result as one JSON object on stdout, every stderr line a log line, `__OW_*` variables in
//! the environment, no preopened directories, no sockets, no host environment.
//!
//! Both WASI preview 1 command modules and WASI preview 2 command components run, and
//! components that export `wasi:http/incoming-handler` answer HTTP requests ([`http`]).
//!
//! **Invariant:** nothing survives from one activation to the next: each gets a new store, a
//! new instance and new pipes; only the compiled code is shared.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod command;
mod engine;
mod http;
mod pipes;
mod runtime;
mod sandbox;

pub use engine::{EngineLimits, MAX_CONCURRENT};
pub use gust_model::run::{Exit, RunOutput};
pub use http::{HttpDone, HttpResponse, HttpRun, HttpServed};
pub use runtime::{CompileError, WasmRuntime, code_hash};
pub use sandbox::RunRequest;
/// The HTTP types handlers speak (re-exported so callers name the same versions).
pub use {http_body, hyper};
