//! Rule outputs (the Azure output binding): a rule annotated `output` publishes its action's
//! result to a queue or topic of a source (`{"source": "nats", "subject": "done", ...}`), so
//! a pipeline needs no client library in the function. The output is checked when the rule
//! is written (the source's own parameters, unknown ones refused); after a fire the result is
//! published once the action's record is stored and says it succeeded. An output is not
//! durable: a process that dies while an action runs does not publish its result.

use std::sync::Arc;
use std::time::Duration;

use gust_model::{KeyValue, Rule};
use gust_source::Source;
use serde_json::{Map, Value};

use crate::{EventError, Events};

/// The annotation that holds a rule's output.
pub const OUTPUT: &str = "output";
/// Longest an output waits for its action's record.
const WAIT_AT_MOST: Duration = Duration::from_secs(15 * 60);

/// A rule's output: its source and the configuration the source checked.
pub(crate) struct Output {
    source: Arc<dyn Source>,
    config: Map<String, Value>,
}

impl Events {
    /// Checks the `output` annotation among `annotations`, if any: an object naming a source
    /// that publishes, with parameters that source takes.
    pub(crate) fn check_output(&self, annotations: &[KeyValue]) -> Result<(), EventError> {
        match annotations.iter().find(|kv| kv.key == OUTPUT) {
            None => Ok(()),
            Some(kv) => self.output(&kv.value).map(|_| ()),
        }
    }

    fn output(&self, v: &Value) -> Result<Output, EventError> {
        let bad = |why: String| EventError::bad(format!("The rule's output is not valid: {why}"));
        let Some(params) = v.as_object() else {
            return Err(bad("it must be an object naming a source".into()));
        };
        let name = params
            .get("source")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("it must name its 'source'".into()))?;
        let source = self
            .sources
            .get(name)
            .ok_or_else(|| bad(format!("there is no source '{name}'")))?;
        let mut rest = params.clone();
        rest.remove("source");
        let config = source.configure_output(&rest).map_err(bad)?;
        Ok(Output {
            source: source.clone(),
            config,
        })
    }

    /// The output of `rule`, if it has one that is (still) valid.
    pub(crate) fn output_of(&self, rule: &Rule) -> Option<Output> {
        let kv = rule.annotations.iter().find(|kv| kv.key == OUTPUT)?;
        match self.output(&kv.value) {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!(rule = %rule.name, error = %e, "a rule's output is not valid");
                None
            }
        }
    }

    /// Publishes the result of activation `id` of `ns` to `output` once its record is stored
    /// and says it succeeded (in the background).
    pub(crate) fn publish_result(&self, ns: &str, id: &str, output: Output) {
        let (store, ns, id) = (self.store.clone(), ns.to_string(), id.to_string());
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut wait = Duration::from_millis(50);
            let record = loop {
                match store.activation(&ns, &id).await {
                    Ok(Some(record)) => break record,
                    Ok(None) | Err(_) if started.elapsed() < WAIT_AT_MOST => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                    _ => {
                        tracing::warn!(%id, "no record to publish as a rule's output");
                        return;
                    }
                }
            };
            if !record.response.success {
                return;
            }
            let result = record.response.result.clone();
            if let Err(e) = output.source.publish(&output.config, &result).await {
                tracing::warn!(%id, error = %e, "cannot publish a rule's output");
            }
        });
    }
}
