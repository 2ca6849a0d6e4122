//! The scheduler: picks the invoker for an invocation. Each action has a home invoker, the
//! one that ranks it highest by a hash of the action's fully qualified name and the invoker's
//! id (rendezvous hashing), so its compiled code stays hot in one place and only the actions
//! of an invoker that comes or goes move (the idea of OpenWhisk's sharding balancer). When the
//! home has no free capacity the next invoker in the action's ranking takes it; when none
//! has, the home does (the work waits in its queue).
//!
//! `gust serve` has one fixed invoker. A controller of a cluster follows the invokers'
//! heartbeats: an invoker counts from its first heartbeat until it says it is leaving or
//! misses three.

use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gust_model::InvokerHealth;
use gust_model::message::INVOKER_TIMEOUT_MS;

use crate::lock;

#[derive(Debug, Clone)]
struct Member {
    id: String,
    /// Activations it runs at once (unknown for a fixed invoker: unbounded).
    capacity: u64,
    /// Activations it held at its last heartbeat.
    busy: u64,
    /// Invocations this controller sent it since that heartbeat.
    sent: u64,
    /// When it was last heard from.
    seen: Instant,
}

impl Member {
    fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.busy + self.sent)
    }
}

#[derive(Debug)]
pub struct Scheduler {
    members: Mutex<Vec<Member>>,
    /// Members come and go with their heartbeats (false: a fixed set).
    dynamic: bool,
}

impl Scheduler {
    /// A scheduler over a fixed set of invokers, whatever their load.
    pub fn new(invokers: Vec<String>) -> Self {
        let now = Instant::now();
        let members = invokers
            .into_iter()
            .map(|id| Member {
                id,
                capacity: u64::MAX,
                busy: 0,
                sent: 0,
                seen: now,
            })
            .collect();
        Scheduler {
            members: Mutex::new(members),
            dynamic: false,
        }
    }

    /// A scheduler over the invokers whose heartbeats it hears ([`Scheduler::heard`]).
    pub fn following_heartbeats() -> Self {
        Scheduler {
            members: Mutex::new(Vec::new()),
            dynamic: true,
        }
    }

    pub fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// Takes an invoker's heartbeat into account: it joins, updates its load, or leaves.
    pub fn heard(&self, health: &InvokerHealth) {
        if !self.dynamic {
            return;
        }
        let mut members = lock(&self.members);
        let found = members.iter().position(|m| m.id == health.invoker);
        match (found, health.leaving) {
            (Some(i), true) => {
                members.remove(i);
            }
            (Some(i), false) => {
                let m = &mut members[i];
                m.capacity = health.capacity;
                m.busy = health.busy;
                m.sent = 0;
                m.seen = Instant::now();
            }
            (None, true) => {}
            (None, false) => members.push(Member {
                id: health.invoker.clone(),
                capacity: health.capacity,
                busy: health.busy,
                sent: 0,
                seen: Instant::now(),
            }),
        }
    }

    /// The invokers it would pick from now.
    pub fn invokers(&self) -> Vec<String> {
        let mut members = lock(&self.members);
        self.forget_silent(&mut members);
        members.iter().map(|m| m.id.clone()).collect()
    }

    fn forget_silent(&self, members: &mut Vec<Member>) {
        if self.dynamic {
            let timeout = Duration::from_millis(INVOKER_TIMEOUT_MS);
            members.retain(|m| m.seen.elapsed() < timeout);
        }
    }

    /// The invoker for `namespace/action`: its home if the home has free capacity, else the
    /// next in its ranking that has, else the home; `None` when there is no invoker.
    pub fn pick(&self, namespace: &str, action: &str) -> Option<String> {
        let mut members = lock(&self.members);
        self.forget_silent(&mut members);
        let mut home: Option<(u64, usize)> = None;
        let mut free: Option<(u64, usize)> = None;
        for (i, m) in members.iter().enumerate() {
            let weight = rank(namespace, action, &m.id);
            if home.is_none_or(|(w, _)| weight > w) {
                home = Some((weight, i));
            }
            if m.free() > 0 && free.is_none_or(|(w, _)| weight > w) {
                free = Some((weight, i));
            }
        }
        let (_, i) = free.or(home)?;
        let chosen = &mut members[i];
        chosen.sent = chosen.sent.saturating_add(1);
        Some(chosen.id.clone())
    }
}

/// Rendezvous weight of an invoker for an action (SipHash with fixed keys: the same in every
/// process of one release).
pub fn rank(namespace: &str, action: &str, invoker: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (namespace, action, invoker).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(id: &str, capacity: u64, busy: u64) -> InvokerHealth {
        InvokerHealth {
            invoker: id.into(),
            capacity,
            busy,
            leaving: false,
        }
    }

    #[test]
    fn picks_the_same_home_every_time() {
        let s = Scheduler::new(vec!["a".into(), "b".into(), "c".into()]);
        let first = s.pick("ns", "x");
        for _ in 0..10 {
            assert_eq!(s.pick("ns", "x"), first);
        }
        assert_eq!(Scheduler::new(vec![]).pick("ns", "x"), None);
    }

    #[test]
    fn follows_heartbeats_and_moves_only_what_it_must() {
        let s = Scheduler::following_heartbeats();
        assert_eq!(s.pick("ns", "x"), None, "no invoker heard yet");
        for id in ["a", "b", "c"] {
            s.heard(&health(id, 1000, 0));
        }
        let actions: Vec<String> = (0..60).map(|i| format!("f{i}")).collect();
        let homes: Vec<String> = actions.iter().map(|a| s.pick("ns", a).unwrap()).collect();
        for id in ["a", "b", "c"] {
            assert!(
                homes.iter().any(|h| h == id),
                "{id} is home to some actions"
            );
        }
        // A fourth invoker takes some actions; the others keep their homes.
        s.heard(&health("d", 1000, 0));
        let after: Vec<String> = actions.iter().map(|a| s.pick("ns", a).unwrap()).collect();
        assert!(after.iter().any(|h| h == "d"));
        for (before, now) in homes.iter().zip(&after) {
            assert!(now == before || now == "d", "{before} -> {now}");
        }
        // One leaves: only its actions move.
        s.heard(&InvokerHealth {
            leaving: true,
            ..health("d", 1000, 0)
        });
        let back: Vec<String> = actions.iter().map(|a| s.pick("ns", a).unwrap()).collect();
        assert_eq!(back, homes);
        assert_eq!(s.invokers().len(), 3);
    }

    #[test]
    fn a_full_home_sends_work_to_the_next_invoker() {
        let s = Scheduler::following_heartbeats();
        s.heard(&health("a", 2, 0));
        s.heard(&health("b", 2, 0));
        let home = s.pick("ns", "x").unwrap();
        let other = if home == "a" { "b" } else { "a" };
        assert_eq!(s.pick("ns", "x").unwrap(), home, "one slot left at home");
        assert_eq!(s.pick("ns", "x").unwrap(), other, "home is full");
        assert_eq!(s.pick("ns", "x").unwrap(), other);
        assert_eq!(s.pick("ns", "x").unwrap(), home, "all full: home queues it");
        // A heartbeat says the home is idle again.
        s.heard(&health(&home, 2, 0));
        assert_eq!(s.pick("ns", "x").unwrap(), home);
    }

    #[test]
    fn a_fixed_scheduler_ignores_heartbeats() {
        let s = Scheduler::new(vec!["invoker0".into()]);
        s.heard(&health("other", 10, 0));
        assert_eq!(s.invokers(), ["invoker0"]);
    }
}
