//! Conductor actions (annotation `conductor`): the action's own code decides, step by step,
//! which action runs next (OpenWhisk's `{action, params, state}` continuations).

use std::sync::Arc;

use gust_controller::{Controller, Resolved};
use gust_model::{ActivationResponse, ActivationStatus, Identity};
use serde_json::{Map, Value};

use crate::sequence::resolve_component;
use crate::{Parent, Run, failure_status, run_step};

/// A conductor's steps: the conductor's own code runs (a secondary activation) and
/// answers with the next component to run (`action`, `params`, `state`) or the end; the
/// component's result with `state` added is the conductor's next input.
pub(crate) async fn run_conductor(
    core: &Arc<Controller>,
    who: &Identity,
    conductor: &Resolved,
    mut input: Map<String, Value>,
    me: &Parent,
    run: &mut Run,
) {
    let max = core.system_limits().max_sequence_actions;
    let mut components = 0u64;
    loop {
        let record = match run_step(core, who, conductor, input, Vec::new(), me, true).await {
            Ok(r) => r,
            Err(e) => {
                run.response = ActivationResponse::error(
                    failure_status(&e, ActivationStatus::InternalError),
                    format!("The conductor action could not be invoked: {e}"),
                );
                return;
            }
        };
        let mut out = run.add(record);
        if run.response.status != ActivationStatus::Success {
            return;
        }
        let Some(action) = out.remove("action") else {
            // The end: the result is `params`, or the whole output.
            let result = boxed(out.remove("params"), "value").unwrap_or(out);
            run.response =
                ActivationResponse::new(ActivationStatus::Success, Value::Object(result));
            return;
        };
        let params = boxed(out.remove("params"), "value");
        let state = boxed(out.remove("state"), "state");
        components += 1;
        if components > max {
            run.response = ActivationResponse::error(
                ActivationStatus::ApplicationError,
                format!("The conductor action ran more than {max} components."),
            );
            return;
        }
        let name = match action {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let resolved = match resolve_component(core, who, &name).await {
            Ok(r) => r,
            Err(e) => {
                run.response = ActivationResponse::error(
                    ActivationStatus::ApplicationError,
                    format!("Failed to resolve action with name '{name}' during composition: {e}"),
                );
                return;
            }
        };
        let record = match run_step(
            core,
            who,
            &resolved,
            params.unwrap_or_default(),
            Vec::new(),
            me,
            false,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                run.response = ActivationResponse::error(
                    failure_status(&e, ActivationStatus::ApplicationError),
                    format!("The component '{name}' could not be invoked: {e}"),
                );
                return;
            }
        };
        input = run.add(record);
        input.extend(state.unwrap_or_default());
    }
}

/// A continuation field as a dictionary: an object as it is, anything else boxed as
/// `{key: v}`; absent stays absent.
pub(crate) fn boxed(v: Option<Value>, key: &str) -> Option<Map<String, Value>> {
    match v? {
        Value::Object(m) => Some(m),
        other => {
            let mut m = Map::new();
            m.insert(key.to_string(), other);
            Some(m)
        }
    }
}
