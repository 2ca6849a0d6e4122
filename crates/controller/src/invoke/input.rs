//! An invocation's input: the parameters the action inherits and defines, then the
//! request's. Secret parameters stay sealed and travel beside the input (decision 0022).

use gust_model::limits::{MAX_JSON_DEPTH, json_depth};
use gust_model::{SealedParam, annotations};
use serde_json::{Map, Value};

use crate::{ControllerError, Resolved};

/// Environment variables of a function (its `init` parameters).
type Environment = Vec<(String, String)>;

/// What a function is given: its input, its environment, and its secrets (sealed; the
/// invoker adds them to the input or the environment).
#[derive(Debug)]
pub struct Prepared {
    pub input: Map<String, Value>,
    pub env: Environment,
    pub secrets: Vec<SealedParam>,
}

/// The function's input and environment: inherited and own parameters, then the request's
/// (which may not redefine a parameter of a `final` action, unless the input is a sequence's
/// step: OpenWhisk checks only what a request sends). A request's parameter replaces a
/// secret of the same name.
pub fn prepare_input(
    resolved: &Resolved,
    params: Map<String, Value>,
    check_final: bool,
) -> Result<Prepared, ControllerError> {
    if params.values().any(|v| json_depth(v) >= MAX_JSON_DEPTH) {
        return Err(ControllerError::malformed(format_args!(
            "the parameters nest arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    let action = &resolved.action;
    let defined = resolved.placed_parameters();
    if check_final
        && !params.is_empty()
        && action.annotation_is_truthy(annotations::FINAL)
        && defined.iter().any(|(p, _)| params.contains_key(&p.key))
    {
        return Err(ControllerError::ReservedParameters);
    }
    let mut input = Map::new();
    let mut env = Vec::new();
    let mut secrets = Vec::new();
    for (p, place) in defined {
        if p.secret {
            if params.contains_key(&p.key) {
                continue;
            }
            let Value::String(sealed) = &p.value else {
                return Err(ControllerError::Internal(format!(
                    "the secret parameter '{}' is not stored sealed",
                    p.key
                )));
            };
            secrets.push(SealedParam {
                key: p.key.clone(),
                sealed: sealed.clone(),
                place,
                init: p.init,
            });
        } else if p.init {
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
    Ok(Prepared {
        input,
        env,
        secrets,
    })
}
