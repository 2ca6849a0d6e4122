//! Schedules: the timers that feed triggers, with the position of each (the next tick, the
//! tick being fired) and which process owns it until when. A tick is claimed by
//! compare-and-swap on `next_ms`, so no two processes fire the same tick (decision 0020).

use async_trait::async_trait;
use gust_model::Schedule;

use crate::Result;

#[async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// Creates or replaces the schedule of a trigger: its spec and next tick; a replaced
    /// schedule keeps its owner and count and drops a pending tick.
    async fn put_schedule(&self, schedule: &Schedule) -> Result<()>;
    async fn schedule(&self, namespace: &str, trigger: &str) -> Result<Option<Schedule>>;
    /// Deletes a trigger's schedule; returns whether there was one.
    async fn delete_schedule(&self, namespace: &str, trigger: &str) -> Result<bool>;
    /// Up to `limit` schedules `owner` may fire now: a tick due by `now_ms` or a pending
    /// tick, owned by `owner`, by nobody, or by a process whose lease ran out; soonest first.
    async fn due_schedules(&self, owner: &str, now_ms: u64, limit: u64) -> Result<Vec<Schedule>>;
    /// Claims tick `tick_ms` of a schedule for `owner` (leased until `lease_ms`): moves the
    /// next tick to `next_ms` (none: the schedule ended) and marks `tick_ms` pending. False if
    /// the tick is no longer the next one or another live process owns the schedule.
    async fn claim_tick(&self, claim: &TickClaim<'_>) -> Result<bool>;
    /// Moves a schedule's next tick from `tick_ms` to `next_ms` without firing the ticks in
    /// between (a backlog past the catch-up limit), for `owner` as [`Self::claim_tick`] does.
    /// False if the tick is no longer the next one or another live process owns it.
    async fn skip_ticks(&self, claim: &TickClaim<'_>) -> Result<bool>;
    /// Takes over a schedule's pending tick `tick_ms` for `owner` (its owner died before it
    /// finished the fire). False if somebody else did.
    async fn adopt_pending(&self, claim: &TickClaim<'_>) -> Result<bool>;
    /// Tick `tick_ms` is fired: clears it and counts it.
    async fn finish_tick(&self, namespace: &str, trigger: &str, tick_ms: u64) -> Result<()>;
    /// Extends the lease of every schedule `owner` holds to `lease_ms`.
    async fn renew_schedules(&self, owner: &str, lease_ms: u64) -> Result<u64>;
    /// The earliest next tick of the schedules `owner` may fire.
    async fn earliest_tick(&self, owner: &str, now_ms: u64) -> Result<Option<u64>>;
    /// Drops every schedule's owner (a store that one process uses, at its start).
    async fn release_schedules(&self) -> Result<()>;
}

/// The claim of one tick of one schedule.
#[derive(Debug, Clone)]
pub struct TickClaim<'a> {
    pub namespace: &'a str,
    pub trigger: &'a str,
    pub tick_ms: u64,
    /// The tick after it; `None` when the schedule ends with this one.
    pub next_ms: Option<u64>,
    pub owner: &'a str,
    pub now_ms: u64,
    pub lease_ms: u64,
}
