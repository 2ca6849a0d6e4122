//! The scheduler: picks the invoker for an invocation. Each action has a home invoker chosen
//! by hashing its fully qualified name, so its compiled code stays hot in one place (the idea
//! of OpenWhisk's sharding balancer). `gust serve` has exactly one invoker.

use std::hash::{Hash, Hasher};

#[derive(Debug, Clone)]
pub struct Scheduler {
    invokers: Vec<String>,
}

impl Scheduler {
    /// A scheduler over a fixed set of invokers; at least one.
    pub fn new(invokers: Vec<String>) -> Self {
        Scheduler { invokers }
    }

    /// The home invoker of `namespace/action`, or `None` when there is no invoker.
    pub fn pick(&self, namespace: &str, action: &str) -> Option<&str> {
        if self.invokers.is_empty() {
            return None;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (namespace, action).hash(&mut h);
        let i = (h.finish() % self.invokers.len() as u64) as usize;
        Some(&self.invokers[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_same_home_every_time() {
        let s = Scheduler::new(vec!["a".into(), "b".into(), "c".into()]);
        let first = s.pick("ns", "x").map(str::to_string);
        for _ in 0..10 {
            assert_eq!(s.pick("ns", "x").map(str::to_string), first);
        }
        assert_eq!(Scheduler::new(vec![]).pick("ns", "x"), None);
    }
}
