//! Rules: create, read, update, delete, list, and enable or disable. A rule names its trigger
//! (in its own namespace) and an action the rule's owner may invoke (its own, or one in a
//! package another namespace shares); both are given as `/ns/[pkg/]name` strings or as
//! `{path, name}`, and answered as exactly `{path, name}`.

use gust_controller::ControllerError;
use gust_model::entity::bump_version;
use gust_model::time::now_ms;
use gust_model::{EntityPath, Identity, KeyValue, Rule, RuleStatus};
use gust_store::PutMode;
use serde::Deserialize;
use serde_json::Value;

use crate::triggers::{Collection, check_name, effective};
use crate::{EventError, Events};

/// The body of `PUT .../rules/{name}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RulePut {
    /// `/ns/t`, `t`, or `{path, name}`.
    pub trigger: Option<Value>,
    /// `/ns/a`, `/ns/pkg/a`, `a`, or `{path, name}`.
    pub action: Option<Value>,
    pub annotations: Option<Vec<KeyValue>>,
    pub publish: Option<bool>,
    /// Accepted and ignored: a new rule is active, an updated one keeps its status.
    #[serde(default)]
    pub status: Option<Value>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// An entity name given as a string or as `{path, name}`; `None` if it is neither.
fn entity_path(v: &Value, ns: &str) -> Option<EntityPath> {
    let parsed = match v {
        Value::String(s) => EntityPath::parse(s, ns)?,
        Value::Object(_) => {
            let p: EntityPath = serde_json::from_value(v.clone()).ok()?;
            EntityPath::parse(&format!("/{}/{}", p.path, p.name), ns)?
        }
        _ => return None,
    };
    let names_ok = parsed
        .path
        .split('/')
        .chain([parsed.name.as_str()])
        .all(|s| gust_model::names::check_entity(s).is_ok());
    names_ok.then_some(parsed)
}

impl Events {
    /// Creates or (with `overwrite`) updates a rule of `who`'s namespace.
    pub async fn put_rule(
        &self,
        who: &Identity,
        name: &str,
        put: RulePut,
        overwrite: bool,
    ) -> Result<Rule, EventError> {
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
        self.name_is_free(ns, name, Collection::Rules).await?;
        let existing = self.store.rule(ns, name).await?;
        if existing.is_some() && !overwrite {
            return Err(ControllerError::Conflict.into());
        }
        let given = |v: &Option<Value>| -> Result<Option<EntityPath>, EventError> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(v) => entity_path(v, ns)
                    .map(Some)
                    .ok_or(EventError::RuleIncomplete),
            }
        };
        let (trigger, action) = match (given(&put.trigger)?, given(&put.action)?, &existing) {
            (Some(t), Some(a), _) => (t, a),
            (t, a, Some(e)) => (
                t.unwrap_or_else(|| e.trigger.clone()),
                a.unwrap_or_else(|| e.action.clone()),
            ),
            _ => return Err(EventError::RuleIncomplete),
        };
        if trigger.path != ns {
            return Err(EventError::ForeignTrigger(trigger.qualified()));
        }
        if self.store.trigger(ns, &trigger.name).await?.is_none() {
            return Err(EventError::NoSuchTrigger(trigger.qualified()));
        }
        match self
            .core
            .resolve(who, action.namespace(), &action.inner())
            .await
        {
            Ok(_) => {}
            Err(ControllerError::NotFound) => {
                return Err(EventError::NoSuchAction(action.qualified()));
            }
            Err(e) => return Err(e.into()),
        }
        let mut annotations = put
            .annotations
            .or_else(|| existing.as_ref().map(|e| e.annotations.clone()))
            .unwrap_or_default();
        self.core
            .check_parameters_and_annotations(&[], &annotations)?;
        let stored = existing.as_ref().map_or(&[][..], |e| &e.annotations[..]);
        self.seal_output(ns, name, &mut annotations, stored)?;
        let rule = Rule {
            namespace: ns.to_string(),
            name: name.to_string(),
            version: existing
                .as_ref()
                .map_or_else(|| "0.0.1".to_string(), |e| bump_version(&e.version)),
            publish: put
                .publish
                .or(existing.as_ref().map(|e| e.publish))
                .unwrap_or(false),
            annotations,
            trigger,
            action,
            status: existing.as_ref().map_or(RuleStatus::Active, |e| e.status),
            updated: now_ms(),
        };
        self.check_rule_output(&rule)?;
        let mode = match &existing {
            Some(e) => PutMode::Replace {
                expected_version: e.version.clone(),
            },
            None => PutMode::Create,
        };
        self.store.put_rule(&rule, mode).await?;
        if let Some(e) = &existing {
            self.forget(ns, &e.trigger.name);
        }
        self.forget(ns, &rule.trigger.name);
        let mut rule = rule;
        self.hide_output(&mut rule);
        Ok(rule)
    }

    /// A rule, with its status read as OpenWhisk reads it: inactive once its trigger is gone.
    pub async fn get_rule(&self, who: &Identity, ns: &str, name: &str) -> Result<Rule, EventError> {
        let ns = self.core.authorize(who, ns)?;
        check_name(name)?;
        let Some(mut rule) = self.store.rule(ns, name).await? else {
            return Err(self.missing(ns, name, Collection::Rules).await);
        };
        let exists = self.store.trigger(ns, &rule.trigger.name).await?.is_some();
        rule.status = effective(rule.status, exists);
        self.hide_output(&mut rule);
        Ok(rule)
    }

    pub async fn list_rules(
        &self,
        who: &Identity,
        ns: &str,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Rule>, EventError> {
        let ns = self.core.authorize(who, ns)?;
        let mut rules = self.store.list_rules(ns, skip, limit).await?;
        for r in &mut rules {
            self.hide_output(r);
        }
        Ok(rules)
    }

    pub async fn count_rules(&self, who: &Identity, ns: &str) -> Result<u64, EventError> {
        let ns = self.core.authorize(who, ns)?;
        Ok(self.store.count_rules(ns).await?)
    }

    /// Deletes a rule, active or not, its trigger there or not.
    pub async fn delete_rule(
        &self,
        who: &Identity,
        ns: &str,
        name: &str,
    ) -> Result<Rule, EventError> {
        let ns = self.core.authorize(who, ns)?;
        check_name(name)?;
        match self.store.delete_rule(ns, name).await? {
            Some(mut rule) => {
                self.forget(ns, &rule.trigger.name);
                self.hide_output(&mut rule);
                Ok(rule)
            }
            None => Err(self.missing(ns, name, Collection::Rules).await),
        }
    }

    /// Enables or disables a rule (`{"status": "active" | "inactive"}`); the same status again
    /// changes nothing. A rule whose trigger is gone can be disabled, not enabled.
    pub async fn set_rule_status(
        &self,
        who: &Identity,
        ns: &str,
        name: &str,
        status: Option<&Value>,
    ) -> Result<Rule, EventError> {
        let ns = self.core.authorize(who, ns)?;
        check_name(name)?;
        let status = match status {
            Some(Value::String(s)) if s == "active" => RuleStatus::Active,
            Some(Value::String(s)) if s == "inactive" => RuleStatus::Inactive,
            Some(Value::String(s)) => return Err(EventError::BadStatus(s.clone())),
            Some(other) => return Err(EventError::BadStatus(other.to_string())),
            None => return Err(EventError::BadStatus(String::new())),
        };
        let Some(mut rule) = self.store.rule(ns, name).await? else {
            return Err(self.missing(ns, name, Collection::Rules).await);
        };
        let exists = self.store.trigger(ns, &rule.trigger.name).await?.is_some();
        if status == RuleStatus::Active && !exists {
            return Err(EventError::TriggerGone);
        }
        if rule.status != status {
            rule.status = status;
            rule.updated = now_ms();
            let mode = PutMode::Replace {
                expected_version: rule.version.clone(),
            };
            self.store.put_rule(&rule, mode).await?;
            self.forget(ns, &rule.trigger.name);
        }
        rule.status = effective(rule.status, exists);
        self.hide_output(&mut rule);
        Ok(rule)
    }
}
