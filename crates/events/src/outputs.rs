//! Rule outputs (the Azure output binding): a rule annotated `output` publishes its action's
//! result to a queue or topic of a source (`{"source": "nats", "subject": "done", ...}`), so
//! a pipeline needs no client library in the function. The output is checked when the rule
//! is written (the source's own parameters, unknown ones refused); after a fire the result is
//! published once the action's record is stored and says it succeeded. An output is not
//! durable: a process that dies while an action runs does not publish its result.
//!
//! The output's secrets (the source's [`Source::secrets`], a broker's password) are sealed in
//! the stored rule (decision 0022), shown as `********`, and opened only to publish.

use std::sync::Arc;
use std::time::Duration;

use gust_controller::ControllerError;
use gust_model::{KeyValue, Rule};
use gust_source::Source;
use serde_json::{Map, Value};

use crate::sources::{output_place, redact};
use crate::{EventError, Events};

/// The annotation that holds a rule's output.
pub const OUTPUT: &str = "output";
/// How a rule shows an output's secret; sent back in an update, it keeps the stored one.
const HIDDEN: &str = "********";
/// Longest an output waits for its action's record.
const WAIT_AT_MOST: Duration = Duration::from_secs(15 * 60);

/// A rule's output: its source and the configuration the source checked.
pub(crate) struct Output {
    source: Arc<dyn Source>,
    config: Map<String, Value>,
}

impl Events {
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

    /// The source of an `output` annotation's value and its secrets' names, if it names one.
    fn output_secrets(&self, v: &Value) -> &'static [&'static str] {
        v.get("source")
            .and_then(Value::as_str)
            .and_then(|name| self.sources.get(name))
            .map_or(&[], |s| s.secrets())
    }

    /// Seals the secrets of the `output` annotation among `annotations` (rule `ns/rule`); a
    /// secret sent as `********` keeps the one `existing` holds (a 400 if none).
    pub(crate) fn seal_output(
        &self,
        ns: &str,
        rule: &str,
        annotations: &mut [KeyValue],
        existing: &[KeyValue],
    ) -> Result<(), EventError> {
        let Some(kv) = annotations.iter_mut().find(|kv| kv.key == OUTPUT) else {
            return Ok(());
        };
        let secrets = self.output_secrets(&kv.value);
        let stored = existing
            .iter()
            .find(|e| e.key == OUTPUT)
            .map(|e| e.value.clone());
        let Some(params) = kv.value.as_object_mut() else {
            return Ok(());
        };
        for (k, v) in params.iter_mut() {
            let Value::String(text) = v else { continue };
            if !secrets.contains(&k.as_str()) {
                continue;
            }
            if text == HIDDEN {
                let kept = stored
                    .as_ref()
                    .and_then(|s| s.get(k.as_str()))
                    .and_then(Value::as_str)
                    .filter(|s| gust_keyring::is_sealed(s));
                let Some(kept) = kept else {
                    return Err(EventError::bad(format!(
                        "The rule's output is not valid: '{k}' is hidden and none is stored."
                    )));
                };
                *v = Value::String(kept.to_string());
            } else {
                let place = output_place(ns, rule, k);
                *v = Value::String(self.core.keyring().seal(text.as_bytes(), place.as_bytes()));
            }
        }
        Ok(())
    }

    /// `text` without the values of the output `value`'s secrets.
    fn redact_output(&self, text: &str, value: &Value) -> String {
        let secrets = self.output_secrets(value);
        match value.as_object() {
            Some(config) => redact(text, secrets, config),
            None => text.to_string(),
        }
    }

    /// Shows `rule`'s output secrets as `********`.
    pub(crate) fn hide_output(&self, rule: &mut Rule) {
        let Some(kv) = rule.annotations.iter_mut().find(|kv| kv.key == OUTPUT) else {
            return;
        };
        let secrets = self.output_secrets(&kv.value);
        if let Some(params) = kv.value.as_object_mut() {
            for (k, v) in params.iter_mut() {
                if v.is_string() && secrets.contains(&k.as_str()) {
                    *v = Value::String(HIDDEN.into());
                }
            }
        }
    }

    /// `rule`'s output, if it has one, with its secrets opened.
    fn opened_output(&self, rule: &Rule) -> Option<Result<Value, String>> {
        let kv = rule.annotations.iter().find(|kv| kv.key == OUTPUT)?;
        let secrets = self.output_secrets(&kv.value);
        let mut value = kv.value.clone();
        if let Some(params) = value.as_object_mut() {
            for (k, v) in params.iter_mut() {
                let Value::String(text) = v else { continue };
                if !secrets.contains(&k.as_str()) || !gust_keyring::is_sealed(text) {
                    continue;
                }
                let place = output_place(&rule.namespace, &rule.name, k);
                match self.core.keyring().open(text, place.as_bytes()) {
                    Ok(plain) => *v = Value::String(String::from_utf8_lossy(&plain).into_owned()),
                    Err(e) => return Some(Err(format!("its secret '{k}' does not open: {e}"))),
                }
            }
        }
        Some(Ok(value))
    }

    /// Checks the output of `rule` as stored (its secrets sealed): an object naming a source
    /// that publishes, with parameters that source takes.
    pub(crate) fn check_rule_output(&self, rule: &Rule) -> Result<(), EventError> {
        match self.opened_output(rule) {
            None => Ok(()),
            Some(Ok(value)) => self
                .output(&value)
                .map(|_| ())
                .map_err(|e| EventError::bad(self.redact_output(&e.to_string(), &value))),
            Some(Err(why)) => Err(ControllerError::Internal(why).into()),
        }
    }

    /// The output of `rule`, if it has one that is (still) valid, its secrets opened (to
    /// publish, and for nothing else).
    pub(crate) fn output_of(&self, rule: &Rule) -> Option<Output> {
        let value = match self.opened_output(rule)? {
            Ok(value) => value,
            Err(why) => {
                tracing::warn!(rule = %rule.name, %why, "a rule's output cannot be used");
                return None;
            }
        };
        match self.output(&value) {
            Ok(o) => Some(o),
            Err(e) => {
                let e = self.redact_output(&e.to_string(), &value);
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
                let e = redact(&e.to_string(), output.source.secrets(), &output.config);
                tracing::warn!(%id, error = %e, "cannot publish a rule's output");
            }
        });
    }
}
