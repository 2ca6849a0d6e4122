//! wasi:http handlers behind web actions and API routes: the request goes to the handler as
//! it came (method, path below the action, query, headers, streamed body) and its response
//! goes back as it is written. Handlers run in the process that took the request, like a
//! blocking invocation that streams; the record is written when the handler has finished.
//!
//! **Invariant:** every handler run ends with exactly one record (success with the response
//! status as its result, or the developer error that stopped it), and frees its throttle slot.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gust_model::limits::MB;
use gust_model::time::now_ms;
use gust_model::{EncodedActivation, InvocationMessage};
use gust_runtime_wasm::{HttpDone, HttpResponse, HttpRun, RunOutput, http_body, hyper};
use serde_json::json;

use crate::Resolved;
use crate::invoke::prepare_input;
use crate::{Controller, ControllerError, Identity};

/// What a handler did with a request.
pub enum HandlerOutcome {
    /// Its response, whose body streams while the handler runs on.
    Response(HttpResponse),
    /// It gave no response: why (a developer error, 502).
    Failed(String),
}

impl Controller {
    /// Hands a web request to `resolved` (a wasi:http handler), run as `who`. Returns the
    /// activation id with the outcome.
    pub async fn serve_handler<B>(
        self: &Arc<Self>,
        who: &Identity,
        resolved: &Resolved,
        req: hyper::Request<B>,
    ) -> Result<(String, HandlerOutcome), ControllerError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let action = &resolved.action;
        // Handlers take no JSON input: the action's parameters reach them only as `init`
        // environment variables (secrets opened here, just before the sandbox).
        let prepared = prepare_input(resolved, serde_json::Map::new(), false)?;
        self.ensure_compiled(action).await?;
        let mut msg = self.new_message(
            who,
            action,
            &serde_json::Map::new(),
            prepared.env,
            true,
            None,
        )?;
        msg.secrets = prepared.secrets.into_iter().filter(|s| s.init).collect();
        let (id, start) = (msg.activation_id.clone(), msg.accepted_at);
        let env = gust_invoker::open_secrets(Some(&self.keyring), &msg, start)
            .map_err(ControllerError::Internal)?
            .env;
        self.throttles.admit(&who.namespace, &who.limits, start)?;
        let run = HttpRun {
            env,
            timeout: Duration::from_millis(action.limits.timeout),
            memory_limit: action.limits.memory * MB,
            log_limit: action.limits.logs * MB,
        };
        // From the admission on, everything runs on its own task: a client that goes away
        // mid-request must not leave the run unrecorded or its throttle slot taken.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (this, hash) = (self.clone(), action.code_hash.clone());
        tokio::spawn(async move {
            let served = this.runtime.serve_http(&hash, run, req).await;
            let status = served.response.as_ref().ok().map(|r| r.status().as_u16());
            let _ = tx.send(served.response);
            let done = served.done.await.unwrap_or_else(|e| HttpDone {
                exit: gust_runtime_wasm::Exit::Internal(format!("the handler's task failed: {e}")),
                logs: Vec::new(),
                logs_truncated: false,
                init_time: Duration::ZERO,
            });
            this.record_handler(&msg, start, status, done).await;
            this.throttles.release(&msg.subject);
        });
        let response = rx
            .await
            .unwrap_or_else(|_| Err("the handler's task failed".into()));
        Ok((
            id,
            match response {
                Ok(r) => HandlerOutcome::Response(r),
                Err(why) => HandlerOutcome::Failed(format!(
                    "The action did not produce a valid response: {why}"
                )),
            },
        ))
    }

    /// Makes sure the handler's code is compiled on this host (a controller of a cluster may
    /// not have compiled it).
    async fn ensure_compiled(&self, action: &gust_model::Action) -> Result<(), ControllerError> {
        if self.runtime.is_loaded(&action.code_hash) {
            return Ok(());
        }
        let (runtime, hash) = (self.runtime.clone(), action.code_hash.clone());
        if tokio::task::spawn_blocking(move || runtime.load(&hash))
            .await
            .unwrap_or(false)
        {
            return Ok(());
        }
        let code = self
            .store
            .action_code(&action.namespace, &action.name)
            .await?
            .ok_or(ControllerError::NotFound)?;
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.compile(&code))
            .await
            .map_err(|e| ControllerError::Internal(format!("compilation task failed: {e}")))?
            .map_err(|e| ControllerError::Internal(e.to_string()))?;
        Ok(())
    }

    /// Stores a handler run's record: success with `{"statusCode": N}` when it answered and
    /// finished, else the error that stopped it.
    async fn record_handler(
        &self,
        msg: &InvocationMessage,
        start: u64,
        status: Option<u16>,
        done: HttpDone,
    ) {
        let stdout = match status {
            Some(code) => json!({ "statusCode": code }).to_string().into_bytes(),
            None => Vec::new(),
        };
        let out = RunOutput {
            exit: done.exit,
            stdout_len: stdout.len() as u64,
            stdout,
            logs: done.logs,
            logs_truncated: done.logs_truncated,
            init_time: done.init_time,
            start: None,
        };
        let record = gust_invoker::build_record(msg, start, now_ms(), out, self.system.max_result);
        let stored = match EncodedActivation::new(&record) {
            Ok(encoded) => {
                let encoded = EncodedActivation {
                    name: msg.action.clone(),
                    ..encoded
                };
                let written = self.store.put_activation(&encoded).await;
                if let Ok(true) = written {
                    gust_telemetry::metrics::get().activation(
                        &record,
                        &msg.action,
                        msg.accepted_at,
                    );
                }
                written.map(|_| ())
            }
            Err(e) => Err(gust_store::StoreError::Backend(e.to_string())),
        };
        if let Err(e) = stored {
            tracing::error!(id = %msg.activation_id, error = %e, "cannot store a handler's record");
        }
    }
}
