//! Async delivery's loop (decision 0028): every non-blocking invocation of an action with a
//! delivery config has a delivery row (written by the controller before the invocation was
//! journaled), and this loop follows it until its record is delivered:
//!
//! - an attempt whose record exists is judged: a success goes to the `onSuccess` destination
//!   (if any); a failure is retried with a new activation id derived from the first one and
//!   the attempt (Lambda's delays: 1 min before the 2nd attempt, 2 min before the 3rd, then
//!   doubling to 5 min; all scaled by `--delivery-retry-scale`), until `maximumRetryAttempts`
//!   retries were made (`RetriesExhausted`) or the event is older than
//!   `maximumEventAgeInSeconds` (`EventAgeExceeded`, also checked before each retry); then
//!   Lambda's destination record goes to the `onFailure` destination, or without one to the
//!   namespace's dead letters;
//! - an attempt without a record is waited for while it is journaled; one with neither record
//!   nor journal entry [`GRACE_MS`] after it was invoked was lost on its way (its process
//!   died) and is invoked again with the same id (a record is written at most once per id);
//! - each row is owned by the process that looks at it (`owner`, a lease running
//!   [`LEASE_MS`] past its next look), so processes sharing a store deliver each once; a
//!   process that stops is taken over once its leases ran out; the embedded store drops
//!   every owner at start.
//!
//! The embedded store wakes the loop at every record it writes (a delivery is sent as soon as
//! its attempt's record exists); a shared one is polled every [`POLL`].
//!
//! **May not:** invoke an attempt whose record or journal entry exists, or write a delivery
//! it does not own.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gust_controller::{ControllerError, Invocation, Wait};
use gust_model::time::now_ms;
use gust_model::{Activation, ActivationStatus, DeadLetter, Delivery, SealedParam};
use gust_source::backoff;
use serde_json::{Map, Value, json};

use crate::destinations::{self, Destination, Publisher, Undelivered};
use crate::timers::derived_id;
use crate::{EventError, Events, lock};

/// How long past its next look a process owns a delivery.
pub const LEASE_MS: u64 = 10_000;
/// Longest the loop sleeps without looking at the store.
const POLL: Duration = Duration::from_millis(500);
/// Shortest time between two looks (a busy embedded store writes records all the time).
const LOOK_AT_MOST_EVERY: Duration = Duration::from_millis(20);
/// How far ahead the loop looks on the embedded store: a delivery due later whose attempt's
/// record exists is delivered now.
const LOOK_AHEAD_MS: u64 = 600_000;
/// Most deliveries one look takes.
const BATCH: u64 = 100;
/// How often a process deletes the expired idempotency keys.
const SWEEP_KEYS_EVERY: Duration = Duration::from_secs(60);
/// Most deliveries handled at once by this process.
const BUSY_AT_MOST: usize = 256;
/// An attempt with neither a record nor a journal entry this long after it was invoked was
/// lost: it is invoked again, with the same id.
pub const GRACE_MS: u64 = 10_000;
/// Longest wait between two looks at an attempt still running.
const RUNNING_LOOK_AT_MOST_MS: u64 = 5_000;
/// Shortest such wait.
const RUNNING_LOOK_AT_LEAST_MS: u64 = 250;
/// Lambda's delay before the 2nd attempt; it doubles for each later one, up to
/// [`RETRY_DELAY_AT_MOST_MS`].
const RETRY_DELAY_MS: u64 = 60_000;
const RETRY_DELAY_AT_MOST_MS: u64 = 300_000;
/// A destination that refuses a record (a missing action) is tried this many times; then a
/// failure's record goes to the dead letters, a success's is dropped (logged).
const DESTINATION_TRIES: u64 = 5;

/// The keys of a delivery's `state`.
mod state {
    /// When the current attempt was invoked, ms since the epoch (absent: a retry not yet
    /// invoked; the first attempt was invoked when it was accepted).
    pub const INVOKED: &str = "invokedMs";
    /// The activation id of the attempt before the current one.
    pub const PREVIOUS: &str = "previousId";
    /// The last failure, for a person reading the row.
    pub const LAST_ERROR: &str = "lastError";
    /// How many times the destination refused the record.
    pub const DESTINATION_TRIES: &str = "destinationTries";
    /// How many times the destination could not take the record for now.
    pub const DESTINATION_WAITS: &str = "destinationWaits";
}

/// How a process runs its delivery loop.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// This process, as the deliveries' `owner` (unique among the processes sharing the
    /// store).
    pub owner: String,
    /// Other processes use the store too; otherwise every delivery's owner is dropped at
    /// start.
    pub shared: bool,
    /// Multiplies the retry delays, the waits between tries of a destination and
    /// `maximumEventAgeInSeconds` (1.0: Lambda's times; tests make them short).
    pub retry_scale: f64,
    /// The NATS connection `subject:` destinations publish on (the `nats` source's
    /// parameters: `url`, ...), if this process has one.
    pub nats: Option<Map<String, Value>>,
    /// Where on that connection: `subject:S` of namespace `ns` is published to
    /// `<subject_root>.<ns>.<S>` (`<cluster>.destinations`, a subtree of the bus no Gust
    /// component consumes).
    pub subject_root: String,
}

/// What the delivery API needs to know of this process's loop.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryOptions {
    /// [`DeliverySettings::retry_scale`].
    pub scale: f64,
    /// [`DeliverySettings::nats`].
    pub nats: Option<Map<String, Value>>,
    /// [`DeliverySettings::subject_root`].
    pub subject_root: String,
}

/// The delivery loop of one process.
pub struct Deliveries {
    events: Arc<Events>,
    owner: String,
    options: DeliveryOptions,
    /// Deliveries being handled by this process, by (namespace, id).
    busy: Mutex<HashSet<(String, String)>>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Marks a delivery as being handled while it lives.
struct Busy<'a>(&'a Deliveries, (String, String));

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        lock(&self.0.busy).remove(&self.1);
    }
}

/// The activation id of attempt `attempt` (2, 3, ...) of delivery `id` accepted at
/// `accepted_ms`: derived like a timer's, so whoever computes it gets the same id.
pub fn attempt_id(id: &str, accepted_ms: u64, attempt: u32) -> String {
    derived_id(accepted_ms, &format!("{id}\0attempt\0{attempt}"))
}

/// The wait before attempt `failed + 1`, unscaled: 1 min, 2 min, 4 min, then 5 min.
fn retry_delay_ms(failed: u32) -> u64 {
    RETRY_DELAY_MS
        .saturating_mul(1 << failed.saturating_sub(1).min(16))
        .min(RETRY_DELAY_AT_MOST_MS)
}

/// `ms` scaled by `scale` (at least 1 ms).
fn scaled(ms: u64, scale: f64) -> u64 {
    ((ms as f64) * scale).round().max(1.0) as u64
}

/// How a delivery ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Success,
    RetriesExhausted,
    EventAgeExceeded,
}

impl Condition {
    fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
        }
    }
}

/// What the last attempt left: its record, or why it could not be made.
enum Last<'a> {
    Record(&'a Activation),
    /// The invocation was refused (the action is gone, ...).
    Refused(String),
    /// Nothing is known (the previous attempt's record is gone).
    Unknown,
}

/// Lambda's destination record of delivery `d` ending with `condition` after `invoked`
/// attempts, `last` the last one's outcome.
fn destination_record(d: &Delivery, condition: Condition, invoked: u32, last: &Last<'_>) -> Value {
    let function = format!("/{}/{}", d.namespace, d.action);
    let mut out = destinations::record(Some(&d.id), &function, condition.as_str(), invoked);
    out.insert(
        "requestPayload".into(),
        d.message.get("params").cloned().unwrap_or(json!({})),
    );
    let mut response = Map::new();
    let payload = match last {
        Last::Record(r) => {
            let status = r.response.status;
            let code = if status == ActivationStatus::InternalError {
                500
            } else {
                200
            };
            response.insert("statusCode".into(), json!(code));
            response.insert("executedVersion".into(), json!("$LATEST"));
            if status != ActivationStatus::Success {
                response.insert("functionError".into(), json!(status));
            }
            r.response.result.clone()
        }
        Last::Refused(why) => {
            response.insert("statusCode".into(), json!(400));
            response.insert("executedVersion".into(), json!("$LATEST"));
            response.insert("functionError".into(), json!("refused"));
            json!({"errorType": "InvocationRefused", "errorMessage": why})
        }
        Last::Unknown => {
            response.insert("executedVersion".into(), json!("$LATEST"));
            Value::Null
        }
    };
    out.insert("responseContext".into(), Value::Object(response));
    out.insert("responsePayload".into(), payload);
    Value::Object(out)
}

/// A short description of a failed record, for the row's state.
fn failure_of(r: &Activation) -> String {
    let status = serde_json::to_value(r.response.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let error = match &r.response.result["error"] {
        Value::String(e) => e.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut text = format!("activation {}: {status}: {error}", r.activation_id);
    if text.len() > 1000 {
        let mut end = 1000;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

impl Deliveries {
    /// Starts this process's delivery loop.
    pub async fn start(
        events: Arc<Events>,
        settings: DeliverySettings,
    ) -> Result<Arc<Deliveries>, EventError> {
        if !settings.shared {
            events.store.release_deliveries().await?;
        }
        let options = DeliveryOptions {
            scale: if settings.retry_scale.is_finite() && settings.retry_scale > 0.0 {
                settings.retry_scale
            } else {
                1.0
            },
            nats: settings.nats,
            subject_root: settings.subject_root,
        };
        // Set once per process: a second loop over the same events keeps the first's.
        let _ = events.delivery.set(options.clone());
        let this = Arc::new(Deliveries {
            events,
            owner: settings.owner,
            options,
            busy: Mutex::new(HashSet::new()),
        });
        tokio::spawn(this.clone().run());
        Ok(this)
    }

    async fn run(self: Arc<Self>) {
        let mut written = self.events.store.records_written();
        let mut swept = tokio::time::Instant::now();
        loop {
            let now = now_ms();
            if swept.elapsed() >= SWEEP_KEYS_EVERY {
                swept = tokio::time::Instant::now();
                match self.events.store.sweep_idempotency_keys(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(keys = n, "expired idempotency keys deleted"),
                    Err(e) => tracing::warn!(error = %e, "cannot delete expired idempotency keys"),
                }
            }
            let horizon = if written.is_some() {
                now + LOOK_AHEAD_MS
            } else {
                now
            };
            match self
                .events
                .store
                .due_deliveries(&self.owner, horizon, BATCH)
                .await
            {
                Ok(due) => {
                    // Looked at ahead of time only if a record may have come for it.
                    for d in due
                        .into_iter()
                        .filter(|d| d.due_ms <= now || awaits_record(d))
                    {
                        let key = (d.namespace.clone(), d.id.clone());
                        let mut busy = lock(&self.busy);
                        if busy.len() >= BUSY_AT_MOST || !busy.insert(key.clone()) {
                            continue;
                        }
                        drop(busy);
                        let this = self.clone();
                        tokio::spawn(async move {
                            let _busy = Busy(&this, key);
                            if let Err(e) = this.handle(d).await {
                                tracing::warn!(error = %e, "a delivery could not go on; it is looked at again");
                            }
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read due deliveries"),
            }
            match &mut written {
                Some(rx) => {
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = rx.changed() => {}
                    }
                }
                None => tokio::time::sleep(POLL).await,
            }
            tokio::time::sleep(LOOK_AT_MOST_EVERY).await;
        }
    }

    fn scaled(&self, ms: u64) -> u64 {
        scaled(ms, self.options.scale)
    }

    /// Whether `d` is older than its config allows at `now`.
    fn too_old(&self, d: &Delivery, now: u64) -> bool {
        let max = self.scaled(d.config.maximum_event_age_in_seconds.saturating_mul(1000));
        now.saturating_sub(d.accepted_ms) >= max
    }

    /// Looks at one delivery: taken (owned) first. One looked at ahead of time is handled
    /// only if its attempt's record has just come (not one waiting for its destination: that
    /// wait is kept).
    async fn handle(&self, mut d: Delivery) -> Result<(), EventError> {
        let store = &self.events.store;
        let record = store.activation(&d.namespace, &d.attempt_id).await?;
        let now = now_ms();
        if d.due_ms > now && (record.is_none() || !awaits_record(&d)) {
            return Ok(());
        }
        let owned = d.owner.as_deref() == Some(self.owner.as_str()) && d.lease_ms > now + 1_000;
        if !owned {
            d.owner = Some(self.owner.clone());
            d.lease_ms = d.due_ms.max(now) + LEASE_MS;
            if !store.update_delivery(&d, d.attempt, now).await? {
                return Ok(());
            }
        }
        match record {
            Some(r) => self.judge(d, &r, now).await,
            None => self.unfinished(d, now).await,
        }
    }

    /// The current attempt has a record.
    async fn judge(&self, d: Delivery, r: &Activation, now: u64) -> Result<(), EventError> {
        if r.response.status == ActivationStatus::Success {
            return self
                .conclude(d, Condition::Success, Last::Record(r), now)
                .await;
        }
        if d.attempt > d.config.maximum_retry_attempts {
            return self
                .conclude(d, Condition::RetriesExhausted, Last::Record(r), now)
                .await;
        }
        if self.too_old(&d, now) {
            return self
                .conclude(d, Condition::EventAgeExceeded, Last::Record(r), now)
                .await;
        }
        // Another attempt, after Lambda's delay.
        let mut next = d.clone();
        next.attempt = d.attempt + 1;
        next.attempt_id = attempt_id(&d.id, d.accepted_ms, next.attempt);
        next.due_ms = now + self.scaled(retry_delay_ms(d.attempt));
        next.lease_ms = next.due_ms + LEASE_MS;
        next.state.remove(state::INVOKED);
        next.state.remove(state::DESTINATION_TRIES);
        next.state.remove(state::DESTINATION_WAITS);
        next.state
            .insert(state::PREVIOUS.into(), json!(d.attempt_id));
        next.state
            .insert(state::LAST_ERROR.into(), json!(failure_of(r)));
        self.events
            .store
            .update_delivery(&next, d.attempt, now)
            .await?;
        Ok(())
    }

    /// The current attempt has no record yet.
    async fn unfinished(&self, d: Delivery, now: u64) -> Result<(), EventError> {
        let store = &self.events.store;
        let invoked = match d.state.get(state::INVOKED).and_then(Value::as_u64) {
            Some(ms) => Some(ms),
            None if d.attempt == 1 => Some(d.accepted_ms),
            None => None,
        };
        if store.is_accepted(&d.namespace, &d.attempt_id).await? {
            // Journaled: running, or about to. Looked at again soon, then less often.
            let running = now.saturating_sub(invoked.unwrap_or(now));
            let wait = (running / 2).clamp(RUNNING_LOOK_AT_LEAST_MS, RUNNING_LOOK_AT_MOST_MS);
            return self.push(d, now + wait, now).await;
        }
        match invoked {
            // A retry that is due.
            None => {
                if self.too_old(&d, now) {
                    let previous = match d.state.get(state::PREVIOUS).and_then(Value::as_str) {
                        Some(id) => store.activation(&d.namespace, id).await?,
                        None => None,
                    };
                    let last = previous.as_ref().map_or(Last::Unknown, Last::Record);
                    return self
                        .conclude(d, Condition::EventAgeExceeded, last, now)
                        .await;
                }
                self.invoke(d, now).await
            }
            // Lost on its way (its process stopped before journaling it): again, same id.
            Some(at) if now.saturating_sub(at) >= GRACE_MS => {
                tracing::warn!(namespace = %d.namespace, id = %d.attempt_id, "an attempt was lost; invoking it again");
                self.invoke(d, now).await
            }
            Some(at) => self.push(d, at + GRACE_MS, now).await,
        }
    }

    /// Invokes the current attempt (non-blocking, with its id), then notes when.
    async fn invoke(&self, mut d: Delivery, now: u64) -> Result<(), EventError> {
        match self.invoke_attempt(&d).await {
            Ok(()) => {
                d.state.insert(state::INVOKED.into(), json!(now));
                let first_look = gust_controller::DELIVERY_FIRST_LOOK.as_millis() as u64;
                self.push(d, now + first_look, now).await
            }
            // For now: tried again later, as it is.
            Err(e) if e.is_throttled() || e.is_host_failure() => {
                d.state
                    .insert(state::LAST_ERROR.into(), json!(e.to_string()));
                let waits = d
                    .state
                    .get("invokeWaits")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                d.state.insert("invokeWaits".into(), json!(waits + 1));
                let wait = backoff(waits as u32).as_millis() as u64;
                self.push(d, now + wait, now).await
            }
            // For good (the action is gone or changed): the delivery fails.
            Err(e) => {
                let invoked = d.attempt.saturating_sub(1);
                let last = Last::Refused(e.to_string());
                self.conclude_after(d, Condition::RetriesExhausted, invoked, last, now)
                    .await
            }
        }
    }

    /// One non-blocking invocation of `d`'s action with its request, as its current attempt.
    async fn invoke_attempt(&self, d: &Delivery) -> Result<(), EventError> {
        let core = &self.events.core;
        let who = core
            .owner(&d.namespace)
            .await?
            .ok_or(EventError::Core(ControllerError::NotFound))?;
        let resolved = core.resolve(&who, &d.namespace, &d.action).await?;
        if !core.runs_code(&resolved.action) {
            return Err(EventError::bad(format!(
                "action {} is not one that runs its own code any more",
                d.action
            )));
        }
        let params = d
            .message
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let secrets = secrets_of(d)?;
        core.invoke_attempt(Invocation {
            caller: &who,
            action: &resolved,
            params,
            wait: Wait::No,
            cause: None,
            secrets,
            activation_id: Some(d.attempt_id.clone()),
            trace: None,
        })
        .await?;
        Ok(())
    }

    /// Moves `d`'s next look to `due`.
    async fn push(&self, mut d: Delivery, due: u64, now: u64) -> Result<(), EventError> {
        d.due_ms = due;
        d.lease_ms = due + LEASE_MS;
        self.events
            .store
            .update_delivery(&d, d.attempt, now)
            .await?;
        Ok(())
    }

    /// Ends `d` with `condition`, its current attempt having run.
    async fn conclude(
        &self,
        d: Delivery,
        condition: Condition,
        last: Last<'_>,
        now: u64,
    ) -> Result<(), EventError> {
        let invoked = match condition {
            // Found too old before its current attempt was invoked.
            Condition::EventAgeExceeded if !matches!(last, Last::Record(r) if r.activation_id == d.attempt_id) => {
                d.attempt.saturating_sub(1)
            }
            _ => d.attempt,
        };
        self.conclude_after(d, condition, invoked, last, now).await
    }

    /// Ends `d` with `condition` after `invoked` attempts: its record goes to the
    /// destination, or (a failure without one) to the dead letters; then the row goes.
    async fn conclude_after(
        &self,
        mut d: Delivery,
        condition: Condition,
        invoked: u32,
        last: Last<'_>,
        now: u64,
    ) -> Result<(), EventError> {
        let store = &self.events.store;
        let record = destination_record(&d, condition, invoked, &last);
        let target = match condition {
            Condition::Success => d.config.on_success.clone(),
            _ => d.config.on_failure.clone(),
        };
        let Some(target) = target else {
            let dead = (condition != Condition::Success).then(|| DeadLetter {
                namespace: d.namespace.clone(),
                id: d.id.clone(),
                action: d.action.clone(),
                record,
                created: now,
                secrets: secrets_of(&d).unwrap_or_default(),
            });
            store
                .finish_delivery(&d.namespace, &d.id, dead.as_ref())
                .await?;
            return Ok(());
        };
        let sent = match Destination::parse(&target, "destination") {
            Ok(destination) => self.send(&d, &destination, &record, condition).await,
            Err(e) => Err(Undelivered::Never(e)),
        };
        match sent {
            Ok(()) => {
                store.finish_delivery(&d.namespace, &d.id, None).await?;
            }
            Err(Undelivered::Later(e)) => {
                let waits = bump(&mut d, state::DESTINATION_WAITS);
                d.state.insert(state::LAST_ERROR.into(), json!(e));
                let wait = self.scaled(backoff(waits.min(6) as u32).as_millis() as u64);
                self.push(d, now + wait, now).await?;
            }
            Err(Undelivered::Never(e)) => {
                let tries = bump(&mut d, state::DESTINATION_TRIES);
                let why = format!("the destination {target} refused the record: {e}");
                if tries < DESTINATION_TRIES {
                    d.state.insert(state::LAST_ERROR.into(), json!(why));
                    let wait = self.scaled(backoff(tries as u32).as_millis() as u64);
                    self.push(d, now + wait, now).await?;
                } else if condition == Condition::Success {
                    tracing::warn!(namespace = %d.namespace, id = %d.id, %why, "a success record was dropped");
                    store.finish_delivery(&d.namespace, &d.id, None).await?;
                } else {
                    // Kept for a person: the record, and why its destination did not take it.
                    let mut record = record;
                    record["destinationError"] = json!(why);
                    let dead = DeadLetter {
                        namespace: d.namespace.clone(),
                        id: d.id.clone(),
                        action: d.action.clone(),
                        record,
                        created: now,
                        secrets: secrets_of(&d).unwrap_or_default(),
                    };
                    store
                        .finish_delivery(&d.namespace, &d.id, Some(&dead))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Sends `record` of `d` (ending with `condition`) to `destination`; sent twice (a crash
    /// between the send and the row's end) it is taken once by an action or a trigger.
    async fn send(
        &self,
        d: &Delivery,
        destination: &Destination,
        record: &Value,
        condition: Condition,
    ) -> Result<(), Undelivered> {
        let seed = format!(
            "{}\0{}\0destination\0{}",
            d.namespace,
            d.id,
            condition.as_str()
        );
        let key = format!("delivery\0{}\0{}", d.id, condition.as_str());
        let nats = self.events.delivery_publisher();
        let publisher = nats.as_ref().map(|(source, config)| Publisher {
            source: source.as_ref(),
            config,
            root: Some(&self.options.subject_root),
        });
        self.events
            .send_to(
                &d.namespace,
                destination,
                record,
                &key,
                Some(derived_id(d.accepted_ms, &seed)),
                publisher,
            )
            .await
    }
}

/// The sealed secret parameters `d`'s invocation carries (a trigger's).
fn secrets_of(d: &Delivery) -> Result<Vec<SealedParam>, EventError> {
    match d.message.get("secrets") {
        Some(s) => serde_json::from_value(s.clone())
            .map_err(|e| EventError::Core(ControllerError::Internal(e.to_string()))),
        None => Ok(Vec::new()),
    }
}

/// Whether `d`'s current attempt was invoked and its record is what `d` waits for (not a
/// retry not yet invoked, nor a record waiting for its destination): only such a delivery
/// is looked at before it is due, when a record was written.
fn awaits_record(d: &Delivery) -> bool {
    let invoked = d.attempt == 1 || d.state.contains_key(state::INVOKED);
    let waiting = d.state.contains_key(state::DESTINATION_TRIES)
        || d.state.contains_key(state::DESTINATION_WAITS);
    invoked && !waiting
}

/// Adds one to counter `key` of `d`'s state; the new count.
fn bump(d: &mut Delivery, key: &str) -> u64 {
    let n = d.state.get(key).and_then(Value::as_u64).unwrap_or(0) + 1;
    d.state.insert(key.into(), json!(n));
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use gust_model::{ActivationResponse, DeliveryConfig};

    #[test]
    fn a_deliverys_secrets_are_read_from_its_message() {
        let mut d = delivery();
        assert!(secrets_of(&d).unwrap().is_empty());
        d.message = json!({"params": {}, "secrets": [{"key": "k", "sealed": "gust:v1:x", "place": "/ns/t"}]});
        let secrets = secrets_of(&d).unwrap();
        assert_eq!(
            (secrets[0].key.as_str(), secrets[0].place.as_str()),
            ("k", "/ns/t")
        );
        // A letter without secrets is written without the field; an old one reads back.
        let letter = DeadLetter {
            namespace: "ns".into(),
            id: "i".into(),
            action: "a".into(),
            record: json!({}),
            created: 1,
            secrets: Vec::new(),
        };
        let text = serde_json::to_value(&letter).unwrap();
        assert!(text.get("secrets").is_none(), "{text}");
        let back: DeadLetter = serde_json::from_value(text).unwrap();
        assert_eq!(back, letter);
        let kept = DeadLetter { secrets, ..letter };
        let back: DeadLetter =
            serde_json::from_value(serde_json::to_value(&kept).unwrap()).unwrap();
        assert_eq!(back, kept);
    }

    #[test]
    fn only_an_invoked_attempt_is_looked_at_ahead_of_time() {
        let mut d = delivery();
        d.attempt = 1;
        assert!(awaits_record(&d));
        d.attempt = 2;
        assert!(!awaits_record(&d), "a retry not yet invoked");
        d.state.insert(state::INVOKED.into(), json!(5));
        assert!(awaits_record(&d));
        d.state.insert(state::DESTINATION_WAITS.into(), json!(1));
        assert!(!awaits_record(&d), "a record waiting for its destination");
    }

    #[test]
    fn retries_wait_as_lambda_does_then_five_minutes() {
        assert_eq!(retry_delay_ms(1), 60_000);
        assert_eq!(retry_delay_ms(2), 120_000);
        assert_eq!(retry_delay_ms(3), 240_000);
        assert_eq!(retry_delay_ms(4), 300_000);
        assert_eq!(retry_delay_ms(40), 300_000);
        assert_eq!(scaled(60_000, 0.01), 600);
        assert_eq!(scaled(60_000, 1.0), 60_000);
        assert_eq!(scaled(1, 0.0001), 1);
    }

    #[test]
    fn attempts_have_their_own_stable_ids() {
        let a2 = attempt_id("0193e5c0aaaa7bbb8cccdddd00000001", 1_700_000_000_000, 2);
        assert_eq!(
            a2,
            attempt_id("0193e5c0aaaa7bbb8cccdddd00000001", 1_700_000_000_000, 2)
        );
        assert_ne!(
            a2,
            attempt_id("0193e5c0aaaa7bbb8cccdddd00000001", 1_700_000_000_000, 3)
        );
        assert!(gust_model::names::is_activation_id(&a2));
    }

    fn delivery() -> Delivery {
        Delivery {
            namespace: "ns".into(),
            id: "first".into(),
            action: "pkg/a".into(),
            message: json!({"params": {"order": 42}}),
            config: DeliveryConfig {
                namespace: "ns".into(),
                action: "pkg/a".into(),
                maximum_retry_attempts: 2,
                maximum_event_age_in_seconds: 60,
                on_success: None,
                on_failure: None,
                updated: 0,
            },
            attempt: 3,
            attempt_id: "third".into(),
            accepted_ms: 0,
            due_ms: 0,
            owner: None,
            lease_ms: 0,
            state: Map::new(),
        }
    }

    fn activation(status: ActivationStatus, result: Value) -> Activation {
        Activation {
            namespace: "ns".into(),
            name: "a".into(),
            version: "0.0.1".into(),
            subject: "ns".into(),
            activation_id: "third".into(),
            start: 0,
            end: 0,
            duration: 0,
            status_code: status.code(),
            response: ActivationResponse::new(status, result),
            logs: Vec::new(),
            annotations: Vec::new(),
            publish: false,
            cause: None,
        }
    }

    #[test]
    fn the_record_is_lambdas() {
        let d = delivery();
        let r = activation(ActivationStatus::ApplicationError, json!({"error": "boom"}));
        let rec = destination_record(&d, Condition::RetriesExhausted, 3, &Last::Record(&r));
        assert_eq!(rec["version"], "1.0");
        assert_eq!(
            rec["requestContext"],
            json!({"requestId": "first", "functionArn": "/ns/pkg/a", "condition": "RetriesExhausted", "approximateInvokeCount": 3})
        );
        assert_eq!(rec["requestPayload"], json!({"order": 42}));
        assert_eq!(
            rec["responseContext"],
            json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "application error"})
        );
        assert_eq!(rec["responsePayload"], json!({"error": "boom"}));
        let ok = activation(ActivationStatus::Success, json!({"done": true}));
        let rec = destination_record(&d, Condition::Success, 1, &Last::Record(&ok));
        assert_eq!(
            rec["responseContext"],
            json!({"statusCode": 200, "executedVersion": "$LATEST"})
        );
        assert_eq!(rec["requestContext"]["condition"], "Success");
        let refused = destination_record(
            &d,
            Condition::RetriesExhausted,
            2,
            &Last::Refused("gone".into()),
        );
        assert_eq!(refused["responsePayload"]["errorMessage"], "gone");
        assert_eq!(failure_of(&r), "activation third: application error: boom");
    }
}
