//! The `alarms` feeds (`alarm`: cron, `once`: a date, `interval`: minutes), with OpenWhisk's
//! feed protocol: `lifecycleEvent` CREATE, READ, UPDATE, DELETE, and PAUSE / UNPAUSE (which
//! OpenWhisk documents and never built), `triggerName`, `authKey`, and the alarms package's
//! parameters and error texts. A feed writes the trigger's schedule; the timers fire it.

use std::sync::Arc;

use gust_controller::Controller;
use gust_model::time::now_ms;
use gust_model::{DeleteAfterFire, EntityPath, Identity, Schedule, ScheduleSpec, Timing};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::system::{Answer, SYSTEM};
use crate::timing::{next_tick, parse_cron, time_zone};

/// Which feed of the `alarms` package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FeedKind {
    Cron,
    Once,
    Interval,
}

impl FeedKind {
    fn action(self) -> &'static str {
        match self {
            FeedKind::Cron => "alarm",
            FeedKind::Once => "once",
            FeedKind::Interval => "interval",
        }
    }

    /// The parameters a feed of this kind keeps (and a READ shows).
    fn keys(self) -> &'static [&'static str] {
        match self {
            FeedKind::Cron => &["cron", "timezone", "startDate", "stopDate"],
            FeedKind::Once => &["date", "deleteAfterFire"],
            FeedKind::Interval => &["minutes", "startDate", "stopDate"],
        }
    }
}

/// Why a feed call failed; each text is the alarms package's.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub(crate) enum FeedError {
    /// unsupported lifecycleEvent
    UnsupportedEvent,
    /// no trigger name parameter was provided
    NoTriggerName,
    /// Trigger authentication request failed.
    AuthFailed,
    /// alarms trigger feed is missing the cron parameter
    MissingCron,
    /// alarms once trigger feed is missing the date parameter
    MissingDate,
    /// interval trigger feed is missing the minutes parameter
    MissingMinutes,
    /// the minutes parameter must be an integer
    MinutesNotInteger,
    /// the minutes parameter must be an integer greater than zero
    MinutesNotPositive,
    /// cron pattern '{0}' is not valid
    BadCron(String),
    /// Invalid timezone.
    BadTimezone,
    /// deleteAfterFire parameter must be one of [false, true, rules].
    BadDeleteAfterFire,
    /// {param} parameter '{value}' is not a valid Date
    NotADate { param: &'static str, value: String },
    /// {param} parameter '{value}' must be in the future
    NotFuture { param: &'static str, value: String },
    /// {param} parameter '{value}' must be greater than the startDate parameter '{start}'
    NotAfterStart {
        param: &'static str,
        value: String,
        start: String,
    },
    /// the first scheduled trigger fire is not until after the stop date
    StopBeforeFirst,
    /// no updatable parameters were specified
    NothingToUpdate,
    /// could not find trigger {0} in the database
    NotFound(String),
    /// {0}
    Store(String),
    /// {0}
    Source(String),
}

impl From<gust_store::StoreError> for FeedError {
    fn from(e: gust_store::StoreError) -> Self {
        FeedError::Store(e.to_string())
    }
}

/// A parameter's text as JavaScript interpolates it.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A date parameter: epoch milliseconds, or an RFC 3339 / ISO 8601 text (UTC when it has
/// no offset).
fn date(param: &'static str, v: &Value) -> Result<u64, FeedError> {
    let bad = || FeedError::NotADate {
        param,
        value: shown(v),
    };
    let ms = match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = s.parse::<jiff::Timestamp>() {
                u64::try_from(t.as_millisecond()).ok()
            } else if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
                dt.to_zoned(jiff::tz::TimeZone::UTC)
                    .ok()
                    .and_then(|z| u64::try_from(z.timestamp().as_millisecond()).ok())
            } else if let Ok(d) = s.parse::<jiff::civil::Date>() {
                d.to_zoned(jiff::tz::TimeZone::UTC)
                    .ok()
                    .and_then(|z| u64::try_from(z.timestamp().as_millisecond()).ok())
            } else {
                None
            }
        }
        _ => None,
    };
    // No date past the year 9999 (what a timestamp holds): a schedule's ticks stay in range.
    ms.filter(|ms| *ms <= MAX_DATE_MS).ok_or_else(bad)
}

/// 9999-12-31T23:59:59.999Z.
const MAX_DATE_MS: u64 = 253_402_300_799_999;

/// A date parameter that must be in the future (and after `start`, when given).
fn future_date(
    param: &'static str,
    v: &Value,
    now: u64,
    start: Option<(&Value, u64)>,
) -> Result<u64, FeedError> {
    let ms = date(param, v)?;
    if ms <= now {
        return Err(FeedError::NotFuture {
            param,
            value: shown(v),
        });
    }
    if let Some((raw, start)) = start
        && ms <= start
    {
        return Err(FeedError::NotAfterStart {
            param,
            value: shown(v),
            start: shown(raw),
        });
    }
    Ok(ms)
}

/// `trigger_payload`: an object as it is, anything else as `{"payload": ...}`.
fn payload(v: Option<&Value>) -> Map<String, Value> {
    match v {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(Value::String(s)) if s.is_empty() => Map::new(),
        Some(other) => {
            let mut m = Map::new();
            m.insert("payload".into(), other.clone());
            m
        }
    }
}

/// Builds a schedule's spec from a feed's `config`, checking every value; dates named in
/// `fresh` (given now, not kept from before) must be in the future. `origin` is where an
/// interval without a start date counts from.
fn spec_of(
    kind: FeedKind,
    config: &Map<String, Value>,
    fresh: &dyn Fn(&str) -> bool,
    now: u64,
    origin: u64,
) -> Result<ScheduleSpec, FeedError> {
    let given = |k: &str| config.get(k).filter(|v| !v.is_null());
    let dated = |param: &'static str, start: Option<(&Value, u64)>| match given(param) {
        None => Ok(None),
        Some(v) if fresh(param) => future_date(param, v, now, start).map(Some),
        Some(v) => date(param, v).map(Some),
    };
    let (timing, start, stop) = match kind {
        FeedKind::Once => {
            let Some(at) = given("date") else {
                return Err(FeedError::MissingDate);
            };
            let at_ms = if fresh("date") {
                future_date("date", at, now, None)?
            } else {
                date("date", at)?
            };
            let delete_after_fire = match given("deleteAfterFire").map(shown) {
                None => DeleteAfterFire::No,
                Some(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "false" => DeleteAfterFire::No,
                    "true" => DeleteAfterFire::Trigger,
                    "rules" => DeleteAfterFire::Rules,
                    _ => return Err(FeedError::BadDeleteAfterFire),
                },
            };
            let timing = Timing::Once {
                at_ms,
                delete_after_fire,
            };
            (timing, None, None)
        }
        FeedKind::Interval => {
            let minutes = match given("minutes") {
                None => return Err(FeedError::MissingMinutes),
                Some(v) if !gust_model::entity::truthy(Some(v)) => {
                    return Err(FeedError::MissingMinutes);
                }
                Some(v) => {
                    let n = v
                        .as_f64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
                        .ok_or(FeedError::MinutesNotInteger)?;
                    if n.fract() != 0.0 || !n.is_finite() {
                        return Err(FeedError::MinutesNotInteger);
                    }
                    // At most a century: ticks stay well within a timestamp's range.
                    if n <= 0.0 || n > 52_596_000.0 {
                        return Err(FeedError::MinutesNotPositive);
                    }
                    n as u64
                }
            };
            let start = dated("startDate", None)?;
            let stop = dated(
                "stopDate",
                start.zip(given("startDate")).map(|(s, v)| (v, s)),
            )?;
            let timing = Timing::Interval {
                minutes,
                origin_ms: start.unwrap_or(origin),
            };
            (timing, start, stop)
        }
        FeedKind::Cron => {
            let Some(cron) = given("cron") else {
                return Err(FeedError::MissingCron);
            };
            let Value::String(cron) = cron else {
                return Err(FeedError::BadCron(shown(cron)));
            };
            let timezone = given("timezone").map(shown);
            if time_zone(timezone.as_deref()).is_none() {
                return Err(FeedError::BadTimezone);
            }
            if parse_cron(cron).is_none() {
                return Err(FeedError::BadCron(cron.clone()));
            }
            let start = dated("startDate", None)?;
            let stop = dated(
                "stopDate",
                start.zip(given("startDate")).map(|(s, v)| (v, s)),
            )?;
            let timing = Timing::Cron {
                cron: cron.clone(),
                timezone,
            };
            (timing, start, stop)
        }
    };
    Ok(ScheduleSpec {
        timing,
        payload: payload(config.get("trigger_payload")),
        start_ms: start,
        stop_ms: stop,
        feed: format!("/{SYSTEM}/alarms/{}", kind.action()),
        config: config.clone(),
        paused: false,
        changed_ms: now,
    })
}

/// Runs a feed call of `caller`'s with `input` (the feed action's parameters).
pub(crate) async fn feed(
    core: &Arc<Controller>,
    caller: &Identity,
    kind: FeedKind,
    input: Map<String, Value>,
    timers: &Notify,
) -> Answer {
    match run(core, caller, kind, input).await {
        Ok(result) => {
            timers.notify_one();
            Answer::ok(result)
        }
        Err(e) => Answer::error(json!({ "error": e.to_string() })),
    }
}

/// A feed call's lifecycle event and trigger, checked: the event one the feed protocol has,
/// the trigger the caller's own (whatever namespace its name gives, as OpenWhisk's feeds),
/// `authKey` the caller's key, and the trigger existing but for a DELETE.
pub(crate) struct FeedCall {
    pub event: String,
    pub namespace: String,
    pub trigger: String,
}

pub(crate) async fn feed_call(
    core: &Arc<Controller>,
    caller: &Identity,
    input: &Map<String, Value>,
) -> Result<FeedCall, FeedError> {
    let event = input
        .get("lifecycleEvent")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !["CREATE", "READ", "UPDATE", "DELETE", "PAUSE", "UNPAUSE"].contains(&event.as_str()) {
        return Err(FeedError::UnsupportedEvent);
    }
    let name = input
        .get("triggerName")
        .and_then(Value::as_str)
        .and_then(|t| EntityPath::parse(t, &caller.namespace))
        .filter(|p| !p.path.contains('/'))
        .map(|p| p.name)
        .ok_or(FeedError::NoTriggerName)?;
    let ns = caller.namespace.as_str();
    let owner = match input.get("authKey").and_then(Value::as_str) {
        Some(key) => match key.split_once(':') {
            Some((uuid, key)) => core.authenticate(uuid, key).await.ok(),
            None => None,
        },
        None => None,
    };
    if owner.is_none_or(|o| o.namespace != ns) {
        return Err(FeedError::AuthFailed);
    }
    if event != "DELETE" && core.store().trigger(ns, &name).await?.is_none() {
        return Err(FeedError::AuthFailed);
    }
    Ok(FeedCall {
        event,
        namespace: ns.to_string(),
        trigger: name,
    })
}

async fn run(
    core: &Arc<Controller>,
    caller: &Identity,
    kind: FeedKind,
    input: Map<String, Value>,
) -> Result<Value, FeedError> {
    let FeedCall {
        event,
        namespace,
        trigger: name,
    } = feed_call(core, caller, &input).await?;
    let ns = namespace.as_str();
    let qualified = format!("/{ns}/{name}");
    let store = core.store();
    let now = now_ms();
    let existing = store.schedule(ns, &name).await?;
    let missing = || FeedError::NotFound(qualified.clone());
    let success = json!({ "status": "success" });
    match event.as_str() {
        "CREATE" => {
            let config: Map<String, Value> = input
                .iter()
                .filter(|(k, _)| kind.keys().contains(&k.as_str()) || *k == "trigger_payload")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let spec = spec_of(kind, &config, &|_| true, now, now)?;
            let next = next_tick(&spec, now);
            if next.is_none() && spec.stop_ms.is_some() {
                return Err(FeedError::StopBeforeFirst);
            }
            store.put_schedule(&schedule(ns, &name, spec, next)).await?;
            Ok(success)
        }
        "READ" => Ok(read(&existing.ok_or_else(missing)?, ns, &name, kind)),
        "UPDATE" => {
            let old = existing.ok_or_else(missing)?;
            let updatable: Vec<&String> = input
                .keys()
                .filter(|k| kind.keys().contains(&k.as_str()) || *k == "trigger_payload")
                .collect();
            if updatable.is_empty() {
                return Err(FeedError::NothingToUpdate);
            }
            let mut config = old.spec.config.clone();
            for k in &updatable {
                config.insert((*k).clone(), input[k.as_str()].clone());
            }
            let origin = match old.spec.timing {
                Timing::Interval { origin_ms, .. } => origin_ms,
                _ => now,
            };
            let fresh = |k: &str| updatable.iter().any(|u| u.as_str() == k);
            let mut spec = spec_of(kind, &config, &fresh, now, origin)?;
            spec.paused = old.spec.paused;
            let next = next_tick(&spec, now);
            store.put_schedule(&schedule(ns, &name, spec, next)).await?;
            Ok(success)
        }
        "DELETE" => {
            if !store.delete_schedule(ns, &name).await? {
                return Err(missing());
            }
            Ok(success)
        }
        pause => {
            let mut s = existing.ok_or_else(missing)?;
            s.spec.paused = pause == "PAUSE";
            s.spec.changed_ms = now;
            let next = next_tick(&s.spec, now);
            store
                .put_schedule(&schedule(ns, &name, s.spec, next))
                .await?;
            Ok(success)
        }
    }
}

fn schedule(ns: &str, trigger: &str, spec: ScheduleSpec, next_ms: Option<u64>) -> Schedule {
    Schedule {
        namespace: ns.to_string(),
        trigger: trigger.to_string(),
        spec,
        next_ms,
        pending_ms: None,
        owner: None,
        lease_ms: 0,
        fired: 0,
    }
}

/// A feed READ's `status`, as the alarms package answers it: whether the feed is active, when
/// it last changed, and why not when it is not (paused, or `disabled` for another reason).
pub(crate) fn feed_status(
    active: bool,
    paused: bool,
    changed_ms: u64,
    disabled: Option<&str>,
) -> Value {
    let changed = jiff::Timestamp::from_millisecond(changed_ms as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut status = json!({
        "active": active,
        "dateChanged": changed_ms,
        "dateChangedISO": changed,
    });
    let message = if paused {
        Some("Paused by the feed's PAUSE event")
    } else {
        disabled
    };
    if let Some(message) = message.filter(|_| !active) {
        status["reason"] = json!({ "kind": "AUTO", "message": message });
    }
    status
}

/// A READ's answer: the alarms package's `{config, status}`, plus Gust's `nextFire` and
/// `fired`.
fn read(s: &Schedule, ns: &str, name: &str, kind: FeedKind) -> Value {
    let mut config = Map::new();
    config.insert("name".into(), json!(name));
    config.insert("namespace".into(), json!(ns));
    config.insert("payload".into(), Value::Object(s.spec.payload.clone()));
    for k in kind.keys() {
        if let Some(v) = s.spec.config.get(*k).filter(|v| !v.is_null()) {
            config.insert((*k).to_string(), v.clone());
        }
    }
    let active = s.next_ms.is_some() && !s.spec.paused;
    let reason = (!active && !s.spec.paused).then_some(match kind {
        FeedKind::Once => "Automatically disabled after firing once",
        FeedKind::Cron => "Automatically disabled after firing last scheduled cron trigger",
        FeedKind::Interval => "Automatically disabled after firing last scheduled interval trigger",
    });
    let status = feed_status(active, s.spec.paused, s.spec.changed_ms, reason);
    let next = s
        .next_ms
        .and_then(|n| jiff::Timestamp::from_millisecond(n as i64).ok());
    json!({
        "config": config,
        "status": status,
        "nextFire": next.map(|t| t.to_string()),
        "fired": s.fired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: FeedKind, config: Value) -> Result<ScheduleSpec, String> {
        let Value::Object(m) = config else { panic!() };
        spec_of(kind, &m, &|_| true, 1_000_000, 1_000_000).map_err(|e| e.to_string())
    }

    #[test]
    fn feeds_refuse_bad_parameters_with_the_alarms_texts() {
        assert_eq!(
            spec(FeedKind::Cron, json!({})).unwrap_err(),
            "alarms trigger feed is missing the cron parameter"
        );
        assert_eq!(
            spec(FeedKind::Cron, json!({"cron": "***"})).unwrap_err(),
            "cron pattern '***' is not valid"
        );
        assert_eq!(
            spec(FeedKind::Cron, json!({"cron": 1234})).unwrap_err(),
            "cron pattern '1234' is not valid"
        );
        assert_eq!(
            spec(
                FeedKind::Cron,
                json!({"cron": "* * * * *", "timezone": "America/RTP"})
            )
            .unwrap_err(),
            "Invalid timezone."
        );
        assert_eq!(
            spec(FeedKind::Once, json!({"date": "tomorrow"})).unwrap_err(),
            "date parameter 'tomorrow' is not a valid Date"
        );
        assert_eq!(
            spec(FeedKind::Once, json!({"date": 5})).unwrap_err(),
            "date parameter '5' must be in the future"
        );
        assert_eq!(
            spec(
                FeedKind::Once,
                json!({"date": 5_000_000, "deleteAfterFire": "x"})
            )
            .unwrap_err(),
            "deleteAfterFire parameter must be one of [false, true, rules]."
        );
        assert_eq!(
            spec(FeedKind::Interval, json!({"minutes": "five"})).unwrap_err(),
            "the minutes parameter must be an integer"
        );
        assert_eq!(
            spec(FeedKind::Interval, json!({"minutes": 0})).unwrap_err(),
            "interval trigger feed is missing the minutes parameter"
        );
        assert_eq!(
            spec(FeedKind::Once, json!({"date": 1e300})).unwrap_err(),
            "date parameter '1e+300' is not a valid Date"
        );
        assert_eq!(
            spec(FeedKind::Interval, json!({"minutes": 1, "startDate": 1e19})).unwrap_err(),
            "startDate parameter '1e+19' is not a valid Date"
        );
        assert_eq!(
            spec(FeedKind::Interval, json!({"minutes": -2})).unwrap_err(),
            "the minutes parameter must be an integer greater than zero"
        );
        assert_eq!(
            spec(
                FeedKind::Interval,
                json!({"minutes": 2, "startDate": 3_000_000, "stopDate": 3_000_000})
            )
            .unwrap_err(),
            "stopDate parameter '3000000' must be greater than the startDate parameter '3000000'"
        );
        let ok = spec(
            FeedKind::Once,
            json!({"date": "2099-01-01T00:00:00Z", "trigger_payload": "hi"}),
        )
        .unwrap();
        assert_eq!(ok.payload, *json!({"payload": "hi"}).as_object().unwrap());
    }
}
