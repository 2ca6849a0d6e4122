//! What a sandbox reports about one activation, whatever ran it (Wasm or a process).

use std::time::Duration;

/// How an activation ended, as far as the sandbox can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// `_start` returned, or the guest exited with status 0.
    Ok,
    /// The guest exited with a non-zero status.
    Code(i32),
    /// The time limit expired.
    Timeout,
    /// The guest needed more memory than its limit allows.
    OutOfMemory,
    /// The guest trapped (panic, unreachable, stack overflow, ...) or its process died.
    Trap(String),
    /// The code failed to initialize (no entry point, a syntax error...): the reason.
    Init(String),
    /// No instance could take it: every one the action may have is busy and the queue is
    /// full, or waiting outlasted the action's timeout. The reason names the limit.
    Overloaded(String),
    /// The code could not be made ready (host: missing artifact, pool exhausted, ...).
    Internal(String),
}

/// One activation's outputs.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub exit: Exit,
    /// Stdout (the result line of a process), at most `result_limit` bytes.
    pub stdout: Vec<u8>,
    /// Bytes the guest wrote to stdout in all.
    pub stdout_len: u64,
    pub logs: Vec<String>,
    pub logs_truncated: bool,
    /// How a process instance was found: `cold` (a new sandbox), `prewarmed` (a stem
    /// cell given the code) or `warm` (an idle instance reused); none for Wasm.
    pub start: Option<&'static str>,
    /// Time to make the instance ready (load or compile if cold, then instantiate).
    pub init_time: Duration,
}

impl RunOutput {
    /// The output of a run that could not start.
    pub fn failed(exit: Exit) -> Self {
        RunOutput {
            exit,
            stdout: Vec::new(),
            stdout_len: 0,
            logs: Vec::new(),
            logs_truncated: false,
            init_time: Duration::ZERO,
            start: None,
        }
    }
}
