//! An invocation's input: the parameters the action inherits and defines, then the
//! request's.

use gust_model::annotations;
use gust_model::limits::{MAX_JSON_DEPTH, json_depth};
use serde_json::{Map, Value};

use crate::{ControllerError, Resolved};

/// Environment variables of a function (its `init` parameters).
type Environment = Vec<(String, String)>;

/// The function's input and environment: inherited and own parameters, then the request's
/// (which may not redefine a parameter of a `final` action, unless the input is a sequence's
/// step: OpenWhisk checks only what a request sends).
pub fn prepare_input(
    resolved: &Resolved,
    params: Map<String, Value>,
    check_final: bool,
) -> Result<(Map<String, Value>, Environment), ControllerError> {
    if params.values().any(|v| json_depth(v) >= MAX_JSON_DEPTH) {
        return Err(ControllerError::malformed(format_args!(
            "the parameters nest arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    let action = &resolved.action;
    let merged;
    let defined = if resolved.inherited.is_empty() {
        &action.parameters
    } else {
        merged = resolved.parameters();
        &merged
    };
    if check_final
        && !params.is_empty()
        && action.annotation_is_truthy(annotations::FINAL)
        && defined.iter().any(|p| params.contains_key(&p.key))
    {
        return Err(ControllerError::ReservedParameters);
    }
    let mut input = Map::new();
    let mut env = Vec::new();
    for p in defined {
        if p.init {
            let v = match &p.value {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            env.push((p.key.clone(), v));
        } else {
            input.insert(p.key.clone(), p.value.clone());
        }
    }
    input.extend(params);
    Ok((input, env))
}
