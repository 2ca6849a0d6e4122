//! The runners of connected subscriptions (queues, topics, streams). Every process that runs
//! a controller runs one [`Listeners`]; they share the subscriptions through the store, as
//! the timers share schedules (decision 0021):
//!
//! - a subscription runs in the one process that claimed it (compare-and-swap on its owner
//!   and lease) and renews its lease every second; a process that dies stops renewing, and
//!   another claims the subscription once the lease ran out ([`LEASE_MS`]);
//! - a process stops a subscription it no longer holds (deleted, paused, taken over) and
//!   restarts one whose configuration changed, within a second; one that could not renew its
//!   leases for almost a lease stops every subscription it runs, before another process may
//!   claim them;
//! - a subscription whose connection fails is run again after a backoff (0.5 s doubling to
//!   30 s), its status saying why;
//! - every message is fired with an identity (its key at the source, or one made up for
//!   it and kept across retries): a message delivered twice runs nothing twice; it is
//!   acknowledged once its fire is accepted; while the namespace is throttled or the
//!   platform cannot take the fire (no invoker, the bus down), the runner waits and tries
//!   again (back-pressure), counting the message once against the fires per minute; a
//!   message that cannot be fired, or fails [`MAX_FAILURES`] times otherwise, is moved aside.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gust_controller::ControllerError;
use gust_model::Subscription;
use gust_model::time::now_ms;
use gust_source::{Delivery, Event, Sink, Source, backoff};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::fire::EventFire;
use crate::mappings;
use crate::sources::{Sources, keyed, open_config, redact};
use crate::timers::LEASE_MS;
use crate::{EventError, Events, lock};

/// How often the runners renew their leases and look for subscriptions to run or stop.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How many times a message whose fire fails is tried before it is moved aside.
pub const MAX_FAILURES: u32 = 5;
/// How long before its leases run out a process that could not renew them stops its
/// subscriptions.
const LEASE_MARGIN_MS: u64 = 1_500;
/// How long a runner waits before firing again a message the namespace's limits refused.
const THROTTLED_WAIT: Duration = Duration::from_secs(1);

/// A subscription this process runs, by (namespace, trigger).
struct Running {
    changed_ms: u64,
    task: AbortHandle,
}

/// The runners of connected subscriptions of one process.
pub struct Listeners {
    events: Arc<Events>,
    sources: Arc<Sources>,
    /// This process's name as a subscription owner.
    owner: String,
    running: Mutex<HashMap<(String, String), Running>>,
    /// When this process last renewed its leases.
    renewed_ms: AtomicU64,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Listeners {
    /// Starts the runners of this process (`owner` unique among the processes that share the
    /// store; `shared`: other processes use the store too, otherwise every subscription is
    /// this process's from the start), looking again at once when `wake` is notified.
    pub async fn start(
        events: Arc<Events>,
        sources: Arc<Sources>,
        wake: Arc<Notify>,
        owner: String,
        shared: bool,
    ) -> Result<Arc<Listeners>, EventError> {
        if !shared {
            events.store.release_subscriptions().await?;
        }
        let listeners = Arc::new(Listeners {
            events,
            sources,
            owner,
            running: Mutex::new(HashMap::new()),
            renewed_ms: AtomicU64::new(now_ms()),
        });
        let this = listeners.clone();
        tokio::spawn(async move {
            loop {
                this.look().await;
                tokio::select! {
                    () = tokio::time::sleep(LOOK_EVERY) => {}
                    () = wake.notified() => {}
                }
            }
        });
        Ok(listeners)
    }

    /// Stops every subscription of this process when its leases may have run out (it could
    /// not renew them for almost a lease): another process may be claiming them now. Returns
    /// whether it did.
    fn stop_all_if_lease_lost(&self, now: u64) -> bool {
        let renewed = self.renewed_ms.load(Ordering::Relaxed);
        if now.saturating_sub(renewed) < LEASE_MS.saturating_sub(LEASE_MARGIN_MS) {
            return false;
        }
        let mut running = lock(&self.running);
        if !running.is_empty() {
            tracing::warn!("subscription leases not renewed in time: stopping every subscription");
        }
        for (_, run) in running.drain() {
            run.task.abort();
        }
        true
    }

    /// Renews this process's leases, stops what it no longer holds and starts what it may.
    async fn look(self: &Arc<Self>) {
        let store = &self.events.store;
        let now = now_ms();
        match store.renew_subscriptions(&self.owner, now + LEASE_MS).await {
            Ok(_) => self.renewed_ms.store(now, Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "cannot renew subscription leases"),
        }
        let subs = match store.runnable_subscriptions(&self.owner, now).await {
            Ok(subs) => subs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the subscriptions");
                self.stop_all_if_lease_lost(now);
                return;
            }
        };
        if self.stop_all_if_lease_lost(now) {
            return;
        }
        let wanted: HashMap<(String, String), &Subscription> = subs
            .iter()
            .map(|s| ((s.namespace.clone(), s.trigger.clone()), s))
            .collect();
        lock(&self.running).retain(|key, run| {
            let keep = wanted
                .get(key)
                .is_some_and(|s| s.spec.changed_ms == run.changed_ms && !run.task.is_finished());
            if !keep {
                run.task.abort();
            }
            keep
        });
        for s in subs.iter() {
            let key = (s.namespace.clone(), s.trigger.clone());
            if lock(&self.running).contains_key(&key) {
                continue;
            }
            let Some(source) = self.sources.get(&s.spec.source).cloned() else {
                tracing::warn!(source = %s.spec.source, "a subscription of an unknown source");
                continue;
            };
            // Its secrets opened here, where it runs, and nowhere else.
            let keyring = self.events.core.keyring();
            let config = match open_config(
                keyring,
                source.as_ref(),
                &s.namespace,
                &s.trigger,
                &s.spec.config,
            ) {
                Ok(config) => config,
                Err(why) => {
                    tracing::warn!(namespace = %s.namespace, trigger = %s.trigger, %why, "a subscription cannot run");
                    continue;
                }
            };
            let mut opened = s.clone();
            opened.spec.config = config;
            match store
                .claim_subscription(&s.namespace, &s.trigger, &self.owner, now, now + LEASE_MS)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim a subscription");
                    continue;
                }
            }
            let sink = Arc::new(SubscriptionSink {
                events: self.events.clone(),
                namespace: s.namespace.clone(),
                trigger: s.trigger.clone(),
                source: s.spec.source.clone(),
                status: Mutex::new(Map::from_iter([("owner".into(), json!(self.owner))])),
            });
            let task = tokio::spawn(run(source, opened, sink, self.owner.clone()));
            lock(&self.running).insert(
                key,
                Running {
                    changed_ms: s.spec.changed_ms,
                    task: task.abort_handle(),
                },
            );
        }
    }
}

/// Runs one subscription until it is aborted: connects, and reconnects after a backoff
/// whenever the connection fails. A stream feed's subscription runs its rules' mappings
/// instead ([`mappings::supervise`]).
async fn run(source: Arc<dyn Source>, s: Subscription, sink: Arc<SubscriptionSink>, owner: String) {
    let mut attempt = 0;
    let streams = source.streams(&s.spec.feed);
    loop {
        let started = now_ms();
        let ran = if streams {
            let events = sink.events.clone();
            let as_sink: Arc<dyn Sink> = sink.clone();
            mappings::supervise(events, source.clone(), s.clone(), as_sink, owner.clone()).await
        } else {
            source
                .run(&s.spec.feed, &s.spec.config, sink.as_ref())
                .await
        };
        let error = match ran {
            Ok(()) => "the connection ended".to_string(),
            Err(e) => redact(&e.to_string(), source.secrets(), &s.spec.config),
        };
        tracing::warn!(namespace = %s.namespace, trigger = %s.trigger, %error, "a subscription stopped");
        // A connection that lived a while starts the backoff again.
        if now_ms().saturating_sub(started) > 60_000 {
            attempt = 0;
        }
        let wait = backoff(attempt);
        sink.update(|status| {
            status.insert("connected".into(), json!(false));
            status.insert("error".into(), json!(error));
            status.insert("retryInMs".into(), json!(wait.as_millis() as u64));
        });
        tokio::time::sleep(wait).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Where one subscription's messages go: fires of its trigger.
struct SubscriptionSink {
    events: Arc<Events>,
    namespace: String,
    trigger: String,
    /// The source's package (`mqtt`), the `source` label of its deliveries' metric.
    source: String,
    /// What [`READ`](crate::sources) shows as the subscription's status.
    status: Mutex<Map<String, Value>>,
}

impl SubscriptionSink {
    /// Changes the status and stores it (in the background).
    fn update(&self, change: impl FnOnce(&mut Map<String, Value>)) {
        let status = {
            let mut status = lock(&self.status);
            change(&mut status);
            status.clone()
        };
        let store = self.events.store.clone();
        let (ns, trigger) = (self.namespace.clone(), self.trigger.clone());
        tokio::spawn(async move {
            if let Err(e) = store.set_subscription_status(&ns, &trigger, &status).await {
                tracing::warn!(error = %e, "cannot store a subscription's status");
            }
        });
    }

    /// Fires the trigger with `event` once.
    async fn fire(&self, event: EventFire<'_>) -> Result<(), EventError> {
        self.events
            .fire_event(&self.namespace, &self.trigger, event)
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Sink for SubscriptionSink {
    async fn deliver(&self, event: Event) -> Delivery {
        // A message without a key of its own gets one for its retries here.
        let (payload, key) = keyed(event);
        // A message that carries a W3C `traceparent` header (NATS and AMQP sources put a
        // message's headers in the payload) continues that trace; others start one.
        let trace = gust_model::TraceParent::from_header(traceparent_of(&payload));
        let started = tokio::time::Instant::now();
        let mut failures = 0;
        let mut counted = false;
        loop {
            let event = EventFire {
                payload: payload.clone(),
                key: &key,
                count: !counted,
                trace,
            };
            let error = match self.fire(event).await {
                Ok(()) => {
                    gust_telemetry::metrics::get().source_delivered(&self.namespace, &self.source);
                    return Delivery::Accepted;
                }
                Err(e) => e,
            };
            // Past the fires-per-minute check, the fire was counted: its retries are not.
            counted |= !matches!(error, EventError::Core(ControllerError::PerMinute { .. }));
            let wait = match &error {
                // The namespace is throttled, or the trigger is being deleted (and its
                // subscription with it: this task is about to be stopped).
                e if e.is_throttled() => THROTTLED_WAIT,
                EventError::Core(ControllerError::NotFound) => THROTTLED_WAIT,
                // No invoker, or the bus is down: the platform is what waits, not the message.
                EventError::Core(ControllerError::NoInvoker | ControllerError::Unreachable(_)) => {
                    tracing::warn!(namespace = %self.namespace, trigger = %self.trigger, %error, "the platform cannot take a fire; waiting");
                    backoff(failures.min(6))
                }
                e if e.is_host_failure() && failures + 1 < MAX_FAILURES => {
                    tracing::warn!(namespace = %self.namespace, trigger = %self.trigger, %error, "a fire failed; trying again");
                    backoff(failures + 1)
                }
                _ => {
                    return Delivery::MoveAside(format!(
                        "the fire failed {} time(s) in {} s: {error}",
                        failures + 1,
                        started.elapsed().as_secs()
                    ));
                }
            };
            if error.is_host_failure() {
                failures += 1;
            }
            tokio::time::sleep(wait).await;
        }
    }

    fn connected(&self, detail: &str) {
        let now = now_ms();
        self.update(|status| {
            status.insert("connected".into(), json!(true));
            status.insert("detail".into(), json!(detail));
            status.insert("connectedAt".into(), json!(now));
            status.remove("error");
            status.remove("retryInMs");
        });
    }

    fn moved_aside(&self, why: &str) {
        self.update(|status| {
            let n = status
                .get("movedAside")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            status.insert("movedAside".into(), json!(n + 1));
            status.insert("lastMovedAside".into(), json!(why));
        });
    }
}

/// The `traceparent` among a source message's headers (`headers` in its payload, names in any
/// case, a repeated header's values in an array: its first one).
fn traceparent_of(payload: &serde_json::Map<String, serde_json::Value>) -> Option<&str> {
    let (_, value) = payload
        .get("headers")?
        .as_object()?
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("traceparent"))?;
    match value {
        serde_json::Value::Array(values) => values.first()?.as_str(),
        v => v.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::traceparent_of;

    #[test]
    fn a_messages_traceparent_is_found_in_any_case_and_first_of_several() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let of = |headers: serde_json::Value| {
            let payload = json!({ "headers": headers, "data": {} });
            traceparent_of(payload.as_object().expect("object")).map(str::to_string)
        };
        assert_eq!(of(json!({ "traceparent": tp })).as_deref(), Some(tp));
        assert_eq!(of(json!({ "Traceparent": tp })).as_deref(), Some(tp));
        assert_eq!(of(json!({ "traceparent": [tp, "x"] })).as_deref(), Some(tp));
        assert_eq!(of(json!({ "other": tp })), None);
        assert_eq!(of(json!("not a map")), None);
    }
}
