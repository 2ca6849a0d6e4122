//! Triggers, rules and schedules as stored and as the REST API shows them (OpenWhisk's
//! shapes). A trigger is a named event channel of a namespace; a rule connects one trigger to
//! one action; a schedule is a timer source attached to a trigger (the alarm feeds).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::entity::KeyValue;

/// A trigger of a namespace. `limits` is always `{}` (OpenWhisk's `TriggerLimits` has no
/// field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub publish: bool,
    pub parameters: Vec<KeyValue>,
    pub annotations: Vec<KeyValue>,
    #[serde(default)]
    pub limits: Map<String, Value>,
    pub updated: u64,
}

/// A fully qualified entity name as OpenWhisk answers it: `{"path": "ns[/pkg]", "name": "a"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityPath {
    pub path: String,
    pub name: String,
}

impl EntityPath {
    /// `/ns[/pkg]/name`.
    pub fn qualified(&self) -> String {
        format!("/{}/{}", self.path, self.name)
    }

    /// The namespace (the first segment of `path`).
    pub fn namespace(&self) -> &str {
        self.path.split('/').next().unwrap_or_default()
    }

    /// The name inside the namespace: `name` or `pkg/name`.
    pub fn inner(&self) -> String {
        match self.path.split_once('/') {
            Some((_, pkg)) => format!("{pkg}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Parses `/ns/name`, `/ns/pkg/name`, `ns/name`, `ns/pkg/name` or a bare `name` (in
    /// `default_ns`). `None` when it has empty segments or more than three.
    pub fn parse(text: &str, default_ns: &str) -> Option<EntityPath> {
        let absolute = text.starts_with('/');
        let parts: Vec<&str> = text.trim_start_matches('/').split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        let (ns, pkg, name) = match parts.as_slice() {
            [name] if !absolute => (default_ns, None, *name),
            [ns, name] => (*ns, None, *name),
            [ns, pkg, name] => (*ns, Some(*pkg), *name),
            _ => return None,
        };
        let ns = if ns == "_" { default_ns } else { ns };
        Some(EntityPath {
            path: match pkg {
                Some(pkg) => format!("{ns}/{pkg}"),
                None => ns.to_string(),
            },
            name: name.to_string(),
        })
    }
}

/// Whether a rule runs its action when its trigger fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    Active,
    Inactive,
}

/// A rule of a namespace: when `trigger` fires and the rule is active, `action` runs with the
/// fire's arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub publish: bool,
    pub annotations: Vec<KeyValue>,
    pub trigger: EntityPath,
    pub action: EntityPath,
    pub status: RuleStatus,
    pub updated: u64,
}

/// A timer attached to a trigger (the `/whisk.system/alarms` feeds), as stored with its
/// position: the next tick due, the tick being fired (claimed, not yet accepted), and which
/// process owns it until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub namespace: String,
    pub trigger: String,
    pub spec: ScheduleSpec,
    /// The next tick to fire (ms since the epoch); `None` once the schedule has ended.
    pub next_ms: Option<u64>,
    /// A tick claimed and not yet fired to the end (see decision 0020).
    pub pending_ms: Option<u64>,
    /// The process that fires it, while its lease holds.
    pub owner: Option<String>,
    pub lease_ms: u64,
    /// Ticks fired so far.
    pub fired: u64,
}

/// What a schedule is: how its ticks fall and what each fire carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    pub timing: Timing,
    /// Fired as the trigger's payload (`trigger_payload`).
    #[serde(default)]
    pub payload: Map<String, Value>,
    /// No tick before this (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// No tick after this (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_ms: Option<u64>,
    /// The feed action that made it (`/whisk.system/alarms/alarm`, ...).
    pub feed: String,
    /// The feed's parameters as the client gave them (dates as given), which a `READ` answers.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Paused by the feed's `PAUSE`: no tick fires until `UNPAUSE`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// When it was created or last updated (ms since the epoch).
    pub changed_ms: u64,
}

/// How a schedule's ticks fall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Timing {
    /// A cron expression of 5 fields (minute first) or 6 (second first), in `timezone` (an
    /// IANA name; UTC when absent).
    Cron {
        cron: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    /// Every `minutes`, from the start (or the creation).
    Interval { minutes: u64, origin_ms: u64 },
    /// Once, at `at_ms`; the trigger is deleted after the fire when `delete_after_fire`
    /// (with its rules when that is `rules`).
    Once {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "DeleteAfterFire::is_no")]
        delete_after_fire: DeleteAfterFire,
    },
}

/// What a `once` schedule deletes after its fire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteAfterFire {
    #[default]
    No,
    /// The trigger.
    Trigger,
    /// The trigger and every rule that names it.
    Rules,
}

impl DeleteAfterFire {
    fn is_no(&self) -> bool {
        *self == DeleteAfterFire::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_paths_parse_as_openwhisk_names_them() {
        let p = |s: &str| EntityPath::parse(s, "me").map(|p| (p.path, p.name));
        assert_eq!(p("/ns/a"), Some(("ns".into(), "a".into())));
        assert_eq!(p("/ns/pkg/a"), Some(("ns/pkg".into(), "a".into())));
        assert_eq!(p("ns/pkg/a"), Some(("ns/pkg".into(), "a".into())));
        assert_eq!(p("a"), Some(("me".into(), "a".into())));
        assert_eq!(p("/_/a"), Some(("me".into(), "a".into())));
        assert_eq!(p("/a"), None);
        assert_eq!(p("/ns/p/q/a"), None);
        assert_eq!(p("/ns//a"), None);
        assert_eq!(p(""), None);
        let e = EntityPath::parse("/ns/pkg/a", "me").unwrap();
        assert_eq!((e.namespace(), e.inner().as_str()), ("ns", "pkg/a"));
        assert_eq!(e.qualified(), "/ns/pkg/a");
    }
}

/// A trigger's subscription to an event source (a feed of a source's package under
/// `whisk.system`: a webhook, a queue, a topic), as stored: its configuration, and which
/// process runs it until when (decision 0021).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub namespace: String,
    pub trigger: String,
    pub spec: SubscriptionSpec,
    /// The process that runs it (a connected source), while its lease holds.
    pub owner: Option<String>,
    pub lease_ms: u64,
    /// What its runner last said: connected, or why not; messages moved aside.
    pub status: Map<String, Value>,
}

/// What a subscription is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    /// The source's package (`mqtt`, `webhooks`).
    pub source: String,
    /// The feed in it (`subscribe`, `github`).
    pub feed: String,
    /// The feed's parameters as its source checked them, secrets included: never shown.
    pub config: Map<String, Value>,
    /// Whether it holds a connection, run by one process at a time (webhooks do not).
    pub listens: bool,
    /// Paused by the feed's `PAUSE`: not run until `UNPAUSE`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// When it was created or last updated (ms since the epoch); a runner whose copy is older
    /// restarts it.
    pub changed_ms: u64,
}

/// An event source mapping's progress, as stored: one per rule of a stream trigger (decision
/// 0027). Written only by the process that runs the trigger's subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    pub namespace: String,
    /// The rule whose action the mapping invokes.
    pub rule: String,
    /// The stream trigger it reads: a row whose trigger is not its rule's any more starts
    /// again.
    pub trigger: String,
    /// The stream sequence up to which every record is done (0: nothing yet).
    pub checkpoint: u64,
    /// What its runner last said (counters, lag, last batch, last error), shown as it is.
    pub state: Map<String, Value>,
    /// When it was last written, ms since the epoch.
    pub updated_ms: u64,
}
