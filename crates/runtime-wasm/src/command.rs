//! WASI command modules (preview 1) and command components (preview 2): the parameters on
//! stdin, the result on stdout, every stderr line a log line. Imports `sandbox` and `pipes`,
//! never `http`.

use std::time::{Duration, Instant};

use gust_model::run::{Exit, RunOutput};
use wasmtime::{Engine, Store};
use wasmtime_wasi::I32Exit;

use crate::engine::Slots;
use crate::pipes::{CappedPipe, LogPipe};
use crate::sandbox::{
    Compiled, ComponentState, Limiter, ModuleState, RunRequest, classify, wasi_ctx,
};

/// Runs one activation of `compiled` (a module or a command component) in a fresh instance.
pub(crate) async fn run(
    engine: &Engine,
    slots: &Slots,
    compiled: &Compiled,
    req: RunRequest,
) -> RunOutput {
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
    let Some(_slot) = slots.acquire().await else {
        return finish(
            Exit::Internal("the runtime is shutting down".into()),
            started.elapsed(),
        );
    };
    let limiter = Limiter::new(usize::try_from(req.memory_limit).unwrap_or(usize::MAX));
    let deadline = req.timeout;
    let (exit, init_time) = match compiled {
        Compiled::Module(pre) => {
            let wasi = wasi_ctx(&req, &stdout, &stderr).build_p1();
            let mut store = Store::new(engine, ModuleState { wasi, limiter });
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
            let mut store = Store::new(engine, state);
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
            Exit::Internal("a wasi:http handler runs through the http module".into()),
            Duration::ZERO,
        ),
    };
    finish(exit, init_time)
}
