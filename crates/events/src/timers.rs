//! Durable timers: the source that fires triggers on their schedules (written by the
//! `alarms` feeds). Every process that runs a controller runs one [`Timers`]; they share
//! the schedules through the store (decision 0020):
//!
//! - a tick is claimed by compare-and-swap on the schedule's next tick, so no two processes
//!   fire it; the claim marks it pending until its fire is accepted;
//! - the fire's trigger activation id is derived from the schedule and the tick, so a tick
//!   fired again after a crash never stores a second trigger record;
//! - each process owns the schedules it claimed while it renews their leases; a schedule
//!   whose owner stops renewing is taken over after [`LEASE_MS`], its pending tick fired
//!   again unless its trigger record exists;
//! - missed ticks (the process was down) fire one by one, oldest first, marked `pastDue`
//!   with their `scheduledTime` in the payload; past the catch-up limit only the latest
//!   ones fire, the first of them saying since when ticks were skipped (`skippedSince`);
//! - a rule whose action, started by an earlier tick, is still running is not run again: the
//!   tick's record says so and counts the fires it skipped (overlaps are counted, not
//!   stacked);
//! - a fire the platform could not take (the store or the bus failing, or the namespace's
//!   fires per minute spent) leaves its tick pending, to be fired again a second later;
//! - the actions a tick starts have ids derived from the tick and the rule too: a tick fired
//!   again starts only the rules whose invocation has neither a record nor a journal entry.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gust_model::time::now_ms;
use gust_model::{DeleteAfterFire, RuleStatus, Schedule, Timing};
use gust_store::TickClaim;
use serde_json::{Value, json};
use sha2::Digest;
use tokio::sync::Notify;

use crate::fire::{Firing, Fixed};
use crate::timing::{next_tick, tick_back};
use crate::{EventError, Events, lock};

/// How long a process owns the schedules it fires without renewing them.
pub const LEASE_MS: u64 = 5_000;
/// How often an owner renews its leases.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Longest the timers sleep without looking at the store (schedules written by another
/// process, a dead owner's schedules).
const LOOK_AT_LEAST_EVERY_MS: u64 = 1_000;
/// Shortest sleep between two looks, so schedules being fired are not polled in a loop.
const LOOK_AT_MOST_EVERY_MS: u64 = 10;
/// A tick fired this late is marked past due.
pub const PAST_DUE_MS: u64 = 2_000;
/// The default catch-up limit: most missed ticks of one schedule fired after a downtime.
pub const CATCH_UP: u64 = 1_000;
/// How long after its time a tick is fired again when one of its rules' invocations could
/// not be taken by the platform; past it that rule is logged as failed.
const HOST_RETRY_MS: u64 = 60_000;
/// Most schedules fired at once by one look.
const BATCH: u64 = 100;

/// The activation id of the trigger fire of tick `tick_ms` of `ns/trigger`: the UUIDv7
/// layout with the tick as its time and a hash of the three as its other bits.
pub fn tick_activation_id(ns: &str, trigger: &str, tick_ms: u64) -> String {
    derived_id(tick_ms, &format!("{ns}\0{trigger}\0{tick_ms}"))
}

/// The activation id of the action rule `rule` starts for the fire of tick `tick_ms` of
/// `ns/trigger`: derived like the trigger's, so a tick fired again finds what it started.
pub fn rule_activation_id(ns: &str, trigger: &str, rule: &str, tick_ms: u64) -> String {
    derived_id(tick_ms, &format!("{ns}\0{trigger}\0{tick_ms}\0{rule}"))
}

/// A time for the ids derived from `seed` that has none of its own (a message's key): 48
/// bits of its hash, so such ids do not all start alike.
pub(crate) fn hashed_ms(seed: &str) -> u64 {
    let digest = sha2::Sha256::digest(seed.as_bytes());
    digest[..6].iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

/// An activation id in the UUIDv7 layout with `ms` as its time and a hash of `seed` as its
/// other bits.
pub(crate) fn derived_id(ms: u64, seed: &str) -> String {
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let mut rest = [0u8; 10];
    rest.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(ms, &rest)
        .into_uuid()
        .simple()
        .to_string()
}

/// The timers of one process.
pub struct Timers {
    events: Arc<Events>,
    /// This process's name as a schedule owner.
    owner: String,
    wake: Arc<Notify>,
    /// Schedules this process is firing now, by (namespace, trigger).
    busy: Mutex<HashSet<(String, String)>>,
    /// The activation the last tick started for each rule, by (namespace, trigger, rule),
    /// and how many fires the rule has skipped since because that one still ran.
    last: Mutex<HashMap<RuleKey, (String, u64)>>,
    /// Most missed ticks of a schedule fired after a downtime (the latest ones).
    catch_up: u64,
    /// The first tick skipped by a catch-up, by (namespace, trigger), until the next fire
    /// says so.
    skipped: Mutex<HashMap<(String, String), u64>>,
}

/// A rule of a schedule's trigger: (namespace, trigger, rule).
type RuleKey = (String, String, String);

/// How long a fire the platform could not take waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest one schedule's fires may take before its task gives up (its tick stays pending,
/// for this or another process to fire again).
const FIRE_AT_MOST: Duration = Duration::from_secs(300);

/// Marks a schedule as being fired by this process while it lives.
struct Busy<'a>(&'a Timers, (String, String));

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        lock(&self.0.busy).remove(&self.1);
    }
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timers")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Timers {
    /// Starts the timers of this process (`owner` must be unique among the processes that
    /// share the store). `shared`: other processes use the store too; otherwise every
    /// schedule's owner is this process's from the start. `catch_up`: most missed ticks of a
    /// schedule fired after a downtime ([`CATCH_UP`] by default).
    pub async fn start(
        events: Arc<Events>,
        wake: Arc<Notify>,
        owner: String,
        shared: bool,
        catch_up: u64,
    ) -> Result<Arc<Timers>, EventError> {
        if !shared {
            events.store.release_schedules().await?;
        }
        let timers = Arc::new(Timers {
            events,
            owner,
            wake,
            busy: Mutex::new(HashSet::new()),
            last: Mutex::new(HashMap::new()),
            catch_up: catch_up.max(1),
            skipped: Mutex::new(HashMap::new()),
        });
        tokio::spawn(timers.clone().renew());
        tokio::spawn(timers.clone().run());
        Ok(timers)
    }

    async fn renew(self: Arc<Self>) {
        let mut every = tokio::time::interval(RENEW_EVERY);
        loop {
            every.tick().await;
            if let Err(e) = self
                .events
                .store
                .renew_schedules(&self.owner, now_ms() + LEASE_MS)
                .await
            {
                tracing::warn!(error = %e, "cannot renew the leases of schedules");
            }
        }
    }

    async fn run(self: Arc<Self>) {
        let store = self.events.store.clone();
        loop {
            let now = now_ms();
            match store.due_schedules(&self.owner, now, BATCH).await {
                Ok(due) => {
                    for s in due {
                        let key = (s.namespace.clone(), s.trigger.clone());
                        if lock(&self.busy).insert(key.clone()) {
                            let this = self.clone();
                            tokio::spawn(async move {
                                // Freed however the task ends (a panic below included).
                                let _busy = Busy(&this, key);
                                let fired = tokio::time::timeout(FIRE_AT_MOST, this.fire_due(s));
                                match fired.await {
                                    Ok(true) => this.wake.notify_one(),
                                    Ok(false) => {}
                                    Err(_) => tracing::warn!("a schedule's fires timed out"),
                                }
                            });
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read due schedules"),
            }
            let next = store.earliest_tick(&self.owner, now).await.ok().flatten();
            let sleep = next
                .map_or(LOOK_AT_LEAST_EVERY_MS, |n| n.saturating_sub(now_ms()))
                .clamp(LOOK_AT_MOST_EVERY_MS, LOOK_AT_LEAST_EVERY_MS);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(sleep)) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    fn claim<'a>(&'a self, s: &'a Schedule, tick_ms: u64, next_ms: Option<u64>) -> TickClaim<'a> {
        let now = now_ms();
        TickClaim {
            namespace: &s.namespace,
            trigger: &s.trigger,
            tick_ms,
            next_ms,
            owner: &self.owner,
            now_ms: now,
            lease_ms: now + LEASE_MS,
        }
    }

    /// Fires what is due of one schedule: a pending tick left by a dead owner (or by a fire
    /// the platform could not take), then every tick due now, each claimed first. Returns
    /// whether it fired anything.
    async fn fire_due(&self, mut s: Schedule) -> bool {
        let store = self.events.store.clone();
        let mut progress = false;
        loop {
            let (tick, again) = match s.pending_ms {
                Some(pending) => match store.adopt_pending(&self.claim(&s, pending, None)).await {
                    Ok(true) => (pending, true),
                    Ok(false) => return progress,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot adopt a pending tick");
                        return progress;
                    }
                },
                None => {
                    let now = now_ms();
                    let Some(tick) = s.next_ms.filter(|t| *t <= now) else {
                        return progress;
                    };
                    // More missed ticks than the catch-up limit: move to the first of the
                    // latest ones, and let its fire say since when ticks were skipped.
                    if let Some(first) = tick_back(&s.spec, now, self.catch_up)
                        && first > tick
                    {
                        match store.skip_ticks(&self.claim(&s, tick, Some(first))).await {
                            Ok(true) => {
                                let key = (s.namespace.clone(), s.trigger.clone());
                                lock(&self.skipped).insert(key, tick);
                                s.next_ms = Some(first);
                                continue;
                            }
                            Ok(false) => return progress,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot skip missed ticks");
                                return progress;
                            }
                        }
                    }
                    let next = next_tick(&s.spec, tick);
                    match store.claim_tick(&self.claim(&s, tick, next)).await {
                        Ok(true) => (tick, false),
                        Ok(false) => return progress,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot claim a tick");
                            return progress;
                        }
                    }
                }
            };
            if !self.fire_tick(&s, tick, again).await {
                // Stays pending; tried again at the next look.
                return progress;
            }
            progress = true;
            s = match store.schedule(&s.namespace, &s.trigger).await {
                Ok(Some(s)) => s,
                Ok(None) => return progress,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a schedule");
                    return progress;
                }
            };
            // A `once` schedule that has fired its date (read afresh: an UPDATE may have
            // moved it) deletes what it was told to.
            if let (
                None,
                None,
                Timing::Once {
                    delete_after_fire, ..
                },
            ) = (s.next_ms, s.pending_ms, &s.spec.timing)
            {
                self.delete_after_fire(&s, *delete_after_fire).await;
                return progress;
            }
        }
    }

    /// Fires tick `tick_ms` of `s` and clears it; `again`: it may have fired already (its
    /// trigger record then exists and nothing runs). A fire the platform could not take
    /// stays pending and is tried again after [`RETRY_AFTER`]; returns whether the tick is
    /// done with (fired, or refused for good).
    async fn fire_tick(&self, s: &Schedule, tick_ms: u64, again: bool) -> bool {
        let (ns, trigger) = (s.namespace.as_str(), s.trigger.as_str());
        let id = tick_activation_id(ns, trigger, tick_ms);
        let store = &self.events.store;
        let done = if again {
            match store.activation(ns, &id).await {
                Ok(record) => record.is_some(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a tick's record");
                    tokio::time::sleep(RETRY_AFTER).await;
                    return false;
                }
            }
        } else {
            false
        };
        if !done && let Err(e) = self.fire(s, tick_ms, id, again).await {
            tracing::warn!(namespace = ns, trigger, error = %e, "a scheduled fire failed");
            // The platform could not take it, or the namespace's fires per minute are spent
            // (OpenWhisk's provider retries those too): the tick stays pending.
            let throttled = matches!(
                e,
                EventError::Core(gust_controller::ControllerError::PerMinute { .. })
            );
            if e.is_host_failure() || throttled {
                tokio::time::sleep(RETRY_AFTER).await;
                return false;
            }
        }
        if let Err(e) = store.finish_tick(ns, trigger, tick_ms).await {
            tracing::warn!(error = %e, "cannot clear a fired tick");
        }
        true
    }

    async fn fire(
        &self,
        s: &Schedule,
        tick_ms: u64,
        id: String,
        refire: bool,
    ) -> Result<(), EventError> {
        let core = &self.events.core;
        // The namespace may be gone (its schedules go at the next delete of the trigger).
        let Some(who) = core.owner(&s.namespace).await? else {
            return Ok(());
        };
        self.events.count_fire(&who).await?;
        let mut payload = s.spec.payload.clone();
        let now = now_ms();
        if now.saturating_sub(tick_ms) > PAST_DUE_MS {
            payload.insert("pastDue".into(), Value::Bool(true));
            let at = jiff::Timestamp::from_millisecond(tick_ms as i64)
                .map(|t| t.to_string())
                .unwrap_or_default();
            payload.insert("scheduledTime".into(), json!(at));
        }
        let key = (s.namespace.clone(), s.trigger.clone());
        let skipped = lock(&self.skipped).get(&key).copied();
        if let Some(since) = skipped {
            let at = jiff::Timestamp::from_millisecond(since as i64)
                .map(|t| t.to_string())
                .unwrap_or_default();
            payload.insert("skippedSince".into(), json!(at));
        }
        let busy = self.still_running(s).await?;
        let firing = Firing {
            args: payload.clone(),
            payload,
            id,
            again: true,
            busy,
            trace: None,
            fixed: Some(Fixed {
                ms: tick_ms,
                seed: format!("{}\0{}\0{tick_ms}", s.namespace, s.trigger),
                refire,
                patient: false,
                // A rule the platform cannot take is retried for a while, then logged as
                // failed, so that one failing rule does not hold its schedule's later ticks.
                retry_host: now.saturating_sub(tick_ms) < HOST_RETRY_MS,
            }),
        };
        let report = match self
            .events
            .fire_with(&who, &s.namespace, &s.trigger, firing)
            .await
        {
            Ok(report) => report,
            Err(EventError::Core(gust_controller::ControllerError::NotFound)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if skipped.is_some() {
            lock(&self.skipped).remove(&key);
        }
        let mut last = lock(&self.last);
        for (rule, activation) in report.started {
            last.insert(
                (s.namespace.clone(), s.trigger.clone(), rule),
                (activation, 0),
            );
        }
        Ok(())
    }

    /// The active rules of `s`'s trigger whose action, started by an earlier tick, has no
    /// record yet, with that activation's id and the fires each has skipped (this one
    /// counted).
    async fn still_running(
        &self,
        s: &Schedule,
    ) -> Result<HashMap<String, (String, u64)>, EventError> {
        let Some(target) = self.events.target(&s.namespace, &s.trigger).await? else {
            return Ok(HashMap::new());
        };
        let mut busy = HashMap::new();
        for rule in target
            .rules
            .iter()
            .filter(|r| r.status == RuleStatus::Active)
        {
            let key = (s.namespace.clone(), s.trigger.clone(), rule.name.clone());
            let Some((running, _)) = lock(&self.last).get(&key).cloned() else {
                continue;
            };
            if self
                .events
                .store
                .activation(&s.namespace, &running)
                .await?
                .is_none()
            {
                let mut last = lock(&self.last);
                if let Some(entry) = last.get_mut(&key) {
                    entry.1 += 1;
                    busy.insert(rule.name.clone(), entry.clone());
                }
            }
        }
        Ok(busy)
    }

    /// After a `once` schedule's fire: deletes its trigger, and with `rules` its rules.
    async fn delete_after_fire(&self, s: &Schedule, what: DeleteAfterFire) {
        let store = &self.events.store;
        let ns = s.namespace.as_str();
        let result = async {
            match what {
                DeleteAfterFire::No => return Ok(()),
                DeleteAfterFire::Trigger => {}
                DeleteAfterFire::Rules => {
                    let trigger = format!("/{ns}/{}", s.trigger);
                    for rule in store.rules_of_trigger(ns, &trigger).await? {
                        store.delete_rule(ns, &rule.name).await?;
                    }
                }
            }
            store.delete_trigger(ns, &s.trigger).await?;
            self.events
                .deactivate_rules_of(ns, &s.trigger)
                .await
                .map_err(|e| gust_store::StoreError::Backend(e.to_string()))
        }
        .await;
        self.events.forget(ns, &s.trigger);
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot delete a trigger after its one fire");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_has_one_activation_id_laid_out_in_time() {
        let a = tick_activation_id("ns", "t", 1_700_000_000_000);
        assert_eq!(a, tick_activation_id("ns", "t", 1_700_000_000_000));
        assert_ne!(a, tick_activation_id("ns", "t", 1_700_000_001_000));
        assert_ne!(a, tick_activation_id("ns", "u", 1_700_000_000_000));
        assert!(gust_model::names::is_activation_id(&a));
        assert!(a < tick_activation_id("a", "b", 1_700_000_001_000));
    }
}
