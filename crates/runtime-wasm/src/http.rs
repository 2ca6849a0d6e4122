//! wasi:http handlers: a component that exports `wasi:http/incoming-handler` answers an HTTP
//! request itself, request and response bodies streamed, as under `wasmtime serve`. The same
//! sandbox as every run: a fresh instance, the memory cap, the time limit, no sockets, and
//! outgoing HTTP requests refused.
//!
//! Invoked with JSON instead (the REST API, a sequence, a trigger), a handler gets a
//! `POST /` whose body is the parameters and answers with the result as its body.
//!
//! Imports `sandbox` and `pipes`, never `command`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::engine::Slots;
use crate::pipes::LogPipe;
use crate::sandbox::{ComponentState, Limiter, RunRequest, classify, without_network};
use gust_model::run::{Exit, RunOutput};

/// A handler's response: status and headers now, the body as the guest writes it.
pub type HttpResponse = hyper::Response<HyperOutgoingBody>;

/// One HTTP request's limits and environment.
#[derive(Debug, Clone)]
pub struct HttpRun {
    /// `__OW_*` and the action's `init` parameters.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// Cap on linear memory, in bytes.
    pub memory_limit: u64,
    /// Cap on log line bytes (stdout and stderr lines both are logs).
    pub log_limit: u64,
}

/// How a handler's run ended: once it returned (its response body written) or was stopped.
#[derive(Debug, Clone)]
pub struct HttpDone {
    pub exit: Exit,
    pub logs: Vec<String>,
    pub logs_truncated: bool,
    pub init_time: Duration,
}

/// A request handed to a handler: its response (or why there is none) and the run, which
/// may go on after the response head while the body streams.
pub struct HttpServed {
    pub response: Result<HttpResponse, String>,
    pub done: tokio::task::JoinHandle<HttpDone>,
}

impl HttpServed {
    /// A request that never reached a handler: `exit` says why.
    pub(crate) fn failed(exit: Exit) -> Self {
        HttpServed {
            response: Err(match &exit {
                Exit::Internal(why) => why.clone(),
                other => format!("{other:?}"),
            }),
            done: tokio::spawn(async move {
                HttpDone {
                    exit,
                    logs: Vec::new(),
                    logs_truncated: false,
                    init_time: Duration::ZERO,
                }
            }),
        }
    }
}

/// Hands `req` to the handler `pre` in a fresh instance.
pub(crate) async fn serve<B>(
    engine: &Engine,
    slots: &Arc<Slots>,
    pre: ProxyPre<ComponentState>,
    run: HttpRun,
    req: hyper::Request<B>,
) -> HttpServed
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    let started = Instant::now();
    let logs = LogPipe::new(run.log_limit);
    let mut ctx = WasiCtxBuilder::new();
    ctx.stdout(logs.clone()).stderr(logs.clone()).envs(&run.env);
    let ctx = without_network(ctx).build();
    let limiter = Limiter::new(usize::try_from(run.memory_limit).unwrap_or(usize::MAX));
    let mut store = Store::new(engine, ComponentState::new(ctx, limiter));
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_async_yield_and_update(1);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req =
        req.map(|b| b.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string()))));
    let resources = (|| -> wasmtime::Result<_> {
        let mut view = store.data_mut().http();
        let request = view.new_incoming_request(Scheme::Http, req)?;
        let out = view.new_response_outparam(tx)?;
        Ok((request, out))
    })();
    let (request, out) = match resources {
        Ok(r) => r,
        Err(e) => {
            return HttpServed::failed(Exit::Internal(format!(
                "the request cannot be handed over: {e:#}"
            )));
        }
    };
    let slots = slots.clone();
    let done = tokio::spawn(async move {
        let Some(_slot) = slots.acquire().await else {
            return HttpDone {
                exit: Exit::Internal("the runtime is shutting down".into()),
                logs: Vec::new(),
                logs_truncated: false,
                init_time: Duration::ZERO,
            };
        };
        let mut init_time = Duration::ZERO;
        let call = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            init_time = started.elapsed();
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, out)
                .await
        };
        let out = tokio::time::timeout(run.timeout, call).await;
        let refused = store.data().limiter.refused;
        drop(store);
        let (logs, logs_truncated) = logs.finish();
        HttpDone {
            exit: classify(out, refused),
            logs,
            logs_truncated,
            init_time,
        }
    });
    let response = match rx.await {
        Ok(Ok(res)) => Ok(res),
        Ok(Err(code)) => Err(format!("the handler answered with an error: {code:?}")),
        Err(_) => Err("the handler ended without a response".into()),
    };
    HttpServed { response, done }
}

/// Runs a handler for a JSON invocation: `POST /` with the parameters as its body; the
/// response body is the result (read up to the result limit).
pub(crate) async fn run_json(
    engine: &Engine,
    slots: &Arc<Slots>,
    pre: ProxyPre<ComponentState>,
    req: RunRequest,
) -> RunOutput {
    let request = hyper::Request::post("http://localhost/")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(req.input)));
    let request = match request {
        Ok(r) => r,
        Err(e) => return RunOutput::failed(Exit::Internal(e.to_string())),
    };
    let run = HttpRun {
        env: req.env,
        timeout: req.timeout,
        memory_limit: req.memory_limit,
        log_limit: req.log_limit,
    };
    let served = serve(engine, slots, pre, run, request).await;
    let (stdout, stdout_len) = match served.response {
        Ok(res) => {
            let cap = req.result_limit;
            match Limited::new(res.into_body(), cap as usize).collect().await {
                Ok(body) => {
                    let bytes = body.to_bytes().to_vec();
                    let len = bytes.len() as u64;
                    (bytes, len)
                }
                // Over the limit (or cut off): counted as too long, or left empty.
                Err(e) if e.is::<http_body_util::LengthLimitError>() => (Vec::new(), cap + 1),
                Err(_) => (Vec::new(), 0),
            }
        }
        Err(_) => (Vec::new(), 0),
    };
    let done = match served.done.await {
        Ok(d) => d,
        Err(e) => HttpDone {
            exit: Exit::Internal(format!("the handler's task failed: {e}")),
            logs: Vec::new(),
            logs_truncated: false,
            init_time: Duration::ZERO,
        },
    };
    RunOutput {
        exit: done.exit,
        stdout,
        stdout_len,
        logs: done.logs,
        logs_truncated: done.logs_truncated,
        init_time: done.init_time,
        start: None,
    }
}
