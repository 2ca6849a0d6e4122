//! GetExecutionHistory: an execution's events as Step Functions' `HistoryEvent`s —
//! `{timestamp, type, id, previousEventId, <details key>: details}`. The details key is
//! `stateEnteredEventDetails` / `stateExitedEventDetails` for every state's entry and exit
//! (`TaskStateEntered`, `ChoiceStateExited`, ...) and `<lowerCamel(type)>EventDetails`
//! otherwise (`taskScheduledEventDetails`, `mapIterationStartedEventDetails`, ...); Gust's own
//! `path` (the branch or iteration) is left out, and `input`, `output` and `parameters` are
//! JSON texts. `previousEventId` is the event before (Gust keeps no other causality); the
//! `nextToken` is the id of the last event given.

use gust_model::HistoryEvent;
use gust_workflow::MAX_HISTORY_PAGE;
use serde::Deserialize;
use serde_json::{Value, json};

use super::executions::execution;
use super::{Ctx, SfnError, date, input, max_results, token_number};

/// The key of `kind`'s details in a `HistoryEvent`.
pub(crate) fn details_key(kind: &str) -> String {
    if kind.ends_with("StateEntered") {
        return "stateEnteredEventDetails".into();
    }
    if kind.ends_with("StateExited") {
        return "stateExitedEventDetails".into();
    }
    let mut chars = kind.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_ascii_lowercase())
        .into_iter()
        .chain(chars)
        .collect();
    out.push_str("EventDetails");
    out
}

/// Members of event details that Step Functions writes as JSON texts.
const JSON_TEXTS: [&str; 3] = ["input", "output", "parameters"];

/// `e` as Step Functions' `HistoryEvent`; without `input`/`output` unless `data`.
pub(crate) fn event(e: &HistoryEvent, data: bool) -> Value {
    let mut out = json!({
        "timestamp": date(e.ts),
        "type": e.kind,
        "id": e.seq,
        "previousEventId": e.seq.saturating_sub(1),
    });
    let mut details = e.details.as_object().cloned().unwrap_or_default();
    details.remove("path");
    for key in JSON_TEXTS {
        if !data && key != "parameters" {
            details.remove(key);
            continue;
        }
        // Kept as a text already, or a value to write as one.
        if let Some(v) = details.get_mut(key)
            && !v.is_string()
        {
            *v = Value::String(v.to_string());
        }
    }
    if !details.is_empty() {
        out[details_key(&e.kind)] = Value::Object(details);
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryInput {
    execution_arn: String,
    #[serde(default)]
    max_results: Option<u64>,
    #[serde(default)]
    reverse_order: bool,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default = "included")]
    include_execution_data: bool,
}

fn included() -> bool {
    true
}

pub(super) async fn get(ctx: &Ctx<'_>, body: Value) -> Result<Value, SfnError> {
    let i: HistoryInput = input(body)?;
    let limit = max_results(i.max_results)?;
    let after = match token_number(i.next_token.as_deref())? {
        Some(n) => n,
        None if i.reverse_order => u64::MAX,
        None => 0,
    };
    let e = execution(ctx, &i.execution_arn).await?;
    // One more than the page, when a page may hold it, tells whether a next one exists.
    let ask = (limit + 1).min(MAX_HISTORY_PAGE);
    let mut events = ctx
        .workflows
        .history(ctx.who, &e.id, after, ask, i.reverse_order)
        .await?;
    let more = events.len() as u64 > limit || (ask == limit && events.len() as u64 == limit);
    events.truncate(limit as usize);
    let list: Vec<Value> = events
        .iter()
        .map(|ev| event(ev, i.include_execution_data))
        .collect();
    let mut out = json!({ "events": list });
    if more && let Some(last) = events.last() {
        out["nextToken"] = json!(last.seq.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_keys_follow_step_functions_names() {
        for (kind, key) in [
            ("TaskStateEntered", "stateEnteredEventDetails"),
            ("ChoiceStateExited", "stateExitedEventDetails"),
            ("TaskScheduled", "taskScheduledEventDetails"),
            ("ExecutionStarted", "executionStartedEventDetails"),
            ("MapIterationStarted", "mapIterationStartedEventDetails"),
            ("MapStateStarted", "mapStateStartedEventDetails"),
            (
                "LambdaFunctionSucceeded",
                "lambdaFunctionSucceededEventDetails",
            ),
        ] {
            assert_eq!(details_key(kind), key);
        }
    }

    #[test]
    fn events_read_as_step_functions_writes_them() {
        let e = HistoryEvent {
            seq: 3,
            ts: 1_500,
            kind: "TaskStateEntered".into(),
            details: json!({"name": "Charge", "input": {"a": 1}, "path": ""}),
        };
        assert_eq!(
            event(&e, true),
            json!({
                "timestamp": 1.5, "type": "TaskStateEntered", "id": 3, "previousEventId": 2,
                "stateEnteredEventDetails": {"name": "Charge", "input": "{\"a\":1}"},
            })
        );
        assert_eq!(
            event(&e, false)["stateEnteredEventDetails"],
            json!({"name": "Charge"})
        );
        let bare = HistoryEvent {
            seq: 1,
            ts: 0,
            kind: "ParallelStateStarted".into(),
            details: json!({"path": "0"}),
        };
        assert_eq!(
            event(&bare, true),
            json!({"timestamp": 0.0, "type": "ParallelStateStarted", "id": 1, "previousEventId": 0})
        );
        let text = HistoryEvent {
            seq: 2,
            ts: 0,
            kind: "TaskSucceeded".into(),
            details: json!({"output": "{\"ok\":true}", "resource": "inc"}),
        };
        assert_eq!(
            event(&text, true)["taskSucceededEventDetails"]["output"],
            "{\"ok\":true}"
        );
    }
}
