//! Parsing and validating a definition: every field is checked against its state type
//! (unknown fields are refused), every path and intrinsic is parsed, every `Next`,
//! `Default` and catcher target must name a state of the same machine, and every state
//! must be reachable from `StartAt`. Cycles are allowed.

use super::choice::{ChoiceRule, Comparator, Condition, Operand, OperandType};
use super::intrinsics::Intrinsic;
use super::io::{Io, ResultTarget, Selection, Template};
use super::model::{
    Catcher, Choice, Definition, Fail, Map, Next, Parallel, Pass, Retrier, State, Succeed, Task,
    Wait, WaitFor,
};
use super::path::{Path, Root};
use super::{DefinitionError, errors, timestamp};
use serde_json::{Map as JsonMap, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Step Functions' longest state name.
const MAX_STATE_NAME: usize = 80;
/// Step Functions' ceiling for seconds and attempts (`99999999`).
const MAX_SECONDS: u64 = 99_999_999;
/// The most `MaxDelaySeconds` may be (a year and a day).
const MAX_DELAY_SECONDS: u64 = 31_622_400;
/// The longest Map `Label`.
const MAX_LABEL: usize = 40;

/// Parses and validates an ASL definition (JSON).
pub fn parse(definition: &Value) -> Result<Definition, DefinitionError> {
    machine(definition, Level::Top)
}

/// Which kind of state machine is being parsed: the fields allowed beside `StartAt` and
/// `States` differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Branch,
    /// A Map's `ItemProcessor` (`legacy`: written as `Iterator`).
    Processor {
        legacy: bool,
    },
}

fn machine(value: &Value, level: Level) -> Result<Definition, DefinitionError> {
    let top = |message: String| DefinitionError::top(message);
    let Value::Object(object) = value else {
        return Err(top("the definition must be a JSON object".to_string()));
    };
    let allowed: &[&str] = match level {
        Level::Top => &[
            "StartAt",
            "States",
            "Comment",
            "Version",
            "TimeoutSeconds",
            "QueryLanguage",
        ],
        Level::Branch | Level::Processor { legacy: true } => {
            &["StartAt", "States", "Comment", "QueryLanguage"]
        }
        Level::Processor { legacy: false } => &[
            "StartAt",
            "States",
            "Comment",
            "QueryLanguage",
            "ProcessorConfig",
        ],
    };
    query_language(object).map_err(top)?;
    check_fields(object, allowed).map_err(top)?;
    let comment = optional_string(object, "Comment").map_err(top)?;
    if let Some(version) = object.get("Version")
        && version != "1.0"
    {
        return Err(top(format!("Version must be \"1.0\", not {version}")));
    }
    let timeout_seconds =
        optional_integer(object, "TimeoutSeconds", 1, MAX_SECONDS).map_err(top)?;
    if let Some(config) = object.get("ProcessorConfig") {
        processor_config(config).map_err(top)?;
    }
    let start_at = match object.get("StartAt") {
        None => return Err(top("StartAt is missing".to_string())),
        Some(Value::String(name)) => name.clone(),
        Some(other) => return Err(top(format!("StartAt must be a string, not {other}"))),
    };
    let states = match object.get("States") {
        None => return Err(top("States is missing".to_string())),
        Some(Value::Object(states)) if !states.is_empty() => states,
        Some(Value::Object(_)) => {
            return Err(top("States must name at least one state".to_string()));
        }
        Some(_) => return Err(top("States must be an object of states".to_string())),
    };
    if !states.contains_key(&start_at) {
        return Err(top(format!("StartAt \"{start_at}\" names no state")));
    }
    let names: BTreeSet<&str> = states.keys().map(String::as_str).collect();
    let mut parsed = BTreeMap::new();
    for (name, body) in states {
        if name.is_empty() || name.chars().count() > MAX_STATE_NAME {
            return Err(DefinitionError::in_state(
                name,
                format!("a state's name must have 1 to {MAX_STATE_NAME} characters"),
            ));
        }
        let state = parse_state(body, &names).map_err(|e| DefinitionError::in_state(name, e))?;
        parsed.insert(name.clone(), state);
    }
    let definition = Definition {
        start_at,
        states: parsed,
        timeout_seconds,
        comment,
    };
    reachable(&definition)?;
    Ok(definition)
}

/// Every state must be reachable from `StartAt` through `Next`, Choice rules, `Default`
/// and catchers.
fn reachable(definition: &Definition) -> Result<(), DefinitionError> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut queue = VecDeque::from([definition.start_at.as_str()]);
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name) {
            continue;
        }
        let Some(state) = definition.state(name) else {
            continue;
        };
        if let Some(Next::Next(next)) = state.next() {
            queue.push_back(next);
        }
        if let State::Choice(choice) = state {
            queue.extend(choice.rules.iter().map(|rule| rule.next.as_str()));
            queue.extend(choice.default.as_deref());
        }
        queue.extend(state.catch().iter().map(|catcher| catcher.next.as_str()));
    }
    match definition
        .states
        .keys()
        .find(|name| !seen.contains(name.as_str()))
    {
        Some(name) => Err(DefinitionError::in_state(
            name,
            format!(
                "the state is not reachable from StartAt \"{}\"",
                definition.start_at
            ),
        )),
        None => Ok(()),
    }
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];
const PASS: &[&str] = &[
    "Next",
    "End",
    "InputPath",
    "OutputPath",
    "ResultPath",
    "Parameters",
    "Result",
];
const TASK: &[&str] = &[
    "Next",
    "End",
    "InputPath",
    "OutputPath",
    "ResultPath",
    "Parameters",
    "ResultSelector",
    "Resource",
    "Retry",
    "Catch",
    "TimeoutSeconds",
    "TimeoutSecondsPath",
    "HeartbeatSeconds",
    "HeartbeatSecondsPath",
];
const CHOICE: &[&str] = &["InputPath", "OutputPath", "Choices", "Default"];
const WAIT: &[&str] = &[
    "Next",
    "End",
    "InputPath",
    "OutputPath",
    "Seconds",
    "SecondsPath",
    "Timestamp",
    "TimestampPath",
];
const PARALLEL: &[&str] = &[
    "Next",
    "End",
    "InputPath",
    "OutputPath",
    "ResultPath",
    "Parameters",
    "ResultSelector",
    "Branches",
    "Retry",
    "Catch",
];
const MAP: &[&str] = &[
    "Next",
    "End",
    "InputPath",
    "OutputPath",
    "ResultPath",
    "ResultSelector",
    "ItemsPath",
    "Items",
    "ItemSelector",
    "Parameters",
    "ItemProcessor",
    "Iterator",
    "MaxConcurrency",
    "MaxConcurrencyPath",
    "ToleratedFailureCount",
    "ToleratedFailureCountPath",
    "ToleratedFailurePercentage",
    "ToleratedFailurePercentagePath",
    "Label",
    "Retry",
    "Catch",
];
const SUCCEED: &[&str] = &["InputPath", "OutputPath"];
const FAIL: &[&str] = &["Error", "Cause", "ErrorPath", "CausePath"];

fn parse_state(value: &Value, names: &BTreeSet<&str>) -> Result<State, String> {
    let Value::Object(object) = value else {
        return Err("a state must be a JSON object".to_string());
    };
    let kind = match object.get("Type") {
        None => return Err("Type is missing".to_string()),
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => return Err(format!("Type must be a string, not {other}")),
    };
    let own: &[&str] = match kind {
        "Pass" => PASS,
        "Task" => TASK,
        "Choice" => CHOICE,
        "Wait" => WAIT,
        "Parallel" => PARALLEL,
        "Map" => MAP,
        "Succeed" => SUCCEED,
        "Fail" => FAIL,
        other => {
            return Err(format!(
                "unknown Type \"{other}\" (Pass, Task, Choice, Wait, Parallel, Map, Succeed or Fail)"
            ));
        }
    };
    query_language(object)?;
    if matches!(kind, "Choice" | "Succeed" | "Fail") {
        for field in ["Next", "End"] {
            if object.contains_key(field) {
                return Err(format!("a {kind} state cannot have {field}"));
            }
        }
    }
    let allowed: Vec<&str> = COMMON.iter().chain(own).copied().collect();
    check_fields(object, &allowed)?;
    optional_string(object, "Comment")?;
    Ok(match kind {
        "Pass" => State::Pass(Pass {
            io: io(object)?,
            result: object.get("Result").cloned(),
            next: next_or_end(object, names)?,
        }),
        "Task" => State::Task(task(object, names)?),
        "Choice" => State::Choice(choice(object, names)?),
        "Wait" => State::Wait(wait(object, names)?),
        "Parallel" => State::Parallel(parallel(object, names)?),
        "Map" => State::Map(map(object, names)?),
        "Succeed" => State::Succeed(Succeed { io: io(object)? }),
        _ => State::Fail(fail(object)?),
    })
}

fn task(object: &JsonMap<String, Value>, names: &BTreeSet<&str>) -> Result<Task, String> {
    let resource = match object.get("Resource") {
        None => return Err("Resource is missing".to_string()),
        Some(Value::String(resource)) if !resource.is_empty() => resource.clone(),
        Some(other) => return Err(format!("Resource must be a non-empty string, not {other}")),
    };
    let timeout_seconds = optional_integer(object, "TimeoutSeconds", 1, MAX_SECONDS)?;
    let timeout_seconds_path = optional_reference(object, "TimeoutSecondsPath")?;
    let heartbeat_seconds = optional_integer(object, "HeartbeatSeconds", 1, MAX_SECONDS)?;
    let heartbeat_seconds_path = optional_reference(object, "HeartbeatSecondsPath")?;
    exclusive(object, &["TimeoutSeconds", "TimeoutSecondsPath"])?;
    exclusive(object, &["HeartbeatSeconds", "HeartbeatSecondsPath"])?;
    if let (Some(heartbeat), Some(timeout)) = (heartbeat_seconds, timeout_seconds)
        && heartbeat >= timeout
    {
        return Err(format!(
            "HeartbeatSeconds ({heartbeat}) must be less than TimeoutSeconds ({timeout})"
        ));
    }
    Ok(Task {
        io: io(object)?,
        resource,
        next: next_or_end(object, names)?,
        retry: retriers(object)?,
        catch: catchers(object, names)?,
        timeout_seconds,
        timeout_seconds_path,
        heartbeat_seconds,
        heartbeat_seconds_path,
    })
}

fn choice(object: &JsonMap<String, Value>, names: &BTreeSet<&str>) -> Result<Choice, String> {
    let rules = match object.get("Choices") {
        None => return Err("Choices is missing".to_string()),
        Some(Value::Array(rules)) if !rules.is_empty() => rules,
        Some(Value::Array(_)) => return Err("Choices must have at least one rule".to_string()),
        Some(other) => return Err(format!("Choices must be an array of rules, not {other}")),
    };
    let mut parsed = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        let at = |e: String| format!("Choices[{i}]: {e}");
        let Value::Object(rule) = rule else {
            return Err(at("a rule must be a JSON object".to_string()));
        };
        let next = match rule.get("Next") {
            None => return Err(at("Next is missing".to_string())),
            Some(Value::String(next)) => next.clone(),
            Some(other) => return Err(at(format!("Next must be a string, not {other}"))),
        };
        target(&next, "Next", names).map_err(at)?;
        let condition = condition(rule, true).map_err(at)?;
        parsed.push(ChoiceRule { condition, next });
    }
    let default = optional_string(object, "Default")?;
    if let Some(default) = &default {
        target(default, "Default", names)?;
    }
    Ok(Choice {
        io: io(object)?,
        rules: parsed,
        default,
    })
}

/// A choice rule's condition; `top`: a rule of `Choices` (it has `Next`), else nested.
fn condition(rule: &JsonMap<String, Value>, top: bool) -> Result<Condition, String> {
    let mut comparators = Vec::new();
    let mut combinators = Vec::new();
    for key in rule.keys() {
        match key.as_str() {
            "Comment" | "Variable" => {}
            "Next" if top => {}
            "Next" => return Err("a nested rule cannot have Next".to_string()),
            "And" | "Or" | "Not" => combinators.push(key.as_str()),
            "Condition" => {
                return Err("Condition is a JSONata field; JSONata is not supported".to_string());
            }
            "Assign" | "Output" => return Err(format!("{key} is not supported")),
            other => match Comparator::by_name(other) {
                Some((comparator, is_path)) => comparators.push((other, comparator, is_path)),
                None => return Err(format!("unknown field \"{other}\" in a choice rule")),
            },
        }
    }
    optional_string(rule, "Comment")?;
    match (combinators.as_slice(), comparators.as_slice()) {
        ([combinator], []) => {
            if rule.contains_key("Variable") {
                return Err(format!("a rule with {combinator} cannot have Variable"));
            }
            let value = &rule[*combinator];
            if *combinator == "Not" {
                let Value::Object(inner) = value else {
                    return Err("Not must be a rule (an object)".to_string());
                };
                let inner = condition(inner, false).map_err(|e| format!("Not: {e}"))?;
                return Ok(Condition::Not(Box::new(inner)));
            }
            let list = match value {
                Value::Array(list) if !list.is_empty() => list,
                _ => return Err(format!("{combinator} must be a non-empty array of rules")),
            };
            let mut inner = Vec::with_capacity(list.len());
            for (i, each) in list.iter().enumerate() {
                let Value::Object(each) = each else {
                    return Err(format!("{combinator}[{i}]: a rule must be a JSON object"));
                };
                inner.push(condition(each, false).map_err(|e| format!("{combinator}[{i}]: {e}"))?);
            }
            Ok(if *combinator == "And" {
                Condition::And(inner)
            } else {
                Condition::Or(inner)
            })
        }
        ([], [(name, comparator, is_path)]) => {
            let variable = match rule.get("Variable") {
                None => return Err(format!("Variable is missing (it is required with {name})")),
                Some(Value::String(text)) => input_path(text, "Variable")?,
                Some(other) => return Err(format!("Variable must be a string, not {other}")),
            };
            let value = &rule[*name];
            let operand = if *is_path {
                match value {
                    Value::String(text) => Operand::Path(input_path(text, name)?),
                    other => return Err(format!("{name} must be a path, not {other}")),
                }
            } else {
                let ok = match comparator.operand_type() {
                    OperandType::String => value.is_string(),
                    OperandType::Number => value.is_number(),
                    OperandType::Boolean => value.is_boolean(),
                    OperandType::Timestamp => {
                        value.as_str().is_some_and(|t| timestamp::parse(t).is_some())
                    }
                };
                if !ok {
                    let wanted = match comparator.operand_type() {
                        OperandType::String => "a string",
                        OperandType::Number => "a number",
                        OperandType::Boolean => "a boolean",
                        OperandType::Timestamp => "an RFC 3339 timestamp (e.g. 2024-05-06T07:08:09Z)",
                    };
                    return Err(format!("{name} must be {wanted}, not {value}"));
                }
                Operand::Value(value.clone())
            };
            Ok(Condition::Test {
                variable,
                comparator: *comparator,
                operand,
            })
        }
        ([], []) => Err(
            "a rule needs a comparator (StringEquals, NumericLessThan, IsPresent, ...) or And, Or, Not"
                .to_string(),
        ),
        _ => Err("a rule must have exactly one comparator or one of And, Or, Not".to_string()),
    }
}

/// A path over the state's input (`$`, not `$$`), of any JSONPath form.
fn input_path(text: &str, field: &str) -> Result<Path, String> {
    let path = Path::parse(text).map_err(|e| bad_path(field, text, &e))?;
    if path.root() == Root::Context {
        return Err(format!(
            "{field} \"{text}\" must be a path over the input ($), not the context object"
        ));
    }
    Ok(path)
}

fn wait(object: &JsonMap<String, Value>, names: &BTreeSet<&str>) -> Result<Wait, String> {
    let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
        .into_iter()
        .filter(|field| object.contains_key(*field))
        .collect();
    let wait = match given.as_slice() {
        [] => {
            return Err(
                "a Wait state needs one of Seconds, SecondsPath, Timestamp or TimestampPath"
                    .to_string(),
            );
        }
        ["Seconds"] => WaitFor::Seconds(integer(&object["Seconds"], "Seconds", 0, MAX_SECONDS)?),
        ["SecondsPath"] => WaitFor::SecondsPath(reference(&object["SecondsPath"], "SecondsPath")?),
        ["Timestamp"] => match &object["Timestamp"] {
            Value::String(text) if timestamp::parse(text).is_some() => {
                WaitFor::Timestamp(text.clone())
            }
            other => {
                return Err(format!(
                    "Timestamp must be an RFC 3339 timestamp (e.g. 2024-05-06T07:08:09Z), not {other}"
                ));
            }
        },
        ["TimestampPath"] => {
            WaitFor::TimestampPath(reference(&object["TimestampPath"], "TimestampPath")?)
        }
        several => {
            return Err(format!(
                "a Wait state takes only one of Seconds, SecondsPath, Timestamp and TimestampPath, not {}",
                several.join(" and ")
            ));
        }
    };
    Ok(Wait {
        io: io(object)?,
        next: next_or_end(object, names)?,
        wait,
    })
}

fn parallel(object: &JsonMap<String, Value>, names: &BTreeSet<&str>) -> Result<Parallel, String> {
    let branches = match object.get("Branches") {
        None => return Err("Branches is missing".to_string()),
        Some(Value::Array(branches)) if !branches.is_empty() => branches,
        Some(_) => return Err("Branches must be a non-empty array of state machines".to_string()),
    };
    let mut parsed = Vec::with_capacity(branches.len());
    for (i, branch) in branches.iter().enumerate() {
        parsed.push(
            machine(branch, Level::Branch).map_err(|e| format!("branch {i}: {}", e.message))?,
        );
    }
    Ok(Parallel {
        io: io(object)?,
        branches: parsed,
        next: next_or_end(object, names)?,
        retry: retriers(object)?,
        catch: catchers(object, names)?,
    })
}

fn map(object: &JsonMap<String, Value>, names: &BTreeSet<&str>) -> Result<Map, String> {
    let (field, legacy) = match (object.get("ItemProcessor"), object.get("Iterator")) {
        (Some(_), Some(_)) => return Err("ItemProcessor and Iterator are both given".to_string()),
        (Some(_), None) => ("ItemProcessor", false),
        (None, Some(_)) => ("Iterator", true),
        (None, None) => return Err("ItemProcessor is missing".to_string()),
    };
    let processor = machine(&object[field], Level::Processor { legacy })
        .map_err(|e| format!("{field}: {}", e.message))?;
    exclusive(object, &["ItemSelector", "Parameters"])?;
    exclusive(object, &["ItemsPath", "Items"])?;
    exclusive(object, &["MaxConcurrency", "MaxConcurrencyPath"])?;
    exclusive(
        object,
        &["ToleratedFailureCount", "ToleratedFailureCountPath"],
    )?;
    exclusive(
        object,
        &[
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
        ],
    )?;
    let item_selector = ["ItemSelector", "Parameters"]
        .into_iter()
        .find_map(|field| object.get(field).map(|value| (field, value)))
        .map(|(field, value)| template(value, field))
        .transpose()?;
    let items_path = match object.get("ItemsPath") {
        None => None,
        Some(Value::String(text)) => {
            Path::parse(text).map_err(|e| bad_path("ItemsPath", text, &e))?;
            Some(text.clone())
        }
        Some(other) => return Err(format!("ItemsPath must be a path, not {other}")),
    };
    let items = match object.get("Items") {
        None => None,
        Some(Value::Array(items)) => Some(Value::Array(items.clone())),
        Some(other) => return Err(format!("Items must be an array, not {other}")),
    };
    let max_concurrency = optional_integer(object, "MaxConcurrency", 0, u64::from(u32::MAX))?
        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
    let tolerated_failure_percentage = match object.get("ToleratedFailurePercentage") {
        None => None,
        Some(value) => match value.as_f64() {
            Some(p) if (0.0..=100.0).contains(&p) => Some(p),
            _ => {
                return Err(format!(
                    "ToleratedFailurePercentage must be a number from 0 to 100, not {value}"
                ));
            }
        },
    };
    let label = optional_string(object, "Label")?;
    if let Some(label) = &label
        && label.chars().count() > MAX_LABEL
    {
        return Err(format!("Label must have at most {MAX_LABEL} characters"));
    }
    Ok(Map {
        io: io_fields(object, false)?,
        items_path,
        items,
        item_selector,
        processor,
        max_concurrency,
        max_concurrency_path: optional_reference(object, "MaxConcurrencyPath")?,
        tolerated_failure_count: optional_integer(object, "ToleratedFailureCount", 0, u64::MAX)?,
        tolerated_failure_count_path: optional_reference(object, "ToleratedFailureCountPath")?,
        tolerated_failure_percentage,
        tolerated_failure_percentage_path: optional_reference(
            object,
            "ToleratedFailurePercentagePath",
        )?,
        label,
        next: next_or_end(object, names)?,
        retry: retriers(object)?,
        catch: catchers(object, names)?,
    })
}

fn processor_config(value: &Value) -> Result<(), String> {
    let Value::Object(config) = value else {
        return Err("ProcessorConfig must be an object".to_string());
    };
    check_fields(config, &["Mode", "ExecutionType"])
        .map_err(|e| format!("ProcessorConfig: {e}"))?;
    match config.get("Mode") {
        None => {}
        Some(mode) if mode == "INLINE" || mode == "DISTRIBUTED" => {}
        Some(other) => {
            return Err(format!(
                "ProcessorConfig: Mode must be \"INLINE\" or \"DISTRIBUTED\", not {other}"
            ));
        }
    }
    match config.get("ExecutionType") {
        None => Ok(()),
        Some(kind) if kind == "STANDARD" || kind == "EXPRESS" => Ok(()),
        Some(other) => Err(format!(
            "ProcessorConfig: ExecutionType must be \"STANDARD\" or \"EXPRESS\", not {other}"
        )),
    }
}

fn fail(object: &JsonMap<String, Value>) -> Result<Fail, String> {
    exclusive(object, &["Error", "ErrorPath"])?;
    exclusive(object, &["Cause", "CausePath"])?;
    let dynamic = |field: &str| -> Result<Option<String>, String> {
        match object.get(field) {
            None => Ok(None),
            Some(Value::String(text)) if Intrinsic::looks_like(text) => {
                Intrinsic::parse(text).map_err(|e| format!("{field}: {e}"))?;
                Ok(Some(text.clone()))
            }
            Some(Value::String(text)) => {
                let path = Path::parse(text).map_err(|e| bad_path(field, text, &e))?;
                if !path.is_reference() {
                    return Err(format!(
                        "{field} \"{text}\" must be a reference path (names and indexes over $) or an intrinsic function"
                    ));
                }
                Ok(Some(text.clone()))
            }
            Some(other) => Err(format!(
                "{field} must be a path or an intrinsic function, not {other}"
            )),
        }
    };
    Ok(Fail {
        error: optional_string(object, "Error")?,
        cause: optional_string(object, "Cause")?,
        error_path: dynamic("ErrorPath")?,
        cause_path: dynamic("CausePath")?,
    })
}

/// The input/output fields present (the caller allowed only its type's).
fn io(object: &JsonMap<String, Value>) -> Result<Io, String> {
    io_fields(object, true)
}

fn io_fields(object: &JsonMap<String, Value>, parameters: bool) -> Result<Io, String> {
    let selection = |field: &str| -> Result<Selection, String> {
        match object.get(field) {
            None => Ok(Selection::Whole),
            Some(Value::Null) => Ok(Selection::Empty),
            Some(Value::String(text)) => {
                let path = input_path(text, field)?;
                Ok(if path.text() == "$" {
                    Selection::Whole
                } else {
                    Selection::Path(path)
                })
            }
            Some(other) => Err(format!("{field} must be a path or null, not {other}")),
        }
    };
    let result_path = match object.get("ResultPath") {
        None => ResultTarget::Replace,
        Some(Value::Null) => ResultTarget::Discard,
        Some(Value::String(text)) => {
            let path = result_path(text)?;
            if path.text() == "$" {
                ResultTarget::Replace
            } else {
                ResultTarget::Path(path)
            }
        }
        Some(other) => return Err(format!("ResultPath must be a path or null, not {other}")),
    };
    let parameters = match object.get("Parameters") {
        Some(value) if parameters => Some(template(value, "Parameters")?),
        _ => None,
    };
    let result_selector = object
        .get("ResultSelector")
        .map(|value| template(value, "ResultSelector"))
        .transpose()?;
    Ok(Io {
        input_path: selection("InputPath")?,
        parameters,
        result_selector,
        result_path,
        output_path: selection("OutputPath")?,
    })
}

fn result_path(text: &str) -> Result<Path, String> {
    let path = Path::parse(text).map_err(|e| bad_path("ResultPath", text, &e))?;
    if !path.is_reference() {
        return Err(format!(
            "ResultPath \"{text}\" must be a reference path (names and indexes over $, no wildcards or filters)"
        ));
    }
    Ok(path)
}

fn template(value: &Value, field: &str) -> Result<Template, String> {
    // Any JSON is a template (only objects hold `.$` keys); a JSONata expression is not.
    if let Value::String(text) = value
        && text.starts_with("{%")
    {
        return Err(format!("{field}: JSONata is not supported"));
    }
    Template::parse(value).map_err(|e| format!("{field}: {e}"))
}

fn retriers(object: &JsonMap<String, Value>) -> Result<Vec<Retrier>, String> {
    let Some(list) = object.get("Retry") else {
        return Ok(Vec::new());
    };
    let Value::Array(list) = list else {
        return Err("Retry must be an array of retriers".to_string());
    };
    let mut parsed = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = |e: String| format!("Retry[{i}]: {e}");
        let Value::Object(entry) = entry else {
            return Err(at("a retrier must be a JSON object".to_string()));
        };
        check_fields(
            entry,
            &[
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ],
        )
        .map_err(at)?;
        optional_string(entry, "Comment").map_err(at)?;
        let error_equals = error_equals(entry, i + 1 == list.len(), "retrier").map_err(at)?;
        let interval = optional_integer(entry, "IntervalSeconds", 1, MAX_SECONDS).map_err(at)?;
        let max_attempts = optional_integer(entry, "MaxAttempts", 0, MAX_SECONDS).map_err(at)?;
        let backoff_rate = match entry.get("BackoffRate") {
            None => 2.0,
            Some(value) => match value.as_f64() {
                Some(rate) if rate >= 1.0 && rate.is_finite() => rate,
                _ => {
                    return Err(at(format!(
                        "BackoffRate must be a number of at least 1.0, not {value}"
                    )));
                }
            },
        };
        let max_delay =
            optional_integer(entry, "MaxDelaySeconds", 1, MAX_DELAY_SECONDS).map_err(at)?;
        let jitter_full = match entry.get("JitterStrategy") {
            None => false,
            Some(value) if value == "FULL" => true,
            Some(value) if value == "NONE" => false,
            Some(other) => {
                return Err(at(format!(
                    "JitterStrategy must be \"FULL\" or \"NONE\", not {other}"
                )));
            }
        };
        parsed.push(Retrier {
            error_equals,
            interval_seconds: interval.unwrap_or(1) as f64,
            max_attempts: max_attempts.map_or(3, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            backoff_rate,
            max_delay_seconds: max_delay.map(|n| n as f64),
            jitter_full,
        });
    }
    Ok(parsed)
}

fn catchers(
    object: &JsonMap<String, Value>,
    names: &BTreeSet<&str>,
) -> Result<Vec<Catcher>, String> {
    let Some(list) = object.get("Catch") else {
        return Ok(Vec::new());
    };
    let Value::Array(list) = list else {
        return Err("Catch must be an array of catchers".to_string());
    };
    let mut parsed = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = |e: String| format!("Catch[{i}]: {e}");
        let Value::Object(entry) = entry else {
            return Err(at("a catcher must be a JSON object".to_string()));
        };
        check_fields(entry, &["ErrorEquals", "Next", "ResultPath", "Comment"]).map_err(at)?;
        optional_string(entry, "Comment").map_err(at)?;
        let error_equals = error_equals(entry, i + 1 == list.len(), "catcher").map_err(at)?;
        let next = match entry.get("Next") {
            None => return Err(at("Next is missing".to_string())),
            Some(Value::String(next)) => next.clone(),
            Some(other) => return Err(at(format!("Next must be a string, not {other}"))),
        };
        target(&next, "Next", names).map_err(at)?;
        let result_path = match entry.get("ResultPath") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(text)) => {
                result_path(text).map_err(at)?;
                Some(Some(text.clone()))
            }
            Some(other) => {
                return Err(at(format!(
                    "ResultPath must be a path or null, not {other}"
                )));
            }
        };
        parsed.push(Catcher {
            error_equals,
            next,
            result_path,
        });
    }
    Ok(parsed)
}

/// `ErrorEquals` of a retrier or catcher (`last`: it is the last of its list).
fn error_equals(
    entry: &JsonMap<String, Value>,
    last: bool,
    what: &str,
) -> Result<Vec<String>, String> {
    let list = match entry.get("ErrorEquals") {
        None => return Err("ErrorEquals is missing".to_string()),
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(_) => return Err("ErrorEquals must be a non-empty array of error names".to_string()),
    };
    let mut names = Vec::with_capacity(list.len());
    for name in list {
        let Value::String(name) = name else {
            return Err(format!("ErrorEquals must hold strings, not {name}"));
        };
        if name.starts_with("States.") && !errors::KNOWN.contains(&name.as_str()) {
            return Err(format!(
                "unknown error name \"{name}\" (names starting with States. are reserved)"
            ));
        }
        names.push(name.clone());
    }
    if names.iter().any(|name| name == errors::ALL) {
        if names.len() > 1 {
            return Err("States.ALL must be the only error name in its ErrorEquals".to_string());
        }
        if !last {
            return Err(format!("the {what} with States.ALL must be the last one"));
        }
    }
    Ok(names)
}

fn next_or_end(object: &JsonMap<String, Value>, names: &BTreeSet<&str>) -> Result<Next, String> {
    let end = match object.get("End") {
        None => false,
        Some(Value::Bool(end)) => *end,
        Some(other) => return Err(format!("End must be true or false, not {other}")),
    };
    match (object.get("Next"), end) {
        (Some(_), true) => Err("Next and End cannot both be given".to_string()),
        (None, true) => Ok(Next::End),
        (None, false) => Err("Next or End is required".to_string()),
        (Some(Value::String(next)), false) => {
            target(next, "Next", names)?;
            Ok(Next::Next(next.clone()))
        }
        (Some(other), false) => Err(format!("Next must be a string, not {other}")),
    }
}

fn target(name: &str, field: &str, names: &BTreeSet<&str>) -> Result<(), String> {
    if names.contains(name) {
        Ok(())
    } else {
        Err(format!("{field} \"{name}\" names no state"))
    }
}

/// `QueryLanguage`, if given, must be JSONPath.
fn query_language(object: &JsonMap<String, Value>) -> Result<(), String> {
    match object.get("QueryLanguage") {
        None => Ok(()),
        Some(value) if value == "JSONPath" => Ok(()),
        Some(value) if value == "JSONata" => Err("JSONata is not supported".to_string()),
        Some(other) => Err(format!("QueryLanguage must be \"JSONPath\", not {other}")),
    }
}

fn check_fields(object: &JsonMap<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        None => Ok(()),
        Some(key) => Err(match key.as_str() {
            "ItemReader" | "ItemBatcher" | "ResultWriter" | "Credentials" => {
                format!("{key} is not supported")
            }
            "Assign" => "Assign (workflow variables) is not supported".to_string(),
            "Arguments" | "Output" => format!("{key} is a JSONata field; JSONata is not supported"),
            _ => format!("unknown field \"{key}\""),
        }),
    }
}

/// At most one of `fields`.
fn exclusive(object: &JsonMap<String, Value>, fields: &[&str]) -> Result<(), String> {
    let given: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|field| object.contains_key(*field))
        .collect();
    if given.len() > 1 {
        Err(format!("{} cannot both be given", given.join(" and ")))
    } else {
        Ok(())
    }
}

fn optional_string(object: &JsonMap<String, Value>, field: &str) -> Result<Option<String>, String> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(format!("{field} must be a string, not {other}")),
    }
}

fn optional_integer(
    object: &JsonMap<String, Value>,
    field: &str,
    least: u64,
    most: u64,
) -> Result<Option<u64>, String> {
    object
        .get(field)
        .map(|value| integer(value, field, least, most))
        .transpose()
}

fn integer(value: &Value, field: &str, least: u64, most: u64) -> Result<u64, String> {
    match value.as_u64() {
        Some(n) if (least..=most).contains(&n) => Ok(n),
        _ if most == u64::MAX => Err(format!(
            "{field} must be an integer of at least {least}, not {value}"
        )),
        _ => Err(format!(
            "{field} must be an integer from {least} to {most}, not {value}"
        )),
    }
}

fn optional_reference(
    object: &JsonMap<String, Value>,
    field: &str,
) -> Result<Option<String>, String> {
    object
        .get(field)
        .map(|value| reference(value, field).map(|path| path.text().to_string()))
        .transpose()
}

/// A reference path over the input.
fn reference(value: &Value, field: &str) -> Result<Path, String> {
    let Value::String(text) = value else {
        return Err(format!("{field} must be a path, not {value}"));
    };
    let path = Path::parse(text).map_err(|e| bad_path(field, text, &e))?;
    if !path.is_reference() {
        return Err(format!(
            "{field} \"{text}\" must be a reference path (names and indexes over $)"
        ));
    }
    Ok(path)
}

fn bad_path(field: &str, text: &str, why: &str) -> String {
    format!("{field} \"{text}\" is not a valid path: {why}")
}
