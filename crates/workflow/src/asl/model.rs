//! The typed definition [`super::parse`] produces, and what each state computes from its
//! input without running anything: a Choice's next state, a Wait's end, a Map's items,
//! a Fail's error, a Retrier's delay, a Catcher's output.

use super::choice::ChoiceRule;
use super::intrinsics::Intrinsic;
use super::io::{Io, Template};
use super::path::{Path, kind};
use super::{StateError, errors, timestamp};
use serde_json::{Map as JsonMap, Value, json};
use std::collections::BTreeMap;

/// A state machine (the top level, a Parallel branch or a Map's processor).
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub start_at: String,
    pub states: BTreeMap<String, State>,
    /// The execution's time limit (top level only).
    pub timeout_seconds: Option<u64>,
    pub comment: Option<String>,
}

impl Definition {
    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.get(name)
    }
}

/// One state, by type.
// A definition is parsed once and kept; unboxed variants keep matching on them plain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Pass(Pass),
    Task(Task),
    Choice(Choice),
    Wait(Wait),
    Parallel(Parallel),
    Map(Map),
    Succeed(Succeed),
    Fail(Fail),
}

impl State {
    /// The ASL `Type` (`"Pass"`, `"Task"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            State::Pass(_) => "Pass",
            State::Task(_) => "Task",
            State::Choice(_) => "Choice",
            State::Wait(_) => "Wait",
            State::Parallel(_) => "Parallel",
            State::Map(_) => "Map",
            State::Succeed(_) => "Succeed",
            State::Fail(_) => "Fail",
        }
    }

    /// Its input/output processing (no processing at all for Fail).
    pub fn io(&self) -> &Io {
        static IDENTITY: Io = Io::IDENTITY;
        match self {
            State::Pass(s) => &s.io,
            State::Task(s) => &s.io,
            State::Choice(s) => &s.io,
            State::Wait(s) => &s.io,
            State::Parallel(s) => &s.io,
            State::Map(s) => &s.io,
            State::Succeed(s) => &s.io,
            State::Fail(_) => &IDENTITY,
        }
    }

    /// `Next`/`End`; `None` for Choice (its rules decide), Succeed and Fail.
    pub fn next(&self) -> Option<&Next> {
        match self {
            State::Pass(s) => Some(&s.next),
            State::Task(s) => Some(&s.next),
            State::Wait(s) => Some(&s.next),
            State::Parallel(s) => Some(&s.next),
            State::Map(s) => Some(&s.next),
            State::Choice(_) | State::Succeed(_) | State::Fail(_) => None,
        }
    }

    /// Its retriers (Task, Parallel and Map have them).
    pub fn retry(&self) -> &[Retrier] {
        match self {
            State::Task(s) => &s.retry,
            State::Parallel(s) => &s.retry,
            State::Map(s) => &s.retry,
            _ => &[],
        }
    }

    /// Its catchers (Task, Parallel and Map have them).
    pub fn catch(&self) -> &[Catcher] {
        match self {
            State::Task(s) => &s.catch,
            State::Parallel(s) => &s.catch,
            State::Map(s) => &s.catch,
            _ => &[],
        }
    }
}

/// Where a state goes when it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Next(String),
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    pub io: Io,
    /// `Result`: the state's result instead of its effective input.
    pub result: Option<Value>,
    pub next: Next,
}

impl Pass {
    /// The state's result: `Result` when given, else the effective input.
    pub fn result(&self, effective_input: Value) -> Value {
        self.result.clone().unwrap_or(effective_input)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub io: Io,
    pub resource: String,
    pub next: Next,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub timeout_seconds: Option<u64>,
    pub timeout_seconds_path: Option<String>,
    pub heartbeat_seconds: Option<u64>,
    pub heartbeat_seconds_path: Option<String>,
}

impl Task {
    /// `TimeoutSeconds`, or `TimeoutSecondsPath` read from `input`; `None` if neither.
    pub fn timeout(&self, input: &Value) -> Result<Option<u64>, StateError> {
        seconds(
            self.timeout_seconds,
            self.timeout_seconds_path.as_deref(),
            "TimeoutSecondsPath",
            input,
        )
    }

    /// `HeartbeatSeconds`, or `HeartbeatSecondsPath` read from `input`; `None` if neither.
    pub fn heartbeat(&self, input: &Value) -> Result<Option<u64>, StateError> {
        seconds(
            self.heartbeat_seconds,
            self.heartbeat_seconds_path.as_deref(),
            "HeartbeatSecondsPath",
            input,
        )
    }
}

/// A fixed number of seconds, or a positive integer read at a reference path.
fn seconds(
    fixed: Option<u64>,
    path: Option<&str>,
    field: &str,
    input: &Value,
) -> Result<Option<u64>, StateError> {
    let Some(path) = path else {
        return Ok(fixed);
    };
    let value = read(path, field, input)?;
    match value.as_u64() {
        Some(n) if n > 0 => Ok(Some(n)),
        _ => Err(StateError::runtime(format!(
            "{field} '{path}' must name a positive integer, not {value}"
        ))),
    }
}

/// The value at a reference path of `input`; `States.Runtime` when there is none.
fn read(path: &str, field: &str, input: &Value) -> Result<Value, StateError> {
    let parsed = Path::parse(path)
        .map_err(|e| StateError::runtime(format!("{field} '{path}' is not a path: {e}")))?;
    parsed.select(input, &Value::Null).ok_or_else(|| {
        StateError::runtime(format!(
            "Invalid path '{path}' in {field}: the path matched nothing in {}",
            kind(input)
        ))
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub io: Io,
    pub rules: Vec<ChoiceRule>,
    pub default: Option<String>,
}

impl Choice {
    /// The next state for this (already InputPath-processed) input: the first rule that
    /// holds, else `Default`; `States.NoChoiceMatched` without one.
    pub fn next(&self, input: &Value) -> Result<&str, StateError> {
        self.rules
            .iter()
            .find(|rule| rule.condition.holds(input))
            .map(|rule| rule.next.as_str())
            .or(self.default.as_deref())
            .ok_or_else(|| {
                StateError::new(
                    errors::NO_CHOICE_MATCHED,
                    "No Matches! No choice rule matched and there is no Default",
                )
            })
    }
}

/// How long a Wait state waits (exactly one of the four).
#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Seconds(u64),
    SecondsPath(Path),
    /// An RFC 3339 timestamp (validated).
    Timestamp(String),
    TimestampPath(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub io: Io,
    pub next: Next,
    pub wait: WaitFor,
}

impl Wait {
    /// When the wait ends, ms since the epoch, for this input at `now_ms` (a timestamp in
    /// the past ends it at once: `now_ms`).
    pub fn until_ms(&self, input: &Value, now_ms: u64) -> Result<u64, StateError> {
        let at_seconds = |seconds: u64| now_ms.saturating_add(seconds.saturating_mul(1000));
        let at_timestamp = |text: &str, field: &str| {
            let instant = timestamp::parse(text).ok_or_else(|| {
                StateError::runtime(format!(
                    "{field}: '{text}' is not an RFC 3339 timestamp (e.g. 2024-05-06T07:08:09Z)"
                ))
            })?;
            let ms = u64::try_from(timestamp::millis(instant)).unwrap_or(0);
            Ok(ms.max(now_ms))
        };
        match &self.wait {
            WaitFor::Seconds(seconds) => Ok(at_seconds(*seconds)),
            WaitFor::SecondsPath(path) => {
                let value = read(path.text(), "SecondsPath", input)?;
                let seconds = value.as_u64().ok_or_else(|| {
                    StateError::runtime(format!(
                        "SecondsPath '{path}' must name a non-negative integer, not {value}"
                    ))
                })?;
                Ok(at_seconds(seconds))
            }
            WaitFor::Timestamp(text) => at_timestamp(text, "Timestamp"),
            WaitFor::TimestampPath(path) => match read(path.text(), "TimestampPath", input)? {
                Value::String(text) => at_timestamp(&text, "TimestampPath"),
                other => Err(StateError::runtime(format!(
                    "TimestampPath '{path}' must name a string, not {other}"
                ))),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parallel {
    pub io: Io,
    pub branches: Vec<Definition>,
    pub next: Next,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

/// A Map state (INLINE; `DISTRIBUTED` runs inline too). Its [`Io`] has no Parameters: the
/// ItemSelector (or legacy Parameters) is `item_selector`, applied per item.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    pub io: Io,
    pub items_path: Option<String>,
    /// `Items`: a literal array to iterate instead of `ItemsPath`.
    pub items: Option<Value>,
    pub item_selector: Option<Template>,
    pub processor: Definition,
    /// 0 = unbounded.
    pub max_concurrency: u32,
    pub max_concurrency_path: Option<String>,
    pub tolerated_failure_count: Option<u64>,
    pub tolerated_failure_count_path: Option<String>,
    pub tolerated_failure_percentage: Option<f64>,
    pub tolerated_failure_percentage_path: Option<String>,
    pub label: Option<String>,
    pub next: Next,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

impl Map {
    /// The items to iterate (`Items`, or `ItemsPath` over the effective input, default
    /// `$`); `States.Runtime` if that is not an array.
    pub fn items(&self, input: &Value, context: &Value) -> Result<Vec<Value>, StateError> {
        let value = match (&self.items, &self.items_path) {
            (Some(items), _) => items.clone(),
            (None, None) => input.clone(),
            (None, Some(text)) => {
                let path = Path::parse(text).map_err(|e| {
                    StateError::runtime(format!("ItemsPath '{text}' is not a path: {e}"))
                })?;
                path.select(input, context).ok_or_else(|| {
                    StateError::runtime(format!(
                        "Invalid path '{text}' in ItemsPath: the path matched nothing"
                    ))
                })?
            }
        };
        match value {
            Value::Array(items) => Ok(items),
            other => Err(StateError::runtime(format!(
                "The Map's items ({}) are {}, not an array",
                self.items_path.as_deref().unwrap_or("$"),
                kind(&other)
            ))),
        }
    }

    /// How many iterations may run at once (0 = unbounded): `MaxConcurrency`, or
    /// `MaxConcurrencyPath` read from `input`.
    pub fn concurrency(&self, input: &Value) -> Result<u32, StateError> {
        let Some(path) = &self.max_concurrency_path else {
            return Ok(self.max_concurrency);
        };
        let value = read(path, "MaxConcurrencyPath", input)?;
        value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                StateError::runtime(format!(
                    "MaxConcurrencyPath '{path}' must name a non-negative integer, not {value}"
                ))
            })
    }

    /// How many failed items (count, percentage) the Map tolerates before it fails:
    /// the fixed fields or their `...Path` forms read from `input`. `(None, None)`: none.
    pub fn tolerated_failures(
        &self,
        input: &Value,
    ) -> Result<(Option<u64>, Option<f64>), StateError> {
        let count = match &self.tolerated_failure_count_path {
            None => self.tolerated_failure_count,
            Some(path) => {
                let value = read(path, "ToleratedFailureCountPath", input)?;
                Some(value.as_u64().ok_or_else(|| {
                    StateError::runtime(format!(
                        "ToleratedFailureCountPath '{path}' must name a non-negative integer, not {value}"
                    ))
                })?)
            }
        };
        let percentage = match &self.tolerated_failure_percentage_path {
            None => self.tolerated_failure_percentage,
            Some(path) => {
                let value = read(path, "ToleratedFailurePercentagePath", input)?;
                Some(
                    value
                        .as_f64()
                        .filter(|p| (0.0..=100.0).contains(p))
                        .ok_or_else(|| {
                            StateError::runtime(format!(
                                "ToleratedFailurePercentagePath '{path}' must name a number from 0 to 100, not {value}"
                            ))
                        })?,
                )
            }
        };
        Ok((count, percentage))
    }

    /// The input of iteration `index`: the ItemSelector filled over the effective input
    /// with `$$.Map.Item.Index`/`Value` set in the context, or the item itself when there
    /// is no ItemSelector.
    pub fn item_input(
        &self,
        effective_input: &Value,
        item: &Value,
        index: usize,
        context: &Value,
    ) -> Result<Value, StateError> {
        let Some(selector) = &self.item_selector else {
            return Ok(item.clone());
        };
        let context = Map::item_context(context, item, index);
        selector.apply(effective_input, &context, errors::PARAMETER_PATH_FAILURE)
    }

    /// `context` with `Map.Item` set to `{"Index": index, "Value": item}`.
    pub fn item_context(context: &Value, item: &Value, index: usize) -> Value {
        let mut context = match context {
            Value::Object(object) => object.clone(),
            _ => JsonMap::new(),
        };
        context.insert(
            "Map".to_string(),
            json!({"Item": {"Index": index, "Value": item}}),
        );
        Value::Object(context)
    }
}

/// Succeed: InputPath and OutputPath only.
#[derive(Debug, Clone, PartialEq)]
pub struct Succeed {
    pub io: Io,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fail {
    pub error: Option<String>,
    pub cause: Option<String>,
    /// A reference path or an intrinsic function giving the error name.
    pub error_path: Option<String>,
    /// A reference path or an intrinsic function giving the cause.
    pub cause_path: Option<String>,
}

impl Fail {
    /// The execution's (or branch's) error and cause; `""` for one not given. An
    /// `ErrorPath`/`CausePath` that fails or gives no string makes the failure
    /// `States.Runtime` with the reason as the cause.
    pub fn error_and_cause(&self, input: &Value) -> (String, String) {
        let error = dynamic(
            self.error.as_deref(),
            self.error_path.as_deref(),
            "ErrorPath",
            input,
        );
        let cause = dynamic(
            self.cause.as_deref(),
            self.cause_path.as_deref(),
            "CausePath",
            input,
        );
        match (error, cause) {
            (Ok(error), Ok(cause)) => (error, cause),
            (Err(problem), _) | (_, Err(problem)) => (problem.error, problem.cause),
        }
    }
}

fn dynamic(
    fixed: Option<&str>,
    path: Option<&str>,
    field: &str,
    input: &Value,
) -> Result<String, StateError> {
    let Some(text) = path else {
        return Ok(fixed.unwrap_or_default().to_string());
    };
    let value = if Intrinsic::looks_like(text) {
        Intrinsic::parse(text)
            .map_err(|e| StateError::runtime(format!("{field}: {e}")))?
            .eval(input, &Value::Null)
            .map_err(|e| StateError::runtime(format!("{field}: {}", e.cause)))?
    } else {
        read(text, field, input)?
    };
    match value {
        Value::String(text) => Ok(text),
        other => Err(StateError::runtime(format!(
            "{field} '{text}' must give a string, not {other}"
        ))),
    }
}

/// One `Retry` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    /// Seconds before the first retry (default 1).
    pub interval_seconds: f64,
    /// Retries at most (default 3; 0 = never).
    pub max_attempts: u32,
    /// Multiplier of the interval per retry (default 2.0).
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    /// `JitterStrategy: FULL`.
    pub jitter_full: bool,
}

impl Retrier {
    pub fn matches(&self, error: &str) -> bool {
        error_matches(&self.error_equals, error)
    }

    /// Delay before retry number `retry` (1 = first retry), in ms; `random` in [0,1) for
    /// FULL jitter: `IntervalSeconds × BackoffRate^(retry-1)`, capped at
    /// `MaxDelaySeconds`, times `random` with full jitter.
    pub fn delay_ms(&self, retry: u32, random: f64) -> u64 {
        let exponent = i32::try_from(retry.max(1) - 1).unwrap_or(i32::MAX);
        let mut delay = self.interval_seconds * self.backoff_rate.powi(exponent);
        if let Some(max) = self.max_delay_seconds {
            delay = delay.min(max);
        }
        if self.jitter_full {
            delay *= random.clamp(0.0, 1.0);
        }
        // A float-to-integer cast saturates: an overflowing backoff gives u64::MAX.
        (delay * 1000.0).round() as u64
    }
}

/// The first retrier matching `error`, with its index (the engine counts attempts per
/// retrier).
pub fn retrier_for<'a>(retriers: &'a [Retrier], error: &str) -> Option<(usize, &'a Retrier)> {
    retriers
        .iter()
        .enumerate()
        .find(|(_, retrier)| retrier.matches(error))
}

/// One `Catch` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    /// `None`: the default `$`; `Some(None)`: `null` (the error is discarded).
    pub result_path: Option<Option<String>>,
}

impl Catcher {
    pub fn matches(&self, error: &str) -> bool {
        error_matches(&self.error_equals, error)
    }

    /// The output for a caught error: `{"Error", "Cause"}` placed at ResultPath over the
    /// raw input.
    pub fn output(&self, raw_input: &Value, error: &StateError) -> Result<Value, StateError> {
        let record = json!({"Error": error.error, "Cause": error.cause});
        match &self.result_path {
            None => Ok(record),
            Some(None) => Ok(raw_input.clone()),
            Some(Some(text)) => {
                let path = Path::parse(text).map_err(|e| {
                    StateError::runtime(format!("ResultPath '{text}' is not a path: {e}"))
                })?;
                path.set(raw_input.clone(), record).map_err(|why| {
                    StateError::new(
                        errors::RESULT_PATH_MATCH_FAILURE,
                        format!("Unable to apply ResultPath '{text}' to the input: {why}"),
                    )
                })
            }
        }
    }
}

/// The first catcher matching `error`.
pub fn catcher_for<'a>(catchers: &'a [Catcher], error: &str) -> Option<&'a Catcher> {
    catchers.iter().find(|catcher| catcher.matches(error))
}

/// Whether an `ErrorEquals` list matches `error`: by name, or through the wildcards
/// `States.ALL` (any error) and `States.TaskFailed` (any but `States.Timeout`), which do
/// not match the terminal `States.Runtime` and `States.DataLimitExceeded`.
fn error_matches(error_equals: &[String], error: &str) -> bool {
    let terminal = errors::TERMINAL.contains(&error);
    error_equals.iter().any(|name| {
        name == error
            || (name == errors::ALL && !terminal)
            || (name == errors::TASK_FAILED && !terminal && error != errors::TIMEOUT)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retrier(interval: f64, backoff: f64, max_delay: Option<f64>, jitter: bool) -> Retrier {
        Retrier {
            error_equals: vec!["States.ALL".to_string()],
            interval_seconds: interval,
            max_attempts: 3,
            backoff_rate: backoff,
            max_delay_seconds: max_delay,
            jitter_full: jitter,
        }
    }

    #[test]
    fn retry_delays() {
        let plain = retrier(1.0, 2.0, None, false);
        assert_eq!(
            (1..=5).map(|n| plain.delay_ms(n, 0.5)).collect::<Vec<_>>(),
            [1000, 2000, 4000, 8000, 16000]
        );
        assert_eq!(plain.delay_ms(0, 0.5), 1000);
        let capped = retrier(3.0, 1.5, Some(5.0), false);
        assert_eq!(
            (1..=4).map(|n| capped.delay_ms(n, 0.5)).collect::<Vec<_>>(),
            [3000, 4500, 5000, 5000]
        );
        let flat = retrier(2.0, 1.0, None, false);
        assert_eq!(flat.delay_ms(10, 0.0), 2000);
        let jitter = retrier(2.0, 2.0, Some(6.0), true);
        assert_eq!(jitter.delay_ms(1, 0.5), 1000);
        assert_eq!(jitter.delay_ms(2, 0.25), 1000);
        assert_eq!(jitter.delay_ms(3, 0.5), 3000);
        assert_eq!(jitter.delay_ms(3, 0.0), 0);
        let huge = retrier(99_999_999.0, 2.0, None, false);
        assert_eq!(huge.delay_ms(2000, 0.0), u64::MAX);
    }

    #[test]
    fn error_matching() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(error_matches(&names(&["A", "B"]), "B"));
        assert!(!error_matches(&names(&["A"]), "B"));
        assert!(error_matches(&names(&["States.ALL"]), "Custom"));
        assert!(error_matches(&names(&["States.ALL"]), "States.Timeout"));
        assert!(!error_matches(&names(&["States.ALL"]), "States.Runtime"));
        assert!(!error_matches(
            &names(&["States.ALL"]),
            "States.DataLimitExceeded"
        ));
        assert!(error_matches(&names(&["States.TaskFailed"]), "Custom"));
        assert!(error_matches(
            &names(&["States.TaskFailed"]),
            "States.HeartbeatTimeout"
        ));
        assert!(!error_matches(
            &names(&["States.TaskFailed"]),
            "States.Timeout"
        ));
        assert!(!error_matches(
            &names(&["States.TaskFailed"]),
            "States.Runtime"
        ));
        assert!(error_matches(&names(&["States.Runtime"]), "States.Runtime"));
    }

    #[test]
    fn retrier_and_catcher_lookup() {
        let retriers = vec![
            Retrier {
                error_equals: vec!["A".to_string()],
                ..retrier(1.0, 2.0, None, false)
            },
            retrier(1.0, 2.0, None, false),
        ];
        assert_eq!(retrier_for(&retriers, "A").map(|(i, _)| i), Some(0));
        assert_eq!(retrier_for(&retriers, "B").map(|(i, _)| i), Some(1));
        assert_eq!(
            retrier_for(&retriers, "States.Runtime").map(|(i, _)| i),
            None
        );
        let catchers = vec![
            Catcher {
                error_equals: vec!["A".to_string()],
                next: "OnA".to_string(),
                result_path: None,
            },
            Catcher {
                error_equals: vec!["States.ALL".to_string()],
                next: "OnAll".to_string(),
                result_path: None,
            },
        ];
        assert_eq!(
            catcher_for(&catchers, "A").map(|c| c.next.as_str()),
            Some("OnA")
        );
        assert_eq!(
            catcher_for(&catchers, "Z").map(|c| c.next.as_str()),
            Some("OnAll")
        );
        assert!(catcher_for(&catchers[..1], "Z").is_none());
    }

    #[test]
    fn catcher_output() {
        let raw = json!({"keep": 1});
        let error = StateError::new("Boom", "it broke");
        let catcher = |result_path| Catcher {
            error_equals: vec!["States.ALL".to_string()],
            next: "N".to_string(),
            result_path,
        };
        assert_eq!(
            catcher(None).output(&raw, &error),
            Ok(json!({"Error": "Boom", "Cause": "it broke"}))
        );
        assert_eq!(catcher(Some(None)).output(&raw, &error), Ok(raw.clone()));
        assert_eq!(
            catcher(Some(Some("$.err".to_string()))).output(&raw, &error),
            Ok(json!({"keep": 1, "err": {"Error": "Boom", "Cause": "it broke"}}))
        );
        assert_eq!(
            catcher(Some(Some("$.keep.err".to_string())))
                .output(&raw, &error)
                .unwrap_err()
                .error,
            "States.ResultPathMatchFailure"
        );
    }

    #[test]
    fn fail_error_and_cause() {
        let input = json!({"e": "Bad", "c": "because", "n": 5});
        let fail = |error: Option<&str>,
                    cause: Option<&str>,
                    error_path: Option<&str>,
                    cause_path: Option<&str>| Fail {
            error: error.map(str::to_string),
            cause: cause.map(str::to_string),
            error_path: error_path.map(str::to_string),
            cause_path: cause_path.map(str::to_string),
        };
        assert_eq!(
            fail(Some("E"), Some("C"), None, None).error_and_cause(&input),
            ("E".to_string(), "C".to_string())
        );
        assert_eq!(
            fail(None, None, None, None).error_and_cause(&input),
            (String::new(), String::new())
        );
        assert_eq!(
            fail(
                None,
                None,
                Some("$.e"),
                Some("States.Format('{}: {}', $.e, $.c)")
            )
            .error_and_cause(&input),
            ("Bad".to_string(), "Bad: because".to_string())
        );
        let (error, cause) = fail(None, None, Some("$.n"), None).error_and_cause(&input);
        assert_eq!(error, "States.Runtime");
        assert!(cause.contains("ErrorPath"), "{cause}");
        let (error, cause) = fail(Some("E"), None, None, Some("$.missing")).error_and_cause(&input);
        assert_eq!(error, "States.Runtime");
        assert!(cause.contains("$.missing"), "{cause}");
    }
}
