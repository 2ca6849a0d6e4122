//! Sequences: an action of kind `sequence` names other actions (its components); the output
//! of each is the input of the next, and the chain stops at the first that does not succeed.

use std::sync::Arc;

use gust_controller::{Controller, ControllerError, Resolved};
use gust_model::{ActivationResponse, ActivationStatus, Identity, SealedParam, names};
use serde_json::{Map, Value};

use crate::{Parent, Run, bad, failure_status, run_step};

/// A component as written (`/ns/a`, `/ns/pkg/a`, `ns/a`, with `_` for the creator's
/// namespace) split into its namespace and its path inside it.
pub(crate) fn split_component<'a>(
    who: &'a Identity,
    c: &'a str,
) -> Result<(&'a str, &'a str), ControllerError> {
    let (ns, path) = c
        .trim_start_matches('/')
        .split_once('/')
        .ok_or_else(|| {
            bad(format!(
                "The sequence component '{c}' is not a fully qualified action name (/namespace/[package/]action)."
            ))
        })?;
    names::check_namespace(ns).map_err(|e| bad(e.to_string()))?;
    Ok((who.namespace_named(ns), path))
}

/// The action a component (as [`split_component`] reads it) names, for `who`.
pub(crate) async fn resolve_component(
    core: &Controller,
    who: &Identity,
    component: &str,
) -> Result<Resolved, ControllerError> {
    let (ns, path) = split_component(who, component)?;
    core.resolve(who, ns, path).await
}

/// Checks a sequence's components for `who`'s action `name` and returns them fully
/// qualified (`/ns/[pkg/]a`).
pub(crate) async fn check_sequence(
    core: &Controller,
    who: &Identity,
    name: &str,
    components: Vec<String>,
) -> Result<Vec<String>, ControllerError> {
    if components.is_empty() {
        return Err(bad("No component specified for the sequence."));
    }
    let myself = format!("/{}/{name}", who.namespace);
    let mut out = Vec::with_capacity(components.len());
    for c in &components {
        let (ns, path) = split_component(who, c)?;
        out.push(format!("/{ns}/{path}"));
    }
    let max = core.system_limits().max_sequence_actions;
    let mut atomic = 0u64;
    let mut todo: Vec<String> = out.clone();
    let mut visited = 0u64;
    while let Some(c) = todo.pop() {
        if c == myself {
            return Err(bad("Sequence may not refer to itself."));
        }
        let resolved = match resolve_component(core, who, &c).await {
            Ok(r) => r,
            Err(ControllerError::NotFound | ControllerError::BadRequest(_)) => {
                return Err(bad(format!("Sequence component does not exist: {c}.")));
            }
            Err(e) => return Err(e),
        };
        let a = &resolved.action;
        if format!("/{}/{}", a.namespace, a.name) == myself {
            return Err(bad("Sequence may not refer to itself."));
        }
        if a.exec.is_sequence() {
            // Expanded every time it is used: its actions count once per use.
            todo.extend(a.exec.components.iter().flatten().cloned());
        } else {
            atomic += 1;
        }
        // Every node visited counts, so a cycle that does not pass through this sequence
        // (made of other sequences) ends here too.
        visited += 1;
        if atomic > max || visited > max * 4 {
            return Err(bad("Too many actions in the sequence."));
        }
    }
    Ok(out)
}

/// A sequence's steps: each component's result is the next one's input; the first that
/// does not succeed ends it.
pub(crate) async fn run_components(
    core: &Arc<Controller>,
    who: &Identity,
    components: &[String],
    mut input: Map<String, Value>,
    secrets: Vec<SealedParam>,
    me: &Parent,
    run: &mut Run,
) {
    // The sequence's secrets go to its first step, as its parameters do.
    let mut secrets = Some(secrets);
    for c in components {
        let first = secrets.take().unwrap_or_default();
        let step = match resolve_component(core, who, c).await {
            Ok(resolved) => run_step(core, who, &resolved, input, first, me, false).await,
            Err(e) => Err(e),
        };
        let record = match step {
            Ok(record) => record,
            Err(e) => {
                run.response = ActivationResponse::error(
                    failure_status(&e, ActivationStatus::DeveloperError),
                    format!("The sequence component '{c}' could not be invoked: {e}"),
                );
                return;
            }
        };
        input = run.add(record);
        if run.response.status != ActivationStatus::Success {
            return;
        }
    }
}
