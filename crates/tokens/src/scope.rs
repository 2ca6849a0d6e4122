//! A token's scope: which verbs it may use on which entities of its namespace.
//!
//! **Grammar** (one item per string; a scope is a list of items):
//!
//! ```text
//! item     = verbs ":" pattern
//! verbs    = verb *("," verb)            ; read | write | invoke | fire
//! pattern  = "*" | kind ["/" name] ["*"] ; kind: actions, packages, triggers, rules,
//!                                        ;   activations, apis, sites, limits, namespaces,
//!                                        ;   metrics, mappings, workflows
//! ```
//!
//! An entity is named as in the REST paths, without the namespace: `actions/hello`,
//! `actions/billing/charge` (in package `billing`), `triggers/deploy-prod`, `activations/<id>`;
//! a list is its kind alone (`actions`).
//!
//! **Matching:** a pattern without `*` covers the entity it names and everything under it
//! (`read:activations` covers the list and every record; `invoke:actions/billing` covers
//! `actions/billing/charge` but not `actions/billing-old`); a trailing `*` makes the pattern a
//! prefix of the name (`fire:triggers/deploy-*`); `*` alone covers every entity. `invoke`
//! applies to actions only, `fire` to triggers only.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a request does to an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// Get or list.
    Read,
    /// Create, update or delete (and a rule's state).
    Write,
    /// Run an action.
    Invoke,
    /// Fire a trigger.
    Fire,
}

impl Verb {
    pub const ALL: [Verb; 4] = [Verb::Read, Verb::Write, Verb::Invoke, Verb::Fire];

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Read => "read",
            Verb::Write => "write",
            Verb::Invoke => "invoke",
            Verb::Fire => "fire",
        }
    }

    fn parse(s: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of entity a pattern may start with.
pub const KINDS: [&str; 13] = [
    "actions",
    "packages",
    "triggers",
    "rules",
    "activations",
    "apis",
    "sites",
    "limits",
    "namespaces",
    // A namespace's series (`GET /api/v1/namespaces/{ns}/metrics`).
    "metrics",
    // A namespace's event source mappings (`GET /api/v1/namespaces/{ns}/mappings[/{rule}]`).
    "mappings",
    // Workflows, their executions, history and task tokens (decision 0028): `read:workflows`,
    // `write:workflows` (create, start, stop, send events and task results).
    "workflows",
    // A namespace's dead letters (decision 0028): `read:deadletters`, `write:deadletters`
    // (delete, redrive).
    "deadletters",
];

/// A scope item that does not follow the grammar; the message names the item and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad scope item '{item}': {why}")]
pub struct ScopeError {
    pub item: String,
    pub why: String,
}

/// One entity pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// The name, without a trailing `*`.
    name: String,
    /// Whether `name` is a prefix (`*` at the end).
    prefix: bool,
}

impl Pattern {
    fn covers(&self, entity: &str) -> bool {
        if self.prefix {
            entity.starts_with(&self.name)
        } else {
            entity == self.name
                || entity
                    .strip_prefix(self.name.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    }
}

/// One item: verbs on a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    verbs: Vec<Verb>,
    pattern: Pattern,
}

/// A parsed scope; [`Scope::items`] gives back the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    items: Vec<Item>,
    text: Vec<String>,
}

impl Scope {
    /// Parses every item; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Scope, ScopeError> {
        let mut scope = Scope::default();
        for item in items {
            let item = item.as_ref().trim();
            scope.items.push(parse_item(item)?);
            scope.text.push(item.to_string());
        }
        Ok(scope)
    }

    /// Whether the scope lets `verb` act on `entity` (e.g. `actions/billing/charge`).
    pub fn allows(&self, verb: Verb, entity: &str) -> bool {
        self.items
            .iter()
            .any(|i| i.verbs.contains(&verb) && i.pattern.covers(entity))
    }

    /// The items as written.
    pub fn items(&self) -> &[String] {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text.join(" "))
    }
}

fn parse_item(item: &str) -> Result<Item, ScopeError> {
    let bad = |why: &str| ScopeError {
        item: item.to_string(),
        why: why.to_string(),
    };
    let (verbs, pattern) = item
        .split_once(':')
        .ok_or_else(|| bad("expected verbs:pattern, e.g. invoke:actions/billing/*"))?;
    let verbs = verbs
        .split(',')
        .map(|v| {
            Verb::parse(v.trim()).ok_or_else(|| {
                bad(&format!(
                    "unknown verb '{}' (read, write, invoke, fire)",
                    v.trim()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pattern = pattern.trim();
    let (name, prefix) = match pattern.strip_suffix('*') {
        Some(name) => (name, true),
        None => (pattern, false),
    };
    if name.contains('*') {
        return Err(bad("'*' may only end a pattern"));
    }
    if pattern.is_empty() {
        return Err(bad("no entity pattern after ':'"));
    }
    if name.contains("//") || name.chars().any(char::is_whitespace) {
        return Err(bad("an entity name has no empty segment or space"));
    }
    let kind = name.split('/').next().unwrap_or_default();
    // `*` alone, or a name that starts with a whole kind (`actions`, `actions/b*`); `act*`,
    // a prefix of the kinds themselves, is too loose to mean anything.
    let whole_kind = !prefix || name.contains('/');
    if !whole_kind && !name.is_empty() {
        return Err(bad("a pattern starts with a whole kind, e.g. actions/*"));
    }
    if whole_kind && !KINDS.contains(&kind) {
        return Err(bad(&format!(
            "unknown entity kind '{kind}' ({})",
            KINDS.join(", ")
        )));
    }
    for (verb, kind_needed) in [(Verb::Invoke, "actions"), (Verb::Fire, "triggers")] {
        if verbs.contains(&verb) && !name.is_empty() && kind != kind_needed {
            return Err(bad(&format!("{verb} applies to {kind_needed} only")));
        }
    }
    Ok(Item {
        verbs,
        pattern: Pattern {
            name: name.to_string(),
            prefix,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scope` (items separated by spaces) allows `verb` on `entity` as `expected` says.
    fn check(scope: &str, verb: Verb, entity: &str, expected: bool) {
        let items: Vec<&str> = scope.split(' ').collect();
        let parsed = Scope::parse(&items).unwrap();
        assert_eq!(
            parsed.allows(verb, entity),
            expected,
            "{scope} / {verb} {entity}"
        );
    }

    /// `item` is refused, with a message containing `why`.
    fn refused(item: &str, why: &str) {
        let e = Scope::parse(&[item]).unwrap_err();
        assert_eq!(e.item, item);
        assert!(e.to_string().contains(why), "{item}: {e}");
        assert!(e.to_string().contains(item), "{item}: {e}");
    }

    use Verb::*;

    #[test]
    fn matching() {
        check(
            "invoke:actions/billing/*",
            Invoke,
            "actions/billing/charge",
            true,
        );
        check("invoke:actions/billing/*", Invoke, "actions/billing", false);
        check(
            "invoke:actions/billing/*",
            Invoke,
            "actions/billingx/a",
            false,
        );
        check(
            "invoke:actions/billing/*",
            Read,
            "actions/billing/charge",
            false,
        );
        check(
            "invoke:actions/billing",
            Invoke,
            "actions/billing/charge",
            true,
        );
        check("invoke:actions/billing", Invoke, "actions/billing", true);
        check(
            "invoke:actions/billing",
            Invoke,
            "actions/billing-old",
            false,
        );
        check("invoke:actions/hello", Invoke, "actions/hello", true);
        check("invoke:actions/hello", Invoke, "actions/hello2", false);
        check("read:activations", Read, "activations", true);
        check("read:activations", Read, "activations/0123abc/logs", true);
        check("read:activations", Read, "actions", false);
        check("read:activations", Write, "activations", false);
        check("read,write:*", Read, "rules/r", true);
        check("read,write:*", Write, "packages/p", true);
        check("read,write:*", Invoke, "actions/a", false);
        check("fire:triggers/deploy-*", Fire, "triggers/deploy-prod", true);
        check("fire:triggers/deploy-*", Fire, "triggers/deploy-", true);
        check("fire:triggers/deploy-*", Fire, "triggers/build", false);
        check(
            "fire:triggers/deploy-*",
            Read,
            "triggers/deploy-prod",
            false,
        );
        check("read:actions", Read, "actions", true);
        check("read:actions/*", Read, "actions", false);
        check("read:actions/*", Read, "actions/a", true);
        check("invoke:*", Invoke, "actions/a", true);
        check("invoke:*", Fire, "triggers/t", false);
        check("read:actions invoke:actions/a", Invoke, "actions/a", true);
        check("read:actions invoke:actions/a", Invoke, "actions/b", false);
        check("read:actions invoke:actions/a", Read, "actions/b", true);
        check("read,write,invoke,fire:*", Fire, "triggers/t", true);
        check("read,write:packages/p", Write, "packages/p", true);
        check("read:metrics", Read, "metrics", true);
        check("read:actions", Read, "metrics", false);
        check("read:mappings", Read, "mappings/r", true);
        check("read:rules", Read, "mappings", false);
        check("read:workflows", Read, "workflows", true);
        check("read:deadletters", Read, "deadletters/0a1b", true);
        check("read:actions", Read, "deadletters", false);
        check("write:deadletters", Write, "deadletters/0a1b/redrive", true);
        check("read:actions/a", Read, "actions/a/delivery", true);
        check("read:actions/a", Write, "actions/a/delivery", false);
        check(
            "write:workflows/orders",
            Write,
            "workflows/orders/executions",
            true,
        );
        check("write:workflows/orders", Write, "workflows", false);
        check("read:actions", Read, "workflows", false);
    }

    #[test]
    fn refusals() {
        refused("actions/a", "expected verbs:pattern");
        refused("run:actions/a", "unknown verb 'run'");
        refused("read,:actions", "unknown verb ''");
        refused("read:", "no entity pattern");
        refused("read:acts/a", "unknown entity kind 'acts'");
        refused("read:act*", "starts with a whole kind");
        refused("read:actions/*/x", "'*' may only end");
        refused("read:actions//a", "empty segment");
        refused("invoke:triggers/t", "invoke applies to actions only");
        refused("fire:actions/a", "fire applies to triggers only");
        refused("read,invoke:packages/p", "invoke applies to actions only");
    }

    #[test]
    fn text_survives() {
        let s = Scope::parse(&["invoke:actions/a", "read:activations"]).unwrap();
        assert_eq!(s.items(), ["invoke:actions/a", "read:activations"]);
        assert_eq!(s.to_string(), "invoke:actions/a read:activations");
    }
}
