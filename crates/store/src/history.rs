//! Workflow history rows as both backends keep them (decision 0028): events numbered from 1
//! with no gaps, and large payloads stored apart. A field of an event's `details` whose JSON
//! text is over [`INLINE_LIMIT`] is stored once per namespace in `workflow_payloads`, keyed by
//! the hex SHA-256 of that text, and the row keeps `{"$payload": "<hex>"}` in its place; if
//! the details are still too long after that (many fields of a middling size), the whole
//! details text is stored so instead. Reads put the payloads back, so callers never see a
//! reference.
//!
//! **Invariant:** a round trip gives back exactly what was written: a value that merely
//! looks like a reference is itself stored as a payload, so it comes back as written.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use gust_model::{Execution, HistoryEvent, RunState};

use crate::{Result, RunCommit, StoreError};

/// The longest JSON text kept in a history row.
pub(crate) const INLINE_LIMIT: usize = 8 * 1024;

/// The key of a reference.
const REFERENCE: &str = "$payload";

/// A history event as its row keeps it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub seq: i64,
    pub ts: i64,
    pub kind: String,
    pub details: String,
}

/// A payload stored apart: its hash and its JSON text.
pub(crate) type Payload = (String, String);

/// History rows to insert and the payloads they reference, each once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Written {
    pub rows: Vec<Row>,
    pub payloads: Vec<Payload>,
}

/// The rows of `events`, which must be numbered `first`, `first + 1`, ..., and the payloads
/// they reference, each once.
fn rows(events: &[HistoryEvent], first: u64) -> Result<Written> {
    let mut rows = Vec::with_capacity(events.len());
    let mut payloads = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let expected = first + i as u64;
        if event.seq != expected {
            return Err(StoreError::Backend(format!(
                "history event {} of a write is numbered {}, not {expected}",
                i + 1,
                event.seq
            )));
        }
        let stored = split(&event.details)?;
        payloads.extend(stored.payloads);
        rows.push(Row {
            seq: int(event.seq),
            ts: int(event.ts),
            kind: event.kind.clone(),
            details: stored.details,
        });
    }
    Ok(Written {
        rows,
        payloads: unique(payloads),
    })
}

/// The rows and payloads of a new execution's first events, checked: numbered from 1, the
/// run state at the last of them.
pub(crate) fn new_execution(
    execution: &Execution,
    run: &RunState,
    events: &[HistoryEvent],
) -> Result<Written> {
    let written = rows(events, 1)?;
    run_at(run, events.len() as u64, &execution.id)?;
    Ok(written)
}

/// The rows and payloads of a commit, checked: its events follow `expected_seq`, its run
/// state is at the last of them, its execution is its own.
pub(crate) fn commit(c: &RunCommit<'_>) -> Result<Written> {
    let written = rows(c.events, c.expected_seq + 1)?;
    run_at(c.run, c.expected_seq + c.events.len() as u64, c.id)?;
    if let Some(e) = c.execution
        && (e.namespace != c.namespace || e.id != c.id)
    {
        return Err(StoreError::Backend(format!(
            "a commit of execution {}/{} carries execution {}/{}",
            c.namespace, c.id, e.namespace, e.id
        )));
    }
    Ok(written)
}

fn run_at(run: &RunState, last: u64, id: &str) -> Result<()> {
    if run.seq != last {
        return Err(StoreError::Backend(format!(
            "the run state of execution {id} says history event {}, but its events end at {last}",
            run.seq
        )));
    }
    Ok(())
}

/// Events from their rows, with the hashes of the payloads they reference (read those, then
/// [`resolve`]).
pub(crate) fn events(rows: Vec<Row>) -> Result<(Vec<HistoryEvent>, Vec<String>)> {
    let mut hashes = Vec::new();
    let events = rows
        .into_iter()
        .map(|r| {
            let (details, refs) = parse(&r.details)?;
            hashes.extend(refs);
            Ok(HistoryEvent {
                seq: r.seq.max(0) as u64,
                ts: r.ts.max(0) as u64,
                kind: r.kind,
                details,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    hashes.sort_unstable();
    hashes.dedup();
    Ok((events, hashes))
}

/// Puts the payloads (`payloads`, by hash) back into `events`.
pub(crate) fn resolve(
    events: Vec<HistoryEvent>,
    payloads: &HashMap<String, String>,
) -> Result<Vec<HistoryEvent>> {
    events
        .into_iter()
        .map(|mut e| {
            e.details = join(e.details, payloads)?;
            Ok(e)
        })
        .collect()
}

/// A stored integer: u64 past i64's range is clamped.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An event's details as a history row keeps them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    /// The row's `details` text (references in place of large payloads).
    pub details: String,
    /// The payloads it references, as `(hash, JSON text)`.
    pub payloads: Vec<(String, String)>,
}

/// Splits an event's details into its row text and the payloads to store apart.
fn split(details: &Value) -> Result<Stored> {
    let whole = serde_json::to_string(details)?;
    let mut payloads = Vec::new();
    let inline = match details {
        Value::Object(fields) if !is_reference(details) => {
            let mut kept = Map::with_capacity(fields.len());
            for (name, value) in fields {
                let text = serde_json::to_string(value)?;
                let value = if text.len() > INLINE_LIMIT || is_reference(value) {
                    let hash = hash(&text);
                    payloads.push((hash.clone(), text));
                    reference(hash)
                } else {
                    value.clone()
                };
                kept.insert(name.clone(), value);
            }
            serde_json::to_string(&Value::Object(kept))?
        }
        _ => whole.clone(),
    };
    if inline.len() <= INLINE_LIMIT && !is_reference(details) {
        return Ok(Stored {
            details: inline,
            payloads,
        });
    }
    // Still too long, or a reference look-alike as a whole: the whole text goes apart (it
    // holds no references, so one look-up reads it back).
    let hash = hash(&whole);
    Ok(Stored {
        details: serde_json::to_string(&reference(hash.clone()))?,
        payloads: vec![(hash, whole)],
    })
}

/// A history row's details, parsed, and the hashes of the payloads they reference.
fn parse(text: &str) -> Result<(Value, Vec<String>)> {
    let details: Value = serde_json::from_str(text)?;
    let mut hashes = Vec::new();
    if let Some(h) = referenced(&details) {
        hashes.push(h.to_string());
    } else if let Value::Object(fields) = &details {
        hashes.extend(fields.values().filter_map(referenced).map(str::to_string));
    }
    Ok((details, hashes))
}

/// Puts the payloads `details` references back in place (`payloads` by hash).
fn join(details: Value, payloads: &HashMap<String, String>) -> Result<Value> {
    let resolve = |hash: &str| -> Result<Value> {
        let text = payloads.get(hash).ok_or_else(|| {
            StoreError::Backend(format!("history payload {hash} is missing from the store"))
        })?;
        Ok(serde_json::from_str(text)?)
    };
    if let Some(h) = referenced(&details) {
        return resolve(h);
    }
    let Value::Object(fields) = details else {
        return Ok(details);
    };
    fields
        .into_iter()
        .map(|(name, value)| match referenced(&value) {
            Some(h) => Ok((name, resolve(h)?)),
            None => Ok((name, value)),
        })
        .collect::<Result<Map<_, _>>>()
        .map(Value::Object)
}

/// The payloads of several rows, each once.
fn unique(payloads: impl IntoIterator<Item = Payload>) -> Vec<Payload> {
    let mut seen = HashMap::new();
    for (hash, text) in payloads {
        seen.entry(hash).or_insert(text);
    }
    seen.into_iter().collect()
}

fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn reference(hash: String) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert(REFERENCE.into(), Value::String(hash));
    Value::Object(map)
}

/// The hash `value` references, if it is a reference.
fn referenced(value: &Value) -> Option<&str> {
    let Value::Object(map) = value else {
        return None;
    };
    if map.len() != 1 {
        return None;
    }
    let hash = map.get(REFERENCE)?.as_str()?;
    (hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(hash)
}

fn is_reference(value: &Value) -> bool {
    referenced(value).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Splits and joins `details`; returns the row text and how many payloads went apart.
    fn round_trip(details: Value) -> (String, usize) {
        let stored = split(&details).unwrap();
        let (parsed, hashes) = parse(&stored.details).unwrap();
        let payloads: HashMap<String, String> = stored.payloads.iter().cloned().collect();
        assert_eq!(hashes.len(), stored.payloads.len());
        assert!(hashes.iter().all(|h| payloads.contains_key(h)));
        assert_eq!(join(parsed, &payloads).unwrap(), details);
        assert!(stored.details.len() <= INLINE_LIMIT);
        (stored.details, stored.payloads.len())
    }

    #[test]
    fn small_details_stay_in_the_row() {
        let (text, apart) = round_trip(json!({"name": "A", "input": "{\"x\":1}"}));
        assert_eq!(apart, 0);
        assert_eq!(text, r#"{"input":"{\"x\":1}","name":"A"}"#);
        assert_eq!(round_trip(json!({})).1, 0);
        assert_eq!(round_trip(json!("not an object")).1, 0);
    }

    #[test]
    fn a_large_field_goes_apart_and_the_rest_stays() {
        let big = "x".repeat(INLINE_LIMIT + 1);
        let (text, apart) = round_trip(json!({"name": "A", "output": big}));
        assert_eq!(apart, 1);
        assert!(text.contains(r#""name":"A""#) && text.contains("$payload"));
    }

    #[test]
    fn many_middling_fields_send_the_whole_details_apart() {
        let mid = "y".repeat(INLINE_LIMIT / 2);
        let (text, apart) = round_trip(json!({"a": mid, "b": mid, "c": mid}));
        assert_eq!(apart, 1);
        assert!(text.starts_with(r#"{"$payload":""#));
        // Large and not an object.
        assert_eq!(round_trip(json!(vec![1; INLINE_LIMIT])).1, 1);
    }

    #[test]
    fn look_alikes_of_references_come_back_as_written() {
        let fake = json!({"$payload": "0".repeat(64)});
        assert_eq!(round_trip(fake.clone()).1, 1);
        assert_eq!(round_trip(json!({"result": fake})).1, 1);
        // Not references at all: kept in the row.
        assert_eq!(round_trip(json!({"$payload": "short"})).1, 0);
        assert_eq!(
            round_trip(json!({"r": {"$payload": "0".repeat(64), "b": 1}})).1,
            0
        );
    }

    #[test]
    fn equal_payloads_are_stored_once() {
        let big = "z".repeat(INLINE_LIMIT * 2);
        let a = split(&json!({"input": big, "name": "A"})).unwrap();
        let b = split(&json!({"output": big, "name": "B"})).unwrap();
        assert_eq!(a.payloads, b.payloads);
        assert_eq!(unique(a.payloads.into_iter().chain(b.payloads)).len(), 1);
    }

    #[test]
    fn rows_must_be_numbered_from_the_first_on_and_read_back_whole() {
        let event = |seq: u64, details: Value| HistoryEvent {
            seq,
            ts: 7,
            kind: "PassStateEntered".into(),
            details,
        };
        let big = json!({"input": "i".repeat(INLINE_LIMIT + 1)});
        let written = vec![event(3, json!({})), event(4, big.clone()), event(5, big)];
        let Written {
            rows: rows_,
            payloads,
        } = rows(&written, 3).unwrap();
        assert_eq!(rows_.len(), 3);
        assert_eq!(payloads.len(), 1, "two equal payloads, stored once");
        let (read, hashes) = events(rows_).unwrap();
        assert_eq!(hashes, [payloads[0].0.clone()]);
        let payloads: HashMap<String, String> = payloads.into_iter().collect();
        assert_eq!(resolve(read, &payloads).unwrap(), written);

        assert!(rows(&written, 2).is_err());
        assert!(rows(&[event(1, json!({})), event(3, json!({}))], 1).is_err());
        assert!(rows(&[], 1).unwrap().rows.is_empty());
    }

    #[test]
    fn a_missing_payload_is_an_error() {
        let stored = split(&json!({"o": "q".repeat(INLINE_LIMIT + 1)})).unwrap();
        let (parsed, _) = parse(&stored.details).unwrap();
        assert!(join(parsed, &HashMap::new()).is_err());
    }
}
