//! Triggers: create, read, update, delete and list, with OpenWhisk's rules (`overwrite`,
//! 409, version bump, the `feed` annotation checked as an entity name, `limits: {}`).

use gust_controller::ControllerError;
use gust_model::annotations::FEED;
use gust_model::entity::{annotation, bump_version, hide_secrets};
use gust_model::time::now_ms;
use gust_model::{EntityPath, Identity, KeyValue, RuleStatus, Trigger, names};
use gust_store::PutMode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{EventError, Events};

/// The body of `PUT .../triggers/{name}`: every field optional; an update keeps what is
/// absent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TriggerPut {
    pub parameters: Option<Vec<KeyValue>>,
    pub annotations: Option<Vec<KeyValue>>,
    pub publish: Option<bool>,
    /// OpenWhisk's `TriggerLimits` has no field: only `{}` is accepted.
    #[serde(default)]
    pub limits: Option<Map<String, Value>>,
    /// Accepted and ignored: the server assigns versions.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

pub(crate) fn check_name(name: &str) -> Result<(), EventError> {
    names::check_entity(name).map_err(|e| EventError::bad(e.to_string()))
}

impl Events {
    /// Creates or (with `overwrite`) updates a trigger of `who`'s namespace.
    pub async fn put_trigger(
        &self,
        who: &Identity,
        name: &str,
        put: TriggerPut,
        overwrite: bool,
    ) -> Result<Trigger, EventError> {
        let ns = who.namespace.as_str();
        check_name(name)?;
        if let Some(n) = &put.name
            && n != name
        {
            return Err(ControllerError::NameMismatch {
                body: n.clone(),
                path: name.to_string(),
            }
            .into());
        }
        if put.limits.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(EventError::bad(
                "A trigger has no limits: give `limits: {}`.",
            ));
        }
        self.name_is_free(ns, name, Collection::Triggers).await?;
        let existing = self.store.trigger(ns, name).await?;
        if existing.is_some() && !overwrite {
            return Err(ControllerError::Conflict.into());
        }
        let parameters = put
            .parameters
            .or_else(|| existing.as_ref().map(|e| e.parameters.clone()))
            .unwrap_or_default();
        let annotations = put
            .annotations
            .or_else(|| existing.as_ref().map(|e| e.annotations.clone()))
            .unwrap_or_default();
        self.core
            .check_parameters_and_annotations(&parameters, &annotations)?;
        if let Some(feed) = annotation(&annotations, FEED) {
            let valid = feed
                .as_str()
                .and_then(|f| EntityPath::parse(f, ns))
                .is_some_and(|p| {
                    p.path.split('/').all(|s| names::check_entity(s).is_ok())
                        && names::check_entity(&p.name).is_ok()
                });
            if !valid {
                return Err(EventError::BadFeed);
            }
        }
        let stored = existing.as_ref().map_or(&[][..], |e| &e.parameters[..]);
        let parameters = self
            .core
            .seal_parameters("triggers", ns, name, parameters, stored)?;
        let trigger = Trigger {
            namespace: ns.to_string(),
            name: name.to_string(),
            version: existing
                .as_ref()
                .map_or_else(|| "0.0.1".to_string(), |e| bump_version(&e.version)),
            publish: put
                .publish
                .or(existing.as_ref().map(|e| e.publish))
                .unwrap_or(false),
            parameters,
            annotations,
            limits: Map::new(),
            updated: now_ms(),
        };
        let mode = match &existing {
            Some(e) => PutMode::Replace {
                expected_version: e.version.clone(),
            },
            None => PutMode::Create,
        };
        self.store.put_trigger(&trigger, mode).await?;
        self.forget(ns, name);
        let mut trigger = trigger;
        hide_secrets(&mut trigger.parameters);
        Ok(trigger)
    }

    /// A trigger of the caller's namespace with OpenWhisk's `rules` map: each rule that names
    /// it, with its action and status.
    pub async fn get_trigger(
        &self,
        who: &Identity,
        ns: &str,
        name: &str,
    ) -> Result<Value, EventError> {
        let ns = self.core.authorize(who, ns)?;
        check_name(name)?;
        let Some(mut trigger) = self.store.trigger(ns, name).await? else {
            return Err(self.missing(ns, name, Collection::Triggers).await);
        };
        hide_secrets(&mut trigger.parameters);
        let rules = self
            .store
            .rules_of_trigger(ns, &format!("/{ns}/{name}"))
            .await?;
        let mut v = json!(trigger);
        if !rules.is_empty() {
            let map: Map<String, Value> = rules
                .iter()
                .map(|r| {
                    (
                        format!("{}/{}", r.namespace, r.name),
                        json!({ "action": r.action, "status": r.status }),
                    )
                })
                .collect();
            v["rules"] = Value::Object(map);
        }
        Ok(v)
    }

    pub async fn list_triggers(
        &self,
        who: &Identity,
        ns: &str,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Trigger>, EventError> {
        let ns = self.core.authorize(who, ns)?;
        let mut triggers = self.store.list_triggers(ns, skip, limit).await?;
        for t in &mut triggers {
            hide_secrets(&mut t.parameters);
        }
        Ok(triggers)
    }

    pub async fn count_triggers(&self, who: &Identity, ns: &str) -> Result<u64, EventError> {
        let ns = self.core.authorize(who, ns)?;
        Ok(self.store.count_triggers(ns).await?)
    }

    /// Deletes a trigger, its schedule and its subscription (whose source releases what it
    /// held, as a feed's DELETE does); its rules stay and read inactive.
    pub async fn delete_trigger(
        &self,
        who: &Identity,
        ns: &str,
        name: &str,
    ) -> Result<Trigger, EventError> {
        let ns = self.core.authorize(who, ns)?;
        check_name(name)?;
        let subscription = self.store.subscription(ns, name).await?;
        let deleted = self.store.delete_trigger(ns, name).await?;
        self.forget(ns, name);
        if let Some(s) = subscription.filter(|_| deleted.is_some())
            && let Some(source) = self.sources.get(&s.spec.source)
        {
            crate::sources::forget(self.core.keyring(), source.as_ref(), &s).await;
        }
        match deleted {
            Some(mut t) => {
                hide_secrets(&mut t.parameters);
                self.timers.notify_one();
                self.deactivate_rules_of(ns, name).await?;
                Ok(t)
            }
            None => Err(self.missing(ns, name, Collection::Triggers).await),
        }
    }

    /// Marks the rules of deleted trigger `ns/trigger` inactive, as OpenWhisk's read once
    /// their trigger is gone: a trigger made again under the same name starts without active
    /// rules.
    pub(crate) async fn deactivate_rules_of(
        &self,
        ns: &str,
        trigger: &str,
    ) -> Result<(), EventError> {
        for mut rule in self
            .store
            .rules_of_trigger(ns, &format!("/{ns}/{trigger}"))
            .await?
        {
            if rule.status == RuleStatus::Active {
                rule.status = RuleStatus::Inactive;
                let mode = PutMode::Replace {
                    expected_version: rule.version.clone(),
                };
                match self.store.put_rule(&rule, mode).await {
                    // Changed meanwhile: whoever wrote it decided its status.
                    Ok(()) | Err(gust_store::StoreError::Conflict) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// The 404 for `ns/name` missing from `collection`, or OpenWhisk's 409 when the name is
    /// another collection's (actions, packages, triggers and rules share a namespace's names).
    pub(crate) async fn missing(&self, ns: &str, name: &str, collection: Collection) -> EventError {
        match self.name_is_free(ns, name, collection).await {
            Ok(()) => ControllerError::NotFound.into(),
            Err(e) => e,
        }
    }

    /// Refuses a name that an entity of another collection of `ns` has.
    pub(crate) async fn name_is_free(
        &self,
        ns: &str,
        name: &str,
        collection: Collection,
    ) -> Result<(), EventError> {
        let taken = (collection != Collection::Triggers
            && self.store.trigger(ns, name).await?.is_some())
            || (collection != Collection::Rules && self.store.rule(ns, name).await?.is_some())
            || self.store.action(ns, name, false).await?.is_some()
            || self.store.package(ns, name).await?.is_some();
        if taken {
            return Err(EventError::OtherCollection);
        }
        Ok(())
    }
}

/// The collections that share a namespace's names with actions and packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collection {
    Triggers,
    Rules,
}

/// Whether a rule reads active: its own status, and its trigger still there.
pub(crate) fn effective(status: RuleStatus, trigger_exists: bool) -> RuleStatus {
    if trigger_exists {
        status
    } else {
        RuleStatus::Inactive
    }
}
