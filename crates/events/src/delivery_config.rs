//! Async delivery's API (decision 0028): an action's delivery config, checked before it is
//! stored (ranges, destinations that parse and, for `action:` and `trigger:`, exist;
//! `subject:` only where this process has a NATS connection), and a namespace's dead
//! letters: listed, read, deleted, and redriven (the action invoked again with the request's
//! parameters, the letter removed). What the gateway's Gust and Lambda resources call.
//!
//! **Invariant:** a refused config changes nothing; a config is the caller's namespace's, for
//! an action that runs its own code.

use gust_controller::tokens::{Grant, Verb};
use gust_controller::{ControllerError, Identity, Invocation, InvokeOutcome, Wait};
use gust_model::time::now_ms;
use gust_model::{DeadLetter, DeliveryConfig};
use serde_json::{Map, Value};

use crate::destinations::{Destination, subject_output};
use crate::{EventError, Events};

/// The fields of a delivery config a client gives (Gust's API: camelCase).
pub const FIELDS: [&str; 4] = [
    "maximumRetryAttempts",
    "maximumEventAgeInSeconds",
    "onSuccess",
    "onFailure",
];

/// Most retries Gust allows (Lambda's API: 2).
pub const MAX_RETRIES: u32 = 10;
/// Lambda's default retries and event age.
pub const DEFAULT_RETRIES: u32 = 2;
pub const DEFAULT_MAX_AGE_S: u64 = 21_600;
/// The range of `maximumEventAgeInSeconds`.
pub const MIN_AGE_S: u64 = 60;
pub const MAX_AGE_S: u64 = 21_600;

/// A delivery config as written: every field checked for its type and range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPut {
    pub maximum_retry_attempts: u32,
    pub maximum_event_age_in_seconds: u64,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

impl Default for DeliveryPut {
    fn default() -> Self {
        DeliveryPut {
            maximum_retry_attempts: DEFAULT_RETRIES,
            maximum_event_age_in_seconds: DEFAULT_MAX_AGE_S,
            on_success: None,
            on_failure: None,
        }
    }
}

impl DeliveryPut {
    /// Reads a Gust API body: unknown fields refused, absent ones their defaults.
    pub fn read(body: &Map<String, Value>) -> Result<DeliveryPut, EventError> {
        if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(EventError::bad(format!(
                "unknown field '{unknown}' (a delivery config has {})",
                FIELDS.join(", ")
            )));
        }
        let retries = gust_source::integer(
            body,
            "maximumRetryAttempts",
            0..=u64::from(MAX_RETRIES),
            u64::from(DEFAULT_RETRIES),
        )
        .map_err(EventError::bad)?;
        let age = gust_source::integer(
            body,
            "maximumEventAgeInSeconds",
            MIN_AGE_S..=MAX_AGE_S,
            DEFAULT_MAX_AGE_S,
        )
        .map_err(EventError::bad)?;
        Ok(DeliveryPut {
            maximum_retry_attempts: retries as u32,
            maximum_event_age_in_seconds: age,
            on_success: gust_source::string(body, "onSuccess").map_err(EventError::bad)?,
            on_failure: gust_source::string(body, "onFailure").map_err(EventError::bad)?,
        })
    }

    /// This config's fields over `base`'s (`Some` ones), for a merge.
    pub fn from_config(c: &DeliveryConfig) -> DeliveryPut {
        DeliveryPut {
            maximum_retry_attempts: c.maximum_retry_attempts,
            maximum_event_age_in_seconds: c.maximum_event_age_in_seconds,
            on_success: c.on_success.clone(),
            on_failure: c.on_failure.clone(),
        }
    }
}

impl Events {
    /// The delivery config of action `action` of `ns`, which must be the caller's.
    pub async fn delivery_config(
        &self,
        who: &Identity,
        ns: &str,
        action: &str,
    ) -> Result<Option<DeliveryConfig>, EventError> {
        let ns = self.core.authorize(who, ns)?;
        Ok(self.store.delivery_config(ns, action).await?)
    }

    /// Checks and stores the delivery config of action `action` of `ns` (the caller's own):
    /// the action must exist and run its own code; a token (`grant`) must be able to reach
    /// the destinations itself (invoke an action, fire a trigger).
    pub async fn put_delivery_config(
        &self,
        who: &Identity,
        grant: Option<&Grant>,
        ns: &str,
        action: &str,
        put: DeliveryPut,
    ) -> Result<DeliveryConfig, EventError> {
        let ns = self.core.authorize(who, ns)?;
        if put.maximum_retry_attempts > MAX_RETRIES {
            return Err(EventError::bad(format!(
                "parameter 'maximumRetryAttempts' must be an integer from 0 to {MAX_RETRIES}"
            )));
        }
        if !(MIN_AGE_S..=MAX_AGE_S).contains(&put.maximum_event_age_in_seconds) {
            return Err(EventError::bad(format!(
                "parameter 'maximumEventAgeInSeconds' must be an integer from {MIN_AGE_S} to {MAX_AGE_S}"
            )));
        }
        let resolved = self.core.resolve(who, ns, action).await?;
        if resolved.shared || resolved.action.namespace != ns {
            return Err(EventError::bad(format!(
                "action {action} is reached through a binding: set the delivery of the action itself"
            )));
        }
        if !self.core.runs_code(&resolved.action) {
            return Err(EventError::bad(format!(
                "action {action} is a sequence or a built-in action: only an action that runs its own code is delivered asynchronously"
            )));
        }
        for (field, target) in [
            ("onSuccess", &put.on_success),
            ("onFailure", &put.on_failure),
        ] {
            if let Some(target) = target {
                self.check_destination(who, grant, ns, field, target)
                    .await?;
            }
        }
        let config = DeliveryConfig {
            namespace: ns.to_string(),
            action: resolved.action.name.clone(),
            maximum_retry_attempts: put.maximum_retry_attempts,
            maximum_event_age_in_seconds: put.maximum_event_age_in_seconds,
            on_success: put.on_success,
            on_failure: put.on_failure,
            updated: now_ms(),
        };
        self.core.put_delivery_config(&config).await?;
        Ok(config)
    }

    /// Checks destination `target` (parameter `field`) of a config of `ns`.
    async fn check_destination(
        &self,
        who: &Identity,
        grant: Option<&Grant>,
        ns: &str,
        field: &str,
        target: &str,
    ) -> Result<(), EventError> {
        match Destination::parse(target, field).map_err(EventError::bad)? {
            Destination::Action(name) => {
                let path = gust_model::EntityPath::parse(&name, ns).ok_or_else(|| {
                    EventError::bad(format!(
                        "parameter '{field}': '{name}' is not an action name"
                    ))
                })?;
                match self
                    .core
                    .resolve(who, path.namespace(), &path.inner())
                    .await
                {
                    Ok(_) => {}
                    Err(ControllerError::NotFound) => {
                        return Err(EventError::bad(format!(
                            "parameter '{field}': action {name} does not exist"
                        )));
                    }
                    Err(e) => return Err(e.into()),
                }
                if let Some(grant) = grant {
                    grant.permit_reference(&who.namespace, Verb::Invoke, "actions", &name)?;
                }
            }
            Destination::Trigger(name) => {
                if self.store.trigger(ns, &name).await?.is_none() {
                    return Err(EventError::bad(format!(
                        "parameter '{field}': trigger {name} does not exist"
                    )));
                }
                if let Some(grant) = grant {
                    grant.permit(Verb::Fire, &format!("triggers/{name}"))?;
                }
            }
            Destination::Subject(subject) => {
                let Some((source, config)) = self.delivery_publisher() else {
                    return Err(EventError::bad(format!(
                        "parameter '{field}': subject: needs NATS, and this server has no NATS bus (use action: or trigger:)"
                    )));
                };
                subject_output(source.as_ref(), &config, &subject, field)
                    .map_err(EventError::bad)?;
            }
        }
        Ok(())
    }

    /// Deletes the delivery config of action `action` of `ns` (the caller's own); 404 when
    /// it has none. Invocations accepted before are delivered with the config they had.
    pub async fn delete_delivery_config(
        &self,
        who: &Identity,
        ns: &str,
        action: &str,
    ) -> Result<(), EventError> {
        let ns = self.core.authorize(who, ns)?;
        if self.core.delete_delivery_config(ns, action).await? {
            Ok(())
        } else {
            Err(ControllerError::NotFound.into())
        }
    }

    /// The dead letters of `ns` (the caller's own), newest first.
    pub async fn dead_letters(
        &self,
        who: &Identity,
        ns: &str,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<DeadLetter>, EventError> {
        let ns = self.core.authorize(who, ns)?;
        Ok(self.store.dead_letters(ns, skip, limit).await?)
    }

    /// Dead letter `id` of `ns` (the caller's own); 404 when there is none.
    pub async fn dead_letter(
        &self,
        who: &Identity,
        ns: &str,
        id: &str,
    ) -> Result<DeadLetter, EventError> {
        let ns = self.core.authorize(who, ns)?;
        self.store
            .dead_letter(ns, id)
            .await?
            .ok_or(EventError::Core(ControllerError::NotFound))
    }

    /// Deletes dead letter `id` of `ns` (the caller's own); 404 when there is none.
    pub async fn delete_dead_letter(
        &self,
        who: &Identity,
        ns: &str,
        id: &str,
    ) -> Result<(), EventError> {
        let ns = self.core.authorize(who, ns)?;
        if self.store.delete_dead_letter(ns, id).await? {
            Ok(())
        } else {
            Err(ControllerError::NotFound.into())
        }
    }

    /// Invokes dead letter `id`'s action again, non-blocking, with the parameters of its
    /// request and the sealed secrets it carried (a delivery of its own if the action has a config), then removes the letter.
    /// Returns the new activation's id. A token must be able to invoke the action.
    ///
    /// The activation id is derived from the letter (its id and when it was written), so a
    /// redrive made again (its answer lost, or the letter not yet removed) finds that
    /// activation accepted and invokes nothing; two made at the same instant invoke one id
    /// (one record; a NATS bus stores the invocation once within its duplicate window).
    pub async fn redrive(
        &self,
        who: &Identity,
        grant: Option<&Grant>,
        ns: &str,
        id: &str,
    ) -> Result<String, EventError> {
        let letter = self.dead_letter(who, ns, id).await?;
        if let Some(grant) = grant {
            grant.permit(Verb::Invoke, &format!("actions/{}", letter.action))?;
        }
        let resolved = self
            .core
            .resolve(who, &letter.namespace, &letter.action)
            .await?;
        let params = letter
            .record
            .get("requestPayload")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let redriven = redrive_id(&letter);
        let ran = self.store.is_accepted(&letter.namespace, &redriven).await?
            || self
                .store
                .activation(&letter.namespace, &redriven)
                .await?
                .is_some();
        if ran {
            self.store.delete_dead_letter(&letter.namespace, id).await?;
            return Ok(redriven);
        }
        let outcome = self
            .core
            .invoke(Invocation {
                caller: who,
                action: &resolved,
                params,
                wait: Wait::No,
                cause: None,
                secrets: letter.secrets.clone(),
                activation_id: Some(redriven),
                trace: None,
            })
            .await?;
        let activation = match outcome {
            InvokeOutcome::Accepted(id) | InvokeOutcome::Waiting(id) => id,
            InvokeOutcome::Completed(_) => {
                return Err(EventError::Core(ControllerError::Internal(
                    "a non-blocking invocation answered with a record".into(),
                )));
            }
        };
        if !self.store.delete_dead_letter(&letter.namespace, id).await? {
            tracing::warn!(namespace = %letter.namespace, id, "a redriven dead letter was gone already");
        }
        Ok(activation)
    }
}

/// The activation id a redrive of `letter` invokes: one per letter (a letter written again
/// by a redriven delivery that failed again has another `created`, so another id).
fn redrive_id(letter: &DeadLetter) -> String {
    let seed = format!(
        "{}\0{}\0redrive\0{}",
        letter.namespace, letter.id, letter.created
    );
    crate::timers::derived_id(letter.created, &seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<DeliveryPut, String> {
        DeliveryPut::read(v.as_object().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_letter_is_redriven_with_one_id_per_letter() {
        let letter = DeadLetter {
            namespace: "ns".into(),
            id: "0193e5c0aaaa7bbb8cccdddd00000001".into(),
            action: "a".into(),
            record: json!({}),
            created: 1_700_000_000_000,
            secrets: Vec::new(),
        };
        let id = redrive_id(&letter);
        assert!(gust_model::names::is_activation_id(&id));
        assert_eq!(id, redrive_id(&letter.clone()));
        let again = DeadLetter {
            created: letter.created + 1,
            ..letter.clone()
        };
        assert_ne!(id, redrive_id(&again));
        assert_ne!(id, letter.id);
    }

    #[test]
    fn a_config_is_read_with_lambdas_defaults() {
        assert_eq!(read(json!({})).unwrap(), DeliveryPut::default());
        let c = read(json!({"maximumRetryAttempts": 0, "maximumEventAgeInSeconds": 60, "onFailure": "action:dlq"})).unwrap();
        assert_eq!(c.maximum_retry_attempts, 0);
        assert_eq!(c.maximum_event_age_in_seconds, 60);
        assert_eq!(c.on_failure.as_deref(), Some("action:dlq"));
        assert_eq!(c.on_success, None);
    }

    #[test]
    fn bad_configs_name_their_field() {
        for (bad, field) in [
            (json!({"maximumRetryAttempts": 11}), "maximumRetryAttempts"),
            (json!({"maximumRetryAttempts": -1}), "maximumRetryAttempts"),
            (json!({"maximumRetryAttempts": "2"}), "maximumRetryAttempts"),
            (
                json!({"maximumEventAgeInSeconds": 59}),
                "maximumEventAgeInSeconds",
            ),
            (
                json!({"maximumEventAgeInSeconds": 21_601}),
                "maximumEventAgeInSeconds",
            ),
            (json!({"onSuccess": 3}), "onSuccess"),
            (json!({"onFailure": ""}), "onFailure"),
            (json!({"retries": 1}), "retries"),
        ] {
            let e = read(bad.clone()).unwrap_err();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }
}
