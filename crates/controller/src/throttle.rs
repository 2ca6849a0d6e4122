//! Per-namespace throttles: invocations per minute (a fixed one-minute window, as OpenWhisk
//! counts) and invocations in flight.

use std::collections::HashMap;
use std::sync::Mutex;

use gust_model::NamespaceLimits;

use crate::{ControllerError, lock};

#[derive(Debug, Default)]
struct Counter {
    minute: u64,
    in_minute: u64,
    in_flight: u64,
}

/// The `reason` of `gust_throttles_total` for the invocations-per-minute limit.
pub const PER_MINUTE: &str = "per_minute";
/// The `reason` of `gust_throttles_total` for the concurrent-invocations limit.
pub const CONCURRENT: &str = "concurrent";

/// OpenWhisk's 429 for the per-minute limit.
pub fn too_many_per_minute(count: u64, limits: &NamespaceLimits) -> ControllerError {
    ControllerError::PerMinute {
        count,
        allowed: limits.invocations_per_minute,
    }
}

/// OpenWhisk's 429 for the concurrency limit.
pub fn too_many_in_flight(count: u64, limits: &NamespaceLimits) -> ControllerError {
    ControllerError::InFlight {
        count,
        allowed: limits.concurrent_invocations,
    }
}

#[derive(Debug, Default)]
pub struct Throttles(Mutex<HashMap<String, Counter>>);

impl Throttles {
    /// Admits one invocation or says which limit it hit.
    pub fn admit(
        &self,
        ns: &str,
        limits: &NamespaceLimits,
        now_ms: u64,
    ) -> Result<(), ControllerError> {
        let minute = now_ms / 60_000;
        let mut map = lock(&self.0);
        let c = map.entry(ns.to_string()).or_default();
        if c.minute != minute {
            c.minute = minute;
            c.in_minute = 0;
        }
        if c.in_minute >= limits.invocations_per_minute {
            gust_telemetry::metrics::get().throttled(ns, PER_MINUTE);
            return Err(too_many_per_minute(c.in_minute, limits));
        }
        if c.in_flight >= limits.concurrent_invocations {
            gust_telemetry::metrics::get().throttled(ns, CONCURRENT);
            return Err(too_many_in_flight(c.in_flight, limits));
        }
        c.in_minute += 1;
        c.in_flight += 1;
        Ok(())
    }

    /// Counts an invocation in flight without admission (recovery after a restart).
    pub fn force(&self, ns: &str) {
        lock(&self.0).entry(ns.to_string()).or_default().in_flight += 1;
    }

    /// One invocation of `ns` has finished.
    pub fn release(&self, ns: &str) {
        if let Some(c) = lock(&self.0).get_mut(ns) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_minute_and_in_flight() {
        let t = Throttles::default();
        let limits = NamespaceLimits {
            invocations_per_minute: 3,
            concurrent_invocations: 2,
            ..Default::default()
        };
        assert!(t.admit("a", &limits, 0).is_ok());
        assert!(t.admit("a", &limits, 0).is_ok());
        let e = t.admit("a", &limits, 0).unwrap_err().to_string();
        assert_eq!(
            e,
            "Too many concurrent requests in flight (count: 2, allowed: 2)."
        );
        t.release("a");
        assert!(t.admit("a", &limits, 0).is_ok());
        t.release("a");
        let e = t.admit("a", &limits, 0).unwrap_err().to_string();
        assert_eq!(
            e,
            "Too many requests in the last minute (count: 3, allowed: 3)."
        );
        assert!(t.admit("a", &limits, 60_000).is_ok(), "a new minute");
        assert!(t.admit("b", &limits, 0).is_ok(), "namespaces are separate");
    }
}
