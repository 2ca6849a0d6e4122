//! Input and output processing: InputPath → Parameters (or a Map's ItemSelector) → the
//! state's work → ResultSelector → ResultPath → OutputPath, as Step Functions applies them.
//!
//! - `InputPath`/`OutputPath`: absent or `$` keep the whole value, `null` gives `{}`, a
//!   path selects (nothing matched is `States.Runtime`).
//! - `Parameters`, `ItemSelector`, `ResultSelector` are [`Template`]s: JSON where a key
//!   `"name.$"` takes the value of a path (`$...` over the value, `$$...` over the context
//!   object) or an intrinsic call, under `name`.
//! - `ResultPath`: absent or `$` makes the result the output, `null` discards the result
//!   (the output is the raw input), a reference path places the result inside the raw
//!   input, creating missing objects (a step through a non-object is
//!   `States.ResultPathMatchFailure`).

use super::intrinsics::Intrinsic;
use super::path::{Path, Root};
use super::{StateError, errors};
use serde_json::{Map, Value};

/// The five input/output fields of a state (those its type allows; the others stay at
/// their defaults, which change nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Io {
    pub(crate) input_path: Selection,
    pub(crate) parameters: Option<Template>,
    pub(crate) result_selector: Option<Template>,
    pub(crate) result_path: ResultTarget,
    pub(crate) output_path: Selection,
}

/// What `InputPath`/`OutputPath` keep.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Selection {
    /// Absent or `$`.
    Whole,
    /// `null`: `{}`.
    Empty,
    Path(Path),
}

/// Where `ResultPath` puts the result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResultTarget {
    /// Absent or `$`: the result is the output.
    Replace,
    /// `null`: the result is dropped, the raw input is the output.
    Discard,
    Path(Path),
}

impl Io {
    /// No processing at all: what Fail (which has none of the fields) uses.
    pub const IDENTITY: Io = Io {
        input_path: Selection::Whole,
        parameters: None,
        result_selector: None,
        result_path: ResultTarget::Replace,
        output_path: Selection::Whole,
    };

    /// InputPath then Parameters (with `.$` keys, `$$.` context paths and intrinsics).
    ///
    /// For a Map this is InputPath only: its ItemSelector applies per item
    /// ([`super::Map::item_input`]).
    pub fn effective_input(&self, raw_input: &Value, context: &Value) -> Result<Value, StateError> {
        let input = self.input_path.apply("InputPath", raw_input)?;
        match &self.parameters {
            Some(template) => template.apply(&input, context, errors::PARAMETER_PATH_FAILURE),
            None => Ok(input),
        }
    }

    /// ResultSelector, ResultPath, OutputPath applied to `result` over `raw_input`.
    pub fn output(
        &self,
        raw_input: &Value,
        result: Value,
        context: &Value,
    ) -> Result<Value, StateError> {
        let result = match &self.result_selector {
            Some(template) => template.apply(&result, context, errors::RUNTIME)?,
            None => result,
        };
        let combined = self.result_path.apply(raw_input, result)?;
        self.output_path.apply("OutputPath", &combined)
    }

    /// Whether the state has Parameters (or ItemSelector) to apply.
    pub fn has_parameters(&self) -> bool {
        self.parameters.is_some()
    }
}

impl Default for Io {
    fn default() -> Io {
        Io::IDENTITY
    }
}

impl Selection {
    fn apply(&self, field: &str, value: &Value) -> Result<Value, StateError> {
        match self {
            Selection::Whole => Ok(value.clone()),
            Selection::Empty => Ok(Value::Object(Map::new())),
            Selection::Path(path) => path.select(value, &Value::Null).ok_or_else(|| {
                StateError::runtime(format!(
                    "Invalid path '{path}' in {field}: the path matched nothing in {}",
                    super::path::kind(value)
                ))
            }),
        }
    }
}

impl ResultTarget {
    /// `result` placed over `raw_input` as this ResultPath says.
    pub(crate) fn apply(&self, raw_input: &Value, result: Value) -> Result<Value, StateError> {
        match self {
            ResultTarget::Replace => Ok(result),
            ResultTarget::Discard => Ok(raw_input.clone()),
            ResultTarget::Path(path) => path.set(raw_input.clone(), result).map_err(|why| {
                StateError::new(
                    errors::RESULT_PATH_MATCH_FAILURE,
                    format!("Unable to apply ResultPath '{path}' to the input: {why}"),
                )
            }),
        }
    }
}

/// A payload template (`Parameters`, `ItemSelector`, `ResultSelector`).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// A value with no `.$` key anywhere inside.
    Literal(Value),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    /// `"field.$": "$.path"` (`field` is the key as written, with `.$`).
    Path {
        field: String,
        path: Path,
    },
    /// `"field.$": "States.X(...)"`.
    Call {
        field: String,
        call: Intrinsic,
    },
}

impl Template {
    /// Compiles a template; the error names the offending key.
    pub fn parse(value: &Value) -> Result<Template, String> {
        Ok(Template {
            root: compile(value)?,
        })
    }

    /// The template filled from `input` (`$`) and `context` (`$$`). A path that matches
    /// nothing fails with `path_error` (`States.ParameterPathFailure` for Parameters and
    /// ItemSelector, `States.Runtime` for ResultSelector).
    pub fn apply(
        &self,
        input: &Value,
        context: &Value,
        path_error: &str,
    ) -> Result<Value, StateError> {
        fill(&self.root, input, context, path_error)
    }
}

fn compile(value: &Value) -> Result<Node, String> {
    match value {
        Value::Object(object) => {
            let mut fields = Vec::with_capacity(object.len());
            let mut dynamic = false;
            for (key, child) in object {
                if let Some(name) = key.strip_suffix(".$") {
                    if object.contains_key(name) {
                        return Err(format!("both \"{name}\" and \"{key}\" are given"));
                    }
                    let Value::String(text) = child else {
                        return Err(format!(
                            "the value of \"{key}\" must be a path or an intrinsic function (a string)"
                        ));
                    };
                    let node = if Intrinsic::looks_like(text) {
                        let call = Intrinsic::parse(text)
                            .map_err(|e| format!("the value of \"{key}\": {e}"))?;
                        Node::Call {
                            field: key.clone(),
                            call,
                        }
                    } else if text.starts_with('$') {
                        let path = Path::parse(text)
                            .map_err(|e| format!("the value of \"{key}\" '{text}': {e}"))?;
                        Node::Path {
                            field: key.clone(),
                            path,
                        }
                    } else {
                        return Err(format!(
                            "the value of \"{key}\" must be a path or an intrinsic function, not '{text}'"
                        ));
                    };
                    dynamic = true;
                    fields.push((name.to_string(), node));
                } else {
                    let node = compile(child)?;
                    dynamic |= !matches!(node, Node::Literal(_));
                    fields.push((key.clone(), node));
                }
            }
            Ok(if dynamic {
                Node::Object(fields)
            } else {
                Node::Literal(value.clone())
            })
        }
        Value::Array(items) => {
            let nodes = items.iter().map(compile).collect::<Result<Vec<_>, _>>()?;
            Ok(if nodes.iter().all(|n| matches!(n, Node::Literal(_))) {
                Node::Literal(value.clone())
            } else {
                Node::Array(nodes)
            })
        }
        other => Ok(Node::Literal(other.clone())),
    }
}

fn fill(
    node: &Node,
    input: &Value,
    context: &Value,
    path_error: &str,
) -> Result<Value, StateError> {
    match node {
        Node::Literal(value) => Ok(value.clone()),
        Node::Object(fields) => {
            let mut object = Map::with_capacity(fields.len());
            for (name, child) in fields {
                object.insert(name.clone(), fill(child, input, context, path_error)?);
            }
            Ok(Value::Object(object))
        }
        Node::Array(items) => items
            .iter()
            .map(|item| fill(item, input, context, path_error))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Node::Path { field, path } => path.select(input, context).ok_or_else(|| {
            let (what, value) = match path.root() {
                Root::Input => ("input", input),
                Root::Context => ("context object", context),
            };
            StateError::new(
                path_error,
                format!(
                    "The JSONPath '{path}' specified for the field '{field}' could not be found in the {what} '{}'",
                    abbreviate(value)
                ),
            )
        }),
        Node::Call { call, .. } => call.eval(input, context),
    }
}

/// JSON text of a value, cut to a length fit for a message.
fn abbreviate(value: &Value) -> String {
    const MAX: usize = 256;
    let text = value.to_string();
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn io(
        input_path: Selection,
        parameters: Option<Value>,
        result_selector: Option<Value>,
        result_path: ResultTarget,
        output_path: Selection,
    ) -> Io {
        Io {
            input_path,
            parameters: parameters.map(|p| Template::parse(&p).unwrap()),
            result_selector: result_selector.map(|p| Template::parse(&p).unwrap()),
            result_path,
            output_path,
        }
    }

    fn path(text: &str) -> Path {
        Path::parse(text).unwrap()
    }

    fn context() -> Value {
        json!({"Execution": {"Id": "exec-1"}, "State": {"Name": "S"}})
    }

    #[test]
    fn input_path() {
        let raw = json!({"a": {"b": 1}, "list": [{"x": 1}, {"x": 2}]});
        let whole = Io::IDENTITY;
        assert_eq!(whole.effective_input(&raw, &context()), Ok(raw.clone()));
        let select = io(
            Selection::Path(path("$.a")),
            None,
            None,
            ResultTarget::Replace,
            Selection::Whole,
        );
        assert_eq!(
            select.effective_input(&raw, &context()),
            Ok(json!({"b": 1}))
        );
        let wildcard = io(
            Selection::Path(path("$.list[*].x")),
            None,
            None,
            ResultTarget::Replace,
            Selection::Whole,
        );
        assert_eq!(
            wildcard.effective_input(&raw, &context()),
            Ok(json!([1, 2]))
        );
        let empty = io(
            Selection::Empty,
            None,
            None,
            ResultTarget::Replace,
            Selection::Whole,
        );
        assert_eq!(empty.effective_input(&raw, &context()), Ok(json!({})));
        let missing = io(
            Selection::Path(path("$.nope")),
            None,
            None,
            ResultTarget::Replace,
            Selection::Whole,
        );
        let error = missing.effective_input(&raw, &context()).unwrap_err();
        assert_eq!(error.error, "States.Runtime");
        assert!(error.cause.contains("$.nope"), "{}", error.cause);
    }

    #[test]
    fn parameters() {
        let raw = json!({"a": {"b": 1}, "name": "Ann"});
        let params = json!({
            "static": {"k": [1, 2]},
            "b.$": "$.b",
            "id.$": "$$.Execution.Id",
            "greeting.$": "States.Format('Hi {}', $.name)",
            "nested": {"x.$": "$.b", "list": [{"y.$": "$$.State.Name"}, 3]}
        });
        let state = io(
            Selection::Path(path("$.a")),
            Some(params),
            None,
            ResultTarget::Replace,
            Selection::Whole,
        );
        let error = state.effective_input(&raw, &context()).unwrap_err();
        assert_eq!(error.error, "States.IntrinsicFailure");
        let params = json!({
            "static": {"k": [1, 2]},
            "b.$": "$.b",
            "id.$": "$$.Execution.Id",
            "nested": {"x.$": "$.b", "list": [{"y.$": "$$.State.Name"}, 3]}
        });
        let state = io(
            Selection::Path(path("$.a")),
            Some(params),
            None,
            ResultTarget::Replace,
            Selection::Whole,
        );
        assert_eq!(
            state.effective_input(&raw, &context()),
            Ok(json!({
                "static": {"k": [1, 2]}, "b": 1, "id": "exec-1",
                "nested": {"x": 1, "list": [{"y": "S"}, 3]}
            }))
        );
        let greeting = io(
            Selection::Whole,
            Some(json!({"greeting.$": "States.Format('Hi {}', $.name)"})),
            None,
            ResultTarget::Replace,
            Selection::Whole,
        );
        assert_eq!(
            greeting.effective_input(&raw, &context()),
            Ok(json!({"greeting": "Hi Ann"}))
        );
        let missing = io(
            Selection::Whole,
            Some(json!({"x.$": "$.nope"})),
            None,
            ResultTarget::Replace,
            Selection::Whole,
        );
        let error = missing.effective_input(&raw, &context()).unwrap_err();
        assert_eq!(error.error, "States.ParameterPathFailure");
        assert!(
            error.cause.contains("'$.nope'") && error.cause.contains("'x.$'"),
            "{}",
            error.cause
        );
    }

    #[test]
    fn result_selector_result_path_output_path() {
        let raw = json!({"keep": 1, "deep": {"x": 0}});
        let result = json!({"Payload": {"v": 5}, "StatusCode": 200});
        let cases = [
            (
                ResultTarget::Replace,
                Selection::Whole,
                Ok(json!({"value": 5})),
            ),
            (ResultTarget::Discard, Selection::Whole, Ok(raw.clone())),
            (
                ResultTarget::Path(path("$.r")),
                Selection::Whole,
                Ok(json!({"keep": 1, "deep": {"x": 0}, "r": {"value": 5}})),
            ),
            (
                ResultTarget::Path(path("$.deep.new.r")),
                Selection::Path(path("$.deep")),
                Ok(json!({"x": 0, "new": {"r": {"value": 5}}})),
            ),
            (
                ResultTarget::Path(path("$.r")),
                Selection::Empty,
                Ok(json!({})),
            ),
            (
                ResultTarget::Path(path("$.r")),
                Selection::Path(path("$.r.value")),
                Ok(json!(5)),
            ),
        ];
        for (result_path, output_path, expected) in cases {
            let state = io(
                Selection::Whole,
                None,
                Some(json!({"value.$": "$.Payload.v"})),
                result_path.clone(),
                output_path,
            );
            assert_eq!(
                state.output(&raw, result.clone(), &context()),
                expected,
                "{result_path:?}"
            );
        }
        let conflict = io(
            Selection::Whole,
            None,
            None,
            ResultTarget::Path(path("$.keep.x")),
            Selection::Whole,
        );
        let error = conflict.output(&raw, json!(1), &context()).unwrap_err();
        assert_eq!(error.error, "States.ResultPathMatchFailure");
        let scalar_input = io(
            Selection::Whole,
            None,
            None,
            ResultTarget::Path(path("$.x")),
            Selection::Whole,
        );
        assert_eq!(
            scalar_input
                .output(&json!("text"), json!(1), &context())
                .unwrap_err()
                .error,
            "States.ResultPathMatchFailure"
        );
        let bad_selector = io(
            Selection::Whole,
            None,
            Some(json!({"v.$": "$.nope"})),
            ResultTarget::Replace,
            Selection::Whole,
        );
        assert_eq!(
            bad_selector
                .output(&raw, result.clone(), &context())
                .unwrap_err()
                .error,
            "States.Runtime"
        );
        let missing_output = io(
            Selection::Whole,
            None,
            None,
            ResultTarget::Replace,
            Selection::Path(path("$.nope")),
        );
        assert_eq!(
            missing_output
                .output(&raw, result, &context())
                .unwrap_err()
                .error,
            "States.Runtime"
        );
    }

    #[test]
    fn templates_refuse_bad_dynamic_keys() {
        for (template, wanted) in [
            (
                json!({"a.$": 1}),
                "must be a path or an intrinsic function (a string)",
            ),
            (
                json!({"a.$": "literal"}),
                "must be a path or an intrinsic function, not 'literal'",
            ),
            (json!({"a.$": "$.b c"}), "\"a.$\""),
            (json!({"a.$": "States.Nope()"}), "unknown intrinsic"),
            (json!({"a": 1, "a.$": "$.b"}), "both"),
            (json!({"x": [{"a.$": 3}]}), "\"a.$\""),
        ] {
            let error = Template::parse(&template).expect_err(&template.to_string());
            assert!(error.contains(wanted), "{template}: {error}");
        }
    }
}
