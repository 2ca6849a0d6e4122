//! Lambda functions' instances (decision 0025): the environment a Lambda runtime expects,
//! the event each activation gives it, and the start of an instance, which is done when the
//! runtime first asks its Runtime API for an event.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use gust_model::lambda::{self, Runtime};
use gust_model::run::Exit;

use crate::instance::Instance;
use crate::kinds::Kind;
use crate::runtime_api::Event;
use crate::{Failed, LAMBDA_INIT_TIMEOUT, MB, ProcessRun, ProcessRuntime, ready};

/// The function's name as Lambda shows it (`pkg/fn` -> `pkg-fn`: a Lambda name has no `/`).
fn function_name(req: &ProcessRun) -> String {
    req.action.replace('/', "-")
}

/// The function's own environment variables (its `init` parameters): not the `__OW_*`
/// variables, which change with every activation, nor Lambda's reserved ones.
pub(crate) fn user_env(req: &ProcessRun) -> Vec<(&str, &str)> {
    req.env
        .iter()
        .filter(|(k, _)| !k.starts_with("__OW_") && !lambda::RESERVED_ENV.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A digest of an environment, for telling instances started with different ones apart.
pub(crate) fn env_digest(env: &[(&str, &str)]) -> u64 {
    let mut sorted = env.to_vec();
    sorted.sort_unstable();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sorted.hash(&mut h);
    h.finish()
}

/// The environment of a Lambda runtime for `req` (beside `AWS_LAMBDA_RUNTIME_API`, which
/// the sandbox's listener gives).
fn environment(kind: &Kind, req: &ProcessRun, instance: u64) -> Vec<(String, String)> {
    let name = function_name(req);
    let runtime = lambda::runtime_name(&kind.name).unwrap_or_default();
    let region = lambda::DEFAULT_REGION;
    let day = gust_model::time::now_ms() / 86_400_000;
    let mut env: Vec<(String, String)> = vec![
        ("_HANDLER".into(), req.main.clone().unwrap_or_default()),
        ("LAMBDA_TASK_ROOT".into(), "/action".into()),
        ("AWS_LAMBDA_FUNCTION_NAME".into(), name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
            req.memory.to_string(),
        ),
        ("AWS_REGION".into(), region.into()),
        ("AWS_DEFAULT_REGION".into(), region.into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME".into(),
            format!("/aws/lambda/{name}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME".into(),
            format!("{day}/[$LATEST]{instance:032x}"),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        ("TZ".into(), ":UTC".into()),
    ];
    if kind.lambda != Some(Runtime::Provided) {
        env.push(("AWS_EXECUTION_ENV".into(), format!("AWS_Lambda_{runtime}")));
    }
    env.extend(
        user_env(req)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env
}

/// The event of one activation: its parameters, with its activation id as request id.
pub(crate) fn event(req: &ProcessRun) -> Event {
    let id = req
        .env
        .iter()
        .find(|(k, _)| k == "__OW_ACTIVATION_ID")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let now = gust_model::time::now_ms();
    // An X-Ray-shaped trace id made of the activation id (Gust sends no traces to X-Ray).
    let trace_id = format!(
        "Root=1-{:08x}-{}",
        now / 1000,
        id.get(..24).unwrap_or("000000000000000000000000")
    );
    Event {
        request_id: id,
        body: req.params.get().as_bytes().to_vec(),
        deadline_ms: now + req.timeout.as_millis() as u64,
        function_arn: lambda::function_arn(lambda::DEFAULT_REGION, &function_name(req)),
        trace_id,
    }
}

impl ProcessRuntime {
    /// Starts a Lambda function's instance: a new sandbox running its runtime, ready once the
    /// runtime asks for its first event (within Lambda's 10 s), with the logs of its start.
    pub(crate) async fn start_lambda(
        &self,
        kind: &Kind,
        req: &ProcessRun,
        folder: PathBuf,
    ) -> Result<(Instance, Vec<String>, &'static str), Failed> {
        if !folder.is_dir() {
            return Err(Exit::Internal(
                "the function's code is not unpacked on this invoker".into(),
            )
            .into());
        }
        // A number of its own for its log stream's name.
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let network = self.config.network_namespaces.contains(&req.namespace);
        let instance = self
            .spawn_instance(
                kind,
                req.memory * MB,
                Some(folder),
                network,
                Some(environment(kind, req, id)),
            )
            .await
            .map_err(|e| Exit::Internal(format!("cannot start a sandbox: {e}")))?;
        let deadline = tokio::time::Instant::now() + LAMBDA_INIT_TIMEOUT;
        let outcome = instance
            .exchange_event(None, deadline, req.log_limit, req.result_limit)
            .await;
        let timeout = Exit::Init(format!(
            "the runtime did not ask for an event within {} s of its start",
            LAMBDA_INIT_TIMEOUT.as_secs()
        ));
        let ended = "the runtime ended before asking for an event: ";
        let (instance, logs) = ready(instance, outcome, timeout, ended).await?;
        Ok((instance, logs, "cold"))
    }
}
